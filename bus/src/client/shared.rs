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
//!
//! When agentd restarts, the agent re-attaches ([`super::Agent`] does, from its calls):
//! [`Shared::reattach`] swaps the connection and lanes in place, so every holder of this
//! `Shared` (both halves, the subscription guards) follows.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use agentbus_ipc::clock::realtime_ns;
use agentbus_ipc::segment::MemfdSegment;

use super::conn::ControlConn;
use super::reroute::Named;
use super::{AttachOptions, ClientError};
use crate::body::AgentIdentifier;
use crate::control::{AttachInfo, Refused, Request, Response, TopicConfig};
use crate::error::CommunicationError;
use crate::kinds::RouteKind;
use crate::lanes;

/// A router beat older than this makes the client check the control socket.
pub(crate) const ROUTER_SILENT_NS: u64 = 40_000_000;
/// The most often a silent router makes the client check the socket.
const RECHECK_NS: u64 = 10_000_000;
/// [`Shared::gone`]'s value while agentd is there.
const CONNECTED: u64 = u64::MAX;

/// One attached agent's shared state. It outlives re-attaches: what changes with each
/// attachment (the connection, the lane segment, the slot) is swapped in place by
/// [`Shared::reattach`], and [`Shared::generation`] counts the swaps.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The bus's name, for errors.
    pub(crate) bus: String,
    /// Who this agent is.
    pub(crate) identity: AgentIdentifier,
    /// How it attached: what a re-attach repeats.
    pub(crate) options: AttachOptions,
    conn: Mutex<ControlConn>,
    /// The current attachment's slot and lanes.
    link: Mutex<Link>,
    /// Re-attaches so far: a handle resolved in an earlier generation is resolved again, by
    /// name, before it is sent to.
    generation: AtomicU64,
    /// [`CONNECTED`], or the frames agentd never took once it was found gone.
    gone: AtomicU64,
    /// When the socket was last checked (realtime ns).
    last_check: AtomicU64,
    /// What a re-attach restores: subscriptions, topics created with a configuration.
    pub(crate) book: Mutex<Book>,
}

/// The cold parts of the current attachment.
#[derive(Debug)]
struct Link {
    /// What agentd answered the attach with (slot, epoch, heartbeat interval).
    info: AttachInfo,
    /// The lane segment (kept mapped; counted for unsent frames when agentd is gone).
    lanes: MemfdSegment,
}

/// What this agent set up with agentd that a re-attach must set up again.
#[derive(Debug, Default)]
pub(crate) struct Book {
    /// Every subscription not ended (detached ones included).
    pub(crate) subscriptions: Vec<Arc<SubscriptionEntry>>,
    /// Topics this agent created with a configuration of its own, by name.
    pub(crate) topics: Vec<(String, TopicConfig)>,
    /// The names behind the ids resolved this generation (route kind and destination id): what
    /// the unread frames of a dead agentd are sent again to.
    pub(crate) names: HashMap<(RouteKind, u64), Named>,
}

/// One subscription as the book keeps it: its pattern, and the id agentd gave it this
/// generation.
#[derive(Debug)]
pub(crate) struct SubscriptionEntry {
    pub(crate) pattern: Arc<str>,
    pub(crate) id: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        options: AttachOptions,
        info: AttachInfo,
        conn: ControlConn,
        lanes: MemfdSegment,
    ) -> Shared {
        Shared {
            bus: options.bus.clone(),
            identity: AgentIdentifier {
                agent_id: options.agent_id.clone(),
                agent_type: options.agent_type.clone(),
                instance_id: options.instance_id.clone(),
            },
            options,
            conn: Mutex::new(conn),
            link: Mutex::new(Link { info, lanes }),
            generation: AtomicU64::new(0),
            gone: AtomicU64::new(CONNECTED),
            last_check: AtomicU64::new(0),
            book: Mutex::new(Book::default()),
        }
    }

    /// Swaps in a new attachment (agentd restarted): the link counts as up again, and handles
    /// of earlier generations are resolved again before use.
    pub(crate) fn reattach(&self, conn: ControlConn, info: AttachInfo, lanes: MemfdSegment) {
        *self.conn() = conn;
        *lock(&self.link) = Link { info, lanes };
        self.last_check.store(0, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.gone.store(CONNECTED, Ordering::Relaxed);
    }

    /// Re-attaches so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// What agentd answered the current attach with.
    pub(crate) fn info(&self) -> AttachInfo {
        lock(&self.link).info.clone()
    }

    /// Whether agentd was found gone (and not re-attached to since).
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed) != CONNECTED
    }

    /// The book of what a re-attach restores.
    pub(crate) fn book(&self) -> MutexGuard<'_, Book> {
        lock(&self.book)
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

    /// The first push from agentd that `wanted` accepts (a channel offer, a lease granted),
    /// waiting up to `timeout`.
    pub(crate) fn next_push(
        &self,
        timeout: std::time::Duration,
        wanted: impl Fn(&crate::control::Push) -> bool,
    ) -> Result<Option<(crate::control::Push, Vec<OwnedFd>)>, ClientError> {
        self.conn().next_push(timeout, wanted)
    }

    /// `Err(Disconnected)` if agentd is gone; `now` is a realtime clock reading the caller has,
    /// `control` the current attachment's control block (the caller keeps a copy: no lock).
    pub(crate) fn check_link(
        &self,
        now: u64,
        control: &lanes::ControlBlock,
    ) -> Result<(), CommunicationError> {
        // Relaxed: a flag only this agent's own threads write; a stale read errs one call later.
        if self.gone.load(Ordering::Relaxed) != CONNECTED {
            return Err(self.gone());
        }
        let beat = control.router_beat();
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

    /// `Err(Disconnected)` if agentd is gone, asking the kernel whatever the router's beat
    /// says (one system call).
    pub(crate) fn probe_link(&self) -> Result<(), CommunicationError> {
        if self.gone.load(Ordering::Relaxed) == CONNECTED && !self.conn().closed() {
            return Ok(());
        }
        Err(self.gone())
    }

    /// As [`Shared::check_link`], reading the clock.
    pub(crate) fn check_link_now(
        &self,
        control: &lanes::ControlBlock,
    ) -> Result<(), CommunicationError> {
        self.check_link(realtime_ns(), control)
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

    /// Copies of the frames agentd never took from the outbound lanes, most urgent lane first,
    /// each in order (agentd is gone: nobody else reads them).
    pub(crate) fn unsent_frame_copies(&self) -> Vec<Vec<u8>> {
        let region = lock(&self.link).lanes.region();
        let Ok(layout) = lanes::check(&region) else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        for ring in layout.outbound_ring(&region).flatten() {
            let capacity = ring.capacity();
            let mut reader = ring.into_consumer_at_head();
            for _ in 0..capacity / 16 {
                match reader.peek() {
                    Ok(Some(bytes)) => {
                        let len = crate::header::FrameHeader::parse(bytes)
                            .map_or(bytes.len(), |h| h.frame_len().min(bytes.len()));
                        frames.push(bytes[..len].to_vec());
                        reader.pop();
                    }
                    _ => break,
                }
            }
        }
        frames
    }

    /// Records that `id` of route kind `kind` names `named` in this generation.
    pub(crate) fn remember(&self, kind: RouteKind, id: u64, named: Named) {
        self.book().names.insert((kind, id), named);
    }

    /// Frames committed and published into the outbound lanes that agentd never took: a reader
    /// at the router's last released position counts them (agentd is gone, nobody else reads).
    /// Frames of a [`super::Batch`] still open are not published, so not counted.
    fn unsent_frames(&self) -> u64 {
        let region = lock(&self.link).lanes.region();
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

/// Locks `m`; a panic while it was held (in this client's own code, between two consistent
/// states) leaves it usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An answer agentd should not have given to a request: a refusal as such, anything else as a
/// protocol mismatch.
pub(crate) fn unexpected(r: Response) -> ClientError {
    match r {
        Response::Refused(Refused { kind, message }) => ClientError::Refused { kind, message },
        other => ClientError::Protocol(format!("{other:?}")),
    }
}
