//! Topic copies held in agentd for a subscriber whose lane is full, under a `DropOldest`
//! topic: bounded, the oldest dropped to make room for the newest, written into the lane in
//! order as it frees room.

use agentbus::{FrameHeader, HEADER_LEN};
use agentbus_ipc::ring::{ClaimError, Consumer, Producer, Ring, RingOptions};

use super::inbound::{Copied, InboundLanes};

/// The copies held for one subscriber at one priority: a ring in agentd's own memory, as large
/// as one of the subscriber's lanes, allocated the first time that lane is found full (never
/// again on the routing path).
#[derive(Debug)]
pub struct Held {
    tx: Producer,
    rx: Consumer,
    /// Copies in it now.
    frames: u64,
}

/// What writing held copies into a subscriber's lane did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Copies written into the lane.
    pub delivered: u64,
    /// Copies the lane could never take (gone, too large, corrupt), dropped.
    pub dropped: u64,
}

impl Held {
    /// An empty hold of `capacity` bytes (a lane's capacity: a power of two); `None` if the
    /// ring cannot be made.
    pub fn new(capacity: usize) -> Option<Held> {
        let (tx, rx) = Ring::heap(RingOptions::new(capacity)).ok()?.split();
        Some(Held { tx, rx, frames: 0 })
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// Holds a copy of `frame` with the router's `header` written over its own; drops the
    /// oldest held copies until it fits. Returns how many copies were dropped (the new one
    /// included, if it can never fit).
    pub fn push(&mut self, header: &FrameHeader, frame: &[u8]) -> u64 {
        let mut dropped = 0;
        loop {
            match self.tx.try_claim(frame.len()) {
                Ok(mut claim) => {
                    let buf = claim.payload();
                    header.write(&mut buf[..HEADER_LEN]);
                    buf[HEADER_LEN..frame.len()].copy_from_slice(&frame[HEADER_LEN..]);
                    claim.commit(frame.len());
                    self.frames += 1;
                    return dropped;
                }
                Err(ClaimError::Full { .. } | ClaimError::TimedOut) if self.frames > 0 => {
                    self.drop_oldest();
                    dropped += 1;
                }
                // Larger than the hold (than a lane), or a ring of our own gone wrong.
                Err(_) => return dropped + 1,
            }
        }
    }

    fn drop_oldest(&mut self) {
        if let Ok(Some(_)) = self.rx.peek() {
            self.rx.pop();
            self.frames -= 1;
        }
        self.rx.release();
    }

    /// Writes held copies, oldest first, into lane `priority` of `slot` until it is full.
    pub fn flush(&mut self, inbound: &mut InboundLanes, slot: u32, priority: usize) -> Flushed {
        let mut done = Flushed::default();
        while self.frames > 0 {
            let Ok(Some(bytes)) = self.rx.peek() else {
                break;
            };
            let Ok(header) = FrameHeader::parse(bytes) else {
                break; // written by `push` from a parsed header: cannot happen
            };
            let frame = &bytes[..header.frame_len().min(bytes.len())];
            match inbound.copy(slot, priority, &header, frame) {
                Copied::Delivered => done.delivered += 1,
                Copied::Full => break,
                Copied::Gone | Copied::TooLarge(_) | Copied::Corrupt(_) => done.dropped += 1,
            }
            self.rx.pop();
            self.frames -= 1;
        }
        self.rx.release();
        done
    }

    /// Copies still held (dropped when their subscriber leaves).
    pub fn len(&self) -> u64 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::{MessagePriority, MessageType, RouteKind};

    fn frame(seq: u8, body: usize) -> (FrameHeader, Vec<u8>) {
        let mut h = agentbus::codec::bare_header(
            agentbus::Route {
                kind: RouteKind::Topic,
                destination: 1,
            },
            MessagePriority::Normal,
        );
        h.message_type = MessageType::Notification;
        h.message_id = agentbus::MessageId(seq as u64 + 1);
        h.body_len = body as u32;
        let mut bytes = vec![seq; HEADER_LEN + body];
        h.write(&mut bytes[..HEADER_LEN]);
        (h, bytes)
    }

    #[test]
    fn a_full_hold_drops_its_oldest_and_keeps_the_newest_in_order() {
        let mut held = Held::new(4096).unwrap();
        let mut dropped = 0;
        for seq in 0..100u8 {
            let (h, f) = frame(seq, 80);
            dropped += held.push(&h, &f);
        }
        assert!(dropped > 0, "4 KiB cannot hold 100 frames of 128 bytes");
        assert_eq!(
            dropped + held.len(),
            100,
            "every copy held or counted dropped"
        );
        let mut ids = Vec::new();
        while let Ok(Some(bytes)) = held.rx.peek() {
            ids.push(FrameHeader::parse(bytes).unwrap().message_id.0);
            held.rx.pop();
        }
        let first = 101 - ids.len() as u64;
        assert_eq!(
            ids,
            (first..=100).collect::<Vec<_>>(),
            "the newest, in order"
        );
    }

    #[test]
    fn a_copy_larger_than_the_hold_is_dropped_and_counted() {
        let mut held = Held::new(4096).unwrap();
        let (h, f) = frame(1, 8000);
        assert_eq!(held.push(&h, &f), 1);
        assert!(held.is_empty());
    }
}
