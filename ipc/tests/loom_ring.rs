//! Model-checks the ring's position protocol with loom: every interleaving (up to a preemption
//! bound) of one producer and one consumer, over loom's atomics, which also explore the stale
//! values weak memory orderings allow. Run with:
//! `RUSTFLAGS="--cfg loom" cargo test -p agentbus-ipc --test loom_ring --release`
#![cfg(loom)]

use std::sync::atomic::Ordering;

use agentbus_ipc::ring::cursor::{self, ConsumerCursor, ProducerCursor};
use agentbus_ipc::ring::{ClaimError, Words, RING_HEADER};
use loom::sync::atomic::AtomicU64;
use loom::sync::Arc;
use loom::thread;

const CAPACITY: usize = 128;

#[derive(Clone)]
struct LoomWords(Arc<Vec<AtomicU64>>);

impl Words for LoomWords {
    fn load(&self, offset: usize, order: Ordering) -> u64 {
        self.0[offset / 8].load(order)
    }
    fn store(&self, offset: usize, value: u64, order: Ordering) {
        self.0[offset / 8].store(value, order)
    }
}

fn words() -> LoomWords {
    let w = LoomWords(Arc::new(
        (0..(RING_HEADER + CAPACITY) / 8)
            .map(|_| AtomicU64::new(0))
            .collect(),
    ));
    cursor::init(&w, CAPACITY, false, 0x5EED_0001);
    w
}

fn value(seq: usize) -> u64 {
    0x1000 + seq as u64
}

/// Sends `lens` frames, each carrying `value(seq)` in its first payload word (stored Relaxed:
/// only the commit protocol makes it visible), optionally as one batch.
fn produce(w: LoomWords, lens: &'static [usize], batch: bool) {
    let mut tx = ProducerCursor::new(w.clone(), CAPACITY);
    if batch {
        tx.begin_batch();
    }
    for (seq, &len) in lens.iter().enumerate() {
        loop {
            match tx.reserve(len) {
                Ok(r) => {
                    w.store(r.payload_offset, value(seq), Ordering::Relaxed);
                    tx.commit(r, len);
                    break;
                }
                Err(ClaimError::Full { .. }) => {
                    assert!(!batch, "a batch in this model always fits");
                    thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    if batch {
        tx.publish();
    }
}

fn consume(w: LoomWords, lens: &'static [usize]) {
    let mut rx = ConsumerCursor::new(w.clone(), CAPACITY);
    for (seq, &len) in lens.iter().enumerate() {
        loop {
            match rx.peek() {
                Ok(Some(f)) => {
                    assert_eq!(f.len, len, "frame {seq} length");
                    assert_eq!(
                        w.load(f.payload_offset, Ordering::Relaxed),
                        value(seq),
                        "frame {seq} payload"
                    );
                    rx.pop();
                    rx.release();
                    break;
                }
                Ok(None) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn model(lens: &'static [usize], batch: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        let w = words();
        let producer = {
            let w = w.clone();
            thread::spawn(move || produce(w, lens, batch))
        };
        consume(w, lens);
        producer.join().unwrap();
    });
}

#[test]
fn frames_arrive_whole_and_in_order_through_a_full_ring_and_a_padded_wrap() {
    // 128 bytes hold two 48-byte frames; the third needs padding at the end and must wait
    // for the consumer to release both.
    model(&[32, 32, 32], false);
}

#[test]
fn a_batch_is_seen_whole_once_published() {
    model(&[8, 24], true);
}
