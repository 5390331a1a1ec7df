//! The dead-letter queue's file: one record per letter, appended, read back when agentd starts.
//!
//! A record is `[length: u32 LE][crc32 of the payload: u32 LE][payload]`, the payload a
//! validated rkyv archive of the letter (its listing and its frame). Reading stops at a record
//! whose length runs past the end of the file (a write torn by a crash: dropped, and the file
//! cut back to the records before it); a record whose checksum or archive does not hold is
//! skipped and counted, and reading goes on after it. The file is rewritten from the letters
//! kept in memory when it grows past its bound, through a temporary file renamed over it, so a
//! crash leaves either the old file or the new one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use agentbus::control::DeadLetterInfo;
use rkyv::rancor;

use crate::dead_letters::DeadLetter;

/// A record's header: length and checksum.
const RECORD_HEADER: usize = 8;
/// The largest payload a record may claim (a frame of up to 64 MiB and its listing): past it,
/// the length is garbage.
const MAX_RECORD: usize = (64 << 20) + (1 << 16);

/// What a letter is stored as.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Stored {
    info: DeadLetterInfo,
    frame: Vec<u8>,
}

/// What reading the file found besides the letters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Letters read back.
    pub letters: usize,
    /// Records skipped: their checksum or archive did not hold.
    pub corrupt: usize,
    /// Bytes dropped at the end: a record torn by a crash.
    pub torn_bytes: usize,
}

/// The dead-letter file, open for appending.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
    bytes: u64,
    max_bytes: u64,
}

/// Why the dead-letter file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("dead-letter file {}: {what}: {source}; check the path and its permissions, or set dead_letter_persist = false", path.display())]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What was being done.
    pub what: &'static str,
    /// The error.
    pub source: std::io::Error,
}

/// Turns an I/O error while `what` on `path` into a [`FileError`].
fn failed(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_path_buf();
    move |source| FileError { path, what, source }
}

fn encode(letter: &DeadLetter) -> Option<Vec<u8>> {
    let stored = Stored {
        info: letter.info.clone(),
        frame: letter.frame.clone(),
    };
    let payload = rkyv::to_bytes::<rancor::Error>(&stored).ok()?;
    let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Some(record)
}

/// The letters in `bytes`, what was skipped, and where the last whole record ends.
fn decode_all(bytes: &[u8]) -> (Vec<DeadLetter>, Loaded, usize) {
    let mut letters = Vec::new();
    let mut loaded = Loaded::default();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + RECORD_HEADER) else {
            break; // torn inside a record header
        };
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes
            .get(at + RECORD_HEADER..at + RECORD_HEADER + len)
            .filter(|_| len <= MAX_RECORD)
        else {
            break; // torn (or a garbage length): nothing after it can be trusted
        };
        at += RECORD_HEADER + len;
        if crc32fast::hash(payload) != crc {
            loaded.corrupt += 1;
            continue;
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
        aligned.extend_from_slice(payload);
        match rkyv::from_bytes::<Stored, rancor::Error>(&aligned) {
            Ok(s) => letters.push(DeadLetter {
                info: s.info,
                frame: s.frame,
            }),
            Err(_) => loaded.corrupt += 1,
        }
    }
    loaded.letters = letters.len();
    loaded.torn_bytes = bytes.len() - at;
    (letters, loaded, at)
}

impl DeadLetterFile {
    /// Opens (creating it, mode 0600) the file at `path`, reads its letters back, and cuts a
    /// torn last record off; the file is rewritten once it passes `max_bytes`.
    pub fn open(
        path: &Path,
        max_bytes: u64,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |what| failed(what, path);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(err("opening"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err("reading"))?;
        let (letters, loaded, good) = decode_all(&bytes);
        if good < bytes.len() {
            file.set_len(good as u64)
                .map_err(err("cutting a torn record"))?;
        }
        Ok((
            DeadLetterFile {
                path: path.into(),
                file,
                bytes: good as u64,
                max_bytes: max_bytes.max(1 << 16),
            },
            letters,
            loaded,
        ))
    }

    /// Appends `letters`; rewrites the file from `all` (the letters kept) first if appending
    /// would take it past its bound.
    pub fn append<'a>(
        &mut self,
        letters: impl Iterator<Item = &'a DeadLetter>,
        all: impl Iterator<Item = &'a DeadLetter>,
    ) -> Result<(), FileError> {
        let mut out = Vec::new();
        for letter in letters {
            if let Some(record) = encode(letter) {
                out.extend_from_slice(&record);
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        if self.bytes + out.len() as u64 > self.max_bytes {
            return self.rewrite(all);
        }
        self.file
            .write_all(&out)
            .map_err(failed("appending", &self.path))?;
        self.bytes += out.len() as u64;
        Ok(())
    }

    /// Replaces the file's content with `letters`.
    pub fn rewrite<'a>(
        &mut self,
        letters: impl Iterator<Item = &'a DeadLetter>,
    ) -> Result<(), FileError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = self.path.with_extension("dlq.tmp");
        let err = failed;
        let mut out = Vec::new();
        for letter in letters {
            if let Some(record) = encode(letter) {
                out.extend_from_slice(&record);
            }
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err("creating the rewrite", &tmp))?;
        f.write_all(&out)
            .map_err(err("writing the rewrite", &tmp))?;
        f.sync_data().map_err(err("syncing the rewrite", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(err("renaming the rewrite", &self.path))?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(err("reopening", &self.path))?;
        self.bytes = out.len() as u64;
        Ok(())
    }

    /// Removes the file.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Its size now, in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::{MessageType, RouteKind};

    fn letter(seq: u64, frame: usize) -> DeadLetter {
        DeadLetter {
            info: DeadLetterInfo {
                sequence: seq,
                message_id: seq + 100,
                message_type: MessageType::Notification,
                route: RouteKind::Topic,
                source_slot: 3,
                destination_slot: Some(4),
                reason: format!("letter {seq}"),
                at_ns: 42,
                frame_len: frame as u32,
                retries: 0,
            },
            frame: vec![seq as u8; frame],
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agentd-dlq-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn letters_survive_a_reopen() {
        let dir = scratch("reopen");
        let path = dir.join("bus.dlq");
        let (mut f, none, _) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert!(none.is_empty());
        let letters: Vec<_> = (0..5).map(|s| letter(s, 100)).collect();
        f.append(letters.iter(), letters.iter()).unwrap();
        drop(f);
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                letters: 5,
                corrupt: 0,
                torn_bytes: 0
            }
        );
        assert_eq!(
            back.iter().map(|l| l.info.clone()).collect::<Vec<_>>(),
            letters.iter().map(|l| l.info.clone()).collect::<Vec<_>>()
        );
        assert_eq!(back[4].frame, vec![4u8; 100]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_cut_never_misread() {
        let dir = scratch("torn");
        let path = dir.join("bus.dlq");
        let (mut f, _, _) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        let letters: Vec<_> = (0..3).map(|s| letter(s, 64)).collect();
        f.append(letters.iter(), letters.iter()).unwrap();
        drop(f);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the fourth record's write.
        let fourth = encode(&letter(3, 64)).unwrap();
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&fourth[..fourth.len() / 2]).unwrap();
        drop(raw);
        let (mut f, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(loaded.torn_bytes, fourth.len() / 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "cut back");
        // Appending after it works and reads back.
        let more = [letter(9, 10)];
        f.append(more.iter(), more.iter()).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!((back.len(), loaded.torn_bytes), (4, 0));
        assert_eq!(back[3].info.sequence, 9);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupted_record_is_skipped_and_the_rest_kept() {
        let dir = scratch("corrupt");
        let path = dir.join("bus.dlq");
        let (mut f, _, _) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        let letters: Vec<_> = (0..3).map(|s| letter(s, 64)).collect();
        f.append(letters.iter(), letters.iter()).unwrap();
        drop(f);
        let mut bytes = std::fs::read(&path).unwrap();
        let first = encode(&letters[0]).unwrap().len();
        bytes[first + RECORD_HEADER + 5] ^= 0xFF; // inside the second record's payload
        std::fs::write(&path, &bytes).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                letters: 2,
                corrupt: 1,
                torn_bytes: 0
            }
        );
        assert_eq!(
            back.iter().map(|l| l.info.sequence).collect::<Vec<_>>(),
            vec![0, 2]
        );
        // Random garbage never panics and never yields a letter it did not write.
        for seed in 0..200u64 {
            fastrand::seed(seed);
            let junk: Vec<u8> = (0..fastrand::usize(0..512))
                .map(|_| fastrand::u8(..))
                .collect();
            let (found, _, good) = decode_all(&junk);
            assert!(good <= junk.len());
            assert!(found.is_empty(), "seed {seed}: a letter read out of junk");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_file_is_rewritten_from_what_is_kept_when_it_passes_its_bound() {
        let dir = scratch("bound");
        let path = dir.join("bus.dlq");
        let (mut f, _, _) = DeadLetterFile::open(&path, 1 << 16).unwrap();
        let mut kept = std::collections::VecDeque::new();
        for s in 0..400 {
            let l = letter(s, 1000);
            kept.push_back(l.clone());
            if kept.len() > 20 {
                kept.pop_front();
            }
            f.append(std::iter::once(&l), kept.iter()).unwrap();
            assert!(f.bytes() <= 1 << 16, "bounded: {}", f.bytes());
        }
        let (_, back, _) = DeadLetterFile::open(&path, 1 << 16).unwrap();
        assert!(back.len() <= 60, "{}", back.len());
        assert_eq!(back.last().unwrap().info.sequence, 399, "the newest kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
