//! What the control thread knows: agents by slot, names, topics, subscriptions, capability
//! sets and types, and who receives what. The router gets the routing parts as commands.

use std::collections::{BTreeMap, HashMap};

use agentbus::control::topic_matches;
use agentbus::AgentIdentifier;
use agentbus_ipc::segment::MemfdSegment;
use mio::Token;

/// The reserved topic the router announces attaches and deaths on.
pub const SYS_AGENTS: &str = "sys.agents";

/// One attached (or leaving) agent.
#[derive(Debug)]
pub struct AgentRecord {
    /// Epoch of its slot.
    pub epoch: u32,
    /// Who it is.
    pub identity: AgentIdentifier,
    /// Its capabilities, sorted.
    pub capabilities: Vec<String>,
    /// Declared capacity.
    pub capacity: u32,
    /// Its peer credentials.
    pub pid: i32,
    /// Its uid.
    pub uid: u32,
    /// Its control connection.
    pub token: Token,
    /// Its lane segment (kept mapped for listing its heartbeat and load).
    pub lanes: MemfdSegment,
    /// It detached or its connection closed; the router is delivering what it sent.
    pub leaving: bool,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    /// Agents by slot.
    pub agents: Vec<Option<AgentRecord>>,
    /// The last epoch of each slot.
    pub epochs: Vec<u32>,
    /// Live agents by id.
    pub by_id: HashMap<String, u32>,
    /// Topic names by id.
    pub topics: Vec<String>,
    topic_ids: HashMap<String, u64>,
    /// Subscriptions by id: (slot, pattern).
    pub subscriptions: BTreeMap<u64, (u32, String)>,
    next_subscription: u64,
    capsets: Vec<Vec<String>>,
    capset_ids: HashMap<Vec<String>, u64>,
    types: Vec<String>,
    type_ids: HashMap<String, u64>,
}

impl Registry {
    /// A registry of `slots` empty slots, with `sys.agents` as topic 0.
    pub fn new(slots: usize) -> Registry {
        let mut r = Registry {
            agents: (0..slots).map(|_| None).collect(),
            epochs: vec![0; slots],
            next_subscription: 1,
            ..Default::default()
        };
        r.intern_topic(SYS_AGENTS);
        r
    }

    /// A free slot, if any.
    pub fn free_slot(&self) -> Option<u32> {
        self.agents
            .iter()
            .position(Option::is_none)
            .map(|s| s as u32)
    }

    /// The id of topic `name`, creating it.
    pub fn intern_topic(&mut self, name: &str) -> u64 {
        if let Some(&id) = self.topic_ids.get(name) {
            return id;
        }
        let id = self.topics.len() as u64;
        self.topics.push(name.into());
        self.topic_ids.insert(name.into(), id);
        id
    }

    /// The id of a capability set, creating it.
    pub fn intern_capset(&mut self, mut caps: Vec<String>) -> u64 {
        caps.sort();
        caps.dedup();
        if let Some(&id) = self.capset_ids.get(&caps) {
            return id;
        }
        let id = self.capsets.len() as u64;
        self.capsets.push(caps.clone());
        self.capset_ids.insert(caps, id);
        id
    }

    /// The id of an agent type, creating it.
    pub fn intern_type(&mut self, agent_type: &str) -> u64 {
        if let Some(&id) = self.type_ids.get(agent_type) {
            return id;
        }
        let id = self.types.len() as u64;
        self.types.push(agent_type.into());
        self.type_ids.insert(agent_type.into(), id);
        id
    }

    /// Adds a subscription; returns its id.
    pub fn subscribe(&mut self, slot: u32, pattern: &str) -> u64 {
        let id = self.next_subscription;
        self.next_subscription += 1;
        self.subscriptions.insert(id, (slot, pattern.into()));
        id
    }

    fn live(&self) -> impl Iterator<Item = (u32, &AgentRecord)> {
        self.agents
            .iter()
            .enumerate()
            .filter_map(|(s, a)| a.as_ref().filter(|a| !a.leaving).map(|a| (s as u32, a)))
    }

    /// Routing for every topic: (id, subscribed slots).
    pub fn topic_routes(&self) -> Vec<(u64, Vec<u32>)> {
        self.topics
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let mut slots: Vec<u32> = self
                    .subscriptions
                    .values()
                    .filter(|(slot, pattern)| {
                        self.agents[*slot as usize]
                            .as_ref()
                            .is_some_and(|a| !a.leaving)
                            && topic_matches(pattern, name)
                    })
                    .map(|(slot, _)| *slot)
                    .collect();
                slots.sort_unstable();
                slots.dedup();
                (id as u64, slots)
            })
            .collect()
    }

    /// Routing for every capability set: (id, slots having all of it).
    pub fn capset_routes(&self) -> Vec<(u64, Vec<u32>)> {
        self.capsets
            .iter()
            .enumerate()
            .map(|(id, caps)| {
                let slots = self
                    .live()
                    .filter(|(_, a)| caps.iter().all(|c| a.capabilities.binary_search(c).is_ok()))
                    .map(|(s, _)| s)
                    .collect();
                (id as u64, slots)
            })
            .collect()
    }

    /// Routing for every type: (id, slots of that type).
    pub fn type_routes(&self) -> Vec<(u64, Vec<u32>)> {
        self.types
            .iter()
            .enumerate()
            .map(|(id, t)| {
                let slots = self
                    .live()
                    .filter(|(_, a)| &a.identity.agent_type == t)
                    .map(|(s, _)| s)
                    .collect();
                (id as u64, slots)
            })
            .collect()
    }

    /// Marks the agent in `slot` as leaving: its name and subscriptions go now, its slot when
    /// the router has delivered what it sent.
    pub fn leave(&mut self, slot: u32) {
        if let Some(a) = self.agents[slot as usize].as_mut() {
            a.leaving = true;
            self.by_id.remove(&a.identity.agent_id);
        }
        self.subscriptions.retain(|_, (s, _)| *s != slot);
    }

    /// Frees a slot the router is done with.
    pub fn free(&mut self, slot: u32, epoch: u32) -> Option<AgentRecord> {
        let matches = self.agents[slot as usize]
            .as_ref()
            .is_some_and(|a| a.epoch == epoch);
        if !matches {
            return None;
        }
        self.leave(slot);
        self.agents[slot as usize].take()
    }

    /// All topics with their names.
    pub fn topic_names(&self) -> impl Iterator<Item = (u64, &str)> {
        self.topics
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, n.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_capability_sets_ignore_order() {
        let mut r = Registry::new(4);
        assert_eq!(r.intern_topic(SYS_AGENTS), 0);
        let a = r.intern_topic("market.AAPL");
        assert_eq!(r.intern_topic("market.AAPL"), a);
        let c1 = r.intern_capset(vec!["b".into(), "a".into()]);
        let c2 = r.intern_capset(vec!["a".into(), "b".into(), "a".into()]);
        assert_eq!(c1, c2);
        assert_eq!(r.free_slot(), Some(0));
    }
}
