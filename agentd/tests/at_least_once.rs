//! At-least-once delivery (acknowledgements, retries with backoff, `DeliveryFailed`) and
//! exactly-once processing (retried copies dropped by the receiver), across real agents.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, DeliveryConfig};
use agentbus::*;
use support::*;

fn fast(attempts: u32, retry_delay: Duration) -> DeliveryConfig {
    DeliveryConfig {
        attempts,
        retry_delay,
        ..DeliveryConfig::default()
    }
}

#[test]
fn a_message_is_acknowledged_by_recv_or_by_a_handler() {
    let bus = start("alo-ack");
    let mut sender = bus.attach("sender", "x");
    let mut by_recv = bus.attach("by-recv", "x");
    let to = sender.peer("by-recv").unwrap();
    let delivery = sender.send_acked(&to, &note(&sender, 1)).unwrap();
    let (tx, rx) = by_recv.split();
    let d = rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("delivered");
    assert!(d.header().flags.contains(Flags::ACK_REQUESTED));
    tx.ack(d.header()).unwrap();
    drop(d);
    delivery.wait(&mut sender).expect("acknowledged");

    let mut by_handler = bus.attach("by-handler", "x");
    let handled = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&handled);
    by_handler.on_message(move |_, _| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let served = std::thread::spawn(move || {
        by_handler
            .run_until(Instant::now() + Duration::from_secs(10), |_| {
                stopped.load(Ordering::Acquire)
            })
            .unwrap();
    });
    let to = sender.peer("by-handler").unwrap();
    sender
        .send_acked(&to, &note(&sender, 2))
        .unwrap()
        .wait(&mut sender)
        .expect("acknowledged when the handler returned");
    assert_eq!(handled.load(Ordering::Relaxed), 1);
    stop.store(true, Ordering::Release);
    served.join().unwrap();
}

#[test]
fn a_message_never_acknowledged_fails_after_every_attempt_and_is_taken_once() {
    let bus = start("alo-fail");
    let mut sender = Agent::attach(
        bus.options("sender", "x")
            .delivery(fast(3, Duration::from_millis(40))),
    )
    .unwrap();
    let mut reader = bus.attach("reader", "x"); // reads, never acknowledges
    let to = sender.peer("reader").unwrap();
    let started = Instant::now();
    let delivery = sender.send_acked(&to, &note(&sender, 7)).unwrap();
    let id = delivery.id();
    match delivery.wait(&mut sender) {
        Err(e @ CommunicationError::DeliveryFailed { .. }) => {
            let CommunicationError::DeliveryFailed {
                destination,
                message_id,
                attempts,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(
                (destination.as_str(), *message_id, *attempts),
                ("reader", id, 3)
            );
            assert!(e.to_string().contains("ack"), "says what to do: {e}");
            assert_eq!(e.kind(), ErrorKind::AgentUnreachable);
        }
        other => panic!("expected DeliveryFailed, got {other:?}"),
    }
    // 40 ms, then 80, then 160: the backoff doubles.
    assert!(
        started.elapsed() >= Duration::from_millis(280),
        "{:?}",
        started.elapsed()
    );
    // The message is in agentd's dead-letter queue, from the sender, saying why.
    let letters = reader.dead_letters().unwrap();
    let letter = letters
        .iter()
        .find(|l| l.message_id == id.0)
        .expect("the failed message was dead-lettered");
    assert_eq!(letter.source_slot, sender.slot());
    assert!(
        letter.reason.contains("not acknowledged after 3 attempts"),
        "{}",
        letter.reason
    );
    // Three copies reached the reader; it took the first and dropped the retries.
    assert_eq!(
        recv_seqs(&mut reader, 10, Duration::from_millis(200)),
        vec![7]
    );
    assert_eq!(reader.counters().duplicates, 2);
}

#[test]
fn a_receiver_that_dies_mid_handler_is_replaced_and_the_retry_reaches_the_new_one() {
    let bus = start("alo-replace");
    let mut sender = Agent::attach(
        bus.options("sender", "x")
            .delivery(fast(4, Duration::from_millis(150))),
    )
    .unwrap();
    let mut first = bus.attach("worker-1", "worker");
    let workers = sender.agent_type("worker").unwrap();
    let delivery = sender.send_acked(&workers, &note(&sender, 42)).unwrap();
    // It takes the message and dies before its handler returns (no acknowledgement).
    let got = recv_seqs(&mut first, 1, Duration::from_secs(5));
    assert_eq!(got, vec![42]);
    drop(first);
    // Its replacement serves with a handler.
    let mut second = bus.attach("worker-2", "worker");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    second.on_message(move |env, _| {
        if let Some(ArchivedPayload::Notification(n)) = env.payload() {
            if let Some(agentbus::value::ArchivedValue::Int(s)) = n.data.get("seq") {
                log.lock().unwrap().push(s.to_native());
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let served = std::thread::spawn(move || {
        second
            .run_until(Instant::now() + Duration::from_secs(10), |_| {
                stopped.load(Ordering::Acquire)
            })
            .unwrap();
    });
    delivery
        .wait(&mut sender)
        .expect("the retry reached the replacement, which acknowledged it");
    stop.store(true, Ordering::Release);
    served.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![42]);
}

#[test]
fn retried_messages_are_processed_exactly_once() {
    const N: i64 = 10_000;
    const IN_FLIGHT: usize = 100;
    let bus = start("alo-exactly-once");
    // A retry after 1 ms: every message is sent again before the reader, which acknowledges
    // in batches 3 ms late, gets to it.
    let mut sender = Agent::attach(
        bus.options("sender", "x")
            .delivery(fast(8, Duration::from_millis(1))),
    )
    .unwrap();
    let mut reader = bus.attach("reader", "x");
    let to = sender.peer("reader").unwrap();
    let reading = std::thread::spawn(move || {
        let mut taken: HashMap<i64, u32> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while taken.len() < N as usize && Instant::now() < deadline {
            let (tx, rx) = reader.split();
            let mut batch = Vec::new();
            while let Some(d) = rx.recv_timeout(Duration::from_millis(20)).unwrap() {
                *taken.entry(seq_of(&d)).or_default() += 1;
                batch.push(*d.header());
                if batch.len() == 64 {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(3));
            for h in &batch {
                tx.ack(h).unwrap();
            }
        }
        (taken, reader.counters().duplicates)
    });
    let mut seq = 0;
    let mut in_flight = Vec::new();
    let mut failed = 0;
    while seq < N || !in_flight.is_empty() {
        while seq < N && in_flight.len() < IN_FLIGHT {
            in_flight.push(sender.send_acked(&to, &note(&sender, seq)).unwrap());
            seq += 1;
        }
        let mut i = 0;
        while i < in_flight.len() {
            match in_flight[i].try_wait(&mut sender) {
                Some(Ok(())) => {
                    in_flight.swap_remove(i);
                }
                Some(Err(e)) => {
                    failed += 1;
                    eprintln!("{e}");
                    in_flight.swap_remove(i);
                }
                None => i += 1,
            }
        }
        sender.receiver().wait_ready(Duration::from_millis(1));
    }
    let (taken, duplicates) = reading.join().unwrap();
    assert_eq!(failed, 0, "every message acknowledged");
    assert_eq!(taken.len(), N as usize, "none lost");
    let twice: Vec<_> = taken.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "taken more than once: {twice:?}");
    assert!(
        duplicates > 0,
        "no retry was ever sent: the test forced none"
    );
    eprintln!("{N} messages, each taken once; {duplicates} retried copies dropped");
}

/// A reported dead letter must be a frame: anything else is refused, saying what is wrong, and
/// nothing is recorded.
#[test]
fn a_dead_letter_report_that_is_not_a_frame_is_refused() {
    use agentbus::control::{
        decode_response, encode_frame, ClientDeadLetter, FrameReader, Refusal, Refused, Request,
        Response,
    };
    use std::io::{Read, Write};
    let bus = start("alo-report");
    let (mut conn, _seg, _layout) = support::raw::raw_attach(&bus, "rogue");
    let mut ask = |frame: Vec<u8>| {
        conn.write_all(&encode_frame(&Request::DeadLetter(ClientDeadLetter {
            frame,
            reason: "made up".into(),
        })))
        .unwrap();
        let mut reader = FrameReader::default();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(frame) = reader.next_frame().unwrap() {
                return decode_response(&frame).unwrap();
            }
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "agentd closed the connection");
            reader.push(&buf[..n]);
        }
    };
    for (frame, says) in [
        (vec![0u8; 10], "valid header"),
        (vec![0xFF; 64], "valid header"),
    ] {
        match ask(frame) {
            Response::Refused(Refused {
                kind: Refusal::BadRequest,
                message,
            }) => assert!(message.contains(says), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let observer = bus.attach("observer", "ops");
    assert!(observer.dead_letters().unwrap().is_empty());
}
