//! Events (emit, listen, remove) and topic handlers with client-side filters.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus::*;
use support::*;

fn pump(agent: &mut Agent, until: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    agent.run_until(deadline, |_| until()).unwrap();
}

fn settle(agent: &mut Agent) {
    agent
        .run_until(Instant::now() + Duration::from_millis(150), |_| false)
        .unwrap();
}

#[test]
fn listeners_get_events_until_removed() {
    let bus = start("events");
    let mut source = bus.attach("source", "risk");
    let mut listener = bus.attach("listener", "ops");
    let fired = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&fired);
    let first = listener
        .on_event("risk.limit_breached", move |env, _tx| {
            assert_eq!(env.header.message_type, MessageType::Notification);
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let o = Arc::clone(&other);
    let _second = listener
        .on_event("risk.limit_breached", move |_, _tx| {
            o.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let breached = source.sender().event("risk.limit_breached").unwrap();
    source.send(&breached, &note(&source, 1)).unwrap();
    pump(&mut listener, || {
        fired.load(Ordering::SeqCst) == 1 && other.load(Ordering::SeqCst) == 1
    });
    assert_eq!(fired.load(Ordering::SeqCst), 1);
    first.unsubscribe().unwrap();
    source.send(&breached, &note(&source, 2)).unwrap();
    pump(&mut listener, || other.load(Ordering::SeqCst) == 2);
    settle(&mut listener);
    assert_eq!(fired.load(Ordering::SeqCst), 1, "no delivery after removal");
    assert_eq!(other.load(Ordering::SeqCst), 2);
    // Another event type does not reach these listeners.
    let other_event = source.sender().event("risk.other").unwrap();
    source.send(&other_event, &note(&source, 3)).unwrap();
    settle(&mut listener);
    assert_eq!(other.load(Ordering::SeqCst), 2);
}

#[test]
fn the_last_listener_removed_unsubscribes() {
    let bus = start("events-unsub");
    let mut source = bus.attach("source", "risk");
    let mut listener = bus.attach("listener", "ops");
    let listening = listener.on_event("x", |_, _tx| {}).unwrap();
    drop(listening);
    let x = source.sender().event("x").unwrap();
    source.send(&x, &note(&source, 1)).unwrap();
    settle(&mut listener);
    assert!(
        listener.try_recv().unwrap().is_none(),
        "not even queued: unsubscribed"
    );
}

#[test]
fn a_subscription_filter_runs_before_the_handler() {
    let bus = start("filter");
    let mut feed = bus.attach("feed", "market_data");
    let mut strat = bus.attach("strat", "strategy");
    let interested = ["AAPL", "MSFT"];
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let _market = strat
        .subscribe_with(
            "market.>",
            Some(Box::new(move |env: &Envelope<'_>| match env.payload() {
                Some(ArchivedPayload::Notification(n)) => interested.contains(&n.event.as_str()),
                _ => false,
            })),
            move |env, _tx| {
                if let Some(ArchivedPayload::Notification(n)) = env.payload() {
                    s.lock().unwrap().push(n.event.to_string());
                }
            },
        )
        .unwrap();
    for sym in ["AAPL", "TSLA", "MSFT", "GOOG"] {
        let tick = Message::notification(
            feed.identity(),
            Notification {
                event: sym.into(),
                data: Record::new(),
            },
        );
        let topic = feed.topic(&format!("market.{sym}")).unwrap();
        feed.send(&topic, &tick).unwrap();
    }
    pump(&mut strat, || seen.lock().unwrap().len() == 2);
    settle(&mut strat);
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["AAPL".to_string(), "MSFT".to_string()]
    );
    assert_eq!(strat.counters().filtered, 2);
}
