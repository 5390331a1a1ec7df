//! The router's per-message metrics: routing latency, messages by (sender type, destination,
//! message type, priority), per-topic counts, bytes, dead letters by kind and the trace log.
//!
//! Recorded in the router's own memory as it routes (plain adds into arrays sized at start: no
//! allocation, no atomics, no system call, no clock read beyond the pass's own), copied into
//! the bus header by [`Metrics::publish`] with the other counters. Off
//! (`agentd --no-metrics`), a frame costs one branch.

use agentbus::{FrameHeader, RouteKind};

use crate::bus_header::histogram::{bucket, LATENCY_BUCKETS};
use crate::bus_header::layout::{Sizes, TYPE_CAP};
use crate::bus_header::{DeadKind, HeaderWords, TopicCounts, TraceEntry, MULTICAST};

/// Probes before a new message-count key is given up as uncountable.
const MAX_PROBES: usize = 16;

/// Message counts in an open-addressing table: keys are `1 + (from | to << 8 | type << 16 |
/// priority << 24)`, 0 is free.
#[derive(Debug)]
struct Pairs {
    keys: Vec<u64>,
    counts: Vec<u64>,
    /// Indexes in use, in the order first used (what `publish` copies).
    used: Vec<u32>,
    overflow: u64,
}

impl Pairs {
    fn new(capacity: usize) -> Pairs {
        Pairs {
            keys: vec![0; capacity],
            counts: vec![0; capacity],
            used: Vec::with_capacity(capacity),
            overflow: 0,
        }
    }

    #[inline]
    fn add(&mut self, key: u64) {
        let cap = self.keys.len();
        if cap == 0 {
            self.overflow += 1;
            return;
        }
        let mask = cap - 1;
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask;
        for _ in 0..MAX_PROBES.min(cap) {
            if self.keys[i] == key {
                self.counts[i] += 1;
                return;
            }
            if self.keys[i] == 0 {
                self.keys[i] = key;
                self.counts[i] = 1;
                self.used.push(i as u32); // capacity reserved: never reallocates
                return;
            }
            i = (i + 1) & mask;
        }
        self.overflow += 1;
    }
}

/// What the router records per message, and publishes.
#[derive(Debug)]
pub struct Metrics {
    on: bool,
    trace_on: bool,
    latency: Vec<u64>,
    latency_sum_ns: u64,
    /// Buckets changed since the last publication: `dirty_lo..dirty_hi`.
    dirty_lo: usize,
    dirty_hi: usize,
    batches: [u64; 8],
    dead_kinds: [u64; 8],
    types: Vec<String>,
    pairs: Pairs,
    topics: Vec<TopicCounts>,
    /// One past the highest topic id counted.
    topics_seen: usize,
}

/// A routed frame, for [`Metrics::routed`].
#[derive(Debug, Clone, Copy)]
pub struct RoutedFrame<'a> {
    /// Its header as the router stamped it.
    pub header: &'a FrameHeader,
    /// The frame's bytes (for its length and, traced, its extension block).
    pub frame: &'a [u8],
    /// The sender's type index.
    pub from: u8,
    /// The destination's type index, [`MULTICAST`] or [`crate::bus_header::UNROUTED`].
    pub to: u8,
    /// Copies written.
    pub copies: u64,
    /// Dead letters recorded for it (whole frame or copies).
    pub letters: u64,
    /// When the pass that routed it began, realtime ns.
    pub now_rt: u64,
}

impl Metrics {
    /// Metrics for a header of `sizes`; `on`: whether per-message metrics are recorded.
    pub fn new(on: bool, sizes: Sizes) -> Metrics {
        let topics = if on { sizes.topics } else { 0 };
        Metrics {
            on,
            trace_on: sizes.trace > 0,
            latency: vec![0; LATENCY_BUCKETS],
            latency_sum_ns: 0,
            dirty_lo: LATENCY_BUCKETS,
            dirty_hi: 0,
            batches: [0; 8],
            dead_kinds: [0; 8],
            types: Vec::with_capacity(TYPE_CAP),
            pairs: Pairs::new(if on {
                sizes.pairs.next_power_of_two()
            } else {
                0
            }),
            topics: vec![TopicCounts::default(); topics],
            topics_seen: 0,
        }
    }

    /// The type index of agent type `name`, naming it in the header the first time (at
    /// attach, not per message); the last index stands for every type past the table.
    pub fn intern_type(&mut self, name: &str, header: &HeaderWords) -> u8 {
        if let Some(i) = self.types.iter().position(|t| t == name) {
            return i as u8;
        }
        if self.types.len() + 1 >= TYPE_CAP {
            if self.types.len() + 1 == TYPE_CAP {
                self.types.push("other".into());
                header.publish_type(TYPE_CAP - 1, "other");
            }
            return (TYPE_CAP - 1) as u8;
        }
        let i = self.types.len();
        self.types.push(name.into());
        header.publish_type(i, name);
        i as u8
    }

    /// Whether frames are recorded at all (per-message metrics or the trace log): when not,
    /// the router skips working out what [`Metrics::routed`] would be given.
    #[inline]
    pub fn records_frames(&self) -> bool {
        self.on || self.trace_on
    }

    /// Counts a busy pass that handled `frames`.
    #[inline]
    pub fn pass(&mut self, frames: usize) {
        let b = (usize::BITS - frames.leading_zeros()).saturating_sub(1) as usize;
        self.batches[b.min(7)] += 1;
    }

    /// Counts a dead letter.
    #[inline]
    pub fn dead(&mut self, kind: DeadKind) {
        self.dead_kinds[kind as usize] += 1;
    }

    /// Counts the copies of a frame written (or dead-lettered) in one pass: per topic.
    #[inline]
    pub fn delivered(&mut self, h: &FrameHeader, copies: u64, letters: u64) {
        if h.route == RouteKind::Topic && (h.destination as usize) < self.topics.len() {
            let t = &mut self.topics[h.destination as usize];
            t.deliveries += copies;
            t.dead += letters;
        }
    }

    /// Records a frame the router finished with; returns the trace entry to log, if tracing
    /// is on and the frame is traced.
    #[inline]
    pub fn routed(&mut self, f: RoutedFrame<'_>) -> Option<TraceEntry> {
        if !self.on {
            return self.trace_entry(&f);
        }
        let h = f.header;
        let latency = f.now_rt.saturating_sub(h.timestamp_ns);
        let b = bucket(latency);
        self.latency[b] += 1;
        self.latency_sum_ns = self.latency_sum_ns.wrapping_add(latency);
        self.dirty_lo = self.dirty_lo.min(b);
        self.dirty_hi = self.dirty_hi.max(b + 1);
        let key = 1
            + (f.from as u64
                | (f.to as u64) << 8
                | (h.message_type as u64) << 16
                | (h.priority as u64) << 24);
        self.pairs.add(key);
        if h.route == RouteKind::Topic && (h.destination as usize) < self.topics.len() {
            let id = h.destination as usize;
            self.topics_seen = self.topics_seen.max(id + 1);
            let t = &mut self.topics[id];
            t.publishes += 1;
            t.bytes += f.frame.len() as u64;
        }
        self.trace_entry(&f)
    }

    fn trace_entry(&self, f: &RoutedFrame<'_>) -> Option<TraceEntry> {
        if !self.trace_on || f.header.extension_len == 0 {
            return None;
        }
        let trace = agentbus::Extensions::of(f.header, f.frame).trace();
        (!trace.is_empty()).then(|| TraceEntry {
            trace,
            header: *f.header,
            routed_ns: f.now_rt,
            copies: f.copies.min(u32::MAX as u64) as u32,
            dead: f.letters.min(u32::MAX as u64) as u32,
            from_type: f.from,
        })
    }

    /// Copies everything into the header: what changed of the latency histogram, the message
    /// counts, and the topics (the routing table's `topics` and any counted past them), with
    /// `subscribers(id)` each.
    pub fn publish(
        &mut self,
        header: &HeaderWords,
        topics: usize,
        subscribers: impl Fn(usize) -> u64,
    ) {
        header.publish_dead_kinds(&self.dead_kinds);
        header.publish_batches(&self.batches);
        if !self.on {
            return;
        }
        if self.dirty_lo < self.dirty_hi {
            header.publish_latency(
                self.dirty_lo,
                &self.latency[self.dirty_lo..self.dirty_hi],
                self.latency_sum_ns,
            );
            self.dirty_lo = LATENCY_BUCKETS;
            self.dirty_hi = 0;
        }
        for (n, &i) in self.pairs.used.iter().enumerate() {
            let i = i as usize;
            header.publish_pair(n, self.pairs.keys[i], self.pairs.counts[i]);
        }
        header.publish_pairs_overflow(self.pairs.overflow);
        for (id, t) in self
            .topics
            .iter()
            .enumerate()
            .take(topics.max(self.topics_seen))
        {
            let subs = subscribers(id);
            if subs == 0 && *t == TopicCounts::default() {
                continue;
            }
            header.publish_topic(id, t, subs);
        }
    }
}

/// The `to` of a routed frame: the destination's type for a route to one agent, `multicast`
/// for several.
pub fn destination_class(route: RouteKind, single: Option<u8>) -> u8 {
    match (route, single) {
        (RouteKind::Agent | RouteKind::Capability | RouteKind::LoadBalanced, Some(t)) => t,
        _ => MULTICAST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_count_each_key_and_overflow_past_capacity() {
        let mut p = Pairs::new(4);
        for k in 1..=4u64 {
            p.add(k);
            p.add(k);
        }
        let total: u64 = p.counts.iter().sum();
        assert_eq!(total, 8);
        assert_eq!(p.used.len(), 4);
        p.add(99);
        assert_eq!(p.overflow, 1);
    }

    #[test]
    fn batches_bucket_by_powers_of_two() {
        let mut m = Metrics::new(
            true,
            Sizes {
                slots: 1,
                topics: 1,
                pairs: 4,
                trace: 0,
            },
        );
        for n in [1, 2, 3, 4, 7, 8, 200] {
            m.pass(n);
        }
        assert_eq!(m.batches, [1, 2, 2, 1, 0, 0, 0, 1]);
    }
}
