//! The receiver's memory of the at-least-once messages it has taken, so that a retried copy
//! is never handed out twice (exactly-once processing, as NATS JetStream's `Msg-Id` window).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::header::FrameHeader;

/// Who sent a message and its id: the router-stamped slot and epoch, so one agent cannot
/// suppress another's messages by reusing their ids.
type Key = (u32, u32, u64);

/// The at-least-once messages taken in the last `window`, at most `capacity` of them (the
/// oldest forgotten first): O(1) per message, bounded in memory.
#[derive(Debug)]
pub(crate) struct DedupWindow {
    seen: HashSet<Key>,
    order: VecDeque<(Instant, Key)>,
    window: Duration,
    capacity: usize,
    /// Retried copies dropped because their message had been taken already.
    pub(crate) duplicates: u64,
}

impl DedupWindow {
    /// Remembers messages for `window` (it must cover the senders' retry horizon), at most
    /// `capacity` at once.
    pub(crate) fn new(window: Duration, capacity: usize) -> DedupWindow {
        DedupWindow {
            seen: HashSet::new(),
            order: VecDeque::new(),
            window,
            capacity: capacity.max(1),
            duplicates: 0,
        }
    }

    fn key(h: &FrameHeader) -> Key {
        (h.source_slot, h.source_epoch, h.message_id.0)
    }

    /// Whether the message with header `h` was taken already.
    pub(crate) fn seen(&self, h: &FrameHeader) -> bool {
        !self.seen.is_empty() && self.seen.contains(&Self::key(h))
    }

    /// Forgets every message taken (agentd restarted: its slots and epochs name other agents
    /// now).
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
        self.order.clear();
    }

    /// Remembers that the message with header `h` was taken, forgetting what is older than the
    /// window or beyond the capacity.
    pub(crate) fn take(&mut self, h: &FrameHeader, now: Instant) {
        while let Some(&(at, old)) = self.order.front() {
            if now.duration_since(at) <= self.window && self.order.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        let key = Self::key(h);
        if self.seen.insert(key) {
            self.order.push_back((now, key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(slot: u32, epoch: u32, id: u64) -> FrameHeader {
        let mut h = crate::codec::bare_header(
            crate::Route {
                kind: crate::RouteKind::Agent,
                destination: 0,
            },
            crate::MessagePriority::Normal,
        );
        h.source_slot = slot;
        h.source_epoch = epoch;
        h.message_id = crate::MessageId(id);
        h
    }

    #[test]
    fn a_message_is_seen_once_per_sender_within_the_window_and_the_capacity() {
        let t0 = Instant::now();
        let mut w = DedupWindow::new(Duration::from_secs(10), 3);
        let a = header(1, 1, 7);
        assert!(!w.seen(&a));
        w.take(&a, t0);
        assert!(w.seen(&a));
        assert!(
            !w.seen(&header(2, 1, 7)),
            "another sender's id 7 is another message"
        );
        assert!(!w.seen(&header(1, 2, 7)), "so is the next occupant's");
        // Past the window: forgotten when the next message is taken.
        w.take(&header(1, 1, 8), t0 + Duration::from_secs(11));
        assert!(!w.seen(&a));
        // Past the capacity: the oldest goes.
        for id in 9..12 {
            w.take(&header(1, 1, id), t0 + Duration::from_secs(12));
        }
        assert!(!w.seen(&header(1, 1, 8)));
        assert!(w.seen(&header(1, 1, 11)));
        assert!(w.order.len() <= 3 && w.seen.len() == w.order.len());
    }
}
