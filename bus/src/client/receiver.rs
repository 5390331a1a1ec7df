//! The receiving half of an agent: its inbound lanes, read in place, most urgent first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::ring::Consumer;
use agentbus_ipc::wait::{Wait, WaitError, WaitStrategy};
use agentbus_ipc::words::SharedDoorbell;
use rkyv::util::AlignedVec;

use super::dedup::DedupWindow;
use super::delivery::Frame;
use super::pending::{lock, ReplyKind, Requests};
use super::senders::Senders;
use super::shared::Shared;
use super::Delivery;
use crate::codec::decode;
use crate::error::CommunicationError;
use crate::header::{Flags, FrameHeader};
use crate::kinds::MessagePriority;
use crate::lanes::ControlBlock;

/// How many `try_recv` calls between heartbeat clock checks.
const RECV_CALLS_PER_BEAT_CHECK: u32 = 256;

/// The receiving half of an [`super::Agent`]: its inbound lanes, one per priority, written only
/// by agentd's router.
///
/// A [`Delivery`] borrows only this half, so the [`super::Sender`] beside it
/// ([`super::Agent::split`]) can answer while the message is held in place. Replies to this
/// agent's requests never come out of it: they are filed for their [`super::PendingRequest`].
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Raw};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-receiver-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut echo = Agent::attach(options("echo", "echo"))?;
/// let mut client = Agent::attach(options("client", "client"))?;
/// let to_echo = client.peer("echo")?;
/// let asked = client.start_request(&to_echo, Raw(b"hello"))?;
/// let (tx, rx) = echo.split();
/// let request = rx.recv_timeout(Duration::from_secs(5))?.expect("the request");
/// let body = request.raw().unwrap_or_default();             // in the lane, not copied
/// tx.reply(request.header(), Raw(body))?;                   // answered while `request` is held
/// drop(request);
/// let answer = asked.wait(&mut client, Duration::from_secs(5))?;
/// assert_eq!(answer.payload, agentbus::Payload::Raw(b"hello".to_vec()));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Receiver {
    pub(crate) shared: Arc<Shared>,
    inbound: Vec<Consumer>,
    /// The doorbell the router rings when it writes into a lane of this agent's.
    bell: SharedDoorbell,
    /// The current attachment's control block (heartbeat, the router's beat).
    control: ControlBlock,
    /// Half the heartbeat interval, ns.
    beat_every_ns: u64,
    wait: Wait,
    /// Messages taken off the lanes while the agent waited for a reply, for `recv`.
    pub(crate) queue: VecDeque<(FrameHeader, AlignedVec<16>)>,
    pub(crate) requests: Requests,
    /// The at-least-once messages taken lately, to drop their retried copies.
    pub(crate) dedup: DedupWindow,
    pub(crate) senders: Senders,
    recv_calls: u32,
    last_beat: u64,
}

impl Receiver {
    pub(crate) fn new(
        shared: Arc<Shared>,
        inbound: Vec<Consumer>,
        bell: SharedDoorbell,
        control: ControlBlock,
        beat_every_ns: u64,
        options: &super::AttachOptions,
    ) -> Receiver {
        let breaker = options.breaker;
        Receiver {
            shared,
            inbound,
            bell,
            control,
            beat_every_ns,
            wait: options.wait,
            dedup: DedupWindow::new(
                options.delivery.dedup_window,
                options.delivery.dedup_capacity,
            ),
            queue: VecDeque::new(),
            requests: Arc::new(std::sync::Mutex::new(super::pending::RequestTable::new(
                breaker,
            ))),
            senders: Senders::default(),
            recv_calls: 0,
            last_beat: 0,
        }
    }

    /// Takes over a new attachment's lanes (agentd restarted): what the old agentd's ids meant
    /// (senders' identities, the retried copies taken) is forgotten.
    pub(crate) fn relink(
        &mut self,
        inbound: Vec<Consumer>,
        bell: SharedDoorbell,
        control: ControlBlock,
        beat_every_ns: u64,
    ) -> u64 {
        let kept = self.keep_unread();
        self.inbound = inbound;
        self.bell = bell;
        self.control = control;
        self.beat_every_ns = beat_every_ns;
        self.senders = Senders::default();
        self.dedup.clear();
        self.beat();
        kept
    }

    /// Copies what the dead agentd delivered into this agent's lanes and it never read into
    /// the `recv` queue (most urgent lane first, each in order), so that nothing it accepted is
    /// lost with the old lanes; replies to requests of before the restart are dropped (those
    /// requests failed). Returns how many were kept.
    fn keep_unread(&mut self) -> u64 {
        let mut kept = 0;
        for lane in &mut self.inbound {
            // Bounded: a lane holds at most its capacity / 16 frames.
            for _ in 0..lane.capacity() / 16 {
                let Ok(Some(bytes)) = lane.peek() else {
                    break;
                };
                if let Ok(header) = FrameHeader::parse(bytes) {
                    if !header.flags.contains(Flags::IS_REPLY) {
                        let len = header.frame_len().min(bytes.len());
                        self.queue
                            .push_back((header, super::delivery::copy_frame(&bytes[..len])));
                        kept += 1;
                    }
                }
                lane.pop();
            }
            lane.release();
        }
        kept
    }

    /// Stamps this agent's heartbeat (agentd marks an agent UNRESPONSIVE when it goes stale).
    /// Receiving and waiting call it for you.
    pub fn beat(&mut self) {
        let now = monotonic_ns();
        self.control.beat(now);
        self.last_beat = now;
    }

    fn maybe_beat(&mut self) {
        self.recv_calls = self.recv_calls.wrapping_add(1);
        if self.recv_calls % RECV_CALLS_PER_BEAT_CHECK == 0
            && monotonic_ns().saturating_sub(self.last_beat) > self.beat_every_ns
        {
            self.beat();
        }
    }

    /// `Err(Disconnected)` if agentd is gone.
    pub(crate) fn check_link(&self) -> Result<(), CommunicationError> {
        self.shared.check_link_now(&self.control)
    }

    /// Waits (parking, spinning or backing off, as configured) until a message is waiting or
    /// `until`, at most half a heartbeat interval, and beats if nothing came. Returns whether a
    /// message is waiting.
    pub(crate) fn idle(&mut self, until: Instant) -> bool {
        let beat_every = Duration::from_nanos(self.beat_every_ns.max(1_000_000));
        let slice = until.min(Instant::now() + beat_every);
        // Lanes without doorbells (agentd's `lane_parking = false`): nobody rings ours, so a
        // parking wait must poll in short sleeps instead of sleeping on it.
        let bell = self.inbound[0].parking().then(|| self.bell.bell());
        let inbound = &mut self.inbound;
        let r: Result<(), WaitError<()>> = self
            .wait
            .wait_for(bell, Some(slice), || Ok(ready_lane(inbound).map(|_| ())));
        if r.is_err() {
            self.beat();
        }
        r.is_ok()
    }

    /// Whether a message (or an unreadable frame, which `try_recv` reports) is waiting.
    pub(crate) fn has_waiting(&mut self) -> bool {
        !self.queue.is_empty() || ready_lane(&mut self.inbound).is_some()
    }

    /// Waits up to `timeout` until a message is waiting (without taking it); true if one is.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        if self.has_waiting() {
            return true;
        }
        self.idle(Instant::now() + timeout)
    }

    /// The next message, most urgent lane first, read in place; `None` if there is none.
    /// Messages queued while this agent waited for a reply come first; replies to this agent's
    /// requests are filed for their [`super::PendingRequest`] (late and forged ones are counted
    /// and dropped).
    pub fn try_recv(&mut self) -> Result<Option<Delivery<'_>>, CommunicationError> {
        self.try_recv_up_to(MessagePriority::Low)
    }

    /// As [`Receiver::try_recv`], looking only at lanes of `priority` or more urgent (leaving
    /// less urgent messages waiting).
    pub fn try_recv_up_to(
        &mut self,
        priority: MessagePriority,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        self.maybe_beat();
        if let Some((header, bytes)) = self.queue.pop_front() {
            let from = self.sender_of(&header);
            return Ok(Some(Delivery {
                frame: Frame::Copied(bytes),
                header,
                from,
            }));
        }
        let Some((lane, peeked)) = self.next_lane(priority as usize + 1) else {
            return Ok(None);
        };
        // Resolved before the frame is taken (a first message from a sender asks agentd).
        let from = peeked.map(|h| self.sender_of(&h));
        let guard = match self.inbound[lane].read() {
            Ok(Some(g)) => g,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(CommunicationError::InvalidFormat {
                    reason: e.to_string(),
                })
            }
        };
        let header = match decode(guard.bytes()) {
            Ok(env) => env.header,
            Err(e) => return Err(e.into()), // dropping the guard skips the bad frame
        };
        if header.flags.contains(Flags::ACK_REQUESTED) {
            self.dedup.take(&header, Instant::now());
        }
        let Some(from) = from else {
            // The header parsed as a whole frame but not on its own: cannot happen for one
            // frame; treat as invalid rather than guess a sender.
            return Err(CommunicationError::InvalidFormat {
                reason: "a frame's header could not be read twice alike".into(),
            });
        };
        Ok(Some(Delivery {
            frame: Frame::Lane(guard),
            header,
            from,
        }))
    }

    /// The first of the `lanes` most urgent lanes with a frame that is not a reply to file
    /// (replies met on the way are filed), with the frame's header if it parses.
    pub(crate) fn next_lane(&mut self, lanes: usize) -> Option<(usize, Option<FrameHeader>)> {
        loop {
            let lane = ready_lane(&mut self.inbound[..lanes])?;
            let header = match self.inbound[lane].peek() {
                Ok(Some(bytes)) => FrameHeader::parse(bytes).ok(),
                _ => None,
            };
            match header {
                Some(h) if self.takes_aside(&h) => self.set_aside(lane, &h),
                Some(h) if h.flags.contains(Flags::ACK_REQUESTED) && self.dedup.seen(&h) => {
                    // A retried copy of what was taken already: dropped with the guard.
                    drop(self.inbound[lane].read());
                    self.dedup.duplicates += 1;
                }
                _ => return Some((lane, header)),
            }
        }
    }

    /// Whether a frame is a reply this agent files rather than hands to `recv`. Only a frame
    /// flagged as a reply costs a look at the request table.
    fn takes_aside(&self, h: &FrameHeader) -> bool {
        h.flags.contains(Flags::IS_REPLY)
            && lock(&self.requests).kind_of(h) != ReplyKind::NotAwaited
    }

    /// Takes the reply at the front of `lane` (with header `h`) off the lane and files it.
    fn set_aside(&mut self, lane: usize, h: &FrameHeader) {
        let Ok(Some(guard)) = self.inbound[lane].read() else {
            return;
        };
        if decode(guard.bytes()).is_err() {
            return; // invalid: dropped with the guard
        }
        let mut table = lock(&self.requests);
        let kind = table.kind_of(h);
        table.file(kind, h, guard.bytes());
    }

    /// Takes the frame at the front of `lane`, in place (for a handler, or to queue a copy).
    pub(crate) fn read_lane(&mut self, lane: usize) -> Option<agentbus_ipc::ring::ReadGuard<'_>> {
        self.inbound[lane].read().ok().flatten()
    }

    /// The next message, waiting up to `timeout` (parking, spinning or backing off as
    /// configured). `None` when the time runs out (not before: replies and retried copies met
    /// meanwhile are filed or dropped, and the wait goes on); `Disconnected` if agentd is gone.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        if self.wait_deliverable(Some(Instant::now() + timeout))? {
            self.try_recv()
        } else {
            Ok(None)
        }
    }

    /// The next message, waiting as long as it takes (or until agentd is gone).
    pub fn recv(&mut self) -> Result<Delivery<'_>, CommunicationError> {
        self.wait_deliverable(None)?;
        self.try_recv()?
            .ok_or_else(|| CommunicationError::InvalidFormat {
                reason: "a frame vanished between its arrival and its read".into(),
            })
    }

    /// Waits until `try_recv` would return a message (true) or `deadline` passes (false).
    fn wait_deliverable(&mut self, deadline: Option<Instant>) -> Result<bool, CommunicationError> {
        loop {
            if self.peek_deliverable() {
                return Ok(true);
            }
            self.check_link()?;
            let until = match deadline {
                Some(d) if Instant::now() >= d => return Ok(false),
                Some(d) => d,
                None => Instant::now() + Duration::from_secs(3600),
            };
            self.idle(until);
        }
    }

    /// Whether `try_recv` would return a message now (filing replies at the front).
    fn peek_deliverable(&mut self) -> bool {
        !self.queue.is_empty() || self.next_lane(crate::lanes::PRIORITIES).is_some()
    }
}

/// The most urgent lane with a frame waiting. Errors count as ready, so that `try_recv`
/// reports them.
pub(crate) fn ready_lane(inbound: &mut [Consumer]) -> Option<usize> {
    inbound
        .iter_mut()
        .position(|lane| !matches!(lane.peek(), Ok(None)))
}
