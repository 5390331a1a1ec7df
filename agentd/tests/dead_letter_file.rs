//! Dead letters survive agentd: written to its file, read back after a SIGKILL and a restart;
//! a damaged file loses only its damaged records, a file in the old format is read and
//! rewritten, and one agentd cannot read is set aside.

mod support;

use std::time::{Duration, Instant};

use support::process::AgentdProcess;
use support::*;

/// Dead-letters `n` notes (to a capability nobody has) through `agentd`; returns their ids.
fn make_letters(agentd: &AgentdProcess, n: i64) -> Vec<u64> {
    let mut a = agentd.attach("a", "x");
    let nobody = a.capability(&["nobody-has-this"]).unwrap();
    let ids: Vec<u64> = (0..n)
        .map(|seq| a.send(&nobody, &note(&a, seq)).unwrap().0)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.dead_letters().unwrap().len() < n as usize {
        assert!(Instant::now() < deadline, "the letters were never made");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Read the errors agentd sent back, so that leaving dead-letters nothing more.
    while a
        .recv_timeout(Duration::from_millis(100))
        .unwrap()
        .is_some()
    {}
    // Past the control thread's turn: written to the file.
    std::thread::sleep(Duration::from_millis(300));
    ids
}

#[test]
fn dead_letters_survive_a_sigkill_and_a_restart_and_a_purge_empties_the_file() {
    let mut first = AgentdProcess::start("dlq-restart", &[]);
    let ids = make_letters(&first, 5);
    first.kill(); // SIGKILL: no clean shutdown
    let second = AgentdProcess::start("dlq-restart", &[]);
    assert_eq!(second.dir, first.dir);
    let observer = second.attach("observer", "ops");
    let letters = observer.dead_letters().unwrap();
    assert_eq!(
        letters.iter().map(|l| l.message_id).collect::<Vec<_>>(),
        ids,
        "every letter read back, in order"
    );
    assert_eq!(
        letters.iter().map(|l| l.sequence).collect::<Vec<_>>(),
        (0..5).collect::<Vec<_>>(),
        "numbered as they were"
    );
    assert!(
        letters
            .iter()
            .all(|l| l.reason.contains("nobody-has-this") || l.reason.contains("capabilit")),
        "{:?}",
        letters[0].reason
    );
    assert!(letters.iter().all(|l| l.frame_len > 0));
    // New letters are numbered after them.
    let more = make_letters(&second, 1);
    let letters = observer.dead_letters().unwrap();
    assert_eq!(letters.last().unwrap().message_id, more[0]);
    assert_eq!(letters.last().unwrap().sequence, 5);
    // A purge empties the queue and its file.
    assert_eq!(observer.purge_dead_letters().unwrap(), 6);
    assert!(observer.dead_letters().unwrap().is_empty());
    drop(observer);
    let mut second = second;
    second.kill();
    let third = AgentdProcess::start("dlq-restart", &[]);
    assert!(third
        .attach("observer", "ops")
        .dead_letters()
        .unwrap()
        .is_empty());
    drop(third);
    drop(second);
    drop(first);
}

/// The file's header, and a record's: marker, length, checksum (the file's format).
const FILE_HEADER: usize = 32;
const RECORD_HEADER: usize = 16;
const LENGTH: usize = 8;

/// Where each record of the whole file `bytes` starts and ends.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = FILE_HEADER;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + LENGTH..at + LENGTH + 4].try_into().unwrap());
        out.push((at, at + RECORD_HEADER + len as usize));
        at = out.last().unwrap().1;
    }
    out
}

/// What agentd wrote to its standard error (its log at WARN), once it is dead.
fn log_of(agentd: &mut AgentdProcess) -> String {
    agentd.kill();
    let mut log = String::new();
    if let Some(mut err) = agentd.child.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut log).unwrap();
    }
    log
}

#[test]
fn a_damaged_file_loses_only_its_damaged_records_and_agentd_starts() {
    let mut first = AgentdProcess::start("dlq-damaged", &[]);
    let ids = make_letters(&first, 5);
    first.kill();
    let path = first.dir.join(format!("{}.dlq", first.bus));
    let mut bytes = std::fs::read(&path).unwrap();
    let rec = records(&bytes);
    assert_eq!(rec.len(), 5);
    // A byte of the first record's payload; bit 26 of the second's length (which the format
    // before this one took for a torn write, losing every record after it); and the last
    // record cut short (a crash mid-write).
    bytes[rec[0].0 + RECORD_HEADER + 20] ^= 0xFF;
    bytes[rec[1].0 + LENGTH + 3] ^= 0x04;
    bytes.truncate(bytes.len() - 7);
    std::fs::write(&path, &bytes).unwrap();
    let mut second = AgentdProcess::start("dlq-damaged", &[]);
    let letters = second.attach("observer", "ops").dead_letters().unwrap();
    assert_eq!(
        letters.iter().map(|l| l.message_id).collect::<Vec<_>>(),
        ids[2..4].to_vec(),
        "the two damaged and the torn last skipped, the rest kept"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        rec[3].1,
        "the torn record cut off, the damaged ones left in place"
    );
    let log = log_of(&mut second);
    assert!(
        log.contains("2 records skipped") && log.contains("bytes cut"),
        "{log}"
    );
    drop(second);
    drop(first);
}

#[test]
fn a_file_in_the_old_format_is_read_and_rewritten_in_the_new_one() {
    let mut first = AgentdProcess::start("dlq-old-format", &[]);
    let ids = make_letters(&first, 3);
    first.kill();
    // The same letters as the agentd before the file header wrote them:
    // [length][crc32 of the payload][payload].
    let path = first.dir.join(format!("{}.dlq", first.bus));
    let new = std::fs::read(&path).unwrap();
    let mut old = Vec::new();
    for (start, end) in records(&new) {
        let payload = &new[start + RECORD_HEADER..end];
        old.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        old.extend_from_slice(payload);
    }
    std::fs::write(&path, &old).unwrap();
    let second = AgentdProcess::start("dlq-old-format", &[]);
    let letters = second.attach("observer", "ops").dead_letters().unwrap();
    assert_eq!(
        letters.iter().map(|l| l.message_id).collect::<Vec<_>>(),
        ids,
        "every letter read back"
    );
    let now = std::fs::read(&path).unwrap();
    assert_eq!(&now[..3], b"AGB", "rewritten with a header");
    assert_eq!(records(&now).len(), 3);
    let aside = first.dir.join(format!("{}.dlq.unreadable", first.bus));
    assert!(!aside.exists(), "read whole: no copy kept");
    drop(second);
    drop(first);
}

#[test]
fn an_unreadable_file_is_set_aside_and_agentd_starts_with_a_new_one() {
    let mut first = AgentdProcess::start("dlq-unreadable", &[]);
    make_letters(&first, 2);
    first.kill();
    let path = first.dir.join(format!("{}.dlq", first.bus));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16] ^= 0x01; // in the salt: no record can be checked any more
    std::fs::write(&path, &bytes).unwrap();
    let mut second = AgentdProcess::start("dlq-unreadable", &[]);
    let observer = second.attach("observer", "ops");
    assert!(observer.dead_letters().unwrap().is_empty());
    let aside = first.dir.join(format!("{}.dlq.unreadable", first.bus));
    assert_eq!(std::fs::read(&aside).unwrap(), bytes, "set aside as it was");
    // The new file takes new letters, and they survive a restart.
    let ids = make_letters(&second, 1);
    drop(observer);
    let log = log_of(&mut second);
    assert!(
        log.contains("no format this agentd reads") && log.contains(".dlq.unreadable"),
        "{log}"
    );
    second.restart(&[]);
    let letters = second.attach("observer", "ops").dead_letters().unwrap();
    assert_eq!(
        letters.iter().map(|l| l.message_id).collect::<Vec<_>>(),
        ids
    );
    drop(second);
    drop(first);
}

#[test]
fn without_a_file_dead_letters_are_kept_in_memory_only() {
    let mut first = AgentdProcess::start("dlq-none", &["--no-dead-letter-file"]);
    make_letters(&first, 2);
    first.kill();
    assert!(!first.dir.join(format!("{}.dlq", first.bus)).exists());
    let second = AgentdProcess::start("dlq-none", &["--no-dead-letter-file"]);
    assert!(second
        .attach("observer", "ops")
        .dead_letters()
        .unwrap()
        .is_empty());
    drop(second);
    drop(first);
}
