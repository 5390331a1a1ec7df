//! What the control thread knows: agents by slot, names, topics, subscriptions, capability
//! sets and types, and who receives what. The router gets the routing parts as commands: only
//! the routes a change touched ([`Registry::take_route_changes`]).

mod routes;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agentbus::control::{topic_matches, Access, TopicConfig};
use agentbus::AgentIdentifier;
use agentbus_ipc::segment::MemfdSegment;
use mio::Token;

use crate::router::{RouteChange, RouteId};
use routes::RouteBook;

/// The reserved topic the router announces attaches and deaths on.
pub const SYS_AGENTS: &str = "sys.agents";
/// The reserved topic the router raises dead-letter alerts on (topic 1).
pub const SYS_ALERTS: &str = "sys.alerts";
/// The reserved topic agentd announces lease grants and releases on (topic 2).
pub const SYS_LEASES: &str = "sys.leases";

/// One attached (or leaving) agent.
#[derive(Debug)]
pub struct AgentRecord {
    /// Its slot's epoch, bumped at its attach (1..=65535): with the slot, names this occupant;
    /// [`Registry::free`] checks it.
    pub epoch: u32,
    /// Its id, type and instance, as it attached.
    pub identity: AgentIdentifier,
    /// Its capabilities, sorted.
    pub capabilities: Vec<String>,
    /// The most tasks it declared it holds (`max_capacity` at attach); listed with its load.
    pub capacity: u32,
    /// Its process id, from `SO_PEERCRED` at attach.
    pub pid: i32,
    /// Its user id, from `SO_PEERCRED` at attach.
    pub uid: u32,
    /// The poll token of its control connection (where its replies and pushes go).
    pub token: Token,
    /// Its lane segment (kept mapped for listing its heartbeat and load).
    pub lanes: MemfdSegment,
    /// It detached or its connection closed; the router is delivering what it sent.
    pub leaving: bool,
}

/// One subscription: whose, its pattern, and the topics it matches (kept so that undoing it
/// touches those topics only).
#[derive(Debug)]
struct Subscription {
    slot: u32,
    pattern: String,
    /// Ids of the topics it matches, ascending.
    topics: Vec<u64>,
}

/// What the control thread knows of agents, topics and routes. It keeps every route's members
/// current as agents attach and leave, topics are created and patterns subscribed, each change
/// touching only what it can affect, and collects the routes that changed for
/// [`Registry::take_route_changes`].
#[derive(Debug, Default)]
pub struct Registry {
    /// Agents by slot (a leaving one stays until the router freed its slot).
    agents: Vec<Option<AgentRecord>>,
    /// The last epoch of each slot (random at start).
    pub epochs: Vec<u32>,
    /// The slot of each live agent, by agent id (a leaving agent is removed at once).
    by_id: HashMap<String, u32>,
    /// Topic names by id.
    topics: Vec<String>,
    /// How each topic behaves, by id.
    topic_configs: Vec<TopicConfig>,
    topic_ids: HashMap<String, u64>,
    /// Subscriptions by id.
    subscriptions: BTreeMap<u64, Subscription>,
    /// Subscription ids by slot.
    slot_subscriptions: Vec<BTreeSet<u64>>,
    next_subscription: u64,
    /// Capability sets (each sorted, without duplicates) by id.
    capsets: Vec<Vec<String>>,
    capset_ids: HashMap<Vec<String>, u64>,
    /// Agent types by id.
    types: Vec<String>,
    type_ids: HashMap<String, u64>,
    /// Every route's members, and which changed since last handed to the router.
    routes: RouteBook,
}

impl Registry {
    /// A registry of `slots` empty slots, with `sys.agents` as topic 0 (its route counts as
    /// changed until first taken).
    pub fn new(slots: usize) -> Registry {
        let mut r = Registry {
            agents: (0..slots).map(|_| None).collect(),
            // Each slot's epochs start at random: an address an agent kept from an agentd
            // that died (a reply to a message received before the restart) almost surely
            // names nobody here, instead of whichever agent took that slot first.
            epochs: (0..slots).map(|_| fastrand::u32(0..0xFFFF)).collect(),
            slot_subscriptions: vec![BTreeSet::new(); slots],
            next_subscription: 1,
            ..Default::default()
        };
        r.intern_topic(SYS_AGENTS);
        r.intern_topic(SYS_ALERTS);
        r.intern_topic(SYS_LEASES);
        r
    }

    /// A free slot, if any.
    pub fn free_slot(&self) -> Option<u32> {
        self.agents
            .iter()
            .position(Option::is_none)
            .map(|s| s as u32)
    }

    /// The agent in `slot` (live or leaving), if any.
    pub fn agent(&self, slot: u32) -> Option<&AgentRecord> {
        self.agents.get(slot as usize)?.as_ref()
    }

    /// Every agent in a slot (live or leaving), by slot.
    pub fn agents(&self) -> impl Iterator<Item = (u32, &AgentRecord)> {
        self.agents
            .iter()
            .enumerate()
            .filter_map(|(s, a)| a.as_ref().map(|a| (s as u32, a)))
    }

    /// The slot of the live agent named `agent_id`.
    pub fn slot_of(&self, agent_id: &str) -> Option<u32> {
        self.by_id.get(agent_id).copied()
    }

    fn live(&self) -> impl Iterator<Item = (u32, &AgentRecord)> {
        self.agents().filter(|(_, a)| !a.leaving)
    }

    fn is_live(&self, slot: u32) -> bool {
        self.agent(slot).is_some_and(|a| !a.leaving)
    }

    /// Puts an agent in `slot` (whatever was there leaves first) and adds it to the members
    /// of its type (interned here) and of every capability set it has all of.
    pub fn attach(&mut self, slot: u32, mut record: AgentRecord) {
        if slot as usize >= self.agents.len() {
            return;
        }
        if self.agents[slot as usize].is_some() {
            self.leave(slot);
        }
        record.capabilities.sort();
        record.capabilities.dedup();
        record.leaving = false;
        self.by_id.insert(record.identity.agent_id.clone(), slot);
        let agent_type = record.identity.agent_type.clone();
        let capsets: Vec<u64> = self
            .capsets
            .iter()
            .enumerate()
            .filter(|(_, caps)| has_all(&record.capabilities, caps))
            .map(|(id, _)| id as u64)
            .collect();
        let publishes: Vec<u64> = self
            .topic_configs
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                matches!(c.publishers, Access::Only(_))
                    && c.publishers.allows(&record.identity.agent_id, &agent_type)
            })
            .map(|(id, _)| id as u64)
            .collect();
        self.agents[slot as usize] = Some(record);
        let type_id = self.intern_type(&agent_type);
        self.routes.join_type(type_id, slot);
        for capset in capsets {
            self.routes.join_capset(capset, slot);
        }
        for topic in publishes {
            self.routes.join_publishers(topic, slot);
        }
    }

    /// The id of topic `name`, creating it with the default configuration: a new topic gets
    /// the subscribers whose patterns match it.
    pub fn intern_topic(&mut self, name: &str) -> u64 {
        self.intern_topic_as(name, TopicConfig::default())
    }

    /// The id of topic `name`, creating it configured as `config` (an existing topic keeps its
    /// own): a new topic gets the subscribers whose patterns match it (and who may subscribe
    /// to it), and, if its publishers are restricted, a route of the live agents who may
    /// publish on it.
    pub fn intern_topic_as(&mut self, name: &str, config: TopicConfig) -> u64 {
        if let Some(&id) = self.topic_ids.get(name) {
            return id;
        }
        let publishers = matches!(config.publishers, Access::Only(_)).then(|| {
            self.live()
                .filter(|(_, a)| allowed(&config.publishers, a))
                .map(|(s, _)| s)
                .collect()
        });
        let id = self.routes.add_topic(publishers);
        let readers: BTreeSet<u32> = self
            .live()
            .filter(|(_, a)| allowed(&config.subscribers, a))
            .map(|(s, _)| s)
            .collect();
        self.topics.push(name.into());
        self.topic_configs.push(config);
        self.topic_ids.insert(name.into(), id);
        for sub in self.subscriptions.values_mut() {
            if readers.contains(&sub.slot) && topic_matches(&sub.pattern, name) {
                sub.topics.push(id);
                self.routes.subscribe(id, sub.slot);
            }
        }
        id
    }

    /// The id of a capability set, creating it: a new one gets the live agents having all of
    /// it.
    pub fn intern_capset(&mut self, mut caps: Vec<String>) -> u64 {
        caps.sort();
        caps.dedup();
        if let Some(&id) = self.capset_ids.get(&caps) {
            return id;
        }
        let members = self
            .live()
            .filter(|(_, a)| has_all(&a.capabilities, &caps))
            .map(|(s, _)| s)
            .collect();
        let id = self.routes.add_capset(members);
        self.capsets.push(caps.clone());
        self.capset_ids.insert(caps, id);
        id
    }

    /// The id of an agent type, creating it: a new one gets the live agents of the type.
    pub fn intern_type(&mut self, agent_type: &str) -> u64 {
        if let Some(&id) = self.type_ids.get(agent_type) {
            return id;
        }
        let members = self
            .live()
            .filter(|(_, a)| a.identity.agent_type == agent_type)
            .map(|(s, _)| s)
            .collect();
        let id = self.routes.add_type(members);
        self.types.push(agent_type.into());
        self.type_ids.insert(agent_type.into(), id);
        id
    }

    /// Subscribes the live agent in `slot` to every topic, existing or to come, matching
    /// `pattern` that it may subscribe to; returns the subscription's id. Refused if no live
    /// agent is in `slot`, or if `pattern` names one existing topic (no wildcard) that the agent
    /// may not subscribe to.
    pub fn subscribe(&mut self, slot: u32, pattern: &str) -> Result<u64, SubscribeRefused> {
        if !self.is_live(slot) {
            return Err(SubscribeRefused::NotLive);
        }
        let exact = !pattern.split('.').any(|s| s == "*" || s == ">");
        if let Some(topic) = self.topic_id(pattern).filter(|_| exact) {
            if !self.may_subscribe(slot, topic) {
                return Err(SubscribeRefused::Unauthorized(
                    self.topic_configs[topic as usize].subscribers.to_string(),
                ));
            }
        }
        let id = self.next_subscription;
        self.next_subscription += 1;
        let topics: Vec<u64> = self
            .topic_names()
            .filter(|&(topic, name)| {
                topic_matches(pattern, name) && self.may_subscribe(slot, topic)
            })
            .map(|(topic, _)| topic)
            .collect();
        for &topic in &topics {
            self.routes.subscribe(topic, slot);
        }
        self.subscriptions.insert(
            id,
            Subscription {
                slot,
                pattern: pattern.into(),
                topics,
            },
        );
        self.slot_subscriptions[slot as usize].insert(id);
        Ok(id)
    }

    /// Whether the agent in `slot` may subscribe to topic `topic`.
    pub fn may_subscribe(&self, slot: u32, topic: u64) -> bool {
        self.topic_access(slot, topic, |c| &c.subscribers)
    }

    /// Whether the agent in `slot` may publish on topic `topic`.
    pub fn may_publish(&self, slot: u32, topic: u64) -> bool {
        self.topic_access(slot, topic, |c| &c.publishers)
    }

    fn topic_access(&self, slot: u32, topic: u64, which: fn(&TopicConfig) -> &Access) -> bool {
        match (self.agent(slot), self.topic_configs.get(topic as usize)) {
            (Some(a), Some(config)) => allowed(which(config), a),
            _ => false,
        }
    }

    /// Removes subscription `id` of the agent in `slot`; false if it has none by that id.
    pub fn unsubscribe(&mut self, slot: u32, id: u64) -> bool {
        if self.subscriptions.get(&id).is_none_or(|s| s.slot != slot) {
            return false;
        }
        self.remove_subscription(id);
        true
    }

    fn remove_subscription(&mut self, id: u64) {
        let Some(sub) = self.subscriptions.remove(&id) else {
            return;
        };
        if let Some(ids) = self.slot_subscriptions.get_mut(sub.slot as usize) {
            ids.remove(&id);
        }
        for topic in sub.topics {
            self.routes.unsubscribe(topic, sub.slot);
        }
    }

    /// Marks the agent in `slot` as leaving: its name, subscriptions, capability sets and type
    /// go now (routes stop naming it), its slot when the router has delivered what it sent.
    pub fn leave(&mut self, slot: u32) {
        let Some(a) = self.agents.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if a.leaving {
            return;
        }
        a.leaving = true;
        self.by_id.remove(&a.identity.agent_id);
        let ids = std::mem::take(&mut self.slot_subscriptions[slot as usize]);
        for id in ids {
            self.remove_subscription(id);
        }
        self.routes.leave_sets(slot);
    }

    /// Frees a slot the router is done with (leaving it first if it was live); `None` if
    /// `slot` does not hold an agent of `epoch`.
    pub fn free(&mut self, slot: u32, epoch: u32) -> Option<AgentRecord> {
        if self.agent(slot).is_none_or(|a| a.epoch != epoch) {
            return None;
        }
        self.leave(slot);
        self.agents[slot as usize].take()
    }

    /// The id of topic `name`, if it exists.
    pub fn topic_id(&self, name: &str) -> Option<u64> {
        self.topic_ids.get(name).copied()
    }

    /// How topic `id` behaves (`None` for an id never issued).
    pub fn topic_config(&self, id: u64) -> Option<&TopicConfig> {
        self.topic_configs.get(id as usize)
    }

    /// All topics with their names.
    pub fn topic_names(&self) -> impl Iterator<Item = (u64, &str)> {
        self.topics
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, n.as_str()))
    }

    /// How many agents subscribe to topic `id`.
    pub fn topic_subscribers(&self, id: u64) -> usize {
        self.routes.subscriber_count(id)
    }

    /// The routes whose members changed (or that were created) since the last call, each with
    /// its members now, and forgets them: what the router must be sent, and nothing more.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        self.routes.take_changes()
    }

    /// Marks routes changed again: what was taken for them did not reach the router.
    pub fn resend(&mut self, routes: impl IntoIterator<Item = RouteId>) {
        self.routes.mark_changed(routes);
    }
}

/// Why [`Registry::subscribe`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeRefused {
    /// No live agent is in the slot (it is leaving).
    NotLive,
    /// The pattern names one topic the agent may not subscribe to; who may, as listed.
    Unauthorized(String),
}

/// Whether `access` lets the agent of `record` in.
fn allowed(access: &Access, record: &AgentRecord) -> bool {
    access.allows(&record.identity.agent_id, &record.identity.agent_type)
}

/// Whether `capabilities` (sorted) holds every one of `wanted`.
fn has_all(capabilities: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|c| capabilities.binary_search(c).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::control::Principal;

    fn record(epoch: u32, agent_id: &str, agent_type: &str, caps: &[&str]) -> AgentRecord {
        AgentRecord {
            epoch,
            identity: AgentIdentifier {
                agent_id: agent_id.into(),
                agent_type: agent_type.into(),
                instance_id: None,
            },
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            capacity: 1,
            pid: 0,
            uid: 0,
            token: Token(0),
            lanes: MemfdSegment::create("registry-test", 4096).expect("a memfd"),
            leaving: false,
        }
    }

    fn strings(caps: &[&str]) -> Vec<String> {
        caps.iter().map(|c| c.to_string()).collect()
    }

    /// Every route recomputed from scratch, the way agentd did before it kept them
    /// incrementally: every pattern against every topic, every live agent against every
    /// capability set and type.
    fn recomputed(r: &Registry) -> BTreeMap<RouteId, Vec<u32>> {
        let mut routes = BTreeMap::new();
        for (id, name) in r.topic_names() {
            let mut slots: Vec<u32> = r
                .subscriptions
                .values()
                .filter(|s| r.is_live(s.slot) && topic_matches(&s.pattern, name))
                .filter(|s| r.may_subscribe(s.slot, id))
                .map(|s| s.slot)
                .collect();
            slots.sort_unstable();
            slots.dedup();
            routes.insert(RouteId::Topic(id), slots);
            let config = r.topic_config(id).unwrap();
            if config.publishers != Access::Anyone {
                let slots = r
                    .live()
                    .filter(|(_, a)| allowed(&config.publishers, a))
                    .map(|(s, _)| s)
                    .collect();
                routes.insert(RouteId::Publishers(id), slots);
            }
        }
        for (id, caps) in r.capsets.iter().enumerate() {
            let slots = r
                .live()
                .filter(|(_, a)| caps.iter().all(|c| a.capabilities.contains(c)))
                .map(|(s, _)| s)
                .collect();
            routes.insert(RouteId::CapabilitySet(id as u64), slots);
        }
        for (id, t) in r.types.iter().enumerate() {
            let slots = r
                .live()
                .filter(|(_, a)| &a.identity.agent_type == t)
                .map(|(s, _)| s)
                .collect();
            routes.insert(RouteId::Type(id as u64), slots);
        }
        routes
    }

    /// The router's table as the changes build it.
    #[derive(Debug, Default)]
    struct Router {
        routes: BTreeMap<RouteId, Vec<u32>>,
    }

    impl Router {
        /// Applies what the registry hands over; returns the routes it changed. Panics on a
        /// change that changes nothing: an unchanged route must not be resent.
        fn sync(&mut self, r: &mut Registry) -> Vec<RouteId> {
            let changes = r.take_route_changes();
            let mut routes = Vec::new();
            for c in changes {
                assert!(
                    c.slots.windows(2).all(|w| w[0] < w[1]),
                    "{c:?}: slots ascending, each once"
                );
                let before = self.routes.insert(c.route, c.slots.clone());
                assert_ne!(
                    before.as_ref(),
                    Some(&c.slots),
                    "{c:?} was resent unchanged"
                );
                routes.push(c.route);
            }
            routes
        }

        /// Applies the changes and checks the table against a full recomputation.
        fn check(&mut self, r: &mut Registry) -> Vec<RouteId> {
            let changed = self.sync(r);
            assert_eq!(self.routes, recomputed(r));
            changed
        }
    }

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

    #[test]
    fn subscribe_and_unsubscribe_send_only_the_matching_topics() {
        let mut r = Registry::new(4);
        let mut router = Router::default();
        let aapl = r.intern_topic("market.AAPL");
        let msft = r.intern_topic("market.MSFT");
        let news = r.intern_topic("news.world");
        r.attach(1, record(1, "a", "worker", &[]));
        router.check(&mut r);
        let sub = r.subscribe(1, "market.*").expect("a live slot");
        assert_eq!(
            router.check(&mut r),
            [RouteId::Topic(aapl), RouteId::Topic(msft)]
        );
        assert_eq!(router.routes[&RouteId::Topic(news)], Vec::<u32>::new());
        assert!(!r.unsubscribe(2, sub), "not the subscriber's slot");
        assert!(router.check(&mut r).is_empty());
        assert!(r.unsubscribe(1, sub));
        assert_eq!(
            router.check(&mut r),
            [RouteId::Topic(aapl), RouteId::Topic(msft)]
        );
        assert!(!r.unsubscribe(1, sub), "gone already");
        assert_eq!(
            r.subscribe(3, "market.*"),
            Err(SubscribeRefused::NotLive),
            "no agent in slot 3"
        );
        assert!(router.check(&mut r).is_empty());
    }

    #[test]
    fn two_patterns_of_one_agent_on_one_topic_count_until_both_are_gone() {
        let mut r = Registry::new(4);
        let mut router = Router::default();
        let topic = r.intern_topic("market.AAPL");
        r.attach(0, record(1, "a", "worker", &[]));
        router.check(&mut r);
        let exact = r.subscribe(0, "market.AAPL").expect("live");
        assert_eq!(router.check(&mut r), [RouteId::Topic(topic)]);
        let wild = r.subscribe(0, "market.>").expect("live");
        assert!(
            router.check(&mut r).is_empty(),
            "a second pattern adds nobody"
        );
        assert_eq!(r.topic_subscribers(topic), 1);
        assert!(r.unsubscribe(0, exact));
        assert!(
            router.check(&mut r).is_empty(),
            "the wildcard still matches"
        );
        assert_eq!(router.routes[&RouteId::Topic(topic)], [0]);
        assert!(r.unsubscribe(0, wild));
        assert_eq!(router.check(&mut r), [RouteId::Topic(topic)]);
        assert_eq!(router.routes[&RouteId::Topic(topic)], Vec::<u32>::new());
    }

    #[test]
    fn a_topic_created_after_a_wildcard_subscribe_gets_its_subscribers() {
        let mut r = Registry::new(4);
        let mut router = Router::default();
        r.attach(0, record(1, "a", "worker", &[]));
        r.attach(2, record(1, "b", "worker", &[]));
        r.subscribe(0, "market.>").expect("live");
        r.subscribe(2, "*.AAPL").expect("live");
        router.check(&mut r);
        let topic = r.intern_topic("market.AAPL");
        assert_eq!(router.check(&mut r), [RouteId::Topic(topic)]);
        assert_eq!(router.routes[&RouteId::Topic(topic)], [0, 2]);
        // A new topic nobody matches is still sent: the router learns its id was issued.
        let lonely = r.intern_topic("weather.oslo");
        assert_eq!(router.check(&mut r), [RouteId::Topic(lonely)]);
        assert_eq!(router.routes[&RouteId::Topic(lonely)], Vec::<u32>::new());
    }

    #[test]
    fn leaving_takes_an_agent_out_of_its_topics_capability_sets_and_type_only() {
        let mut r = Registry::new(4);
        let mut router = Router::default();
        let (aapl, msft) = (r.intern_topic("market.AAPL"), r.intern_topic("market.MSFT"));
        let gpu = r.intern_capset(strings(&["gpu"]));
        let cpu = r.intern_capset(strings(&["cpu"]));
        r.attach(0, record(7, "a", "trader", &["gpu"]));
        r.attach(1, record(1, "b", "quoter", &["cpu"]));
        r.subscribe(0, "market.AAPL").expect("live");
        r.subscribe(1, "market.>").expect("live");
        router.check(&mut r);
        let trader = r.intern_type("trader");
        r.leave(0);
        let changed = router.check(&mut r);
        assert_eq!(
            changed,
            [
                RouteId::Topic(aapl),
                RouteId::CapabilitySet(gpu),
                RouteId::Type(trader)
            ]
        );
        assert!(!changed.contains(&RouteId::Topic(msft)));
        assert!(!changed.contains(&RouteId::CapabilitySet(cpu)));
        assert_eq!(r.slot_of("a"), None);
        assert!(r.agent(0).is_some_and(|a| a.leaving));
        // Freeing the slot once the router is done changes no route again.
        assert!(r.free(0, 6).is_none(), "another epoch");
        assert!(r.free(0, 7).is_some());
        assert!(router.check(&mut r).is_empty());
        assert_eq!(r.free_slot(), Some(0));
    }

    #[test]
    fn capability_sets_and_types_follow_attaches_and_are_computed_once_when_new() {
        let mut r = Registry::new(8);
        let mut router = Router::default();
        r.attach(0, record(1, "a", "trader", &["gpu", "cpu"]));
        r.attach(1, record(1, "b", "trader", &["cpu"]));
        r.attach(2, record(1, "c", "quoter", &["gpu"]));
        router.check(&mut r);
        // Sets interned after the agents attached get the live agents having all of them.
        let both = r.intern_capset(strings(&["cpu", "gpu"]));
        assert_eq!(router.check(&mut r), [RouteId::CapabilitySet(both)]);
        assert_eq!(router.routes[&RouteId::CapabilitySet(both)], [0]);
        let gpu = r.intern_capset(strings(&["gpu"]));
        router.check(&mut r);
        assert_eq!(router.routes[&RouteId::CapabilitySet(gpu)], [0, 2]);
        // An attach joins only the sets it has all of, and its type.
        r.attach(5, record(1, "d", "quoter", &["gpu", "disk"]));
        let quoter = r.intern_type("quoter");
        assert_eq!(
            router.check(&mut r),
            [RouteId::CapabilitySet(gpu), RouteId::Type(quoter)]
        );
        assert_eq!(router.routes[&RouteId::Type(quoter)], [2, 5]);
        // A type nobody has yet is sent empty; the first agent of it joins it.
        let auditor = r.intern_type("auditor");
        assert_eq!(router.check(&mut r), [RouteId::Type(auditor)]);
        r.attach(3, record(1, "e", "auditor", &[]));
        assert_eq!(router.check(&mut r), [RouteId::Type(auditor)]);
    }

    #[test]
    fn a_request_that_changes_no_route_hands_the_router_nothing() {
        let mut r = Registry::new(4);
        let mut router = Router::default();
        r.intern_topic("market.AAPL");
        r.intern_capset(strings(&["gpu"]));
        r.intern_type("trader");
        r.attach(0, record(1, "a", "trader", &["gpu"]));
        r.subscribe(0, "market.AAPL").expect("live");
        router.check(&mut r);
        r.intern_topic("market.AAPL");
        r.intern_topic(SYS_AGENTS);
        r.intern_capset(strings(&["gpu", "gpu"]));
        r.intern_type("trader");
        r.subscribe(0, "market.*").expect("live");
        r.subscribe(0, "nothing.matches.this").expect("live");
        assert!(!r.unsubscribe(0, 999));
        r.leave(3);
        assert!(r.take_route_changes().is_empty());
        // A route marked for resending (its change was never queued) goes again.
        r.resend([RouteId::Topic(1)]);
        assert_eq!(r.take_route_changes()[0].route, RouteId::Topic(1));
    }

    /// A small random sequence of every operation, the router's table built from the changes
    /// checked against a full recomputation after each one (and no unchanged route resent).
    #[test]
    fn random_operations_keep_the_routes_equal_to_a_full_recomputation() {
        const SLOTS: u32 = 6;
        const STEPS: usize = 60;
        let names = ["a", "a.b", "a.c", "a.b.c", "b.b", "b.c.c", "c.a.b", "a.a"];
        let patterns = [
            "a", "a.b", "a.*", "a.>", "*.b", "*.*", ">", "*.c.>", "b.>", "a.*.c", "c.*.b",
        ];
        let caps = ["x", "y", "z"];
        let types = ["t0", "t1", "t2"];
        let mut changed = 0;
        for seed in 0..300 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut r = Registry::new(SLOTS as usize);
            let mut router = Router::default();
            let mut epoch = 0;
            let mut subscriptions: Vec<(u32, u64)> = Vec::new();
            router.check(&mut r);
            for _ in 0..STEPS {
                let slot = rng.u32(0..SLOTS);
                let some_caps = |rng: &mut fastrand::Rng| -> Vec<&str> {
                    caps.iter().copied().filter(|_| rng.bool()).collect()
                };
                match rng.u32(0..9) {
                    0 | 1 => {
                        if r.agent(slot).is_none() {
                            epoch += 1;
                            let t = types[rng.usize(0..types.len())];
                            let c = some_caps(&mut rng);
                            r.attach(slot, record(epoch, &format!("agent-{epoch}"), t, &c));
                        }
                    }
                    2 => r.leave(slot),
                    3 => {
                        let epoch = r.agent(slot).map_or(0, |a| a.epoch);
                        r.free(slot, epoch);
                    }
                    4 | 5 => {
                        let p = patterns[rng.usize(0..patterns.len())];
                        if let Ok(id) = r.subscribe(slot, p) {
                            subscriptions.push((slot, id));
                        }
                    }
                    6 if !subscriptions.is_empty() => {
                        let (owner, id) = subscriptions[rng.usize(0..subscriptions.len())];
                        // Sometimes from the wrong slot: refused, nothing changes.
                        let from = if rng.bool() { owner } else { slot };
                        r.unsubscribe(from, id);
                    }
                    7 => {
                        let name = names[rng.usize(0..names.len())];
                        // Some topics only some types may read or publish on.
                        let t = types[rng.usize(0..types.len())];
                        let config = match rng.u32(0..4) {
                            0 => TopicConfig::default().publishers([Principal::of_type(t)]),
                            1 => TopicConfig::default().subscribers([Principal::of_type(t)]),
                            _ => TopicConfig::default(),
                        };
                        r.intern_topic_as(name, config);
                    }
                    _ => {
                        if rng.bool() {
                            r.intern_capset(strings(&some_caps(&mut rng)));
                        } else {
                            r.intern_type(types[rng.usize(0..types.len())]);
                        }
                    }
                }
                if !router.check(&mut r).is_empty() {
                    changed += 1;
                }
                for (id, _) in r.topic_names() {
                    let subscribers = router.routes[&RouteId::Topic(id)].len();
                    assert_eq!(r.topic_subscribers(id), subscribers, "seed {seed}");
                }
            }
        }
        // The sequences are not mostly no-ops.
        assert!(changed > 300 * STEPS / 4, "{changed} steps changed a route");
    }
}
