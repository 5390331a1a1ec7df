//! Handles resolved before agentd restarted, resolved again by name.
//!
//! A handle ([`Peer`], [`Topic`], [`Capability`], [`AgentType`]) carries the id agentd gave its
//! name and the generation (re-attaches so far) it was resolved in. A restarted agentd hands
//! out other ids, so a handle of an earlier generation is resolved again, by its name, the
//! first time it is sent to, and the answer is kept for the rest of the generation: the handles
//! an application holds keep working across a restart, and sending to a current one costs one
//! compare.

use std::collections::HashMap;
use std::sync::Arc;

use crate::codec::Route;
use crate::kinds::RouteKind;

use super::destination::{AgentType, Capability, Destination, Peer, Topic};

/// A name as a handle of one kind holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Named {
    /// An agent id.
    Peer(Arc<str>),
    /// A topic name.
    Topic(Arc<str>),
    /// A sorted capability set.
    Capability(Arc<[String]>),
    /// An agent type.
    Type(Arc<str>),
}

/// What a name resolved to in the current generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The route's destination id (an agent address's for a peer).
    pub(crate) destination: u64,
    /// For a topic: whether this agent may publish on it.
    pub(crate) may_publish: bool,
}

/// The current generation, and the names resolved again in it.
#[derive(Debug)]
pub(crate) struct Reroutes {
    pub(crate) generation: u64,
    resolved: HashMap<Named, Resolved>,
}

impl Reroutes {
    /// No name resolved again yet in `generation`.
    pub(crate) fn new(generation: u64) -> Reroutes {
        Reroutes {
            generation,
            resolved: HashMap::new(),
        }
    }

    /// What `name` resolved to again in this generation, if it was.
    pub(crate) fn get(&self, name: &Named) -> Option<Resolved> {
        self.resolved.get(name).copied()
    }

    /// Keeps what `name` resolved to again.
    pub(crate) fn insert(&mut self, name: Named, resolved: Resolved) {
        self.resolved.insert(name, resolved);
    }
}

/// A handle's generation and name, and its route as resolved then.
pub(crate) trait Handle {
    /// The generation it was resolved in.
    fn generation(&self) -> u64;
    /// Its name, to resolve again.
    fn named(&self) -> Named;
    /// Its route kind.
    fn kind(&self) -> RouteKind;
}

impl Handle for Peer {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn named(&self) -> Named {
        Named::Peer(Arc::clone(&self.name))
    }
    fn kind(&self) -> RouteKind {
        RouteKind::Agent
    }
}

impl Handle for Topic {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn named(&self) -> Named {
        Named::Topic(Arc::clone(&self.name))
    }
    fn kind(&self) -> RouteKind {
        RouteKind::Topic
    }
}

impl Handle for Capability {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn named(&self) -> Named {
        Named::Capability(Arc::clone(&self.names))
    }
    fn kind(&self) -> RouteKind {
        RouteKind::Capability
    }
}

impl Handle for AgentType {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn named(&self) -> Named {
        Named::Type(Arc::clone(&self.name))
    }
    fn kind(&self) -> RouteKind {
        RouteKind::LoadBalanced
    }
}

impl Destination<'_> {
    /// The handle a single destination is sent through (`None` for broadcast and several
    /// peers).
    pub(crate) fn handle(&self) -> Option<&dyn Handle> {
        match self {
            Destination::Peer(p) => Some(*p),
            Destination::Topic(t) => Some(*t),
            Destination::Capability(c) => Some(*c),
            Destination::Type(t) => Some(*t),
            Destination::Peers(_) | Destination::Broadcast => None,
        }
    }
}

/// The route to `resolved` for a handle of kind `kind`.
pub(crate) fn route(kind: RouteKind, resolved: Resolved) -> Route {
    Route {
        kind,
        destination: resolved.destination,
    }
}
