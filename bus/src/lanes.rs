//! An agent's lane segment: a control block and eight rings, in one memfd created by agentd.
//!
//! | offset | what | written by |
//! | --- | --- | --- |
//! | 0 | control block words: magic, version, slot, epoch, lane capacity | agentd, at attach |
//! | 64 | the router's heartbeat (realtime ns) | agentd |
//! | 128 | the agent's heartbeat (monotonic ns) | the agent |
//! | 192 | when the agent last sent (realtime ns) | the agent |
//! | 256 | the agent's doorbell: it sleeps there, agentd rings it | both |
//! | 384 | the agent's reported load | the agent |
//! | 448 | the router sleeps: signal its eventfd after sending (this agent's own flag) | agentd |
//! | 512 | times the agent found each outbound lane full (4 words) | the agent |
//! | 4096 | outbound rings, CRITICAL..LOW (agent -> router) | agent produces, router consumes |
//! | then | inbound rings, CRITICAL..LOW (router -> agent) | router produces, agent consumes |

use std::sync::atomic::Ordering;

use agentbus_ipc::ring::{AttachError, Ring, RingOptions};
use agentbus_ipc::segment::{CreateError, MemfdSegment};
use agentbus_ipc::words::{SharedDoorbell, WordTable};
use agentbus_ipc::Region;

/// Lanes per direction: one per priority.
pub const PRIORITIES: usize = 4;
/// Bytes of the control block before the rings.
pub const CONTROL_BLOCK: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"AGBLANES");
const VERSION: u64 = 1;

/// Word indexes in the control block: private, so they can only be used through
/// [`ControlBlock`] (an index of another table cannot reach this one).
mod word {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const SLOT: usize = 2;
    pub const EPOCH: usize = 3;
    pub const CAPACITY: usize = 4;
    pub const ROUTER_BEAT: usize = 8;
    pub const HEARTBEAT: usize = 16;
    pub const LAST_SEND: usize = 24;
    pub const LOAD: usize = 48;
    pub const OUT_FULL: usize = 64;
}

/// An agent's control block: the first 4 KiB of its lane segment, each word on its own cache
/// line where two sides write. The agent's words are untrusted by agentd: a wrong number only
/// misjudges that agent.
///
/// ```
/// use agentbus::lanes::{self, LaneLayout};
///
/// let seg = lanes::create(LaneLayout { capacity: 4096 }, 3, 7, true).unwrap();
/// let cb = lanes::ControlBlock::of(&seg.region());
/// assert_eq!((cb.slot(), cb.epoch()), (3, 7));
/// cb.beat(1_000);
/// assert!(cb.alive(1_500, 0, 1_000));
/// ```
#[derive(Debug, Clone)]
pub struct ControlBlock {
    words: WordTable,
}

impl ControlBlock {
    /// The control block of the lane segment `seg`.
    pub fn of(seg: &Region) -> ControlBlock {
        ControlBlock {
            words: WordTable::new(
                seg.sub(0, CONTROL_BLOCK)
                    .expect("segments hold a control block"),
            )
            .expect("segments are page-aligned"),
        }
    }

    /// The slot agentd gave the agent.
    pub fn slot(&self) -> u32 {
        self.words.load(word::SLOT, Ordering::Relaxed) as u32
    }

    /// The slot's epoch, written by agentd at attach: with the slot, names this occupant of
    /// the slot (agentd's epochs cycle through 1..=65535).
    pub fn epoch(&self) -> u32 {
        self.words.load(word::EPOCH, Ordering::Relaxed) as u32
    }

    /// The router's heartbeat, realtime ns since the epoch (agentd writes it about once a
    /// millisecond while busy, and before each sleep while idle): a client whose router beat
    /// stops checks whether agentd is gone.
    pub fn router_beat(&self) -> u64 {
        // Acquire pairs with the Release in `set_router_beat`.
        self.words.load(word::ROUTER_BEAT, Ordering::Acquire)
    }

    /// Stamps the router's heartbeat (agentd).
    pub fn set_router_beat(&self, realtime_ns: u64) {
        // Release pairs with the Acquire in `router_beat`.
        self.words
            .store(word::ROUTER_BEAT, realtime_ns, Ordering::Release);
    }

    /// Stamps the agent's heartbeat, monotonic ns (the agent; agentd once at attach, so an
    /// agent is born beating).
    pub fn beat(&self, monotonic_ns: u64) {
        // Release pairs with the Acquire in `alive`.
        self.words
            .store(word::HEARTBEAT, monotonic_ns, Ordering::Release);
    }

    /// Stamps when the agent last sent, realtime ns since the epoch (the agent, from the clock
    /// reading it stamps messages with, at most once per half heartbeat interval).
    pub fn sent_at(&self, realtime_ns: u64) {
        // Release pairs with the Acquire in `alive`.
        self.words
            .store(word::LAST_SEND, realtime_ns, Ordering::Release);
    }

    /// Reports the agent's load (the agent).
    pub fn report_load(&self, load: u32) {
        // Relaxed: a gauge; agentd reads it as it is when it routes.
        self.words.store(word::LOAD, load as u64, Ordering::Relaxed);
    }

    /// The load the agent reported, clamped to `u32` (its number is untrusted).
    pub fn load(&self) -> u32 {
        self.words
            .load(word::LOAD, Ordering::Relaxed)
            .min(u32::MAX as u64) as u32
    }

    /// The agent's heartbeat as it last stamped it, monotonic ns (untrusted: for monitors).
    pub fn heartbeat(&self) -> u64 {
        // Relaxed: a gauge for monitors; `alive` is the check that orders.
        self.words.load(word::HEARTBEAT, Ordering::Relaxed)
    }

    /// Counts a time the agent found outbound lane `priority` full (the agent, on that slow
    /// path only).
    pub fn count_full(&self, priority: usize) {
        // Relaxed: a counter; several of the agent's threads may send, hence the add.
        self.words
            .word(word::OUT_FULL + priority.min(PRIORITIES - 1))
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Times the agent says it found outbound lane `priority` full (untrusted).
    pub fn full_events(&self, priority: usize) -> u64 {
        self.words.load(
            word::OUT_FULL + priority.min(PRIORITIES - 1),
            Ordering::Relaxed,
        )
    }

    /// Whether the agent shows signs of life within `timeout_ns`: a heartbeat (stamped while
    /// it receives or idles) or a send (an agent that only sends is alive too).
    pub fn alive(&self, now_mono: u64, now_rt: u64, timeout_ns: u64) -> bool {
        // Acquire pairs with the agent's Release stores in `beat` and `sent_at`.
        let beat = self.words.load(word::HEARTBEAT, Ordering::Acquire);
        let sent = self.words.load(word::LAST_SEND, Ordering::Acquire);
        now_mono.saturating_sub(beat) <= timeout_ns || now_rt.saturating_sub(sent) <= timeout_ns
    }

    /// Writes the layout words, magic last (agentd, before handing the segment over).
    fn init(&self, slot: u32, epoch: u32, capacity: usize) {
        self.words.store(word::VERSION, VERSION, Ordering::Relaxed);
        self.words.store(word::SLOT, slot as u64, Ordering::Relaxed);
        self.words
            .store(word::EPOCH, epoch as u64, Ordering::Relaxed);
        self.words
            .store(word::CAPACITY, capacity as u64, Ordering::Relaxed);
        // Pairs with the Acquire load in `layout`.
        self.words.store(word::MAGIC, MAGIC, Ordering::Release);
    }

    /// The layout words: magic (Acquire, pairs with `init`), version, capacity.
    fn layout(&self) -> (u64, u64, usize) {
        let magic = self.words.load(word::MAGIC, Ordering::Acquire);
        let version = self.words.load(word::VERSION, Ordering::Relaxed);
        let capacity = self.words.load(word::CAPACITY, Ordering::Relaxed) as usize;
        (magic, version, capacity)
    }
}

/// Byte offset of the agent's doorbell in the control block.
pub const AGENT_BELL: usize = 256;
/// Byte offset of the router's sleeping flag for this agent in the control block: the router
/// sets it in every agent's control block before it sleeps, and an agent that sends signals
/// its own eventfd only while it is set (so an agent that lies about it delays only itself).
pub const ROUTER_ASLEEP: usize = 448;

/// Where things are in a lane segment with lanes of `capacity` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneLayout {
    /// Bytes per lane (a power of two).
    pub capacity: usize,
}

impl LaneLayout {
    fn ring_size(&self) -> usize {
        Ring::size_for(self.capacity)
    }

    /// Byte offset of outbound lane `priority`.
    pub fn outbound(&self, priority: usize) -> usize {
        CONTROL_BLOCK + priority * self.ring_size()
    }

    /// Byte offset of inbound lane `priority`.
    pub fn inbound(&self, priority: usize) -> usize {
        CONTROL_BLOCK + (PRIORITIES + priority) * self.ring_size()
    }

    /// Bytes of the whole segment.
    pub fn segment_len(&self) -> usize {
        CONTROL_BLOCK + 2 * PRIORITIES * self.ring_size()
    }

    fn ring_region(&self, seg: &Region, offset: usize) -> Region {
        seg.sub(offset, self.ring_size())
            .expect("the segment holds every lane: its length was checked")
    }

    /// Outbound ring `priority` of a segment.
    pub fn outbound_ring(
        &self,
        seg: &Region,
    ) -> impl Iterator<Item = Result<Ring, AttachError>> + '_ {
        let seg = seg.clone();
        (0..PRIORITIES).map(move |p| Ring::attach(self.ring_region(&seg, self.outbound(p))))
    }

    /// Inbound rings of a segment, CRITICAL first.
    pub fn inbound_rings(
        &self,
        seg: &Region,
    ) -> impl Iterator<Item = Result<Ring, AttachError>> + '_ {
        let seg = seg.clone();
        (0..PRIORITIES).map(move |p| Ring::attach(self.ring_region(&seg, self.inbound(p))))
    }
}

/// The agent's doorbell in a lane segment.
pub fn agent_bell(seg: &Region) -> SharedDoorbell {
    SharedDoorbell::new(
        seg.sub(AGENT_BELL, 8)
            .expect("segments hold a control block"),
    )
    .expect("the doorbell offset is aligned")
}

/// The router's sleeping flag for the agent of lane segment `seg` (one word).
pub fn router_asleep_word(seg: &Region) -> Region {
    seg.sub(ROUTER_ASLEEP, 8)
        .expect("segments hold a control block")
}

/// Creates a lane segment for the agent in `slot` (agentd's side). With `parking` false the
/// rings have no doorbells: nobody pays a fence per publish, and waiting sides must spin or
/// back off (a parked side would only notice new frames at its sleep slice).
pub fn create(
    layout: LaneLayout,
    slot: u32,
    epoch: u32,
    parking: bool,
) -> Result<MemfdSegment, CreateError> {
    let seg = MemfdSegment::create(&format!("agentbus-lanes-{slot}"), layout.segment_len())?;
    let region = seg.region();
    for p in 0..PRIORITIES {
        for offset in [layout.outbound(p), layout.inbound(p)] {
            Ring::create(
                layout.ring_region(&region, offset),
                RingOptions::new(layout.capacity).parking(parking),
            )
            .map_err(|_| CreateError::BadSize {
                size: layout.capacity,
            })?;
        }
    }
    ControlBlock::of(&region).init(slot, epoch, layout.capacity);
    region.mapping().prefault();
    Ok(seg)
}

/// Why a segment handed over as an agent's lanes is not one ([`check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneLayoutError {
    /// Shorter than a control block.
    #[error("lane segment of {len} bytes has no control block ({CONTROL_BLOCK} bytes): agentd and this process disagree on the layout; run both from the same agentbus version")]
    NoControlBlock {
        /// The segment's length.
        len: usize,
    },
    /// The control block does not start with the lanes' magic.
    #[error("not a lane segment (bad magic {found:#x}): agentd handed over something else; run agentd and agents from the same agentbus version")]
    BadMagic {
        /// The control block's first word, which is not the lanes' magic.
        found: u64,
    },
    /// Another layout version.
    #[error("lane layout version {found}, this build speaks {expected}: run agentd and agents from the same agentbus version")]
    Version {
        /// The layout version the segment's control block states.
        found: u64,
        /// The version this build speaks.
        expected: u64,
    },
    /// The lane capacity is not a power of two, or the lanes do not fit the segment.
    #[error("lane capacity {capacity} does not fit a segment of {len} bytes: agentd and this process disagree on the layout; run both from the same agentbus version")]
    BadCapacity {
        /// The capacity the control block states.
        capacity: usize,
        /// The segment's length.
        len: usize,
    },
}

/// Checks a lane segment handed over by agentd and returns its layout (the agent's side).
pub fn check(seg: &Region) -> Result<LaneLayout, LaneLayoutError> {
    if seg.len() < CONTROL_BLOCK {
        return Err(LaneLayoutError::NoControlBlock { len: seg.len() });
    }
    let (magic, version, capacity) = ControlBlock::of(seg).layout();
    if magic != MAGIC {
        return Err(LaneLayoutError::BadMagic { found: magic });
    }
    if version != VERSION {
        return Err(LaneLayoutError::Version {
            found: version,
            expected: VERSION,
        });
    }
    let layout = LaneLayout { capacity };
    if !capacity.is_power_of_two() || seg.len() < layout.segment_len() {
        return Err(LaneLayoutError::BadCapacity {
            capacity,
            len: seg.len(),
        });
    }
    Ok(layout)
}
