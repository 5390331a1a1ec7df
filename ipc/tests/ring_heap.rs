//! The frame ring over heap memory: order, sizes, wrap-around, full and empty, batches, and
//! values a hostile peer could write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus_ipc::ring::cursor::{self, ConsumerCursor, ProducerCursor};
use agentbus_ipc::ring::{
    max_payload_for, ClaimError, Consumer, Producer, ReadError, Ring, RingOptions, Words,
    RING_HEADER,
};

fn ring(capacity: usize) -> (Producer, Consumer) {
    Ring::heap(RingOptions::new(capacity)).unwrap().split()
}

fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

fn send(tx: &mut Producer, seq: u64, len: usize) -> Result<(), ClaimError> {
    let mut claim = tx.try_claim(len)?;
    claim.payload().copy_from_slice(&pattern(seq, len));
    claim.commit(len);
    Ok(())
}

fn recv(rx: &mut Consumer) -> Option<Vec<u8>> {
    let v = rx.peek().unwrap().map(<[u8]>::to_vec);
    rx.pop();
    rx.release();
    v
}

#[test]
fn an_empty_ring_has_nothing_to_read() {
    let (_tx, mut rx) = ring(4096);
    assert_eq!(rx.peek().unwrap(), None);
    rx.pop(); // popping nothing is harmless
    assert_eq!(rx.position(), 0);
}

#[test]
fn frames_arrive_in_order_with_their_bytes() {
    let (mut tx, mut rx) = ring(4096);
    for seq in 0..20 {
        send(&mut tx, seq, 10 + seq as usize).unwrap();
    }
    for seq in 0..20 {
        assert_eq!(recv(&mut rx).unwrap(), pattern(seq, 10 + seq as usize));
    }
    assert_eq!(recv(&mut rx), None);
}

#[test]
fn every_size_from_zero_to_the_maximum_round_trips() {
    let (mut tx, mut rx) = ring(1024);
    let max = tx.max_payload();
    assert_eq!(max, max_payload_for(1024));
    for len in 0..=max {
        send(&mut tx, len as u64, len).unwrap();
        assert_eq!(
            recv(&mut rx).unwrap(),
            pattern(len as u64, len),
            "len {len}"
        );
    }
}

#[test]
fn wrap_around_uses_padding_and_keeps_every_frame_whole() {
    // Odd sizes in a small ring wrap many times, each wrap through a padding frame.
    let (mut tx, mut rx) = ring(256);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut lens = std::collections::VecDeque::new();
    while got < 10_000 {
        let len = rng.usize(0..=tx.max_payload());
        match send(&mut tx, sent, len) {
            Ok(()) => {
                lens.push_back(len);
                sent += 1;
            }
            Err(ClaimError::Full { .. }) => {
                let v = recv(&mut rx).expect("a full ring has a frame to read");
                assert_eq!(v, pattern(got, lens.pop_front().unwrap()));
                got += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(rx.position() > 100 * 256, "wrapped many times");
}

#[test]
fn a_full_ring_refuses_a_claim_until_the_consumer_releases() {
    let (mut tx, mut rx) = ring(256);
    let mut n = 0;
    while send(&mut tx, n, 48).is_ok() {
        n += 1;
    }
    assert!(n >= 3);
    match tx.try_claim(48) {
        Err(ClaimError::Full { needed, free }) => assert!(needed > free),
        other => panic!("expected Full, got {other:?}"),
    }
    // Popping without releasing does not give room back.
    rx.peek().unwrap().unwrap();
    rx.pop();
    assert!(matches!(tx.try_claim(48), Err(ClaimError::Full { .. })));
    rx.release();
    send(&mut tx, n, 48).unwrap();
    for seq in 1..=n {
        assert_eq!(recv(&mut rx).unwrap(), pattern(seq, 48));
    }
}

#[test]
fn an_oversized_payload_is_refused_and_the_ring_stays_usable() {
    let (mut tx, mut rx) = ring(1024);
    let max = tx.max_payload();
    assert_eq!(
        tx.try_claim(max + 1).unwrap_err(),
        ClaimError::TooLarge { len: max + 1, max }
    );
    send(&mut tx, 1, 3).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(1, 3));
}

#[test]
fn a_claim_may_commit_fewer_bytes_or_be_abandoned() {
    let (mut tx, mut rx) = ring(1024);
    {
        let mut claim = tx.try_claim(100).unwrap();
        claim.payload()[..2].copy_from_slice(b"ab");
        claim.commit(2);
    }
    {
        let mut claim = tx.try_claim(100).unwrap();
        claim.payload()[0] = b'x';
        // dropped: abandoned
    }
    assert_eq!(rx.peek().unwrap(), Some(&b"ab"[..]));
    rx.pop();
    assert_eq!(rx.peek().unwrap(), None, "an abandoned claim is never seen");
    send(&mut tx, 5, 5).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(5, 5));
}

#[test]
fn a_batch_becomes_visible_only_when_published() {
    let (mut tx, mut rx) = ring(4096);
    tx.begin_batch();
    for seq in 0..10 {
        send(&mut tx, seq, 20).unwrap();
    }
    assert_eq!(rx.peek().unwrap(), None, "nothing visible before publish");
    tx.publish();
    let mut seen = Vec::new();
    let n = rx.read_batch(100, |p| seen.push(p.to_vec())).unwrap();
    assert_eq!(n, 10);
    for (seq, v) in seen.into_iter().enumerate() {
        assert_eq!(v, pattern(seq as u64, 20));
    }
}

#[test]
fn a_batch_that_wraps_is_published_whole() {
    let (mut tx, mut rx) = ring(256);
    send(&mut tx, 0, 80).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(0, 80));
    // The next two frames straddle the end: padding, then the ring's start.
    tx.begin_batch();
    send(&mut tx, 1, 64).unwrap();
    send(&mut tx, 2, 32).unwrap();
    assert_eq!(rx.peek().unwrap(), None);
    tx.publish();
    assert_eq!(recv(&mut rx).unwrap(), pattern(1, 64));
    assert_eq!(recv(&mut rx).unwrap(), pattern(2, 32));
    assert_eq!(recv(&mut rx), None);
}

#[test]
fn read_batch_stops_at_its_limit_and_releases_once() {
    let (mut tx, mut rx) = ring(4096);
    for seq in 0..5 {
        send(&mut tx, seq, 8).unwrap();
    }
    assert_eq!(rx.read_batch(3, |_| {}).unwrap(), 3);
    assert_eq!(rx.read_batch(3, |_| {}).unwrap(), 2);
    assert_eq!(rx.read_batch(3, |_| {}).unwrap(), 0);
}

#[test]
fn stale_payload_bytes_of_an_earlier_lap_never_pass_for_a_frame() {
    // Lap 0 leaves, at ring offset 32, payload bytes equal to the position the consumer will wait
    // for there on lap 1 (256 + 32). Were commit words bare positions (not XORed with the ring's
    // key), the consumer would take those bytes for a frame.
    let cap = 256u64;
    let (mut tx, mut rx) = ring(cap as usize);
    assert_eq!(tx.max_payload(), 96);
    let fake = (cap + 32).to_le_bytes().repeat(12);
    let mut claim = tx.try_claim(96).unwrap();
    claim.payload().copy_from_slice(&fake); // ring bytes 16..112
    claim.commit(96);
    assert_eq!(recv(&mut rx).unwrap(), fake);
    send(&mut tx, 1, 96).unwrap(); // 112..224
    assert_eq!(recv(&mut rx).unwrap(), pattern(1, 96));
    for seq in 2..5 {
        // empty frames at 224, 240, then 256 (offset 0); the next would start at 272
        send(&mut tx, seq, 0).unwrap();
        assert_eq!(recv(&mut rx).unwrap(), pattern(seq, 0));
    }
    assert_eq!(rx.position(), cap + 16);
    // One more empty frame, at 272 (offset 16..32), leaves the consumer waiting at 288.
    send(&mut tx, 5, 0).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(5, 0));
    assert_eq!(rx.position(), cap + 32);
    assert_eq!(
        rx.peek().unwrap(),
        None,
        "stale payload bytes read as a commit"
    );
    send(&mut tx, 6, 8).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(6, 8));
}

/// Ring memory made of plain atomics, shared by a producer cursor, a consumer cursor, and the
/// test playing a hostile peer.
#[derive(Clone)]
struct SharedWords(Arc<Vec<AtomicU64>>);

impl SharedWords {
    fn new(capacity: usize) -> SharedWords {
        let n = (RING_HEADER + capacity) / 8;
        SharedWords(Arc::new((0..n).map(|_| AtomicU64::new(0)).collect()))
    }
}

impl Words for SharedWords {
    fn load(&self, offset: usize, order: Ordering) -> u64 {
        self.0[offset / 8].load(order)
    }
    fn store(&self, offset: usize, value: u64, order: Ordering) {
        self.0[offset / 8].store(value, order)
    }
}

fn cursors(
    capacity: usize,
) -> (
    SharedWords,
    ProducerCursor<SharedWords>,
    ConsumerCursor<SharedWords>,
) {
    let w = SharedWords::new(capacity);
    cursor::init(&w, capacity, false, KEY);
    (
        w.clone(),
        ProducerCursor::new(w.clone(), capacity),
        ConsumerCursor::new(w, capacity),
    )
}

const HEAD: usize = 128;
/// The commit key the cursor tests use: commit words are `position ^ KEY`.
const KEY: u64 = 0x5EED_0001;
const DATA: usize = RING_HEADER;

#[test]
fn a_head_beyond_the_tail_or_moving_backwards_is_corruption() {
    let (w, mut tx, _rx) = cursors(256);
    for _ in 0..2 {
        let r = tx.reserve(96).unwrap(); // frames of 112 bytes: 0..112, 112..224
        tx.commit(r, 96);
    }
    // A legitimate head: the first frame was read. The next claim needs padding and room the
    // cached head (0) does not show, so the producer reloads the head: still full.
    w.store(HEAD, 112, Ordering::Release);
    assert!(matches!(tx.reserve(96), Err(ClaimError::Full { .. })));
    // The consumer moves its head backwards.
    w.store(HEAD, 0, Ordering::Release);
    match tx.reserve(96) {
        Err(ClaimError::Corrupt(c)) => assert_eq!(c.value, 0),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The consumer claims to have read more than was ever written.
    w.store(HEAD, 1 << 40, Ordering::Release);
    match tx.reserve(96) {
        Err(ClaimError::Corrupt(c)) => {
            assert_eq!(c.value, 1 << 40);
            assert!(c.reason.contains("head"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn corrupt_frame_headers_are_errors_not_reads_out_of_bounds() {
    let cases: &[(&str, u64)] = &[
        ("bad tag", 0x1234_0001_0000_0008),
        ("runs past", (0xAB5C << 48) | (1 << 32) | 0xFFFF_FFFF),
        ("runs past", (0xAB5C << 48) | (1 << 32) | 250),
        ("unknown kind", (0xAB5C << 48) | (9 << 32) | 8),
        ("padding", (0xAB5C << 48) | (2 << 32) | 8),
    ];
    for &(what, info) in cases {
        let (w, _tx, mut rx) = cursors(256);
        // A hostile producer commits position 0 with a bad second word.
        w.store(DATA + 8, info, Ordering::Relaxed);
        w.store(DATA, KEY, Ordering::Release); // position 0, committed
        let err = rx.peek().unwrap_err();
        assert_eq!(err.position, 0, "{what}");
        assert_eq!(err.value, info, "{what}");
    }
}

#[test]
fn garbage_in_every_header_word_never_panics_the_consumer() {
    let mut rng = fastrand::Rng::with_seed(42);
    for _ in 0..20_000 {
        let (w, _tx, mut rx) = cursors(256);
        // Random words everywhere, with position 0 committed so the info word gets parsed.
        for off in (DATA..DATA + 256).step_by(8) {
            w.store(off, rng.u64(..), Ordering::Relaxed);
        }
        w.store(DATA, KEY, Ordering::Release); // position 0, committed
        for _ in 0..4 {
            match rx.peek() {
                Ok(Some(f)) => {
                    assert!(f.payload_offset + f.len <= DATA + 256);
                    rx.pop();
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn a_real_consumer_reports_corruption_as_a_read_error() {
    // A ring in memory the test can also write, as a hostile producer would.
    let region = agentbus_ipc::Region::whole(std::sync::Arc::new(
        agentbus_ipc::Mapping::heap(Ring::size_for(256)).unwrap(),
    ));
    let (mut tx, mut rx) = Ring::create(region.clone(), RingOptions::new(256))
        .unwrap()
        .split();
    send(&mut tx, 0, 8).unwrap();
    assert_eq!(recv(&mut rx).unwrap(), pattern(0, 8));
    send(&mut tx, 1, 8).unwrap(); // committed at position 16 + 16 = 32
    let words = agentbus_ipc::words::WordTable::new(region).unwrap();
    let info_word = (RING_HEADER + 32 + 8) / 8; // the frame's kind/length word
    words.store(info_word, 0xDEAD_BEEF, Ordering::Relaxed);
    match rx.peek() {
        Err(ReadError::Corrupt(c)) => {
            assert_eq!(c.position, 32);
            assert_eq!(c.value, 0xDEAD_BEEF);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The length is still checked against the ring's bounds on the real path, too.
    words.store(
        info_word,
        (0xAB5C << 48) | (1 << 32) | 4096,
        Ordering::Relaxed,
    );
    assert!(matches!(rx.peek(), Err(ReadError::Corrupt(_))));
}

#[test]
fn a_read_guard_pops_and_releases_its_frame_when_dropped() {
    let (mut tx, mut rx) = ring(256);
    send(&mut tx, 1, 40).unwrap();
    send(&mut tx, 2, 40).unwrap();
    {
        let guard = rx.read().unwrap().unwrap();
        assert_eq!(guard.bytes(), &pattern(1, 40)[..]);
    }
    let guard = rx.read().unwrap().unwrap();
    assert_eq!(guard.bytes(), &pattern(2, 40)[..]);
    drop(guard);
    assert!(rx.read().unwrap().is_none());
    // Both released: the producer has the whole ring again.
    send(&mut tx, 3, 96).unwrap();
}

#[test]
fn a_new_consumer_at_the_head_finds_what_the_old_one_left_unread() {
    let region = agentbus_ipc::Region::whole(std::sync::Arc::new(
        agentbus_ipc::Mapping::heap(Ring::size_for(1024)).unwrap(),
    ));
    let ring = Ring::create(region.clone(), RingOptions::new(1024)).unwrap();
    let (mut tx, mut rx) = ring.split();
    for seq in 0..3 {
        send(&mut tx, seq, 30).unwrap();
    }
    assert_eq!(recv(&mut rx).unwrap(), pattern(0, 30));
    drop(rx); // the consumer "dies" having read one frame
    let mut heir = Ring::attach(region).unwrap().into_consumer_at_head();
    assert_eq!(recv(&mut heir).unwrap(), pattern(1, 30));
    assert_eq!(recv(&mut heir).unwrap(), pattern(2, 30));
    assert!(recv(&mut heir).is_none());
}
