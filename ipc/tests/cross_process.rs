//! The ring between two processes, over a memfd handed to a child through a Unix socket.

mod support;

use std::time::{Duration, Instant};

use agentbus_ipc::ring::{Consumer, Producer, Ring, RingOptions};
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::wait::{Backoff, Park, WaitStrategy};
use support::{receive_segment, role, spawn_with_segment};

const CAPACITY: usize = 1 << 16;

fn ring_at(segment: &MemfdSegment, index: usize) -> Ring {
    let size = Ring::size_for(CAPACITY);
    Ring::attach(segment.region().sub(index * size, size).unwrap()).unwrap()
}

fn new_segment(rings: usize, parking: bool) -> MemfdSegment {
    let size = Ring::size_for(CAPACITY);
    let segment = MemfdSegment::create("agentbus-test", rings * size).unwrap();
    for i in 0..rings {
        let region = segment.region().sub(i * size, size).unwrap();
        Ring::create(region, RingOptions::new(CAPACITY).parking(parking)).unwrap();
    }
    segment
}

/// Frame `seq`'s length and bytes, both derived from `seq` alone, so the reader can check order
/// and content of every frame without being told.
fn frame_len(seq: u64) -> usize {
    (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize // 0..=255
}

fn fill(seq: u64, buf: &mut [u8]) {
    let mut x = seq ^ 0xA5A5_5A5A_DEAD_BEEF;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
}

const FRAMES: u64 = 10_000_000;
const DEADLINE: Duration = Duration::from_secs(60);

fn stream_producer(mut tx: Producer) {
    let wait = Backoff::default();
    let deadline = Some(Instant::now() + DEADLINE);
    let mut seq = 0;
    while seq < FRAMES {
        // Batches of up to 32 frames, published with one store.
        tx.begin_batch();
        for _ in 0..32 {
            if seq == FRAMES {
                break;
            }
            let len = frame_len(seq);
            let mut claim = tx
                .claim(len, &wait, deadline)
                .expect("room within the deadline");
            fill(seq, claim.payload());
            claim.commit(len);
            seq += 1;
        }
        tx.publish();
    }
}

#[test]
fn a_child_streams_ten_million_frames_and_the_parent_checks_each() {
    if role().as_deref() == Some("producer") {
        stream_producer(ring_at(&receive_segment(), 0).into_producer());
        return;
    }
    let segment = new_segment(1, false);
    let child = spawn_with_segment(
        "a_child_streams_ten_million_frames_and_the_parent_checks_each",
        "producer",
        &segment,
    );
    let mut rx: Consumer = ring_at(&segment, 0).into_consumer();
    let wait = Backoff::default();
    let deadline = Some(Instant::now() + DEADLINE);
    let mut expected = vec![0u8; 256];
    let mut seq = 0u64;
    let mut bytes = 0u64;
    while seq < FRAMES {
        rx.wait(&wait, deadline).expect("the child keeps producing");
        rx.read_batch(64, |payload| {
            let len = frame_len(seq);
            assert_eq!(payload.len(), len, "frame {seq}: length");
            fill(seq, &mut expected[..len]);
            assert!(payload == &expected[..len], "frame {seq}: content");
            bytes += len as u64;
            seq += 1;
        })
        .unwrap();
    }
    assert_eq!(seq, FRAMES);
    assert!(bytes > FRAMES * 100);
    child.expect_success(DEADLINE);
    assert_eq!(rx.peek().unwrap(), None, "nothing beyond the last frame");
}

const ROUND_TRIPS: u64 = 100_000;

/// Parks with a sleep slice far longer than the per-wait deadline: a lost wake-up cannot be
/// covered up by the slice running out, so it fails the wait.
fn strict_park() -> Park {
    Park {
        spins: 8,
        slice: Duration::from_secs(3600),
    }
}

fn pong(mut rx: Consumer, mut tx: Producer, wait: &impl WaitStrategy) {
    for seq in 0..ROUND_TRIPS {
        rx.wait(wait, Some(Instant::now() + Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("child: round trip {seq}: {e} (lost wake-up?)"));
        let v = u64::from_le_bytes(rx.peek().unwrap().unwrap().try_into().unwrap());
        assert_eq!(v, seq);
        rx.pop();
        rx.release();
        let mut claim = tx.try_claim(8).unwrap();
        claim.payload().copy_from_slice(&v.to_le_bytes());
        claim.commit(8);
    }
}

#[test]
fn parked_processes_ping_pong_without_losing_a_wake_up() {
    if role().as_deref() == Some("ponger") {
        let segment = receive_segment();
        pong(
            ring_at(&segment, 0).into_consumer(),
            ring_at(&segment, 1).into_producer(),
            &strict_park(),
        );
        return;
    }
    let segment = new_segment(2, true);
    let child = spawn_with_segment(
        "parked_processes_ping_pong_without_losing_a_wake_up",
        "ponger",
        &segment,
    );
    let mut tx = ring_at(&segment, 0).into_producer();
    let mut rx = ring_at(&segment, 1).into_consumer();
    let wait = strict_park();
    let start = Instant::now();
    for seq in 0..ROUND_TRIPS {
        let mut claim = tx.try_claim(8).unwrap();
        claim.payload().copy_from_slice(&seq.to_le_bytes());
        claim.commit(8);
        rx.wait(&wait, Some(Instant::now() + Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("parent: round trip {seq}: {e} (lost wake-up?)"));
        let v = u64::from_le_bytes(rx.peek().unwrap().unwrap().try_into().unwrap());
        assert_eq!(v, seq);
        rx.pop();
        rx.release();
    }
    child.expect_success(Duration::from_secs(30));
    eprintln!("{ROUND_TRIPS} parked round trips in {:?}", start.elapsed());
}
