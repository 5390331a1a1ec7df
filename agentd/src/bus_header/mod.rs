//! The bus header: a named segment (`/dev/shm/agentbus.<bus>.ctl`) that monitor tools map
//! read-only, so they work even when agentd's control thread is wedged (Aeron's `cnc.dat`
//! idea): agentd's pid and start, the router's heartbeat and totals, the registry of agents
//! with their counters and lanes, agent types, topics, message counts, the routing-latency
//! histogram and, when tracing is on, a trace log. [`layout`] says where each is and who
//! writes it.
//!
//! Every number has one writer. The router keeps its counters in its own memory while it
//! routes (plain adds, no atomics, no system calls) and copies them here about once a
//! millisecond while busy and before each sleep; so a reader sees numbers at most a
//! millisecond old, and exact ones once the router is idle. Registry records are written by
//! the control thread seqlock-style: the generation is odd while a record is being written, so
//! a reader that sees the same even generation before and after its read has a whole record.
//! [`Snapshot::read`] is the reader.

use std::sync::atomic::Ordering;

use agentbus_ipc::segment::{CreateError, NamedSegment, OpenError};
use agentbus_ipc::words::WordTable;

pub mod histogram;
pub mod layout;
mod snapshot;

pub use layout::{Layout, Sizes};
pub use snapshot::{
    process_alive, AgentMetrics, HeaderReader, MessageCount, ReadError, Snapshot, TopicMetrics,
    TraceRecord, MULTICAST, UNROUTED,
};

use layout::{record, topic, trace, word, TYPE_CAP, TYPE_WORDS};

/// One agent as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The agent's slot: not stored, it is the record's index.
    pub slot: u32,
    /// The slot's epoch at attach (1..=65535): with the slot, names this occupant; written 0
    /// when the slot is freed.
    pub epoch: u32,
    /// The agent's process id, from `SO_PEERCRED` at attach.
    pub pid: u32,
    /// The agent's user id, from `SO_PEERCRED` at attach.
    pub uid: u32,
    /// The most tasks the agent declared it holds (`max_capacity` at attach).
    pub capacity: u32,
    /// Agent id (cut to 64 bytes).
    pub agent_id: String,
    /// Agent type (cut to 64 bytes).
    pub agent_type: String,
}

const MAGIC: u64 = u64::from_le_bytes(*b"AGBUSCTL");
/// The header layout's version: a reader of another version refuses the header.
pub const VERSION: u64 = 2;

/// Why the router dead-lettered something: the header counts dead letters by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadKind {
    /// Its ttl (or the bus's delivery timeout) ran out before delivery.
    Expired,
    /// No destination: no such agent, no subscriber, no capable agent, nobody else.
    NoRoute,
    /// Larger than the topic allows.
    TooLarge,
    /// Its sender may not publish on the topic.
    Unauthorized,
    /// A protocol violation: an impossible destination, a corrupt lane.
    Protocol,
    /// A slow subscriber's full lane, under a dead-letter-slow topic.
    SlowSubscriber,
    /// The destination went away or could not take the frame.
    Undeliverable,
    /// A retried dead letter that failed again.
    RetryFailed,
}

impl DeadKind {
    /// Every kind, in header order.
    pub const ALL: [DeadKind; 8] = [
        DeadKind::Expired,
        DeadKind::NoRoute,
        DeadKind::TooLarge,
        DeadKind::Unauthorized,
        DeadKind::Protocol,
        DeadKind::SlowSubscriber,
        DeadKind::Undeliverable,
        DeadKind::RetryFailed,
    ];

    /// Its name in tools and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            DeadKind::Expired => "expired",
            DeadKind::NoRoute => "no_route",
            DeadKind::TooLarge => "too_large",
            DeadKind::Unauthorized => "unauthorized",
            DeadKind::Protocol => "protocol",
            DeadKind::SlowSubscriber => "slow_subscriber",
            DeadKind::Undeliverable => "undeliverable",
            DeadKind::RetryFailed => "retry_failed",
        }
    }
}

/// The router's totals, as it publishes them in the header (about once a millisecond while
/// busy, and before each sleep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterTotals {
    /// The router's heartbeat, monotonic ns.
    pub beat: u64,
    /// Passes made.
    pub passes: u64,
    /// Frames read from outbound lanes.
    pub frames_in: u64,
    /// Copies delivered.
    pub delivered: u64,
    /// Copies dead-lettered.
    pub dead: u64,
    /// Agents detached as faulty.
    pub faulted: u64,
    /// Nanoseconds spent idle.
    pub idle_ns: u64,
    /// Passes that handled a frame.
    pub busy_passes: u64,
    /// Bytes of the frames read from outbound lanes.
    pub bytes_in: u64,
    /// Copies dropped or dead-lettered under a topic's back-pressure policy.
    pub dropped: u64,
}

impl RouterTotals {
    /// The totals in a header's words (Relaxed: independent counters).
    fn read(words: &WordTable) -> RouterTotals {
        use layout::router as r;
        let at = |i| words.load(word::ROUTER + i, Ordering::Relaxed);
        RouterTotals {
            beat: words.load(word::ROUTER_BEAT, Ordering::Relaxed),
            passes: at(r::PASSES),
            frames_in: at(r::FRAMES_IN),
            delivered: at(r::DELIVERED),
            dead: at(r::DEAD),
            faulted: at(r::FAULTED),
            idle_ns: at(r::IDLE_NS),
            busy_passes: at(r::BUSY_PASSES),
            bytes_in: at(r::BYTES_IN),
            dropped: at(r::DROPPED),
        }
    }
}

/// One slot's numbers beyond the counters the control thread reads, as the router publishes
/// them ([`HeaderWords::publish_slot_metrics`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotMetrics {
    /// Bytes of the frames taken from its lanes.
    pub bytes_sent: u64,
    /// Bytes of the copies written into its lanes.
    pub bytes_received: u64,
    /// Its heartbeat, monotonic ns.
    pub heartbeat: u64,
    /// Its reported load.
    pub load: u64,
    /// Bytes waiting in each inbound lane.
    pub in_depth: [u64; 4],
    /// The most bytes seen waiting in each inbound lane.
    pub in_high: [u64; 4],
    /// Times each inbound lane was found full.
    pub in_full: [u64; 4],
    /// Times the agent found each outbound lane full.
    pub out_full: [u64; 4],
    /// Bytes per lane.
    pub lane_capacity: u64,
    /// Outbound lanes waiting for a full destination.
    pub out_waiting: u64,
}

/// One topic's counters, as the router publishes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicCounts {
    /// Messages published (routed once each).
    pub publishes: u64,
    /// Copies delivered.
    pub deliveries: u64,
    /// Copies dropped or dead-lettered.
    pub dead: u64,
    /// Bytes published.
    pub bytes: u64,
}

/// A traced message as the router logs it ([`HeaderWords::log_trace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEntry {
    /// Its trace context.
    pub trace: agentbus::TraceContext,
    /// Its routing header, as stamped by the router.
    pub header: agentbus::FrameHeader,
    /// When it was routed, realtime ns.
    pub routed_ns: u64,
    /// Copies delivered.
    pub copies: u32,
    /// Copies (or the whole frame) dead-lettered.
    pub dead: u32,
    /// The sender's agent type index.
    pub from_type: u8,
}

/// The header's words as a typed view: who writes what is in the method names (the router:
/// `publish_*` and `log_trace`; the control thread: [`set_agents`](Self::set_agents),
/// [`name_topic`](Self::name_topic) and the registry records; agentd at start: the pid and
/// the layout).
#[derive(Debug, Clone)]
pub struct HeaderWords {
    words: WordTable,
    layout: Layout,
}

impl HeaderWords {
    fn of(segment: &NamedSegment, layout: Layout) -> HeaderWords {
        HeaderWords {
            words: WordTable::new(segment.region()).expect("segments are page-aligned"),
            layout,
        }
    }

    /// The layout of the header.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn put(&self, index: usize, value: u64) {
        // Relaxed: every published number is an independent gauge or counter with a single
        // writer; readers want a recent value, not an ordering with other words.
        self.words.store(index, value, Ordering::Relaxed);
    }

    fn get(&self, index: usize) -> u64 {
        self.words.load(index, Ordering::Relaxed)
    }

    /// Publishes the router's totals (the router thread).
    pub fn publish_router(&self, totals: RouterTotals) {
        use layout::router as r;
        self.put(word::ROUTER_BEAT, totals.beat);
        let at = |i| word::ROUTER + i;
        self.put(at(r::PASSES), totals.passes);
        self.put(at(r::FRAMES_IN), totals.frames_in);
        self.put(at(r::DELIVERED), totals.delivered);
        self.put(at(r::DEAD), totals.dead);
        self.put(at(r::FAULTED), totals.faulted);
        self.put(at(r::IDLE_NS), totals.idle_ns);
        self.put(at(r::BUSY_PASSES), totals.busy_passes);
        self.put(at(r::BYTES_IN), totals.bytes_in);
        self.put(at(r::DROPPED), totals.dropped);
    }

    /// The router's totals as last published.
    pub fn router(&self) -> RouterTotals {
        RouterTotals::read(&self.words)
    }

    /// Publishes the dead letters by kind, in [`DeadKind::ALL`] order (the router).
    pub fn publish_dead_kinds(&self, counts: &[u64; 8]) {
        for (i, &c) in counts.iter().enumerate() {
            self.put(word::DEAD_KINDS + i, c);
        }
    }

    /// Publishes the busy passes by frames handled (the router).
    pub fn publish_batches(&self, counts: &[u64; 8]) {
        for (i, &c) in counts.iter().enumerate() {
            self.put(word::BATCHES + i, c);
        }
    }

    /// Publishes latency buckets `from..` (`counts` starts at bucket `from`) and the sum
    /// (the router).
    pub fn publish_latency(&self, from: usize, counts: &[u64], sum_ns: u64) {
        for (i, &c) in counts.iter().enumerate() {
            self.put(word::LATENCY + from + i, c);
        }
        self.put(word::ROUTER + layout::router::LATENCY_SUM_NS, sum_ns);
    }

    /// Publishes slot `slot`'s router counters ([`crate::router::slot_counter`] order; the
    /// router).
    pub fn publish_slot_counters(&self, slot: usize, counters: &[u64]) {
        if slot >= self.layout.sizes.slots {
            return;
        }
        let base = self.layout.record(slot) + record::COUNTERS;
        for (i, &c) in counters.iter().enumerate() {
            self.put(base + i, c);
        }
    }

    /// One router counter of slot `slot` (the control thread's agent listing).
    pub fn slot_counter(&self, slot: u32, which: usize) -> u64 {
        if slot as usize >= self.layout.sizes.slots {
            return 0;
        }
        self.get(self.layout.record(slot as usize) + record::COUNTERS + which)
    }

    /// Publishes slot `slot`'s lane and traffic numbers (the router).
    pub fn publish_slot_metrics(&self, slot: usize, m: &SlotMetrics) {
        if slot >= self.layout.sizes.slots {
            return;
        }
        let base = self.layout.record(slot);
        self.put(base + record::BYTES_SENT, m.bytes_sent);
        self.put(base + record::BYTES_RECEIVED, m.bytes_received);
        self.put(base + record::HEARTBEAT, m.heartbeat);
        self.put(base + record::LOAD, m.load);
        for p in 0..4 {
            self.put(base + record::IN_DEPTH + p, m.in_depth[p]);
            self.put(base + record::IN_HIGH + p, m.in_high[p]);
            self.put(base + record::IN_FULL + p, m.in_full[p]);
            self.put(base + record::OUT_FULL + p, m.out_full[p]);
        }
        self.put(base + record::LANE_CAPACITY, m.lane_capacity);
        self.put(base + record::OUT_WAITING, m.out_waiting);
    }

    /// Names agent type `index` (the router, once per new type): the name is written before
    /// the count of types is raised past it, which readers load first.
    pub fn publish_type(&self, index: usize, name: &str) {
        if index >= TYPE_CAP {
            return;
        }
        self.words
            .store_str(self.layout.types + index * TYPE_WORDS, TYPE_WORDS, name);
        // Release pairs with the Acquire load of the count in `Snapshot::read`.
        self.words
            .store(word::TYPES, index as u64 + 1, Ordering::Release);
    }

    /// Publishes topic `id`'s counters and subscribers (the router).
    pub fn publish_topic(&self, id: usize, counts: &TopicCounts, subscribers: u64) {
        if id >= self.layout.sizes.topics {
            return;
        }
        let base = self.layout.topic(id);
        self.put(base + topic::PUBLISHES, counts.publishes);
        self.put(base + topic::DELIVERIES, counts.deliveries);
        self.put(base + topic::DEAD, counts.dead);
        self.put(base + topic::BYTES, counts.bytes);
        self.put(base + topic::SUBSCRIBERS, subscribers);
    }

    /// Names topic `id` (the control thread, once, when the topic is created).
    pub fn name_topic(&self, id: usize, name: &str) {
        if id >= self.layout.sizes.topics {
            return;
        }
        let base = self.layout.topic(id);
        self.words
            .store_str(base + topic::NAME, record::NAME_WORDS, name);
        // Release pairs with the Acquire load of the flag in `Snapshot::read`.
        self.words.store(base + topic::NAMED, 1, Ordering::Release);
    }

    /// Publishes message-count entry `index`: its key and count (the router).
    pub fn publish_pair(&self, index: usize, key: u64, count: u64) {
        if index >= self.layout.sizes.pairs {
            return;
        }
        self.put(self.layout.pairs + index * 2, key);
        self.put(self.layout.pairs + index * 2 + 1, count);
    }

    /// Publishes how many message counts found the section full (the router).
    pub fn publish_pairs_overflow(&self, n: u64) {
        self.put(word::PAIRS_OVERFLOW, n);
    }

    /// Appends a record to the trace log, overwriting the oldest once it is full (the router).
    /// The record's sequence word is odd while it is written, so a reader that sees the same
    /// even sequence before and after its read has a whole record.
    pub fn log_trace(&self, e: &TraceEntry) {
        let cap = self.layout.sizes.trace;
        if cap == 0 {
            return;
        }
        let n = self.get(word::TRACE_NEXT);
        let base = self.layout.trace_record((n % cap as u64) as usize);
        let h = &e.header;
        self.put(base + trace::SEQ, n * 2 + 1);
        // Release: orders the odd sequence before the fields, for a reader's Acquire fence.
        std::sync::atomic::fence(Ordering::Release);
        let id = e.trace.trace_id;
        self.put(
            base + trace::TRACE_HI,
            u64::from_be_bytes(std::array::from_fn(|i| id[i])),
        );
        self.put(
            base + trace::TRACE_LO,
            u64::from_be_bytes(std::array::from_fn(|i| id[8 + i])),
        );
        self.put(base + trace::SPAN, u64::from_be_bytes(e.trace.span_id));
        self.put(base + trace::MESSAGE_ID, h.message_id.0);
        self.put(base + trace::CORRELATION, h.correlation_id.0);
        let who = (h.source_slot as u64 & 0xffff)
            | (h.source_epoch as u64 & 0xffff) << 16
            | (h.message_type as u64) << 32
            | (h.priority as u64) << 40
            | (h.route as u64) << 48
            | (e.from_type as u64) << 56;
        self.put(base + trace::WHO, who);
        self.put(base + trace::DESTINATION, h.destination);
        self.put(base + trace::SENT_NS, h.timestamp_ns);
        self.put(base + trace::ROUTED_NS, e.routed_ns);
        self.put(
            base + trace::OUTCOME,
            e.copies as u64 | (e.dead as u64) << 32,
        );
        self.put(base + trace::BYTES, h.frame_len() as u64);
        // Release pairs with the reader's Acquire load of the sequence.
        self.words
            .store(base + trace::SEQ, n * 2 + 2, Ordering::Release);
        self.put(word::TRACE_NEXT, n + 1);
    }

    /// Publishes how many agents are attached (the control thread).
    pub fn set_agents(&self, agents: u64) {
        self.put(word::AGENTS, agents);
    }

    /// The agentd whose header this is, if the header is complete (its magic written last).
    pub fn pid(&self) -> Option<u32> {
        // Acquire pairs with the Release store of the magic in `BusHeader::create`.
        (self.words.load(word::MAGIC, Ordering::Acquire) == MAGIC)
            .then(|| self.get(word::PID) as u32)
    }

    /// Records `pid` as the agentd serving this bus (agentd at start; a test fakes the header a
    /// crashed agentd left with it).
    pub fn record_pid(&self, pid: u32) {
        self.put(word::PID, pid as u64);
    }
}

/// What the header is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderOptions {
    /// The section sizes.
    pub sizes: Sizes,
    /// Whether the router keeps per-message metrics.
    pub metrics: bool,
}

impl HeaderOptions {
    /// A header for `slots` agents with per-message metrics on and no trace log.
    pub fn for_slots(slots: usize) -> HeaderOptions {
        HeaderOptions {
            sizes: Sizes {
                slots,
                topics: Sizes::TOPICS,
                pairs: Sizes::PAIRS,
                trace: 0,
            },
            metrics: true,
        }
    }
}

/// The header segment, as agentd holds it.
#[derive(Debug)]
pub struct BusHeader {
    segment: NamedSegment,
    view: HeaderWords,
}

impl BusHeader {
    /// Creates the header for this agentd.
    pub fn create(name: &str, options: HeaderOptions) -> Result<BusHeader, CreateError> {
        let layout = Layout::new(options.sizes);
        // 0640: agentd's group (the ops group) reads it; nobody but agentd writes it.
        let segment = NamedSegment::create(name, layout.bytes(), 0o640)?;
        let view = HeaderWords::of(&segment, layout);
        view.put(word::VERSION, VERSION);
        view.record_pid(std::process::id());
        view.put(word::STARTED_NS, agentbus_ipc::clock::realtime_ns());
        view.put(word::SLOTS, options.sizes.slots as u64);
        view.put(word::TOPIC_CAP, options.sizes.topics as u64);
        view.put(word::PAIR_CAP, options.sizes.pairs as u64);
        view.put(word::TRACE_CAP, options.sizes.trace as u64);
        view.put(word::METRICS_ON, options.metrics as u64);
        // Pairs with the Acquire load in `read_pid` and `Snapshot::read`.
        view.words.store(word::MAGIC, MAGIC, Ordering::Release);
        Ok(BusHeader { segment, view })
    }

    /// The header's words, for the router and the control thread.
    pub fn words(&self) -> &HeaderWords {
        &self.view
    }

    /// Publishes the record of `slot` (`None`: the slot is free).
    pub fn publish_slot(&self, slot: u32, entry: Option<&RegistryEntry>) {
        let layout = &self.view.layout;
        if slot as usize >= layout.sizes.slots {
            return;
        }
        let base = layout.record(slot as usize);
        let w = &self.view.words;
        let gen = w.load(base + record::GEN, Ordering::Relaxed);
        // Odd: being written. The Release fence orders this store before the field stores
        // below, for a reader whose Acquire fence (after reading fields) then sees it changed
        // (`snapshot::read_record`).
        w.store(base + record::GEN, gen | 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        match entry {
            Some(e) => {
                w.store(base + record::EPOCH, e.epoch as u64, Ordering::Relaxed);
                w.store(base + record::PID, e.pid as u64, Ordering::Relaxed);
                w.store(base + record::UID, e.uid as u64, Ordering::Relaxed);
                w.store(
                    base + record::CAPACITY,
                    e.capacity as u64,
                    Ordering::Relaxed,
                );
                w.store_str(base + record::ID, record::NAME_WORDS, &e.agent_id);
                w.store_str(base + record::TYPE, record::NAME_WORDS, &e.agent_type);
            }
            None => {
                w.store(base + record::EPOCH, 0, Ordering::Relaxed);
                w.store_str(base + record::ID, record::NAME_WORDS, "");
            }
        }
        // Even again, and new: pairs with the reader's Acquire loads of the generation.
        w.store(base + record::GEN, (gen | 1) + 1, Ordering::Release);
    }

    /// Marks the header as no longer served (its magic cleared, so a monitor that still maps
    /// it sees agentd stopped: [`HeaderReader::is_current`]) and removes the name from
    /// /dev/shm.
    pub fn unlink(&self) {
        // Release pairs with the Acquire load of the magic in `HeaderReader::is_current`.
        self.view.words.store(word::MAGIC, 0, Ordering::Release);
        let _ = NamedSegment::unlink(self.segment.name());
    }
}

/// The pid recorded in an existing header, if it is one.
pub fn read_pid(name: &str) -> Result<Option<u32>, OpenError> {
    let seg = NamedSegment::open(name, false, 8 * word::LATENCY)?;
    let words = WordTable::new(seg.region()).expect("segments are page-aligned");
    // Acquire pairs with the Release store of the magic in `BusHeader::create`.
    let complete = words.load(word::MAGIC, Ordering::Acquire) == MAGIC;
    Ok(complete.then(|| words.load(word::PID, Ordering::Relaxed) as u32))
}

/// Reads the registry from bus `bus`'s header, as a monitor tool does (read-only, without
/// asking agentd).
pub fn read_registry(bus: &str) -> Result<Vec<RegistryEntry>, ReadError> {
    Ok(Snapshot::read(bus)?
        .agents
        .into_iter()
        .map(|a| a.entry)
        .collect())
}
