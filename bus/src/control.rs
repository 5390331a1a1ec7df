//! The control protocol between agents (and tools) and agentd, over its Unix socket.
//!
//! Each message is a 4-byte little-endian length and an rkyv archive of a [`Request`] or a
//! [`Response`]. An `Attached` response carries two descriptors (`SCM_RIGHTS`): the agent's
//! lane segment and the router's doorbell.

// rkyv's derive generates public `*Resolver` types without Debug; every type written here
// derives Debug.
#![allow(missing_debug_implementations)]

use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

use crate::kinds::{MessageType, RouteKind};
use crate::payload::AgentStatus;

/// The protocol version; both sides must speak the same.
pub const PROTOCOL_VERSION: u32 = 6;
/// The largest control message accepted.
pub const MAX_CONTROL_MESSAGE: usize = 1 << 20;

/// What an agent asks to attach as.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct AttachRequest {
    /// [`PROTOCOL_VERSION`] of the client.
    pub protocol: u32,
    /// Unique on the bus.
    pub agent_id: String,
    /// Its type (load-balanced routing picks by type).
    pub agent_type: String,
    /// Which instance of its type this is, when several run (listed, not used for routing).
    pub instance_id: Option<String>,
    /// What it can do (capability routing).
    pub capabilities: Vec<String>,
    /// How many tasks it can hold (load-balanced routing keeps it under this).
    pub max_capacity: u32,
}

/// A request to agentd.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Request {
    /// Attach as an agent: answered with `Attached` and the lane segment.
    Attach(AttachRequest),
    /// Detach cleanly (closing the socket does the same).
    Detach,
    /// The slot and epoch of the live agent with this id.
    ResolveAgent(String),
    /// The identity of the agent at this address (the source slot and epoch the router
    /// stamps), while it is attached or leaving.
    IdentifySlot(AgentAddress),
    /// Creates the topic of this name (`market.AAPL`) if needed, configured as asked (or as
    /// agentd's configuration says for its name); answered with `Topic`: its id and what the
    /// agent may do with it. Asking an existing topic for a configuration other than its own
    /// is refused, and so is asking for other access lists than a rule of agentd's
    /// configuration sets for the name (`Unauthorized`).
    CreateTopic(TopicRequest),
    /// Subscribes this agent to a pattern: exact names, `*` (one segment) or a trailing `>`
    /// (the rest); answered with the subscription's id.
    Subscribe(String),
    /// Ends the subscription with this id.
    Unsubscribe(u64),
    /// The id of this set of capabilities (order does not matter), for capability routing.
    InternCapabilities(Vec<String>),
    /// The id of this agent type, for load-balanced routing.
    InternType(String),
    /// Every agent in a slot, leaving ones included: answered with `Agents`.
    ListAgents,
    /// Every topic with its subscriber count: answered with `Topics`.
    ListTopics,
    /// The bus-wide counters: answered with `Stats`.
    Stats,
    /// A page of the dead-letter queue (agentd caps a page well under
    /// [`MAX_CONTROL_MESSAGE`]).
    DeadLetters(PageRequest),
    /// Drops every dead letter agentd holds (from its file too): answered with `Purged`.
    PurgeDeadLetters,
    /// Takes the dead letter with this sequence number out of the queue and routes its frame
    /// again, as its header says, from its original sender: answered with `Done` once the
    /// router has it. If it fails again it is dead-lettered anew, its retries counted.
    RetryDeadLetter(u64),
    /// Records a message this agent gave up on (its at-least-once attempts spent) in agentd's
    /// dead-letter queue: answered with `Done`.
    DeadLetter(ClientDeadLetter),
    /// Opens a direct channel to the agent with this id: answered with `ChannelOpened` and
    /// the channel's segment; the peer is offered it (a `Push`).
    OpenChannel(String),
    /// Closes a channel (either side may; its peer sees it closed).
    CloseChannel(u64),
    /// Asks for units of a named lease: answered `Lease` when granted at once, `LeaseQueued`
    /// when it waits its turn (then granted by a `Push::LeaseGranted`), or refused (`NoRoom`
    /// when it may not wait and the lease is taken).
    AcquireLease(LeaseRequest),
    /// Extends a lease this agent holds by its ttl: answered `Lease`, or refused if it was
    /// lost (expired, or its token is not the current one).
    RenewLease(LeaseToken),
    /// Gives a lease back (or, with token 0, stops waiting for it): answered `Done`.
    ReleaseLease(LeaseToken),
}

/// A request for units of a named lease ([`Request::AcquireLease`]): leader election is one
/// unit of a one-unit lease, resource allocation N units of a larger one.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// The lease's name (`primary.execution`).
    pub name: String,
    /// Units wanted, 1 or more.
    pub units: u32,
    /// Units the lease has in all (1: exclusive). The first request for a name sets it; a
    /// request naming another is refused while the lease is held or waited for.
    pub capacity: u32,
    /// How long a grant lasts unless renewed, in ms.
    pub ttl_ms: u32,
    /// Who goes first among waiters: higher first, equal ones in order of arrival.
    pub priority: u8,
    /// Whether to wait in line when the units are taken (`false`: refused at once).
    pub wait: bool,
}

/// A lease as held ([`Response::Lease`], [`Push::LeaseGranted`]).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct LeaseGrant {
    /// The lease's name.
    pub name: String,
    /// Units held.
    pub units: u32,
    /// The fencing token: it only grows (across agentd restarts too, as the clock does), so
    /// whoever a holder writes to can refuse a write carrying an older token than one it saw.
    pub token: u64,
    /// How long it lasts from now unless renewed, in ms.
    pub ttl_ms: u32,
}

/// Names a lease held (or waited for, with token 0).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct LeaseToken {
    /// The lease's name.
    pub name: String,
    /// The fencing token of the grant (0: the request still waiting).
    pub token: u64,
}

/// A message a client gave up on, for agentd's dead-letter queue ([`Request::DeadLetter`]).
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct ClientDeadLetter {
    /// The message as it travelled: one frame (routing header, extensions, body); agentd
    /// stamps the reporting agent as its source.
    pub frame: Vec<u8>,
    /// Why it was given up (the last attempt's outcome).
    pub reason: String,
}

/// A topic to create, and how.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct TopicRequest {
    /// Its dot-separated name, without wildcards (`market.AAPL`).
    pub name: String,
    /// How it is to behave; `None` takes the existing topic as it is, or agentd's configured
    /// default for the name.
    pub config: Option<TopicConfig>,
}

/// How a topic behaves ([`Request::CreateTopic`]).
///
/// ```
/// use agentbus::control::{BackPressure, Principal, TopicConfig};
///
/// // Market data: conflated for slow readers, the last 10 ticks replayed to late joiners,
/// // published by the feed handlers only.
/// let md = TopicConfig::with(BackPressure::DropOldest)
///     .history(10)
///     .publishers([Principal::of_type("market_data")]);
/// assert!(md.publishers.allows("feed-1", "market_data"));
/// assert!(!md.publishers.allows("strategy-1", "strategy"));
/// assert!(md.subscribers.allows("anyone", "at-all"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub struct TopicConfig {
    /// What the router does with a copy for a subscriber whose lane is full.
    pub back_pressure: BackPressure,
    /// The largest message the topic carries, in bytes as it travels (routing header and
    /// extensions included); a larger one is dead-lettered and its sender told
    /// `MessageTooLarge`. 0: as large as a lane allows.
    pub max_message_size: u32,
    /// How many of the last messages published agentd keeps and delivers first to each new
    /// subscriber (late joiners see the latest state at once), up to [`MAX_HISTORY`] and to
    /// one lane's capacity in bytes; 0: none. A message whose own ttl has run out is not
    /// replayed; one without a ttl is, however old. With history, a message published while
    /// nobody subscribes is kept for the next subscriber instead of dead-lettered.
    pub history: u32,
    /// Who may publish on it: a message from anyone else is dead-lettered by the router and
    /// its sender told `Unauthorized` (the client refuses it before it is sent).
    pub publishers: Access,
    /// Who may subscribe to it: an exact subscription by anyone else is refused with
    /// `Unauthorized`; a wildcard subscription of theirs leaves it out.
    pub subscribers: Access,
}

/// The most messages a topic's history keeps ([`TopicConfig::history`]).
pub const MAX_HISTORY: u32 = 4096;

impl TopicConfig {
    /// A topic with `back_pressure`, open to everyone, with no size limit and no history.
    pub const fn with(back_pressure: BackPressure) -> TopicConfig {
        TopicConfig {
            back_pressure,
            max_message_size: 0,
            history: 0,
            publishers: Access::Anyone,
            subscribers: Access::Anyone,
        }
    }

    /// This configuration, carrying messages up to `bytes` (as they travel).
    pub fn max_message_size(mut self, bytes: u32) -> TopicConfig {
        self.max_message_size = bytes;
        self
    }

    /// This configuration, keeping the last `messages` for late joiners.
    pub fn history(mut self, messages: u32) -> TopicConfig {
        self.history = messages;
        self
    }

    /// This configuration, published on only by `who`.
    pub fn publishers(mut self, who: impl IntoIterator<Item = Principal>) -> TopicConfig {
        self.publishers = Access::Only(who.into_iter().collect());
        self
    }

    /// This configuration, subscribed to only by `who`.
    pub fn subscribers(mut self, who: impl IntoIterator<Item = Principal>) -> TopicConfig {
        self.subscribers = Access::Only(who.into_iter().collect());
        self
    }
}

/// Who may do something with a topic ([`TopicConfig::publishers`],
/// [`TopicConfig::subscribers`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub enum Access {
    /// Every agent allowed on the bus.
    #[default]
    Anyone,
    /// Only the agents one of these names (none: nobody).
    Only(Vec<Principal>),
}

impl Access {
    /// Whether the agent `agent_id` of type `agent_type` is allowed.
    pub fn allows(&self, agent_id: &str, agent_type: &str) -> bool {
        match self {
            Access::Anyone => true,
            Access::Only(who) => who.iter().any(|p| p.names(agent_id, agent_type)),
        }
    }
}

impl std::fmt::Display for Access {
    /// `anyone`, or the principals as configured (`agent:feed-1, type:risk`), `nobody` for none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Anyone => f.write_str("anyone"),
            Access::Only(who) if who.is_empty() => f.write_str("nobody"),
            Access::Only(who) => {
                for (i, p) in who.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

/// An agent, or every agent of a type, as a topic's access lists name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
pub enum Principal {
    /// The agent attached with this id.
    Agent(String),
    /// Every agent attached with this type.
    Type(String),
}

impl Principal {
    /// The agent attached as `agent_id`.
    pub fn agent(agent_id: impl Into<String>) -> Principal {
        Principal::Agent(agent_id.into())
    }

    /// Every agent attached with type `agent_type`.
    pub fn of_type(agent_type: impl Into<String>) -> Principal {
        Principal::Type(agent_type.into())
    }

    /// Whether it names the agent `agent_id` of type `agent_type`.
    pub fn names(&self, agent_id: &str, agent_type: &str) -> bool {
        match self {
            Principal::Agent(id) => id == agent_id,
            Principal::Type(t) => t == agent_type,
        }
    }
}

impl std::fmt::Display for Principal {
    /// `agent:ID` or `type:TYPE`, as agentd's configuration writes them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Agent(id) => write!(f, "agent:{id}"),
            Principal::Type(t) => write!(f, "type:{t}"),
        }
    }
}

/// Why a string is not a [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} names no agent: write agent:ID or type:TYPE (for example agent:feed-1, type:risk)"
)]
pub struct ParsePrincipalError {
    /// The string given.
    pub given: String,
}

impl std::str::FromStr for Principal {
    type Err = ParsePrincipalError;

    /// Parses `agent:ID` or `type:TYPE` (neither part empty).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePrincipalError { given: s.into() };
        match s.split_once(':') {
            Some(("agent", id)) if !id.is_empty() => Ok(Principal::agent(id)),
            Some(("type", t)) if !t.is_empty() => Ok(Principal::of_type(t)),
            _ => Err(err()),
        }
    }
}

/// What the router does with a topic message's copy for a subscriber whose inbound lane is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Archive, Serialize, Deserialize)]
pub enum BackPressure {
    /// The message waits in the publisher's lane until the slow subscriber makes room (or its
    /// ttl runs out): lossless, and every later message of that publisher at that priority
    /// waits with it, for every subscriber. The default (orders).
    #[default]
    Block,
    /// The slow subscriber's copy is dead-lettered at once, naming the subscriber, and counted
    /// against it (`AgentInfo::copies_lost`); the other subscribers and the publisher go on at
    /// their own pace (market data a late reader must not hold up).
    DeadLetterSlow,
    /// The slow subscriber's copies are held in agentd (up to a lane's capacity, per subscriber
    /// and priority) and written into its lane, in order, as it makes room; when the hold is
    /// full its oldest copy is dropped and counted against the subscriber
    /// (`AgentInfo::copies_lost`), so a subscriber that catches up reads the newest messages
    /// (conflation to the latest). The others and the publisher go on at their own pace.
    DropOldest,
}

impl BackPressure {
    /// The name used in agentd's configuration and in messages: `block`, `dead-letter-slow`,
    /// `drop-oldest`.
    pub fn name(self) -> &'static str {
        match self {
            BackPressure::Block => "block",
            BackPressure::DeadLetterSlow => "dead-letter-slow",
            BackPressure::DropOldest => "drop-oldest",
        }
    }
}

/// Why a name is not a [`BackPressure`] policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown back-pressure policy {given:?}: use block, dead-letter-slow or drop-oldest")]
pub struct ParseBackPressureError {
    /// The name given.
    pub given: String,
}

impl std::str::FromStr for BackPressure {
    type Err = ParseBackPressureError;

    /// Parses `block`, `dead-letter-slow` or `drop-oldest`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(BackPressure::Block),
            "dead-letter-slow" => Ok(BackPressure::DeadLetterSlow),
            "drop-oldest" => Ok(BackPressure::DropOldest),
            other => Err(ParseBackPressureError {
                given: other.into(),
            }),
        }
    }
}

/// A topic as agentd hands it to an agent ([`Response::Topic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct TopicGrant {
    /// The id agentd gave it: the destination of a topic route.
    pub id: u64,
    /// Whether the agent may publish on it ([`TopicConfig::publishers`]): the router refuses
    /// its messages otherwise, so the client refuses them first.
    pub may_publish: bool,
}

/// Which page of a listing is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PageRequest {
    /// The first sequence number wanted (0: from the oldest held).
    pub from: u64,
    /// The most entries wanted.
    pub max: u32,
}

/// A direct channel, as each side learns of it.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Given by agentd, counting from 1 for its run: what `CloseChannel` names.
    pub id: u64,
    /// The agent at the other end, as attached.
    pub peer: crate::body::AgentIdentifier,
    /// Which end this is: 0 opened it, 1 was offered it.
    pub side: u8,
}

/// What agentd tells an agent without being asked.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Push {
    /// Another agent opened a channel to this one; its segment comes with this message.
    ChannelOffer(ChannelInfo),
    /// A lease this agent waited for is granted.
    LeaseGranted(LeaseGrant),
}

/// Where an attached agent lives.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct AttachInfo {
    /// The slot agentd gave the agent: the index of its lanes, stamped by the router as the
    /// source of what it sends.
    pub slot: u32,
    /// How many times the slot has been taken (cycling through 1..=65535): with the slot, names
    /// this occupant (a message to an earlier occupant is dead-lettered, not delivered).
    pub epoch: u32,
    /// How often it should beat, in ms.
    pub heartbeat_interval_ms: u32,
}

/// One agent, as listed.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The slot agentd gave the agent: the index of its lanes, stamped by the router as the
    /// source of what it sends.
    pub slot: u32,
    /// How many times the slot has been taken (cycling through 1..=65535): with the slot, names
    /// this occupant (a message to an earlier occupant is dead-lettered, not delivered).
    pub epoch: u32,
    /// The id it attached with: unique among the live agents of the bus.
    pub agent_id: String,
    /// The type it attached as (load-balanced routing picks among the agents of a type).
    pub agent_type: String,
    /// The instance id it gave at attach, if any.
    pub instance_id: Option<String>,
    /// What it declared it can do at attach, sorted, without duplicates.
    pub capabilities: Vec<String>,
    /// Worked out by agentd as it lists: `Dead` if leaving, `Unresponsive` if its heartbeat is
    /// stale, `Busy` at capacity, else `Active`.
    pub status: AgentStatus,
    /// Reported load.
    pub load: u32,
    /// The most tasks it declared it holds (`max_capacity` at attach): listed `Busy` once its load
    /// reaches it.
    pub capacity: u32,
    /// Process id, from `SO_PEERCRED`.
    pub pid: i32,
    /// User id, from `SO_PEERCRED`.
    pub uid: u32,
    /// Frames the router took from its outbound lanes.
    pub frames_sent: u64,
    /// Of those, frames delivered to every destination.
    pub frames_delivered: u64,
    /// Of those, frames dead-lettered (for at least one destination, or for all).
    pub frames_dead: u64,
    /// Copies the router wrote into its inbound lanes.
    pub copies_received: u64,
    /// Copies of its frames the router wrote into destinations' lanes.
    pub copies_delivered: u64,
    /// Copies of its frames dead-lettered at one destination.
    pub copies_dead: u64,
    /// Distinct destinations its finished frames were routed to, summed over frames. Once none
    /// of its frames waits for a full lane, `copies_delivered + copies_dead = destinations`;
    /// a copy written twice to one destination would break it.
    pub destinations: u64,
    /// Times it was throttled for causing dead letters faster than agentd allows.
    pub throttled: u64,
    /// Topic copies meant for it that its full lane could not take: dropped under the topic's
    /// back-pressure policy (dead-lettered, naming it, under `DeadLetterSlow`), or a topic's
    /// history replayed when it subscribed that did not fit. What being slow cost it.
    pub copies_lost: u64,
    /// Times it woke the sleeping router with nothing to send, and signals it sent while muted
    /// for doing so more than agentd allows in a second: a broken or hostile agent shows here.
    pub wakes_ignored: u64,
}

/// One topic, as listed.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The id agentd gave it (`sys.agents` is 0): the destination of a topic route.
    pub id: u64,
    /// Its dot-separated name (`market.AAPL`).
    pub name: String,
    /// How many agents receive it.
    pub subscribers: u32,
    /// How it behaves.
    pub config: TopicConfig,
}

/// What agentd answers `Stats` with: the router's totals, the agents attached and the
/// dead-letter queue's size.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct BusStats {
    /// Router passes.
    pub passes: u64,
    /// Frames read from outbound lanes.
    pub frames_in: u64,
    /// Copies written to inbound lanes.
    pub delivered: u64,
    /// Copies (or frames) dead-lettered.
    pub dead_lettered: u64,
    /// Agents detached for writing malformed frames.
    pub faulted: u64,
    /// Agents attached now.
    pub agents: u32,
    /// Dead letters held now.
    pub dead_letters_held: u64,
    /// Bytes they take.
    pub dead_letter_bytes: u64,
    /// Dead letters dropped, oldest first, to stay in the queue's bounds.
    pub dead_letters_evicted: u64,
}

/// One dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// Its place in the queue's history: 0 for the first letter agentd ever made.
    pub sequence: u64,
    /// The dead message's id, from its header.
    pub message_id: u64,
    /// The dead message's type, from its header.
    pub message_type: MessageType,
    /// How its header asked the router to find its destination.
    pub route: RouteKind,
    /// Its sender's slot, as the router stamped it ([`crate::header::AGENTD_SLOT`] for what
    /// agentd itself sent).
    pub source_slot: u32,
    /// The slot it was for, when known.
    pub destination_slot: Option<u32>,
    /// Why it is dead.
    pub reason: String,
    /// When it was dead-lettered, ns since the epoch.
    pub at_ns: u64,
    /// Bytes of the frame (kept for replay).
    pub frame_len: u32,
    /// Times it was retried ([`Request::RetryDeadLetter`]) before this: 0 for a first failure.
    pub retries: u32,
}

/// A page of the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
pub struct DeadLetterPage {
    /// Letters, oldest first.
    pub letters: Vec<DeadLetterInfo>,
    /// Where the next page starts (ask for `from: next`).
    pub next: u64,
    /// Whether letters past this page are held.
    pub more: bool,
    /// Letters ever made.
    pub total: u64,
    /// Letters dropped, oldest first, to keep the queue in its bounds.
    pub evicted: u64,
}

/// Why agentd refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug))]
pub enum Refusal {
    /// The peer's uid/gid is not allowed.
    Unauthorized,
    /// An agent with that id is attached already.
    AlreadyAttached,
    /// The request needs an attached agent.
    NotAttached,
    /// The protocol versions differ.
    VersionMismatch,
    /// A malformed or impossible request.
    BadRequest,
    /// No agent by that id.
    NoSuchAgent,
    /// No free slot, or lanes could not be created.
    NoRoom,
    /// agentd is shutting down.
    ShuttingDown,
}

/// agentd's answer.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub enum Response {
    /// Attached; the lane segment and the router doorbell come with it.
    Attached(AttachInfo),
    /// The request took effect and there is nothing to return (`Detach`, `Unsubscribe`,
    /// `CloseChannel`).
    Done,
    /// A live agent's slot and epoch (answers `ResolveAgent`).
    Agent(AgentAddress),
    /// The identity of the agent at an address (answers `IdentifySlot`).
    Identity(crate::body::AgentIdentifier),
    /// An id (subscription, capability set, type).
    Id(u64),
    /// A topic's id, and what the asking agent may do with it (answers `CreateTopic`).
    Topic(TopicGrant),
    /// Every agent in a slot, leaving ones included, by slot (answers `ListAgents`).
    Agents(Vec<AgentInfo>),
    /// Every topic by id, with its subscriber count (answers `ListTopics`).
    Topics(Vec<TopicInfo>),
    /// The bus-wide counters (answers `Stats`).
    Stats(BusStats),
    /// A page of dead letters, oldest first.
    DeadLetters(DeadLetterPage),
    /// How many letters `PurgeDeadLetters` dropped.
    Purged(u64),
    /// Refused, with what to do about it.
    Refused(Refused),
    /// A channel was opened; its segment comes with this message.
    ChannelOpened(ChannelInfo),
    /// Unsolicited news (never an answer to a request).
    Push(Push),
    /// A lease granted at once.
    Lease(LeaseGrant),
    /// The lease is taken: this request waits in line; a `Push::LeaseGranted` comes when it
    /// is granted.
    LeaseQueued(LeaseQueued),
}

/// Where a lease request waits ([`Response::LeaseQueued`]).
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct LeaseQueued {
    /// Its place in line, 1 first.
    pub position: u32,
    /// Who holds the lease now (agent ids).
    pub holders: Vec<String>,
}

impl Response {
    /// How many descriptors come with this message.
    pub fn fd_count(&self) -> usize {
        match self {
            Response::Attached(_) => 2,
            Response::ChannelOpened(_) | Response::Push(Push::ChannelOffer(_)) => 1,
            _ => 0,
        }
    }
}

/// Where a live agent is: its slot and the slot's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct AgentAddress {
    /// The slot agentd gave the agent: the index of its lanes, stamped by the router as the
    /// source of what it sends.
    pub slot: u32,
    /// How many times the slot has been taken (cycling through 1..=65535): with the slot, names
    /// this occupant (a message to an earlier occupant is dead-lettered, not delivered).
    pub epoch: u32,
}

impl AgentAddress {
    /// The destination id the router expects for agent routes: epoch above, slot below.
    pub fn destination(self) -> u64 {
        (self.epoch as u64) << 32 | self.slot as u64
    }

    /// The address a destination id names.
    pub fn from_destination(destination: u64) -> AgentAddress {
        AgentAddress {
            slot: destination as u32,
            epoch: (destination >> 32) as u32,
        }
    }
}

/// A `Refused` answer: why agentd refused a request and what to do about it.
#[derive(Debug, Clone, PartialEq, Archive, Serialize, Deserialize)]
pub struct Refused {
    /// The reason, as a value to match on.
    pub kind: Refusal,
    /// A sentence that says what to do.
    pub message: String,
}

/// Encodes a control message with its length prefix.
pub fn encode_frame<T>(message: &T) -> Vec<u8>
where
    T: for<'a> Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    let body = rkyv::to_bytes::<rancor::Error>(message).expect("control messages always serialize");
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Accumulates bytes from a stream and yields whole control messages.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Adds bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message's bytes (aligned for rkyv), `Ok(None)` if incomplete, or an error
    /// for a length over [`MAX_CONTROL_MESSAGE`].
    pub fn next_frame(&mut self) -> Result<Option<AlignedVec>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_CONTROL_MESSAGE {
            return Err(FrameError::TooLarge {
                len,
                max: MAX_CONTROL_MESSAGE,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let mut frame = AlignedVec::with_capacity(len);
        frame.extend_from_slice(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        Ok(Some(frame))
    }
}

/// Why [`FrameReader::next_frame`] cannot yield a message: the stream is unusable from there on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is over [`MAX_CONTROL_MESSAGE`].
    #[error("control message of {len} bytes exceeds the limit of {max}: the peer is broken or runs another agentbus version; run agentd and its clients from the same version")]
    TooLarge {
        /// The length announced.
        len: usize,
        /// The most accepted.
        max: usize,
    },
}

/// Why a control message's bytes are not a valid [`Request`] or [`Response`].
#[derive(Debug, thiserror::Error)]
pub enum ControlDecodeError {
    /// Not a valid request.
    #[error("bad request: {0}; the client is broken or runs an agentbus version this agentd does not speak")]
    Request(#[source] rancor::Error),
    /// Not a valid response.
    #[error(
        "bad response: {0}; agentd is broken or runs another agentbus version than this client"
    )]
    Response(#[source] rancor::Error),
}

/// Decodes a request, validating it.
pub fn decode_request(bytes: &[u8]) -> Result<Request, ControlDecodeError> {
    rkyv::from_bytes::<Request, rancor::Error>(bytes).map_err(ControlDecodeError::Request)
}

/// Decodes a response, validating it.
pub fn decode_response(bytes: &[u8]) -> Result<Response, ControlDecodeError> {
    rkyv::from_bytes::<Response, rancor::Error>(bytes).map_err(ControlDecodeError::Response)
}

/// Whether topic `name` matches subscription `pattern`: segments split on `.`, `*` matches one
/// segment, a final `>` matches one or more.
pub fn topic_matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('.');
    let mut n = name.split('.');
    loop {
        match (p.next(), n.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats_subjects() {
        assert!(topic_matches("market.AAPL", "market.AAPL"));
        assert!(topic_matches("market.*", "market.AAPL"));
        assert!(!topic_matches("market.*", "market.AAPL.bid"));
        assert!(topic_matches("market.>", "market.AAPL.bid"));
        assert!(!topic_matches("market.>", "market"));
        assert!(!topic_matches("market.AAPL", "market.MSFT"));
        assert!(topic_matches("*.AAPL", "market.AAPL"));
    }

    #[test]
    fn frames_round_trip_whole_and_split() {
        let req = Request::Subscribe("market.>".into());
        let bytes = encode_frame(&req);
        let mut r = FrameReader::default();
        r.push(&bytes[..3]);
        assert!(r.next_frame().unwrap().is_none());
        r.push(&bytes[3..]);
        r.push(&bytes);
        for _ in 0..2 {
            let f = r.next_frame().unwrap().unwrap();
            assert_eq!(decode_request(&f).unwrap(), req);
        }
        assert!(r.next_frame().unwrap().is_none());
        let mut huge = FrameReader::default();
        huge.push(&u32::MAX.to_le_bytes());
        assert_eq!(
            huge.next_frame().unwrap_err(),
            FrameError::TooLarge {
                len: u32::MAX as usize,
                max: MAX_CONTROL_MESSAGE
            }
        );
        assert!(matches!(
            decode_request(&[1, 2, 3]),
            Err(ControlDecodeError::Request(_))
        ));
    }
}
