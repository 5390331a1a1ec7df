//! `agentbus pub`, `sub` and `request`: messages from a shell, as the `nats` CLI allows.

use std::time::{Duration, Instant};

use agentbus::client::{Agent, Raw};
use agentbus::{Message, MessageType, Payload};
use anyhow::{bail, Context};

use super::{json, BusArgs};

/// `agentbus pub TOPIC DATA`.
#[derive(Debug, Clone, clap::Args)]
pub struct PubArgs {
    /// The topic (`market.AAPL`).
    pub topic: String,
    /// The payload (sent as raw bytes).
    pub data: String,
    /// Send it with this trace id (32 hex digits) and a fresh span id: agentd's trace log
    /// (`agentd --trace-log N`) then keeps it for `agentbus trace`.
    #[arg(long, value_name = "TRACE_ID")]
    pub trace: Option<String>,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Publishes one message.
pub fn pub_cmd(args: &PubArgs) -> anyhow::Result<()> {
    let mut agent = args.bus.attach()?;
    let topic = agent.topic(&args.topic)?;
    let wait = Duration::from_secs(5);
    let id = match &args.trace {
        None => agent.send_blocking(&topic, Raw(args.data.as_bytes()), wait)?,
        Some(trace) => {
            let trace_id = super::trace::parse_trace_id(trace)?;
            let span_id = fastrand::u64(1..).to_be_bytes();
            let message = Message::raw(
                agent.identity(),
                MessageType::Notification,
                args.data.as_bytes().to_vec(),
            )
            .trace(trace_id, span_id);
            agent.send_blocking(&topic, &message, wait)?
        }
    };
    if args.bus.json {
        println!(
            "{}",
            serde_json::json!({ "topic": args.topic, "message_id": id.0 })
        );
    } else {
        println!(
            "published {} bytes on {} (message {id})",
            args.data.len(),
            args.topic
        );
    }
    agent.detach()?;
    Ok(())
}

/// `agentbus sub PATTERN`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubArgs {
    /// The pattern (`market.>`).
    pub pattern: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Prints messages on topics matching the pattern as they come, decoded.
pub fn sub_cmd(args: &SubArgs) -> anyhow::Result<()> {
    let mut agent = args.bus.attach()?;
    let _sub = agent.subscribe(&args.pattern)?;
    if !args.bus.json {
        eprintln!("subscribed to {}", args.pattern);
    }
    let until = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut seen = 0u64;
    while args.count.is_none_or(|n| seen < n) && until.is_none_or(|t| Instant::now() < t) {
        let wait = until.map_or(Duration::from_millis(200), |t| {
            t.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(200))
        });
        let Some(d) = agent.recv_timeout(wait)? else {
            continue;
        };
        let m = d.to_message();
        seen += 1;
        print_message(&m, args.bus.json);
    }
    Ok(())
}

/// `agentbus request DEST DATA`.
#[derive(Debug, Clone, clap::Args)]
pub struct RequestArgs {
    /// Who answers: an agent id, `cap:a,b` (capabilities) or `type:t`.
    pub destination: String,
    /// The request's payload (sent as raw bytes).
    pub data: String,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Sends a request and prints its answer.
pub fn request_cmd(args: &RequestArgs) -> anyhow::Result<()> {
    let mut agent = args.bus.attach()?;
    let request = Message::raw(
        agent.identity(),
        MessageType::TaskRequest,
        args.data.clone().into_bytes(),
    );
    let timeout = Duration::from_secs_f64(args.timeout.max(0.001));
    let answer = ask(&mut agent, &args.destination, &request, timeout)
        .with_context(|| format!("request to {}", args.destination))?;
    print_message(&answer, args.bus.json);
    agent.detach()?;
    Ok(())
}

fn ask(
    agent: &mut Agent,
    destination: &str,
    request: &Message,
    timeout: Duration,
) -> anyhow::Result<Message> {
    Ok(if let Some(caps) = destination.strip_prefix("cap:") {
        let caps: Vec<&str> = caps.split(',').filter(|c| !c.is_empty()).collect();
        if caps.is_empty() {
            bail!("cap: needs at least one capability (cap:risk_check)");
        }
        let to = agent.capability(&caps)?;
        agent.request(&to, request, timeout)?
    } else if let Some(t) = destination.strip_prefix("type:") {
        let to = agent.agent_type(t)?;
        agent.request(&to, request, timeout)?
    } else {
        let to = agent.peer(destination)?;
        agent.request(&to, request, timeout)?
    })
}

/// One message as `sub` and `request` print it: a line of text, or a JSON object.
fn print_message(m: &Message, as_json: bool) {
    let body = match &m.payload {
        Payload::Raw(b) => serde_json::json!(String::from_utf8_lossy(b)),
        Payload::Notification(n) => {
            serde_json::json!({ "event": n.event, "data": json::record(&n.data) })
        }
        other => serde_json::json!(format!("{other:?}")),
    };
    if as_json {
        println!(
            "{}",
            serde_json::json!({
                "id": m.id.0, "type": m.message_type.to_string(),
                "priority": format!("{:?}", m.priority), "from": m.from.agent_id,
                "body": body,
            })
        );
    } else {
        println!(
            "[{}] {} from {}: {body}",
            m.message_type,
            m.id,
            super::printable(&m.from.agent_id)
        );
    }
}
