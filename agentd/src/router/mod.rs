//! The router thread: the only reader of every agent's outbound lanes and the only writer of
//! their inbound lanes.
//!
//! Each pass: apply the control thread's commands; drain lanes in strict priority order
//! (CRITICAL first), round-robin across agents, up to a batch limit per lane; copy each frame
//! into its destination inbound lane(s), stamping the source slot; then publish each touched
//! inbound lane once (one Release store, at most one wake-up). A full destination keeps the
//! frame in its source lane until its ttl (or the delivery timeout) runs out; then, as for a
//! frame with no destination at all, it becomes a dead letter. Nothing is dropped silently.

mod budget;
mod command;
mod deliver;
mod table;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{FrameHeader, IdGenerator, MessagePriority};
use agentbus_ipc::clock::{monotonic_ns, realtime_ns};
use agentbus_ipc::ring::ReadError;
use agentbus_ipc::wait::Wait;
use agentbus_ipc::words::{SharedDoorbell, WordTable};

pub use budget::DeadLetterLimit;
use budget::{BudgetState, DeadLetterBudget};
pub use command::{Command, NewAgent, RouterEvent};
use deliver::Outcome;
pub use table::{Entry, Now, Partial, Routes, SlotSet, Unroutable, View};

use crate::bus_header::word;
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
    /// Core to pin to.
    pub core: Option<usize>,
    /// Slots.
    pub max_agents: usize,
    /// The topic id of `sys.agents`.
    pub sys_agents_topic: u64,
    /// Dead letters one agent may cause before it is throttled.
    pub dead_letter_limit: DeadLetterLimit,
}

/// Per-slot counters the router publishes for the control thread (see [`slot_counter`]).
/// Reset, and published at once, when a slot is given to a new agent.
#[derive(Debug)]
pub struct SlotCounters {
    words: Vec<std::sync::atomic::AtomicU64>,
}

/// Indexes of [`SlotCounters`] per slot.
pub mod slot_counter {
    /// Frames taken.
    pub const SENT: usize = 0;
    /// Frames delivered to every destination.
    pub const DELIVERED: usize = 1;
    /// Frames dead-lettered.
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
    /// Counters per slot.
    pub const PER_SLOT: usize = 8;
}

impl SlotCounters {
    /// Counters for `slots` slots.
    pub fn new(slots: usize) -> SlotCounters {
        SlotCounters {
            words: (0..slots * slot_counter::PER_SLOT)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }

    /// One counter of a slot.
    pub fn get(&self, slot: u32, which: usize) -> u64 {
        self.words
            .get(slot as usize * slot_counter::PER_SLOT + which)
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
}

/// The router's links to the rest of agentd.
#[derive(Debug)]
pub struct RouterLinks {
    /// Commands from the control thread.
    pub commands: rtrb::Consumer<Command>,
    /// Events to the control thread.
    pub events: Sender<RouterEvent>,
    /// Wakes the control thread's poll loop.
    pub waker: Arc<mio::Waker>,
    /// The dead-letter queue.
    pub dead_letters: Arc<Mutex<DeadLetterQueue>>,
    /// The bus header's words (heartbeat, counters).
    pub header: WordTable,
    /// The doorbell the router sleeps on.
    pub bell: SharedDoorbell,
    /// Set to stop.
    pub shutdown: Arc<AtomicBool>,
    /// Per-slot counters, published for the control thread.
    pub slot_counters: Arc<SlotCounters>,
}

#[derive(Debug, Default)]
struct Counters {
    passes: u64,
    frames_in: u64,
    delivered: u64,
    dead: u64,
    faulted: u64,
}

/// The router's state; [`Router::run`] is the thread's body.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    links: RouterLinks,
    entries: Vec<Option<Entry>>,
    outbound: Vec<Option<Vec<agentbus_ipc::ring::Consumer>>>,
    inbound: Vec<Option<Vec<agentbus_ipc::ring::Producer>>>,
    /// The slots with lanes, in slot order: a pass visits these, not every slot (an empty
    /// pass over 64 slots x 4 lanes cost 0.7-1.15 us, mostly a `%` per slot).
    attached: Vec<u32>,
    routes: Routes,
    touched: Vec<(u32, usize)>,
    touched_mask: Vec<u8>,
    scratch: Vec<u32>,
    faults: Vec<(u32, String)>,
    ids: IdGenerator,
    counters: Counters,
    slots: Vec<[u64; slot_counter::PER_SLOT]>,
    rt_offset: u64,
    last_publish: u64,
}

impl Router {
    /// A router with `cfg.max_agents` empty slots.
    pub fn new(cfg: RouterConfig, links: RouterLinks) -> Router {
        let n = cfg.max_agents;
        let mono = monotonic_ns();
        Router {
            entries: (0..n).map(|_| None).collect(),
            outbound: (0..n).map(|_| None).collect(),
            inbound: (0..n).map(|_| None).collect(),
            attached: Vec::with_capacity(n),
            routes: Routes::default(),
            touched: Vec::with_capacity(n * 4),
            touched_mask: vec![0; n],
            scratch: Vec::with_capacity(n),
            faults: Vec::new(),
            ids: IdGenerator::new(),
            counters: Counters::default(),
            slots: vec![[0; slot_counter::PER_SLOT]; n],
            rt_offset: realtime_ns().wrapping_sub(mono),
            last_publish: 0,
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
            if self.pass() > 0 {
                idle = 0;
            } else {
                if idle == 0 {
                    idle_since = monotonic_ns();
                }
                idle = idle.saturating_add(1);
                self.idle(idle, idle_since);
            }
        }
        self.publish_touched();
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
                let bell = self.links.bell.clone();
                let seq = bell.bell().prepare();
                if self.has_work() {
                    bell.bell().cancel();
                    return;
                }
                bell.bell().sleep(seq, self.cfg.idle_slice);
                bell.bell().cancel();
            }
        }
    }

    fn has_work(&mut self) -> bool {
        if !self.links.commands.is_empty() || self.links.shutdown.load(Ordering::Acquire) {
            return true;
        }
        if self
            .entries
            .iter()
            .flatten()
            .any(|e| e.draining || e.partial.iter().any(Option::is_some))
        {
            return true;
        }
        // A throttled agent's frames are not work until its budget refills (at the next
        // publication of the counters, at the latest after one sleep slice).
        let entries = &self.entries;
        self.outbound.iter_mut().enumerate().any(|(slot, lanes)| {
            let open = entries[slot]
                .as_ref()
                .is_some_and(|e| e.budget.affordable());
            open && lanes
                .as_mut()
                .is_some_and(|l| l.iter_mut().any(|l| !matches!(l.peek(), Ok(None))))
        })
    }

    /// One pass; returns how many frames it handled.
    pub fn pass(&mut self) -> usize {
        self.apply_commands();
        let mono = monotonic_ns();
        let now = Now {
            mono,
            rt: mono.wrapping_add(self.rt_offset),
        };
        // Each pass starts one attached agent further on, so none is always served first.
        // Slots are removed only after the loop (`handle_faults`, `finish_drained`).
        let n = self.attached.len();
        let start = (self.counters.passes as usize) % n.max(1);
        let mut work = 0;
        for p in 0..4 {
            let mut k = start;
            for _ in 0..n {
                let s = self.attached[k];
                k += 1;
                if k == n {
                    k = 0;
                }
                work += self.drain_lane(s, p, now);
            }
        }
        self.publish_touched();
        self.handle_faults();
        self.finish_drained();
        self.counters.passes += 1;
        if mono.saturating_sub(self.last_publish) > 1_000_000 {
            self.publish_counters(mono);
        }
        work
    }

    fn publish_counters(&mut self, now: u64) {
        let h = &self.links.header;
        // Relaxed: monitors read these as independent gauges.
        h.store(word::ROUTER_BEAT, now, Ordering::Relaxed);
        h.store(word::PASSES, self.counters.passes, Ordering::Relaxed);
        h.store(word::FRAMES_IN, self.counters.frames_in, Ordering::Relaxed);
        h.store(word::DELIVERED, self.counters.delivered, Ordering::Relaxed);
        h.store(word::DEAD, self.counters.dead, Ordering::Relaxed);
        h.store(word::FAULTED, self.counters.faulted, Ordering::Relaxed);
        for slot in 0..self.slots.len() {
            self.publish_slot(slot);
        }
        let rt = now.wrapping_add(self.rt_offset);
        // Budgets refill here, about once a millisecond, not on every pass.
        self.refill_budgets(Now { mono: now, rt });
        for e in self.entries.iter().flatten() {
            // Release: pairs with the client's Acquire load when it checks agentd is there.
            e.control
                .store(agentbus::lanes::word::ROUTER_BEAT, rt, Ordering::Release);
        }
        self.last_publish = now;
    }

    fn publish_slot(&self, slot: usize) {
        for (i, v) in self.slots[slot].iter().enumerate() {
            // Relaxed: independent gauges; the attach ack (a channel send) orders the reset
            // before the control thread's next read.
            self.links.slot_counters.words[slot * slot_counter::PER_SLOT + i]
                .store(*v, Ordering::Relaxed);
        }
    }

    fn publish_touched(&mut self) {
        for (d, p) in self.touched.drain(..) {
            if let Some(lanes) = self.inbound[d as usize].as_mut() {
                lanes[p].publish();
            }
            self.touched_mask[d as usize] = 0;
        }
    }

    /// Routes up to a batch of frames from lane `p` of agent `s`; returns how many it handled.
    ///
    /// The books: every frame taken is counted once as delivered or dead; every copy written is
    /// counted, and when a frame is done the number of distinct destinations it reached (or
    /// failed at) is added too, so `copies + copies dead = destinations` holds per sender, and a
    /// copy written twice to one destination shows as a difference instead of hiding.
    fn drain_lane(&mut self, s: u32, p: usize, now: Now) -> usize {
        let mut handled = 0;
        let hb_timeout = self.cfg.heartbeat_timeout.as_nanos() as u64;
        let delivery_timeout = self.cfg.delivery_timeout.as_nanos() as u64;
        let su = s as usize;
        while handled < self.cfg.batch_limit {
            if !self.entries[su]
                .as_ref()
                .is_some_and(|e| e.budget.affordable())
            {
                break; // throttled: its frames wait in its lanes
            }
            let Some(lanes) = self.outbound[su].as_mut() else {
                break;
            };
            // The position comes from the peek itself: `peek` steps over a padding frame, so a
            // position read before it would name the padding, never match on the retry, and
            // throw away the record of who already has this frame (duplicate copies).
            let (position, frame) = match lanes[p].peek_with_position() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(ReadError::Corrupt(c)) => {
                    self.faults.push((s, c.to_string()));
                    break;
                }
            };
            let header = match FrameHeader::parse(frame) {
                Ok(h) => h,
                Err(e) => {
                    self.faults.push((s, e.to_string()));
                    break;
                }
            };
            let frame = &frame[..header.frame_len()];
            let entry_epoch = self.entries[su].as_ref().map_or(0, |e| e.epoch);
            let mut header = header;
            header.source_slot = s;
            header.source_epoch = entry_epoch;
            header.priority = MessagePriority::ALL[p];
            // Who already has this frame, from an earlier pass that found a destination full.
            let partial = self.entries[su]
                .as_ref()
                .and_then(|e| e.partial[p])
                .filter(|pt| pt.position == position);
            let mut done = partial.map_or(SlotSet::default(), |pt| pt.done);
            let mut frame_dead = false;
            let mut letters = 0u64;
            let mut copies = 0u64;
            let mut copies_dead = 0u64;
            let mut fault = None;
            let view = View {
                entries: &self.entries,
                routes: &self.routes,
                inbound: &self.inbound,
            };
            // Resolved before the ttl is looked at: a frame for an impossible destination is a
            // protocol violation whatever timestamp its sender wrote.
            let resolved = view.resolve(&header, s, now, hb_timeout, &mut self.scratch);
            if resolved != Err(Unroutable::Impossible) && expired(&header, now.rt, delivery_timeout)
            {
                deliver::dead_letter(
                    &self.links.dead_letters,
                    &header,
                    frame,
                    None,
                    if partial.is_some() {
                        "a destination lane stayed full until the ttl ran out"
                    } else {
                        "ttl expired before delivery"
                    },
                    now.rt,
                );
                letters += 1;
                frame_dead = true;
            } else {
                match resolved {
                    Err(why) => {
                        deliver::dead_letter(
                            &self.links.dead_letters,
                            &header,
                            frame,
                            None,
                            why.reason(),
                            now.rt,
                        );
                        letters += 1;
                        frame_dead = true;
                        if why == Unroutable::Impossible {
                            fault = Some(format!(
                                "it sent a frame to an impossible destination ({:?} {:#x}; {} slots)",
                                header.route,
                                header.destination,
                                self.entries.len()
                            ));
                        } else if header.message_type != agentbus::MessageType::Error {
                            deliver::error_back(
                                &mut self.inbound,
                                &mut self.touched,
                                &mut self.touched_mask,
                                &mut self.ids,
                                (s, entry_epoch, p),
                                &header,
                                why.reason(),
                                now.rt,
                            );
                        }
                    }
                    Ok(()) => {
                        let mut blocked = false;
                        for &d in &self.scratch {
                            if done.contains(d) {
                                continue;
                            }
                            match deliver::copy(
                                &mut self.inbound,
                                &mut self.touched,
                                &mut self.touched_mask,
                                d,
                                p,
                                &header,
                                frame,
                            ) {
                                Outcome::Delivered => {
                                    done.insert(d);
                                    copies += 1;
                                    self.slots[d as usize][slot_counter::RECEIVED] += 1;
                                }
                                Outcome::Full => blocked = true,
                                Outcome::Failed(why) => {
                                    deliver::dead_letter(
                                        &self.links.dead_letters,
                                        &header,
                                        frame,
                                        Some(d),
                                        &why,
                                        now.rt,
                                    );
                                    letters += 1;
                                    copies_dead += 1;
                                    frame_dead = true;
                                    done.insert(d);
                                    if why.starts_with("ring corrupted") {
                                        self.faults.push((d, why));
                                    }
                                }
                            }
                        }
                        if blocked {
                            // Keep the frame; retry next pass; skip the slots that have it.
                            // Whether an earlier pass already dead-lettered a copy is kept too.
                            let was_dead = partial.is_some_and(|pt| pt.dead);
                            if let Some(e) = self.entries[su].as_mut() {
                                e.partial[p] = Some(Partial {
                                    position,
                                    done,
                                    dead: was_dead || frame_dead,
                                });
                            }
                            self.account_copies(s, copies, copies_dead, letters);
                            break;
                        }
                    }
                }
            }
            if let Some(e) = self.entries[su].as_mut() {
                e.partial[p] = None;
            }
            let frame_dead = frame_dead || partial.is_some_and(|pt| pt.dead);
            self.account_copies(s, copies, copies_dead, letters);
            let counters = &mut self.slots[su];
            counters[slot_counter::SENT] += 1;
            counters[slot_counter::DESTINATIONS] += done.len();
            if frame_dead {
                counters[slot_counter::DEAD] += 1;
            } else {
                counters[slot_counter::DELIVERED] += 1;
            }
            if let Some(lanes) = self.outbound[su].as_mut() {
                lanes[p].pop();
            }
            self.counters.frames_in += 1;
            handled += 1;
            if let Some(why) = fault {
                self.faults.push((s, why));
                break;
            }
        }
        if let Some(lanes) = self.outbound[su].as_mut() {
            lanes[p].release();
        }
        handled
    }

    /// Counts what routing one frame (or one pass over a blocked one) did for sender `s`, and
    /// spends its dead-letter budget.
    fn account_copies(&mut self, s: u32, copies: u64, copies_dead: u64, letters: u64) {
        self.counters.delivered += copies;
        self.counters.dead += letters;
        let counters = &mut self.slots[s as usize];
        counters[slot_counter::COPIES] += copies;
        counters[slot_counter::COPIES_DEAD] += copies_dead;
        if let Some(e) = self.entries[s as usize].as_mut() {
            for _ in 0..letters {
                e.budget.spend();
            }
        }
    }

    /// Refills every agent's dead-letter budget; says (once per episode) who is throttled.
    fn refill_budgets(&mut self, now: Now) {
        let limit = self.cfg.dead_letter_limit;
        for (slot, entry) in self.entries.iter_mut().enumerate() {
            let Some(e) = entry.as_mut() else { continue };
            match e.budget.refill(limit, now.mono) {
                BudgetState::Open | BudgetState::Throttled { started: false } => {}
                BudgetState::Throttled { started: true } => {
                    self.slots[slot][slot_counter::THROTTLED] += 1;
                    tracing::warn!(
                        slot,
                        agent = %e.identity.agent_id,
                        "throttling an agent that makes more than {} dead letters a second (burst {}): its lanes are read only as its budget refills",
                        limit.rate,
                        limit.burst
                    );
                }
                BudgetState::Recovered { for_ns } => tracing::info!(
                    slot,
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
                Command::AddAgent(a, ack) => {
                    let slot = a.slot as usize;
                    if slot < self.entries.len() {
                        // The new occupant starts from zero, visibly at once: a listing made
                        // right after its attach must not show the previous agent's numbers.
                        self.slots[slot] = [0; slot_counter::PER_SLOT];
                        self.publish_slot(slot);
                        let identity = a.identity.clone();
                        // Release: as in `publish_counters`; the agent sees a beat from its
                        // first send on.
                        a.control.store(
                            agentbus::lanes::word::ROUTER_BEAT,
                            realtime_ns(),
                            Ordering::Release,
                        );
                        self.outbound[slot] = Some(a.outbound);
                        self.inbound[slot] = Some(a.inbound);
                        if let Err(at) = self.attached.binary_search(&(slot as u32)) {
                            self.attached.insert(at, slot as u32);
                        }
                        self.entries[slot] = Some(Entry {
                            epoch: a.epoch,
                            identity,
                            control: a.control,
                            lanes: a.lanes,
                            lane_capacity: a.lane_capacity,
                            capacity: a.capacity,
                            draining: false,
                            partial: [None; 4],
                            budget: DeadLetterBudget::new(
                                self.cfg.dead_letter_limit,
                                monotonic_ns(),
                            ),
                        });
                        self.notify_sys_agents(a.slot, agentbus::AgentStatus::Active);
                    }
                    let _ = ack.send(());
                }
                Command::RemoveAgent { slot, epoch, drain } => {
                    let matches = self
                        .entries
                        .get(slot as usize)
                        .and_then(|e| e.as_ref())
                        .is_some_and(|e| e.epoch == epoch);
                    if matches {
                        if drain {
                            if let Some(e) = self.entries[slot as usize].as_mut() {
                                e.draining = true;
                            }
                        } else {
                            self.remove(slot, None);
                        }
                    }
                }
                Command::SetTopic(id, slots, ack) => {
                    self.routes.set_topic(id, slots);
                    let _ = ack.send(());
                }
                Command::SetCapabilitySet(id, slots, ack) => {
                    self.routes.set_capset(id, slots);
                    let _ = ack.send(());
                }
                Command::SetType(id, slots, ack) => {
                    self.routes.set_type(id, slots);
                    let _ = ack.send(());
                }
            }
        }
    }

    fn handle_faults(&mut self) {
        while let Some((slot, why)) = self.faults.pop() {
            if self.entries[slot as usize].is_some() {
                tracing::warn!(slot, "detaching a misbehaving agent: {why}");
                self.counters.faulted += 1;
                self.remove(slot, Some(why));
            }
        }
    }

    /// Removes draining agents whose outbound lanes are empty.
    fn finish_drained(&mut self) {
        for slot in 0..self.entries.len() {
            let draining = self.entries[slot].as_ref().is_some_and(|e| e.draining);
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
        let s = slot as usize;
        // Frames already copied for it this pass must be visible before we read them back.
        if self.touched_mask[s] != 0 {
            self.publish_touched();
        }
        let Some(entry) = self.entries[s].take() else {
            return;
        };
        self.outbound[s] = None;
        self.inbound[s] = None;
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
                        &self.links.dead_letters,
                        &h,
                        &frame[..end],
                        Some(slot),
                        "its recipient left before reading it",
                        now_rt,
                    );
                    self.counters.dead += 1;
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
        self.notify_identity(&entry.identity, slot, agentbus::AgentStatus::Dead);
    }

    fn notify_sys_agents(&mut self, slot: u32, status: agentbus::AgentStatus) {
        if let Some(identity) = self.entries[slot as usize]
            .as_ref()
            .map(|e| e.identity.clone())
        {
            self.notify_identity(&identity, slot, status);
        }
    }

    fn notify_identity(
        &mut self,
        identity: &agentbus::AgentIdentifier,
        slot: u32,
        status: agentbus::AgentStatus,
    ) {
        let topic = self.cfg.sys_agents_topic;
        let subscribers: Vec<u32> = self
            .routes
            .topics
            .get(topic as usize)
            .map_or(Vec::new(), |v| {
                v.iter().copied().filter(|&s| s != slot).collect()
            });
        deliver::notify_agents_topic(
            &mut self.inbound,
            &mut self.touched,
            &mut self.touched_mask,
            &mut self.ids,
            &self.links.dead_letters,
            &mut self.counters.delivered,
            &mut self.counters.dead,
            (topic, &subscribers),
            identity,
            slot,
            status,
        );
    }
}
