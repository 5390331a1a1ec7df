//! The single-producer/single-consumer ring of variable-length frames.
//!
//! Layout of a ring (offsets from its start, which must be 128-byte aligned):
//!
//! | offset | what | written by |
//! | --- | --- | --- |
//! | 0 | magic, version, flags, capacity, commit key | the creator, once |
//! | 128 | the consumer's head (bytes released) | consumer |
//! | 256 | data doorbell: the consumer sleeps on it | consumer (flag), producer (ring) |
//! | 384 | space doorbell: the producer sleeps on it | producer (flag), consumer (ring) |
//! | 512 | `capacity` bytes of frames | producer |
//!
//! Each frame is a 16-byte header and a payload padded to 16 bytes. The header's first word is
//! the commit word: the frame's own stream position XOR the ring's random key, stored last with
//! Release. The consumer waits for the word at its read position to equal that value, so a
//! message arrives in the cache lines it was written in, with no separate tail index. The key is
//! what makes this safe: where the consumer waits, memory holds whatever an earlier lap left,
//! old *payload* bytes included, and a bare position could be found there by chance or planted
//! by an agent whose message the router copied in. Nobody outside this ring's segment knows the
//! key, and zeroed memory never matches it. (Invalidating the next header slot at each commit
//! would also work, but it makes the line the consumer spins on cross cores one more time per
//! message: it measured about 2x the round trip.) A frame never wraps: a padding frame fills the
//! end of the ring. The producer caches the consumer's head and reads the
//! shared one only when its cache says the ring is full.
//!
//! Everything the other side writes is untrusted: positions and lengths are bounds-checked, and
//! a bad value is a [`Corruption`] error, never an out-of-bounds access or an endless loop.

mod consumer;
pub mod cursor;
mod error;
mod layout;
mod producer;
mod ring_handle;
mod words;

pub use consumer::{Consumer, ReadGuard};
pub use error::{AttachError, ClaimError, Corruption, ReadError};
pub use layout::{max_payload_for, FRAME_ALIGN, FRAME_HEADER, RING_HEADER};
pub use producer::{Claim, Producer, Wake};
pub use ring_handle::{Ring, RingOptions};
pub use words::{RawWords, Words};
