//! Message ids: 128 bits, unique across agents and restarts.
//!
//! The high 64 bits are a random nonce drawn once per generator (one per attach); the low 64
//! bits count up. Two generators collide only if their nonces do (1 in 2^64 per pair).

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A message id. Zero means "none" on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u128);

impl MessageId {
    /// The absent id.
    pub const NONE: MessageId = MessageId(0);

    /// Whether this is the absent id.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The generator's nonce.
    pub fn nonce(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// The sequence number within its generator.
    pub fn sequence(self) -> u64 {
        self.0 as u64
    }
}

/// Short form for logs (`3fa2c19b-42`: low 32 bits of the nonce, then the sequence); the
/// alternate form (`{:#}`) is all 32 hex digits, which [`str::parse`] reads back.
impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{:032x}", self.0)
        } else {
            write!(f, "{:08x}-{}", self.nonce() as u32, self.sequence())
        }
    }
}

impl std::str::FromStr for MessageId {
    type Err = String;

    /// Parses the full 32-hex-digit form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(format!(
                "a message id is 32 hex digits (as `{{:#}}` prints it), got {s:?}"
            ));
        }
        u128::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|e| format!("bad message id {s:?}: {e}"))
    }
}

/// Hands out ids: a random nonce and a counter. No allocation, no system call per id.
///
/// Plain ids ([`IdGenerator::next_id`]) are predictable once one has been seen: fine for
/// naming messages, not for proving anything. Request ids ([`IdGenerator::next_secret_id`])
/// carry a keyed hash of the counter instead, under a key drawn from the operating system's
/// randomness that never leaves this process, so only an agent that was shown the request can
/// name it in a reply.
#[derive(Debug)]
pub struct IdGenerator {
    nonce: u64,
    next: u64,
    key: std::collections::hash_map::RandomState,
}

impl IdGenerator {
    /// A generator with a fresh random nonce.
    pub fn new() -> IdGenerator {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(agentbus_ipc::clock::realtime_ns());
        h.write_u32(std::process::id());
        // Never zero, so no id is ever MessageId::NONE.
        IdGenerator::with_nonce(h.finish() | 1 << 63)
    }

    /// A generator with a given nonce (tests, replay); the nonce must not be zero.
    pub fn with_nonce(nonce: u64) -> IdGenerator {
        IdGenerator {
            nonce: nonce.max(1),
            next: 1,
            key: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The next id.
    pub fn next_id(&mut self) -> MessageId {
        let id = MessageId((self.nonce as u128) << 64 | self.next as u128);
        self.next += 1;
        id
    }

    /// The next id, unguessable from every id seen before it: its low 64 bits are a keyed
    /// SipHash of the counter (about 20 ns). Unique within the generator unless two hashes
    /// collide (1 in 2^64 per pair).
    pub fn next_secret_id(&mut self) -> MessageId {
        let mut h = self.key.build_hasher();
        h.write_u64(self.next);
        self.next += 1;
        MessageId((self.nonce as u128) << 64 | h.finish().max(1) as u128)
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
    fn ids_are_unique_within_and_across_generators() {
        let mut a = IdGenerator::new();
        let mut b = IdGenerator::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next_id()));
            assert!(seen.insert(b.next_id()));
        }
        assert!(!seen.contains(&MessageId::NONE));
    }

    #[test]
    fn secret_ids_do_not_follow_the_ids_before_them() {
        let mut g = IdGenerator::new();
        let seen = g.next_id();
        let secret = g.next_secret_id();
        assert_eq!(secret.nonce(), seen.nonce());
        assert_ne!(secret.sequence(), seen.sequence() + 1);
        let mut all = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(all.insert(g.next_secret_id()));
        }
    }

    #[test]
    fn ids_render_short_and_parse_back_from_the_long_form() {
        let id = IdGenerator::with_nonce(0x1122_3344_5566_7788).next_id();
        assert_eq!(id.to_string(), "55667788-1");
        let long = format!("{id:#}");
        assert_eq!(long.len(), 32);
        assert_eq!(long.parse::<MessageId>().unwrap(), id);
        assert!("55667788-1".parse::<MessageId>().is_err());
    }
}
