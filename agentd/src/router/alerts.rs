//! `sys.alerts`: the router tells subscribers that dead letters were made, coalesced under a
//! flood and at most [`ALERTS_PER_SECOND`] notices a second.

use agentbus::{
    record, FrameHeader, IdGenerator, Message, MessageId, MessagePriority, Notification,
};

use super::deliver::{agentd, notice_header};

/// `sys.alerts` notices a second at most; dead letters past them are counted into the next.
pub const ALERTS_PER_SECOND: u32 = 10;

/// Dead letters not yet announced, and the notices sent this second.
#[derive(Debug, Default)]
pub struct Alerts {
    /// Dead letters since the last notice.
    pending: u64,
    /// The first of them: its id and reason (one allocation per notice, not per letter).
    first: Option<(MessageId, String)>,
    second: u64,
    sent: u32,
}

impl Alerts {
    /// Notes a dead letter.
    pub fn note(&mut self, id: MessageId, reason: &str) {
        if self.pending == 0 {
            self.first = Some((id, reason.into()));
        }
        self.pending += 1;
    }

    /// A notice for topic `topic` covering the dead letters not yet announced, if any and if
    /// this second's notices allow one more at `now_rt`.
    pub fn take(
        &mut self,
        ids: &mut IdGenerator,
        topic: u64,
        now_rt: u64,
    ) -> Option<(FrameHeader, Message)> {
        if self.pending == 0 {
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
        let count = std::mem::take(&mut self.pending);
        let (first_id, first_reason) = self.first.take().unwrap_or_default();
        let msg = Message::notification(
            agentd(),
            Notification {
                event: "dead_letters".into(),
                data: record! {
                    "count" => count as i64,
                    "first_message_id" => first_id.0 as i64,
                    "first_reason" => first_reason,
                },
            },
        )
        .priority(MessagePriority::High);
        Some((notice_header(ids, topic, &msg, now_rt), msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_coalesced_into_at_most_ten_notices_a_second() {
        let mut a = Alerts::default();
        let mut ids = IdGenerator::new();
        let mut notices = 0;
        let mut counted = 0i64;
        let t0 = 5_000_000_000;
        for i in 0..1000u64 {
            a.note(MessageId(i + 1), "ttl expired");
            if let Some((_, m)) = a.take(&mut ids, 1, t0 + i * 100_000) {
                notices += 1;
                if let agentbus::Payload::Notification(n) = m.payload {
                    if let Some(agentbus::Value::Int(c)) = n.data.get("count") {
                        counted += c;
                    }
                }
            }
        }
        assert_eq!(notices, ALERTS_PER_SECOND, "one second's worth");
        // The next second's first notice carries the rest.
        let (_, m) = a.take(&mut ids, 1, t0 + 1_000_000_000).expect("the rest");
        if let agentbus::Payload::Notification(n) = m.payload {
            if let Some(agentbus::Value::Int(c)) = n.data.get("count") {
                counted += c;
            }
        }
        assert_eq!(counted, 1000, "every dead letter counted once");
        assert!(a.take(&mut ids, 1, t0 + 1_000_000_001).is_none());
    }
}
