//! Knowing when agentd is gone: the router's heartbeat in the control block, and the control
//! socket's end-of-file, checked only when the beat has stopped.
//!
//! The router stamps its beat (realtime ns) into every agent's control block about once a
//! millisecond while busy and before each sleep while idle (it sleeps at most 100 ms). A send
//! compares the beat with the clock reading it stamps the message with anyway, so the check
//! costs one load and a compare, no system call. Only when the beat is older than
//! [`ROUTER_SILENT_NS`] does the client ask the kernel (one non-blocking peek, at most every
//! [`RECHECK_NS`]): end-of-file means agentd is gone; anything else means the router is only
//! slow (a loaded machine) or asleep on an idle bus, and the send goes ahead (ringing it).

use agentbus_ipc::clock::realtime_ns;

use super::{Agent, ClientError};
use crate::error::CommunicationError;
use crate::lanes;

/// A router beat older than this makes the client check the control socket.
pub const ROUTER_SILENT_NS: u64 = 40_000_000;
/// The most often a silent router makes the client check the socket.
const RECHECK_NS: u64 = 10_000_000;

/// What the client knows of agentd's liveness.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// When the socket was last checked (realtime ns).
    last_check: u64,
    /// Set once agentd is found gone: the messages it never took.
    gone: Option<u64>,
}

impl Agent {
    /// `Err(Disconnected)` if agentd is gone; `now` is a realtime clock reading the caller has.
    pub(crate) fn check_link(&mut self, now: u64) -> Result<(), CommunicationError> {
        if self.link.gone.is_some() {
            return Err(self.gone());
        }
        let beat = self.control.router_beat();
        if now.saturating_sub(beat) <= ROUTER_SILENT_NS
            || now.saturating_sub(self.link.last_check) < RECHECK_NS
        {
            return Ok(());
        }
        self.link.last_check = now;
        if !self.conn.closed() {
            return Ok(()); // the router is slow, not gone
        }
        Err(self.gone())
    }

    /// agentd closed this agent's connection (a send, a wait or a control call found it): what
    /// it never took is counted once, and every later operation reports the same `Disconnected`.
    pub(crate) fn gone(&mut self) -> CommunicationError {
        let unsent = match self.link.gone {
            Some(unsent) => unsent,
            None => {
                let unsent = self.unsent_frames();
                self.link.gone = Some(unsent);
                unsent
            }
        };
        CommunicationError::Disconnected {
            bus: self.options.bus.clone(),
            unsent: Some(unsent),
        }
    }

    /// A control-plane failure as this agent reports it: a closed connection is this agent's
    /// `Disconnected`, with what agentd never took counted; anything else as converted.
    pub(crate) fn control_failed(&mut self, e: ClientError) -> CommunicationError {
        match e {
            ClientError::Disconnected { .. } => self.gone(),
            e => e.into(),
        }
    }

    /// As [`Agent::check_link`], reading the clock.
    pub(crate) fn check_link_now(&mut self) -> Result<(), CommunicationError> {
        self.check_link(realtime_ns())
    }

    /// Whether this agent still has a live agentd (checks as a send does: a system call only if
    /// the router's beat has stopped).
    pub fn is_connected(&mut self) -> bool {
        self.check_link_now().is_ok()
    }

    /// Frames committed into the outbound lanes that agentd never took: a reader at the
    /// router's last released position counts them (agentd is gone, nobody else reads).
    fn unsent_frames(&mut self) -> u64 {
        for lane in &mut self.outbound {
            lane.publish(); // an open batch counts too
        }
        let region = self.lanes.region();
        let Ok(layout) = lanes::check(&region) else {
            return 0; // checked at attach; cannot change
        };
        let mut unsent = 0;
        for ring in layout.outbound_ring(&region).flatten() {
            let capacity = ring.capacity();
            let mut reader = ring.into_consumer_at_head();
            // Bounded: a lane holds at most capacity / 16 frames.
            for _ in 0..capacity / 16 {
                match reader.peek() {
                    Ok(Some(_)) => {
                        unsent += 1;
                        reader.pop();
                    }
                    _ => break,
                }
            }
        }
        unsent
    }
}
