//! `sys.alerts`: the router tells subscribers that dead letters were made, by anyone (the
//! router itself, a recipient that left with unread frames, a client reporting a message whose
//! attempts were spent, an operator's retry that failed again), coalesced under a flood and at
//! most [`ALERTS_PER_SECOND`] notices a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::{
    record, FrameHeader, IdGenerator, Message, MessageId, MessagePriority, Notification,
};

use super::deliver::{agentd, notice_header};

/// `sys.alerts` notices a second at most; dead letters past them are counted into the next.
pub const ALERTS_PER_SECOND: u32 = 10;

/// How many dead letters were announced, against how many the queue made, and the notices
/// sent this second.
#[derive(Debug)]
pub struct Alerts {
    /// Letters the dead-letter queue ever made (its next sequence number), stored by it.
    made: Arc<AtomicU64>,
    /// Letters announced so far (those made before agentd started are not).
    announced: u64,
    second: u64,
    sent: u32,
}

/// Dead letters to announce in one notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The sequence number of the first of them.
    pub from: u64,
    /// How many.
    pub count: u64,
}

impl Alerts {
    /// Alerts for the letters the queue counting into `made` makes from now on.
    pub fn new(made: Arc<AtomicU64>) -> Alerts {
        let announced = made.load(Ordering::Acquire);
        Alerts {
            made,
            announced,
            second: 0,
            sent: 0,
        }
    }

    /// The letters not yet announced, if any and if this second's notices allow one more at
    /// `now_rt`; they count as announced from here. One atomic load when there are none.
    pub fn due(&mut self, now_rt: u64) -> Option<Due> {
        // Acquire: pairs with the Release store in `DeadLetterQueue::push`.
        let made = self.made.load(Ordering::Acquire);
        if made <= self.announced {
            return None;
        }
        let second = now_rt / 1_000_000_000;
        if second != self.second {
            self.second = second;
            self.sent = 0;
        }
        if self.sent >= ALERTS_PER_SECOND {
            return None; // coalesced into the next second's first notice
        }
        self.sent += 1;
        let due = Due {
            from: self.announced,
            count: made - self.announced,
        };
        self.announced = made;
        Some(due)
    }
}

/// The notice on topic `topic` that `due.count` dead letters were made, the first of them
/// `first` (its message id and reason, when it is still held).
pub fn notice(
    ids: &mut IdGenerator,
    topic: u64,
    now_rt: u64,
    due: Due,
    first: Option<(MessageId, &str)>,
) -> (FrameHeader, Message) {
    let (first_id, first_reason) = first.unwrap_or((MessageId::NONE, ""));
    let msg = Message::notification(
        agentd(),
        Notification {
            event: "dead_letters".into(),
            data: record! {
                "count" => due.count as i64,
                "first_sequence" => due.from as i64,
                "first_message_id" => first_id.0 as i64,
                "first_reason" => first_reason.to_string(),
            },
        },
    )
    .priority(MessagePriority::High);
    (notice_header(ids, topic, &msg, now_rt), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_coalesced_into_at_most_ten_notices_a_second() {
        let made = Arc::new(AtomicU64::new(7)); // made before agentd started: not announced
        let mut a = Alerts::new(Arc::clone(&made));
        assert_eq!(a.due(1), None);
        let mut notices = 0;
        let mut counted = 0;
        let t0 = 5_000_000_000;
        for i in 0..1000u64 {
            made.fetch_add(1, Ordering::Release);
            if let Some(due) = a.due(t0 + i * 100_000) {
                assert_eq!(due.from, 7 + counted, "contiguous");
                notices += 1;
                counted += due.count;
            }
        }
        assert_eq!(notices, ALERTS_PER_SECOND, "one second's worth");
        // The next second's first notice carries the rest.
        counted += a.due(t0 + 1_000_000_000).expect("the rest").count;
        assert_eq!(counted, 1000, "every dead letter counted once");
        assert_eq!(a.due(t0 + 1_000_000_001), None);
    }
}
