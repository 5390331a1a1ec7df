//! When agentd dies, an agent finds out on its next send or receive (within about 100 ms of
//! the death, from the router's beat and the control socket's end-of-file, never a hang), and
//! the messages it sent that agentd never routed are counted, not lost silently.

mod support;

use std::time::{Duration, Instant};

use agentbus::*;
use support::process::AgentdProcess;
use support::*;

#[test]
fn sends_after_agentd_dies_fail_with_disconnected_and_count_what_was_never_routed() {
    let mut agentd = AgentdProcess::start("killed", &[]);
    let mut sender = agentd.attach("sender", "feed");
    let mut receiver = agentd.attach("receiver", "strategy");
    let to_receiver = sender.peer("receiver").unwrap();
    for seq in 0..50 {
        sender.send(&to_receiver, &note(&sender, seq)).unwrap();
    }
    assert_eq!(
        recv_seqs(&mut receiver, 50, Duration::from_secs(5)).len(),
        50
    );
    agentd.kill();
    let died = Instant::now();
    let mut accepted = 0u64;
    let (unsent, noticed) = loop {
        match sender.send(&to_receiver, &note(&sender, 1000)) {
            Ok(_) => accepted += 1,
            Err(CommunicationError::Disconnected {
                unsent: Some(unsent),
                ..
            }) => break (unsent, died.elapsed()),
            Err(CommunicationError::QueueFull { .. }) => {}
            Err(e) => panic!("expected Disconnected, got {e}"),
        }
        assert!(
            died.elapsed() < Duration::from_secs(5),
            "never noticed agentd died"
        );
        std::thread::sleep(Duration::from_micros(500));
    };
    eprintln!("agentd's death noticed by a sender after {noticed:?}; {accepted} sends accepted meanwhile, {unsent} reported unsent");
    // Every message accepted after the death is reported: none was routed, none is hidden.
    assert_eq!(unsent, accepted);
    // Generous for a loaded CI machine; the design bound is 40 ms + a 10 ms recheck.
    assert!(
        noticed < Duration::from_secs(1),
        "noticed after {noticed:?}"
    );
    // Later calls keep saying so.
    assert!(matches!(
        sender.send(&to_receiver, &note(&sender, 1)),
        Err(CommunicationError::Disconnected { .. })
    ));
    assert!(!sender.sender().is_connected());
    // A receiver waiting for mail hears of it too, instead of waiting out its timeout.
    let waited = Instant::now();
    match receiver.recv_timeout(Duration::from_secs(10)) {
        Err(CommunicationError::Disconnected {
            unsent: Some(0), ..
        }) => {}
        other => panic!(
            "expected Disconnected, got {:?}",
            other.map(|d| d.is_some())
        ),
    }
    assert!(waited.elapsed() < Duration::from_secs(5));
}
