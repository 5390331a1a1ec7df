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

/// Word indexes of the control page: private, used only through [`ChannelControl`].
mod word {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const ID: usize = 2;
    pub const CAPACITY: usize = 3;
    /// Who closed the channel (0 while open), on its own cache line.
    pub const CLOSED: usize = 8;
}

/// Who closed a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The agent that opened it.
    Opener,
    /// The agent it was offered to.
    Acceptor,
    /// agentd: the agent at the other end left or died.
    Agentd,
}

impl ClosedBy {
    fn word(self) -> u64 {
        match self {
            ClosedBy::Opener => 1,
            ClosedBy::Acceptor => 2,
            ClosedBy::Agentd => 3,
        }
    }

    /// The side of a channel (0: opener, 1: acceptor) closing it.
    pub fn side(side: u8) -> ClosedBy {
        if side == 0 {
            ClosedBy::Opener
        } else {
            ClosedBy::Acceptor
        }
    }
}

impl std::fmt::Display for ClosedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClosedBy::Opener => "its opener closed it",
            ClosedBy::Acceptor => "the agent it was offered to closed it",
            ClosedBy::Agentd => "agentd closed it: the agent at the other end left or died",
        })
    }
}

/// A channel's control page (the first 4 KiB of its segment) as a typed view: the layout
/// words agentd writes once, and who closed the channel, written by whichever side (or
/// agentd) closes it first.
///
/// ```
/// use agentbus::channel_layout::{self, ChannelControl, ClosedBy};
///
/// let seg = channel_layout::create(1, 4096, true).unwrap();
/// let control = ChannelControl::of(&seg.region());
/// assert_eq!(control.closed_by(), None);
/// assert!(control.close(ClosedBy::Opener));
/// assert!(!control.close(ClosedBy::Agentd)); // the first close is the one remembered
/// assert_eq!(control.closed_by(), Some(ClosedBy::Opener));
/// ```
#[derive(Debug, Clone)]
pub struct ChannelControl {
    words: WordTable,
}

impl ChannelControl {
    /// The control page of the channel segment `seg`.
    pub fn of(seg: &Region) -> ChannelControl {
        ChannelControl {
            words: WordTable::new(
                seg.sub(0, CONTROL)
                    .expect("a channel segment has a control page"),
            )
            .expect("segments are page-aligned"),
        }
    }

    /// Marks the channel closed by `by`, unless it is closed already; returns whether this
    /// call closed it.
    pub fn close(&self, by: ClosedBy) -> bool {
        // Release pairs with the Acquire load in `closed_by` on the other side.
        self.words
            .word(word::CLOSED)
            .compare_exchange(0, by.word(), Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Who closed the channel, or `None` while it is open.
    pub fn closed_by(&self) -> Option<ClosedBy> {
        // Acquire pairs with the Release in `close`.
        match self.words.load(word::CLOSED, Ordering::Acquire) {
            0 => None,
            1 => Some(ClosedBy::Opener),
            2 => Some(ClosedBy::Acceptor),
            _ => Some(ClosedBy::Agentd),
        }
    }

    fn init(&self, id: u64, capacity: usize) {
        self.words.store(word::VERSION, 1, Ordering::Relaxed);
        self.words.store(word::ID, id, Ordering::Relaxed);
        self.words
            .store(word::CAPACITY, capacity as u64, Ordering::Relaxed);
        // Pairs with the Acquire load in `layout`.
        self.words.store(word::MAGIC, MAGIC, Ordering::Release);
    }

    /// Magic (Acquire, pairs with `init`) and ring capacity.
    fn layout(&self) -> (u64, usize) {
        let magic = self.words.load(word::MAGIC, Ordering::Acquire);
        let capacity = self.words.load(word::CAPACITY, Ordering::Relaxed) as usize;
        (magic, capacity)
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
    ChannelControl::of(&region).init(id, capacity);
    Ok(seg)
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
        /// The control page's first word, which is not the channel magic.
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
        /// Why the ring could not be attached (wrong magic, version or capacity, ...).
        source: AttachError,
    },
}

/// The two rings (side 0 -> 1, side 1 -> 0) of a channel segment, checked.
pub fn rings(seg: &Region) -> Result<(Ring, Ring), ChannelLayoutError> {
    if seg.len() < CONTROL {
        return Err(ChannelLayoutError::TooSmall { len: seg.len() });
    }
    let (magic, capacity) = ChannelControl::of(seg).layout();
    if magic != MAGIC {
        return Err(ChannelLayoutError::BadMagic { found: magic });
    }
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
