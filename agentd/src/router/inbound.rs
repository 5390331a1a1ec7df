//! The router's writing side: every attached agent's inbound lanes, and which of them this pass
//! has written to (so each is published once, at the end of the pass).

use agentbus::header::HEADER_LEN;
use agentbus::{encode, FrameHeader, Message};
use agentbus_ipc::ring::{ClaimError, Corruption, Producer};

/// How a copy into an inbound lane went.
#[derive(Debug)]
pub enum Copied {
    /// Written (visible to the recipient when the pass publishes the lane).
    Delivered,
    /// No room: the frame stays in its source lane and is tried again next pass.
    Full,
    /// The recipient left (its slot has no lanes any more).
    Gone,
    /// The frame is larger than the recipient's lane can ever hold.
    TooLarge(ClaimError),
    /// The recipient's lane is corrupt: the recipient wrote where only the router may, so it
    /// is detached as a misbehaving agent.
    Corrupt(Corruption),
}

impl Copied {
    /// Why a copy that failed for good failed (the dead letter's reason), or `None` when it
    /// was delivered or only has to wait.
    pub fn failure(&self) -> Option<String> {
        match self {
            Copied::Delivered | Copied::Full => None,
            Copied::Gone => Some("its recipient left".into()),
            Copied::TooLarge(e) => Some(e.to_string()),
            Copied::Corrupt(c) => Some(c.to_string()),
        }
    }
}

/// Why a message agentd wrote itself did not reach a lane.
#[derive(Debug, thiserror::Error)]
pub enum Unwritten {
    /// The recipient left.
    #[error("its recipient left")]
    Gone,
    /// Its lane had no room (it is not reading), or the message could not be encoded.
    #[error(transparent)]
    Encode(agentbus::EncodeError),
}

/// Every slot's inbound lanes (CRITICAL first), and the lanes written this pass.
#[derive(Debug)]
pub struct InboundLanes {
    lanes: Vec<Option<Vec<Producer>>>,
    /// (slot, priority) of each lane written this pass, in the order first written.
    touched: Vec<(u32, usize)>,
    /// Per slot, a bit per priority: whether that lane is in `touched` already.
    touched_mask: Vec<u8>,
    /// Per slot, what was copied into its lanes and how often one was full.
    stats: Vec<LaneStats>,
}

/// What [`InboundLanes::copy`] counts per slot; reset when a slot gets new lanes.
#[derive(Debug, Clone, Copy, Default)]
pub struct LaneStats {
    /// Bytes of the copies written.
    pub bytes: u64,
    /// Times each lane was found full.
    pub full: [u64; 4],
}

impl InboundLanes {
    /// No lanes for `slots` slots.
    pub fn new(slots: usize) -> InboundLanes {
        InboundLanes {
            lanes: (0..slots).map(|_| None).collect(),
            touched: Vec::with_capacity(slots * 4),
            touched_mask: vec![0; slots],
            stats: vec![LaneStats::default(); slots],
        }
    }

    /// What was copied into `slot`'s lanes since it got them.
    pub fn stats(&self, slot: u32) -> LaneStats {
        self.stats.get(slot as usize).copied().unwrap_or_default()
    }

    /// Bytes waiting in lane `priority` of `slot` now (its reader's head, read now).
    pub fn depth(&self, slot: u32, priority: usize) -> u64 {
        self.lanes
            .get(slot as usize)
            .and_then(|l| l.as_ref())
            .and_then(|l| l.get(priority))
            .map_or(0, |l| l.pending())
    }

    /// Gives `slot` its lanes (an agent attached).
    pub fn attach(&mut self, slot: u32, lanes: Vec<Producer>) {
        if let Some(l) = self.lanes.get_mut(slot as usize) {
            *l = Some(lanes);
            self.stats[slot as usize] = LaneStats::default();
        }
    }

    /// Takes `slot`'s lanes away (its agent left). What this pass wrote there is published
    /// first, so nothing copied for it is lost from view before its unread frames are read back.
    pub fn detach(&mut self, slot: u32) {
        if self
            .touched_mask
            .get(slot as usize)
            .is_some_and(|&m| m != 0)
        {
            self.publish();
        }
        if let Some(l) = self.lanes.get_mut(slot as usize) {
            *l = None;
        }
    }

    /// Bytes waiting in `slot`'s inbound lanes (a hint: the recipient may be reading).
    pub fn backlog(&self, slot: u32) -> u64 {
        self.lanes
            .get(slot as usize)
            .and_then(|l| l.as_ref())
            .map_or(0, |lanes| lanes.iter().map(|l| l.backlog_hint()).sum())
    }

    /// Lane `priority` of `slot`, batching (unpublished) until [`publish`](Self::publish).
    fn lane(&mut self, slot: u32, priority: usize) -> Option<&mut Producer> {
        let lanes = self.lanes.get_mut(slot as usize)?.as_mut()?;
        let bit = 1u8 << priority;
        let mask = &mut self.touched_mask[slot as usize];
        if *mask & bit == 0 {
            // First frame for this lane in this pass: batch until the pass publishes it.
            *mask |= bit;
            self.touched.push((slot, priority));
            lanes[priority].begin_batch();
        }
        Some(&mut lanes[priority])
    }

    /// Copies `frame` (already parsed into `header`, source slot and priority stamped) into
    /// lane `priority` of `slot`. The header is written from the router's validated copy, so a
    /// sender rewriting its frame meanwhile cannot change where or as whom it arrives.
    pub fn copy(
        &mut self,
        slot: u32,
        priority: usize,
        header: &FrameHeader,
        frame: &[u8],
    ) -> Copied {
        let Some(lane) = self.lane(slot, priority) else {
            return Copied::Gone;
        };
        match lane.try_claim(frame.len()) {
            Ok(mut claim) => {
                // The fixed header from the router's copy, then the extension block and the
                // body as they are.
                let buf = claim.payload();
                header.write(&mut buf[..HEADER_LEN]);
                buf[HEADER_LEN..frame.len()].copy_from_slice(&frame[HEADER_LEN..]);
                claim.commit(frame.len());
                self.stats[slot as usize].bytes += frame.len() as u64;
                Copied::Delivered
            }
            Err(ClaimError::Full { .. } | ClaimError::TimedOut) => {
                self.stats[slot as usize].full[priority] += 1;
                Copied::Full
            }
            Err(e @ ClaimError::TooLarge { .. }) => Copied::TooLarge(e),
            Err(ClaimError::Corrupt(c)) => Copied::Corrupt(c),
        }
    }

    /// Encodes a message agentd itself writes (an error back to a sender, a `sys.agents`
    /// notice) into lane `priority` of `slot`.
    pub fn write(
        &mut self,
        slot: u32,
        priority: usize,
        header: &FrameHeader,
        message: &Message,
    ) -> Result<(), Unwritten> {
        let lane = self.lane(slot, priority).ok_or(Unwritten::Gone)?;
        encode(lane, header, message).map_err(Unwritten::Encode)
    }

    /// Publishes every lane written since the last call: one Release store each, at most one
    /// wake-up of its reader.
    pub fn publish(&mut self) {
        for (slot, priority) in self.touched.drain(..) {
            if let Some(lanes) = self.lanes[slot as usize].as_mut() {
                lanes[priority].publish();
            }
            self.touched_mask[slot as usize] = 0;
        }
    }
}
