//! Fuzzing the control protocol (`control::decode_request`, `decode_response`, `FrameReader`):
//! whatever a client or agentd writes on the socket, decoding never panics; every request and
//! response round-trips through `encode_frame` and a `FrameReader` fed the stream in pieces cut
//! anywhere.
//!
//! Short run: `cargo test -p agentbus --test fuzz_control`; long run:
//! `FUZZ_CASES=100000 cargo test -p agentbus --release --test fuzz_control`.

mod fuzz_support;

use agentbus::control::*;
use agentbus::{AgentIdentifier, AgentStatus, MessageType, RouteKind};
use fuzz_support::{aligned, config};
use proptest::collection::vec;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,16}"
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..4)
}

fn agent() -> impl Strategy<Value = AgentIdentifier> {
    (text(), text(), prop::option::of(text())).prop_map(|(agent_id, agent_type, instance_id)| {
        AgentIdentifier {
            agent_id,
            agent_type,
            instance_id,
        }
    })
}

fn address() -> impl Strategy<Value = AgentAddress> {
    (any::<u32>(), any::<u32>()).prop_map(|(slot, epoch)| AgentAddress { slot, epoch })
}

fn access() -> impl Strategy<Value = Access> {
    let principal = prop_oneof![
        text().prop_map(Principal::Agent),
        text().prop_map(Principal::Type),
    ];
    prop_oneof![
        Just(Access::Anyone),
        vec(principal, 0..4).prop_map(Access::Only)
    ]
}

fn topic_config() -> impl Strategy<Value = TopicConfig> {
    use BackPressure::*;
    (
        prop::sample::select(vec![Block, DeadLetterSlow, DropOldest]),
        any::<u32>(),
        any::<u32>(),
        access(),
        access(),
    )
        .prop_map(
            |(back_pressure, max_message_size, history, publishers, subscribers)| TopicConfig {
                back_pressure,
                max_message_size,
                history,
                publishers,
                subscribers,
            },
        )
}

/// Every request agentd takes.
fn request() -> impl Strategy<Value = Request> {
    let attach = (
        any::<u32>(),
        text(),
        text(),
        prop::option::of(text()),
        strings(),
        any::<u32>(),
    )
        .prop_map(
            |(protocol, agent_id, agent_type, instance_id, capabilities, max_capacity)| {
                Request::Attach(AttachRequest {
                    protocol,
                    agent_id,
                    agent_type,
                    instance_id,
                    capabilities,
                    max_capacity,
                })
            },
        );
    let topic = (text(), prop::option::of(topic_config()))
        .prop_map(|(name, config)| Request::CreateTopic(TopicRequest { name, config }));
    let dead_letter = (vec(any::<u8>(), 0..128), text())
        .prop_map(|(frame, reason)| Request::DeadLetter(ClientDeadLetter { frame, reason }));
    prop_oneof![
        attach,
        Just(Request::Detach),
        text().prop_map(Request::ResolveAgent),
        address().prop_map(Request::IdentifySlot),
        topic,
        text().prop_map(Request::Subscribe),
        any::<u64>().prop_map(Request::Unsubscribe),
        strings().prop_map(Request::InternCapabilities),
        text().prop_map(Request::InternType),
        Just(Request::ListAgents),
        Just(Request::ListTopics),
        Just(Request::Stats),
        (any::<u64>(), any::<u32>())
            .prop_map(|(from, max)| Request::DeadLetters(PageRequest { from, max })),
        Just(Request::PurgeDeadLetters),
        any::<u64>().prop_map(Request::RetryDeadLetter),
        dead_letter,
        text().prop_map(Request::OpenChannel),
        any::<u64>().prop_map(Request::CloseChannel),
        (
            text(),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            any::<u8>(),
            any::<bool>()
        )
            .prop_map(|(name, (units, capacity, ttl_ms), priority, wait)| {
                Request::AcquireLease(LeaseRequest {
                    name,
                    units,
                    capacity,
                    ttl_ms,
                    priority,
                    wait,
                })
            }),
        lease_token().prop_map(Request::RenewLease),
        lease_token().prop_map(Request::ReleaseLease),
    ]
}

fn lease_token() -> impl Strategy<Value = LeaseToken> {
    (text(), any::<u64>()).prop_map(|(name, token)| LeaseToken { name, token })
}

fn lease_grant() -> impl Strategy<Value = LeaseGrant> {
    (text(), any::<u32>(), any::<u64>(), any::<u32>()).prop_map(|(name, units, token, ttl_ms)| {
        LeaseGrant {
            name,
            units,
            token,
            ttl_ms,
        }
    })
}

fn agent_status() -> impl Strategy<Value = AgentStatus> {
    use AgentStatus::*;
    prop::sample::select(vec![Active, Busy, Unresponsive, Dead])
}

fn agent_info() -> impl Strategy<Value = AgentInfo> {
    (
        (
            address(),
            text(),
            text(),
            prop::option::of(text()),
            strings(),
        ),
        (
            agent_status(),
            any::<u32>(),
            any::<u32>(),
            any::<i32>(),
            any::<u32>(),
        ),
        any::<[u64; 10]>(),
    )
        .prop_map(
            |(
                (a, agent_id, agent_type, instance_id, capabilities),
                (status, load, capacity, pid, uid),
                n,
            )| {
                AgentInfo {
                    slot: a.slot,
                    epoch: a.epoch,
                    agent_id,
                    agent_type,
                    instance_id,
                    capabilities,
                    status,
                    load,
                    capacity,
                    pid,
                    uid,
                    frames_sent: n[0],
                    frames_delivered: n[1],
                    frames_dead: n[2],
                    copies_received: n[3],
                    copies_delivered: n[4],
                    copies_dead: n[5],
                    destinations: n[6],
                    throttled: n[7],
                    copies_lost: n[8],
                    wakes_ignored: n[9],
                }
            },
        )
}

fn dead_letter_info() -> impl Strategy<Value = DeadLetterInfo> {
    (
        (any::<u64>(), any::<u64>()),
        (
            prop::sample::select(MessageType::ALL),
            prop::sample::select(RouteKind::ALL),
        ),
        (any::<u32>(), prop::option::of(any::<u32>())),
        text(),
        (any::<u64>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(
            |(
                (sequence, message_id),
                (message_type, route),
                (source_slot, destination_slot),
                reason,
                (at_ns, frame_len, retries),
            )| {
                DeadLetterInfo {
                    sequence,
                    message_id,
                    message_type,
                    route,
                    source_slot,
                    destination_slot,
                    reason,
                    at_ns,
                    frame_len,
                    retries,
                }
            },
        )
}

fn channel() -> impl Strategy<Value = ChannelInfo> {
    (any::<u64>(), agent(), any::<u8>()).prop_map(|(id, peer, side)| ChannelInfo { id, peer, side })
}

/// Every response agentd gives, pushes included.
fn response() -> impl Strategy<Value = Response> {
    use Refusal::*;
    let refusals = vec![
        Unauthorized,
        AlreadyAttached,
        NotAttached,
        VersionMismatch,
        BadRequest,
        NoSuchAgent,
        NoRoom,
        ShuttingDown,
    ];
    let topic_info = (any::<u64>(), text(), any::<u32>(), topic_config()).prop_map(
        |(id, name, subscribers, config)| TopicInfo {
            id,
            name,
            subscribers,
            config,
        },
    );
    let stats = (any::<[u64; 8]>(), any::<u32>()).prop_map(|(n, agents)| BusStats {
        passes: n[0],
        frames_in: n[1],
        delivered: n[2],
        dead_lettered: n[3],
        faulted: n[4],
        agents,
        dead_letters_held: n[5],
        dead_letter_bytes: n[6],
        dead_letters_evicted: n[7],
    });
    let page = (
        vec(dead_letter_info(), 0..3),
        any::<u64>(),
        any::<bool>(),
        any::<[u64; 2]>(),
    )
        .prop_map(|(letters, next, more, n)| DeadLetterPage {
            letters,
            next,
            more,
            total: n[0],
            evicted: n[1],
        });
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
            |(slot, epoch, heartbeat_interval_ms)| {
                Response::Attached(AttachInfo {
                    slot,
                    epoch,
                    heartbeat_interval_ms,
                })
            }
        ),
        Just(Response::Done),
        address().prop_map(Response::Agent),
        agent().prop_map(Response::Identity),
        any::<u64>().prop_map(Response::Id),
        (any::<u64>(), any::<bool>())
            .prop_map(|(id, may_publish)| Response::Topic(TopicGrant { id, may_publish })),
        vec(agent_info(), 0..3).prop_map(Response::Agents),
        vec(topic_info, 0..3).prop_map(Response::Topics),
        stats.prop_map(Response::Stats),
        page.prop_map(Response::DeadLetters),
        any::<u64>().prop_map(Response::Purged),
        (prop::sample::select(refusals), text())
            .prop_map(|(kind, message)| Response::Refused(Refused { kind, message })),
        channel().prop_map(Response::ChannelOpened),
        channel().prop_map(|c| Response::Push(Push::ChannelOffer(c))),
        lease_grant().prop_map(|g| Response::Push(Push::LeaseGranted(g))),
        lease_grant().prop_map(Response::Lease),
        (any::<u32>(), strings()).prop_map(|(position, holders)| Response::LeaseQueued(
            LeaseQueued { position, holders }
        )),
    ]
}

/// Feeds `stream` to a reader in pieces cut at `cuts` (sorted, deduplicated), taking every
/// whole frame out after each piece.
fn read_in_pieces(
    stream: &[u8],
    cuts: &[prop::sample::Index],
) -> Result<Vec<rkyv::util::AlignedVec>, FrameError> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    at.push(stream.len());
    at.sort_unstable();
    at.dedup();
    let mut reader = FrameReader::default();
    let mut frames = Vec::new();
    let mut from = 0;
    for to in at {
        reader.push(&stream[from..to]);
        from = to;
        while let Some(frame) = reader.next_frame()? {
            frames.push(frame);
        }
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(config(1024))]

    /// Any bytes at all, aligned as a reader hands them over or not: never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), offset in 0usize..16) {
        let buf = aligned(&bytes);
        let _ = decode_request(&buf);
        let _ = decode_response(&buf);
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(&bytes);
        let _ = decode_request(&shifted[offset..]);
        let _ = decode_response(&shifted[offset..]);
    }

    /// A reader fed any bytes in any pieces: whole frames of the length they announce, `None`
    /// while one is incomplete, and an error only for a length over the limit.
    #[test]
    fn a_reader_fed_arbitrary_bytes_never_panics(
        pieces in vec(
            prop_oneof![
                vec(any::<u8>(), 0..64),
                // A plausible length prefix, sometimes over the limit.
                prop_oneof![0u32..96, any::<u32>()].prop_map(|n| n.to_le_bytes().to_vec()),
            ],
            0..8,
        ),
    ) {
        let mut reader = FrameReader::default();
        let mut fed = Vec::new();
        let mut taken = 0;
        for piece in pieces {
            reader.push(&piece);
            fed.extend_from_slice(&piece);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        let len = u32::from_le_bytes(fed[taken..taken + 4].try_into().expect("4 bytes"));
                        prop_assert_eq!(frame.len(), len as usize);
                        prop_assert_eq!(&frame[..], &fed[taken + 4..taken + 4 + frame.len()]);
                        taken += 4 + frame.len();
                        let _ = decode_request(&frame);
                        let _ = decode_response(&frame);
                    }
                    Ok(None) => {
                        let rest = fed.len() - taken;
                        let announced = fed.get(taken..taken + 4).map(|b| {
                            u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize
                        });
                        prop_assert!(announced.is_none_or(|n| rest < 4 + n), "a whole frame held back");
                        break;
                    }
                    Err(FrameError::TooLarge { len, max }) => {
                        prop_assert!(len > max);
                        return Ok(()); // the stream is unusable from here
                    }
                }
            }
        }
    }

    /// Requests round-trip through encode_frame and a reader fed the stream in any pieces.
    #[test]
    fn requests_round_trip_in_pieces(
        requests in vec(request(), 1..5),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = requests.iter().flat_map(encode_frame).collect();
        let frames = read_in_pieces(&stream, &cuts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(frames.len(), requests.len());
        for (frame, sent) in frames.iter().zip(&requests) {
            let got = decode_request(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, sent);
        }
    }

    /// Responses round-trip the same way.
    #[test]
    fn responses_round_trip_in_pieces(
        responses in vec(response(), 1..5),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream: Vec<u8> = responses.iter().flat_map(encode_frame).collect();
        let frames = read_in_pieces(&stream, &cuts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(frames.len(), responses.len());
        for (frame, sent) in frames.iter().zip(&responses) {
            let got = decode_response(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&got, sent);
        }
    }

    /// A valid request or response with bits flipped or cut short: decoded or refused, never
    /// a panic.
    #[test]
    fn damaged_messages_never_panic(
        request in request(),
        response in response(),
        flips in vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        for frame in [encode_frame(&request), encode_frame(&response)] {
            let mut body = frame[4..].to_vec();
            for (i, bit) in &flips {
                let i = i.index(body.len());
                body[i] ^= 1 << bit;
            }
            if let Some(cut) = cut {
                body.truncate(cut.index(body.len()));
            }
            let buf = aligned(&body);
            let _ = decode_request(&buf);
            let _ = decode_response(&buf);
        }
    }
}
