//! Dead letters survive agentd: written to its file, read back after a SIGKILL and a restart;
//! a damaged file is read as far as it holds.

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

#[test]
fn a_damaged_file_is_read_as_far_as_it_holds_and_agentd_starts() {
    let mut first = AgentdProcess::start("dlq-damaged", &[]);
    let ids = make_letters(&first, 4);
    first.kill();
    // Damage the last record (a crash mid-write) and a byte in the first.
    let path = first.dir.join(format!("{}.dlq", first.bus));
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 7);
    bytes[20] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let second = AgentdProcess::start("dlq-damaged", &[]);
    let letters = second.attach("observer", "ops").dead_letters().unwrap();
    assert_eq!(
        letters.iter().map(|l| l.message_id).collect::<Vec<_>>(),
        ids[1..3].to_vec(),
        "the first (corrupt) and the last (torn) skipped, the rest kept"
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
