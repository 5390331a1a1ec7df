//! Direct channels: two rings shared by exactly two agents, skipping the router (one hop).

use std::time::{Duration, Instant};

use agentbus_ipc::clock::realtime_ns;
use agentbus_ipc::ring::{Consumer, Producer, Ring};
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::wait::{Wait, WaitError};
use rkyv::util::AlignedVec;

use super::delivery::Frame;
use super::Outgoing;
use super::{Delivery, Loan};
use crate::body::AgentIdentifier;
use crate::channel_layout::{self, ChannelControl, ChannelLayoutError, ClosedBy};
use crate::codec::{bare_header, decode, NoWait, Route, WaitUntil};
use crate::control::ChannelInfo;
use crate::error::{CommunicationError, EncodeError};
use crate::header::{Flags, FrameHeader};
use crate::ids::{IdGenerator, MessageId};
use crate::kinds::{MessagePriority, RouteKind};

/// Where a channel's frames say they go: the other end (the header's route is not read).
const PEER: Route = Route {
    kind: RouteKind::Agent,
    destination: 0,
};

/// One end of a direct channel. Messages skip the router: the sender writes into the ring the
/// receiver reads. Receiving copies each frame once into a private buffer before validating
/// it, because the other end can write the shared memory (a hostile peer harms only itself).
/// Dropping it closes the channel.
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions, Raw};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-channel-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let mut exec = Agent::attach(options("exec-1", "execution"))?;
/// let mut to_exec = strategy.channel("exec-1")?;            // agentd hands both ends the rings
/// let mut from_strategy = exec.accept_channel(Duration::from_secs(5))?.expect("offered");
/// to_exec.send(Raw(b"buy 100 AAPL"))?;                       // one hop: no router
/// let order = from_strategy.recv_timeout(Duration::from_secs(5))?.expect("sent");
/// assert_eq!(order.raw(), Some(&b"buy 100 AAPL"[..]));
/// assert_eq!(order.from().agent_id, "strategy-1");           // the peer agentd connected
/// drop(order);
/// to_exec.close();
/// assert!(from_strategy.recv_timeout(Duration::from_millis(100)).is_err()); // closed
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Channel {
    info: ChannelInfo,
    peer: std::sync::Arc<AgentIdentifier>,
    identity: AgentIdentifier,
    slot: u32,
    _segment: MemfdSegment,
    tx: Producer,
    rx: Consumer,
    tx_ring_wake: Ring,
    rx_ring_wake: Ring,
    control: ChannelControl,
    ids: IdGenerator,
    wait: Wait,
    scratch: AlignedVec<16>,
    closed: bool,
}

impl Channel {
    pub(crate) fn new(
        info: ChannelInfo,
        segment: MemfdSegment,
        identity: AgentIdentifier,
        slot: u32,
        wait: Wait,
    ) -> Result<Channel, ChannelLayoutError> {
        let region = segment.region();
        let (a, b) = channel_layout::rings(&region)?;
        let (a2, b2) = channel_layout::rings(&region)?;
        let (tx, rx, tx_wake, rx_wake) = if info.side == 0 {
            (a.into_producer(), b.into_consumer(), a2, b2)
        } else {
            (b.into_producer(), a.into_consumer(), b2, a2)
        };
        Ok(Channel {
            peer: std::sync::Arc::new(info.peer.clone()),
            info,
            identity,
            slot,
            control: ChannelControl::of(&region),
            _segment: segment,
            tx,
            rx,
            tx_ring_wake: tx_wake,
            rx_ring_wake: rx_wake,
            ids: IdGenerator::new(),
            wait,
            scratch: AlignedVec::with_capacity(4096),
            closed: false,
        })
    }

    /// The id agentd gave the channel, the same at both ends.
    pub fn id(&self) -> u64 {
        self.info.id
    }

    /// This end's identity, for the `from` of messages sent on it.
    pub fn identity(&self) -> AgentIdentifier {
        self.identity.clone()
    }

    /// The agent at the other end.
    pub fn peer(&self) -> &str {
        &self.info.peer.agent_id
    }

    fn check_open(&self) -> Result<(), CommunicationError> {
        match self.control.closed_by() {
            None => Ok(()),
            Some(why) => Err(CommunicationError::AgentUnreachable {
                agent: self.info.peer.agent_id.clone(),
                reason: format!("channel {} is closed: {why}", self.info.id),
            }),
        }
    }

    /// Whether either side (or agentd) closed the channel.
    pub fn is_closed(&self) -> bool {
        self.check_open().is_err()
    }

    /// Sends `message` (a `&Message`, [`super::Raw`] bytes or a [`super::Typed`] value) to the
    /// other end. Fails with `QueueFull` if the ring is full, and with `AgentUnreachable` once
    /// the channel is closed.
    pub fn send<M: Outgoing>(&mut self, message: M) -> Result<MessageId, CommunicationError> {
        self.send_in(&message, None)
    }

    /// As [`Channel::send`], waiting up to `timeout` for room (parking on the ring's space
    /// doorbell, or as the agent's wait strategy says); `Timeout` if none came, and
    /// `AgentUnreachable` if the channel closes meanwhile.
    pub fn send_blocking<M: Outgoing>(
        &mut self,
        message: M,
        timeout: Duration,
    ) -> Result<MessageId, CommunicationError> {
        self.send_in(&message, Some(timeout))
    }

    fn send_in<M: Outgoing>(
        &mut self,
        message: &M,
        timeout: Option<Duration>,
    ) -> Result<MessageId, CommunicationError> {
        let mut header = message.header(PEER);
        header.source_slot = self.slot;
        let header = self.outgoing(header)?;
        let Some(timeout) = timeout else {
            message.write(&mut self.tx, &header, &NoWait)?;
            return Ok(header.message_id);
        };
        let deadline = Instant::now() + timeout;
        loop {
            let room = WaitUntil {
                wait: self.wait,
                deadline: deadline.min(Instant::now() + Duration::from_millis(50)),
                timeout,
            };
            match message.write(&mut self.tx, &header, &room) {
                Err(EncodeError::TimedOut { .. }) if Instant::now() < deadline => {
                    self.check_open()?
                }
                other => {
                    other?;
                    return Ok(header.message_id);
                }
            }
        }
    }

    /// `header` with an id if it has none and the send's timestamp, once the channel is
    /// known to be open.
    fn outgoing(&mut self, mut header: FrameHeader) -> Result<FrameHeader, CommunicationError> {
        self.check_open()?;
        if header.message_id.is_none() {
            header.message_id = self.ids.next_id();
        }
        header.timestamp_ns = realtime_ns();
        Ok(header)
    }

    /// Claims room for a `len`-byte payload in the ring to the other end, to write in place and
    /// send ([`Loan`]); `QueueFull` at once if there is none.
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>, CommunicationError> {
        let header = self.outgoing(bare_header(PEER, MessagePriority::Normal))?;
        Ok(Loan::new(&mut self.tx, header, len)?)
    }

    /// The next message from the other end, if one is waiting. Raw bytes (and plain values read
    /// from them, [`Delivery::plain`]) are read in place: their header is parsed once, at
    /// receipt, and the ring bounds them, so the peer's writes cannot make them unsafe to read.
    /// Archives (spec payloads, typed values) are read from a private copy, because the peer
    /// could rewrite their relative pointers during or after validation. Messages the peer sent
    /// before closing are still delivered; after them, a closed channel is an error.
    pub fn try_recv(&mut self) -> Result<Option<Delivery<'_>>, CommunicationError> {
        let raw = match self.rx.peek() {
            Ok(Some(bytes)) => FrameHeader::parse(bytes)
                .ok()
                .filter(|h| h.flags.contains(Flags::RAW)),
            Ok(None) | Err(_) => None, // `read` below reports either
        };
        if let Some(header) = raw {
            let from = std::sync::Arc::clone(&self.peer);
            return match self.rx.read() {
                Ok(Some(guard)) => Ok(Some(Delivery {
                    frame: Frame::Lane(guard),
                    header,
                    from,
                })),
                Ok(None) => Ok(None), // peeked a moment ago: cannot happen
                Err(e) => Err(CommunicationError::InvalidFormat {
                    reason: e.to_string(),
                }),
            };
        }
        let found = match self.rx.read() {
            Ok(Some(guard)) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(guard.bytes());
                true
            } // the guard hands the room back here
            Ok(None) => false,
            Err(e) => {
                return Err(CommunicationError::InvalidFormat {
                    reason: e.to_string(),
                })
            }
        };
        if !found {
            self.check_open()?;
            return Ok(None);
        }
        let header = decode(&self.scratch)?.header;
        Ok(Some(Delivery {
            frame: Frame::Scratch(&self.scratch),
            header,
            from: std::sync::Arc::clone(&self.peer),
        }))
    }

    /// The next message, waiting up to `timeout`; `None` when the time runs out. A close by
    /// the other side (or its death) ends the wait with an error.
    pub fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Delivery<'_>>, CommunicationError> {
        let deadline = Instant::now() + timeout;
        loop {
            if !matches!(self.rx.peek(), Ok(None)) {
                break;
            }
            self.check_open()?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let slice = deadline.min(now + Duration::from_millis(50));
            let r: Result<(), WaitError<_>> = self.rx.wait(&self.wait, Some(slice));
            match r {
                Ok(()) | Err(WaitError::TimedOut) => {}
                Err(WaitError::Failed(e)) => {
                    return Err(CommunicationError::InvalidFormat {
                        reason: e.to_string(),
                    })
                }
            }
        }
        self.try_recv()
    }

    /// Closes the channel; the other end's next operation (or current wait) sees it closed.
    pub fn close(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.control.close(ClosedBy::side(self.info.side));
        self.tx_ring_wake.wake_both();
        self.rx_ring_wake.wake_both();
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.shut();
    }
}
