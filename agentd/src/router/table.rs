//! The router's view of agents and routes; the router thread is its only writer.

use agentbus::control::{AgentAddress, BackPressure};
use agentbus::lanes;
use agentbus::{AgentIdentifier, FrameHeader, RouteKind};
use agentbus_ipc::Region;

use super::budget::DeadLetterBudget;
use super::command::{RouteChange, RouteId, TopicPolicy};
use super::held::Held;

/// Up to 256 slots, as a bitset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotSet([u64; 4]);

impl SlotSet {
    /// Adds a slot.
    pub fn insert(&mut self, slot: u32) {
        self.0[(slot / 64) as usize % 4] |= 1 << (slot % 64);
    }

    /// Whether a slot is in.
    pub fn contains(&self, slot: u32) -> bool {
        self.0[(slot / 64) as usize % 4] & (1 << (slot % 64)) != 0
    }

    /// How many slots are in.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// Whether no slot is in.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// A frame some destinations of which were full: who has it already.
#[derive(Debug, Clone, Copy)]
pub struct Partial {
    /// The source lane position of the frame.
    pub position: u64,
    /// Slots delivered to (or dead-lettered for).
    pub done: SlotSet,
    /// Whether a copy was dead-lettered already.
    pub dead: bool,
}

/// One attached agent, as the router sees it.
#[derive(Debug)]
pub struct Entry {
    /// The epoch it attached with: an agent route's destination must carry it, or the frame
    /// is dead-lettered as `NoSuchAgent`.
    pub epoch: u32,
    /// Its id, type and instance as it attached: named in its `sys.agents` notices and the log.
    pub identity: AgentIdentifier,
    /// Control block (heartbeat, load), written by the agent: untrusted numbers.
    pub control: lanes::ControlBlock,
    /// Its whole lane segment: when it is removed, what is left unread in its inbound lanes is
    /// dead-lettered from here.
    pub lanes: Region,
    /// Bytes per lane.
    pub lane_capacity: usize,
    /// The most tasks it declared it holds (`max_capacity` at attach): routing by capability or
    /// type passes it over while its load is at this.
    pub capacity: u32,
    /// Its connection closed: deliver what it committed, then remove it.
    pub draining: bool,
    /// Fan-out progress per outbound lane.
    pub partial: [Option<Partial>; 4],
    /// Its dead-letter budget (an agent over it is throttled).
    pub budget: DeadLetterBudget,
    /// How it wakes the sleeping router (its eventfd, the router's flag in its control block).
    pub wake: super::AgentWake,
    /// Its agent type's index in the metrics (the header's type names).
    pub type_index: u8,
}

/// What the router keeps per slot, besides its lanes (those are in `InboundLanes` and
/// the router's outbound list, apart because a frame read in place from an outbound lane stays
/// borrowed while the slots are resolved against and updated).
#[derive(Debug)]
pub struct Slot {
    /// The agent attached there, if any.
    pub agent: Option<Entry>,
    /// Its counters (indexes in [`super::slot_counter`]), published for the control thread.
    pub counters: [u64; super::slot_counter::PER_SLOT],
    /// Topic copies held for it per priority while its lane is full (`DropOldest` topics).
    pub held: [Option<Held>; 4],
    /// Bytes of the frames taken from its lanes.
    pub bytes_sent: u64,
}

impl Slot {
    /// A slot with no agent and every counter at zero.
    pub fn free() -> Slot {
        Slot {
            agent: None,
            counters: [0; super::slot_counter::PER_SLOT],
            held: [None, None, None, None],
            bytes_sent: 0,
        }
    }
}

/// Routes by id: topic subscribers, capability-set candidates, type members.
#[derive(Debug, Default)]
pub struct Routes {
    /// Subscribers by topic id.
    pub topics: Vec<Vec<u32>>,
    /// Candidates by capability-set id.
    pub capsets: Vec<Vec<u32>>,
    /// Members by type id.
    pub types: Vec<Vec<u32>>,
    /// What to do with a copy for a full subscriber, by topic id (a topic not configured
    /// blocks).
    pub back_pressure: Vec<BackPressure>,
    /// The largest frame each topic carries, by topic id (0, or not configured: no limit).
    pub max_frame: Vec<u32>,
    /// Who may publish on each topic, by topic id (`None`, or not configured: anyone).
    pub publishers: Vec<Option<SlotSet>>,
}

impl Routes {
    /// Replaces one route's members; a route past the end of its table extends it (the ids
    /// in between, never issued yet, stay empty).
    pub fn set(&mut self, change: RouteChange) {
        let (list, id) = match change.route {
            RouteId::Publishers(id) => {
                let id = id as usize;
                if self.publishers.len() <= id {
                    self.publishers.resize(id + 1, None);
                }
                let mut allowed = SlotSet::default();
                for slot in change.slots {
                    allowed.insert(slot);
                }
                self.publishers[id] = Some(allowed);
                return;
            }
            RouteId::Topic(id) => (&mut self.topics, id),
            RouteId::CapabilitySet(id) => (&mut self.capsets, id),
            RouteId::Type(id) => (&mut self.types, id),
        };
        let id = id as usize;
        if list.len() <= id {
            list.resize_with(id + 1, Vec::new);
        }
        list[id] = change.slots;
    }

    /// Sets how topic `topic` treats a subscriber whose lane is full, and its largest frame.
    pub fn configure_topic(&mut self, topic: u64, policy: TopicPolicy) {
        let id = topic as usize;
        if self.back_pressure.len() <= id {
            self.back_pressure.resize(id + 1, BackPressure::Block);
        }
        self.back_pressure[id] = policy.back_pressure;
        if self.max_frame.len() <= id {
            self.max_frame.resize(id + 1, 0);
        }
        self.max_frame[id] = policy.max_frame;
    }

    /// How topic `topic` treats a subscriber whose lane is full.
    pub fn back_pressure(&self, topic: u64) -> BackPressure {
        self.back_pressure
            .get(topic as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// Why a frame has no destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unroutable {
    /// The agent named is not attached (or restarted under a new epoch).
    NoSuchAgent,
    /// Nobody subscribes to the topic.
    NoSubscribers,
    /// No live agent has the capabilities, or all are at capacity.
    NoCapableAgent,
    /// No live agent of the type is under capacity.
    NoAgentOfType,
    /// Nobody else is attached.
    NobodyElse,
    /// Larger than the topic's maximum message size.
    TooLarge,
    /// The sender may not publish on the topic.
    Unauthorized,
    /// A destination no agentd ever handed out (a slot past `max_agents`, a topic, capability
    /// set or type id never issued): the sender is broken or hostile, and is detached.
    Impossible,
}

impl Unroutable {
    /// A sentence for the dead letter and the error sent back.
    pub fn reason(self) -> &'static str {
        match self {
            Unroutable::NoSuchAgent => {
                "no such agent: it is not attached, or restarted since its address was resolved"
            }
            Unroutable::NoSubscribers => "no subscribers for the topic",
            Unroutable::NoCapableAgent => {
                "no live agent has every required capability and room for more work"
            }
            Unroutable::NoAgentOfType => "no live agent of that type is under its capacity",
            Unroutable::NobodyElse => "no other agent is attached",
            Unroutable::TooLarge => {
                "larger than the topic's maximum message size: send less, or use a topic configured for larger messages"
            }
            Unroutable::Unauthorized => {
                "the sender may not publish on this topic: its publishers are restricted (its configuration, in the topic listing, says who may)"
            }
            Unroutable::Impossible => {
                "impossible destination: agentd never handed it out (protocol violation; the sender is detached)"
            }
        }
    }
}

/// One pass's clock readings: monotonic (heartbeats) and realtime (message timestamps).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic clock, ns: what heartbeats and dead-letter budgets are measured against.
    pub mono: u64,
    /// Realtime ns since the epoch.
    pub rt: u64,
}

/// What resolution reads: the agents, the routes, and the inbound lanes (for backlog).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Every slot.
    pub slots: &'a [Slot],
    /// The members of every topic, capability set and type: what topic, capability and
    /// load-balanced routes resolve against.
    pub routes: &'a Routes,
    /// Inbound lanes by slot.
    pub inbound: &'a super::InboundLanes,
}

impl View<'_> {
    fn live(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize)?.agent.as_ref()
    }

    /// Whether `slot` may be given new work: attached, not leaving, beating (or sending),
    /// under capacity.
    fn available(&self, slot: u32, now: Now, heartbeat_timeout_ns: u64) -> Option<u64> {
        let e = self.live(slot)?;
        if e.draining {
            return None;
        }
        if !e.control.alive(now.mono, now.rt, heartbeat_timeout_ns) {
            return None; // UNRESPONSIVE: avoided until it beats (or sends) again
        }
        let load = e.control.load() as u64;
        (load < e.capacity as u64).then_some(load)
    }

    fn least_loaded(&self, candidates: &[u32], now: Now, hb_timeout: u64) -> Option<u32> {
        let mut best: Option<(u64, u64, u32)> = None;
        for &slot in candidates {
            if let Some(load) = self.available(slot, now, hb_timeout) {
                // Ties go to the agent with the least waiting in its inbound lanes.
                let backlog = self.inbound.backlog(slot);
                if best.is_none_or(|(l, b, _)| (load, backlog) < (l, b)) {
                    best = Some((load, backlog, slot));
                }
            }
        }
        best.map(|(_, _, slot)| slot)
    }

    /// The destinations of a frame from `source`, into `out` (cleared first).
    pub fn resolve(
        &self,
        header: &FrameHeader,
        source: u32,
        now: Now,
        heartbeat_timeout_ns: u64,
        out: &mut Vec<u32>,
    ) -> Result<(), Unroutable> {
        out.clear();
        // Every id below was issued (and its route sent here) before agentd answered the
        // request that issued it, so an id past the end of its table was never issued.
        let issued = |table: &[Vec<u32>]| {
            if (header.destination as usize) < table.len() {
                Ok(())
            } else {
                Err(Unroutable::Impossible)
            }
        };
        match header.route {
            RouteKind::Agent | RouteKind::Multicast => {
                let a = AgentAddress::from_destination(header.destination);
                if a.slot as usize >= self.slots.len() {
                    return Err(Unroutable::Impossible);
                }
                match self.live(a.slot) {
                    Some(e) if e.epoch == a.epoch => out.push(a.slot),
                    _ => return Err(Unroutable::NoSuchAgent),
                }
            }
            RouteKind::Topic => {
                issued(&self.routes.topics)?;
                let max = self
                    .routes
                    .max_frame
                    .get(header.destination as usize)
                    .copied()
                    .unwrap_or(0);
                if max > 0 && header.frame_len() > max as usize {
                    return Err(Unroutable::TooLarge);
                }
                if let Some(Some(allowed)) = self.routes.publishers.get(header.destination as usize)
                {
                    // What agentd writes itself (notices, retried dead letters of its own) is
                    // not an agent's to be refused.
                    if source != super::AGENTD_SLOT && !allowed.contains(source) {
                        return Err(Unroutable::Unauthorized);
                    }
                }
                let subs = self
                    .routes
                    .topics
                    .get(header.destination as usize)
                    .map_or(&[][..], |v| v);
                out.extend(subs.iter().copied().filter(|&s| self.live(s).is_some()));
                if out.is_empty() {
                    return Err(Unroutable::NoSubscribers);
                }
            }
            RouteKind::Capability => {
                issued(&self.routes.capsets)?;
                let c = self
                    .routes
                    .capsets
                    .get(header.destination as usize)
                    .map_or(&[][..], |v| v);
                out.push(
                    self.least_loaded(c, now, heartbeat_timeout_ns)
                        .ok_or(Unroutable::NoCapableAgent)?,
                );
            }
            RouteKind::LoadBalanced => {
                issued(&self.routes.types)?;
                let c = self
                    .routes
                    .types
                    .get(header.destination as usize)
                    .map_or(&[][..], |v| v);
                out.push(
                    self.least_loaded(c, now, heartbeat_timeout_ns)
                        .ok_or(Unroutable::NoAgentOfType)?,
                );
            }
            RouteKind::Broadcast => {
                out.extend(
                    (0..self.slots.len() as u32)
                        .filter(|&s| s != source && self.live(s).is_some_and(|e| !e.draining)),
                );
                if out.is_empty() {
                    return Err(Unroutable::NobodyElse);
                }
            }
        }
        Ok(())
    }
}
