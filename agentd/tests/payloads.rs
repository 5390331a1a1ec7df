//! Raw, typed, plain and loaned sends, through the router and over a channel: what arrives is
//! what was sent, read in place; a body that is not the type asked for is `InvalidFormat`,
//! never a panic; a dropped loan sends nothing.

mod support;

use std::time::Duration;

use agentbus::client::{Agent, Channel, Raw, Typed};
use agentbus::*;
use support::*;

const WAIT: Duration = Duration::from_secs(5);

/// A user's own type without pointers.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize)]
struct Tick {
    symbol: [u8; 8],
    px: f64,
    qty: u64,
}

/// A user's own type with relative pointers (a string, a vector) and an enum.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize)]
struct Order {
    id: u64,
    symbol: String,
    side: Side,
    qty: u32,
    tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, rkyv::Archive, rkyv::Serialize)]
#[rkyv(derive(Debug, PartialEq))]
enum Side {
    Buy,
    Sell,
}

/// A plain value: every bit pattern valid, read from raw bytes without a copy.
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Quote {
    bid: f64,
    ask: f64,
    seq: u64,
}

fn tick(i: u64) -> Tick {
    Tick {
        symbol: *b"AAPL    ",
        px: 187.25 + i as f64,
        qty: 100 * i,
    }
}

fn order(i: u64) -> Order {
    Order {
        id: i,
        symbol: format!("SYM{i}"),
        side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
        qty: i as u32 * 10,
        tags: vec!["algo".into(), format!("n{i}")],
    }
}

fn check_tick(d: &client::Delivery<'_>, i: u64) {
    let t = d.typed::<Tick>().expect("a valid Tick");
    assert_eq!(
        (t.symbol, t.px.to_native(), t.qty.to_native()),
        (tick(i).symbol, tick(i).px, tick(i).qty)
    );
    assert!(d.header().flags.contains(Flags::TYPED));
}

fn check_order(d: &client::Delivery<'_>, i: u64) {
    let o = d.typed::<Order>().expect("a valid Order");
    let want = order(i);
    assert_eq!(o.id.to_native(), want.id);
    assert_eq!(o.symbol.as_str(), want.symbol);
    assert_eq!(
        o.side,
        match want.side {
            Side::Buy => ArchivedSide::Buy,
            Side::Sell => ArchivedSide::Sell,
        }
    );
    assert_eq!(o.qty.to_native(), want.qty);
    let tags: Vec<&str> = o.tags.iter().map(|t| t.as_str()).collect();
    assert_eq!(tags, ["algo", &format!("n{i}")]);
}

fn pair(bus: &TestBus) -> (Agent, Agent, Channel, Channel) {
    let mut a = bus.attach("a", "feed");
    let mut b = bus.attach("b", "strategy");
    let ca = a.channel("b").unwrap();
    let cb = b.accept_channel(WAIT).unwrap().expect("an offer");
    (a, b, ca, cb)
}

#[test]
fn typed_values_travel_through_the_router_and_read_in_place() {
    let bus = start("typed");
    let mut a = bus.attach("a", "feed");
    let mut b = bus.attach("b", "strategy");
    let to_b = a.peer("b").unwrap();
    for i in 0..50 {
        a.send(&to_b, Typed(&tick(i))).unwrap();
        a.send(&to_b, Typed(&order(i))).unwrap();
    }
    for i in 0..50 {
        let d = b.recv_timeout(WAIT).unwrap().expect("a tick");
        check_tick(&d, i);
        assert_eq!(d.from().agent_id, "a");
        drop(d);
        let d = b.recv_timeout(WAIT).unwrap().expect("an order");
        check_order(&d, i);
    }
}

#[test]
fn typed_values_travel_over_a_channel() {
    let bus = start("typedch");
    let (_a, _b, mut ca, mut cb) = pair(&bus);
    for i in 0..50 {
        ca.send(Typed(&tick(i))).unwrap();
        ca.send(Typed(&order(i))).unwrap();
    }
    for i in 0..50 {
        let d = cb.recv_timeout(WAIT).unwrap().expect("a tick");
        check_tick(&d, i);
        drop(d);
        let d = cb.recv_timeout(WAIT).unwrap().expect("an order");
        check_order(&d, i);
    }
}

#[test]
fn a_body_that_is_not_the_type_asked_for_is_invalid_format_not_a_panic() {
    let bus = start("typedbad");
    let (mut a, mut b, mut ca, mut cb) = pair(&bus);
    // Through the router and over the channel alike.
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, Typed(&tick(1))).unwrap();
    a.send(&to_b, Raw(&[0xFF; 40])).unwrap();
    a.send(&to_b, &note(&a, 3)).unwrap();
    ca.send(Typed(&tick(1))).unwrap();
    ca.send(Raw(&[0xFF; 40])).unwrap();
    ca.send(&Message::raw(
        ca.identity(),
        MessageType::Notification,
        vec![1; 8],
    ))
    .unwrap();
    let invalid = |r: Result<_, CommunicationError>, why: &str| match r {
        Err(CommunicationError::InvalidFormat { reason }) => {
            assert!(reason.contains(why), "{reason}")
        }
        other => panic!("expected InvalidFormat ({why}), got {other:?}"),
    };
    // A Tick's 24 bytes are too few to be an Order (whose root holds pointers): refused.
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.typed::<Order>().map(|_| ()), "not a valid");
    assert!(
        d.typed::<Tick>().is_ok(),
        "and still readable as what it is"
    );
    drop(d);
    // Raw bytes are not a typed value, and 40 bytes are not a 24-byte Quote.
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.typed::<Tick>().map(|_| ()), "not a typed value");
    invalid(d.plain::<Quote>().map(|_| ()), "cannot be read as");
    drop(d);
    // A spec payload is neither.
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.typed::<Tick>().map(|_| ()), "spec payload");
    invalid(d.plain::<Quote>().map(|_| ()), "not raw bytes");
    drop(d);
    let d = cb.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.typed::<Order>().map(|_| ()), "not a valid");
    drop(d);
    let d = cb.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.typed::<Tick>().map(|_| ()), "not a typed value");
    drop(d);
    let d = cb.recv_timeout(WAIT).unwrap().unwrap();
    invalid(d.plain::<Quote>().map(|_| ()), "cannot be read as");
}

#[test]
fn raw_and_plain_values_travel_both_ways_read_in_place() {
    let bus = start("raw");
    let (mut a, mut b, mut ca, mut cb) = pair(&bus);
    let q = Quote {
        bid: 99.5,
        ask: 100.25,
        seq: 7,
    };
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, Raw(bytemuck::bytes_of(&q))).unwrap();
    ca.send(Raw(bytemuck::bytes_of(&q))).unwrap();
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(d.plain::<Quote>().unwrap(), &q);
    assert_eq!(d.raw(), Some(bytemuck::bytes_of(&q)));
    assert_eq!(d.header().message_type, MessageType::Notification);
    drop(d);
    let d = cb.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(d.plain::<Quote>().unwrap(), &q);
}

#[test]
fn a_loan_is_written_in_place_and_sent_and_a_dropped_loan_sends_nothing() {
    let bus = start("loan");
    let (mut a, mut b, mut ca, mut cb) = pair(&bus);
    let to_b = a.peer("b").unwrap();
    // Through the router: dropped, then a plain value, raw bytes and a typed value.
    {
        let mut loan = a.sender().loan(&to_b, MessagePriority::High, 64).unwrap();
        loan.bytes().fill(0xAB);
    } // abandoned
    let mut loan = a.sender().loan(&to_b, MessagePriority::High, 64).unwrap();
    *loan.plain_mut::<Quote>().unwrap() = Quote {
        bid: 1.0,
        ask: 2.0,
        seq: 1,
    };
    let plain_id = loan.send();
    let mut loan = a
        .sender()
        .loan(&to_b, MessagePriority::Critical, 16)
        .unwrap();
    assert!(matches!(
        loan.write(&[0; 17]),
        Err(EncodeError::TooLarge { .. })
    ));
    loan.write(b"fill 100 @ 187.2").unwrap();
    loan.message_type(MessageType::TaskUpdate);
    loan.send();
    let mut loan = a
        .sender()
        .loan(&to_b, MessagePriority::Normal, 256)
        .unwrap();
    loan.write_typed(&order(3)).unwrap();
    loan.send();
    // Once the router has written all three into b's lanes (not before: the quote, sent first,
    // could otherwise be read before the router took the raw bytes)...
    eventually("the router delivered the three loans", || {
        agent_info(&mut b, "a").copies_delivered == 3
    });
    // ...most urgent first: the raw bytes (critical), the quote (high), the order.
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(d.raw(), Some(&b"fill 100 @ 187.2"[..]));
    assert_eq!(d.header().message_type, MessageType::TaskUpdate);
    assert_eq!(d.header().priority, MessagePriority::Critical);
    drop(d);
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(d.header().message_id, plain_id);
    assert_eq!(d.plain::<Quote>().unwrap().seq, 1);
    assert_eq!(d.raw().unwrap().len(), size_of::<Quote>());
    drop(d);
    let d = b.recv_timeout(WAIT).unwrap().unwrap();
    check_order(&d, 3);
    drop(d);
    assert_quiet(&mut b, Duration::from_millis(50));
    // Over a channel, the same.
    {
        let mut loan = ca.loan(64).unwrap();
        loan.bytes().fill(0xCD);
    }
    let mut loan = ca.loan(64).unwrap();
    loan.write_typed(&tick(9)).unwrap();
    loan.send();
    let d = cb.recv_timeout(WAIT).unwrap().expect("the typed loan");
    check_tick(&d, 9);
    drop(d);
    assert!(
        cb.try_recv().unwrap().is_none(),
        "the dropped loan sent nothing"
    );
    // A loan larger than the lane can hold is refused at once.
    assert!(matches!(
        a.sender().loan(&to_b, MessagePriority::Normal, 1 << 30),
        Err(CommunicationError::MessageTooLarge { .. })
    ));
}
