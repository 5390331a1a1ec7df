//! The channel pool: at most `max` per peer, idle channels reused, a caller at the limit waits
//! for one to come back (or fails at its deadline), and channels whose peer died are evicted.

mod support;

use std::time::{Duration, Instant};

use agentbus::client::Raw;
use agentbus::patterns::{ChannelPool, PoolError};
use support::*;

#[test]
fn a_pool_at_its_limit_waits_reuses_and_evicts() {
    let bus = start("pool");
    let strategy = bus.attach("strategy", "strategy");
    let mut exec = bus.attach("exec", "execution");
    let pool = ChannelPool::new(&strategy, 2);

    let a = pool.get("exec", Duration::from_secs(1)).unwrap();
    let b = pool.get("exec", Duration::from_secs(1)).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(pool.counts("exec"), (0, 2));
    // At the limit: a third waits out its deadline.
    match pool.get("exec", Duration::from_millis(100)) {
        Err(PoolError::Exhausted { max, waited, .. }) => {
            assert_eq!(max, 2);
            assert!(waited >= Duration::from_millis(90), "{waited:?}");
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    // One returned by another thread while a caller waits: the caller gets that very channel.
    let a_id = a.id();
    let returner = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
    });
    let waited = Instant::now();
    let mut c = pool.get("exec", Duration::from_secs(5)).unwrap();
    assert!(waited.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        c.id(),
        a_id,
        "the idle channel is reused, not a new one opened"
    );
    returner.join().unwrap();
    // It works: the peer reads what is sent on it.
    let mut ends = Vec::new();
    while let Some(end) = exec.accept_channel(Duration::from_millis(200)).unwrap() {
        ends.push(end);
    }
    assert_eq!(ends.len(), 2, "two channels opened in all");
    c.send(Raw(b"order")).unwrap();
    let end = ends.iter_mut().find(|e| e.id() == a_id).unwrap();
    let got = end
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the order");
    assert_eq!(got.raw(), Some(&b"order"[..]));
    drop(got);
    drop((b, c));
    assert_eq!(pool.counts("exec"), (2, 0));
    // The peer dies: its channels close, and the pool evicts them instead of lending them.
    drop(ends);
    drop(exec);
    eventually("the channels are closed", || {
        let (idle, _) = pool.counts("exec");
        idle == 0 || pool.get("exec", Duration::ZERO).is_err()
    });
    match pool.get("exec", Duration::from_millis(100)) {
        Err(PoolError::Open { peer, .. }) => assert_eq!(peer, "exec"),
        other => panic!("expected Open to fail for a dead peer, got {other:?}"),
    }
    assert_eq!(
        pool.counts("exec"),
        (0, 0),
        "evicted, and no reservation leaked"
    );
}
