//! Fuzzing the body decoder (`codec::decode`, `Envelope::to_message`, `codec::typed`): arbitrary
//! bytes, and frames the encoder wrote (every payload type, raw and typed bodies) with bits
//! flipped, bytes overwritten or spliced, or cut short, never panic: each decodes (and then
//! copies out) or is a `DecodeError`. Untouched frames round-trip exactly; values round-trip or
//! are refused by the encoder as nested too deep, never overflow.
//!
//! Short run: `cargo test -p agentbus --test fuzz_codec`; long run:
//! `FUZZ_CASES=100000 cargo test -p agentbus --release --test fuzz_codec`.

mod fuzz_support;

use std::time::Duration;

use agentbus::codec::{encode_typed, header_for, typed};
use agentbus::nesting::MAX_VALUE_DEPTH;
use agentbus::*;
use agentbus_ipc::ring::{Ring, RingOptions};
use fuzz_support::{aligned, config};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use rkyv::util::AlignedVec;

fn text(max: usize) -> BoxedStrategy<String> {
    proptest::string::string_regex(&format!("\\PC{{0,{max}}}"))
        .expect("a valid pattern")
        .boxed()
}

/// Floats that compare equal to themselves (a round trip is checked with `==`).
fn float() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("not NaN", |f| !f.is_nan())
}

fn float32() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("not NaN", |f| !f.is_nan())
}

fn value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        float().prop_map(Value::Float),
        text(16).prop_map(Value::String),
        vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
    ];
    scalar.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::List),
            btree_map(text(8), inner, 0..6).prop_map(Value::Map),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    btree_map(text(8), value(), 0..4)
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(12), 0..3)
}

fn agent() -> impl Strategy<Value = AgentIdentifier> {
    (text(12), text(12), prop::option::of(text(8))).prop_map(
        |(agent_id, agent_type, instance_id)| AgentIdentifier {
            agent_id,
            agent_type,
            instance_id,
        },
    )
}

fn task_status() -> impl Strategy<Value = TaskStatus> {
    use TaskStatus::*;
    prop::sample::select(
        &[
            Pending, Accepted, InProgress, Completed, Failed, Cancelled, Rejected,
        ][..],
    )
}

fn agent_status() -> impl Strategy<Value = AgentStatus> {
    use AgentStatus::*;
    prop::sample::select(&[Active, Busy, Unresponsive, Dead][..])
}

fn task_request() -> impl Strategy<Value = Payload> {
    let constraint = (text(12), value()).prop_map(|(name, value)| TaskConstraint { name, value });
    (
        (text(12), text(12), text(24)),
        record(),
        vec(constraint, 0..3),
        prop::option::of(any::<u64>()),
        strings(),
        strings(),
    )
        .prop_map(
            |(
                (task_id, task_type, description),
                parameters,
                constraints,
                deadline_ns,
                caps,
                deps,
            )| {
                Payload::TaskRequest(TaskRequest {
                    task_id,
                    task_type,
                    description,
                    parameters,
                    constraints,
                    deadline_ns,
                    required_capabilities: caps,
                    dependencies: deps,
                })
            },
        )
}

fn task_response() -> impl Strategy<Value = Payload> {
    let details =
        (text(8), text(24), prop::option::of(value())).prop_map(|(code, message, details)| {
            ErrorDetails {
                code,
                message,
                details,
            }
        });
    (
        text(12),
        task_status(),
        prop::option::of(value()),
        prop::option::of(details),
        prop::option::of(any::<u64>()),
        prop::option::of(float32()),
    )
        .prop_map(
            |(task_id, status, result, error, estimated_completion_ns, progress)| {
                Payload::TaskResponse(TaskResponse {
                    task_id,
                    status,
                    result,
                    error,
                    estimated_completion_ns,
                    progress,
                })
            },
        )
}

fn status_update() -> impl Strategy<Value = Payload> {
    (
        agent_status(),
        strings(),
        strings(),
        (
            float32(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        any::<[u64; 4]>(),
    )
        .prop_map(
            |(agent_status, current_tasks, available_capabilities, r, p)| {
                Payload::StatusUpdate(StatusUpdate {
                    agent_status,
                    current_tasks,
                    available_capabilities,
                    resource_usage: ResourceUsage {
                        cpu_percent: r.0,
                        memory_bytes: r.1,
                        queue_depth: r.2,
                        load: r.3,
                        capacity: r.4,
                    },
                    performance_metrics: PerformanceMetrics {
                        messages_processed: p[0],
                        avg_latency_ns: p[1],
                        p99_latency_ns: p[2],
                        error_count: p[3],
                    },
                })
            },
        )
}

fn coordination() -> impl Strategy<Value = Payload> {
    use CoordinationType::*;
    let kinds = [
        ConsensusRequest,
        LeaderElection,
        ResourceAllocation,
        WorkflowCoordination,
        ConflictResolution,
    ];
    let action =
        (text(12), record()).prop_map(|(action, parameters)| ProposedAction { action, parameters });
    (
        prop::sample::select(kinds.to_vec()),
        vec(agent(), 0..3),
        record(),
        prop::option::of(action),
    )
        .prop_map(
            |(coordination_type, participants, coordination_data, proposed_action)| {
                Payload::Coordination(Coordination {
                    coordination_type,
                    participants,
                    coordination_data,
                    proposed_action,
                })
            },
        )
}

/// Every payload type, every field drawn.
fn payload() -> impl Strategy<Value = Payload> {
    use ErrorKind::*;
    let error_kinds = [
        AgentUnreachable,
        MessageTooLarge,
        InvalidFormat,
        Unauthorized,
        Timeout,
        QueueFull,
        SerializationError,
        HandlerError,
    ];
    prop_oneof![
        task_request(),
        task_response(),
        (
            text(12),
            task_status(),
            prop::option::of(float32()),
            prop::option::of(text(16))
        )
            .prop_map(|(task_id, status, progress, message)| {
                Payload::TaskUpdate(TaskUpdate {
                    task_id,
                    status,
                    progress,
                    message,
                })
            }),
        status_update(),
        (text(12), text(12), float(), record()).prop_map(
            |(request_id, resource_type, amount, parameters)| {
                Payload::ResourceRequest(ResourceRequest {
                    request_id,
                    resource_type,
                    amount,
                    parameters,
                })
            }
        ),
        (text(12), any::<bool>(), float(), prop::option::of(text(16))).prop_map(
            |(request_id, granted, amount, reason)| {
                Payload::ResourceResponse(ResourceResponse {
                    request_id,
                    granted,
                    amount,
                    reason,
                })
            }
        ),
        coordination(),
        (text(16), record())
            .prop_map(|(event, data)| Payload::Notification(Notification { event, data })),
        (any::<u64>(), agent_status(), any::<u32>()).prop_map(|(sequence, status, load)| {
            Payload::Heartbeat(Heartbeat {
                sequence,
                status,
                load,
            })
        }),
        (prop::sample::select(error_kinds.to_vec()), text(24))
            .prop_map(|(kind, details)| Payload::Error(ErrorPayload { kind, details })),
        vec(any::<u8>(), 0..64).prop_map(Payload::Raw),
    ]
}

/// A message as a receiver copies it out: from nobody in particular (the bare decoder knows no
/// sender), no recipients named, flags a sender may set, every optional field drawn.
fn message() -> impl Strategy<Value = Message> {
    (
        payload(),
        (
            prop::sample::select(MessageType::ALL),
            prop::sample::select(MessagePriority::ALL),
            0u8..16,
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            prop::option::of(1u32..),
        ),
        (
            prop::option::of(any::<([u8; 16], [u8; 8])>()),
            prop::option::of(text(24)),
            btree_map(text(12), text(16), 0..3),
        ),
    )
        .prop_map(
            |(payload, (raw_type, priority, flags), ids, (trace, reply_to, metadata))| {
                let (id, timestamp_ns, correlation, ttl) = ids;
                let message_type = payload.message_type().unwrap_or(raw_type);
                let mut m = Message::new(message_type, AgentIdentifier::default(), payload);
                m.priority = priority;
                m.flags = Flags::from_bits(flags).expect("known bits");
                m.id = MessageId(id);
                m.timestamp_ns = timestamp_ns;
                m.correlation_id = MessageId(correlation);
                m.ttl = ttl.map(|ms| Duration::from_millis(ms as u64));
                if let Some((trace_id, span_id)) = trace {
                    m.trace = TraceContext { trace_id, span_id };
                }
                m.reply_to = reply_to;
                m.metadata = metadata;
                m
            },
        )
}

fn route() -> Route {
    Route {
        kind: RouteKind::Topic,
        destination: 9,
    }
}

/// A ring's producer and consumer with room for any message drawn here.
fn lane() -> (agentbus_ipc::ring::Producer, agentbus_ipc::ring::Consumer) {
    Ring::heap(RingOptions::new(1 << 17))
        .expect("a heap ring")
        .split()
}

/// The frame `message` encodes to, as a receiver finds it (16-byte aligned).
fn encoded(message: &Message) -> Result<AlignedVec<16>, EncodeError> {
    let (mut tx, mut rx) = lane();
    encode(&mut tx, &header_for(message, route(), 3), message)?;
    let frame = aligned(rx.peek().expect("a sound ring").expect("the frame"));
    Ok(frame)
}

/// What a decode of any bytes may come to: a message that copies out, or an error that says
/// why. Never a panic.
fn decodes_or_refuses(bytes: &[u8]) -> Result<(), TestCaseError> {
    let frame = aligned(bytes);
    match decode(&frame) {
        Ok(env) => {
            prop_assert!(env.header.frame_len() <= frame.len());
            let _ = (env.raw(), env.payload(), env.id(), env.metadata("k"));
            if let Err(e) = env.to_message() {
                return Err(TestCaseError::fail(format!(
                    "validated but not copied out: {e}"
                )));
            }
            let _ = typed::<Order>(env.body);
        }
        Err(e) => prop_assert!(!e.reason.is_empty()),
    }
    Ok(())
}

/// How a valid frame is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Bits flipped at these places.
    Flip(Vec<(prop::sample::Index, u8)>),
    /// A run of bytes overwritten.
    Overwrite(prop::sample::Index, Vec<u8>),
    /// A run of bytes copied from elsewhere in the frame (plausible offsets, wrong places).
    Splice(prop::sample::Index, prop::sample::Index, usize),
    /// Cut short.
    Truncate(prop::sample::Index),
    /// Bytes from the body's end (where rkyv puts the root) flipped.
    FlipNearEnd(Vec<(u8, u8)>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        vec((any::<prop::sample::Index>(), 0u8..8), 1..8).prop_map(Damage::Flip),
        (any::<prop::sample::Index>(), vec(any::<u8>(), 1..24))
            .prop_map(|(at, bytes)| Damage::Overwrite(at, bytes)),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            1usize..32
        )
            .prop_map(|(from, to, len)| Damage::Splice(from, to, len)),
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        vec((0u8..64, 0u8..8), 1..4).prop_map(Damage::FlipNearEnd),
    ]
}

fn apply(damage: &Damage, frame: &[u8]) -> Vec<u8> {
    let mut b = frame.to_vec();
    let n = b.len();
    match damage {
        Damage::Flip(flips) => {
            for (i, bit) in flips {
                b[i.index(n)] ^= 1 << bit;
            }
        }
        Damage::Overwrite(at, bytes) => {
            let at = at.index(n);
            let end = (at + bytes.len()).min(n);
            b[at..end].copy_from_slice(&bytes[..end - at]);
        }
        Damage::Splice(from, to, len) => {
            let (from, to) = (from.index(n), to.index(n));
            let len = (*len).min(n - from).min(n - to);
            b.copy_within(from..from + len, to);
        }
        Damage::Truncate(at) => b.truncate(at.index(n)),
        Damage::FlipNearEnd(flips) => {
            for &(back, bit) in flips {
                let i = n.saturating_sub(1 + back as usize);
                b[i] ^= 1 << bit;
            }
        }
    }
    b
}

/// An application's own type, sent as a typed value.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Order {
    id: u64,
    symbol: String,
    legs: Vec<Leg>,
    note: Option<String>,
    side: Side,
}

#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Leg {
    px: i64,
    qty: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
enum Side {
    Buy,
    Sell,
}

fn order() -> impl Strategy<Value = Order> {
    (
        any::<u64>(),
        text(8),
        vec(
            (any::<i64>(), any::<u32>()).prop_map(|(px, qty)| Leg { px, qty }),
            0..4,
        ),
        prop::option::of(text(16)),
        prop::sample::select(&[Side::Buy, Side::Sell][..]),
    )
        .prop_map(|(id, symbol, legs, note, side)| Order {
            id,
            symbol,
            legs,
            note,
            side,
        })
}

/// The frame a typed `order` encodes to.
fn typed_frame(order: &Order) -> AlignedVec<16> {
    let (mut tx, mut rx) = lane();
    let header = codec::bare_header(route(), MessagePriority::Normal);
    encode_typed(&mut tx, &header, &Extras::NONE, order).expect("an order fits");
    let frame = aligned(rx.peek().expect("a sound ring").expect("the frame"));
    frame
}

/// A value nested `depth` lists or maps deep (as `shape`'s bits say, level by level), built
/// without recursion, and dropped without it by [`dismantle`].
fn nested(depth: usize, shape: u64) -> Value {
    let mut v = Value::String("leaf".into());
    for level in 0..depth {
        v = if shape >> (level % 64) & 1 == 1 {
            Value::Map(record! { "k" => v })
        } else {
            Value::List(vec![Value::Null, v])
        };
    }
    v
}

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
        decodes_or_refuses(&bytes)?;
    }

    /// A valid header announcing a spec payload, then arbitrary bytes as its archive: the
    /// validator sees every shape of garbage.
    #[test]
    fn arbitrary_archives_never_panic(
        message in (prop::sample::select(MessageType::ALL), any::<u64>()),
        body in vec(any::<u8>(), 0..512),
    ) {
        let m = Message::new(message.0, AgentIdentifier::default(), Payload::Raw(Vec::new()));
        let mut h = header_for(&m, route(), 1);
        h.message_id = MessageId(message.1);
        h.body_len = body.len() as u32;
        let mut bytes = vec![0; HEADER_LEN];
        h.write(&mut bytes);
        bytes.extend_from_slice(&body);
        decodes_or_refuses(&bytes)?;
        // And read as a typed value.
        let _ = typed::<Order>(BodyRef::Typed(&aligned(&body)));
    }

    /// A message of any type, with every optional field, comes back as it was sent.
    #[test]
    fn encoded_messages_round_trip(message in message()) {
        let frame = encoded(&message).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let env = decode(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(env.header.frame_len(), frame.len());
        let back = env.to_message().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, message);
    }

    /// A valid frame damaged in any of several ways: it decodes and copies out, or is refused.
    #[test]
    fn damaged_frames_never_panic(message in message(), damage in vec(damage(), 1..3)) {
        let frame = encoded(&message).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut bytes = frame.to_vec();
        for d in &damage {
            if bytes.is_empty() {
                break;
            }
            bytes = apply(d, &bytes);
        }
        decodes_or_refuses(&bytes)?;
    }

    /// A typed value round-trips; damaged, it validates or is refused, never panics.
    #[test]
    fn typed_bodies_round_trip_and_damaged_never_panic(order in order(), damage in damage()) {
        let frame = typed_frame(&order);
        let env = decode(&frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let archived = typed::<Order>(env.body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = rkyv::deserialize::<Order, rkyv::rancor::Error>(archived)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, order);
        let bytes = apply(&damage, &frame);
        if let Ok(env) = decode(&aligned(&bytes)) {
            if let Ok(archived) = typed::<Order>(env.body) {
                let copied = rkyv::deserialize::<Order, rkyv::rancor::Error>(archived);
                prop_assert!(copied.is_ok(), "validated but not copied out");
            }
        }
    }

    /// Values of any depth around the limit: at most MAX_VALUE_DEPTH deep they round-trip, past
    /// it the encoder refuses them; none overflows a 2 MiB stack either way.
    #[test]
    fn values_round_trip_or_are_refused_as_too_deep(
        depth in 0usize..MAX_VALUE_DEPTH * 2,
        shape in any::<u64>(),
    ) {
        let outcome = fuzz_support::on_small_stack(move || {
            let m = Message::notification(
                AgentIdentifier::default(),
                Notification { event: "deep".into(), data: record! { "v" => nested(depth, shape) } },
            );
            let result = encoded(&m).map(|frame| {
                decode(&frame).and_then(|env| env.to_message()).map(|back| back == m)
            });
            result
        });
        match outcome {
            Ok(decoded) => {
                prop_assert!(depth <= MAX_VALUE_DEPTH, "{} deep was encoded", depth);
                prop_assert_eq!(decoded, Ok(true));
            }
            Err(e) => {
                prop_assert!(depth > MAX_VALUE_DEPTH, "{} deep refused: {}", depth, e);
                prop_assert_eq!(e, EncodeError::TooDeep { max: MAX_VALUE_DEPTH });
            }
        }
    }
}
