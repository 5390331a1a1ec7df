//! Cases through the bus itself: a direct channel, the routed path (agent -> router -> agent),
//! router throughput, fan-out, priority under a flood, and a fixed send rate.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Channel, Sender, Typed};
use agentbus::control::{Principal, TopicConfig};
use agentbus::{CommunicationError, Message, MessagePriority, MessageType};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{BusySpin, Park, Wait};
use agentd::{Config as DaemonConfig, Daemon};
use anyhow::{bail, Context};

use crate::cases::{measure, on_core, Config, POLLS_PER_CHECK};
use crate::child::{ParentWatch, Peer};
use crate::report::{histogram, Row};

/// Where this process's embedded agentds put their sockets.
fn socket_dir() -> PathBuf {
    std::env::temp_dir().join(format!("agentbus-bench-{}", std::process::id()))
}

/// Removes `socket_dir()` once every case is done (only if empty: a daemon still running keeps
/// its socket).
pub fn remove_socket_dir() {
    let _ = std::fs::remove_dir(socket_dir());
}

/// An embedded agentd for one case.
pub(crate) struct Bus {
    pub(crate) daemon: Daemon,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
}

fn bus(tag: &str, router_core: Option<usize>, wait: Wait) -> anyhow::Result<Bus> {
    bus_with(tag, router_core, wait, false)
}

/// As [`bus`]; `parking_agents`: some agents park, so lanes keep their doorbells.
fn bus_with(
    tag: &str,
    router_core: Option<usize>,
    wait: Wait,
    parking_agents: bool,
) -> anyhow::Result<Bus> {
    bus_tuned(tag, router_core, wait, parking_agents, |_| {})
}

/// As [`bus_with`], with `tune` applied last to the daemon's configuration.
pub(crate) fn bus_tuned(
    tag: &str,
    router_core: Option<usize>,
    wait: Wait,
    parking_agents: bool,
    tune: impl FnOnce(&mut DaemonConfig),
) -> anyhow::Result<Bus> {
    let tag: String = tag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = format!("bench-{tag}-{}", std::process::id());
    let mut c = DaemonConfig::new(&name);
    c.socket_dir = socket_dir();
    c.router_core = router_core;
    c.wait = wait;
    c.lane_capacity = 1 << 20;
    c.delivery_timeout = Duration::from_secs(600);
    c.heartbeat_timeout = Duration::from_secs(600);
    c.heartbeat_interval = Duration::from_secs(1);
    // Nothing to keep across runs, and nothing left in the bench's socket directory.
    c.dead_letter_persist = false;
    // Lanes without doorbells when nobody parks: no fence per publish. Setting
    // AGENTBUS_BENCH_PARKING_LANES keeps the doorbells, to measure what they cost.
    c.lane_parking = parking_agents
        || std::env::var_os("AGENTBUS_BENCH_PARKING_LANES").is_some()
        || !matches!(wait, Wait::BusySpin(_));
    tune(&mut c);
    let dir = c.socket_dir.clone();
    let daemon = Daemon::start(c).context("starting the embedded agentd")?;
    Ok(Bus { daemon, name, dir })
}

impl Bus {
    /// Attaches agent `id` to this bus, waiting as `wait` says.
    pub(crate) fn attach(&self, id: &str, wait: Wait) -> anyhow::Result<Agent> {
        Ok(Agent::attach(
            AttachOptions::new(&self.name, id, "bench")
                .socket_dir(&self.dir)
                .wait(wait),
        )?)
    }
}

fn raw(from: &Agent, size: usize) -> Message {
    Message::raw(from.identity(), MessageType::Notification, vec![0xA5; size])
}

fn touch(env: &agentbus::Envelope<'_>) {
    if let Some(b) = env.raw() {
        black_box(b.last());
    }
}

/// Busy-polls `agent` for a message up to `priority`, reading its payload.
fn spin_recv(agent: &mut Agent, priority: MessagePriority) -> anyhow::Result<()> {
    let mut polls = 0u32;
    loop {
        if let Some(d) = agent.receiver().try_recv_up_to(priority)? {
            touch(&d.envelope());
            return Ok(());
        }
        std::hint::spin_loop();
        polls = polls.wrapping_add(1);
        if polls % POLLS_PER_CHECK == 0 && polls > 64 * POLLS_PER_CHECK {
            bail!("no message for a long time: the router is not routing");
        }
    }
}

fn spin_recv_channel(
    ch: &mut Channel,
    alive: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut polls = 0u32;
    loop {
        if let Some(d) = ch.try_recv()? {
            touch(&d.envelope());
            return Ok(());
        }
        std::hint::spin_loop();
        polls = polls.wrapping_add(1);
        if polls % POLLS_PER_CHECK == 0 {
            alive()?;
        }
    }
}

/// What a loop-back case varies.
#[derive(Debug, Clone, Copy)]
struct Loop {
    /// The messages' priority.
    priority: MessagePriority,
    /// Keep the LOW lanes full meanwhile.
    flood: bool,
    /// agentd records per-message metrics (its default).
    metrics: bool,
}

impl Loop {
    const PLAIN: Loop = Loop {
        priority: MessagePriority::Normal,
        flood: false,
        metrics: true,
    };
}

/// Round trips agent -> router -> the same agent (the loop-back form: router and agent each
/// have a core), as `how` says; the row is `id`, `name`.
fn loopback(cfg: Config, id: &str, name: &str, how: Loop) -> anyhow::Result<Row> {
    let Loop {
        priority,
        flood,
        metrics,
    } = how;
    let b = bus_tuned(name, Some(cfg.cores.0), cfg.wait, false, |c| {
        c.metrics = metrics
    })?;
    let hist = on_core(cfg.cores.1, || {
        let mut me = b.attach("bench", cfg.wait)?;
        if flood {
            flood_low(&mut me, cfg.size)?;
        }
        let msg = raw(&me, cfg.size).priority(priority);
        let bench = me.peer("bench")?;
        measure(&cfg, |_| {
            me.send(&bench, &msg)?;
            spin_recv(&mut me, priority)?;
            Ok(())
        })
    })?;
    drop(b.daemon);
    Ok(Row {
        id: id.into(),
        name: name.into(),
        hist,
    })
}

/// Fills this agent's LOW lanes (outbound and its own inbound) with messages it never reads,
/// so the router finds LOW work blocked on every pass: a flooding agent's footprint on two
/// cores.
fn flood_low(me: &mut Agent, size: usize) -> anyhow::Result<()> {
    let msg = raw(me, size)
        .priority(MessagePriority::Low)
        .ttl(Duration::from_secs(3600));
    let bench = me.peer("bench")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut full = 0;
    while full < 1000 && Instant::now() < deadline {
        match me.send(&bench, &msg) {
            Ok(_) => full = 0,
            Err(CommunicationError::QueueFull { .. }) => {
                full += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `routed`: agent -> router -> agent, loop-back form.
pub fn routed(cfg: Config) -> anyhow::Result<Row> {
    loopback(cfg, "routed", "routed", Loop::PLAIN)
}

/// `routed` on an agentd started with `--no-metrics`: what the per-message metrics cost.
pub fn routed_without_metrics(cfg: Config) -> anyhow::Result<Row> {
    let how = Loop {
        metrics: false,
        ..Loop::PLAIN
    };
    loopback(cfg, "routed-no-metrics", "routed, metrics off", how)
}

/// `priority`: CRITICAL loop-back round trips, idle and with the LOW lanes kept full.
pub fn priority(cfg: Config) -> anyhow::Result<(Row, Row)> {
    let critical = Loop {
        priority: MessagePriority::Critical,
        ..Loop::PLAIN
    };
    let idle = loopback(cfg, "priority-idle", "priority idle", critical)?;
    let flooded = Loop {
        flood: true,
        ..critical
    };
    let flood = loopback(cfg, "priority-flood", "priority LOW flood", flooded)?;
    Ok((idle, flood))
}

/// `rate`: loop-back sends at a fixed rate; latency is measured from each message's intended
/// send time, so a stall shows in the tail instead of hiding (coordinated omission corrected).
pub fn rate(cfg: Config, per_second: u64) -> anyhow::Result<Row> {
    let b = bus("rate", Some(cfg.cores.0), cfg.wait)?;
    let interval = 1_000_000_000 / per_second.max(1);
    let hist = on_core(cfg.cores.1, || {
        let mut me = b.attach("bench", cfg.wait)?;
        let msg = raw(&me, cfg.size);
        let bench = me.peer("bench")?;
        let mut hist = histogram();
        let start = monotonic_ns();
        for i in 1..=cfg.total() {
            let intended = start + i * interval;
            while monotonic_ns() < intended {
                std::hint::spin_loop();
            }
            me.send(&bench, &msg)?;
            spin_recv(&mut me, MessagePriority::Low)?;
            let t1 = monotonic_ns();
            if i > cfg.warmup {
                hist.record(t1.saturating_sub(intended).max(1))?;
            }
        }
        Ok(hist)
    })?;
    Ok(Row {
        id: "rate".into(),
        name: format!("rate {per_second}/s"),
        hist,
    })
}

/// `throughput`: one agent sends to itself through the router as fast as it can, reading what
/// arrives; returns (messages/s, bytes/s) of payload received.
pub fn throughput(cfg: Config, count: u64, batch: bool) -> anyhow::Result<(f64, f64)> {
    let b = bus("tput", Some(cfg.cores.0), cfg.wait)?;
    let (got, secs) = on_core(cfg.cores.1, || {
        let mut me = b.attach("bench", cfg.wait)?;
        let msg = raw(&me, cfg.size);
        let bench = me.peer("bench")?;
        let (mut sent, mut got) = (0u64, 0u64);
        let start = Instant::now();
        while got < count {
            let burst = 32.min(count - sent);
            sent += if batch {
                // Published together when the batch guard drops, at the end of the statement.
                send_burst(&mut me.sender().batch(), &bench, &msg, burst)?
            } else {
                send_burst(me.sender(), &bench, &msg, burst)?
            };
            while let Some(d) = me.try_recv()? {
                touch(&d.envelope());
                got += 1;
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("throughput: only {got} of {count} arrived in 120 s");
            }
        }
        Ok((got, start.elapsed().as_secs_f64()))
    })?;
    Ok((got as f64 / secs, (got * cfg.size as u64) as f64 / secs))
}

/// Sends up to `burst` copies of `msg` to `to`, stopping at the first `QueueFull`; how many
/// went.
fn send_burst(
    tx: &mut Sender,
    to: &agentbus::client::Peer,
    msg: &Message,
    burst: u64,
) -> anyhow::Result<u64> {
    for sent in 0..burst {
        match tx.send(to, msg) {
            Ok(_) => {}
            Err(CommunicationError::QueueFull { .. }) => return Ok(sent),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(burst)
}

/// An embedded agentd, this process attached as `bench-a`, a child (case `case`, run with
/// `child_cfg`) attached as `bench-b`, and a channel from here to it.
fn open_bench_channel(
    tag: &str,
    child_cfg: Config,
    case: &str,
    metrics: bool,
) -> anyhow::Result<(Bus, Agent, Peer, Channel)> {
    let b = bus_tuned(tag, None, Wait::Park(Park::default()), false, |c| {
        c.metrics = metrics
    })?;
    let mut a = b.attach("bench-a", child_cfg.wait)?;
    let mut args = child_cfg.child_args(case);
    args.extend([
        b.name.clone(),
        b.dir.display().to_string(),
        child_cfg.wait.to_string(),
    ]);
    let mut peer = Peer::spawn_plain(&args)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ch = loop {
        match a.channel("bench-b") {
            Ok(ch) => break ch,
            Err(_) if Instant::now() < deadline => {
                peer.check_alive()?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok((b, a, peer, ch))
}

/// The child's end of [`open_bench_channel`]: attach as `bench-b` and take the channel.
fn accept_bench_channel(args: &[String]) -> anyhow::Result<(Agent, Channel)> {
    let [bus, dir, wait, ..] = args else {
        bail!("channel child: expected bus, socket dir and wait, got {args:?}");
    };
    let wait: Wait = wait.parse().map_err(anyhow::Error::msg)?;
    let mut me = Agent::attach(
        AttachOptions::new(bus, "bench-b", "bench")
            .socket_dir(dir)
            .wait(wait),
    )?;
    let ch = me
        .accept_channel(Duration::from_secs(30))?
        .context("no channel was offered in 30 s")?;
    Ok((me, ch))
}

/// What a channel case's messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelPayload {
    /// `channel`: raw bytes of the configured size, sent as a `Message`.
    Raw,
    /// `typed`: a 64-byte user struct ([`BenchTick`]), `send(Typed(..))` and a validated
    /// `typed::<BenchTick>()` read (a channel reads archives from a private copy).
    Typed,
    /// `plain`: the same struct as a plain value, written in place into a loan and read in
    /// place with `plain::<BenchTick>()`.
    Plain,
}

impl ChannelPayload {
    /// The case's id (and its child's case name).
    pub fn id(self) -> &'static str {
        match self {
            ChannelPayload::Raw => "channel",
            ChannelPayload::Typed => "typed",
            ChannelPayload::Plain => "plain",
        }
    }
}

/// A 64-byte user message, as a market-data feed would send it.
#[derive(Debug, Clone, Copy, rkyv::Archive, rkyv::Serialize, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct BenchTick {
    symbol: [u8; 16],
    px: f64,
    qty: u64,
    seq: u64,
    ts: u64,
    venue: [u8; 16],
}

fn bench_tick(seq: u64) -> BenchTick {
    BenchTick {
        symbol: *b"AAPL.XNAS       ",
        px: 187.25,
        qty: 100,
        seq,
        ts: seq,
        venue: *b"XNAS            ",
    }
}

/// Sends one message of `kind` (`msg` for raw).
fn channel_send(
    ch: &mut Channel,
    kind: ChannelPayload,
    msg: &Message,
    seq: u64,
) -> anyhow::Result<()> {
    match kind {
        ChannelPayload::Raw => {
            ch.send(msg)?;
        }
        ChannelPayload::Typed => {
            ch.send(Typed(&bench_tick(seq)))?;
        }
        ChannelPayload::Plain => {
            let mut loan = ch.loan(size_of::<BenchTick>())?;
            *loan.plain_mut::<BenchTick>()? = bench_tick(seq);
            loan.send();
        }
    }
    Ok(())
}

/// Busy-polls a channel for the next message and reads it as `kind`.
fn channel_recv(
    ch: &mut Channel,
    kind: ChannelPayload,
    alive: &mut dyn FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut polls = 0u32;
    loop {
        if let Some(d) = ch.try_recv()? {
            match kind {
                ChannelPayload::Raw => touch(&d.envelope()),
                ChannelPayload::Typed => {
                    black_box(d.typed::<BenchTick>()?.seq.to_native());
                }
                ChannelPayload::Plain => {
                    black_box(d.plain::<BenchTick>()?.seq);
                }
            }
            return Ok(());
        }
        std::hint::spin_loop();
        polls = polls.wrapping_add(1);
        if polls % POLLS_PER_CHECK == 0 {
            alive()?;
        }
    }
}

/// `channel`, `typed`, `plain`: ping-pong over a direct channel between two processes (one hop
/// each way), carrying `kind`.
pub fn channel(cfg: Config, kind: ChannelPayload) -> anyhow::Result<Row> {
    channel_measured(cfg, kind, true)
}

/// `channel` on an agentd started with `--no-metrics`: a channel's messages never pass the
/// router, so this shows the metrics cost it nothing.
pub fn channel_without_metrics(cfg: Config) -> anyhow::Result<Row> {
    let mut row = channel_measured(cfg, ChannelPayload::Raw, false)?;
    row.id = "channel-no-metrics".into();
    row.name = "channel, metrics off".into();
    Ok(row)
}

fn channel_measured(cfg: Config, kind: ChannelPayload, metrics: bool) -> anyhow::Result<Row> {
    let (_bus, _a, mut peer, mut ch) = open_bench_channel(kind.id(), cfg, kind.id(), metrics)?;
    let msg = Message::raw(
        ch.identity(),
        MessageType::Notification,
        vec![0xA5; cfg.size],
    );
    let hist = on_core(cfg.cores.0, || {
        let mut alive = || peer.check_alive();
        measure(&cfg, |i| {
            channel_send(&mut ch, kind, &msg, i)?;
            channel_recv(&mut ch, kind, &mut alive)?;
            Ok(())
        })
    })?;
    peer.finish()?;
    Ok(Row {
        id: kind.id().into(),
        name: match kind {
            ChannelPayload::Raw => "channel".into(),
            ChannelPayload::Typed => "typed 64 B struct".into(),
            ChannelPayload::Plain => "plain 64 B struct, loan".into(),
        },
        hist,
    })
}

/// `throughput` over a direct channel: this process streams `count` messages to a child that
/// counts them and answers once at the end; returns (messages/s, payload bytes/s).
pub fn channel_throughput(cfg: Config, count: u64) -> anyhow::Result<(f64, f64)> {
    let sink = Config {
        iters: count,
        warmup: 0,
        ..cfg
    };
    let (_bus, _a, mut peer, mut ch) = open_bench_channel("chan-tput", sink, "channel-sink", true)?;
    let msg = Message::raw(
        ch.identity(),
        MessageType::Notification,
        vec![0xA5; cfg.size],
    );
    let secs = on_core(cfg.cores.0, || {
        let start = Instant::now();
        let mut sent = 0;
        let mut full = 0u32;
        while sent < count {
            match ch.send(&msg) {
                Ok(_) => sent += 1,
                Err(CommunicationError::QueueFull { .. }) => {
                    std::hint::spin_loop();
                    full = full.wrapping_add(1);
                    if full % POLLS_PER_CHECK == 0 {
                        peer.check_alive()?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let mut alive = || peer.check_alive();
        spin_recv_channel(&mut ch, &mut alive)?; // the sink's "got them all"
        Ok(start.elapsed().as_secs_f64())
    })?;
    peer.finish()?;
    Ok((count as f64 / secs, (count * cfg.size as u64) as f64 / secs))
}

/// The child's half of channel throughput: count `total` messages, then answer once.
pub fn channel_sink_child(args: &[String], size: usize, total: u64) -> anyhow::Result<()> {
    let (_me, mut ch) = accept_bench_channel(args)?;
    let mut parent = ParentWatch::new();
    let mut alive = || parent.check_alive();
    for _ in 0..total {
        spin_recv_channel(&mut ch, &mut alive)?;
    }
    let done = Message::raw(
        ch.identity(),
        MessageType::Notification,
        vec![0; size.min(8)],
    );
    ch.send(&done)?;
    Ok(())
}

/// The child's half of `channel`, `typed` and `plain`: attach, accept the channel, echo.
pub fn channel_child(
    args: &[String],
    size: usize,
    total: u64,
    kind: ChannelPayload,
) -> anyhow::Result<()> {
    let (_me, mut ch) = accept_bench_channel(args)?;
    let msg = Message::raw(ch.identity(), MessageType::Notification, vec![0x5A; size]);
    let mut parent = ParentWatch::new();
    let mut alive = || parent.check_alive();
    for i in 0..total {
        channel_recv(&mut ch, kind, &mut alive)?;
        channel_send(&mut ch, kind, &msg, i)?;
    }
    Ok(())
}

/// How [`fanout`]'s subscribers wait, and how its topic is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// Subscribers park between messages; the topic as created by default.
    Parked,
    /// Subscribers busy-poll.
    Spinning,
    /// As `Parked`, on a topic that keeps a history of 64 messages and lets only the
    /// publisher publish: what those cost the router per message.
    Policed,
}

/// `fanout`: one publisher, `n` subscribers (threads parking between messages, or busy-polling,
/// as `mode` says); the latency of each message is until its last subscriber has it.
pub fn fanout(cfg: Config, n: usize, mode: Fanout) -> anyhow::Result<Row> {
    let spin = mode == Fanout::Spinning;
    // Parking subscribers need doorbells on their lanes; spinning ones need them only when the
    // other sides park.
    let b = bus_with(
        match mode {
            Fanout::Parked => "fan",
            Fanout::Spinning => "fan-spin",
            Fanout::Policed => "fan-pol",
        },
        Some(cfg.cores.0),
        cfg.wait,
        !spin,
    )?;
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for i in 0..n {
        let wait = if spin {
            Wait::BusySpin(BusySpin)
        } else {
            Wait::Park(Park::default())
        };
        let mut agent = b.attach(&format!("sub-{i}"), wait)?;
        agent.subscribe("bench.fanout")?.detach();
        let (received, at, stop) = (Arc::clone(&received), Arc::clone(&at), Arc::clone(&stop));
        subs.push(std::thread::spawn(move || -> anyhow::Result<()> {
            while !stop.load(Ordering::Acquire) {
                let got = if spin {
                    agent.try_recv()?
                } else {
                    agent.recv_timeout(Duration::from_millis(50))?
                };
                if let Some(d) = got {
                    touch(&d.envelope());
                    // Release: pairs with the publisher's Acquire load of the count.
                    at[i].store(monotonic_ns(), Ordering::Relaxed);
                    received[i].fetch_add(1, Ordering::Release);
                } else if spin {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        }));
    }
    let hist = on_core(cfg.cores.1, || {
        let mut publisher = b.attach("publisher", cfg.wait)?;
        let fanout = if mode == Fanout::Policed {
            let config = TopicConfig::default()
                .history(64)
                .publishers([Principal::agent("publisher")]);
            publisher.create_topic("bench.fanout", config)?
        } else {
            publisher.topic("bench.fanout")?
        };
        let msg = raw(&publisher, cfg.size);
        let mut hist = histogram();
        for i in 1..=cfg.total() {
            let t0 = monotonic_ns();
            publisher.send(&fanout, &msg)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while received.iter().any(|r| r.load(Ordering::Acquire) < i) {
                std::hint::spin_loop();
                if Instant::now() > deadline {
                    bail!("fanout: a subscriber did not get message {i} in 10 s");
                }
            }
            let last = at
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .max()
                .unwrap_or(t0);
            if i > cfg.warmup {
                hist.record(last.saturating_sub(t0).max(1))?;
            }
        }
        Ok(hist)
    });
    stop.store(true, Ordering::Release);
    for s in subs {
        s.join()
            .map_err(|_| anyhow::anyhow!("a subscriber panicked"))??;
    }
    let (id, name) = match mode {
        // `fanout` stays the parked form's id, so older JSON compares.
        Fanout::Parked => ("fanout", format!("fanout to {n}")),
        Fanout::Spinning => ("fanout-spin", format!("fanout to {n}, spinning")),
        Fanout::Policed => ("fanout-policed", format!("fanout to {n}, acl+history")),
    };
    Ok(Row {
        id: id.into(),
        name,
        hist: hist?,
    })
}
