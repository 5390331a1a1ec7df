//! A direct channel's segment: a control page and two rings, one each way.
//!
//! | offset | what | written by |
//! | --- | --- | --- |
//! | 0 | magic, version, channel id, ring capacity | agentd, at creation |
//! | 64 (word 8) | closed: 0 open, 1 closed by side 0, 2 by side 1, 3 by agentd (a side died) | the closer |
//! | 4096 | ring side 0 -> side 1 | side 0 produces, side 1 consumes |
//! | then | ring side 1 -> side 0 | side 1 produces, side 0 consumes |

use std::sync::atomic::Ordering;

use agentbus_ipc::ring::{Ring, RingOptions};
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

/// The two rings (side 0 -> 1, side 1 -> 0) of a channel segment, checked.
pub fn rings(seg: &Region) -> Result<(Ring, Ring), String> {
    if seg.len() < CONTROL {
        return Err("channel segment too small".into());
    }
    let words = control(seg);
    if words.load(0, Ordering::Acquire) != MAGIC {
        return Err("not a channel segment".into());
    }
    let capacity = words.load(W_CAPACITY, Ordering::Relaxed) as usize;
    let ring = Ring::size_for(capacity);
    let region = |i: usize| {
        seg.sub(CONTROL + i * ring, ring)
            .ok_or_else(|| format!("channel segment too small for rings of {capacity} bytes"))
    };
    let a = Ring::attach(region(0)?).map_err(|e| e.to_string())?;
    let b = Ring::attach(region(1)?).map_err(|e| e.to_string())?;
    Ok((a, b))
}
