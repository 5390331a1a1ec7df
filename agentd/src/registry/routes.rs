//! Who receives what, kept current one change at a time, with the routes changed since they
//! were last handed to the router.
//!
//! A topic's subscribers are counted per slot (an agent may have two patterns that match one
//! topic: it stays a subscriber until both are gone); a capability set's candidates and a
//! type's members are sets of slots, and so are the agents who may publish on a topic whose
//! publishers are restricted. A route is marked changed only when its members change,
//! so a request that changes nothing (a second pattern matching topics the agent has already,
//! an existing name interned again) sends the router nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::router::{RouteChange, RouteId};

/// The members of every route, and the routes changed since [`RouteBook::take_changes`].
#[derive(Debug, Default)]
pub struct RouteBook {
    /// By topic id: subscribed slot -> how many of its subscriptions match the topic.
    topics: Vec<BTreeMap<u32, u32>>,
    /// By capability-set id: slots of live agents having every capability of the set.
    capsets: Vec<BTreeSet<u32>>,
    /// By type id: slots of live agents of the type.
    types: Vec<BTreeSet<u32>>,
    /// By topic id, for topics whose publishers are restricted only: slots of live agents
    /// who may publish on it.
    publishers: BTreeMap<u64, BTreeSet<u32>>,
    /// Routes whose members changed (or that are new) since the last take.
    changed: BTreeSet<RouteId>,
}

impl RouteBook {
    /// Adds a topic without subscribers, with the slots who may publish on it if its
    /// publishers are restricted; returns its id. It counts as changed: the router must learn
    /// that the id exists (and who may publish).
    pub fn add_topic(&mut self, publishers: Option<BTreeSet<u32>>) -> u64 {
        let id = self.topics.len() as u64;
        self.topics.push(BTreeMap::new());
        self.changed.insert(RouteId::Topic(id));
        if let Some(slots) = publishers {
            self.publishers.insert(id, slots);
            self.changed.insert(RouteId::Publishers(id));
        }
        id
    }

    /// `slot` may publish on `topic` (whose publishers are restricted).
    pub fn join_publishers(&mut self, topic: u64, slot: u32) {
        if let Some(members) = self.publishers.get_mut(&topic) {
            if members.insert(slot) {
                self.changed.insert(RouteId::Publishers(topic));
            }
        }
    }

    /// Adds a capability set with its candidates; returns its id.
    pub fn add_capset(&mut self, members: BTreeSet<u32>) -> u64 {
        let id = self.capsets.len() as u64;
        self.capsets.push(members);
        self.changed.insert(RouteId::CapabilitySet(id));
        id
    }

    /// Adds a type with its members; returns its id.
    pub fn add_type(&mut self, members: BTreeSet<u32>) -> u64 {
        let id = self.types.len() as u64;
        self.types.push(members);
        self.changed.insert(RouteId::Type(id));
        id
    }

    /// One more subscription of `slot` matches `topic`.
    pub fn subscribe(&mut self, topic: u64, slot: u32) {
        let Some(subscribers) = self.topics.get_mut(topic as usize) else {
            return;
        };
        let count = subscribers.entry(slot).or_insert(0);
        *count += 1;
        if *count == 1 {
            self.changed.insert(RouteId::Topic(topic));
        }
    }

    /// One subscription of `slot` matching `topic` is gone.
    pub fn unsubscribe(&mut self, topic: u64, slot: u32) {
        let Some(subscribers) = self.topics.get_mut(topic as usize) else {
            return;
        };
        let Some(count) = subscribers.get_mut(&slot) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            subscribers.remove(&slot);
            self.changed.insert(RouteId::Topic(topic));
        }
    }

    /// `slot` joins a capability set (its agent has every capability of it).
    pub fn join_capset(&mut self, capset: u64, slot: u32) {
        if let Some(members) = self.capsets.get_mut(capset as usize) {
            if members.insert(slot) {
                self.changed.insert(RouteId::CapabilitySet(capset));
            }
        }
    }

    /// `slot` joins a type.
    pub fn join_type(&mut self, agent_type: u64, slot: u32) {
        if let Some(members) = self.types.get_mut(agent_type as usize) {
            if members.insert(slot) {
                self.changed.insert(RouteId::Type(agent_type));
            }
        }
    }

    /// `slot` leaves every capability set, type and publisher list it is in: its agent is
    /// leaving.
    pub fn leave_sets(&mut self, slot: u32) {
        for (&topic, members) in self.publishers.iter_mut() {
            if members.remove(&slot) {
                self.changed.insert(RouteId::Publishers(topic));
            }
        }
        for (id, members) in self.capsets.iter_mut().enumerate() {
            if members.remove(&slot) {
                self.changed.insert(RouteId::CapabilitySet(id as u64));
            }
        }
        for (id, members) in self.types.iter_mut().enumerate() {
            if members.remove(&slot) {
                self.changed.insert(RouteId::Type(id as u64));
            }
        }
    }

    /// How many slots subscribe to `topic`.
    pub fn subscriber_count(&self, topic: u64) -> usize {
        self.topics.get(topic as usize).map_or(0, BTreeMap::len)
    }

    /// A route's members, ascending (empty for a route that does not exist).
    pub fn members(&self, route: RouteId) -> Vec<u32> {
        match route {
            RouteId::Topic(id) => self
                .topics
                .get(id as usize)
                .map_or_else(Vec::new, |s| s.keys().copied().collect()),
            RouteId::CapabilitySet(id) => self
                .capsets
                .get(id as usize)
                .map_or_else(Vec::new, |s| s.iter().copied().collect()),
            RouteId::Type(id) => self
                .types
                .get(id as usize)
                .map_or_else(Vec::new, |s| s.iter().copied().collect()),
            RouteId::Publishers(id) => self
                .publishers
                .get(&id)
                .map_or_else(Vec::new, |s| s.iter().copied().collect()),
        }
    }

    /// The routes changed since the last take, each with its members now; forgets them.
    pub fn take_changes(&mut self) -> Vec<RouteChange> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|route| RouteChange {
                route,
                slots: self.members(route),
            })
            .collect()
    }

    /// Marks routes changed again: the changes taken for them never reached the router.
    pub fn mark_changed(&mut self, routes: impl IntoIterator<Item = RouteId>) {
        self.changed.extend(routes);
    }
}
