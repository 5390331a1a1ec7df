//! The dead-letter queue's file: one record per letter, appended, read back when agentd starts.
//!
//! # Format (version 2)
//!
//! A header of 32 bytes, then records:
//!
//! ```text
//! header:  [magic "AGB\xFFDLQ\n": 8][version: u32 LE = 2][salt: 16][crc32 of the 28 bytes before: u32 LE]
//! record:  [marker: 8][length: u32 LE][crc32(salt ‖ length ‖ payload): u32 LE][payload: length]
//! ```
//!
//! The salt is 16 random bytes drawn each time the file is created or rewritten; a record's
//! marker is the salt's first 8 bytes, and its checksum covers the whole salt, its length and
//! its payload (a validated rkyv archive of the letter: its listing and its frame).
//!
//! # Reading: records are found by their marker, not by the lengths before them
//!
//! The reader cuts the file after its header at every place the marker occurs and reads each
//! piece as one record: a whole record whose checksum and archive hold is a letter; anything
//! else in a piece (a record with any byte of its marker, length, checksum or payload damaged,
//! or bytes after a record that start none) is skipped and counted as corrupt, and reading
//! goes on at the next marker. One damaged record costs that record alone, its length
//! included, and every whole record after it is read back.
//!
//! The end of the file is the one place where damage and a crash look alike: a crash in the
//! middle of an append leaves the last record cut short. Bytes at the end that no marker
//! follows and that hold no whole record are a torn write, dropped, and the file is cut back
//! to before them so that appends follow the last whole record; unless they are a whole record
//! with one field damaged (its length field counts exactly the bytes that are there, or its
//! checksum holds over them with that length), which is counted as corrupt like any other.
//! Damaged pieces right before a torn end that are no such record go with it, so that the
//! file is left ending in a whole record (good or damaged) and reading it again cuts nothing.
//! A damaged length in the middle of the file is never taken for a torn end: a marker, and a
//! whole record, follow it.
//!
//! # Why a peer cannot forge a record
//!
//! Payloads hold frames, bytes chosen by peers, and a reader resynchronising after damage
//! walks through them: a frame can hold bytes laid out as a record. No record this reader
//! accepts: the marker and the checksum both come from the salt, which lives only in the
//! file's header (mode 0600) and in agentd's memory, is never logged (its `Debug` prints no
//! byte of it) nor sent, and is drawn from the operating system's randomness (std's
//! `RandomState` keys, as request ids are; `fastrand`'s generator alone is seeded from the
//! clock and the thread, which a local peer can narrow down). A peer that cannot read the file
//! has to guess the marker (1 in 2^64) and then the checksum (1 in 2^32): CRC-32 is no MAC,
//! but its key is a secret of which a peer sees no output at all, since it sees no record. A
//! record copied from another file (another salt) fails the same way. A peer that knew the
//! marker and not the salt could at most cut its own letter's record in two, losing it.
//!
//! # Work
//!
//! Reading is linear in the file's size, in one pass that holds nothing but the file and the
//! letters: the marker search looks at each byte once (comparing at most a marker's length at
//! each), and checksums are computed over a piece at most twice (as a record, then as a
//! damaged one). No length read from the file makes the reader look at a byte again. The file
//! is bounded by twice `dead_letter_bytes` and read once, at start (128 MiB of 4 KiB letters:
//! about a quarter of a second).
//!
//! # Files this format cannot read
//!
//! - A file in the format before this one (version 1: no header, no salt, records
//!   `[length][crc32 of the payload][payload]`) is recognised by its first 4 bytes, a length no
//!   larger than `MAX_RECORD` (the magic's 4th byte is 0xFF, so a header needs 6 bits of it
//!   damaged to read as one). It is read once with that format's rules, as the agentd that
//!   wrote it would have (reading stops at a length that runs past the end), and rewritten at
//!   once in this format: its letters are kept ([`Found::OldFormat`]). If those rules could not
//!   read it whole (a record skipped, or reading stopped before the end), a copy of it is kept
//!   at `<file>.unreadable` first, so that the rewrite destroys nothing unread.
//! - A file neither format reads (a header whose checksum fails or whose version is unknown, or
//!   bytes that are no dead-letter file) is renamed to `<file>.unreadable` (replacing an
//!   earlier one) and a new file is started ([`Found::Unreadable`]): agentd starts, nothing it
//!   could not read is destroyed, and it never reads that file again.
//! - A file shorter than a header that begins as one holds no letter: counted as torn and
//!   replaced (this writer never leaves one: it creates files by rename).
//!
//! # Writing
//!
//! Letters are appended. The file is rewritten from the letters kept in memory when it grows
//! past its bound (and when letters are taken out), with a new salt, through a temporary file
//! written, synced and renamed over it, so a crash leaves either the old file or the new one,
//! each whole; a new file is created the same way.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use agentbus::control::DeadLetterInfo;
use rkyv::rancor;

use crate::dead_letters::DeadLetter;

/// The file's first 8 bytes. The 4th is 0xFF so that no header with fewer than 6 bits of it
/// damaged starts as a version-1 file, whose first 4 bytes are a length of at most
/// [`MAX_RECORD`] (a 4th byte of 0 to 4).
const MAGIC: [u8; 8] = *b"AGB\xFFDLQ\n";
/// The format written and read; version 1 was the headerless format before it.
const VERSION: u32 = 2;
/// Bytes of salt in the header.
const SALT: usize = 16;
/// Where the salt lies in the header, after the magic and the version.
const SALT_AT: usize = MAGIC.len() + 4;
/// Where the header's checksum lies, after the salt.
const HEADER_CRC_AT: usize = SALT_AT + SALT;
/// The file's header: magic, version, salt, and the CRC-32 of those.
const FILE_HEADER: usize = HEADER_CRC_AT + 4;
/// Bytes of a record's marker (the salt's first bytes).
const MARKER: usize = 8;
/// A record's header: marker, length, checksum.
const RECORD_HEADER: usize = MARKER + 4 + 4;
/// A version-1 record's header: length, checksum.
const OLD_RECORD_HEADER: usize = 8;
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
    /// Records skipped: damaged (their marker, length, checksum or archive does not hold), or
    /// bytes between records that start none.
    pub corrupt: usize,
    /// Bytes dropped at the end: a record torn by a crash (and damaged bytes right before it
    /// that hold no whole record).
    pub torn_bytes: usize,
    /// What kind of file was there.
    pub found: Found,
}

/// What kind of file [`DeadLetterFile::open`] found at its path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No file, or one in this format (a header cut short counts as torn).
    #[default]
    Current,
    /// A file in the format before this one (no header): read with that format's rules, and
    /// rewritten in this one.
    OldFormat {
        /// Whether those rules could not read it whole (a record skipped or a torn end), and a
        /// copy of it was kept at [`DeadLetterFile::set_aside_path`].
        set_aside: bool,
    },
    /// A file neither format reads (its header damaged or of an unknown version, or no
    /// dead-letter file at all), `bytes` long: renamed to [`DeadLetterFile::set_aside_path`],
    /// and a new file started.
    Unreadable {
        /// Its size.
        bytes: u64,
    },
}

/// The file's secret: drawn when the file is created or rewritten, kept in its header; its
/// first bytes are every record's marker, and all of it is in every record's checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Salt([u8; SALT]);

/// Prints no byte of the salt: a log line must not hand a peer what forging a record takes.
impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

impl Salt {
    /// 16 bytes no one outside this process can predict: `fastrand`'s output hashed under
    /// std's `RandomState` keys (drawn from the operating system's randomness).
    fn fresh() -> Salt {
        let mut salt = [0u8; SALT];
        for (i, half) in salt.chunks_exact_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(fastrand::u64(..));
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
        Salt(salt)
    }

    /// What every record starts with.
    fn marker(&self) -> &[u8] {
        &self.0[..MARKER]
    }

    /// A record's checksum: CRC-32 of the salt, the length and the payload.
    fn checksum(&self, len: u32, payload: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.0);
        h.update(&len.to_le_bytes());
        h.update(payload);
        h.finalize()
    }
}

/// The file's header for `salt`.
fn file_header(salt: &Salt) -> [u8; FILE_HEADER] {
    let mut head = [0u8; FILE_HEADER];
    head[..MAGIC.len()].copy_from_slice(&MAGIC);
    head[MAGIC.len()..SALT_AT].copy_from_slice(&VERSION.to_le_bytes());
    head[SALT_AT..HEADER_CRC_AT].copy_from_slice(&salt.0);
    let crc = crc32fast::hash(&head[..HEADER_CRC_AT]);
    head[HEADER_CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    head
}

/// The little-endian `u32` at `at` in `bytes`, if they hold one there.
fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// What a file's first bytes say it is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// Empty: a new file.
    Empty,
    /// The beginning of a header and no more: torn, and holding no letter.
    TornHeader,
    /// This format, with its salt.
    Current(Salt),
    /// The format before this one.
    Old,
    /// Neither.
    Unreadable,
}

/// What the file whose content is `bytes` is.
fn kind(bytes: &[u8]) -> Kind {
    if bytes.is_empty() {
        return Kind::Empty;
    }
    let magic = bytes.len().min(MAGIC.len());
    if bytes[..magic] == MAGIC[..magic] {
        return match bytes.get(..FILE_HEADER) {
            None => Kind::TornHeader,
            Some(head) => header_salt(head).map_or(Kind::Unreadable, Kind::Current),
        };
    }
    match le_u32(bytes, 0) {
        // Too short for a length: a version-1 file torn in its first record header.
        None => Kind::Old,
        Some(len) if len as usize <= MAX_RECORD => Kind::Old,
        Some(_) => Kind::Unreadable,
    }
}

/// The salt in `head`, a file's header, if its version is this format's and its checksum
/// holds.
fn header_salt(head: &[u8]) -> Option<Salt> {
    let crc = le_u32(head, HEADER_CRC_AT)?;
    if le_u32(head, MAGIC.len())? != VERSION || crc32fast::hash(head.get(..HEADER_CRC_AT)?) != crc {
        return None;
    }
    let salt = head.get(SALT_AT..SALT_AT + SALT)?.try_into().ok()?;
    Some(Salt(salt))
}

/// The record for `letter` under `salt`; `None` if it cannot be archived or would be larger
/// than a reader accepts (the letter then stays in memory only).
fn encode(letter: &DeadLetter, salt: &Salt) -> Option<Vec<u8>> {
    let stored = Stored {
        info: letter.info.clone(),
        frame: letter.frame.clone(),
    };
    let payload = rkyv::to_bytes::<rancor::Error>(&stored).ok()?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_RECORD)?;
    let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
    record.extend_from_slice(salt.marker());
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&salt.checksum(len, &payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Some(record)
}

/// The letter archived in `payload`, if the archive holds.
fn decode(payload: &[u8]) -> Option<DeadLetter> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let stored = rkyv::from_bytes::<Stored, rancor::Error>(&aligned).ok()?;
    Some(DeadLetter {
        info: stored.info,
        frame: stored.frame,
    })
}

/// Where the next marker starts at or after `from`, if a whole one does.
fn find_marker(bytes: &[u8], from: usize, marker: &[u8]) -> Option<usize> {
    let first = *marker.first()?;
    let mut at = from;
    loop {
        let found = at + bytes.get(at..)?.iter().position(|&b| b == first)?;
        if bytes.get(found..found + marker.len())? == marker {
            return Some(found);
        }
        at = found + 1;
    }
}

/// The record `piece` starts with, if it starts with a whole one whose marker and checksum
/// hold: its payload, and the bytes it takes.
fn record<'a>(piece: &'a [u8], salt: &Salt) -> Option<(&'a [u8], usize)> {
    if piece.get(..MARKER)? != salt.marker() {
        return None;
    }
    let len = le_u32(piece, MARKER)?;
    let crc = le_u32(piece, MARKER + 4)?;
    if len as usize > MAX_RECORD {
        return None;
    }
    let end = RECORD_HEADER + len as usize;
    let payload = piece.get(RECORD_HEADER..end)?;
    (salt.checksum(len, payload) == crc).then_some((payload, end))
}

/// Whether `tail`, bytes up to a marker or the end of the file that hold no whole record, is
/// a whole record with one field damaged rather than one torn by a crash: its length field
/// counts exactly the bytes there, or its checksum holds over them with that length.
fn whole_but_damaged(tail: &[u8], salt: &Salt) -> bool {
    let Some(len) = tail
        .len()
        .checked_sub(RECORD_HEADER)
        .filter(|&len| len <= MAX_RECORD)
    else {
        return false;
    };
    let len = len as u32; // at most MAX_RECORD
    le_u32(tail, MARKER) == Some(len)
        || le_u32(tail, MARKER + 4) == Some(salt.checksum(len, &tail[RECORD_HEADER..]))
}

/// The letters in `bytes` (a whole file in this format, salted with `salt`), what was
/// skipped, and where the bytes to keep end: after the last whole record, good or with one
/// field damaged. What follows it is the torn end (the end of a crashed append, and damaged
/// pieces right before it that are no whole record), cut so that the file ends in a whole
/// record and reading it again finds nothing torn.
fn read_records(bytes: &[u8], salt: &Salt) -> (Vec<DeadLetter>, Loaded, usize) {
    let mut letters = Vec::new();
    let mut loaded = Loaded::default();
    let mut keep = FILE_HEADER.min(bytes.len());
    // Damaged pieces since `keep` that are no whole record: corrupt if a whole record follows
    // them, the torn end if none does.
    let mut unsure = 0;
    let mut at = keep;
    while at < bytes.len() {
        let end = find_marker(bytes, at + 1, salt.marker()).unwrap_or(bytes.len());
        let mut record_end = at;
        if let Some((payload, taken)) = record(&bytes[at..end], salt) {
            match decode(payload) {
                Some(letter) => letters.push(letter),
                None => loaded.corrupt += 1,
            }
            record_end += taken;
            keep = record_end;
            loaded.corrupt += std::mem::take(&mut unsure);
        }
        if record_end < end {
            if whole_but_damaged(&bytes[record_end..end], salt) {
                keep = end;
                loaded.corrupt += std::mem::take(&mut unsure) + 1;
            } else {
                unsure += 1;
            }
        }
        at = end;
    }
    loaded.letters = letters.len();
    loaded.torn_bytes = bytes.len() - keep;
    (letters, loaded, keep)
}

/// The letters in `bytes`, a file in the format before this one, read with that format's
/// rules: records one after the other, reading stopping at a length that runs past the end.
fn read_old_records(bytes: &[u8]) -> (Vec<DeadLetter>, Loaded) {
    let mut letters = Vec::new();
    let mut loaded = Loaded::default();
    let mut at = 0;
    while let (Some(len), Some(crc)) = (le_u32(bytes, at), le_u32(bytes, at + 4)) {
        let start = at + OLD_RECORD_HEADER;
        let Some(payload) = bytes
            .get(start..start + len as usize)
            .filter(|_| len as usize <= MAX_RECORD)
        else {
            break; // torn (or a garbage length): nothing after it can be trusted
        };
        at = start + len as usize;
        match (crc32fast::hash(payload) == crc)
            .then(|| decode(payload))
            .flatten()
        {
            Some(letter) => letters.push(letter),
            None => loaded.corrupt += 1,
        }
    }
    loaded.letters = letters.len();
    loaded.torn_bytes = bytes.len() - at;
    (letters, loaded)
}

/// The dead-letter file, open for appending.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
    salt: Salt,
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

/// Writes `bytes` to `path` (mode 0600, replacing what is there) and syncs them: a copy kept
/// before the file it copies is replaced.
fn keep_copy(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(failed("creating a copy of an old file", path))?;
    f.write_all(bytes)
        .map_err(failed("writing a copy of an old file", path))?;
    f.sync_data()
        .map_err(failed("syncing a copy of an old file", path))
}

/// Writes a file holding `letters` under `salt` to `path`, through a temporary file synced
/// and renamed over it; returns it, open at its end, and its size.
fn write_whole<'a>(
    path: &Path,
    salt: &Salt,
    letters: impl Iterator<Item = &'a DeadLetter>,
) -> Result<(File, u64), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("dlq.tmp");
    let mut out = file_header(salt).to_vec();
    for letter in letters {
        if let Some(record) = encode(letter, salt) {
            out.extend_from_slice(&record);
        }
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(failed("creating the rewrite", &tmp))?;
    f.write_all(&out)
        .map_err(failed("writing the rewrite", &tmp))?;
    f.sync_data().map_err(failed("syncing the rewrite", &tmp))?;
    std::fs::rename(&tmp, path).map_err(failed("renaming the rewrite", path))?;
    // The handle written is the file's now, positioned at its end: appends follow.
    Ok((f, out.len() as u64))
}

impl DeadLetterFile {
    /// Opens the file at `path` (creating it, mode 0600), reads its letters back, and cuts a
    /// torn last record off; the file is rewritten once it passes `max_bytes`. A file in the
    /// format before this one is read and rewritten in this one; a file neither reads is set
    /// aside at [`DeadLetterFile::set_aside_path`] and a new one started: `Loaded::found` says
    /// which.
    pub fn open(
        path: &Path,
        max_bytes: u64,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        let max_bytes = max_bytes.max(1 << 16);
        let Some((file, bytes)) = Self::read(path)? else {
            return Self::start(path, max_bytes, Vec::new(), Loaded::default());
        };
        match kind(&bytes) {
            Kind::Current(salt) => Self::resume(path, file, &bytes, salt, max_bytes),
            Kind::Empty => Self::start(path, max_bytes, Vec::new(), Loaded::default()),
            Kind::TornHeader => {
                let loaded = Loaded {
                    torn_bytes: bytes.len(),
                    ..Loaded::default()
                };
                Self::start(path, max_bytes, Vec::new(), loaded)
            }
            Kind::Old => Self::convert(path, &bytes, max_bytes),
            Kind::Unreadable => {
                drop(file);
                Self::set_aside(path, bytes.len() as u64, max_bytes)
            }
        }
    }

    /// Where [`DeadLetterFile::open`] moves a file at `path` that it cannot read, or keeps a
    /// copy of a file in the old format that it could not read whole: `<path>.unreadable`.
    pub fn set_aside_path(path: &Path) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(".unreadable");
        PathBuf::from(name)
    }

    /// The file at `path`, open for appending, and what it holds; `None` if there is none.
    fn read(path: &Path) -> Result<Option<(File, Vec<u8>)>, FileError> {
        let mut file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(failed("opening", path)(e)),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(failed("reading", path))?;
        Ok(Some((file, bytes)))
    }

    /// Goes on with `file` at `path`, holding `bytes` in this format under `salt`: reads its
    /// letters and cuts its torn end off.
    fn resume(
        path: &Path,
        file: File,
        bytes: &[u8],
        salt: Salt,
        max_bytes: u64,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        let (letters, loaded, keep) = read_records(bytes, &salt);
        if keep < bytes.len() {
            file.set_len(keep as u64)
                .map_err(failed("cutting a torn record", path))?;
        }
        let file = DeadLetterFile {
            path: path.into(),
            file,
            salt,
            bytes: keep as u64,
            max_bytes,
        };
        Ok((file, letters, loaded))
    }

    /// Reads `bytes`, the file at `path` in the format before this one, and rewrites it in
    /// this one; if that format's rules could not read it whole, a copy of it is kept at
    /// [`DeadLetterFile::set_aside_path`] first.
    fn convert(
        path: &Path,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        let (letters, mut loaded) = read_old_records(bytes);
        let whole = loaded.corrupt == 0 && loaded.torn_bytes == 0;
        if !whole {
            keep_copy(&Self::set_aside_path(path), bytes)?;
        }
        loaded.found = Found::OldFormat { set_aside: !whole };
        Self::start(path, max_bytes, letters, loaded)
    }

    /// Moves the file at `path` (`bytes` long), which no format reads, to
    /// [`DeadLetterFile::set_aside_path`], and starts a new one.
    fn set_aside(
        path: &Path,
        bytes: u64,
        max_bytes: u64,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        let aside = Self::set_aside_path(path);
        std::fs::rename(path, &aside)
            .map_err(failed("setting an unreadable file aside", &aside))?;
        let loaded = Loaded {
            found: Found::Unreadable { bytes },
            ..Loaded::default()
        };
        Self::start(path, max_bytes, Vec::new(), loaded)
    }

    /// A new file at `path` holding `letters` (and returning them, with `loaded`).
    fn start(
        path: &Path,
        max_bytes: u64,
        letters: Vec<DeadLetter>,
        loaded: Loaded,
    ) -> Result<(DeadLetterFile, Vec<DeadLetter>, Loaded), FileError> {
        let salt = Salt::fresh();
        let (file, bytes) = write_whole(path, &salt, letters.iter())?;
        let file = DeadLetterFile {
            path: path.into(),
            file,
            salt,
            bytes,
            max_bytes,
        };
        Ok((file, letters, loaded))
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
            if let Some(record) = encode(letter, &self.salt) {
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

    /// Replaces the file's content with `letters`, under a new salt.
    pub fn rewrite<'a>(
        &mut self,
        letters: impl Iterator<Item = &'a DeadLetter>,
    ) -> Result<(), FileError> {
        let salt = Salt::fresh();
        let (file, bytes) = write_whole(&self.path, &salt, letters)?;
        self.file = file;
        self.salt = salt;
        self.bytes = bytes;
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

    fn sequences(letters: &[DeadLetter]) -> Vec<u64> {
        letters.iter().map(|l| l.info.sequence).collect()
    }

    /// Writes `letters` to a new file at `path`; returns its bytes, its salt, and where each
    /// record starts and ends.
    fn file_with(path: &Path, letters: &[DeadLetter]) -> (Vec<u8>, Salt, Vec<(usize, usize)>) {
        let (mut f, none, _) = DeadLetterFile::open(path, 1 << 20).unwrap();
        assert!(none.is_empty());
        f.append(letters.iter(), letters.iter()).unwrap();
        let salt = f.salt;
        drop(f);
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(kind(&bytes), Kind::Current(salt));
        let mut records = Vec::new();
        let mut at = FILE_HEADER;
        while at < bytes.len() {
            let end = at + RECORD_HEADER + le_u32(&bytes, at + MARKER).unwrap() as usize;
            records.push((at, end));
            at = end;
        }
        assert_eq!(records.len(), letters.len());
        (bytes, salt, records)
    }

    /// The version-1 record for `letter`: `[length][crc32 of the payload][payload]`.
    fn encode_old(letter: &DeadLetter) -> Vec<u8> {
        let stored = Stored {
            info: letter.info.clone(),
            frame: letter.frame.clone(),
        };
        let payload = rkyv::to_bytes::<rancor::Error>(&stored).unwrap();
        let mut record = (payload.len() as u32).to_le_bytes().to_vec();
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        record
    }

    #[test]
    fn letters_survive_a_reopen() {
        let dir = scratch("reopen");
        let path = dir.join("bus.dlq");
        let (mut f, none, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert!(none.is_empty());
        assert_eq!(loaded, Loaded::default());
        assert_eq!(f.bytes(), FILE_HEADER as u64, "a new file is its header");
        let letters: Vec<_> = (0..5).map(|s| letter(s, 100)).collect();
        f.append(letters.iter(), letters.iter()).unwrap();
        drop(f);
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                letters: 5,
                corrupt: 0,
                torn_bytes: 0,
                found: Found::Current,
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
        let letters: Vec<_> = (0..3).map(|s| letter(s, 64)).collect();
        let (_, salt, _) = file_with(&path, &letters);
        let whole = std::fs::metadata(&path).unwrap().len();
        // A crash in the middle of the fourth record's write.
        let fourth = encode(&letter(3, 64), &salt).unwrap();
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(&fourth[..fourth.len() / 2]).unwrap();
        drop(raw);
        let (mut f, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!((loaded.torn_bytes, loaded.corrupt), (fourth.len() / 2, 0));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole, "cut back");
        // Appending after it works and reads back.
        let more = [letter(9, 10)];
        f.append(more.iter(), more.iter()).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!((back.len(), loaded.torn_bytes), (4, 0));
        assert_eq!(back[3].info.sequence, 9);
        // Torn anywhere in the last record, its marker and header included: the same.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&fourth);
        let full = bytes.len();
        for cut in 1..fourth.len() {
            let (back, loaded, keep) = read_records(&bytes[..full - cut], &salt);
            assert_eq!(sequences(&back), vec![0, 1, 2, 9], "cut {cut}");
            assert_eq!(
                (loaded.corrupt, loaded.torn_bytes, keep),
                (0, fourth.len() - cut, full - fourth.len()),
                "cut {cut}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every bit of a record, its marker and length included, flipped in turn: that record is
    /// skipped and counted, every other one is read, and nothing is taken for a torn end.
    #[test]
    fn any_damaged_bit_costs_its_record_alone() {
        let dir = scratch("any-bit");
        let path = dir.join("bus.dlq");
        let letters: Vec<_> = (0..5).map(|s| letter(s, 24)).collect();
        let (bytes, salt, records) = file_with(&path, &letters);
        for r in [0, 2, 4] {
            let (start, end) = records[r];
            for bit in 0..(end - start) * 8 {
                let mut damaged = bytes.clone();
                damaged[start + bit / 8] ^= 1 << (bit % 8);
                let (back, loaded, keep) = read_records(&damaged, &salt);
                let mut expected: Vec<u64> = (0..5).collect();
                expected.remove(r);
                assert_eq!(sequences(&back), expected, "record {r}, bit {bit}");
                assert_eq!(
                    (loaded.corrupt, loaded.torn_bytes, keep),
                    (1, 0, damaged.len()),
                    "record {r}, bit {bit}"
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupted_record_is_skipped_and_the_rest_kept() {
        let dir = scratch("corrupt");
        let path = dir.join("bus.dlq");
        let letters: Vec<_> = (0..3).map(|s| letter(s, 64)).collect();
        let (mut bytes, salt, records) = file_with(&path, &letters);
        bytes[records[1].0 + RECORD_HEADER + 5] ^= 0xFF; // inside the second record's payload
        std::fs::write(&path, &bytes).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                letters: 2,
                corrupt: 1,
                torn_bytes: 0,
                found: Found::Current,
            }
        );
        assert_eq!(sequences(&back), vec![0, 2]);
        // Random garbage after the header, with the marker strewn in it or not, never panics
        // and never yields a letter it did not write.
        let head = file_header(&salt);
        for seed in 0..400u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut junk = head.to_vec();
            for _ in 0..rng.usize(0..512) {
                if seed % 2 == 1 && rng.u8(..) < 8 {
                    junk.extend_from_slice(salt.marker());
                }
                junk.push(rng.u8(..));
            }
            let (found, loaded, keep) = read_records(&junk, &salt);
            assert!(keep <= junk.len() && keep >= FILE_HEADER);
            assert_eq!(loaded.torn_bytes, junk.len() - keep);
            assert!(found.is_empty(), "seed {seed}: a letter read out of junk");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Frames carrying bytes laid out as records, read through after damage forces a resync:
    /// none is taken for a letter, even one with the right marker, and the letters around
    /// them are all read.
    #[test]
    fn a_forged_record_in_a_frame_is_never_read() {
        let dir = scratch("forged");
        let forged = letter(666, 8);
        // The best a peer can do without the salt: a real record from another file, and a
        // version-1 record.
        let (elsewhere, ..) = file_with(&dir.join("other.dlq"), std::slice::from_ref(&forged));
        let mut carried = elsewhere[FILE_HEADER..].to_vec();
        carried.extend_from_slice(&encode_old(&forged));
        let path = dir.join("bus.dlq");
        for marker_known in [false, true] {
            let (f, ..) = DeadLetterFile::open(&path, 1 << 20).unwrap();
            let salt = f.salt;
            let mut frame = carried.clone();
            if marker_known {
                // The marker guessed right, the checksum under a wrong salt.
                let wrong = Salt([7; SALT]);
                let mut record = encode(&forged, &wrong).unwrap();
                record[..MARKER].copy_from_slice(salt.marker());
                frame.extend_from_slice(&record);
            }
            let mut letters: Vec<_> = (0..4).map(|s| letter(s, 16)).collect();
            letters[1].frame = frame;
            let mut f = f;
            f.append(letters.iter(), letters.iter()).unwrap();
            drop(f);
            let bytes = std::fs::read(&path).unwrap();
            let second = FILE_HEADER + encode(&letters[0], &salt).unwrap().len();
            // Damage the carrier's length: the reader walks through its frame.
            let mut damaged = bytes.clone();
            damaged[second + MARKER + 3] ^= 0x04;
            let (back, loaded, _) = read_records(&damaged, &salt);
            assert_eq!(
                sequences(&back),
                vec![0, 2, 3],
                "marker known: {marker_known}"
            );
            assert!(loaded.corrupt >= 1);
            // Undamaged, the carrier is read whole unless its frame holds the marker itself
            // (which takes reading the file): then it alone is lost.
            let (back, ..) = read_records(&bytes, &salt);
            let expected = if marker_known {
                vec![0, 2, 3]
            } else {
                vec![0, 1, 2, 3]
            };
            assert_eq!(sequences(&back), expected);
            std::fs::remove_file(&path).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_old_format_file_is_read_and_rewritten_in_the_new_one() {
        let dir = scratch("old");
        let path = dir.join("bus.dlq");
        let aside = DeadLetterFile::set_aside_path(&path);
        let letters: Vec<_> = (0..3).map(|s| letter(s, 40)).collect();
        let old: Vec<u8> = letters.iter().flat_map(encode_old).collect();
        std::fs::write(&path, &old).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(sequences(&back), vec![0, 1, 2]);
        assert_eq!(
            loaded,
            Loaded {
                letters: 3,
                corrupt: 0,
                torn_bytes: 0,
                found: Found::OldFormat { set_aside: false },
            }
        );
        assert!(!aside.exists(), "read whole: no copy kept");
        let now = std::fs::read(&path).unwrap();
        assert!(matches!(kind(&now), Kind::Current(_)), "rewritten");
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(sequences(&back), vec![0, 1, 2]);
        assert_eq!(loaded.found, Found::Current);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_old_format_file_not_read_whole_is_kept_aside_before_the_rewrite() {
        let dir = scratch("old-damaged");
        let path = dir.join("bus.dlq");
        let mut old: Vec<u8> = (0..3).flat_map(|s| encode_old(&letter(s, 40))).collect();
        // A torn fourth record, as a crash left it.
        old.extend_from_slice(&encode_old(&letter(3, 40))[..20]);
        std::fs::write(&path, &old).unwrap();
        let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(sequences(&back), vec![0, 1, 2]);
        assert_eq!(
            loaded,
            Loaded {
                letters: 3,
                corrupt: 0,
                torn_bytes: 20,
                found: Found::OldFormat { set_aside: true },
            }
        );
        let aside = DeadLetterFile::set_aside_path(&path);
        assert_eq!(std::fs::read(&aside).unwrap(), old, "the old bytes kept");
        let (_, back, _) = DeadLetterFile::open(&path, 1 << 20).unwrap();
        assert_eq!(sequences(&back), vec![0, 1, 2]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unreadable_file_is_set_aside_and_a_new_one_started() {
        let dir = scratch("unreadable");
        let path = dir.join("bus.dlq");
        let (good, ..) = file_with(&path, &[letter(0, 10)]);
        let mut salt_damaged = good.clone();
        salt_damaged[20] ^= 0x10;
        let mut future = good.clone();
        future[8] = 3; // version 3, its checksum right
        let crc = crc32fast::hash(&future[..FILE_HEADER - 4]);
        future[FILE_HEADER - 4..FILE_HEADER].copy_from_slice(&crc.to_le_bytes());
        let mut magic_damaged = good.clone();
        magic_damaged[3] ^= 0x80;
        let not_ours = b"[dead letters]\nnone = true\n".to_vec();
        for bytes in [salt_damaged, future, magic_damaged, not_ours] {
            std::fs::write(&path, &bytes).unwrap();
            let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
            assert!(back.is_empty());
            assert_eq!(
                loaded,
                Loaded {
                    found: Found::Unreadable {
                        bytes: bytes.len() as u64
                    },
                    ..Loaded::default()
                }
            );
            let aside = DeadLetterFile::set_aside_path(&path);
            assert_eq!(aside, dir.join("bus.dlq.unreadable"));
            assert_eq!(std::fs::read(&aside).unwrap(), bytes, "kept as it was");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_HEADER as u64);
            let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
            assert!(back.is_empty());
            assert_eq!(loaded, Loaded::default());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_header_cut_short_is_torn_and_replaced() {
        let dir = scratch("torn-header");
        let path = dir.join("bus.dlq");
        let head = file_header(&Salt::fresh());
        for n in 1..FILE_HEADER {
            std::fs::write(&path, &head[..n]).unwrap();
            let (_, back, loaded) = DeadLetterFile::open(&path, 1 << 20).unwrap();
            assert!(back.is_empty());
            assert_eq!(
                loaded,
                Loaded {
                    torn_bytes: n,
                    ..Loaded::default()
                },
                "{n} bytes"
            );
            assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_HEADER as u64);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn each_file_and_rewrite_has_its_own_salt_and_none_is_printed() {
        let dir = scratch("salt");
        let (mut a, ..) = DeadLetterFile::open(&dir.join("a.dlq"), 1 << 20).unwrap();
        let (b, ..) = DeadLetterFile::open(&dir.join("b.dlq"), 1 << 20).unwrap();
        assert_ne!(a.salt, b.salt);
        let before = a.salt;
        a.rewrite(std::iter::once(&letter(1, 1))).unwrap();
        assert_ne!(a.salt, before);
        assert_eq!(
            kind(&std::fs::read(dir.join("a.dlq")).unwrap()),
            Kind::Current(a.salt)
        );
        let printed = format!("{a:?}");
        assert!(printed.contains("Salt(..)"), "{printed}");
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
