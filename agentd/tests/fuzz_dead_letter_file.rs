//! Fuzzing the dead-letter file's reader (`DeadLetterFile::open`): a file of arbitrary bytes,
//! and files the real writer wrote then damaged (bits flipped, cut short, garbage appended,
//! records duplicated), never panic. Reading returns every record whose checksum and archive
//! hold, counts the ones skipped, cuts a torn end off, and never returns a damaged record as a
//! letter. A damaged length is the exception the format has: the checksum does not cover it,
//! so reading stops there as at a torn write, and only the records before it are promised.
//!
//! Short run: `cargo test -p agentd --test fuzz_dead_letter_file`; long run:
//! `FUZZ_CASES=20000 cargo test -p agentd --release --test fuzz_dead_letter_file`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use agentbus::control::DeadLetterInfo;
use agentbus::{MessageType, RouteKind};
use agentd::dead_letter_file::{DeadLetterFile, Loaded};
use agentd::dead_letters::DeadLetter;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Bytes in front of each record's payload: its length and its CRC-32 (the file's format).
const RECORD_HEADER: usize = 8;
/// Bound passed to `open`: larger than any file made here, so nothing is rewritten.
const MAX_BYTES: u64 = 1 << 24;

/// `default` cases with a fixed seed (reproducible), or `FUZZ_CASES` (or `PROPTEST_CASES`)
/// with a random seed or `FUZZ_SEED`; no regression files.
fn config(default: u32) -> Config {
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let long = from_env("FUZZ_CASES").or_else(|| from_env("PROPTEST_CASES"));
    let seed = match (long, from_env("FUZZ_SEED")) {
        (_, Some(seed)) => RngSeed::Fixed(seed),
        (Some(_), None) => RngSeed::Random,
        (None, None) => RngSeed::Fixed(0xD1_F11E),
    };
    Config {
        cases: long.map_or(default, |n| n.min(u32::MAX as u64) as u32),
        failure_persistence: None,
        rng_seed: seed,
        ..Config::default()
    }
}

/// A directory of its own under the system's temporary directory, removed when dropped, even
/// when the case panics: the fuzz leaves no files behind.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agentd-fuzz-dlq-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Scratch(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("bus.dlq")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn letter() -> impl Strategy<Value = DeadLetter> {
    (
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            prop::option::of(any::<u32>()),
        ),
        (
            prop::sample::select(MessageType::ALL),
            prop::sample::select(RouteKind::ALL),
        ),
        ("\\PC{0,24}", any::<u64>(), any::<u32>()),
        vec(any::<u8>(), 0..160),
    )
        .prop_map(
            |(
                (sequence, message_id, source_slot, destination_slot),
                (message_type, route),
                (reason, at_ns, retries),
                frame,
            )| {
                DeadLetter {
                    info: DeadLetterInfo {
                        sequence,
                        message_id,
                        message_type,
                        route,
                        source_slot,
                        destination_slot,
                        reason,
                        at_ns,
                        frame_len: frame.len() as u32,
                        retries,
                    },
                    frame,
                }
            },
        )
}

/// A letter as compared: its listing and its frame.
type Key = (DeadLetterInfo, Vec<u8>);

fn key(l: &DeadLetter) -> Key {
    (l.info.clone(), l.frame.clone())
}

/// Writes `letters` through the real writer; returns the file's bytes and where each record
/// starts and ends.
fn written(path: &Path, letters: &[DeadLetter]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let (mut file, none, _) = DeadLetterFile::open(path, MAX_BYTES).expect("a new file");
    assert!(none.is_empty());
    file.append(letters.iter(), letters.iter())
        .expect("appended");
    drop(file);
    let bytes = std::fs::read(path).expect("the file reads");
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        records.push((at, at + RECORD_HEADER + len));
        at += RECORD_HEADER + len;
    }
    assert_eq!(records.len(), letters.len(), "one record per letter");
    (bytes, records)
}

/// Opens `bytes` as a dead-letter file; checks what holds whatever they are: the counts
/// agree, and the file is cut to its whole records, so that opening it again finds the same
/// letters and nothing torn.
fn reopened(path: &Path, bytes: &[u8]) -> Result<(Vec<Key>, Loaded), TestCaseError> {
    std::fs::write(path, bytes).expect("the file writes");
    let (file, letters, loaded) =
        DeadLetterFile::open(path, MAX_BYTES).map_err(|e| TestCaseError::fail(e.to_string()))?;
    drop(file);
    prop_assert_eq!(loaded.letters, letters.len());
    prop_assert!(loaded.torn_bytes <= bytes.len());
    let kept = std::fs::metadata(path).expect("the file is there").len() as usize;
    prop_assert_eq!(
        kept,
        bytes.len() - loaded.torn_bytes,
        "a torn end is cut off"
    );
    let (_, again, loaded_again) =
        DeadLetterFile::open(path, MAX_BYTES).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(loaded_again.torn_bytes, 0);
    prop_assert_eq!(loaded_again.letters, loaded.letters);
    prop_assert_eq!(loaded_again.corrupt, loaded.corrupt);
    let letters: Vec<Key> = letters.iter().map(key).collect();
    prop_assert_eq!(&again.iter().map(key).collect::<Vec<_>>(), &letters);
    Ok((letters, loaded))
}

/// Whether `got` is `all` with some left out, in order.
fn is_subsequence(got: &[Key], all: &[Key]) -> bool {
    let mut rest = all.iter();
    got.iter().all(|g| rest.any(|a| a == g))
}

/// How a valid file is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// 1 to 3 bits flipped in one record's checksum or payload (CRC-32 catches them all).
    FlipInRecord(prop::sample::Index, Vec<(prop::sample::Index, u8)>),
    /// A bit flipped in one record's length.
    FlipLength(prop::sample::Index, u8),
    /// Bits flipped anywhere.
    FlipAnywhere(Vec<(prop::sample::Index, u8)>),
    /// Cut short anywhere (a crash in the middle of a write).
    Truncate(prop::sample::Index),
    /// Garbage after the last record.
    Append(Vec<u8>),
    /// One record's bytes written again at a record boundary.
    Duplicate(prop::sample::Index, prop::sample::Index),
}

fn damage() -> impl Strategy<Value = Damage> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        (index(), vec((index(), 0u8..8), 1..=3)).prop_map(|(r, f)| Damage::FlipInRecord(r, f)),
        (index(), 0u8..32).prop_map(|(r, bit)| Damage::FlipLength(r, bit)),
        vec((index(), 0u8..8), 1..8).prop_map(Damage::FlipAnywhere),
        index().prop_map(Damage::Truncate),
        vec(any::<u8>(), 1..64).prop_map(Damage::Append),
        (index(), index()).prop_map(|(r, at)| Damage::Duplicate(r, at)),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// A file of any bytes: never a panic, and no letter read out of junk.
    #[test]
    fn arbitrary_files_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..512),
            // Plausible record lengths in front of junk, so that reading gets past them.
            (0u32..64, vec(any::<u8>(), 0..256)).prop_map(|(len, mut b)| {
                let mut out = len.to_le_bytes().to_vec();
                out.append(&mut b);
                out
            }),
        ],
    ) {
        let scratch = Scratch::new();
        let (letters, _) = reopened(&scratch.file(), &bytes)?;
        prop_assert!(letters.is_empty(), "a letter read out of junk: {:?}", letters);
    }

    /// A file the writer wrote, damaged: whole records are read back, damaged ones skipped
    /// and counted, a torn end cut, and no damaged record ever comes back as a letter.
    #[test]
    fn damaged_files_keep_their_whole_records(
        letters in vec(letter(), 1..6),
        damage in damage(),
    ) {
        let scratch = Scratch::new();
        let path = scratch.file();
        let (mut bytes, records) = written(&path, &letters);
        let all: Vec<Key> = letters.iter().map(key).collect();
        let (got, loaded) = match &damage {
            Damage::FlipInRecord(r, flips) => {
                let r = r.index(records.len());
                let (start, end) = records[r];
                // Past the length: the checksum and the payload.
                let span = end - start - 4;
                for (i, bit) in flips {
                    bytes[start + 4 + i.index(span)] ^= 1 << bit;
                }
                let (got, loaded) = reopened(&path, &bytes)?;
                // Flips that cancel out (the same bit twice) leave the record whole.
                let mut net = std::collections::BTreeMap::new();
                for (i, bit) in flips {
                    *net.entry((i.index(span), *bit)).or_insert(0u8) ^= 1;
                }
                let mut expected = all.clone();
                if net.values().any(|&n| n == 1) {
                    expected.remove(r);
                    prop_assert_eq!(loaded.corrupt, 1);
                } else {
                    prop_assert_eq!(loaded.corrupt, 0);
                }
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(loaded.torn_bytes, 0);
                (got, loaded)
            }
            Damage::FlipLength(r, bit) => {
                let r = r.index(records.len());
                bytes[records[r].0 + (*bit as usize) / 8] ^= 1 << (bit % 8);
                let (got, loaded) = reopened(&path, &bytes)?;
                // Every record before it is read; what follows is not guaranteed (a length is
                // not covered by the checksum: reading goes on from where it points, or stops
                // there as at a torn write).
                prop_assert!(got.len() >= r, "{} of the {} records before it", got.len(), r);
                prop_assert_eq!(&got[..r], &all[..r]);
                (got, loaded)
            }
            Damage::FlipAnywhere(flips) => {
                for (i, bit) in flips {
                    let i = i.index(bytes.len());
                    bytes[i] ^= 1 << bit;
                }
                reopened(&path, &bytes)?
            }
            Damage::Truncate(at) => {
                let at = at.index(bytes.len());
                bytes.truncate(at);
                let (got, loaded) = reopened(&path, &bytes)?;
                let whole = records.iter().take_while(|r| r.1 <= at).count();
                let boundary = records[..whole].last().map_or(0, |r| r.1);
                prop_assert_eq!(&got, &all[..whole].to_vec());
                prop_assert_eq!(loaded.corrupt, 0);
                prop_assert_eq!(loaded.torn_bytes, at - boundary);
                (got, loaded)
            }
            Damage::Append(garbage) => {
                bytes.extend_from_slice(garbage);
                let (got, loaded) = reopened(&path, &bytes)?;
                prop_assert_eq!(&got, &all);
                (got, loaded)
            }
            Damage::Duplicate(r, at) => {
                let r = r.index(records.len());
                let at = at.index(records.len() + 1);
                let (start, end) = records[r];
                let copy = bytes[start..end].to_vec();
                let offset = records.get(at).map_or(bytes.len(), |b| b.0);
                bytes.splice(offset..offset, copy);
                let (got, loaded) = reopened(&path, &bytes)?;
                let mut expected = all.clone();
                expected.insert(at, all[r].clone());
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(loaded, Loaded { letters: letters.len() + 1, corrupt: 0, torn_bytes: 0 });
                (got, loaded)
            }
        };
        // Whatever the damage: only letters that were written come back, in their order.
        prop_assert!(is_subsequence(&got, &all) || matches!(damage, Damage::Duplicate(..)),
            "a letter that was never written came back: {:?}", loaded);
    }
}
