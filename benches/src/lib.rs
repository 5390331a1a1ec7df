//! The agentbus latency and throughput harness.
//!
//! Every case runs between two processes (this binary re-executed as a child with a hidden
//! `--child` argument), each pinned to its own core, sharing a memfd segment handed over a Unix
//! socket. Latencies are round trips recorded in an HdrHistogram and reported beside the floor:
//! the same payload carried in bare cache-line slots ([`agentbus_ipc::mailbox::Mailbox`]).

pub mod bridge;
pub mod bus_cases;
pub mod cases;
pub mod child;
pub mod control_churn;
pub mod harness;
#[cfg(feature = "peers")]
pub mod iceoryx2_peer;
pub mod patterns;
pub mod peers;
pub mod plot;
pub mod report;
pub mod router_wait;
pub mod slow_subscriber;
pub mod soak;
pub mod tail;
