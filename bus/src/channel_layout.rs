//! A direct channel's segment: a control page and two rings, one each way.
//!
//! | offset | what | written by |
//! | --- | --- | --- |
//! | 0 | magic, version, channel id, ring capacity | agentd, at creation |
//! | 64 (word 8) | closed: 0 open, 1 closed by side 0, 2 by side 1, 3 by agentd (a side died) | the closer |
//! | 4096 | ring side 0 -> side 1 | side 0 produces, side 1 consumes |
//! | then | ring side 1 -> side 0 | side 1 produces, side 0 consumes |

use std::sync::atomic::Ordering;

use agentbus_ipc::ring::{AttachError, Ring, RingOptions};
use agentbus_ipc::segment::{CreateError, MemfdSegment};
use agentbus_ipc::words::WordTable;
use agentbus_ipc::Region;

const MAGIC: u64 = u64::from_le_bytes(*b"AGBCHANL");
const CONTROL: usize = 4096;
/// Word of the control page holding who closed the channel.
pub const CLOSED: usize = 8;
const W_CAPACITY: usize = 3;

/// Who closed a channel.
pub fn closed_by(word: u64) -> Option<&'static str> {
    match word {
        0 => None,
        1 => Some("its opener closed it"),
        2 => Some("the agent it was offered to closed it"),
        _ => Some("agentd closed it: the agent at the other end left or died"),
    }
}

/// Creates a channel segment with rings of `capacity` bytes (agentd's side); `parking` as for
/// lanes ([`crate::lanes::create`]).
pub fn create(id: u64, capacity: usize, parking: bool) -> Result<MemfdSegment, CreateError> {
    let ring = Ring::size_for(capacity);
    let seg = MemfdSegment::create(&format!("agentbus-channel-{id}"), CONTROL + 2 * ring)?;
    let region = seg.region();
    for i in 0..2 {
        Ring::create(
            region.sub(CONTROL + i * ring, ring).expect("sized above"),
            RingOptions::new(capacity).parking(parking),
        )
        .map_err(|_| CreateError::BadSize { size: capacity })?;
    }
    let words = control(&region);
    words.store(1, 1, Ordering::Relaxed);
    words.store(2, id, Ordering::Relaxed);
    words.store(W_CAPACITY, capacity as u64, Ordering::Relaxed);
    // Pairs with the Acquire load in `rings`.
    words.store(0, MAGIC, Ordering::Release);
    Ok(seg)
}

/// The control page.
pub fn control(seg: &Region) -> WordTable {
    WordTable::new(
        seg.sub(0, CONTROL)
            .expect("a channel segment has a control page"),
    )
    .expect("segments are page-aligned")
}

/// Why a segment handed over as a channel is not one ([`rings`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelLayoutError {
    /// Shorter than the control page.
    #[error("channel segment of {len} bytes is too small for its control page ({CONTROL} bytes): agentd and this process disagree on the layout; run both from the same agentbus version")]
    TooSmall {
        /// The segment's length.
        len: usize,
    },
    /// The control page does not start with a channel's magic.
    #[error("not a channel segment (bad magic {found:#x}): agentd handed over something else; run agentd and agents from the same agentbus version")]
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// The rings the control page states do not fit the segment.
    #[error("channel segment of {len} bytes is too small for rings of {capacity} bytes: agentd and this process disagree on the layout; run both from the same agentbus version")]
    RingsDontFit {
        /// The ring capacity the control page states.
        capacity: usize,
        /// The segment's length.
        len: usize,
    },
    /// A ring could not be attached.
    #[error("channel ring {side}: {source}")]
    Ring {
        /// Which ring: 0 (side 0 -> 1) or 1 (side 1 -> 0).
        side: usize,
        /// Why.
        source: AttachError,
    },
}

/// The two rings (side 0 -> 1, side 1 -> 0) of a channel segment, checked.
pub fn rings(seg: &Region) -> Result<(Ring, Ring), ChannelLayoutError> {
    if seg.len() < CONTROL {
        return Err(ChannelLayoutError::TooSmall { len: seg.len() });
    }
    let words = control(seg);
    let magic = words.load(0, Ordering::Acquire);
    if magic != MAGIC {
        return Err(ChannelLayoutError::BadMagic { found: magic });
    }
    let capacity = words.load(W_CAPACITY, Ordering::Relaxed) as usize;
    let ring = Ring::size_for(capacity);
    let attach = |side: usize| {
        let region =
            seg.sub(CONTROL + side * ring, ring)
                .ok_or(ChannelLayoutError::RingsDontFit {
                    capacity,
                    len: seg.len(),
                })?;
        Ring::attach(region).map_err(|source| ChannelLayoutError::Ring { side, source })
    };
    Ok((attach(0)?, attach(1)?))
}
