//! Fuzzing the dead-letter file's reader (`DeadLetterFile::open`): a file of arbitrary bytes,
//! and files the real writer wrote then damaged (bits flipped, cut short, garbage appended,
//! records duplicated), never panic. Reading returns every record whose marker, checksum and
//! archive hold, counts the ones skipped, cuts a torn end off, and never returns a damaged
//! record as a letter. A damaged record costs that record alone, whichever of its bytes is
//! damaged, its length included: every record after it is read back too. A record laid out in
//! a frame's bytes (a peer's) is never read as a letter, even when damage makes the reader
//! walk through that frame looking for the next record.
//!
//! Short run: `cargo test -p agentd --test fuzz_dead_letter_file`; long run:
//! `FUZZ_CASES=20000 cargo test -p agentd --release --test fuzz_dead_letter_file`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use agentbus::control::DeadLetterInfo;
use agentbus::{MessageType, RouteKind};
use agentd::dead_letter_file::{DeadLetterFile, Found, Loaded};
use agentd::dead_letters::DeadLetter;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// The file's header: magic, version, salt, CRC-32 (the file's format).
const FILE_HEADER: usize = 32;
/// Where the salt lies in the header.
const SALT: std::ops::Range<usize> = 12..28;
/// Bytes in front of each record's payload: its marker, its length and its CRC-32.
const RECORD_HEADER: usize = 16;
/// Where a record's length lies in its header.
const LENGTH: std::ops::Range<usize> = 8..12;
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

/// The `u32` at `at` in `bytes`.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Where each record of the whole, undamaged file `bytes` starts and ends.
fn records_of(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut records = Vec::new();
    let mut at = FILE_HEADER;
    while at < bytes.len() {
        let end = at + RECORD_HEADER + le_u32(bytes, at + LENGTH.start) as usize;
        records.push((at, end));
        at = end;
    }
    records
}

/// Writes `letters` through the real writer; returns the file's bytes and where each record
/// starts and ends.
fn written(path: &Path, letters: &[DeadLetter]) -> (Vec<u8>, Vec<(usize, usize)>) {
    let (file, none, _) = DeadLetterFile::open(path, MAX_BYTES).expect("a new file");
    assert!(none.is_empty());
    appended(file, path, letters)
}

/// Appends `letters` to `file` (new, at `path`); returns the file's bytes and where each
/// record starts and ends.
fn appended(
    mut file: DeadLetterFile,
    path: &Path,
    letters: &[DeadLetter],
) -> (Vec<u8>, Vec<(usize, usize)>) {
    file.append(letters.iter(), letters.iter())
        .expect("appended");
    drop(file);
    let bytes = std::fs::read(path).expect("the file reads");
    let records = records_of(&bytes);
    assert_eq!(records.len(), letters.len(), "one record per letter");
    (bytes, records)
}

/// Opens `bytes` as a dead-letter file; checks what holds whatever they are: the counts
/// agree; a file in this format is cut to its whole records and nothing else changed, one in
/// the old format rewritten, one neither reads set aside as it was and replaced; and opening it
/// again finds the same letters, nothing torn, and the file in this format.
fn reopened(path: &Path, bytes: &[u8]) -> Result<(Vec<Key>, Loaded), TestCaseError> {
    std::fs::write(path, bytes).expect("the file writes");
    let (file, letters, loaded) =
        DeadLetterFile::open(path, MAX_BYTES).map_err(|e| TestCaseError::fail(e.to_string()))?;
    drop(file);
    prop_assert_eq!(loaded.letters, letters.len());
    prop_assert!(loaded.torn_bytes <= bytes.len());
    let now = std::fs::read(path).expect("the file is there");
    match loaded.found {
        Found::Current if bytes.len() < FILE_HEADER => {
            prop_assert_eq!(loaded.torn_bytes, bytes.len(), "a header cut short is torn");
            prop_assert_eq!(now.len(), FILE_HEADER, "and replaced by a new one");
        }
        Found::Current => prop_assert_eq!(
            &now[..],
            &bytes[..bytes.len() - loaded.torn_bytes],
            "a torn end is cut off, and nothing else changed"
        ),
        Found::OldFormat { set_aside } => {
            prop_assert_eq!(&now[..3], b"AGB", "rewritten");
            let whole = loaded.corrupt == 0 && loaded.torn_bytes == 0;
            prop_assert_eq!(set_aside, !whole);
            let aside = DeadLetterFile::set_aside_path(path);
            if set_aside {
                prop_assert_eq!(&std::fs::read(&aside).expect("a copy")[..], bytes);
                std::fs::remove_file(aside).expect("removed");
            } else {
                prop_assert!(!aside.exists(), "read whole: no copy kept");
            }
        }
        Found::Unreadable { bytes: n } => {
            prop_assert_eq!(n, bytes.len() as u64);
            prop_assert!(letters.is_empty());
            let aside = DeadLetterFile::set_aside_path(path);
            prop_assert_eq!(&std::fs::read(&aside).expect("set aside")[..], bytes);
            std::fs::remove_file(aside).expect("removed");
            prop_assert_eq!(now.len(), FILE_HEADER, "a new file started");
        }
    }
    let (_, again, loaded_again) =
        DeadLetterFile::open(path, MAX_BYTES).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(loaded_again.found, Found::Current);
    prop_assert_eq!(loaded_again.torn_bytes, 0);
    prop_assert_eq!(loaded_again.letters, loaded.letters);
    if loaded.found == Found::Current {
        prop_assert_eq!(loaded_again.corrupt, loaded.corrupt);
    } else {
        prop_assert_eq!(loaded_again.corrupt, 0, "a rewrite holds only letters");
    }
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
    /// 1 to 3 bits flipped in one record's marker, checksum or payload (all but its length).
    FlipInRecord(prop::sample::Index, Vec<(prop::sample::Index, u8)>),
    /// A bit flipped in one record's length.
    FlipLength(prop::sample::Index, u8),
    /// Bits flipped anywhere, the file's header included.
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

/// Flips `flips` (byte, bit) in `bytes`; returns the bytes whose value changed (a bit flipped
/// twice is as if never flipped).
fn flip(bytes: &mut [u8], flips: impl IntoIterator<Item = (usize, u8)>) -> Vec<usize> {
    let before = bytes.to_vec();
    for (at, bit) in flips {
        bytes[at] ^= 1 << bit;
    }
    (0..bytes.len())
        .filter(|&i| bytes[i] != before[i])
        .collect()
}

/// `all` without the letters at `gone`.
fn without(all: &[Key], gone: &std::collections::BTreeSet<usize>) -> Vec<Key> {
    all.iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, k)| k.clone())
        .collect()
}

/// The records `changed` bytes fall in, and whether one is in the file's header.
fn hit(changed: &[usize], records: &[(usize, usize)]) -> (std::collections::BTreeSet<usize>, bool) {
    let records_hit = changed
        .iter()
        .filter_map(|&i| {
            records
                .iter()
                .position(|&(start, end)| (start..end).contains(&i))
        })
        .collect();
    (records_hit, changed.iter().any(|&i| i < FILE_HEADER))
}

/// The header of a new file at `path`, as the real writer makes it.
fn new_header(path: &Path) -> Vec<u8> {
    drop(DeadLetterFile::open(path, MAX_BYTES).expect("a new file"));
    let header = std::fs::read(path).expect("the file reads");
    std::fs::remove_file(path).expect("removed");
    header
}

/// Version-1 record for an archived letter `payload`: `[length][crc32(payload)][payload]`.
fn old_record(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A record for `payload` with `marker`, checksummed over `salt` (a guess: not the file's).
fn record_with(marker: &[u8], salt: &[u8], payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(salt);
    crc.update(&len);
    crc.update(payload);
    let mut out = marker.to_vec();
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a damaged record before or holding the forgeries is.
#[derive(Debug, Clone, Copy)]
enum Resync {
    /// None: the file read whole.
    Undamaged,
    /// A bit of the carrier's length: the reader walks through its frame.
    CarrierLength(u8),
    /// A bit of the carrier's marker: the reader walks through it from the record before.
    CarrierMarker(u8),
    /// A bit of the carrier's payload.
    CarrierPayload(prop::sample::Index, u8),
    /// A bit of the length of the record before the carrier (or of the carrier, if first).
    LengthBefore(u8),
}

fn resync() -> impl Strategy<Value = Resync> {
    prop_oneof![
        Just(Resync::Undamaged),
        (0u8..32).prop_map(Resync::CarrierLength),
        (0u8..64).prop_map(Resync::CarrierMarker),
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Resync::CarrierPayload(i, b)),
        (0u8..32).prop_map(Resync::LengthBefore),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    /// A file of any bytes, or a real header followed by any bytes (the file's marker strewn in
    /// them or not): never a panic, and no letter read out of junk.
    #[test]
    fn arbitrary_files_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..512),
            // Plausible (old-format) record lengths in front of junk, so that reading gets
            // past them.
            (0u32..64, vec(any::<u8>(), 0..256)).prop_map(|(len, mut b)| {
                let mut out = len.to_le_bytes().to_vec();
                out.append(&mut b);
                out
            }),
        ],
        header in any::<bool>(),
        markers in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let scratch = Scratch::new();
        let path = scratch.file();
        let bytes = if header {
            let mut out = new_header(&path);
            let marker = out[SALT.start..SALT.start + 8].to_vec();
            let mut body = bytes;
            for at in &markers {
                let at = at.index(body.len() + 1);
                body.splice(at..at, marker.iter().copied());
            }
            out.append(&mut body);
            out
        } else {
            bytes
        };
        let (letters, _) = reopened(&path, &bytes)?;
        prop_assert!(letters.is_empty(), "a letter read out of junk: {:?}", letters);
    }

    /// A file the writer wrote, damaged: whole records are read back, damaged ones skipped
    /// and counted, a torn end cut, and no damaged record ever comes back as a letter. Damage
    /// in a record costs that record alone: every record after it is read back too.
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
                // Everything but the length: marker, checksum, payload.
                let span = end - start - 4;
                let at = |i: usize| start + if i < LENGTH.start { i } else { i + 4 };
                let changed = flip(&mut bytes, flips.iter().map(|(i, b)| (at(i.index(span)), *b)));
                let (got, loaded) = reopened(&path, &bytes)?;
                let gone = if changed.is_empty() { vec![] } else { vec![r] };
                prop_assert_eq!(&got, &without(&all, &gone.iter().copied().collect()));
                prop_assert_eq!(loaded.corrupt, gone.len());
                prop_assert_eq!(loaded.torn_bytes, 0);
                (got, loaded)
            }
            Damage::FlipLength(r, bit) => {
                let r = r.index(records.len());
                bytes[records[r].0 + LENGTH.start + (*bit as usize) / 8] ^= 1 << (bit % 8);
                let (got, loaded) = reopened(&path, &bytes)?;
                // That record alone is lost, wherever it is: the ones after it are read too,
                // and a damaged length is not taken for a torn end.
                prop_assert_eq!(&got, &without(&all, &[r].into()));
                prop_assert_eq!(loaded.corrupt, 1);
                prop_assert_eq!(loaded.torn_bytes, 0);
                (got, loaded)
            }
            Damage::FlipAnywhere(flips) => {
                let len = bytes.len();
                let changed = flip(&mut bytes, flips.iter().map(|(i, b)| (i.index(len), *b)));
                let (gone, header) = hit(&changed, &records);
                let (got, loaded) = reopened(&path, &bytes)?;
                if header {
                    // A damaged salt: the file is set aside, nothing read from it.
                    prop_assert!(got.is_empty());
                } else {
                    // Every record left whole is read; a damaged one is counted, as corrupt
                    // or, at the end, as torn.
                    prop_assert_eq!(&got, &without(&all, &gone));
                    prop_assert!(loaded.corrupt <= gone.len());
                    prop_assert_eq!(gone.is_empty(), loaded.corrupt == 0 && loaded.torn_bytes == 0);
                }
                (got, loaded)
            }
            Damage::Truncate(at) => {
                let at = at.index(bytes.len());
                bytes.truncate(at);
                let (got, loaded) = reopened(&path, &bytes)?;
                let whole = records.iter().take_while(|r| r.1 <= at).count();
                // A header cut short is torn whole: the file holds nothing to keep.
                let empty = if at < FILE_HEADER { 0 } else { FILE_HEADER };
                let boundary = records[..whole].last().map_or(empty, |r| r.1);
                prop_assert_eq!(&got, &all[..whole].to_vec());
                prop_assert_eq!(loaded.corrupt, 0);
                prop_assert_eq!(loaded.torn_bytes, at - boundary);
                (got, loaded)
            }
            Damage::Append(garbage) => {
                bytes.extend_from_slice(garbage);
                let (got, loaded) = reopened(&path, &bytes)?;
                prop_assert_eq!(&got, &all);
                // Cut as a torn end, unless it happens to read as a damaged record.
                prop_assert!(
                    loaded.torn_bytes == garbage.len()
                        || (loaded.corrupt == 1 && loaded.torn_bytes == 0),
                    "{:?}", loaded
                );
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
                prop_assert_eq!(
                    loaded,
                    Loaded {
                        letters: letters.len() + 1,
                        corrupt: 0,
                        torn_bytes: 0,
                        found: Found::Current,
                    }
                );
                (got, loaded)
            }
        };
        // Whatever the damage: only letters that were written come back, in their order.
        prop_assert!(is_subsequence(&got, &all) || matches!(damage, Damage::Duplicate(..)),
            "a letter that was never written came back: {:?}", loaded);
    }

    /// A peer's frame carrying bytes laid out as records (a real record from another file, a
    /// record in the old format, and, if `marker_known`, records with this file's marker but a
    /// checksum under a guessed salt), read through after damage forces a resynchronisation:
    /// the forged letter never comes back, and every letter but the damaged record's does (and
    /// but the carrier's, when its frame holds the marker: a peer would have to read the file
    /// to know it, and could then only cut its own letter's record in two).
    #[test]
    fn forged_records_in_frames_are_never_read(
        mut letters in vec(letter(), 2..6),
        forged in letter(),
        carrier in any::<prop::sample::Index>(),
        offset in any::<prop::sample::Index>(),
        marker_known in any::<bool>(),
        damage in resync(),
    ) {
        let scratch = Scratch::new();
        let path = scratch.file();
        // A real record of the forged letter, from a file with another salt.
        let other = scratch.0.join("other.dlq");
        let (elsewhere, _) = written(&other, std::slice::from_ref(&forged));
        let record = &elsewhere[FILE_HEADER..];
        let payload = &record[RECORD_HEADER..];
        let (file, none, _) = DeadLetterFile::open(&path, MAX_BYTES).expect("a new file");
        prop_assert!(none.is_empty());
        let header = std::fs::read(&path).expect("the header");
        let marker = &header[SALT.start..SALT.start + 8];
        let mut forgery = record.to_vec();
        forgery.extend(old_record(payload));
        if marker_known {
            forgery.extend(record_with(marker, &[0; 16], payload));
            forgery.extend(record_with(marker, &[], payload));
            forgery.extend(record_with(marker, &elsewhere[SALT], payload));
        }
        let carrier = carrier.index(letters.len());
        let frame = &mut letters[carrier].frame;
        let at = offset.index(frame.len() + 1);
        frame.splice(at..at, forgery);
        letters[carrier].info.frame_len = frame.len() as u32;
        let (mut bytes, records) = appended(file, &path, &letters);
        let all: Vec<Key> = letters.iter().map(key).collect();
        let (start, end) = records[carrier];
        let damaged = match damage {
            Resync::Undamaged => None,
            Resync::CarrierLength(bit) => {
                bytes[start + LENGTH.start + bit as usize / 8] ^= 1 << (bit % 8);
                Some(carrier)
            }
            Resync::CarrierMarker(bit) => {
                bytes[start + bit as usize / 8] ^= 1 << (bit % 8);
                Some(carrier)
            }
            Resync::CarrierPayload(i, bit) => {
                bytes[start + RECORD_HEADER + i.index(end - start - RECORD_HEADER)] ^= 1 << bit;
                Some(carrier)
            }
            Resync::LengthBefore(bit) => {
                let r = carrier.saturating_sub(1);
                bytes[records[r].0 + LENGTH.start + bit as usize / 8] ^= 1 << (bit % 8);
                Some(r)
            }
        };
        let (got, loaded) = reopened(&path, &bytes)?;
        prop_assert!(!got.contains(&key(&forged)) || all.contains(&key(&forged)),
            "a forged letter came back: {:?}", loaded);
        let mut gone: std::collections::BTreeSet<usize> = damaged.into_iter().collect();
        if marker_known {
            gone.insert(carrier);
        }
        prop_assert_eq!(&got, &without(&all, &gone), "{:?}", loaded);
    }
}

/// The fuzz's first finding, kept: 5 letters, bit 26 of the first record's length flipped.
/// The format before this one took it for a torn write and cut the file to nothing, dropping
/// the 4 whole records after it; now that record alone is lost.
#[test]
fn a_flipped_length_bit_costs_its_record_alone() {
    let scratch = Scratch::new();
    let path = scratch.file();
    let letters: Vec<DeadLetter> = (0..5u64)
        .map(|n| DeadLetter {
            info: DeadLetterInfo {
                sequence: n,
                message_id: 100 + n,
                message_type: MessageType::Notification,
                route: RouteKind::Topic,
                source_slot: 3,
                destination_slot: Some(4),
                reason: format!("no route to capability {n}"),
                at_ns: 42,
                frame_len: 64,
                retries: 0,
            },
            frame: vec![n as u8; 64],
        })
        .collect();
    let (mut bytes, records) = written(&path, &letters);
    let bit = 26;
    bytes[records[0].0 + LENGTH.start + bit / 8] ^= 1 << (bit % 8);
    std::fs::write(&path, &bytes).expect("the file writes");
    let (_, back, loaded) = DeadLetterFile::open(&path, MAX_BYTES).expect("opens");
    assert_eq!(
        back.iter().map(|l| l.info.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "the 4 records after the damaged one are read"
    );
    assert_eq!(
        loaded,
        Loaded {
            letters: 4,
            corrupt: 1,
            torn_bytes: 0,
            found: Found::Current,
        }
    );
    assert_eq!(
        std::fs::metadata(&path).expect("the file").len() as usize,
        bytes.len(),
        "nothing cut"
    );
}
