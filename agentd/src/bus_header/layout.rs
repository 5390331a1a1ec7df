//! Where things are in the bus header (layout version 2), in 64-bit words.
//!
//! | words | what | written by |
//! | --- | --- | --- |
//! | 0..8 | magic, version, pid, start time, router beat, agents, slots, metrics on | agentd / router / control thread |
//! | 8..24 | router totals ([`router`]) | router |
//! | 24..32 | dead letters by kind ([`super::DeadKind`]) | router |
//! | 32..40 | busy passes by frames handled (1, 2-3, 4-7, ... 128+) | router |
//! | 40..48 | section sizes: topics, pairs, trace records, trace records written | agentd at start / router |
//! | 64.. | routing latency histogram ([`super::histogram`]) | router |
//! | [`Layout::registry`] | one record of [`RECORD_WORDS`] per slot ([`record`]) | control thread (seqlock), router (counters) |
//! | [`Layout::types`] | agent type names, [`TYPE_WORDS`] each, by type index | router |
//! | [`Layout::topics`] | one record of [`TOPIC_WORDS`] per topic id ([`topic`]) | control thread (name), router (counters) |
//! | [`Layout::pairs`] | message counts by (from type, to, message type, priority): key, count | router |
//! | [`Layout::trace`] | the trace log: [`TRACE_WORDS`] per record, a ring | router |
//!
//! Every section's size is written in the header's first line, so a reader computes the same
//! layout from the segment itself ([`Layout::read`]).

use std::sync::atomic::Ordering;

use agentbus_ipc::words::WordTable;

use super::histogram::LATENCY_BUCKETS;

/// Word indexes of the header's first lines.
pub mod word {
    /// `AGBUSCTL`, written last at start.
    pub const MAGIC: usize = 0;
    /// The layout version.
    pub const VERSION: usize = 1;
    /// agentd's pid.
    pub const PID: usize = 2;
    /// When agentd started, realtime ns.
    pub const STARTED_NS: usize = 3;
    /// The router's heartbeat, monotonic ns.
    pub const ROUTER_BEAT: usize = 4;
    /// Agents attached (the control thread).
    pub const AGENTS: usize = 5;
    /// Slots in the registry section.
    pub const SLOTS: usize = 6;
    /// 1 when the router keeps per-message metrics (latency, message counts, topics).
    pub const METRICS_ON: usize = 7;
    /// First word of the router's totals ([`super::router`]).
    pub const ROUTER: usize = 8;
    /// First word of the dead letters by kind.
    pub const DEAD_KINDS: usize = 24;
    /// First word of the frames-per-busy-pass histogram.
    pub const BATCHES: usize = 32;
    /// Topic records in the topic section.
    pub const TOPIC_CAP: usize = 40;
    /// Entries in the message-count section.
    pub const PAIR_CAP: usize = 41;
    /// Records in the trace log (0: tracing off).
    pub const TRACE_CAP: usize = 42;
    /// Trace records written so far (record `n` is at `n % TRACE_CAP`).
    pub const TRACE_NEXT: usize = 43;
    /// Message counts that found the message-count section full.
    pub const PAIRS_OVERFLOW: usize = 44;
    /// Agent types seen (names in the types section).
    pub const TYPES: usize = 45;
    /// First word of the latency histogram.
    pub const LATENCY: usize = 64;
}

/// Offsets of the router's totals from [`word::ROUTER`].
pub mod router {
    /// Passes made.
    pub const PASSES: usize = 0;
    /// Frames taken from outbound lanes.
    pub const FRAMES_IN: usize = 1;
    /// Copies written into destination lanes.
    pub const DELIVERED: usize = 2;
    /// Dead letters recorded.
    pub const DEAD: usize = 3;
    /// Agents detached as faulty.
    pub const FAULTED: usize = 4;
    /// Nanoseconds spent idle (spinning or asleep with nothing to route).
    pub const IDLE_NS: usize = 5;
    /// Passes that handled at least one frame.
    pub const BUSY_PASSES: usize = 6;
    /// Bytes of the frames taken from outbound lanes.
    pub const BYTES_IN: usize = 7;
    /// Copies dropped or dead-lettered under a topic's back-pressure policy.
    pub const DROPPED: usize = 8;
    /// Sum of the routing latencies in the histogram, ns.
    pub const LATENCY_SUM_NS: usize = 9;
    /// How many totals there are.
    pub const COUNT: usize = 10;
}

/// Words per registry record.
pub const RECORD_WORDS: usize = 64;

/// Offsets in a registry record.
pub mod record {
    /// Seqlock generation of the identity words (odd while written).
    pub const GEN: usize = 0;
    /// Slot epoch (0: free).
    pub const EPOCH: usize = 1;
    /// Process id.
    pub const PID: usize = 2;
    /// User id.
    pub const UID: usize = 3;
    /// Declared capacity.
    pub const CAPACITY: usize = 4;
    /// Agent id, 8 words.
    pub const ID: usize = 8;
    /// Agent type, 8 words.
    pub const TYPE: usize = 16;
    /// Words of a name.
    pub const NAME_WORDS: usize = 8;
    /// The router's per-slot counters ([`crate::router::slot_counter`]), from here.
    pub const COUNTERS: usize = 24;
    /// Bytes of the frames the router took from its lanes.
    pub const BYTES_SENT: usize = 40;
    /// Bytes of the copies written into its lanes.
    pub const BYTES_RECEIVED: usize = 41;
    /// Its heartbeat, monotonic ns (as it wrote it).
    pub const HEARTBEAT: usize = 42;
    /// Its reported load.
    pub const LOAD: usize = 43;
    /// Bytes waiting in its inbound lanes, per priority (sampled at each publication).
    pub const IN_DEPTH: usize = 44;
    /// The most bytes seen waiting in each inbound lane (sampled; a full lane counts whole).
    pub const IN_HIGH: usize = 48;
    /// Times the router found each inbound lane full.
    pub const IN_FULL: usize = 52;
    /// Times the agent found each outbound lane full (as the agent counts them).
    pub const OUT_FULL: usize = 56;
    /// Bytes of each inbound lane.
    pub const LANE_CAPACITY: usize = 60;
    /// Outbound lanes whose first frame waits for a full destination.
    pub const OUT_WAITING: usize = 61;
}

const _: () = assert!(record::OUT_WAITING < RECORD_WORDS);
const _: () = assert!(topic::NAME + record::NAME_WORDS <= TOPIC_WORDS);
const _: () =
    assert!(record::COUNTERS + crate::router::slot_counter::PER_SLOT <= record::BYTES_SENT);

/// Words per agent type name.
pub const TYPE_WORDS: usize = 8;
/// Agent types the header names; the last index stands for every type past it.
pub const TYPE_CAP: usize = 64;

/// Words per topic record.
pub const TOPIC_WORDS: usize = 16;

/// Offsets in a topic record.
pub mod topic {
    /// 1 once the control thread wrote the name (Release).
    pub const NAMED: usize = 0;
    /// Messages published on it (routed once each).
    pub const PUBLISHES: usize = 1;
    /// Copies delivered to subscribers.
    pub const DELIVERIES: usize = 2;
    /// Copies dropped or dead-lettered (no subscriber, slow subscriber, expired).
    pub const DEAD: usize = 3;
    /// Bytes published.
    pub const BYTES: usize = 4;
    /// Subscribers now.
    pub const SUBSCRIBERS: usize = 5;
    /// The name, 8 words.
    pub const NAME: usize = 8;
}

/// Words per trace record.
pub const TRACE_WORDS: usize = 12;

/// Offsets in a trace record.
pub mod trace {
    /// `record number * 2 + 2` when whole; odd while being written.
    pub const SEQ: usize = 0;
    /// Trace id, first 8 bytes (big-endian, as printed).
    pub const TRACE_HI: usize = 1;
    /// Trace id, last 8 bytes.
    pub const TRACE_LO: usize = 2;
    /// Span id.
    pub const SPAN: usize = 3;
    /// Message id.
    pub const MESSAGE_ID: usize = 4;
    /// Correlation id.
    pub const CORRELATION: usize = 5;
    /// Sender slot (bits 0..16), epoch (16..32), message type (32..40), priority (40..48),
    /// route kind (48..56), sender's agent type index (56..64).
    pub const WHO: usize = 6;
    /// The destination word of the header.
    pub const DESTINATION: usize = 7;
    /// When the sender stamped it, realtime ns.
    pub const SENT_NS: usize = 8;
    /// When the router routed it, realtime ns.
    pub const ROUTED_NS: usize = 9;
    /// Copies delivered (bits 0..32) and dead-lettered (32..64).
    pub const OUTCOME: usize = 10;
    /// Bytes of the frame.
    pub const BYTES: usize = 11;
}

/// Section sizes: how many of each the header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Registry records (agentd's `max_agents`).
    pub slots: usize,
    /// Topic records (topics past it are routed but not counted per topic).
    pub topics: usize,
    /// Message-count entries.
    pub pairs: usize,
    /// Trace records (0: no trace log).
    pub trace: usize,
}

impl Sizes {
    /// Topic records agentd keeps.
    pub const TOPICS: usize = 1024;
    /// Message-count entries agentd keeps (a power of two).
    pub const PAIRS: usize = 1024;
}

/// Offsets of the header's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The sizes it was computed from.
    pub sizes: Sizes,
    /// First word of the registry.
    pub registry: usize,
    /// First word of the agent type names.
    pub types: usize,
    /// First word of the topic records.
    pub topics: usize,
    /// First word of the message counts.
    pub pairs: usize,
    /// First word of the trace log.
    pub trace: usize,
    /// Words in all.
    pub words: usize,
}

impl Layout {
    /// The layout for `sizes`.
    pub fn new(sizes: Sizes) -> Layout {
        let registry = (word::LATENCY + LATENCY_BUCKETS).next_multiple_of(64);
        let types = registry + sizes.slots * RECORD_WORDS;
        let topics = types + TYPE_CAP * TYPE_WORDS;
        let pairs = topics + sizes.topics * TOPIC_WORDS;
        let trace = pairs + sizes.pairs * 2;
        let words = (trace + sizes.trace * TRACE_WORDS).next_multiple_of(512);
        Layout {
            sizes,
            registry,
            types,
            topics,
            pairs,
            trace,
            words,
        }
    }

    /// Bytes of the segment.
    pub fn bytes(&self) -> usize {
        self.words * 8
    }

    /// The layout a header's first line records, if the table is large enough for it.
    pub fn read(words: &WordTable) -> Option<Layout> {
        if words.len() <= word::LATENCY {
            return None;
        }
        let w = |i| words.load(i, Ordering::Relaxed) as usize;
        let sizes = Sizes {
            slots: w(word::SLOTS),
            topics: w(word::TOPIC_CAP),
            pairs: w(word::PAIR_CAP),
            trace: w(word::TRACE_CAP),
        };
        // Bounds before arithmetic: a header is agentd's, but a reader trusts nothing it maps.
        let sane = sizes.slots <= 1 << 16
            && sizes.topics <= 1 << 20
            && sizes.pairs <= 1 << 20
            && sizes.trace <= 1 << 24;
        let layout = sane.then(|| Layout::new(sizes))?;
        (layout.words <= words.len()).then_some(layout)
    }

    /// First word of slot `slot`'s record.
    pub fn record(&self, slot: usize) -> usize {
        self.registry + slot * RECORD_WORDS
    }

    /// First word of topic `id`'s record.
    pub fn topic(&self, id: usize) -> usize {
        self.topics + id * TOPIC_WORDS
    }

    /// First word of trace record `index` (below `sizes.trace`).
    pub fn trace_record(&self, index: usize) -> usize {
        self.trace + index * TRACE_WORDS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_each_other_without_overlap() {
        let l = Layout::new(Sizes {
            slots: 64,
            topics: Sizes::TOPICS,
            pairs: Sizes::PAIRS,
            trace: 100,
        });
        assert!(l.registry >= word::LATENCY + LATENCY_BUCKETS);
        assert_eq!(l.types, l.registry + 64 * RECORD_WORDS);
        assert_eq!(l.topics, l.types + TYPE_CAP * TYPE_WORDS);
        assert_eq!(l.pairs, l.topics + Sizes::TOPICS * TOPIC_WORDS);
        assert_eq!(l.trace, l.pairs + Sizes::PAIRS * 2);
        assert!(l.words >= l.trace + 100 * TRACE_WORDS);
    }
}
