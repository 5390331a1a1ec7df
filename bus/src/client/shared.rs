//! What an agent's halves share: the control connection to agentd, the lane segment, and what
//! the client knows of agentd's liveness.
//!
//! The router stamps its beat (realtime ns) into every agent's control block about once a
//! millisecond while busy and before each sleep while idle (it sleeps at most 100 ms). A send
//! compares the beat with the clock reading it stamps the message with anyway, so the check
//! costs two loads and a compare, no system call and no lock. Only when the beat is older than
//! [`ROUTER_SILENT_NS`] does the client ask the kernel (one non-blocking peek, at most every
//! [`RECHECK_NS`]): end-of-file means agentd is gone; anything else means the router is only
//! slow (a loaded machine) or asleep on an idle bus, and the send goes ahead (ringing it).
//!
//! The control connection sits behind a mutex: it is the control plane (attach, subscribe,
//! resolve, the first message from a new sender), never the path of a message, so the
//! [`super::Sender`] and [`super::Receiver`] of one agent, and the handles that must undo
//! something when dropped ([`super::Subscription`]), can all use it without borrowing the
//! agent.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use agentbus_ipc::clock::realtime_ns;
use agentbus_ipc::segment::MemfdSegment;

use super::conn::ControlConn;
use super::ClientError;
use crate::body::AgentIdentifier;
use crate::control::{AttachInfo, Refused, Request, Response};
use crate::error::CommunicationError;
use crate::lanes;

/// A router beat older than this makes the client check the control socket.
pub(crate) const ROUTER_SILENT_NS: u64 = 40_000_000;
/// The most often a silent router makes the client check the socket.
const RECHECK_NS: u64 = 10_000_000;
/// [`Shared::gone`]'s value while agentd is there.
const CONNECTED: u64 = u64::MAX;

/// One attached agent's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The bus's name, for errors.
    pub(crate) bus: String,
    /// Who this agent is.
    pub(crate) identity: AgentIdentifier,
    /// What agentd answered the attach with (slot, epoch, heartbeat interval).
    pub(crate) info: AttachInfo,
    conn: Mutex<ControlConn>,
    /// The lane segment (kept mapped; counted for unsent frames when agentd is gone).
    lanes: MemfdSegment,
    /// Heartbeat, load and the router's beat.
    pub(crate) control: lanes::ControlBlock,
    /// [`CONNECTED`], or the frames agentd never took once it was found gone.
    gone: AtomicU64,
    /// When the socket was last checked (realtime ns).
    last_check: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        bus: String,
        identity: AgentIdentifier,
        info: AttachInfo,
        conn: ControlConn,
        lanes: MemfdSegment,
    ) -> Shared {
        let control = lanes::ControlBlock::of(&lanes.region());
        Shared {
            bus,
            identity,
            info,
            conn: Mutex::new(conn),
            lanes,
            control,
            gone: AtomicU64::new(CONNECTED),
            last_check: AtomicU64::new(0),
        }
    }

    /// The control connection. A panic while it was held (in this client's own code) leaves it
    /// as usable as before: every call is one request and its whole answer.
    fn conn(&self) -> MutexGuard<'_, ControlConn> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a control request and waits for its answer and descriptors.
    pub(crate) fn call_with_fds(
        &self,
        request: &Request,
    ) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.conn().call(request)
    }

    /// Sends a control request and waits for its answer.
    pub(crate) fn call(&self, request: &Request) -> Result<Response, ClientError> {
        Ok(self.call_with_fds(request)?.0)
    }

    /// The next push from agentd (a channel offer), waiting up to `timeout`.
    pub(crate) fn next_push(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Option<(crate::control::Push, Vec<OwnedFd>)>, ClientError> {
        self.conn().next_push(timeout)
    }

    /// Half the heartbeat interval, in ns: the longest this agent goes without beating.
    pub(crate) fn beat_every_ns(&self) -> u64 {
        self.info.heartbeat_interval_ms as u64 * 1_000_000 / 2
    }

    /// `Err(Disconnected)` if agentd is gone; `now` is a realtime clock reading the caller has.
    pub(crate) fn check_link(&self, now: u64) -> Result<(), CommunicationError> {
        // Relaxed: a flag only this agent's own threads write; a stale read errs one call later.
        if self.gone.load(Ordering::Relaxed) != CONNECTED {
            return Err(self.gone());
        }
        let beat = self.control.router_beat();
        if now.saturating_sub(beat) <= ROUTER_SILENT_NS
            || now.saturating_sub(self.last_check.load(Ordering::Relaxed)) < RECHECK_NS
        {
            return Ok(());
        }
        self.last_check.store(now, Ordering::Relaxed);
        if !self.conn().closed() {
            return Ok(()); // the router is slow, not gone
        }
        Err(self.gone())
    }

    /// As [`Shared::check_link`], reading the clock.
    pub(crate) fn check_link_now(&self) -> Result<(), CommunicationError> {
        self.check_link(realtime_ns())
    }

    /// agentd closed this agent's connection (a send, a wait or a control call found it): what
    /// it never took is counted once, and every later operation reports the same `Disconnected`.
    pub(crate) fn gone(&self) -> CommunicationError {
        let mut unsent = self.gone.load(Ordering::Relaxed);
        if unsent == CONNECTED {
            unsent = self.unsent_frames();
            self.gone.store(unsent, Ordering::Relaxed);
        }
        CommunicationError::Disconnected {
            bus: self.bus.clone(),
            unsent: Some(unsent),
        }
    }

    /// A control-plane failure as this agent reports it: a closed connection is this agent's
    /// `Disconnected`, with what agentd never took counted; anything else as converted.
    pub(crate) fn control_failed(&self, e: ClientError) -> CommunicationError {
        match e {
            ClientError::Disconnected { .. } => self.gone(),
            e => e.into(),
        }
    }

    /// Frames committed and published into the outbound lanes that agentd never took: a reader
    /// at the router's last released position counts them (agentd is gone, nobody else reads).
    /// Frames of a [`super::Batch`] still open are not published, so not counted.
    fn unsent_frames(&self) -> u64 {
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

/// An answer agentd should not have given to a request: a refusal as such, anything else as a
/// protocol mismatch.
pub(crate) fn unexpected(r: Response) -> ClientError {
    match r {
        Response::Refused(Refused { kind, message }) => ClientError::Refused { kind, message },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}
