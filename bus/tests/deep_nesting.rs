//! Pathological nesting: values nested 100,000 lists or maps deep are refused with an error
//! when encoded, and bytes crafted that deep are refused when decoded, never a stack overflow.
//! Everything runs on a 2 MiB stack, so a recursion that would overflow one aborts the test.
//!
//! Before the limits (`agentbus::nesting`), validating a 12,000-deep list (8,000-deep maps)
//! and serializing a 10,000-deep one overflowed a 2 MiB stack in this build.

mod fuzz_support;

use agentbus::codec::{header_for, typed};
use agentbus::nesting::{MAX_ARCHIVE_DEPTH, MAX_VALUE_DEPTH};
use agentbus::*;
use agentbus_ipc::ring::{Consumer, Producer, Ring, RingOptions};
use fuzz_support::{aligned, on_small_stack};
use rkyv::util::AlignedVec;

/// How a value nests.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// `[[[...]]]`
    Lists,
    /// `{"k": {"k": ...}}`
    Maps,
    /// Lists and maps in turn.
    Mixed,
}

const SHAPES: [Shape; 3] = [Shape::Lists, Shape::Maps, Shape::Mixed];

/// A value nested `depth` lists or maps deep around an integer, built without recursion.
fn nested(depth: usize, shape: Shape) -> Value {
    let mut v = Value::Int(7);
    for level in 0..depth {
        let map = match shape {
            Shape::Lists => false,
            Shape::Maps => true,
            Shape::Mixed => level % 2 == 1,
        };
        v = if map {
            Value::Map(record! { "k" => v })
        } else {
            Value::List(vec![v])
        };
    }
    v
}

/// Drops a value of any depth without recursion (the compiler's drop glue recurses).
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::List(items) => stack.extend(items),
            Value::Map(map) => stack.extend(map.into_values()),
            _ => {}
        }
    }
}

/// Drops a message whose payload holds values of any depth.
fn dismantle_message(mut m: Message) {
    let payload = std::mem::replace(&mut m.payload, Payload::Raw(Vec::new()));
    for v in values_of(payload) {
        dismantle(v);
    }
}

/// Every value a payload holds, taken out of it.
fn values_of(payload: Payload) -> Vec<Value> {
    match payload {
        Payload::TaskRequest(t) => t
            .parameters
            .into_values()
            .chain(t.constraints.into_iter().map(|c| c.value))
            .collect(),
        Payload::TaskResponse(t) => t
            .result
            .into_iter()
            .chain(t.error.and_then(|e| e.details))
            .collect(),
        Payload::ResourceRequest(r) => r.parameters.into_values().collect(),
        Payload::Coordination(c) => c
            .coordination_data
            .into_values()
            .chain(
                c.proposed_action
                    .into_iter()
                    .flat_map(|a| a.parameters.into_values()),
            )
            .collect(),
        Payload::Notification(n) => n.data.into_values().collect(),
        _ => Vec::new(),
    }
}

/// One message per place a payload holds a value, with `value` there.
fn messages_holding(value: impl Fn() -> Value) -> Vec<Message> {
    let me = || AgentIdentifier::new("deep", "fuzz");
    vec![
        Message::notification(
            me(),
            Notification {
                event: "deep".into(),
                data: record! { "v" => value() },
            },
        ),
        Message::task_request(
            me(),
            TaskRequest {
                parameters: record! { "v" => value() },
                ..Default::default()
            },
        ),
        Message::task_request(
            me(),
            TaskRequest {
                constraints: vec![TaskConstraint {
                    name: "c".into(),
                    value: value(),
                }],
                ..Default::default()
            },
        ),
        Message::task_response(
            me(),
            TaskResponse {
                result: Some(value()),
                ..Default::default()
            },
        ),
        Message::task_response(
            me(),
            TaskResponse {
                error: Some(ErrorDetails {
                    details: Some(value()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        Message::resource_request(
            me(),
            ResourceRequest {
                parameters: record! { "v" => value() },
                ..Default::default()
            },
        ),
        Message::coordination(
            me(),
            Coordination {
                coordination_data: record! { "v" => value() },
                ..Default::default()
            },
        ),
        Message::coordination(
            me(),
            Coordination {
                proposed_action: Some(ProposedAction {
                    action: "a".into(),
                    parameters: record! { "v" => value() },
                }),
                ..Default::default()
            },
        ),
    ]
}

fn lane() -> (Producer, Consumer) {
    Ring::heap(RingOptions::new(1 << 20))
        .expect("a heap ring")
        .split()
}

fn route() -> Route {
    Route {
        kind: RouteKind::Topic,
        destination: 1,
    }
}

/// A frame whose body is `payload`'s archive, however deep: serialized on a thread with a
/// stack large enough for it (a test's tool, not a sender: a sender's encoder refuses it).
fn crafted_frame(depth: usize, shape: Shape) -> AlignedVec<16> {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let payload = Payload::Notification(Notification {
                event: "deep".into(),
                data: record! { "v" => nested(depth, shape) },
            });
            let body = rkyv::to_bytes::<rkyv::rancor::Error>(&payload).expect("it serializes");
            for v in values_of(payload) {
                dismantle(v);
            }
            let m = Message::notification(AgentIdentifier::default(), Notification::default());
            let mut header = header_for(&m, route(), 1);
            header.body_len = body.len() as u32;
            let mut frame = vec![0; HEADER_LEN];
            header.write(&mut frame);
            frame.extend_from_slice(&body);
            aligned(&frame)
        })
        .expect("a thread starts")
        .join()
        .expect("the crafting thread finishes")
}

#[test]
fn a_value_nested_100000_deep_is_refused_by_the_encoder_before_it_recurses() {
    on_small_stack(|| {
        let (mut tx, mut rx) = lane();
        for shape in SHAPES {
            for m in messages_holding(|| nested(100_000, shape)) {
                let result = encode(&mut tx, &header_for(&m, route(), 1), &m);
                let kind = m.message_type;
                dismantle_message(m);
                match result {
                    Err(
                        e @ EncodeError::TooDeep {
                            max: MAX_VALUE_DEPTH,
                        },
                    ) => {
                        let text = CommunicationError::from(e).to_string();
                        assert!(
                            text.contains("64 levels deep") && text.contains("flatten"),
                            "{text}"
                        );
                    }
                    other => panic!("{kind} {shape:?}: expected TooDeep, got {other:?}"),
                }
                assert!(
                    rx.peek().expect("a sound lane").is_none(),
                    "nothing committed"
                );
            }
        }
    });
}

#[test]
fn a_value_just_past_the_limit_is_refused_and_one_at_it_round_trips() {
    on_small_stack(|| {
        let (mut tx, mut rx) = lane();
        for shape in SHAPES {
            for m in messages_holding(|| nested(MAX_VALUE_DEPTH + 1, shape)) {
                assert_eq!(
                    encode(&mut tx, &header_for(&m, route(), 1), &m),
                    Err(EncodeError::TooDeep {
                        max: MAX_VALUE_DEPTH
                    }),
                    "{shape:?}"
                );
            }
            for m in messages_holding(|| nested(MAX_VALUE_DEPTH, shape)) {
                encode(&mut tx, &header_for(&m, route(), 1), &m).expect("64 deep is allowed");
                let frame = aligned(rx.peek().expect("a sound lane").expect("a frame"));
                rx.pop();
                rx.release();
                let back = decode(&frame)
                    .expect("what the encoder wrote validates")
                    .to_message()
                    .expect("and copies out");
                assert_eq!(back.payload, m.payload, "{shape:?}");
            }
        }
        assert!(!nested(MAX_VALUE_DEPTH, Shape::Mixed).nests_deeper_than(MAX_VALUE_DEPTH));
        assert!(nested(MAX_VALUE_DEPTH + 1, Shape::Maps).nests_deeper_than(MAX_VALUE_DEPTH));
        assert!(!Value::Int(1).nests_deeper_than(0));
        assert!(Value::List(Vec::new()).nests_deeper_than(0));
    });
}

#[test]
fn bytes_nested_100000_deep_are_refused_by_the_decoder_not_overflowed() {
    for shape in SHAPES {
        // Just past the archive limit, where a 2 MiB stack overflowed (8,000 to 12,000), and
        // far past it.
        for depth in [MAX_ARCHIVE_DEPTH + 1, 12_000, 100_000] {
            let frame = crafted_frame(depth, shape);
            let result = on_small_stack(move || decode(&frame).map(|_| ()));
            match result {
                Err(e) => assert!(
                    e.reason.contains("more than 512 deep") && e.reason.contains("64 deep"),
                    "{shape:?} {depth}: {e}"
                ),
                Ok(()) => panic!("{shape:?} {depth}: a body nested that deep validated"),
            }
        }
    }
}

#[test]
fn bytes_nested_deeper_than_values_may_but_within_the_archive_limit_decode() {
    // The decoder bounds the stack, not the sender's policy: what fits its limit is read.
    let frame = crafted_frame(200, Shape::Lists);
    on_small_stack(move || {
        let m = decode(&frame)
            .expect("200 lists deep is within the archive limit")
            .to_message()
            .expect("and copies out");
        dismantle_message(m);
    });
}

/// An application's own recursive type, sent as a typed value.
#[derive(rkyv::Archive, rkyv::Serialize)]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext, __C::Error: rkyv::rancor::Source)))]
struct Chain {
    #[rkyv(omit_bounds)]
    next: Option<Box<Chain>>,
}

#[test]
fn a_typed_body_nested_100000_deep_is_refused_not_overflowed() {
    let body = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let mut chain = Chain { next: None };
            for _ in 0..100_000 {
                chain = Chain {
                    next: Some(Box::new(chain)),
                };
            }
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&chain).expect("it serializes");
            // Unlink it without recursion.
            let mut next = chain.next.take();
            while let Some(mut link) = next {
                next = link.next.take();
            }
            aligned(&bytes)
        })
        .expect("a thread starts")
        .join()
        .expect("the crafting thread finishes");
    let result = on_small_stack(move || typed::<Chain>(BodyRef::Typed(&body)).map(|_| ()));
    let e = result.expect_err("a chain 100,000 deep does not validate");
    assert!(e.reason.contains("no more than 512 pointers deep"), "{e}");
}
