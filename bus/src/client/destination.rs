//! Where a message goes: destinations resolved once with agentd, then sent to with no lookup.
//!
//! [`Peer`], [`Topic`], [`Capability`] and [`AgentType`] are what
//! [`Sender::peer`](super::Sender::peer), [`Sender::topic`](super::Sender::topic),
//! [`Sender::capability`](super::Sender::capability) and
//! [`Sender::agent_type`](super::Sender::agent_type) resolve a name into: the router's id for it,
//! and the name for errors. Sending to one costs no map lookup and no allocation. A handle
//! keeps working after agentd restarts and the agent re-attaches: it is resolved again by name
//! the first time it is used (`reroute.rs`). A
//! [`Destination`] is any of them, several peers, or every agent; a [`Responder`] is what a
//! request may go to (one agent, chosen by id, capability or type).

use std::sync::Arc;

use crate::codec::Route;
use crate::control::AgentAddress;
use crate::header::FrameHeader;
use crate::kinds::RouteKind;

/// One agent, by the slot and epoch agentd gave it.
///
/// A peer that detaches and attaches again gets a new epoch: messages to the old `Peer` are
/// dead-lettered as unreachable. Resolve it again ([`super::Sender::peer`]) after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub(crate) address: AgentAddress,
    pub(crate) name: Arc<str>,
    /// The generation (re-attaches of this agent) it was resolved in.
    pub(crate) generation: u64,
}

impl Peer {
    /// The agent id it was resolved from ([`super::Sender::peer`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The slot agentd gave it (shown in listings as `slot`).
    pub fn slot(&self) -> u32 {
        self.address.slot
    }
}

/// A topic: its subscribers receive what is sent to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    /// Whether agentd lets this agent publish on it (sending is refused with `Unauthorized`
    /// otherwise, without a round trip).
    pub(crate) may_publish: bool,
    /// The generation (re-attaches of this agent) it was resolved in.
    pub(crate) generation: u64,
}

impl Topic {
    /// Its name (`market.AAPL`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this agent may publish on it ([`crate::control::TopicConfig::publishers`]).
    pub fn may_publish(&self) -> bool {
        self.may_publish
    }

    /// Whether the message with `header` was published to this topic.
    pub fn sent_to(&self, header: &FrameHeader) -> bool {
        header.route == RouteKind::Topic && header.destination == self.id
    }
}

/// A set of capabilities: the least-loaded live agent having all of them receives what is sent
/// to it (the spec's capability-based routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub(crate) id: u64,
    pub(crate) names: Arc<[String]>,
    /// The generation (re-attaches of this agent) it was resolved in.
    pub(crate) generation: u64,
}

impl Capability {
    /// The capabilities an agent must have, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// An agent type: the least-loaded ACTIVE agent of the type under its capacity receives what is
/// sent to it (the spec's load-balanced routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentType {
    pub(crate) id: u64,
    pub(crate) name: Arc<str>,
    /// The generation (re-attaches of this agent) it was resolved in.
    pub(crate) generation: u64,
}

impl AgentType {
    /// The agent type as agents attach with it (`risk`), as given to
    /// [`super::Sender::agent_type`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a message goes: every route kind the router knows.
///
/// Every handle converts into one (`sender.send(&peer, &message)`); several peers are a slice
/// (`Destination::Peers(&[a, b])`), every other agent is [`Destination::Broadcast`].
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// The one agent at the slot and epoch the [`Peer`] was resolved to (dead-lettered if it
    /// has left or attached again since).
    Peer(&'a Peer),
    /// Each of these agents, one copy each with the same message id (multicast).
    Peers(&'a [Peer]),
    /// Every subscriber of a topic.
    Topic(&'a Topic),
    /// The least-loaded live agent having all these capabilities.
    Capability(&'a Capability),
    /// The least-loaded ACTIVE agent of this type under its capacity.
    Type(&'a AgentType),
    /// Every other attached agent.
    Broadcast,
}

impl<'a> From<&'a Peer> for Destination<'a> {
    fn from(p: &'a Peer) -> Self {
        Destination::Peer(p)
    }
}

impl<'a> From<&'a [Peer]> for Destination<'a> {
    fn from(p: &'a [Peer]) -> Self {
        Destination::Peers(p)
    }
}

impl<'a, const N: usize> From<&'a [Peer; N]> for Destination<'a> {
    fn from(p: &'a [Peer; N]) -> Self {
        Destination::Peers(p)
    }
}

impl<'a> From<&'a Vec<Peer>> for Destination<'a> {
    fn from(p: &'a Vec<Peer>) -> Self {
        Destination::Peers(p)
    }
}

impl<'a> From<&'a Topic> for Destination<'a> {
    fn from(t: &'a Topic) -> Self {
        Destination::Topic(t)
    }
}

impl<'a> From<&'a Capability> for Destination<'a> {
    fn from(c: &'a Capability) -> Self {
        Destination::Capability(c)
    }
}

impl<'a> From<&'a AgentType> for Destination<'a> {
    fn from(t: &'a AgentType) -> Self {
        Destination::Type(t)
    }
}

impl<'a> From<Responder<'a>> for Destination<'a> {
    fn from(r: Responder<'a>) -> Self {
        match r {
            Responder::Peer(p) => Destination::Peer(p),
            Responder::Capability(c) => Destination::Capability(c),
            Responder::Type(t) => Destination::Type(t),
        }
    }
}

/// Where a request goes: one agent, which answers it (by id, or chosen by the router by
/// capability or type).
#[derive(Debug, Clone, Copy)]
pub enum Responder<'a> {
    /// The agent the [`Peer`] was resolved to, as long as it stays attached.
    Peer(&'a Peer),
    /// The least-loaded live agent having all these capabilities.
    Capability(&'a Capability),
    /// The least-loaded ACTIVE agent of this type under its capacity.
    Type(&'a AgentType),
}

impl<'a> From<&'a Peer> for Responder<'a> {
    fn from(p: &'a Peer) -> Self {
        Responder::Peer(p)
    }
}

impl<'a> From<&'a Capability> for Responder<'a> {
    fn from(c: &'a Capability) -> Self {
        Responder::Capability(c)
    }
}

impl<'a> From<&'a AgentType> for Responder<'a> {
    fn from(t: &'a AgentType) -> Self {
        Responder::Type(t)
    }
}

impl Responder<'_> {
    /// Where the request went, kept for its errors (shares the handle's name: no allocation).
    pub(crate) fn target(&self) -> Target {
        match self {
            Responder::Peer(p) => Target::Peer(Arc::clone(&p.name)),
            Responder::Capability(c) => Target::Capability(Arc::clone(&c.names)),
            Responder::Type(t) => Target::Type(Arc::clone(&t.name)),
        }
    }
}

/// Where a request went, as its errors name it (and its breaker is keyed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Peer(Arc<str>),
    Capability(Arc<[String]>),
    Type(Arc<str>),
}

impl std::fmt::Display for Target {
    /// The agent id, `capabilities a,b`, or `type t`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Peer(name) => f.write_str(name),
            Target::Capability(names) => write!(f, "capabilities {}", names.join(",")),
            Target::Type(name) => write!(f, "type {name}"),
        }
    }
}

impl Destination<'_> {
    /// The route of a single-destination send; `None` for [`Destination::Peers`], which is one
    /// route per peer.
    pub(crate) fn route(&self) -> Option<Route> {
        let (kind, destination) = match self {
            Destination::Peer(p) => (RouteKind::Agent, p.address.destination()),
            Destination::Peers(_) => return None,
            Destination::Topic(t) => (RouteKind::Topic, t.id),
            Destination::Capability(c) => (RouteKind::Capability, c.id),
            Destination::Type(t) => (RouteKind::LoadBalanced, t.id),
            Destination::Broadcast => (RouteKind::Broadcast, 0),
        };
        Some(Route { kind, destination })
    }
}
