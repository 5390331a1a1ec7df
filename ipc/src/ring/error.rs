//! Errors of the ring's operations.

/// A value the other side wrote that cannot be right: the peer is broken or hostile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring corrupted by its peer at stream position {position}: {reason} (value {value:#x}); detach the peer")]
pub struct Corruption {
    /// The stream position being read or written.
    pub position: u64,
    /// The offending value.
    pub value: u64,
    /// What was wrong with it.
    pub reason: &'static str,
}

/// Why a frame could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The payload is larger than this ring accepts.
    #[error("a {len}-byte payload is larger than this ring's maximum of {max} bytes: send less, or configure larger lanes")]
    TooLarge {
        /// Bytes asked for.
        len: usize,
        /// The most this ring takes.
        max: usize,
    },
    /// The consumer has not released enough room yet.
    #[error("ring full: {needed} bytes needed, {free} free; the consumer is behind: retry, or wait with a strategy")]
    Full {
        /// Bytes the frame needs (padding and next header included).
        needed: usize,
        /// Bytes free.
        free: usize,
    },
    /// Waiting for room passed its deadline.
    #[error("timed out waiting for room in the ring: the consumer is not reading")]
    TimedOut,
    /// The consumer published an impossible head.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// Why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The producer wrote an impossible frame header.
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// Why a ring could not be created in, or attached to, a region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The capacity is not a power of two in the allowed range.
    #[error("ring capacity {capacity} must be a power of two between {min} and {max} bytes")]
    BadCapacity {
        /// Bytes of frame space asked for at create, or read from the ring's header at attach.
        capacity: u64,
        /// The smallest capacity a ring may have, in bytes (128).
        min: usize,
        /// The largest capacity a ring may have, in bytes (2^40).
        max: usize,
    },
    /// The region is too small for the ring.
    #[error("region of {len} bytes cannot hold a ring needing {needed} bytes")]
    TooSmall {
        /// The region's length.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The region does not start on a 128-byte boundary.
    #[error("a ring must start on a 128-byte boundary (address {addr:#x})")]
    Misaligned {
        /// The region's start address, which is not a multiple of 128.
        addr: usize,
    },
    /// No ring was initialised there.
    #[error("no ring at this place (magic {found:#x}): the segment's creator and this process disagree on its layout")]
    BadMagic {
        /// The word at the magic's offset, which is not the ring magic.
        found: u64,
    },
    /// A ring of another layout version.
    #[error("ring layout version {found}, this build speaks {expected}: use the same agentbus version on both sides")]
    BadVersion {
        /// The layout version the ring's header records.
        found: u64,
        /// The layout version this build writes and reads.
        expected: u64,
    },
}
