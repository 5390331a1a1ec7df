//! A topic's last messages, kept by the router for subscribers that join later
//! ([`agentbus::control::TopicConfig::history`]).
//!
//! Bounded twice: by a count (the topic's `history`) and by bytes (one lane's capacity, what a
//! new subscriber can be given at once). Each kept frame has a buffer of its own; a buffer
//! freed by an evicted frame is reused for the next one, so once the history is full of
//! frames of a size it has seen, recording a message allocates nothing.

use std::collections::VecDeque;

use agentbus::{FrameHeader, HEADER_LEN};

/// The last messages of one topic, oldest first, each as routed (the router's header over the
/// sender's).
#[derive(Debug)]
pub struct History {
    frames: VecDeque<Vec<u8>>,
    /// Buffers of evicted frames, reused by the next ones.
    spare: Vec<Vec<u8>>,
    /// Bytes of the frames kept.
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl History {
    /// An empty history of at most `max_frames` frames and `max_bytes` bytes.
    pub fn new(max_frames: usize, max_bytes: usize) -> History {
        History {
            frames: VecDeque::with_capacity(max_frames),
            spare: Vec::with_capacity(max_frames),
            bytes: 0,
            max_frames,
            max_bytes,
        }
    }

    /// Keeps a copy of `frame` with the router's `header` written over its own, evicting the
    /// oldest frames until both bounds hold (a frame larger than `max_bytes` is not kept).
    pub fn record(&mut self, header: &FrameHeader, frame: &[u8]) {
        if frame.len() > self.max_bytes || self.max_frames == 0 || frame.len() < HEADER_LEN {
            return;
        }
        while self.frames.len() >= self.max_frames || self.bytes + frame.len() > self.max_bytes {
            self.evict();
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        header.write(&mut buf[..HEADER_LEN]);
        self.bytes += buf.len();
        self.frames.push_back(buf);
    }

    fn evict(&mut self) {
        if let Some(old) = self.frames.pop_front() {
            self.bytes -= old.len();
            self.spare.push(old);
        }
    }

    /// The frames kept, oldest first.
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(Vec::as_slice)
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::{MessagePriority, MessageType, RouteKind};

    fn frame(seq: u64, body: usize) -> (FrameHeader, Vec<u8>) {
        let mut h = agentbus::codec::bare_header(
            agentbus::Route {
                kind: RouteKind::Topic,
                destination: 3,
            },
            MessagePriority::Normal,
        );
        h.message_type = MessageType::Notification;
        h.message_id = agentbus::MessageId(seq);
        h.body_len = body as u32;
        let mut bytes = vec![seq as u8; HEADER_LEN + body];
        h.write(&mut bytes[..HEADER_LEN]);
        (h, bytes)
    }

    fn ids(h: &History) -> Vec<u64> {
        h.frames()
            .map(|f| FrameHeader::parse(f).unwrap().message_id.0)
            .collect()
    }

    #[test]
    fn keeps_the_last_n_in_order() {
        let mut h = History::new(3, 1 << 20);
        for seq in 1..=10 {
            let (hd, f) = frame(seq, 16);
            h.record(&hd, &f);
        }
        assert_eq!(ids(&h), vec![8, 9, 10]);
    }

    #[test]
    fn stays_within_its_bytes_and_skips_a_frame_larger_than_them() {
        let mut h = History::new(100, 4 * (HEADER_LEN + 16));
        for seq in 1..=10 {
            let (hd, f) = frame(seq, 16);
            h.record(&hd, &f);
        }
        assert_eq!(ids(&h), vec![7, 8, 9, 10]);
        let (hd, f) = frame(11, 4096);
        h.record(&hd, &f);
        assert_eq!(
            ids(&h),
            vec![7, 8, 9, 10],
            "too large to keep: nothing evicted"
        );
        let (hd, f) = frame(12, 16 + HEADER_LEN + 16);
        h.record(&hd, &f);
        assert_eq!(ids(&h), vec![9, 10, 12], "evicts as many as it needs");
    }

    #[test]
    fn the_routers_header_is_kept_over_the_senders() {
        let mut h = History::new(1, 1 << 20);
        let (mut hd, f) = frame(1, 8);
        hd.source_slot = 7;
        h.record(&hd, &f);
        let kept = h.frames().next().unwrap();
        assert_eq!(FrameHeader::parse(kept).unwrap().source_slot, 7);
        assert_eq!(&kept[HEADER_LEN..], &f[HEADER_LEN..]);
    }
}
