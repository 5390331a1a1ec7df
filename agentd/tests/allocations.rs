//! The hot path allocates nothing: 10,000 raw, typed and loaned messages each way (through the
//! router and over a channel), sent and received, counted by a counting global allocator.
//!
//! The client's thread (this test's) must make no allocation at all once warm. The router
//! runs in this process too (an embedded agentd): its thread and the control thread are counted
//! process-wide, which must stay far below one per message (the control thread's periodic work,
//! not the path of a message).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentbus::client::{Agent, Channel, Peer, Raw, Typed};
use agentbus::MessagePriority;
use support::*;

struct Counting;

static ALL: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static MINE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    ALL.fetch_add(1, Ordering::Relaxed);
    // `try_with`: a thread being torn down has no locals left; its allocation is still counted
    // process-wide.
    let _ = MINE.try_with(|m| m.set(m.get() + 1));
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only touches an
// atomic and a const-initialized thread-local cell, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's layout, under the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above; `ptr` came from this allocator, which is the system's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn mine() -> u64 {
    MINE.with(|m| m.get())
}

const N: usize = 10_000;
const BATCH: usize = 50;
const WAIT: Duration = Duration::from_secs(5);

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Tick {
    symbol: [u8; 8],
    px: f64,
    qty: u64,
}

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    bid: f64,
    ask: f64,
    seq: u64,
}

/// One round of every kind through the router: raw bytes, a typed value, a loaned plain
/// value; `BATCH` of each, then all received and read.
fn routed_round(a: &mut Agent, to_b: &Peer, b: &mut Agent, round: u64) -> u64 {
    let bytes = [7u8; 64];
    for i in 0..BATCH as u64 {
        a.send(to_b, Raw(&bytes)).unwrap();
        a.send(
            to_b,
            Typed(&Tick {
                symbol: *b"AAPL    ",
                px: 1.5,
                qty: i,
            }),
        )
        .unwrap();
        let mut loan = a.sender().loan(to_b, MessagePriority::Normal, 24).unwrap();
        *loan.plain_mut::<Quote>().unwrap() = Quote {
            bid: 1.0,
            ask: 2.0,
            seq: round,
        };
        loan.send();
    }
    let mut sum = 0;
    for _ in 0..BATCH {
        let d = b.recv_timeout(WAIT).unwrap().expect("raw");
        sum += d.raw().unwrap().len() as u64;
        drop(d);
        let d = b.recv_timeout(WAIT).unwrap().expect("typed");
        sum += d.typed::<Tick>().unwrap().qty.to_native();
        assert_eq!(d.from().agent_id, "a");
        drop(d);
        let d = b.recv_timeout(WAIT).unwrap().expect("loan");
        sum += d.plain::<Quote>().unwrap().seq;
    }
    sum
}

/// The same over a channel.
fn channel_round(ca: &mut Channel, cb: &mut Channel, round: u64) -> u64 {
    let bytes = [7u8; 64];
    for i in 0..BATCH as u64 {
        ca.send(Raw(&bytes)).unwrap();
        ca.send(Typed(&Tick {
            symbol: *b"MSFT    ",
            px: 2.5,
            qty: i,
        }))
        .unwrap();
        let mut loan = ca.loan(24).unwrap();
        *loan.plain_mut::<Quote>().unwrap() = Quote {
            bid: 1.0,
            ask: 2.0,
            seq: round,
        };
        loan.send();
    }
    let mut sum = 0;
    for _ in 0..BATCH {
        let d = cb.recv_timeout(WAIT).unwrap().expect("raw");
        sum += d.raw().unwrap().len() as u64;
        drop(d);
        let d = cb.recv_timeout(WAIT).unwrap().expect("typed");
        sum += d.typed::<Tick>().unwrap().qty.to_native();
        drop(d);
        let d = cb.recv_timeout(WAIT).unwrap().expect("loan");
        sum += d.plain::<Quote>().unwrap().seq;
    }
    sum
}

#[test]
fn sending_and_receiving_raw_typed_and_loaned_messages_allocates_nothing() {
    let bus = start("alloc");
    let mut a = bus.attach("a", "feed");
    let mut b = bus.attach("b", "strategy");
    let mut ca = a.channel("b").unwrap();
    let mut cb = b.accept_channel(WAIT).unwrap().expect("an offer");
    let to_b = a.peer("b").unwrap();
    // Warm up: the first message resolves the sender's identity.
    routed_round(&mut a, &to_b, &mut b, 0);
    channel_round(&mut ca, &mut cb, 0);

    let rounds = (N / BATCH) as u64;
    let (mine0, all0) = (mine(), ALL.load(Ordering::Relaxed));
    let mut sum = 0;
    for r in 1..=rounds {
        sum += routed_round(&mut a, &to_b, &mut b, r);
    }
    let (mine1, all1) = (mine(), ALL.load(Ordering::Relaxed));
    for r in 1..=rounds {
        sum += channel_round(&mut ca, &mut cb, r);
    }
    let (mine2, all2) = (mine(), ALL.load(Ordering::Relaxed));
    assert!(sum > 0);
    let routed = 3 * N as u64;
    eprintln!(
        "{routed} messages through the router: {} allocations on the client's thread, {} in the \
         process (router and control thread included); {routed} over a channel: {}, {}",
        mine1 - mine0,
        all1 - all0,
        mine2 - mine1,
        all2 - all1
    );
    assert_eq!(
        mine1 - mine0,
        0,
        "the client allocated sending or receiving via the router"
    );
    assert_eq!(mine2 - mine1, 0, "the client allocated on a channel");
    assert!(
        all1 - all0 < routed / 100,
        "the router (or agentd's control thread) allocated {} times for {routed} messages",
        all1 - all0
    );
}
