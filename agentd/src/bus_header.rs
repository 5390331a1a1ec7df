//! The bus header: a named segment (`/dev/shm/agentbus.<bus>.ctl`) that monitor tools map
//! read-only, so they work even when agentd is wedged.
//!
//! Words (u64, little-endian): 0 magic, 1 layout version, 2 agentd's pid, 3 start time (ns since
//! the epoch), 4 the router's heartbeat (monotonic ns), 5 agents attached, 8.. router counters
//! (passes, frames in, delivered, dead-lettered, faulted); from word 64, the registry: one record
//! of [`RECORD_WORDS`] words per slot (generation, epoch, pid, uid, capacity, agent id, agent
//! type), written by the control thread seqlock-style: the generation is odd while a record is
//! being written, so a reader that sees the same even generation before and after its read has a
//! whole record. The router writes words 4 and 8..; the control thread writes 5 and the
//! registry; the rest are written once at start.

use std::sync::atomic::Ordering;

use agentbus_ipc::segment::{CreateError, NamedSegment, OpenError};
use agentbus_ipc::words::WordTable;

/// Bytes of the header segment.
pub const HEADER_LEN: usize = 64 * 1024;
/// First word of the registry.
pub const REGISTRY: usize = 64;
/// Words per registry record.
pub const RECORD_WORDS: usize = 24;
const R_GEN: usize = 0;
const R_EPOCH: usize = 1;
const R_PID: usize = 2;
const R_UID: usize = 3;
const R_CAPACITY: usize = 4;
const R_ID: usize = 8;
const ID_WORDS: usize = 8;
const R_TYPE: usize = 16;
const TYPE_WORDS: usize = 8;

/// One agent as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The agent's slot: not stored, it is the record's index (the record starts at word
    /// `REGISTRY + slot * RECORD_WORDS`).
    pub slot: u32,
    /// The slot's epoch at attach (1..=65535): with the slot, names this occupant; written 0
    /// when the slot is freed.
    pub epoch: u32,
    /// The agent's process id, from `SO_PEERCRED` at attach.
    pub pid: u32,
    /// The agent's user id, from `SO_PEERCRED` at attach.
    pub uid: u32,
    /// The most tasks the agent declared it holds (`max_capacity` at attach).
    pub capacity: u32,
    /// Agent id (cut to 64 bytes).
    pub agent_id: String,
    /// Agent type (cut to 64 bytes).
    pub agent_type: String,
}
const MAGIC: u64 = u64::from_le_bytes(*b"AGBUSCTL");
const VERSION: u64 = 1;

/// Word indexes of the header's first line: private, used only through [`HeaderWords`].
mod word {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 1;
    pub const PID: usize = 2;
    pub const STARTED_NS: usize = 3;
    pub const ROUTER_BEAT: usize = 4;
    pub const AGENTS: usize = 5;
    pub const PASSES: usize = 8;
    pub const FRAMES_IN: usize = 9;
    pub const DELIVERED: usize = 10;
    pub const DEAD: usize = 11;
    pub const FAULTED: usize = 12;
}

/// The router's totals, as it publishes them in the header (about once a millisecond while
/// busy, and before each sleep).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterTotals {
    /// The router's heartbeat, monotonic ns.
    pub beat: u64,
    /// Passes made.
    pub passes: u64,
    /// Frames read from outbound lanes.
    pub frames_in: u64,
    /// Copies delivered.
    pub delivered: u64,
    /// Copies dead-lettered.
    pub dead: u64,
    /// Agents detached as faulty.
    pub faulted: u64,
}

/// The header's words as a typed view: who writes what is in the method names (the router:
/// [`publish_router`](Self::publish_router); the control thread:
/// [`set_agents`](Self::set_agents); agentd at start: the pid).
#[derive(Debug, Clone)]
pub struct HeaderWords {
    words: WordTable,
}

impl HeaderWords {
    fn of(segment: &NamedSegment) -> HeaderWords {
        HeaderWords {
            words: WordTable::new(segment.region()).expect("segments are page-aligned"),
        }
    }

    /// Publishes the router's totals (the router thread).
    pub fn publish_router(&self, totals: RouterTotals) {
        let w = &self.words;
        // Relaxed: monitors read these as independent gauges.
        w.store(word::ROUTER_BEAT, totals.beat, Ordering::Relaxed);
        w.store(word::PASSES, totals.passes, Ordering::Relaxed);
        w.store(word::FRAMES_IN, totals.frames_in, Ordering::Relaxed);
        w.store(word::DELIVERED, totals.delivered, Ordering::Relaxed);
        w.store(word::DEAD, totals.dead, Ordering::Relaxed);
        w.store(word::FAULTED, totals.faulted, Ordering::Relaxed);
    }

    /// The router's totals as last published.
    pub fn router(&self) -> RouterTotals {
        let w = |i| self.words.load(i, Ordering::Relaxed);
        RouterTotals {
            beat: w(word::ROUTER_BEAT),
            passes: w(word::PASSES),
            frames_in: w(word::FRAMES_IN),
            delivered: w(word::DELIVERED),
            dead: w(word::DEAD),
            faulted: w(word::FAULTED),
        }
    }

    /// Publishes how many agents are attached (the control thread).
    pub fn set_agents(&self, agents: u64) {
        // Relaxed: a gauge.
        self.words.store(word::AGENTS, agents, Ordering::Relaxed);
    }

    /// The agentd whose header this is, if the header is complete (its magic written last).
    pub fn pid(&self) -> Option<u32> {
        // Acquire pairs with the Release store of the magic in `BusHeader::create`.
        (self.words.load(word::MAGIC, Ordering::Acquire) == MAGIC)
            .then(|| self.words.load(word::PID, Ordering::Relaxed) as u32)
    }

    /// Records `pid` as the agentd serving this bus (agentd at start; a test fakes the header a
    /// crashed agentd left with it).
    pub fn record_pid(&self, pid: u32) {
        self.words.store(word::PID, pid as u64, Ordering::Relaxed);
    }
}

/// The header segment, as agentd holds it.
#[derive(Debug)]
pub struct BusHeader {
    segment: NamedSegment,
    view: HeaderWords,
    words: WordTable,
}

impl BusHeader {
    /// Creates the header for this agentd.
    pub fn create(name: &str) -> Result<BusHeader, CreateError> {
        let segment = NamedSegment::create(name, HEADER_LEN, 0o600)?;
        let view = HeaderWords::of(&segment);
        let words = view.words.clone();
        words.store(word::VERSION, VERSION, Ordering::Relaxed);
        view.record_pid(std::process::id());
        words.store(
            word::STARTED_NS,
            agentbus_ipc::clock::realtime_ns(),
            Ordering::Relaxed,
        );
        // Pairs with the Acquire load in `read_pid`.
        words.store(word::MAGIC, MAGIC, Ordering::Release);
        Ok(BusHeader {
            segment,
            view,
            words,
        })
    }

    /// The header's words, for the router and the control thread.
    pub fn words(&self) -> &HeaderWords {
        &self.view
    }

    /// Publishes the record of `slot` (`None`: the slot is free).
    pub fn publish_slot(&self, slot: u32, entry: Option<&RegistryEntry>) {
        let base = REGISTRY + slot as usize * RECORD_WORDS;
        if base + RECORD_WORDS > self.words.len() {
            return;
        }
        let w = &self.words;
        let gen = w.load(base + R_GEN, Ordering::Relaxed);
        // Odd: being written. The Release fence orders this store before the field stores
        // below, for a reader whose Acquire fence (after reading fields) then sees it changed
        // (`read_registry`).
        w.store(base + R_GEN, gen | 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        match entry {
            Some(e) => {
                w.store(base + R_EPOCH, e.epoch as u64, Ordering::Relaxed);
                w.store(base + R_PID, e.pid as u64, Ordering::Relaxed);
                w.store(base + R_UID, e.uid as u64, Ordering::Relaxed);
                w.store(base + R_CAPACITY, e.capacity as u64, Ordering::Relaxed);
                w.store_str(base + R_ID, ID_WORDS, &e.agent_id);
                w.store_str(base + R_TYPE, TYPE_WORDS, &e.agent_type);
            }
            None => {
                w.store(base + R_EPOCH, 0, Ordering::Relaxed);
                w.store_str(base + R_ID, ID_WORDS, "");
            }
        }
        // Even again, and new: pairs with the reader's Acquire loads of the generation.
        w.store(base + R_GEN, (gen | 1) + 1, Ordering::Release);
    }

    /// Removes the name from /dev/shm.
    pub fn unlink(&self) {
        let _ = NamedSegment::unlink(self.segment.name());
    }
}

/// The pid recorded in an existing header, if it is one.
pub fn read_pid(name: &str) -> Result<Option<u32>, OpenError> {
    let seg = NamedSegment::open(name, false, HEADER_LEN)?;
    Ok(HeaderWords::of(&seg).pid())
}

/// Reads the registry from bus `bus`'s header, as a monitor tool does (read-only, without
/// asking agentd). Records being rewritten at that instant are retried a few times, then skipped.
pub fn read_registry(bus: &str) -> Result<Vec<RegistryEntry>, OpenError> {
    let seg = NamedSegment::open(
        &agentbus::paths::header_segment_name(bus),
        false,
        HEADER_LEN,
    )?;
    let w = WordTable::new(seg.region()).expect("segments are page-aligned");
    let mut out = Vec::new();
    let slots = (w.len() - REGISTRY) / RECORD_WORDS;
    for slot in 0..slots {
        let base = REGISTRY + slot * RECORD_WORDS;
        for _ in 0..8 {
            // SYNC POINT with the Release stores of the generation in `publish_slot`.
            let before = w.load(base + R_GEN, Ordering::Acquire);
            if before == 0 {
                break; // never used
            }
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let entry = RegistryEntry {
                slot: slot as u32,
                epoch: w.load(base + R_EPOCH, Ordering::Relaxed) as u32,
                pid: w.load(base + R_PID, Ordering::Relaxed) as u32,
                uid: w.load(base + R_UID, Ordering::Relaxed) as u32,
                capacity: w.load(base + R_CAPACITY, Ordering::Relaxed) as u32,
                agent_id: w.load_str(base + R_ID, ID_WORDS),
                agent_type: w.load_str(base + R_TYPE, TYPE_WORDS),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if w.load(base + R_GEN, Ordering::Relaxed) == before {
                if !entry.agent_id.is_empty() {
                    out.push(entry);
                }
                break;
            }
        }
    }
    Ok(out)
}
