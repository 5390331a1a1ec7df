//! Reading the header: what monitor tools and the metrics endpoint see, read-only.

use std::sync::atomic::Ordering;

use agentbus::{MessagePriority, MessageType, RouteKind, TraceContext};
use agentbus_ipc::segment::{NamedSegment, OpenError};
use agentbus_ipc::words::WordTable;

use super::histogram::Latency;
use super::layout::{record, topic, trace, word, Layout, TYPE_CAP, TYPE_WORDS};
use super::{DeadKind, RegistryEntry, RouterTotals, SlotMetrics, MAGIC, VERSION};
use crate::router::slot_counter;

/// The `to` index of a message that went to several agents (a topic, a broadcast, a list).
pub const MULTICAST: u8 = 254;
/// The `to` index of a message that reached nobody (dead-lettered before it had a destination).
pub const UNROUTED: u8 = 255;

/// Why a header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No header: no agentd serves the bus (or it never started).
    #[error("no agentd serves bus {bus:?}: there is no /dev/shm/{segment} (start one with `agentd --bus {bus}`, or name the bus with --bus)")]
    NoAgentd {
        /// The bus asked for.
        bus: String,
        /// The header segment's name.
        segment: String,
    },
    /// The header exists but this user may not read it.
    #[error("the header of bus {bus:?} is not readable by this user: run as agentd's user or a member of its ops group")]
    PermissionDenied {
        /// The bus asked for.
        bus: String,
    },
    /// The agentd that wrote the header is gone (it crashed; the next agentd replaces it).
    #[error("agentd (pid {pid}) of bus {bus:?} is gone: it left its header behind (a new `agentd --bus {bus}` replaces it)")]
    AgentdGone {
        /// The bus asked for.
        bus: String,
        /// The pid it recorded.
        pid: u32,
    },
    /// Not a header this build understands.
    #[error("/dev/shm/{segment} is not a bus header this agentbus reads ({why})")]
    Foreign {
        /// The header segment's name.
        segment: String,
        /// What is wrong with it.
        why: String,
    },
    /// The operating system refused.
    #[error("cannot map the header of bus {bus:?}: {source}")]
    Os {
        /// The bus asked for.
        bus: String,
        /// What failed.
        source: OpenError,
    },
}

/// One agent: its registry record, the router's counters, and its lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMetrics {
    /// Who it is.
    pub entry: RegistryEntry,
    /// Frames the router took from its lanes.
    pub sent: u64,
    /// Of those, frames dead-lettered (for at least one destination).
    pub dead: u64,
    /// Copies written into its lanes.
    pub received: u64,
    /// Copies meant for it dropped under a topic's policy (its lane was full).
    pub lost: u64,
    /// Times it was throttled for making too many dead letters.
    pub throttled: u64,
    /// Wake-ups it sent the router for nothing.
    pub wakes_ignored: u64,
    /// Its lanes and bytes.
    pub lanes: SlotMetrics,
    /// How long ago it last beat, ns (from the router's last publication).
    pub heartbeat_age_ns: u64,
}

/// One topic's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetrics {
    /// Its id.
    pub id: u64,
    /// Its name (cut to 64 bytes).
    pub name: String,
    /// Messages published.
    pub publishes: u64,
    /// Copies delivered.
    pub deliveries: u64,
    /// Copies dropped or dead-lettered.
    pub dead: u64,
    /// Bytes published.
    pub bytes: u64,
    /// Subscribers now.
    pub subscribers: u64,
}

/// Messages sent, by sender type, destination type, message type and priority (the spec's
/// `agent_messages_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageCount {
    /// The sender's agent type.
    pub from: String,
    /// The destination's agent type, `multicast` for several, `none` when it reached nobody.
    pub to: String,
    /// The message's type.
    pub message_type: MessageType,
    /// Its priority.
    pub priority: MessagePriority,
    /// How many.
    pub count: u64,
}

/// One traced message as the router logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// Its trace context.
    pub trace: TraceContext,
    /// Its id.
    pub message_id: u64,
    /// The message it answers or follows.
    pub correlation_id: u64,
    /// Sender slot.
    pub slot: u32,
    /// Sender slot epoch.
    pub epoch: u32,
    /// The sender's agent type.
    pub from_type: String,
    /// Message type (`None`: a byte this build does not know).
    pub message_type: Option<MessageType>,
    /// Priority.
    pub priority: Option<MessagePriority>,
    /// Route kind.
    pub route: Option<RouteKind>,
    /// The header's destination word.
    pub destination: u64,
    /// When the sender stamped it, realtime ns.
    pub sent_ns: u64,
    /// When the router routed it, realtime ns.
    pub routed_ns: u64,
    /// Copies delivered.
    pub copies: u32,
    /// Copies dead-lettered.
    pub dead: u32,
    /// Bytes of the frame.
    pub bytes: u64,
}

/// Everything the header holds, read at one moment (each number at most a millisecond behind
/// the router while it is busy).
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// agentd's pid.
    pub pid: u32,
    /// When agentd started, realtime ns.
    pub started_ns: u64,
    /// When this was read, monotonic ns (the clock of the router's beat).
    pub read_at: u64,
    /// Whether the router keeps per-message metrics (latency, message counts, topics).
    pub metrics_on: bool,
    /// The router's totals.
    pub router: RouterTotals,
    /// Agents attached, as the control thread counts them.
    pub agents_attached: u64,
    /// Dead letters by kind.
    pub dead_by_kind: Vec<(DeadKind, u64)>,
    /// Busy passes by frames handled: 1, 2-3, 4-7, ..., 128 and more.
    pub batches: [u64; 8],
    /// Routing latency: from the sender's stamp to the router's pass that routed it.
    pub latency: Latency,
    /// The agents in slots.
    pub agents: Vec<AgentMetrics>,
    /// Topics.
    pub topics: Vec<TopicMetrics>,
    /// Messages by sender type, destination, type and priority.
    pub messages: Vec<MessageCount>,
    /// Message counts that found their section full (not in `messages`).
    pub messages_uncounted: u64,
    /// Trace records the log holds (0: tracing off).
    pub trace_capacity: usize,
}

/// A bus header mapped read-only.
#[derive(Debug)]
pub struct HeaderReader {
    _segment: NamedSegment,
    words: WordTable,
    layout: Layout,
    bus: String,
}

impl HeaderReader {
    /// Maps bus `bus`'s header read-only and checks it is one this build reads, written by a
    /// live agentd.
    pub fn open(bus: &str) -> Result<HeaderReader, ReadError> {
        let segment = agentbus::paths::header_segment_name(bus);
        let seg = NamedSegment::open(&segment, false, 8 * word::LATENCY).map_err(|e| match e {
            OpenError::NoSuchSegment { .. } => ReadError::NoAgentd {
                bus: bus.into(),
                segment: segment.clone(),
            },
            OpenError::PermissionDenied { .. } => ReadError::PermissionDenied { bus: bus.into() },
            source => ReadError::Os {
                bus: bus.into(),
                source,
            },
        })?;
        let words = WordTable::new(seg.region()).expect("segments are page-aligned");
        let foreign = |why: String| ReadError::Foreign {
            segment: segment.clone(),
            why,
        };
        // Acquire pairs with the Release store of the magic in `BusHeader::create`.
        if words.load(word::MAGIC, Ordering::Acquire) != MAGIC {
            return Err(foreign(
                "no magic: not a header, or agentd is still starting".into(),
            ));
        }
        let version = words.load(word::VERSION, Ordering::Relaxed);
        if version != VERSION {
            return Err(foreign(format!(
                "layout version {version}, this build reads {VERSION}: use the agentbus of the agentd that runs"
            )));
        }
        let layout = Layout::read(&words)
            .ok_or_else(|| foreign("its section sizes do not fit its length".into()))?;
        let pid = words.load(word::PID, Ordering::Relaxed) as u32;
        if !process_alive(pid) {
            return Err(ReadError::AgentdGone {
                bus: bus.into(),
                pid,
            });
        }
        Ok(HeaderReader {
            _segment: seg,
            words,
            layout,
            bus: bus.into(),
        })
    }

    /// The bus it reads.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Whether agentd still serves this header: false once it stopped (it clears the magic
    /// before removing the name) or its process is gone. A monitor that finds it false maps
    /// the bus's header again ([`HeaderReader::open`]) to find a new agentd, or none.
    pub fn is_current(&self) -> bool {
        // Acquire pairs with the Release store of the magic in `BusHeader::unlink`.
        self.words.load(word::MAGIC, Ordering::Acquire) == MAGIC
            && process_alive(self.words.load(word::PID, Ordering::Relaxed) as u32)
    }

    fn get(&self, i: usize) -> u64 {
        self.words.load(i, Ordering::Relaxed)
    }

    /// Reads everything but the trace log.
    pub fn snapshot(&self) -> Snapshot {
        let read_at = agentbus_ipc::clock::monotonic_ns();
        let router = RouterTotals::read(&self.words);
        let types = self.types();
        let type_name = |i: u8| match i {
            MULTICAST => "multicast".to_string(),
            UNROUTED => "none".to_string(),
            i => types
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| "other".into()),
        };
        let mut latency = Latency::empty();
        for (i, c) in latency.counts.iter_mut().enumerate() {
            *c = self.get(word::LATENCY + i);
        }
        latency.sum_ns = self.get(word::ROUTER + super::layout::router::LATENCY_SUM_NS);
        let mut messages = Vec::new();
        for i in 0..self.layout.sizes.pairs {
            let key = self.get(self.layout.pairs + i * 2);
            let count = self.get(self.layout.pairs + i * 2 + 1);
            let Some(k) = key.checked_sub(1) else {
                continue;
            };
            let (Some(message_type), Some(priority)) = (
                MessageType::from_u8((k >> 16) as u8),
                MessagePriority::from_u8((k >> 24) as u8),
            ) else {
                continue;
            };
            messages.push(MessageCount {
                from: type_name(k as u8),
                to: type_name((k >> 8) as u8),
                message_type,
                priority,
                count,
            });
        }
        Snapshot {
            pid: self.get(word::PID) as u32,
            started_ns: self.get(word::STARTED_NS),
            read_at,
            metrics_on: self.get(word::METRICS_ON) == 1,
            router,
            agents_attached: self.get(word::AGENTS),
            dead_by_kind: DeadKind::ALL
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, self.get(word::DEAD_KINDS + i)))
                .collect(),
            batches: std::array::from_fn(|i| self.get(word::BATCHES + i)),
            latency,
            agents: self.agents(router.beat),
            topics: self.topics(),
            messages,
            messages_uncounted: self.get(word::PAIRS_OVERFLOW),
            trace_capacity: self.layout.sizes.trace,
        }
    }

    fn types(&self) -> Vec<String> {
        // Acquire pairs with the Release store of the count in `HeaderWords::publish_type`.
        let n = (self.words.load(word::TYPES, Ordering::Acquire) as usize).min(TYPE_CAP);
        (0..n)
            .map(|i| {
                printable(
                    self.words
                        .load_str(self.layout.types + i * TYPE_WORDS, TYPE_WORDS),
                )
            })
            .collect()
    }

    fn agents(&self, beat: u64) -> Vec<AgentMetrics> {
        let mut out = Vec::new();
        for slot in 0..self.layout.sizes.slots {
            let Some(entry) = self.read_record(slot) else {
                continue;
            };
            let base = self.layout.record(slot);
            let c = |which| self.get(base + record::COUNTERS + which);
            let lanes4 = |at: usize| std::array::from_fn(|p| self.get(base + at + p));
            let lanes = SlotMetrics {
                bytes_sent: self.get(base + record::BYTES_SENT),
                bytes_received: self.get(base + record::BYTES_RECEIVED),
                heartbeat: self.get(base + record::HEARTBEAT),
                load: self.get(base + record::LOAD),
                in_depth: lanes4(record::IN_DEPTH),
                in_high: lanes4(record::IN_HIGH),
                in_full: lanes4(record::IN_FULL),
                out_full: lanes4(record::OUT_FULL),
                lane_capacity: self.get(base + record::LANE_CAPACITY),
                out_waiting: self.get(base + record::OUT_WAITING),
            };
            out.push(AgentMetrics {
                entry,
                sent: c(slot_counter::SENT),
                dead: c(slot_counter::DEAD),
                received: c(slot_counter::RECEIVED),
                lost: c(slot_counter::LOST),
                throttled: c(slot_counter::THROTTLED),
                wakes_ignored: c(slot_counter::WAKES_IGNORED),
                heartbeat_age_ns: beat.saturating_sub(lanes.heartbeat),
                lanes,
            });
        }
        out
    }

    /// Slot `slot`'s identity, if an agent holds it; records being rewritten at that instant
    /// are retried a few times, then skipped.
    fn read_record(&self, slot: usize) -> Option<RegistryEntry> {
        let base = self.layout.record(slot);
        let w = &self.words;
        for _ in 0..8 {
            // SYNC POINT with the Release stores of the generation in `publish_slot`.
            let before = w.load(base + record::GEN, Ordering::Acquire);
            if before == 0 {
                return None; // never used
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let entry = RegistryEntry {
                slot: slot as u32,
                epoch: self.get(base + record::EPOCH) as u32,
                pid: self.get(base + record::PID) as u32,
                uid: self.get(base + record::UID) as u32,
                capacity: self.get(base + record::CAPACITY) as u32,
                agent_id: printable(w.load_str(base + record::ID, record::NAME_WORDS)),
                agent_type: printable(w.load_str(base + record::TYPE, record::NAME_WORDS)),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if w.load(base + record::GEN, Ordering::Relaxed) == before {
                return (!entry.agent_id.is_empty()).then_some(entry);
            }
        }
        None
    }

    fn topics(&self) -> Vec<TopicMetrics> {
        let mut out = Vec::new();
        for id in 0..self.layout.sizes.topics {
            let base = self.layout.topic(id);
            // Acquire pairs with the Release store of the flag in `HeaderWords::name_topic`.
            if self.words.load(base + topic::NAMED, Ordering::Acquire) != 1 {
                continue;
            }
            out.push(TopicMetrics {
                id: id as u64,
                name: printable(self.words.load_str(base + topic::NAME, record::NAME_WORDS)),
                publishes: self.get(base + topic::PUBLISHES),
                deliveries: self.get(base + topic::DELIVERIES),
                dead: self.get(base + topic::DEAD),
                bytes: self.get(base + topic::BYTES),
                subscribers: self.get(base + topic::SUBSCRIBERS),
            });
        }
        out
    }

    /// The trace log's records of trace `trace_id` (all of them for `None`), oldest first.
    pub fn trace(&self, trace_id: Option<[u8; 16]>) -> Vec<TraceRecord> {
        let cap = self.layout.sizes.trace;
        if cap == 0 {
            return Vec::new();
        }
        let types = self.types();
        let next = self.get(word::TRACE_NEXT);
        let first = next.saturating_sub(cap as u64);
        let mut out = Vec::new();
        for n in first..next {
            let base = self.layout.trace_record((n % cap as u64) as usize);
            let want = n * 2 + 2;
            // SYNC POINT with the Release store of the sequence in `HeaderWords::log_trace`.
            if self.words.load(base + trace::SEQ, Ordering::Acquire) != want {
                continue; // overwritten meanwhile, or being written
            }
            let hi = self.get(base + trace::TRACE_HI).to_be_bytes();
            let lo = self.get(base + trace::TRACE_LO).to_be_bytes();
            let who = self.get(base + trace::WHO);
            let outcome = self.get(base + trace::OUTCOME);
            let r = TraceRecord {
                trace: TraceContext {
                    trace_id: std::array::from_fn(|i| if i < 8 { hi[i] } else { lo[i - 8] }),
                    span_id: self.get(base + trace::SPAN).to_be_bytes(),
                },
                message_id: self.get(base + trace::MESSAGE_ID),
                correlation_id: self.get(base + trace::CORRELATION),
                slot: (who & 0xffff) as u32,
                epoch: (who >> 16 & 0xffff) as u32,
                from_type: types
                    .get((who >> 56) as usize)
                    .cloned()
                    .unwrap_or_else(|| "?".into()),
                message_type: MessageType::from_u8((who >> 32) as u8),
                priority: MessagePriority::from_u8((who >> 40) as u8),
                route: RouteKind::from_u8((who >> 48) as u8),
                destination: self.get(base + trace::DESTINATION),
                sent_ns: self.get(base + trace::SENT_NS),
                routed_ns: self.get(base + trace::ROUTED_NS),
                copies: outcome as u32,
                dead: (outcome >> 32) as u32,
                bytes: self.get(base + trace::BYTES),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if self.words.load(base + trace::SEQ, Ordering::Relaxed) != want {
                continue;
            }
            if trace_id.is_none_or(|t| t == r.trace.trace_id) {
                out.push(r);
            }
        }
        out
    }
}

impl Snapshot {
    /// Maps bus `bus`'s header read-only and reads it.
    pub fn read(bus: &str) -> Result<Snapshot, ReadError> {
        Ok(HeaderReader::open(bus)?.snapshot())
    }

    /// Dead letters of one kind.
    pub fn dead_of(&self, kind: DeadKind) -> u64 {
        self.dead_by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }
}

/// A name as agents chose it, without control characters: what `top` and `stat` print must
/// not carry an agent's terminal escape sequences to an operator's terminal.
fn printable(name: String) -> String {
    match agentbus::text::printable(&name) {
        std::borrow::Cow::Borrowed(_) => name,
        std::borrow::Cow::Owned(safe) => safe,
    }
}

/// Whether process `pid` exists (signal 0: EPERM means it does, as another user's).
pub fn process_alive(pid: u32) -> bool {
    use nix::errno::Errno;
    let Ok(p) = i32::try_from(pid) else {
        return false;
    };
    pid != 0
        && matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
            Ok(()) | Err(Errno::EPERM)
        )
}
