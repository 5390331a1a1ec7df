//! Offsets, sizes and the encoding of frame headers.

/// Bytes of ring header before the frame area.
pub const RING_HEADER: usize = 512;
/// Bytes of each frame's header.
pub const FRAME_HEADER: usize = 16;
/// Every frame starts at a multiple of this (rkyv archives need 16-byte alignment).
pub const FRAME_ALIGN: usize = 16;

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"AGBRING\0");
pub(crate) const VERSION: u64 = 1;
pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION_FLAGS: usize = 8;
pub(crate) const OFF_CAPACITY: usize = 16;
pub(crate) const OFF_KEY: usize = 24;
pub(crate) const OFF_HEAD: usize = 128;
pub(crate) const OFF_DATA_BELL: usize = 256;
pub(crate) const OFF_SPACE_BELL: usize = 384;
pub(crate) const OFF_DATA: usize = RING_HEADER;

/// Ring flag: both sides may park, so each rings the other's doorbell after publishing.
pub(crate) const FLAG_PARKING: u64 = 1;

/// A random per-ring key: commit words are `position ^ key`, so no bytes an earlier lap left
/// behind (stale payload included, even payload crafted by another agent, who cannot see this
/// ring's header) can pass for the commit of the frame the consumer waits for.
pub(crate) fn new_key() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::clock::monotonic_ns());
    // Odd, so it is never zero: zeroed memory never reads as a commit.
    h.finish() | 1
}

/// Smallest capacity: room for a frame of 16 bytes of payload with its padding worst case.
pub(crate) const MIN_CAPACITY: usize = 128;
/// Largest capacity: positions and lengths stay far from overflow.
pub(crate) const MAX_CAPACITY: usize = 1 << 40;

const TAG: u64 = 0xAB5C;
pub(crate) const KIND_DATA: u64 = 1;
pub(crate) const KIND_PAD: u64 = 2;

/// The second header word: a tag, the frame kind and the payload length.
pub(crate) fn encode_info(kind: u64, len: usize) -> u64 {
    (TAG << 48) | (kind << 32) | len as u64
}

/// Splits the second header word into (kind, length), or `None` if the tag is wrong.
pub(crate) fn decode_info(word: u64) -> Option<(u64, usize)> {
    (word >> 48 == TAG).then_some(((word >> 32) & 0xFFFF, (word & 0xFFFF_FFFF) as usize))
}

/// Bytes a frame of `len` payload bytes takes, header and padding included.
pub(crate) fn frame_size(len: usize) -> usize {
    FRAME_HEADER + len.next_multiple_of(FRAME_ALIGN)
}

/// The largest payload a ring of `capacity` bytes accepts.
///
/// A frame, plus the padding frame it may need at the end, plus the next header slot, must fit
/// in an empty ring, so a frame may take at most half the ring (less a header).
pub fn max_payload_for(capacity: usize) -> usize {
    (((capacity - FRAME_HEADER) / 2) & !(FRAME_ALIGN - 1)).saturating_sub(FRAME_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_info_round_trips_and_rejects_a_bad_tag() {
        let w = encode_info(KIND_DATA, 1234);
        assert_eq!(decode_info(w), Some((KIND_DATA, 1234)));
        assert_eq!(decode_info(w ^ (1 << 60)), None);
        assert_eq!(decode_info(0), None);
    }

    #[test]
    fn a_max_payload_frame_always_fits_an_empty_ring() {
        for cap in [128usize, 256, 4096, 1 << 20] {
            let max = frame_size(max_payload_for(cap));
            // worst case: the padding before it is just under one frame
            assert!(2 * max - FRAME_ALIGN + FRAME_HEADER <= cap, "cap {cap}");
        }
        assert_eq!(max_payload_for(128), 32);
    }
}
