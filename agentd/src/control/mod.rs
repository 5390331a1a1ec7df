//! The control thread: a `mio` loop serving the bus's Unix socket.
//!
//! One file per request. Requests that change routing are answered only after the router has
//! applied the change, so a `subscribe` that returned sees every later `publish`. The registry
//! keeps routes current incrementally and hands over only the routes a request changed; they go
//! to the router as one unacknowledged command, followed by one barrier that the router
//! acknowledges. The router applies commands in the order queued, so that one acknowledgement
//! proves every command before it applied (an attach's `AddAgent` included). A request that
//! changed no route sends nothing and waits for nothing. Changes nobody waits for (an agent's
//! connection closed, the router freed a slot) are queued without a barrier: the next request's
//! barrier comes after them.

/// The longest turn of the control loop.
const TURN: Duration = Duration::from_millis(100);

mod attach;
mod channels;
mod dead_letters;
mod detach;
mod intern;
mod leases;
mod list;
mod resolve;
mod stats;
mod subscribe;
mod topics;

pub(crate) use subscribe::valid_pattern;

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::control::{
    decode_request, encode_frame, FrameReader, Refusal, Refused, Request, Response,
};
use agentbus_ipc::segment::fdpass::{send_fds_partial, FdPassError};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::dead_letters::DeadLetterQueue;
use crate::registry::Registry;
use crate::router::{Command, RouterEvent, RouterWake};

/// The poll token of the control socket's listener (connections get tokens from 2 up).
pub const LISTENER: Token = Token(0);
/// The waker's token (the router and `Daemon::stop` wake the loop with it).
pub const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// A peer's credentials, from `SO_PEERCRED`.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The peer's process id, as the kernel recorded it when the peer connected.
    pub pid: i32,
    /// The peer's effective user id: agentd's own uid, or one in `allow_uids`, may attach.
    pub uid: u32,
    /// The peer's effective group id: one in `allow_gids` may attach.
    pub gid: u32,
}

#[derive(Debug)]
struct Conn {
    stream: UnixStream,
    reader: FrameReader,
    peer: Peer,
    slot: Option<(u32, u32)>,
    /// Replies and pushes not yet written: the socket was full. While any wait, the
    /// connection's next requests wait too (so a peer that does not read cannot make agentd
    /// buffer without bound), and the rest goes out as the socket drains.
    outbox: VecDeque<Outgoing>,
}

/// A message being written, with the descriptors that go with its first byte.
#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    sent: usize,
}

impl Conn {
    /// Writes what the socket takes now. `Err` when the connection is unusable.
    fn flush(&mut self) -> std::io::Result<()> {
        while let Some(out) = self.outbox.front_mut() {
            let wrote = if out.sent == 0 && !out.fds.is_empty() {
                let fds: Vec<_> = out.fds.iter().map(|f| f.as_fd()).collect();
                match send_fds_partial(&self.stream, &out.bytes, &fds) {
                    Ok(n) => Ok(n),
                    Err(FdPassError::Os { errno, .. }) => {
                        Err(std::io::Error::from_raw_os_error(errno as i32))
                    }
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                }
            } else {
                self.stream.write(&out.bytes[out.sent..])
            };
            match wrote {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    // The descriptors went with the first byte; the peer holds its copies.
                    out.fds.clear();
                    out.sent += n;
                    if out.sent == out.bytes.len() {
                        self.outbox.pop_front();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// An answer and the descriptors that go with it.
#[derive(Debug)]
pub struct Reply {
    response: Response,
    fds: Vec<OwnedFd>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply {
            response,
            fds: Vec::new(),
        }
    }
}

/// Why the router did not apply a routing change ([`Control::sync_routes`]); the message goes
/// back to the client whose request needed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum CommandError {
    /// agentd is stopping: it applies no more routing changes.
    #[error("agentd is shutting down: attach again once it runs")]
    ShuttingDown,
    /// No acknowledgement within 5 s: the router stopped, or is wedged.
    #[error("the router did not apply a routing change (stopped, or busy for 5 s): retry; if it persists, check `agentbus stat` and restart agentd")]
    NotApplied,
}

/// How long a routing change may wait to be queued, and then to be acknowledged.
const ROUTER_PATIENCE: Duration = Duration::from_secs(5);

/// A command that was not queued for the router, given back with why.
#[derive(Debug)]
struct NotQueued {
    why: CommandError,
    command: Command,
}

impl CommandError {
    /// The refusal of a request whose routing change the router did not apply.
    fn refusal(self) -> Reply {
        let kind = match self {
            CommandError::ShuttingDown => Refusal::ShuttingDown,
            CommandError::NotApplied => Refusal::NoRoom,
        };
        refuse(kind, self.to_string())
    }
}

fn refuse(kind: Refusal, message: impl Into<String>) -> Reply {
    Response::Refused(Refused {
        kind,
        message: message.into(),
    })
    .into()
}

/// The control thread's state.
#[derive(Debug)]
pub struct Control {
    config: Config,
    registry: Registry,
    poll: Poll,
    listener: UnixListener,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    commands: rtrb::Producer<Command>,
    events: Receiver<RouterEvent>,
    acks: Receiver<u64>,
    last_barrier: u64,
    /// A routing change may have been queued without its barrier being acknowledged (one timed
    /// out, or a command could not be queued): the next request waits for a barrier even if it
    /// changes nothing itself.
    unconfirmed: bool,
    /// Topics named in the bus header so far (ids below this).
    topics_named: usize,
    router_wake: RouterWake,
    dead_letters: Arc<Mutex<DeadLetterQueue>>,
    header: crate::bus_header::HeaderWords,
    bus_header: Arc<crate::bus_header::BusHeader>,
    shutdown: Arc<AtomicBool>,
    own_uid: u32,
    channels: HashMap<u64, channels::ChannelRecord>,
    next_channel: u64,
    /// Named leases and their waiters.
    leases: crate::leases::LeaseTable,
    /// Per slot: the epoch of the agent and its budget of dead letters it may report itself
    /// (`Request::DeadLetter`), as the router budgets the ones it makes.
    client_letters: HashMap<u32, (u32, crate::router::DeadLetterBudget)>,
    /// The topic id of `sys.leases`.
    sys_leases: u64,
}

/// What the control thread is built from.
#[derive(Debug)]
pub struct ControlParts {
    /// The validated configuration: bus name, limits, who may attach.
    pub config: Config,
    /// The poll the listener and waker are registered with.
    pub poll: Poll,
    /// The control socket's listener, bound and registered with `poll` as [`LISTENER`].
    pub listener: UnixListener,
    /// Commands to the router.
    pub commands: rtrb::Producer<Command>,
    /// Events from the router.
    pub events: Receiver<RouterEvent>,
    /// The router's acknowledgements of [`Command::Barrier`]s.
    pub acks: Receiver<u64>,
    /// Wakes the router after a command is queued.
    pub router_wake: RouterWake,
    /// The dead-letter queue the router fills, read here for `DeadLetters` and `Stats`.
    pub dead_letters: Arc<Mutex<DeadLetterQueue>>,
    /// The bus header's words, for publishing how many agents are attached.
    pub header: crate::bus_header::HeaderWords,
    /// The bus header, for publishing the registry.
    pub bus_header: Arc<crate::bus_header::BusHeader>,
    /// Set by `Daemon::stop`: the control loop then closes every connection and returns.
    pub shutdown: Arc<AtomicBool>,
}

impl Control {
    /// Builds the control thread's state; the listener must already be registered as
    /// [`LISTENER`].
    pub fn new(parts: ControlParts) -> Control {
        let slots = parts.config.max_agents;
        Control {
            registry: Registry::new(slots),
            config: parts.config,
            poll: parts.poll,
            listener: parts.listener,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            commands: parts.commands,
            events: parts.events,
            acks: parts.acks,
            last_barrier: 0,
            unconfirmed: false,
            topics_named: 0,
            router_wake: parts.router_wake,
            dead_letters: parts.dead_letters,
            header: parts.header,
            bus_header: parts.bus_header,
            shutdown: parts.shutdown,
            own_uid: nix::unistd::getuid().as_raw(),
            channels: HashMap::new(),
            next_channel: 0,
            leases: crate::leases::LeaseTable::new(agentbus_ipc::clock::realtime_ns()),
            client_letters: HashMap::new(),
            sys_leases: 2,
        }
    }

    /// Serves until shutdown; then closes every connection (agents see EOF).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(128);
        while !self.shutdown.load(Ordering::Acquire) {
            // At most 100 ms (dead letters to their file, leases checked), less when a lease
            // expires sooner.
            let turn = self.leases.next_expiry().map_or(TURN, |at| {
                at.saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), TURN)
            });
            if let Err(e) = self.poll.poll(&mut events, Some(turn)) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!("control loop poll failed: {e}");
                    break;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => self.ready(token),
                }
            }
            self.router_events();
            leases::expire(&mut self);
            // Dead letters reach their file within a loop's turn (at most 100 ms).
            self.persist_dead_letters();
        }
        self.persist_dead_letters();
        tracing::info!(
            "control thread stopping; closing {} connections",
            self.conns.len()
        );
        self.conns.clear();
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let creds = nix::sys::socket::getsockopt(
                        &stream.as_fd(),
                        nix::sys::socket::sockopt::PeerCredentials,
                    );
                    let Ok(creds) = creds else {
                        tracing::warn!("dropping a connection without peer credentials");
                        continue;
                    };
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!("cannot watch a new connection: {e}");
                        continue;
                    }
                    let peer = Peer {
                        pid: creds.pid(),
                        uid: creds.uid(),
                        gid: creds.gid(),
                    };
                    tracing::debug!(?peer, "connection");
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            reader: FrameReader::default(),
                            peer,
                            slot: None,
                            outbox: VecDeque::new(),
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Serves a connection that became readable or writable: writes what waits, then reads
    /// and answers requests one at a time, each only once the answers before it are written.
    fn ready(&mut self, token: Token) {
        if self.serve(token).is_err() {
            self.close(token);
        }
    }

    /// `Err` when the connection is finished (closed by the peer, broken, or misbehaving).
    fn serve(&mut self, token: Token) -> Result<(), ()> {
        let mut buf = [0u8; 8192];
        loop {
            let Some(conn) = self.conns.get_mut(&token) else {
                return Err(());
            };
            if let Err(e) = conn.flush() {
                tracing::warn!(
                    pid = conn.peer.pid,
                    "closing a connection that cannot be written: {e}"
                );
                return Err(());
            }
            if !conn.outbox.is_empty() {
                return Ok(()); // the rest waits for the socket to drain (a writable event)
            }
            match conn.reader.next_frame() {
                Ok(Some(frame)) => {
                    let reply = match decode_request(&frame) {
                        Ok(request) => self.handle(token, request),
                        Err(e) => refuse(Refusal::BadRequest, e.to_string()),
                    };
                    if !self.reply(token, reply) {
                        return Err(());
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("closing a connection that sent a bad frame: {e}");
                    return Err(());
                }
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => return Err(()),
                Ok(n) => conn.reader.push(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
    }

    fn handle(&mut self, token: Token, request: Request) -> Reply {
        match request {
            Request::Attach(a) => attach::handle(self, token, a),
            Request::Detach => detach::handle(self, token),
            Request::ResolveAgent(id) => resolve::handle(self, &id),
            Request::IdentifySlot(address) => resolve::identify(self, address),
            Request::CreateTopic(request) => topics::create(self, token, request),
            Request::ListTopics => topics::list(self),
            Request::Subscribe(pattern) => subscribe::subscribe(self, token, &pattern),
            Request::Unsubscribe(id) => subscribe::unsubscribe(self, token, id),
            Request::InternCapabilities(caps) => intern::capabilities(self, caps),
            Request::InternType(t) => intern::agent_type(self, &t),
            Request::ListAgents => list::handle(self),
            Request::Stats => stats::handle(self),
            Request::DeadLetters(page) => dead_letters::handle(self, page.from, page.max),
            Request::DeadLetter(letter) => dead_letters::record(self, token, letter),
            Request::PurgeDeadLetters => dead_letters::purge(self),
            Request::RetryDeadLetter(sequence) => dead_letters::retry(self, sequence),
            Request::OpenChannel(peer) => channels::open(self, token, &peer),
            Request::CloseChannel(id) => channels::close(self, token, id),
            Request::AcquireLease(req) => leases::acquire(self, token, &req),
            Request::RenewLease(lease) => leases::renew(self, token, &lease),
            Request::ReleaseLease(lease) => leases::release(self, token, &lease),
        }
    }

    /// Queues a reply (or push) and writes what the socket takes now; false if the connection
    /// is unusable. A reply of any size arrives: what does not fit waits for the socket to drain.
    fn reply(&mut self, token: Token, reply: Reply) -> bool {
        let Some(conn) = self.conns.get_mut(&token) else {
            return false;
        };
        conn.outbox.push_back(Outgoing {
            bytes: encode_frame(&reply.response),
            fds: reply.fds,
            sent: 0,
        });
        match conn.flush() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(
                    pid = conn.peer.pid,
                    "dropping a connection whose reply could not be written: {e}"
                );
                false
            }
        }
    }

    fn close(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(&token) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if let Some((slot, epoch)) = conn.slot {
                tracing::info!(
                    slot,
                    pid = conn.peer.pid,
                    "agent connection closed: draining, then freeing its slot"
                );
                self.leave(slot, epoch);
            }
        }
    }

    /// The agent in `slot` is going: routing forgets it now; the router delivers what it sent.
    /// The changes are queued, not waited for: see [`Control::sync_routes`] for that.
    fn leave(&mut self, slot: u32, epoch: u32) {
        channels::close_all_of(self, slot);
        // Its leases go to their next waiters at once.
        let changes = self.leases.left(slot, Instant::now());
        leases::apply(self, changes);
        self.registry.leave(slot);
        let _ = self.push(Command::RemoveAgent {
            slot,
            epoch,
            drain: true,
        });
        let _ = self.send_routes();
    }

    fn router_events(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            match event {
                RouterEvent::Gone { slot, epoch, fault } => {
                    if let Some(record) = self.registry.free(slot, epoch) {
                        self.bus_header.publish_slot(slot, None);
                        channels::close_all_of(self, slot);
                        if let Some(why) = &fault {
                            tracing::warn!(slot, agent = %record.identity.agent_id, "detached: {why}");
                            if let Some(conn) = self.conns.get_mut(&record.token) {
                                conn.slot = None;
                            }
                            self.close(record.token);
                        } else {
                            tracing::info!(slot, agent = %record.identity.agent_id, "slot freed");
                        }
                    }
                    self.header
                        .set_agents(self.registry.agents().count() as u64);
                    // Only a faulty agent's routes change here (one that left changed them
                    // when it left); nobody waits for them.
                    let _ = self.send_routes();
                }
            }
        }
    }

    fn persist_dead_letters(&self) {
        crate::dead_letters::lock(&self.dead_letters).persist();
    }

    /// Queues a command for the router and wakes it; gives the command back if agentd is
    /// stopping or the router took no command for [`ROUTER_PATIENCE`].
    fn push(&mut self, mut command: Command) -> Result<(), NotQueued> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(NotQueued {
                why: CommandError::ShuttingDown,
                command,
            });
        }
        let deadline = Instant::now() + ROUTER_PATIENCE;
        loop {
            match self.commands.push(command) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(c)) if Instant::now() < deadline => {
                    command = c;
                    self.router_wake.wake();
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(rtrb::PushError::Full(c)) => {
                    tracing::error!("the router has not taken commands for 5 s");
                    return Err(NotQueued {
                        why: CommandError::NotApplied,
                        command: c,
                    });
                }
            }
        }
        self.router_wake.wake_if_sleeping();
        Ok(())
    }

    /// Queues the routes the registry changed since they were last sent, as one command, and
    /// no acknowledgement; true if there were any. Routes that could not be queued stay marked
    /// changed, for the next request to send.
    fn send_routes(&mut self) -> Result<bool, CommandError> {
        let changes = self.registry.take_route_changes();
        if changes.is_empty() {
            return Ok(false);
        }
        match self.push(Command::SetRoutes(changes)) {
            Ok(()) => Ok(true),
            Err(NotQueued { why, command }) => {
                if let Command::SetRoutes(changes) = command {
                    self.registry.resend(changes.into_iter().map(|c| c.route));
                }
                Err(why)
            }
        }
    }

    /// Sends the router the routes changed since they were last sent, then one barrier, and
    /// waits until the router acknowledged it: every command queued before (this request's
    /// `AddAgent` or `RemoveAgent` included) has then been applied. `queued` says whether this
    /// request queued a command of its own; without one, without route changes and with every
    /// earlier change confirmed, nothing is sent and nothing is waited for.
    fn sync_routes(&mut self, queued: bool) -> Result<(), CommandError> {
        self.name_new_topics();
        let synced = self.send_routes().and_then(|changed| {
            if changed || queued || self.unconfirmed {
                self.barrier()
            } else {
                Ok(())
            }
        });
        self.unconfirmed = synced.is_err();
        synced
    }

    /// Names in the bus header the topics created since the last call (topic ids are issued
    /// in order, so the ones past `topics_named`).
    fn name_new_topics(&mut self) {
        for (id, name) in self.registry.topic_names().skip(self.topics_named) {
            self.header.name_topic(id as usize, name);
        }
        self.topics_named = self.registry.topic_names().count();
    }

    /// Queues a barrier and waits for its acknowledgement, at most [`ROUTER_PATIENCE`]. Stops
    /// waiting at once when the router thread has ended (its acknowledgement sender is then
    /// dropped), so shutdown is noticed without polling.
    fn barrier(&mut self) -> Result<(), CommandError> {
        self.last_barrier += 1;
        let number = self.last_barrier;
        self.push(Command::Barrier(number)).map_err(|e| e.why)?;
        let deadline = Instant::now() + ROUTER_PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.acks.recv_timeout(left) {
                Ok(acked) if acked >= number => return Ok(()),
                // A late acknowledgement of an earlier barrier that was given up on.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return Err(CommandError::NotApplied),
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(if self.shutdown.load(Ordering::Acquire) {
                        CommandError::ShuttingDown
                    } else {
                        CommandError::NotApplied
                    });
                }
            }
        }
    }

    fn attached_slot(&self, token: Token) -> Option<(u32, u32)> {
        self.conns.get(&token).and_then(|c| c.slot)
    }
}
