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

use super::destination::Destination;

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

impl Destination<'_> {
    /// The generation a single destination's handle was resolved in (`None` for broadcast and
    /// several peers, which need no resolving or are resolved peer by peer).
    pub(crate) fn generation(&self) -> Option<u64> {
        match self {
            Destination::Peer(p) => Some(p.generation),
            Destination::Topic(t) => Some(t.generation),
            Destination::Capability(c) => Some(c.generation),
            Destination::Type(t) => Some(t.generation),
            Destination::Peers(_) | Destination::Broadcast => None,
        }
    }

    /// A single destination's name, to resolve again, and its route kind.
    pub(crate) fn named(&self) -> Option<(Named, RouteKind)> {
        match self {
            Destination::Peer(p) => Some((Named::Peer(Arc::clone(&p.name)), RouteKind::Agent)),
            Destination::Topic(t) => Some((Named::Topic(Arc::clone(&t.name)), RouteKind::Topic)),
            Destination::Capability(c) => Some((
                Named::Capability(Arc::clone(&c.names)),
                RouteKind::Capability,
            )),
            Destination::Type(t) => {
                Some((Named::Type(Arc::clone(&t.name)), RouteKind::LoadBalanced))
            }
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
