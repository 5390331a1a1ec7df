//! The router thread: the only reader of every agent's outbound lanes and the only writer of
//! their inbound lanes.
//!
//! Each pass: apply the control thread's commands; drain lanes in strict priority order
//! (CRITICAL first), round-robin across agents, up to a batch limit per lane; copy each frame
//! into its destination inbound lane(s), stamping the source slot; then publish each touched
//! inbound lane once (one Release store, at most one wake-up). A full destination keeps the
//! frame in its source lane until its ttl (or the delivery timeout) runs out; then, as for a
//! frame with no destination at all, it becomes a dead letter. Nothing is dropped silently.

mod alerts;
mod budget;
mod command;
mod deliver;
mod held;
mod history;
mod inbound;
mod metrics;
mod table;
mod wake;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::control::BackPressure;
use agentbus::{
    AgentIdentifier, AgentStatus, FrameHeader, IdGenerator, MessageId, MessagePriority, RouteKind,
};
use agentbus_ipc::clock::{monotonic_ns, realtime_ns};
use agentbus_ipc::ring::{Consumer, ReadError};
use agentbus_ipc::wait::Wait;

use budget::BudgetState;
pub use budget::{DeadLetterBudget, DeadLetterLimit};
pub use command::{Command, NewAgent, RouteChange, RouteId, RouterEvent, TopicPolicy};
pub use deliver::agentd as agentd_identity;
pub use deliver::dead_letter;
use deliver::FrameSender;
pub use held::{Flushed, Held};
use inbound::{Copied, InboundLanes, Unwritten};
pub use table::{Entry, Now, Partial, Routes, Slot, SlotSet, Unroutable, View};
pub use wake::{AgentWake, RouterWake, Sleeper, WakeBudget, SPURIOUS_WAKES_PER_SECOND};

use crate::bus_header::{DeadKind, HeaderWords, RouterTotals, SlotMetrics, UNROUTED};
use crate::dead_letters::DeadLetterQueue;

pub use agentbus::header::AGENTD_SLOT;

/// The longest the idle router sleeps without being rung, when senders ring it (lanes with
/// doorbells): a safety net, not the wake-up mechanism. Each wake-up interrupts whatever runs on
/// that core (`agentbus bench tail` found a 10 ms slice behind 7-9% of a channel's round trips
/// over 5 us when agentd shared their cores), so it is long; what the router does on waking
/// (publish its counters and beat, refill budgets) only matters when something happens, which
/// rings it anyway.
pub const IDLE_SLICE: Duration = Duration::from_millis(100);
/// The idle router's sleep when nobody rings it (`lane_parking = false`): it polls.
pub const UNRUNG_IDLE_SLICE: Duration = Duration::from_millis(1);

/// Whether a frame has waited past its ttl (or, without one, the delivery timeout).
fn expired(header: &FrameHeader, now_rt: u64, delivery_timeout_ns: u64) -> bool {
    let limit = if header.ttl_ms > 0 {
        header.ttl_ms as u64 * 1_000_000
    } else {
        delivery_timeout_ns
    };
    now_rt.saturating_sub(header.timestamp_ns) > limit
}

/// The idle router's sleep while frames wait for a full destination lane (a `Block` topic's
/// slow subscriber, copies held for a `DropOldest` one): the reader does not ring the router
/// when it makes room, so the router looks again after this long. Spinning instead burnt a
/// whole core for as long as a subscriber stalled.
pub const ROOM_SLICE: Duration = Duration::from_millis(1);

/// A monotonic reading and what to add to a monotonic reading to get realtime ns: from
/// readings taken back to back (the realtime one between two monotonic ones, the offset taken
/// from their midpoint), so the router's realtime is the senders' (they stamp messages with
/// `CLOCK_REALTIME`). Taking the realtime reading after building the router's tables (as it
/// once was) put every routing latency and ttl about 130 us off: the metrics showed it.
fn realtime_offset() -> (u64, u64) {
    let before = monotonic_ns();
    let rt = realtime_ns();
    let after = monotonic_ns();
    let mid = before + (after - before) / 2;
    (before, rt.wrapping_sub(mid))
}

/// Why something is dead-lettered: the sentence recorded and the kind counted.
#[derive(Debug, Clone, Copy)]
struct Why<'a> {
    kind: DeadKind,
    reason: &'a str,
}

/// The dead-letter kind of a frame that could not be routed.
fn dead_kind(why: Unroutable) -> DeadKind {
    match why {
        Unroutable::TooLarge => DeadKind::TooLarge,
        Unroutable::Unauthorized => DeadKind::Unauthorized,
        Unroutable::Impossible => DeadKind::Protocol,
        Unroutable::NoSuchAgent
        | Unroutable::NoSubscribers
        | Unroutable::NoCapableAgent
        | Unroutable::NoAgentOfType
        | Unroutable::NobodyElse => DeadKind::NoRoute,
    }
}

/// What an idle router has left to do (`Router::pending`).
enum Pending {
    /// Work the next pass can do: pass at once.
    Now,
    /// Only frames waiting for room in a full lane: sleep [`ROOM_SLICE`] at most.
    ForRoom,
    /// Nothing: sleep until rung (or the idle slice ends).
    Nothing,
}

/// What the router needs from the configuration.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Frames per lane per pass.
    pub batch_limit: usize,
    /// Heartbeat age past which an agent is avoided.
    pub heartbeat_timeout: Duration,
    /// How long a frame without ttl may wait.
    pub delivery_timeout: Duration,
    /// How to wait when idle.
    pub wait: Wait,
    /// With the parking wait: how long to spin after the last frame before sleeping.
    pub spin: Duration,
    /// With the parking wait: the longest sleep ([`IDLE_SLICE`] when senders ring the router,
    /// [`UNRUNG_IDLE_SLICE`] when lanes have no doorbells).
    pub idle_slice: Duration,
    /// The core the router thread pins itself to when it starts (`None`: not pinned; a pin
    /// that fails is logged and the router runs unpinned).
    pub core: Option<usize>,
    /// How many slots the router keeps (the configured `max_agents`, 1 to 256).
    pub max_agents: usize,
    /// The topic id of `sys.agents`.
    pub sys_agents_topic: u64,
    /// The topic id of `sys.alerts`.
    pub sys_alerts_topic: u64,
    /// Dead letters one agent may cause before it is throttled.
    pub dead_letter_limit: DeadLetterLimit,
    /// Whether to record per-message metrics (routing latency, messages by type, topics) and
    /// the trace log (when the header has one).
    pub metrics: bool,
}

/// Indexes of a slot's router counters, as published in the bus header
/// ([`HeaderWords::slot_counter`]); reset, and published at once, when a slot is given to a
/// new agent.
pub mod slot_counter {
    /// Frames the router took from the slot's outbound lanes.
    pub const SENT: usize = 0;
    /// Frames delivered to every destination.
    pub const DELIVERED: usize = 1;
    /// Of those, frames dead-lettered (for at least one destination, or for all).
    pub const DEAD: usize = 2;
    /// Copies written into its inbound lanes (from any sender).
    pub const RECEIVED: usize = 3;
    /// Copies of its frames written into destinations' lanes.
    pub const COPIES: usize = 4;
    /// Copies of its frames dead-lettered at one destination (that lane failed).
    pub const COPIES_DEAD: usize = 5;
    /// Distinct destinations its finished frames reached or failed at, summed over frames:
    /// `COPIES + COPIES_DEAD = DESTINATIONS` once no frame of it waits for a full lane.
    pub const DESTINATIONS: usize = 6;
    /// Times it was throttled for making too many dead letters.
    pub const THROTTLED: usize = 7;
    /// Topic copies meant for it that its full lane could not take, dropped (dead-lettered)
    /// under the topic's back-pressure policy.
    pub const LOST: usize = 8;
    /// Signals from the agent that woke the router with nothing to send (spurious), and the
    /// signals it sent while muted for flooding.
    pub const WAKES_IGNORED: usize = 9;
    /// How many counters each slot has: slot `s`'s start at `s * PER_SLOT`.
    pub const PER_SLOT: usize = 10;
}

/// The router's links to the rest of agentd.
#[derive(Debug)]
pub struct RouterLinks {
    /// Commands from the control thread.
    pub commands: rtrb::Consumer<Command>,
    /// Events to the control thread.
    pub events: Sender<RouterEvent>,
    /// Acknowledgements of [`Command::Barrier`]s, by number. Dropped with the router when its
    /// thread ends, which tells a control thread waiting for one that none will come.
    pub acks: Sender<u64>,
    /// Wakes the control thread's poll loop.
    pub waker: Arc<mio::Waker>,
    /// The dead-letter queue the router records into; the control thread lists it.
    pub dead_letters: Arc<Mutex<DeadLetterQueue>>,
    /// The bus header's words (heartbeat, counters).
    pub header: HeaderWords,
    /// What the router sleeps on: every agent's eventfd and the control thread's waker.
    pub sleeper: Sleeper,
    /// Set by `Daemon::stop`: the router finishes its pass and returns from [`Router::run`].
    pub shutdown: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Counters {
    passes: u64,
    frames_in: u64,
    delivered: u64,
    dead: u64,
    faulted: u64,
    idle_ns: u64,
    busy_passes: u64,
    bytes_in: u64,
    dropped: u64,
}

/// The router's state; [`Router::run`] is the thread's body.
///
/// Its reading side (every slot's outbound lanes) is kept apart from `Dispatch`, the
/// rest: a frame is read in place from an outbound lane and routed, copied and accounted by
/// `Dispatch` while that lane still holds it.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    links: RouterLinks,
    /// Every slot's outbound lanes, CRITICAL first.
    outbound: Vec<Option<Vec<Consumer>>>,
    /// The slots with lanes, in slot order: a pass visits these, not every slot (an empty
    /// pass over 64 slots x 4 lanes cost 0.7-1.15 us, mostly a `%` per slot).
    attached: Vec<u32>,
    dispatch: Dispatch,
    rt_offset: u64,
    last_publish: u64,
    /// When the last pass began, monotonic ns.
    last_pass: u64,
    /// When the router went idle, if it is (moved forward as the stretch is counted).
    idle_from: Option<u64>,
}

/// Everything a frame is routed with: the slots, the inbound lanes, the routes, and the books.
#[derive(Debug)]
struct Dispatch {
    slots: Vec<Slot>,
    inbound: InboundLanes,
    routes: Routes,
    /// A frame's destinations, reused frame to frame (no allocation per frame).
    destinations: Vec<u32>,
    /// Slots to detach at the end of the pass, and why.
    faults: Vec<(u32, String)>,
    ids: IdGenerator,
    counters: Counters,
    dead_letters: Arc<Mutex<DeadLetterQueue>>,
    heartbeat_timeout_ns: u64,
    delivery_timeout_ns: u64,
    /// Holds ([`Held`]) not empty now, over every slot and priority: none, and a pass skips
    /// looking at them.
    holding: u64,
    /// Which dead letters (made by anyone) are announced on `sys.alerts`.
    alerts: alerts::Alerts,
    /// The last messages of each topic that keeps some for late joiners, by topic id.
    histories: Vec<Option<history::History>>,
    /// Per-message metrics, published with the counters.
    metrics: metrics::Metrics,
    /// The most bytes seen waiting in each inbound lane, per slot (sampled at publication).
    lane_high: Vec<[u64; 4]>,
    /// The bus header, for the trace log.
    header: HeaderWords,
}

/// What routing one frame came to.
enum Routed {
    /// Every destination has it or failed for good: pop it from its lane.
    Finished {
        /// Its sender broke the protocol with it: detach the sender.
        fault: Option<String>,
    },
    /// A destination lane is full: keep it, and retry next pass.
    Blocked,
}

/// What routing one frame (or one pass over a blocked one) did, for the books.
#[derive(Debug, Default)]
struct FrameBooks {
    /// Destinations that have it, or where it failed for good.
    done: SlotSet,
    /// Copies written.
    copies: u64,
    /// Copies dead-lettered at one destination.
    copies_dead: u64,
    /// Dead letters recorded (whole frame or one copy).
    letters: u64,
    /// Of those, copies a slow subscriber's full lane could not take, dead-lettered under the
    /// topic's policy: the subscriber's doing, so not charged to the sender's budget.
    slow_letters: u64,
    /// Whether any of it was dead-lettered.
    dead: bool,
}

impl Router {
    /// A router with `cfg.max_agents` empty slots.
    pub fn new(cfg: RouterConfig, links: RouterLinks) -> Router {
        let n = cfg.max_agents;
        let (mono, rt_offset) = realtime_offset();
        let made = crate::dead_letters::lock(&links.dead_letters).made();
        Router {
            outbound: (0..n).map(|_| None).collect(),
            attached: Vec::with_capacity(n),
            dispatch: Dispatch {
                slots: (0..n).map(|_| Slot::free()).collect(),
                inbound: InboundLanes::new(n),
                routes: Routes::default(),
                destinations: Vec::with_capacity(n),
                faults: Vec::new(),
                ids: IdGenerator::new(),
                counters: Counters::default(),
                dead_letters: Arc::clone(&links.dead_letters),
                heartbeat_timeout_ns: cfg.heartbeat_timeout.as_nanos() as u64,
                delivery_timeout_ns: cfg.delivery_timeout.as_nanos() as u64,
                holding: 0,
                alerts: alerts::Alerts::new(made),
                histories: Vec::new(),
                metrics: metrics::Metrics::new(cfg.metrics, links.header.layout().sizes),
                lane_high: vec![[0; 4]; n],
                header: links.header.clone(),
            },
            rt_offset,
            last_publish: 0,
            last_pass: mono,
            idle_from: None,
            cfg,
            links,
        }
    }

    /// Runs passes until shutdown.
    pub fn run(mut self) {
        if let Some(core) = self.cfg.core {
            if let Err(e) = agentbus_ipc::affinity::pin_current_thread(core) {
                tracing::warn!("router not pinned: {e}");
            }
        }
        let mut idle = 0u32;
        let mut idle_since = 0u64;
        while !self.links.shutdown.load(Ordering::Acquire) {
            let work = self.pass();
            if work > 0 {
                if let Some(since) = self.idle_from.take() {
                    let c = &mut self.dispatch.counters;
                    c.idle_ns += self.last_pass.saturating_sub(since);
                }
                self.dispatch.counters.busy_passes += 1;
                self.dispatch.metrics.pass(work);
                idle = 0;
            } else {
                if idle == 0 {
                    idle_since = monotonic_ns();
                    self.idle_from = Some(idle_since);
                }
                idle = idle.saturating_add(1);
                self.idle(idle, idle_since);
            }
        }
        self.dispatch.inbound.publish();
        self.publish_counters(monotonic_ns());
    }

    /// Waits after an empty pass: the `idle`-th in a row, the first at `idle_since`.
    fn idle(&mut self, idle: u32, idle_since: u64) {
        match self.cfg.wait {
            Wait::BusySpin(_) => std::hint::spin_loop(),
            Wait::Backoff(b) => {
                if idle < b.spins {
                    std::hint::spin_loop()
                } else {
                    std::thread::yield_now()
                }
            }
            Wait::Park(_) => {
                // Spin for a time budget, not a count of passes: a pass's cost grows with the
                // slots, and what matters is how long a core burns after each message
                // (`router_spin`: the wake-up latency saved against the CPU spent).
                if monotonic_ns().saturating_sub(idle_since) < self.cfg.spin.as_nanos() as u64 {
                    std::hint::spin_loop();
                    return;
                }
                // Idle: make the counters current before sleeping, so readers of the bus
                // header never see an idle router's numbers lag behind what it did.
                self.publish_counters(monotonic_ns());
                self.listen_again(monotonic_ns());
                self.flag_asleep(true);
                let slice = match self.pending() {
                    Pending::Now => {
                        self.flag_asleep(false);
                        return;
                    }
                    // Nobody rings the router when a full lane is read from: look again soon,
                    // without burning the core meanwhile.
                    Pending::ForRoom => self.cfg.idle_slice.min(ROOM_SLICE),
                    Pending::Nothing => self.cfg.idle_slice,
                };
                self.links.sleeper.sleep(slice);
                self.flag_asleep(false);
                self.check_wakes(monotonic_ns());
            }
        }
    }

    /// Sets (before sleeping) or clears (after) the router's sleeping flag for the control
    /// thread and in every agent's control block; setting ends with the fence the agents'
    /// signals pair with, so the re-check that follows sees what they sent before it.
    fn flag_asleep(&mut self, asleep: bool) {
        if asleep {
            self.links.sleeper.prepare();
        } else {
            self.links.sleeper.cancel();
        }
        for &slot in &self.attached {
            if let Some(e) = self.dispatch.slots[slot as usize].agent.as_ref() {
                if asleep {
                    e.wake.flag.set();
                } else {
                    e.wake.flag.clear();
                }
            }
        }
        if asleep {
            agentbus_ipc::wait::SleepFlag::fence();
        }
    }

    /// Drains the eventfds of the agents that woke the router; one that had nothing to send
    /// woke it for nothing, and one that does so too often is muted for the rest of the second
    /// (identified in the log and its `wakes_ignored` counter).
    fn check_wakes(&mut self, now_mono: u64) {
        for i in 0..self.links.sleeper.woken.len() {
            let slot = self.links.sleeper.woken[i];
            let Some(e) = self
                .dispatch
                .slots
                .get(slot as usize)
                .and_then(|s| s.agent.as_ref())
            else {
                continue;
            };
            e.wake.event.drain();
            let has_frames = self.outbound[slot as usize]
                .as_mut()
                .is_some_and(|lanes| lanes.iter_mut().any(|l| !matches!(l.peek(), Ok(None))));
            if has_frames {
                continue;
            }
            let state = &mut self.dispatch.slots[slot as usize];
            state.counters[slot_counter::WAKES_IGNORED] += 1;
            let Some(e) = state.agent.as_mut() else {
                continue;
            };
            if e.wake.budget.spurious(now_mono) {
                e.wake.budget.muted = true;
                self.links.sleeper.deregister(&e.wake);
                tracing::warn!(
                    slot,
                    agent = %e.identity.agent_id,
                    "the agent woke the router more than {SPURIOUS_WAKES_PER_SECOND} times in a second with nothing to send: its wake-ups are ignored for the rest of the second (its messages wait for the next pass)"
                );
            }
        }
    }

    /// Listens again to agents muted in a second that is over; what they signalled meanwhile
    /// is counted as ignored.
    fn listen_again(&mut self, now_mono: u64) {
        for &slot in &self.attached {
            let state = &mut self.dispatch.slots[slot as usize];
            let Some(e) = state.agent.as_mut() else {
                continue;
            };
            if !e.wake.budget.expired(now_mono) {
                continue;
            }
            e.wake.budget.muted = false;
            state.counters[slot_counter::WAKES_IGNORED] += e.wake.event.drain();
            if let Err(err) = self.links.sleeper.register(slot, &e.wake) {
                tracing::warn!(slot, "cannot listen to the agent's wake-ups again: {err}");
            }
        }
    }

    /// What is left to do when a pass found nothing: work for the next pass at once, only
    /// frames waiting for a full lane to make room, or nothing.
    fn pending(&mut self) -> Pending {
        if !self.links.commands.is_empty() || self.links.shutdown.load(Ordering::Acquire) {
            return Pending::Now;
        }
        let slots = &self.dispatch.slots;
        if slots
            .iter()
            .filter_map(|s| s.agent.as_ref())
            .any(|e| e.draining)
        {
            return Pending::Now;
        }
        // A throttled agent's frames are not work until its budget refills (at the next
        // publication of the counters, at the latest after one sleep slice); a lane whose
        // first frame waits for a full destination is not work until that destination reads.
        let fresh = self.outbound.iter_mut().enumerate().any(|(slot, lanes)| {
            let Some(e) = slots[slot].agent.as_ref().filter(|e| e.budget.affordable()) else {
                return false;
            };
            lanes.as_mut().is_some_and(|l| {
                l.iter_mut()
                    .enumerate()
                    .any(|(p, l)| e.partial[p].is_none() && !matches!(l.peek(), Ok(None)))
            })
        });
        if fresh {
            return Pending::Now;
        }
        let blocked = slots
            .iter()
            .filter_map(|s| s.agent.as_ref())
            .any(|e| e.partial.iter().any(Option::is_some));
        if blocked || self.dispatch.holding > 0 {
            Pending::ForRoom
        } else {
            Pending::Nothing
        }
    }

    /// One pass; returns how many frames it handled.
    pub fn pass(&mut self) -> usize {
        self.apply_commands();
        let mono = monotonic_ns();
        self.last_pass = mono;
        let now = Now {
            mono,
            rt: mono.wrapping_add(self.rt_offset),
        };
        // Each pass starts one attached agent further on, so none is always served first.
        // Slots are removed only after the loop (`handle_faults`, `finish_drained`).
        let n = self.attached.len();
        let start = (self.dispatch.counters.passes as usize) % n.max(1);
        let mut work = 0;
        for priority in 0..4 {
            if self.dispatch.holding > 0 {
                self.dispatch.flush_held(priority);
            }
            let mut k = start;
            for _ in 0..n {
                let slot = self.attached[k];
                k += 1;
                if k == n {
                    k = 0;
                }
                work += self.drain_lane(slot, priority, now);
            }
        }
        self.dispatch.raise_alerts(self.cfg.sys_alerts_topic, now);
        self.dispatch.inbound.publish();
        self.handle_faults();
        self.finish_drained();
        self.dispatch.counters.passes += 1;
        if mono.saturating_sub(self.last_publish) > 1_000_000 {
            self.publish_counters(mono);
        }
        work
    }

    fn publish_counters(&mut self, now: u64) {
        // The idle stretch so far counts now (a router idle for a whole interval shows it),
        // and the rest of it from here.
        if let Some(since) = self.idle_from.as_mut() {
            self.dispatch.counters.idle_ns += now.saturating_sub(*since);
            *since = now.max(*since);
        }
        let c = &self.dispatch.counters;
        self.links.header.publish_router(RouterTotals {
            beat: now,
            passes: c.passes,
            frames_in: c.frames_in,
            delivered: c.delivered,
            dead: c.dead,
            faulted: c.faulted,
            idle_ns: c.idle_ns,
            busy_passes: c.busy_passes,
            bytes_in: c.bytes_in,
            dropped: c.dropped,
        });
        for slot in 0..self.dispatch.slots.len() {
            self.publish_slot(slot);
        }
        let routes = &self.dispatch.routes;
        self.dispatch
            .metrics
            .publish(&self.links.header, routes.topics.len(), |id| {
                routes.topics.get(id).map_or(0, |v| v.len() as u64)
            });
        let rt = now.wrapping_add(self.rt_offset);
        // Budgets refill here, about once a millisecond, not on every pass.
        self.refill_budgets(Now { mono: now, rt });
        for e in self.dispatch.slots.iter().filter_map(|s| s.agent.as_ref()) {
            e.control.set_router_beat(rt);
        }
        self.last_publish = now;
    }

    /// Publishes slot `slot`'s counters, lanes and bytes in the header (the attach's barrier
    /// ack, a channel send after this, orders a new agent's reset before the control thread's
    /// next read).
    fn publish_slot(&mut self, slot: usize) {
        let d = &mut self.dispatch;
        let state = &d.slots[slot];
        self.links
            .header
            .publish_slot_counters(slot, &state.counters);
        let Some(e) = state.agent.as_ref() else {
            return;
        };
        let stats = d.inbound.stats(slot as u32);
        let high = &mut d.lane_high[slot];
        let mut m = SlotMetrics {
            bytes_sent: state.bytes_sent,
            bytes_received: stats.bytes,
            heartbeat: e.control.heartbeat(),
            load: e.control.load() as u64,
            in_full: stats.full,
            out_full: std::array::from_fn(|p| e.control.full_events(p)),
            lane_capacity: e.lane_capacity as u64,
            out_waiting: e.partial.iter().filter(|p| p.is_some()).count() as u64,
            ..SlotMetrics::default()
        };
        for (p, high) in high.iter_mut().enumerate() {
            let depth = d.inbound.depth(slot as u32, p);
            if stats.full[p] > 0 {
                *high = e.lane_capacity as u64;
            }
            *high = (*high).max(depth);
            m.in_depth[p] = depth;
            m.in_high[p] = *high;
        }
        self.links.header.publish_slot_metrics(slot, &m);
    }

    /// Routes up to a batch of frames from lane `priority` of the agent in `slot`; returns how
    /// many it handled. Each frame: read (peek and parse), then [`Dispatch::route`] (resolve,
    /// deliver, account), then pop unless it waits for a full destination.
    fn drain_lane(&mut self, slot: u32, priority: usize, now: Now) -> usize {
        let mut handled = 0;
        while handled < self.cfg.batch_limit {
            let Some(agent) = self.dispatch.slots[slot as usize].agent.as_ref() else {
                break;
            };
            if !agent.budget.affordable() {
                break; // throttled: its frames wait in its lanes
            }
            let sender = FrameSender {
                slot,
                epoch: agent.epoch,
                priority,
            };
            let Some(lanes) = self.outbound[slot as usize].as_mut() else {
                break;
            };
            let lane = &mut lanes[priority];
            // The position comes from the peek itself: `peek` steps over a padding frame, so a
            // position read before it would name the padding, never match on the retry, and
            // throw away the record of who already has this frame (duplicate copies).
            let (position, frame) = match lane.peek_with_position() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(ReadError::Corrupt(c)) => {
                    self.dispatch.faults.push((slot, c.to_string()));
                    break;
                }
            };
            let mut header = match FrameHeader::parse(frame) {
                Ok(h) => h,
                Err(e) => {
                    self.dispatch.faults.push((slot, e.to_string()));
                    break;
                }
            };
            let frame = &frame[..header.frame_len()];
            header.source_slot = slot;
            header.source_epoch = sender.epoch;
            header.priority = MessagePriority::ALL[priority];
            let bytes = frame.len() as u64;
            match self.dispatch.route(sender, &header, frame, position, now) {
                Routed::Blocked => break,
                Routed::Finished { fault } => {
                    lane.pop();
                    self.dispatch.counters.frames_in += 1;
                    self.dispatch.counters.bytes_in += bytes;
                    handled += 1;
                    if let Some(why) = fault {
                        self.dispatch.faults.push((slot, why));
                        break;
                    }
                }
            }
        }
        if let Some(lanes) = self.outbound[slot as usize].as_mut() {
            lanes[priority].release();
        }
        handled
    }

    /// Refills every agent's dead-letter budget; says (once per episode) who is throttled.
    fn refill_budgets(&mut self, now: Now) {
        let limit = self.cfg.dead_letter_limit;
        for (index, slot) in self.dispatch.slots.iter_mut().enumerate() {
            let Some(e) = slot.agent.as_mut() else {
                continue;
            };
            match e.budget.refill(limit, now.mono) {
                BudgetState::Open | BudgetState::Throttled { started: false } => {}
                BudgetState::Throttled { started: true } => {
                    slot.counters[slot_counter::THROTTLED] += 1;
                    tracing::warn!(
                        slot = index,
                        agent = %e.identity.agent_id,
                        "throttling an agent that makes more than {} dead letters a second (burst {}): its lanes are read only as its budget refills",
                        limit.rate,
                        limit.burst
                    );
                }
                BudgetState::Recovered { for_ns } => tracing::info!(
                    slot = index,
                    agent = %e.identity.agent_id,
                    "no longer throttled, after {} ms",
                    for_ns / 1_000_000
                ),
            }
        }
    }

    fn apply_commands(&mut self) {
        while let Ok(cmd) = self.links.commands.pop() {
            match cmd {
                Command::AddAgent(agent) => self.add(*agent),
                Command::RemoveAgent { slot, epoch, drain } => {
                    let Some(e) = self
                        .dispatch
                        .slots
                        .get_mut(slot as usize)
                        .and_then(|s| s.agent.as_mut())
                        .filter(|e| e.epoch == epoch)
                    else {
                        continue;
                    };
                    if drain {
                        e.draining = true;
                    } else {
                        self.remove(slot, None);
                    }
                }
                Command::SetRoutes(changes) => {
                    for change in changes {
                        let joined = self.dispatch.joined_with_history(&change);
                        let RouteId::Topic(topic) = change.route else {
                            self.dispatch.routes.set(change);
                            continue;
                        };
                        self.dispatch.routes.set(change);
                        if !joined.is_empty() {
                            let in_flight = self.in_flight(topic);
                            for slot in joined {
                                self.dispatch.replay_history(
                                    topic,
                                    slot,
                                    &in_flight,
                                    realtime_ns(),
                                );
                            }
                        }
                    }
                }
                Command::Redeliver(letter) => {
                    let mono = monotonic_ns();
                    let now = Now {
                        mono,
                        rt: mono.wrapping_add(self.rt_offset),
                    };
                    self.dispatch.redeliver(&letter, now);
                }
                Command::ConfigureTopic { topic, policy } => {
                    self.dispatch.configure_topic(topic, policy);
                }
                Command::Notice { topic, message } => {
                    self.dispatch.notice(topic, &message);
                }
                Command::Barrier(number) => {
                    // What the commands before it wrote (a history replayed to a new
                    // subscriber) is visible once they are acknowledged.
                    self.dispatch.inbound.publish();
                    // Nobody waits any more when the control thread has stopped.
                    let _ = self.links.acks.send(number);
                }
            }
        }
    }

    /// The frames for topic `topic` that wait in their senders' lanes for a full destination
    /// (by sender slot and message id): a new subscriber gets them when they go on, so not
    /// from the topic's history too.
    fn in_flight(&mut self, topic: u64) -> Vec<(u32, MessageId)> {
        let mut frames = Vec::new();
        for &slot in &self.attached {
            let Some(e) = self.dispatch.slots[slot as usize].agent.as_ref() else {
                continue;
            };
            let Some(lanes) = self.outbound[slot as usize].as_mut() else {
                continue;
            };
            for (priority, lane) in lanes.iter_mut().enumerate() {
                if e.partial[priority].is_none() {
                    continue;
                }
                let Ok(Some(frame)) = lane.peek() else {
                    continue;
                };
                if let Ok(h) = FrameHeader::parse(frame) {
                    if h.route == RouteKind::Topic && h.destination == topic {
                        frames.push((slot, h.message_id));
                    }
                }
            }
        }
        frames
    }

    /// Gives an attached agent its slot.
    fn add(&mut self, agent: NewAgent) {
        let index = agent.slot as usize;
        let type_index = self
            .dispatch
            .metrics
            .intern_type(&agent.identity.agent_type, &self.links.header);
        if let Some(high) = self.dispatch.lane_high.get_mut(index) {
            *high = [0; 4];
        }
        let Some(slot) = self.dispatch.slots.get_mut(index) else {
            return;
        };
        // The new occupant starts from zero, visibly at once: a listing made right after its
        // attach must not show the previous agent's numbers.
        slot.counters = [0; slot_counter::PER_SLOT];
        slot.bytes_sent = 0;
        // The agent sees a beat from its first send on.
        agent.control.set_router_beat(realtime_ns());
        if let Err(e) = self.links.sleeper.register(agent.slot, &agent.wake) {
            // Its frames are still routed at every pass, and at the idle slice at the latest.
            tracing::warn!(
                slot = agent.slot,
                "cannot listen to the agent's wake-ups: {e}"
            );
        }
        slot.agent = Some(Entry {
            wake: agent.wake,
            epoch: agent.epoch,
            identity: agent.identity,
            control: agent.control,
            lanes: agent.lanes,
            lane_capacity: agent.lane_capacity,
            capacity: agent.capacity,
            draining: false,
            partial: [None; 4],
            budget: DeadLetterBudget::new(self.cfg.dead_letter_limit, monotonic_ns()),
            type_index,
        });
        self.publish_slot(index);
        self.outbound[index] = Some(agent.outbound);
        self.dispatch.inbound.attach(agent.slot, agent.inbound);
        if let Err(at) = self.attached.binary_search(&agent.slot) {
            self.attached.insert(at, agent.slot);
        }
        self.dispatch
            .notify_sys_agents(self.cfg.sys_agents_topic, agent.slot, AgentStatus::Active);
    }

    fn handle_faults(&mut self) {
        while let Some((slot, why)) = self.dispatch.faults.pop() {
            if self.dispatch.slots[slot as usize].agent.is_some() {
                tracing::warn!(slot, "detaching a misbehaving agent: {why}");
                self.dispatch.counters.faulted += 1;
                self.remove(slot, Some(why));
            }
        }
    }

    /// Removes draining agents whose outbound lanes are empty.
    fn finish_drained(&mut self) {
        for slot in 0..self.dispatch.slots.len() {
            let draining = self.dispatch.slots[slot]
                .agent
                .as_ref()
                .is_some_and(|e| e.draining);
            if !draining {
                continue;
            }
            let empty = self.outbound[slot]
                .as_mut()
                .is_none_or(|lanes| lanes.iter_mut().all(|l| !matches!(l.peek(), Ok(Some(_)))));
            if empty {
                self.remove(slot as u32, None);
            }
        }
    }

    /// Frees a slot: what it never read becomes dead letters, `sys.agents` hears of it, and the
    /// control thread is told the slot is free.
    fn remove(&mut self, slot: u32, fault: Option<String>) {
        let index = slot as usize;
        // Frames already copied for it this pass become visible before they are read back.
        self.dispatch.inbound.detach(slot);
        let Some(entry) = self.dispatch.slots[index].agent.take() else {
            return;
        };
        if !entry.wake.budget.muted {
            self.links.sleeper.deregister(&entry.wake);
        }
        // Copies held for it go with it, counted as lost.
        let slot_state = &mut self.dispatch.slots[index];
        for held in slot_state.held.iter_mut() {
            if let Some(h) = held.take().filter(|h| !h.is_empty()) {
                slot_state.counters[slot_counter::LOST] += h.len();
                self.dispatch.holding -= 1;
            }
        }
        self.outbound[index] = None;
        self.attached.retain(|&a| a != slot);
        let now_rt = realtime_ns();
        let layout = agentbus::lanes::LaneLayout {
            capacity: entry.lane_capacity,
        };
        for ring in layout.inbound_rings(&entry.lanes).flatten() {
            let mut unread = ring.into_consumer_at_head();
            // Bounded: a lane holds at most capacity / 16 frames.
            for _ in 0..entry.lane_capacity / 16 {
                let Ok(Some(frame)) = unread.peek() else {
                    break;
                };
                if let Ok(h) = FrameHeader::parse(frame) {
                    let end = h.frame_len().min(frame.len());
                    deliver::dead_letter(
                        &self.dispatch.dead_letters,
                        &h,
                        &frame[..end],
                        Some(slot),
                        "its recipient left before reading it",
                        now_rt,
                    );
                    self.dispatch.counters.dead += 1;
                    self.dispatch.metrics.dead(DeadKind::Undeliverable);
                }
                unread.pop();
            }
        }
        let _ = self.links.events.send(RouterEvent::Gone {
            slot,
            epoch: entry.epoch,
            fault,
        });
        let _ = self.links.waker.wake();
        self.dispatch.notify_identity(
            self.cfg.sys_agents_topic,
            &entry.identity,
            slot,
            AgentStatus::Dead,
        );
    }
}

impl Dispatch {
    /// Routes one frame from `sender`, read at `position` of its lane: resolves its
    /// destinations, copies it to each that does not have it yet, dead-letters what cannot be
    /// delivered, and does the books.
    ///
    /// The books: every frame taken is counted once as delivered or dead; every copy written is
    /// counted, and when a frame is done the number of distinct destinations it reached (or
    /// failed at) is added too, so `copies + copies dead = destinations` holds per sender, and a
    /// copy written twice to one destination shows as a difference instead of hiding.
    fn route(
        &mut self,
        sender: FrameSender,
        header: &FrameHeader,
        frame: &[u8],
        position: u64,
        now: Now,
    ) -> Routed {
        // Who already has this frame, from an earlier pass that found a destination full.
        let partial = self.slots[sender.slot as usize]
            .agent
            .as_ref()
            .and_then(|e| e.partial[sender.priority])
            .filter(|pt| pt.position == position);
        let mut books = FrameBooks {
            done: partial.map_or(SlotSet::default(), |pt| pt.done),
            ..FrameBooks::default()
        };
        let mut fault = None;
        let view = View {
            slots: &self.slots,
            routes: &self.routes,
            inbound: &self.inbound,
        };
        // Resolved before the ttl is looked at: a frame for an impossible destination is a
        // protocol violation whatever timestamp its sender wrote.
        let resolved = view.resolve(
            header,
            sender.slot,
            now,
            self.heartbeat_timeout_ns,
            &mut self.destinations,
        );
        if resolved != Err(Unroutable::Impossible)
            && expired(header, now.rt, self.delivery_timeout_ns)
        {
            let reason = if partial.is_some() {
                "a destination lane stayed full until the ttl ran out"
            } else {
                "ttl expired before delivery"
            };
            let why = Why {
                kind: DeadKind::Expired,
                reason,
            };
            self.dead_letter(header, frame, None, why, now, &mut books);
        } else {
            match resolved {
                // Kept for the next subscriber instead: the topic has a history.
                Err(Unroutable::NoSubscribers) if self.keeps_history(header) => {
                    if partial.is_none() {
                        self.remember(header, frame);
                    }
                }
                Err(why) => {
                    let dead = Why {
                        kind: dead_kind(why),
                        reason: why.reason(),
                    };
                    self.dead_letter(header, frame, None, dead, now, &mut books);
                    if why == Unroutable::Impossible {
                        fault = Some(format!(
                            "it sent a frame to an impossible destination ({:?} {:#x}; {} slots)",
                            header.route,
                            header.destination,
                            self.slots.len()
                        ));
                    } else if header.message_type != agentbus::MessageType::Error {
                        self.error_back(sender, header, why, now);
                    }
                }
                Ok(()) => {
                    if partial.is_none() && self.keeps_history(header) {
                        self.remember(header, frame);
                    }
                    if self.deliver(sender, header, frame, now, &mut books) {
                        // Keep the frame; retry next pass; skip the slots that have it.
                        // Whether an earlier pass already dead-lettered a copy is kept too.
                        let dead = books.dead || partial.is_some_and(|pt| pt.dead);
                        if let Some(e) = self.slots[sender.slot as usize].agent.as_mut() {
                            e.partial[sender.priority] = Some(Partial {
                                position,
                                done: books.done,
                                dead,
                            });
                        }
                        self.account(sender.slot, header, &books);
                        return Routed::Blocked;
                    }
                }
            }
        }
        books.dead |= partial.is_some_and(|pt| pt.dead);
        self.finish(sender, header, &books);
        if self.metrics.records_frames() {
            self.record(sender, header, frame, resolved.is_ok(), &books, now);
        }
        Routed::Finished { fault }
    }

    /// Records a finished frame in the metrics (and the trace log); `resolved`: whether it had
    /// destinations.
    fn record(
        &mut self,
        sender: FrameSender,
        header: &FrameHeader,
        frame: &[u8],
        resolved: bool,
        books: &FrameBooks,
        now: Now,
    ) {
        let to = if resolved {
            metrics::destination_class(header.route, self.single_destination_type())
        } else {
            UNROUTED
        };
        let from = self.slots[sender.slot as usize]
            .agent
            .as_ref()
            .map_or(0, |e| e.type_index);
        let logged = self.metrics.routed(metrics::RoutedFrame {
            header,
            frame,
            from,
            to,
            copies: books.copies,
            letters: books.letters,
            now_rt: now.rt,
        });
        if let Some(entry) = logged {
            self.header.log_trace(&entry);
        }
    }

    /// Copies a resolved frame to each destination that does not have it yet; returns whether
    /// one was full (the frame must wait).
    fn deliver(
        &mut self,
        sender: FrameSender,
        header: &FrameHeader,
        frame: &[u8],
        now: Now,
        books: &mut FrameBooks,
    ) -> bool {
        let mut blocked = false;
        let policy = if header.route == RouteKind::Topic {
            self.routes.back_pressure(header.destination)
        } else {
            BackPressure::Block
        };
        for i in 0..self.destinations.len() {
            let destination = self.destinations[i];
            if books.done.contains(destination) {
                continue;
            }
            let holding = self.slots[destination as usize].held[sender.priority]
                .as_ref()
                .is_some_and(|h| !h.is_empty());
            // Behind copies already held for it, so that they arrive in order.
            let copied = if policy == BackPressure::DropOldest && holding {
                Copied::Full
            } else {
                self.inbound
                    .copy(destination, sender.priority, header, frame)
            };
            match copied {
                Copied::Full if policy == BackPressure::DropOldest => {
                    self.hold(destination, sender.priority, header, frame);
                    books.done.insert(destination);
                    books.copies += 1;
                }
                Copied::Delivered => {
                    books.done.insert(destination);
                    books.copies += 1;
                    self.slots[destination as usize].counters[slot_counter::RECEIVED] += 1;
                }
                Copied::Full if policy == BackPressure::DeadLetterSlow => {
                    let reason = self.slow_subscriber(destination);
                    let why = Why {
                        kind: DeadKind::SlowSubscriber,
                        reason: &reason,
                    };
                    self.dead_letter(header, frame, Some(destination), why, now, books);
                    self.counters.dropped += 1;
                    books.slow_letters += 1;
                    books.copies_dead += 1;
                    books.done.insert(destination);
                    self.slots[destination as usize].counters[slot_counter::LOST] += 1;
                }
                Copied::Full => blocked = true,
                Copied::Gone | Copied::TooLarge(_) | Copied::Corrupt(_) => {
                    let why = copied.failure().unwrap_or_default();
                    let kind = if matches!(copied, Copied::Corrupt(_)) {
                        DeadKind::Protocol
                    } else {
                        DeadKind::Undeliverable
                    };
                    let dead = Why { kind, reason: &why };
                    self.dead_letter(header, frame, Some(destination), dead, now, books);
                    books.copies_dead += 1;
                    books.done.insert(destination);
                    if matches!(copied, Copied::Corrupt(_)) {
                        self.faults.push((destination, why));
                    }
                }
            }
        }
        blocked
    }

    /// Configures topic `topic` (created just now): its routing, and its history if it keeps
    /// one.
    fn configure_topic(&mut self, topic: u64, policy: TopicPolicy) {
        self.routes.configure_topic(topic, policy);
        let id = topic as usize;
        if policy.history > 0 {
            if self.histories.len() <= id {
                self.histories.resize_with(id + 1, || None);
            }
            self.histories[id] = Some(history::History::new(
                policy.history as usize,
                policy.history_bytes,
            ));
        }
    }

    /// Whether `header` is a topic message whose topic keeps a history.
    fn keeps_history(&self, header: &FrameHeader) -> bool {
        header.route == RouteKind::Topic
            && self
                .histories
                .get(header.destination as usize)
                .is_some_and(Option::is_some)
    }

    /// Keeps a topic message, as routed, in its topic's history.
    fn remember(&mut self, header: &FrameHeader, frame: &[u8]) {
        if let Some(Some(h)) = self.histories.get_mut(header.destination as usize) {
            h.record(header, frame);
        }
    }

    /// The slots `change` adds to a topic that keeps a history (they are to be given it),
    /// live ones only; none for any other change.
    fn joined_with_history(&self, change: &RouteChange) -> Vec<u32> {
        let RouteId::Topic(topic) = change.route else {
            return Vec::new();
        };
        let kept = self
            .histories
            .get(topic as usize)
            .and_then(Option::as_ref)
            .is_some_and(|h| !h.is_empty());
        if !kept {
            return Vec::new();
        }
        let before = self
            .routes
            .topics
            .get(topic as usize)
            .map_or(&[][..], |v| v);
        change
            .slots
            .iter()
            .copied()
            .filter(|s| !before.contains(s))
            .filter(|&s| {
                self.slots
                    .get(s as usize)
                    .is_some_and(|s| s.agent.is_some())
            })
            .collect()
    }

    /// Writes topic `topic`'s history, oldest first, into the lanes of `slot`, a new
    /// subscriber: what its lanes cannot take, and what its own ttl ran out for, is not
    /// delivered (the first counted against the subscriber as lost); nor are the frames
    /// `in_flight` (sender slot, message id), which reach it when they go on.
    fn replay_history(
        &mut self,
        topic: u64,
        slot: u32,
        in_flight: &[(u32, MessageId)],
        now_rt: u64,
    ) {
        let Some(Some(history)) = self.histories.get(topic as usize) else {
            return;
        };
        for frame in history.frames() {
            let Ok(header) = FrameHeader::parse(frame) else {
                continue; // written by `History::record` from a parsed header
            };
            if header.ttl_ms > 0 && expired(&header, now_rt, 0) {
                continue;
            }
            if in_flight.contains(&(header.source_slot, header.message_id)) {
                continue;
            }
            let priority = (header.priority as usize).min(3);
            let counter = match self.inbound.copy(slot, priority, &header, frame) {
                Copied::Delivered => slot_counter::RECEIVED,
                _ => slot_counter::LOST,
            };
            self.slots[slot as usize].counters[counter] += 1;
        }
    }

    /// Holds a copy for the subscriber in `slot`, whose lane `priority` is full (a
    /// `DropOldest` topic), dropping its oldest held copies if needed (counted as lost).
    fn hold(&mut self, slot: u32, priority: usize, header: &FrameHeader, frame: &[u8]) {
        let slot_state = &mut self.slots[slot as usize];
        let capacity = slot_state.agent.as_ref().map_or(0, |e| e.lane_capacity);
        let held = &mut slot_state.held[priority];
        if held.is_none() {
            // Once per subscriber and priority, the first time it is found slow.
            *held = Held::new(capacity);
        }
        let Some(held) = held.as_mut() else {
            slot_state.counters[slot_counter::LOST] += 1;
            self.counters.dropped += 1;
            return;
        };
        let was_empty = held.is_empty();
        let dropped = held.push(header, frame);
        slot_state.counters[slot_counter::LOST] += dropped;
        self.counters.dropped += dropped;
        if was_empty && !held.is_empty() {
            self.holding += 1;
        }
    }

    /// Writes held copies into lane `priority` of every subscriber that has some, as far as
    /// their lanes take them.
    fn flush_held(&mut self, priority: usize) {
        for slot in 0..self.slots.len() {
            let Some(held) = self.slots[slot].held[priority].as_mut() else {
                continue;
            };
            if held.is_empty() {
                continue;
            }
            let done = held.flush(&mut self.inbound, slot as u32, priority);
            let emptied = held.is_empty();
            let counters = &mut self.slots[slot].counters;
            counters[slot_counter::RECEIVED] += done.delivered;
            counters[slot_counter::LOST] += done.dropped;
            self.counters.dropped += done.dropped;
            if emptied {
                self.holding -= 1;
            }
        }
    }

    /// Why a copy for the slow subscriber in `slot` was dead-lettered, naming it.
    fn slow_subscriber(&self, slot: u32) -> String {
        let name = self.slots[slot as usize]
            .agent
            .as_ref()
            .map_or("?", |e| e.identity.agent_id.as_str());
        format!(
            "subscriber {name:?} (slot {slot}) is not keeping up: its lane was full, and the topic's back-pressure policy is dead-letter-slow"
        )
    }

    /// Records a dead letter of `header`'s frame (at `destination`, or the whole frame).
    fn dead_letter(
        &mut self,
        header: &FrameHeader,
        frame: &[u8],
        destination: Option<u32>,
        why: Why<'_>,
        now: Now,
        books: &mut FrameBooks,
    ) {
        deliver::dead_letter(
            &self.dead_letters,
            header,
            frame,
            destination,
            why.reason,
            now.rt,
        );
        self.metrics.dead(why.kind);
        books.letters += 1;
        books.dead = true;
    }

    /// Routes a dead letter's frame again, from its original sender: copied to every destination
    /// its header resolves to now; where that fails (no destination, a full or gone lane), it
    /// is dead-lettered anew with one retry more.
    fn redeliver(&mut self, letter: &crate::dead_letters::DeadLetter, now: Now) {
        let retries = letter.info.retries + 1;
        let frame = &letter.frame[..];
        let Ok(header) = FrameHeader::parse(frame) else {
            return; // recorded from a parsed header: cannot happen
        };
        let frame = &frame[..header.frame_len().min(frame.len())];
        let again = |this: &mut Dispatch, destination: Option<u32>, why: &str| {
            let reason = format!("retry {retries}: {why}");
            let mut letter = deliver::letter(&header, frame, destination, &reason, now.rt);
            letter.info.retries = retries;
            deliver::record(&this.dead_letters, letter);
            this.counters.dead += 1;
            this.metrics.dead(DeadKind::RetryFailed);
        };
        let view = View {
            slots: &self.slots,
            routes: &self.routes,
            inbound: &self.inbound,
        };
        let resolved = view.resolve(
            &header,
            header.source_slot,
            now,
            self.heartbeat_timeout_ns,
            &mut self.destinations,
        );
        if let Err(why) = resolved {
            again(self, None, why.reason());
            return;
        }
        let priority = header.priority as usize;
        for i in 0..self.destinations.len() {
            let destination = self.destinations[i];
            match self.inbound.copy(destination, priority, &header, frame) {
                Copied::Delivered => {
                    self.counters.delivered += 1;
                    self.slots[destination as usize].counters[slot_counter::RECEIVED] += 1;
                }
                copied => {
                    let why = copied
                        .failure()
                        .unwrap_or_else(|| "its lane was full".into());
                    again(self, Some(destination), &why);
                }
            }
        }
    }

    /// Tells the subscribers of `sys.alerts` (`topic`) about the dead letters not yet
    /// announced, if this second's notices allow. A subscriber whose lane is full misses the
    /// notice: never a dead letter about a dead-letter notice.
    fn raise_alerts(&mut self, topic: u64, now: Now) {
        let Some(subscribers) = self.routes.topics.get(topic as usize) else {
            return;
        };
        if subscribers.is_empty() {
            return;
        }
        let Some(due) = self.alerts.due(now.rt) else {
            return;
        };
        let (header, message) = {
            let queue = crate::dead_letters::lock(&self.dead_letters);
            let first = queue.first_from(due.from).map(|l| {
                (
                    agentbus::MessageId(l.info.message_id),
                    l.info.reason.as_str(),
                )
            });
            alerts::notice(&mut self.ids, topic, now.rt, due, first)
        };
        let priority = MessagePriority::High as usize;
        for i in 0..self.routes.topics[topic as usize].len() {
            let subscriber = self.routes.topics[topic as usize][i];
            if self
                .inbound
                .write(subscriber, priority, &header, &message)
                .is_ok()
            {
                self.counters.delivered += 1;
            }
        }
    }

    /// Writes agentd's `message` to every subscriber of `topic` (one that has no room misses
    /// it: never a dead letter about a notice).
    fn notice(&mut self, topic: u64, message: &agentbus::Message) {
        let Some(subscribers) = self.routes.topics.get(topic as usize) else {
            return;
        };
        if subscribers.is_empty() {
            return;
        }
        let header = deliver::notice_header(&mut self.ids, topic, message, realtime_ns());
        let priority = (header.priority as usize).min(3);
        for i in 0..self.routes.topics[topic as usize].len() {
            let subscriber = self.routes.topics[topic as usize][i];
            if self
                .inbound
                .write(subscriber, priority, &header, message)
                .is_ok()
            {
                self.counters.delivered += 1;
            }
        }
    }

    /// Tells `sender` its frame could not be routed, and why.
    fn error_back(&mut self, sender: FrameSender, failed: &FrameHeader, why: Unroutable, now: Now) {
        let (header, message) =
            deliver::unroutable_error(&mut self.ids, sender, failed, why, now.rt);
        if let Err(e) = self
            .inbound
            .write(sender.slot, sender.priority, &header, &message)
        {
            // Its own lane is full: it is not reading its errors. The dead letter (logged,
            // rate-limited) already records the failure; a line per lost error would not be.
            tracing::debug!(
                sender = sender.slot,
                "could not tell the sender its message was unroutable: {e}"
            );
        }
    }

    /// Counts what routing one frame (or one pass over a blocked one) did for `sender`, and
    /// spends its dead-letter budget.
    fn account(&mut self, sender: u32, header: &FrameHeader, books: &FrameBooks) {
        self.counters.delivered += books.copies;
        self.counters.dead += books.letters;
        self.metrics.delivered(header, books.copies, books.letters);
        let slot = &mut self.slots[sender as usize];
        slot.counters[slot_counter::COPIES] += books.copies;
        slot.counters[slot_counter::COPIES_DEAD] += books.copies_dead;
        if let Some(e) = slot.agent.as_mut() {
            for _ in 0..books.letters - books.slow_letters {
                e.budget.spend();
            }
        }
    }

    /// The books of a finished frame: no longer partial, counted once as sent and as
    /// delivered or dead.
    fn finish(&mut self, sender: FrameSender, header: &FrameHeader, books: &FrameBooks) {
        if let Some(e) = self.slots[sender.slot as usize].agent.as_mut() {
            e.partial[sender.priority] = None;
        }
        self.account(sender.slot, header, books);
        let slot = &mut self.slots[sender.slot as usize];
        slot.bytes_sent += header.frame_len() as u64;
        let counters = &mut slot.counters;
        counters[slot_counter::SENT] += 1;
        counters[slot_counter::DESTINATIONS] += books.done.len();
        if books.dead {
            counters[slot_counter::DEAD] += 1;
        } else {
            counters[slot_counter::DELIVERED] += 1;
        }
    }

    /// The type index of the frame's only destination, when it has exactly one.
    fn single_destination_type(&self) -> Option<u8> {
        match self.destinations[..] {
            [d] => self
                .slots
                .get(d as usize)
                .and_then(|s| s.agent.as_ref())
                .map(|e| e.type_index),
            _ => None,
        }
    }

    fn notify_sys_agents(&mut self, topic: u64, slot: u32, status: AgentStatus) {
        if let Some(identity) = self.slots[slot as usize]
            .agent
            .as_ref()
            .map(|e| e.identity.clone())
        {
            self.notify_identity(topic, &identity, slot, status);
        }
    }

    /// Tells the subscribers of `sys.agents` (`topic`), but the agent itself, that the agent
    /// `identity` in `slot` attached or died.
    fn notify_identity(
        &mut self,
        topic: u64,
        identity: &AgentIdentifier,
        slot: u32,
        status: AgentStatus,
    ) {
        let subscribers: Vec<u32> = self
            .routes
            .topics
            .get(topic as usize)
            .map_or(Vec::new(), |v| {
                v.iter().copied().filter(|&s| s != slot).collect()
            });
        if subscribers.is_empty() {
            return;
        }
        let (header, message) =
            deliver::agents_notice(&mut self.ids, topic, identity, slot, status);
        let priority = MessagePriority::High as usize;
        for subscriber in subscribers {
            match self.inbound.write(subscriber, priority, &header, &message) {
                Ok(()) => self.counters.delivered += 1,
                Err(Unwritten::Gone) => {}
                Err(e) => {
                    let why = format!("sys.agents notification not delivered: {e}");
                    deliver::dead_letter(
                        &self.dead_letters,
                        &header,
                        &[],
                        Some(subscriber),
                        &why,
                        header.timestamp_ns,
                    );
                    self.counters.dead += 1;
                    self.metrics.dead(DeadKind::Undeliverable);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routers_realtime_is_the_senders_realtime() {
        // The best of a few tries: a preemption between two readings is the machine's noise.
        let error = (0..20)
            .map(|_| {
                let (_, offset) = realtime_offset();
                let mono = monotonic_ns();
                let rt = realtime_ns();
                mono.wrapping_add(offset).abs_diff(rt)
            })
            .min()
            .unwrap();
        assert!(error < 20_000, "the router's realtime is {error} ns off");
    }
}
