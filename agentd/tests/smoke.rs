//! Smoke test.
mod support;
use std::time::Duration;
use support::*;

#[test]
fn smoke() {
    let bus = start("smoke");
    let mut a = bus.attach("a", "strategy");
    let mut b = bus.attach("b", "risk");
    a.send("b", &note(&a, 7)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![7]);
}
