//! The dead-letter queue: every frame the bus could not deliver, with the reason.

use std::collections::VecDeque;

use agentbus::control::DeadLetterInfo;

/// A dead letter: what is listed, and the frame (kept for replay).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// What is listed.
    pub info: DeadLetterInfo,
    /// The frame's bytes.
    pub frame: Vec<u8>,
}

/// Dead letters in arrival order, bounded; the oldest go first when full, and are counted.
#[derive(Debug)]
pub struct DeadLetterQueue {
    letters: VecDeque<DeadLetter>,
    capacity: usize,
    total: u64,
    evicted: u64,
}

impl DeadLetterQueue {
    /// A queue holding at most `capacity` letters.
    pub fn new(capacity: usize) -> DeadLetterQueue {
        DeadLetterQueue {
            letters: VecDeque::new(),
            capacity: capacity.max(1),
            total: 0,
            evicted: 0,
        }
    }

    /// Adds a letter.
    pub fn push(&mut self, letter: DeadLetter) {
        tracing::warn!(
            id = %agentbus::MessageId(letter.info.message_id),
            reason = %letter.info.reason,
            "dead letter"
        );
        if self.letters.len() == self.capacity {
            self.letters.pop_front();
            self.evicted += 1;
        }
        self.letters.push_back(letter);
        self.total += 1;
    }

    /// The letters held, oldest first.
    pub fn list(&self) -> Vec<DeadLetterInfo> {
        self.letters.iter().map(|l| l.info.clone()).collect()
    }

    /// Letters ever added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Letters dropped because the queue was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}
