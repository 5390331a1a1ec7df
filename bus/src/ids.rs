//! Message ids: 64 bits, unique on the bus together with the sender's slot and epoch.
//!
//! Each attach gets a generator (a fresh slot epoch), so a counter is enough for uniqueness:
//! the router stamps the slot and epoch, and the pair (source, id) names one message. Request
//! ids are different: they must be unguessable (see [`IdGenerator::next_secret_id`]).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A message id. Zero means "none" on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u64);

impl MessageId {
    /// Zero: no id yet (a message before its sender assigns one), or no correlation.
    pub const NONE: MessageId = MessageId(0);

    /// Whether this is the absent id.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// 16 hex digits (what [`str::parse`] reads back).
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a string is not a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a message id is 16 hex digits (as it prints), got {0:?}")]
pub struct ParseIdError(String);

impl std::str::FromStr for MessageId {
    type Err = ParseIdError;

    /// Parses the 16-hex-digit form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(ParseIdError(s.into()));
        }
        u64::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|_| ParseIdError(s.into()))
    }
}

/// Hands out ids: a counter, and keyed hashes of it. No allocation, no system call per id.
///
/// Plain ids ([`IdGenerator::next_id`]) are predictable once one has been seen: fine for
/// naming messages, not for proving anything. Request ids ([`IdGenerator::next_secret_id`]) are
/// a keyed hash of the counter instead, under a key drawn from the operating system's randomness
/// that never leaves this process, so only an agent that was shown the request can name it in a
/// reply.
#[derive(Debug)]
pub struct IdGenerator {
    next: u64,
    key: std::collections::hash_map::RandomState,
}

impl IdGenerator {
    /// A generator starting at 1, with a fresh secret key.
    pub fn new() -> IdGenerator {
        IdGenerator {
            next: 1,
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The counter's next value: 1, 2, 3, ... (predictable; unique on the bus only with the
    /// sender's slot and epoch).
    pub fn next_id(&mut self) -> MessageId {
        let id = MessageId(self.next);
        self.next += 1;
        id
    }

    /// The next id, unguessable from every id seen before it: a keyed SipHash of the counter
    /// (about 20 ns). Unique within the generator unless two hashes collide (1 in 2^64 per
    /// pair); never zero.
    pub fn next_secret_id(&mut self) -> MessageId {
        let mut h = self.key.build_hasher();
        h.write_u64(self.next);
        self.next += 1;
        MessageId(h.finish().max(1))
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_a_generator_and_never_none() {
        let mut a = IdGenerator::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(a.next_secret_id()));
        }
        assert!(!seen.contains(&MessageId::NONE));
    }

    #[test]
    fn secret_ids_do_not_follow_the_ids_before_them() {
        let mut g = IdGenerator::new();
        let seen = g.next_id();
        let secret = g.next_secret_id();
        assert_ne!(secret.0, seen.0 + 1);
        let other = IdGenerator::new().next_secret_id();
        assert_ne!(other, IdGenerator::new().next_secret_id(), "keys differ");
    }

    #[test]
    fn ids_print_as_hex_and_parse_back() {
        let id = MessageId(0x1122_3344_5566_7788);
        assert_eq!(id.to_string(), "1122334455667788");
        assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
        assert!("55667788-1".parse::<MessageId>().is_err());
    }
}
