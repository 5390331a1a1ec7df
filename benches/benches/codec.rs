//! Cost of the message codec per message: encoding into a ring frame, and reading in place with
//! validation (bytecheck) and without. `cargo bench -p agentbus-benches --bench codec`
//!
//! Reading the clock costs about as much as the smallest operation, so each sample times a batch
//! of 64 operations and records the mean; p50 and p99 are over those batches.

use std::hint::black_box;

use agentbus::codec::header_for;
use agentbus::*;
use agentbus_benches::report::{histogram, machine};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::ring::{Consumer, Producer, Ring, RingOptions};
use hdrhistogram::Histogram;

const BATCH: u64 = 64;
const SAMPLES: u64 = 20_000;

fn me() -> AgentIdentifier {
    AgentIdentifier::new("strategy-1", "strategy")
}

fn cases() -> Vec<(&'static str, Message)> {
    let order = TaskRequest {
        task_id: "ord-000123".into(),
        task_type: "place_order".into(),
        description: String::new(),
        parameters: record! { "symbol" => "AAPL", "side" => "buy", "qty" => 100i64, "px" => 187.25 },
        required_capabilities: vec!["execution".into()],
        ..Default::default()
    };
    let status = StatusUpdate {
        agent_status: AgentStatus::Active,
        current_tasks: vec!["ord-000123".into(), "ord-000124".into()],
        available_capabilities: vec!["execution".into(), "equities".into()],
        resource_usage: ResourceUsage {
            cpu_percent: 35.0,
            memory_bytes: 1 << 28,
            queue_depth: 2,
            load: 2,
            capacity: 16,
        },
        performance_metrics: PerformanceMetrics {
            messages_processed: 123_456,
            avg_latency_ns: 300,
            p99_latency_ns: 1200,
            error_count: 0,
        },
    };
    vec![
        (
            "raw 64 B",
            Message::raw(me(), MessageType::Notification, vec![0x5A; 64]),
        ),
        ("TaskRequest (order)", Message::task_request(me(), order)),
        ("StatusUpdate", Message::status_update(me(), status)),
    ]
}

fn route() -> Route {
    Route {
        kind: RouteKind::Agent,
        destination: 1,
    }
}

fn per_op(hist: &mut Histogram<u64>, mut batch: impl FnMut()) {
    for _ in 0..SAMPLES {
        let t0 = monotonic_ns();
        batch();
        let t1 = monotonic_ns();
        hist.record(((t1 - t0) / BATCH).max(1)).expect("in range");
    }
}

fn drain(rx: &mut Consumer) {
    while rx.peek().expect("valid ring").is_some() {
        rx.pop();
    }
    rx.release();
}

fn encode_cost(tx: &mut Producer, rx: &mut Consumer, m: &Message) -> Histogram<u64> {
    let header = header_for(m, route(), 0);
    let mut hist = histogram();
    for _ in 0..SAMPLES {
        let t0 = monotonic_ns();
        for _ in 0..BATCH {
            encode(tx, &header, m).expect("room");
        }
        let t1 = monotonic_ns();
        hist.record(((t1 - t0) / BATCH).max(1)).expect("in range");
        drain(rx);
    }
    hist
}

fn main() {
    let (cores, cpu) = machine();
    println!("codec: ns per message (mean of batches of {BATCH}, {SAMPLES} batches); {cores} cores, {cpu}");
    println!(
        "{:<22}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "message", "bytes", "enc p50", "enc p99", "chk p50", "chk p99", "unchk p50", "unchk p99"
    );
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 20).parking(false))
        .expect("ring")
        .split();
    for (name, m) in cases() {
        let enc = encode_cost(&mut tx, &mut rx, &m);
        encode(&mut tx, &header_for(&m, route(), 0), &m).expect("room");
        let frame = rx.peek().expect("valid").expect("a frame");
        let bytes = frame.len();
        let mut checked = histogram();
        per_op(&mut checked, || {
            for _ in 0..BATCH {
                let env = decode(black_box(frame)).expect("valid");
                black_box(env.payload().is_some());
            }
        });
        let mut unchecked = histogram();
        per_op(&mut unchecked, || {
            for _ in 0..BATCH {
                // SAFETY: the frame was written by `encode` above and is not modified while read.
                let env = unsafe { decode_unchecked(black_box(frame)) }.expect("valid header");
                black_box(env.payload().is_some());
            }
        });
        println!(
            "{:<22}{:>8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            name,
            bytes,
            enc.value_at_quantile(0.5),
            enc.value_at_quantile(0.99),
            checked.value_at_quantile(0.5),
            checked.value_at_quantile(0.99),
            unchecked.value_at_quantile(0.5),
            unchecked.value_at_quantile(0.99),
        );
        drain(&mut rx);
    }
}
