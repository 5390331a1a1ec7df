//! One message of every type with every optional field set, for the codec tests.
#![allow(dead_code)]

use std::time::Duration;

use agentbus::*;

pub fn agent(id: &str, kind: &str) -> AgentIdentifier {
    AgentIdentifier {
        agent_id: id.into(),
        agent_type: kind.into(),
        instance_id: Some(format!("{id}#0")),
    }
}

fn nested() -> Value {
    Value::Map(record! {
        "null" => Value::Null,
        "list" => vec![Value::Int(-1), Value::Float(2.5), Value::Bool(true), Value::Bytes(vec![0, 255])],
        "deep" => record! { "x" => "y" },
    })
}

fn details() -> ErrorDetails {
    ErrorDetails {
        code: "E42".into(),
        message: "limit".into(),
        details: Some(nested()),
    }
}

/// Every payload type, each fully populated.
pub fn payloads() -> Vec<Payload> {
    vec![
        Payload::TaskRequest(TaskRequest {
            task_id: "t-1".into(),
            task_type: "place_order".into(),
            description: "buy 100 AAPL".into(),
            parameters: record! { "symbol" => "AAPL", "qty" => 100i64, "px" => 187.25 },
            constraints: vec![TaskConstraint {
                name: "max_slippage_bps".into(),
                value: Value::Int(5),
            }],
            deadline_ns: Some(1_800_000_000_000_000_000),
            required_capabilities: vec!["execution".into(), "equities".into()],
            dependencies: vec!["t-0".into()],
        }),
        Payload::TaskResponse(TaskResponse {
            task_id: "t-1".into(),
            status: TaskStatus::Failed,
            result: Some(nested()),
            error: Some(details()),
            estimated_completion_ns: Some(7),
            progress: Some(0.5),
        }),
        Payload::TaskUpdate(TaskUpdate {
            task_id: "t-1".into(),
            status: TaskStatus::InProgress,
            progress: Some(0.25),
            message: Some("routing".into()),
        }),
        Payload::StatusUpdate(StatusUpdate {
            agent_status: AgentStatus::Busy,
            current_tasks: vec!["t-1".into(), "t-2".into()],
            available_capabilities: vec!["risk".into()],
            resource_usage: ResourceUsage {
                cpu_percent: 12.5,
                memory_bytes: 1 << 30,
                queue_depth: 3,
                load: 4,
                capacity: 8,
            },
            performance_metrics: PerformanceMetrics {
                messages_processed: 1_000_000,
                avg_latency_ns: 250,
                p99_latency_ns: 900,
                error_count: 2,
            },
        }),
        Payload::ResourceRequest(ResourceRequest {
            request_id: "r-1".into(),
            resource_type: "risk_budget".into(),
            amount: 1e6,
            parameters: record! { "desk" => "eq" },
        }),
        Payload::ResourceResponse(ResourceResponse {
            request_id: "r-1".into(),
            granted: false,
            amount: 0.0,
            reason: Some("over limit".into()),
        }),
        Payload::Coordination(Coordination {
            coordination_type: CoordinationType::ConsensusRequest,
            participants: vec![agent("a", "strategy"), agent("b", "risk")],
            coordination_data: record! { "proposal" => nested() },
            proposed_action: Some(ProposedAction {
                action: "reduce_exposure".into(),
                parameters: record! { "pct" => 10i64 },
            }),
        }),
        Payload::Notification(Notification {
            event: "trade.executed".into(),
            data: record! { "fill" => 187.3 },
        }),
        Payload::Heartbeat(Heartbeat {
            sequence: 99,
            status: AgentStatus::Active,
            load: 1,
        }),
        Payload::Error(ErrorPayload {
            kind: ErrorKind::AgentUnreachable,
            details: "no agent with capability fx".into(),
        }),
        Payload::Raw(vec![1, 2, 3, 4, 5, 6, 7, 8, 9]),
    ]
}

/// A message around `payload` with every header and body field set.
pub fn full_message(payload: Payload, seq: u64) -> Message {
    let message_type = payload.message_type().unwrap_or(MessageType::Notification);
    let mut m = Message::new(message_type, agent("sender", "strategy"), payload)
        .to(agent("r1", "risk"))
        .to(agent("r2", "execution"))
        .priority(MessagePriority::High)
        .correlation(MessageId(0xC0FFEE))
        .ttl(Duration::from_millis(1500))
        .metadata("desk", "equities")
        .metadata("trace", "on")
        .reply_to("replies.sender")
        .trace([7; 16], [9; 8])
        .flags(Flags::ACK_REQUESTED);
    m.id = IdGenerator::new().next_id();
    m.id = MessageId(m.id.0 + seq);
    m.timestamp_ns = 1_700_000_000_123_456_789;
    m
}

pub fn route() -> Route {
    Route {
        kind: RouteKind::Multicast,
        destination: 77,
    }
}
