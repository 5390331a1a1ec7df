//! agentd: the daemon that owns a bus.
//!
//! Two threads: the control thread (a `mio` loop on the bus's Unix socket: attach, subscribe,
//! resolve, list, stats, dead letters) and the router thread (pinned; the only reader of every
//! agent's outbound lanes and the only writer of their inbound lanes). The control thread
//! changes routing only through commands the router applies between passes, and answers a
//! request that changes routing only after the router has applied it.
//!
//! Run it as its own process (`agentd --bus NAME`) or embedded: [`Daemon::start`].
#![forbid(unsafe_code)]

pub mod bus_header;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dead_letter_file;
pub mod dead_letters;
pub mod exposition;
pub mod leases;
pub mod metrics_server;
pub mod registry;
pub mod router;

pub use config::{Config, ConfigError};
pub use daemon::{Daemon, StartError};
