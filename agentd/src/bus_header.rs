//! The bus header: a named segment (`/dev/shm/agentbus.<bus>.ctl`) that monitor tools map
//! read-only, so they work even when agentd is wedged.
//!
//! Words (u64, little-endian): 0 magic, 1 layout version, 2 agentd's pid, 3 start time (ns since
//! the epoch), 4 the router's heartbeat (monotonic ns), 5 agents attached, 8.. router counters
//! (passes, frames in, delivered, dead-lettered, faulted). The router writes words 4 and 8..;
//! the control thread writes 5; the rest are written once at start.

use std::sync::atomic::Ordering;

use agentbus_ipc::segment::{CreateError, NamedSegment, OpenError};
use agentbus_ipc::words::WordTable;

/// Bytes of the header segment.
pub const HEADER_LEN: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"AGBUSCTL");
const VERSION: u64 = 1;

/// Word indexes.
pub mod word {
    /// Magic.
    pub const MAGIC: usize = 0;
    /// Layout version.
    pub const VERSION: usize = 1;
    /// agentd's pid.
    pub const PID: usize = 2;
    /// Start time.
    pub const STARTED_NS: usize = 3;
    /// The router's heartbeat.
    pub const ROUTER_BEAT: usize = 4;
    /// Agents attached.
    pub const AGENTS: usize = 5;
    /// Router passes.
    pub const PASSES: usize = 8;
    /// Frames read from outbound lanes.
    pub const FRAMES_IN: usize = 9;
    /// Copies delivered.
    pub const DELIVERED: usize = 10;
    /// Copies dead-lettered.
    pub const DEAD: usize = 11;
    /// Agents detached as faulty.
    pub const FAULTED: usize = 12;
}

/// The header segment, as agentd holds it.
#[derive(Debug)]
pub struct BusHeader {
    segment: NamedSegment,
    words: WordTable,
}

impl BusHeader {
    /// Creates the header for this agentd.
    pub fn create(name: &str) -> Result<BusHeader, CreateError> {
        let segment = NamedSegment::create(name, HEADER_LEN, 0o600)?;
        let words = WordTable::new(segment.region()).expect("segments are page-aligned");
        words.store(word::VERSION, VERSION, Ordering::Relaxed);
        words.store(word::PID, std::process::id() as u64, Ordering::Relaxed);
        words.store(
            word::STARTED_NS,
            agentbus_ipc::clock::realtime_ns(),
            Ordering::Relaxed,
        );
        // Pairs with the Acquire load in `read_pid`.
        words.store(word::MAGIC, MAGIC, Ordering::Release);
        Ok(BusHeader { segment, words })
    }

    /// The words, for the router and the control thread.
    pub fn words(&self) -> &WordTable {
        &self.words
    }

    /// Removes the name from /dev/shm.
    pub fn unlink(&self) {
        let _ = NamedSegment::unlink(self.segment.name());
    }
}

/// The pid recorded in an existing header, if it is one.
pub fn read_pid(name: &str) -> Result<Option<u32>, OpenError> {
    let seg = NamedSegment::open(name, false, HEADER_LEN)?;
    let words = WordTable::new(seg.region()).expect("segments are page-aligned");
    if words.load(word::MAGIC, Ordering::Acquire) != MAGIC {
        return Ok(None);
    }
    Ok(Some(words.load(word::PID, Ordering::Relaxed) as u32))
}
