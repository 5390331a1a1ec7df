//! agentbus beyond one host: a bridge between a local bus and NATS.
//!
//! agentbus stays the fast path inside a host; between hosts messages ride NATS, whose subjects
//! use the same `*` and `>` wildcards as topics. A [`Bridge`] attaches to the local bus as an
//! agent and
//! - **exports** topics: every message on a topic matching an export pattern is published to
//!   the NATS subject `<prefix>.<topic>`, its body bytes as they are and its header fields
//!   (type, priority, ttl, ids, correlation, trace context, origin) in NATS headers
//!   ([`carried`]);
//! - **imports** subjects: every NATS message on `<prefix>.<pattern>` is republished on the
//!   local topic of the same name;
//! - **serves** agent types for other hosts: a NATS request on `<prefix>-rpc.type.<T>` becomes
//!   a local request to type `T`, and its reply goes back;
//! - **proxies** agent types served elsewhere: it attaches an agent of type `T` that forwards
//!   each request it gets as a NATS request, and the reply comes back correlated; timeouts hold
//!   end to end.
//!
//! Topics listed in `jetstream` travel at least once over JetStream ([`durable`]); the rest at
//! most once over core NATS.
//!
//! No loops: each message carries its origin (the bus id of the bridge that exported it), a
//! bridge never imports its own, and it never exports what it imported. The NATS client
//! (`async-nats`) and its runtime (tokio) live in this crate only: nothing of them enters the
//! client library or agentd.
//!
//! ```no_run
//! use agentbus_bridge::{Bridge, BridgeConfig};
//!
//! let mut cfg = BridgeConfig::new("desk-a", "nats://127.0.0.1:4222");
//! cfg.export = vec!["market.>".into()];
//! cfg.import = vec!["orders.>".into()];
//! let bridge = Bridge::start(cfg)?;
//! println!("{}", bridge.stats());
//! # Ok::<(), agentbus_bridge::BridgeError>(())
//! ```

pub mod carried;
mod config;
pub mod durable;
mod export;
mod import;
mod link;
pub mod local_nats;
mod requests;
mod run;
pub mod stats;
pub mod subject;

pub use config::{BridgeConfig, ConfigError};
pub use local_nats::LocalNats;
pub use run::{Bridge, BridgeError};
pub use stats::BridgeStats;
