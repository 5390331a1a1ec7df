//! The demo's agents, each run in its own process by `agentbus __agent ROLE ID ...`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, PendingRequest, Topic};
use agentbus::patterns::consensus;
use agentbus::patterns::{Lease, LeaseOptions};
use agentbus::*;
use agentbus_ipc::clock::realtime_ns;
use anyhow::Context;
use hdrhistogram::Histogram;

use super::stats::{encode_histogram, histogram, ROUTES};

/// Which agent to run and where.
#[derive(Debug, Clone, clap::Args)]
pub struct RoleArgs {
    /// feed, strategy, risk or execution.
    pub role: String,
    /// The id it attaches with (`feed-1`, `risk-1`, ...).
    pub id: String,
    /// The bus of the demo's embedded agentd (`demo-<pid>`), as the demo passes it.
    #[arg(long)]
    pub bus: String,
    /// That agentd's socket directory (a temporary `agentbus-demo-<pid>`).
    #[arg(long)]
    pub socket_dir: std::path::PathBuf,
    /// Symbols the feed quotes.
    #[arg(long, default_value_t = 4)]
    pub symbols: usize,
    /// Ticks per second the feed publishes, in all.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
}

/// The topics every demo agent knows.
pub const CONTROL: &str = "demo.control";
/// Where agents report.
pub const STATS: &str = "demo.stats";
/// Where the risk agent raises alerts.
pub const ALERTS: &str = "alerts.risk";
/// Symbols the feed quotes from.
pub const SYMBOLS: [&str; 8] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "JPM",
];

/// What a received message is, once its frame is let go.
struct Item {
    header: FrameHeader,
    event: Option<String>,
    request_symbol: Option<String>,
    /// A consensus proposal (a request to vote on).
    proposal: bool,
}

fn extract(d: &agentbus::client::Delivery<'_>) -> Item {
    let env = d.envelope();
    let proposal = matches!(
        env.payload(),
        Some(ArchivedPayload::Coordination(c))
            if c.coordination_type == agentbus::ArchivedCoordinationType::ConsensusRequest
    );
    let (event, request_symbol) = match env.payload() {
        Some(ArchivedPayload::Notification(n)) => (Some(n.event.to_string()), None),
        Some(ArchivedPayload::TaskRequest(t)) => (
            None,
            match t.parameters.get("symbol") {
                Some(agentbus::value::ArchivedValue::String(s)) => Some(s.to_string()),
                _ => Some(String::new()),
            },
        ),
        _ => (None, None),
    };
    Item {
        header: *d.header(),
        event,
        request_symbol,
        proposal,
    }
}

/// One demo agent: its handle, counters and histograms.
struct Ctx {
    agent: Agent,
    id: String,
    counts: BTreeMap<&'static str, i64>,
    by_kind: BTreeMap<String, i64>,
    latency: BTreeMap<RouteKind, Histogram<u64>>,
    window: Histogram<u64>,
    control_topic: Topic,
    alerts_topic: Topic,
    stats_topic: Topic,
    started: bool,
    stopping: bool,
    exit: bool,
    last_report: Instant,
}

impl Ctx {
    fn count(&mut self, key: &'static str) {
        *self.counts.entry(key).or_default() += 1;
    }

    fn sent(&mut self, m: &Message, route: RouteKind) {
        self.count("sent");
        *self
            .by_kind
            .entry(format!("{}/{}", m.message_type, route))
            .or_default() += 1;
    }

    fn received(&mut self, h: &FrameHeader) {
        self.count("received");
        let latency = realtime_ns().saturating_sub(h.timestamp_ns).max(1);
        let _ = self
            .latency
            .entry(h.route)
            .or_insert_with(histogram)
            .record(latency);
        let _ = self.window.record(latency);
    }

    /// Publishes on a topic, waiting up to 20 ms for room when the lane is full.
    fn publish(&mut self, topic: &Topic, m: &Message) -> bool {
        match self
            .agent
            .send_blocking(topic, m, Duration::from_millis(20))
        {
            Ok(_) => {
                self.sent(m, RouteKind::Topic);
                true
            }
            Err(CommunicationError::Timeout { .. }) => {
                self.count("queue_full");
                false
            }
            Err(_) => {
                self.count("send_failed");
                false
            }
        }
    }

    fn record(&self, final_report: bool) -> Record {
        let mut r = record! { "agent" => self.id.as_str() };
        for (k, v) in &self.counts {
            r.insert((*k).into(), Value::Int(*v));
        }
        let p99 = self.window.value_at_quantile(0.99) as i64;
        r.insert("p99_ns".into(), Value::Int(p99));
        if final_report {
            let kinds = self
                .by_kind
                .iter()
                .map(|(k, v)| (k.clone(), Value::Int(*v)))
                .collect();
            r.insert("by_kind".into(), Value::Map(kinds));
            for route in ROUTES {
                if let Some(h) = self.latency.get(&route) {
                    r.insert(format!("lat.{route}"), encode_histogram(h));
                }
            }
        }
        r
    }

    fn report(&mut self, event: &str) {
        let final_report = event == "final";
        if final_report {
            // The report counts itself: nothing is sent after it.
            self.count("sent");
            *self
                .by_kind
                .entry(format!(
                    "{}/{}",
                    MessageType::Notification,
                    RouteKind::Topic
                ))
                .or_default() += 1;
        }
        let m = Message::notification(
            self.agent.identity(),
            Notification {
                event: event.into(),
                data: self.record(final_report),
            },
        );
        if final_report {
            // Must not be lost: wait longer for room.
            let stats = self.stats_topic.clone();
            let _ = self.agent.send_blocking(&stats, &m, Duration::from_secs(5));
        } else {
            let stats = self.stats_topic.clone();
            self.publish(&stats, &m);
        }
        self.window.reset();
        self.last_report = Instant::now();
    }

    /// Takes every waiting message, handling control and counting the rest; returns the
    /// others for the role.
    fn drain(&mut self) -> anyhow::Result<Vec<Item>> {
        let mut items = Vec::new();
        loop {
            let item = match self.agent.try_recv()? {
                Some(d) => extract(&d),
                None => break,
            };
            self.received(&item.header);
            if item.header.route == RouteKind::Topic && self.control_topic.sent_to(&item.header) {
                match item.event.as_deref() {
                    Some("start") => self.started = true,
                    Some("stop") => self.stopping = true,
                    Some("exit") => self.exit = true,
                    _ => {}
                }
                continue;
            }
            if self.alerts_topic.sent_to(&item.header) {
                self.count("alerts");
                continue;
            }
            items.push(item);
        }
        Ok(items)
    }
}

fn tick(from: &Agent, symbol: &str, seq: i64) -> Message {
    Message::notification(
        from.identity(),
        Notification {
            event: "tick".into(),
            data: record! { "symbol" => symbol, "px" => 100.0 + (seq % 100) as f64 / 100.0, "seq" => seq },
        },
    )
}

fn request(from: &Agent, task_type: &str, symbol: &str, caps: &[&str]) -> Message {
    Message::task_request(
        from.identity(),
        TaskRequest {
            task_id: format!("{task_type}-{}", fastrand::u32(..)),
            task_type: task_type.into(),
            parameters: record! { "symbol" => symbol, "qty" => 100i64 },
            required_capabilities: caps.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        },
    )
}

/// Runs one demo agent until agentd's demo tells it to exit.
pub fn run(args: RoleArgs) -> anyhow::Result<()> {
    // Ctrl-C reaches the whole process group: the agents ignore it and stop when the demo
    // says so, so that its summary still has their numbers.
    let ignored = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&ignored))?;
    let (kind, caps): (&str, &[&str]) = match args.role.as_str() {
        "feed" => ("market_data", &[]),
        "strategy" => ("strategy", &[]),
        "risk" => ("risk", &["risk_check"]),
        "execution" => ("execution", &["execution"]),
        other => anyhow::bail!("unknown demo role {other:?}"),
    };
    let options = AttachOptions::new(&args.bus, &args.id, kind)
        .socket_dir(&args.socket_dir)
        .capabilities(caps.iter().copied());
    let mut agent = Agent::attach(options).with_context(|| format!("{} attaching", args.id))?;
    let control_topic = agent.topic(CONTROL)?;
    let alerts_topic = agent.topic(ALERTS)?;
    let stats_topic = agent.topic(STATS)?;
    // Subscriptions for the agent's whole life.
    agent.subscribe(CONTROL)?.detach();
    if args.role == "strategy" {
        agent.subscribe("market.>")?.detach();
        agent.subscribe("alerts.>")?.detach();
    }
    let mut ctx = Ctx {
        agent,
        id: args.id.clone(),
        counts: BTreeMap::new(),
        by_kind: BTreeMap::new(),
        latency: BTreeMap::new(),
        window: histogram(),
        control_topic,
        alerts_topic,
        stats_topic,
        started: false,
        stopping: false,
        exit: false,
        last_report: Instant::now(),
    };
    ctx.report("ready");
    match args.role.as_str() {
        "feed" => feed(&mut ctx, &args),
        "strategy" => strategy(&mut ctx),
        "risk" => responder(&mut ctx, true),
        _ => responder(&mut ctx, false),
    }?;
    ctx.report("final");
    // Wait for the demo to read everything and say goodbye.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctx.exit && Instant::now() < deadline {
        ctx.agent.receiver().wait_ready(Duration::from_millis(50));
        for _ in ctx.drain()? {}
    }
    ctx.agent.detach()?;
    Ok(())
}

/// Common loop step: drain, report each second, wait a little when idle.
fn step(ctx: &mut Ctx, idle: bool) -> anyhow::Result<Vec<Item>> {
    if idle {
        ctx.agent.receiver().wait_ready(Duration::from_millis(1));
    }
    let items = ctx.drain()?;
    if ctx.started && ctx.last_report.elapsed() >= Duration::from_secs(1) {
        ctx.report("stats");
    }
    Ok(items)
}

fn feed(ctx: &mut Ctx, args: &RoleArgs) -> anyhow::Result<()> {
    let symbols = &SYMBOLS[..args.symbols.clamp(1, SYMBOLS.len())];
    let topics = symbols
        .iter()
        .map(|sym| ctx.agent.topic(&format!("market.{sym}")))
        .collect::<Result<Vec<_>, _>>()?;
    while !ctx.started && !ctx.stopping && !ctx.exit {
        step(ctx, true)?;
    }
    let start = Instant::now();
    let mut published: u64 = 0;
    while !ctx.stopping && !ctx.exit {
        let due = (start.elapsed().as_secs_f64() * args.rate as f64) as u64;
        let burst = due.saturating_sub(published).min(256);
        for _ in 0..burst {
            let i = published as usize % symbols.len();
            let m = tick(&ctx.agent, symbols[i], published as i64);
            if ctx.publish(&topics[i], &m) {
                ctx.count("ticks");
            }
            published += 1;
        }
        step(ctx, burst == 0)?;
    }
    Ok(())
}

fn strategy(ctx: &mut Ctx) -> anyhow::Result<()> {
    const ORDER_EVERY: i64 = 20;
    const MAX_PENDING: usize = 16;
    let timeout = Duration::from_secs(2);
    let risk = ctx.agent.capability(&["risk_check"])?;
    let execution = ctx.agent.agent_type("execution")?;
    // Dropping a pending request (answered, or given up) ends it.
    let mut checks: Vec<(PendingRequest, Instant, String)> = Vec::new();
    let mut orders: Vec<(PendingRequest, Instant)> = Vec::new();
    let mut seen = 0i64;
    loop {
        // Everything a strategy acts on arrives as a message (ticks, answers), so it waits for
        // one even with requests outstanding: polling for answers in a loop would keep a core
        // busy and delay the very processes (the router, risk) that produce them.
        for item in step(ctx, true)? {
            if item.proposal && item.header.flags.contains(Flags::EXPECTS_REPLY) {
                // Risk asks the strategies to agree to a limit change: they do.
                vote(ctx, &item, consensus::Vote::Yes);
                continue;
            }
            if item.header.route == RouteKind::Topic && item.event.as_deref() == Some("tick") {
                seen += 1;
                ctx.count("ticks");
                if !ctx.stopping && seen % ORDER_EVERY == 0 && checks.len() < MAX_PENDING {
                    let sym = SYMBOLS[(seen / ORDER_EVERY) as usize % SYMBOLS.len()].to_string();
                    let m = request(&ctx.agent, "risk_check", &sym, &[]);
                    if let Ok(pending) = ctx.agent.start_request(&risk, &m) {
                        ctx.sent(&m, RouteKind::Capability);
                        ctx.count("checks");
                        checks.push((pending, Instant::now(), sym));
                    }
                }
            }
        }
        // Risk answers: approved checks become orders to the execution agents.
        let mut i = 0;
        while i < checks.len() {
            let (pending, at, sym) = &mut checks[i];
            let (at, sym) = (*at, sym.clone());
            match pending.try_wait(&mut ctx.agent) {
                Some(Ok(resp)) => {
                    ctx.received(&header_of(&resp, RouteKind::Agent));
                    checks.swap_remove(i);
                    let approved = matches!(&resp.payload, Payload::TaskResponse(r) if r.status == TaskStatus::Completed);
                    if !approved {
                        ctx.count("denied");
                        continue;
                    }
                    let m = request(&ctx.agent, "place_order", &sym, &["execution"]);
                    if let Ok(pending) = ctx.agent.start_request(&execution, &m) {
                        ctx.sent(&m, RouteKind::LoadBalanced);
                        ctx.count("orders");
                        orders.push((pending, Instant::now()));
                    }
                }
                Some(Err(_)) => {
                    checks.swap_remove(i);
                    ctx.count("denied");
                }
                None if at.elapsed() > timeout => {
                    checks.swap_remove(i); // abandoned: a late answer is counted, not delivered
                    ctx.count("timeouts");
                }
                None => i += 1,
            }
        }
        let mut i = 0;
        while i < orders.len() {
            let (pending, at) = &mut orders[i];
            let at = *at;
            match pending.try_wait(&mut ctx.agent) {
                Some(Ok(resp)) => {
                    ctx.received(&header_of(&resp, RouteKind::Agent));
                    orders.swap_remove(i);
                    ctx.count("fills");
                }
                Some(Err(e)) => {
                    orders.swap_remove(i);
                    ctx.count(match e {
                        CommunicationError::Timeout { .. } => "timeouts",
                        _ => "order_errors",
                    });
                }
                None if at.elapsed() > timeout => {
                    orders.swap_remove(i); // abandoned
                    ctx.count("timeouts");
                }
                None => i += 1,
            }
        }
        if (ctx.stopping && checks.is_empty() && orders.is_empty()) || ctx.exit {
            return Ok(());
        }
    }
}

/// The header fields latency needs, for a response already copied out.
fn header_of(m: &Message, route: RouteKind) -> FrameHeader {
    FrameHeader {
        message_type: m.message_type,
        priority: m.priority,
        route,
        flags: m.flags,
        body_len: 0,
        source_slot: 0,
        source_epoch: 0,
        destination: 0,
        message_id: m.id,
        correlation_id: m.correlation_id,
        timestamp_ns: m.timestamp_ns,
        ttl_ms: 0,
        extension_len: 0,
    }
}

/// How often an execution agent renews its lease (primary) or tries to take it (standby).
const LEASE_CHECK: Duration = Duration::from_millis(500);
/// The primary execution lease's name and ttl.
const PRIMARY: &str = "primary.execution";
const PRIMARY_TTL: Duration = Duration::from_secs(2);
/// When the risk agent proposes its limit change, after the start.
const PROPOSE_AFTER: Duration = Duration::from_secs(1);

/// Answers proposal `item` with `vote`, counted as sent.
fn vote(ctx: &mut Ctx, item: &Item, vote: consensus::Vote) {
    let ballot = consensus::ballot(vote);
    let m = Message::new(
        MessageType::Coordination,
        ctx.agent.identity(),
        ballot.clone(),
    );
    if ctx.agent.sender().reply(&item.header, ballot).is_ok() {
        ctx.sent(&m, RouteKind::Agent);
        ctx.count("votes");
    }
}

/// An execution agent renews the primary lease it holds, or tries to take it.
fn hold_primary(ctx: &mut Ctx, primary: &mut Option<Lease>) {
    match primary {
        Some(lease) => {
            if lease.renew().is_err() {
                *primary = None;
                ctx.count("lease_lost");
                ctx.counts.insert("lease_primary", 0);
            }
        }
        None => {
            let options = LeaseOptions::new(PRIMARY).ttl(PRIMARY_TTL);
            if let Ok(lease) = Lease::acquire(&mut ctx.agent, &options) {
                ctx.counts.insert("lease_primary", 1);
                ctx.counts.insert("lease_token", lease.token().0 as i64);
                *primary = Some(lease);
            }
        }
    }
}

/// The risk agent proposes a higher position limit; the strategies vote on it.
fn propose_limit(ctx: &mut Ctx) -> anyhow::Result<()> {
    let participants: Vec<consensus::Participant> = ["strategy-1", "strategy-2"]
        .iter()
        .filter_map(|id| ctx.agent.peer(id).ok())
        .map(|peer| consensus::Participant { peer, weight: 1.0 })
        .collect();
    let outcome = consensus::propose(
        &mut ctx.agent,
        &participants,
        record! { "position_limit" => 2_000_000i64 },
        consensus::ConsensusOptions {
            threshold: 0.67,
            timeout: Duration::from_secs(2),
        },
    )?;
    // One proposal frame per participant reached.
    let m = Message::new(
        MessageType::Coordination,
        ctx.agent.identity(),
        consensus::ballot(consensus::Vote::Abstain),
    );
    for v in &outcome.votes {
        let reached = !v
            .note
            .as_deref()
            .is_some_and(|n| n.starts_with("not reached"));
        if reached {
            ctx.sent(&m, RouteKind::Agent);
        }
    }
    ctx.count("consensus_rounds");
    ctx.counts
        .insert("consensus_accepted", outcome.accepted as i64);
    ctx.counts.insert("consensus_yes", outcome.yes as i64);
    ctx.counts.insert("consensus_total", outcome.total as i64);
    ctx.counts
        .insert("consensus_us", outcome.took.as_micros() as i64);
    Ok(())
}

/// Risk (approves most checks, raises a CRITICAL alert on a denial) and execution (fills).
fn responder(ctx: &mut Ctx, risk: bool) -> anyhow::Result<()> {
    let mut idle = true;
    let mut last_request = Instant::now();
    // Execution agents: one is primary (holds the lease), the other stands by.
    let mut primary: Option<Lease> = None;
    let mut last_lease = Instant::now();
    let mut proposed = false;
    let mut started_at: Option<Instant> = None;
    loop {
        if ctx.started && started_at.is_none() {
            started_at = Some(Instant::now());
        }
        if !risk && ctx.started && !ctx.stopping && last_lease.elapsed() >= LEASE_CHECK {
            last_lease = Instant::now();
            hold_primary(ctx, &mut primary);
        }
        if risk && !proposed && started_at.is_some_and(|t| t.elapsed() >= PROPOSE_AFTER) {
            proposed = true;
            propose_limit(ctx)?;
        }
        let items = step(ctx, idle)?;
        idle = items.is_empty();
        if !idle {
            last_request = Instant::now();
        }
        // After "stop", keep answering until the strategies have gone quiet.
        if ctx.exit || (ctx.stopping && last_request.elapsed() > Duration::from_millis(300)) {
            return Ok(());
        }
        for item in items {
            if !item.header.flags.contains(Flags::EXPECTS_REPLY) {
                continue;
            }
            let symbol = item.request_symbol.unwrap_or_default();
            let approve = !risk || fastrand::u8(..100) >= 5;
            let payload = Payload::TaskResponse(TaskResponse {
                task_id: symbol.clone(),
                status: if approve {
                    TaskStatus::Completed
                } else {
                    TaskStatus::Rejected
                },
                result: Some(Value::Map(record! { "symbol" => symbol.as_str() })),
                ..Default::default()
            });
            let m = Message::task_response(ctx.agent.identity(), TaskResponse::default());
            if ctx.agent.sender().reply(&item.header, payload).is_ok() {
                ctx.sent(&m, RouteKind::Agent);
                ctx.count(if risk { "checks" } else { "fills" });
            }
            if !approve {
                ctx.count("denied");
                let alert = Message::notification(
                    ctx.agent.identity(),
                    Notification {
                        event: "risk.denied".into(),
                        data: record! { "symbol" => symbol.as_str() },
                    },
                )
                .priority(MessagePriority::Critical);
                let alerts = ctx.alerts_topic.clone();
                ctx.publish(&alerts, &alert);
            }
        }
        if ctx.stopping || ctx.exit {
            if let Some(lease) = primary.take() {
                let _ = lease.release();
            }
            // Answer what is still queued, then stop.
            for item in ctx.drain()? {
                if item.header.flags.contains(Flags::EXPECTS_REPLY) {
                    let payload = Payload::TaskResponse(TaskResponse::default());
                    let m = Message::task_response(ctx.agent.identity(), TaskResponse::default());
                    if ctx.agent.sender().reply(&item.header, payload).is_ok() {
                        ctx.sent(&m, RouteKind::Agent);
                    }
                }
            }
            return Ok(());
        }
    }
}
