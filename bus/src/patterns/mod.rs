//! Coordination patterns on top of the client (the spec's "Communication Patterns" and its
//! coordination types): each usable by a trading process in a few lines, each with its failure
//! behaviour spelled out.
//!
//! - [`Lease`]: named leases arbitrated by agentd with fencing tokens: leader election (one
//!   unit of a one-unit lease), resource allocation (units of a larger one) and conflict
//!   resolution (waiters served by priority, then arrival).
//! - [`chain`]: a message offered to local and remote handlers in order until one takes it.
//! - [`ChannelPool`]: direct channels per peer, reused, bounded, evicted when their peer dies.
//! - [`consensus`]: a proposal voted on by weighted participants in parallel, decided at a
//!   threshold as soon as the outcome is certain.
//! - [`workflow`]: steps run by agents as soon as their dependencies are done, with results
//!   feeding later parameters, conditions, and retry / skip / fail on error.

pub mod chain;
pub mod consensus;
mod lease;
mod pool;
pub mod workflow;

pub use lease::{AcquireError, FencingToken, Lease, LeaseLost, LeaseOptions};
pub use pool::{ChannelPool, PoolError, PooledChannel};
