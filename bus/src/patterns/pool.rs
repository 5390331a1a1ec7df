//! A pool of direct channels per peer (the spec's `ConnectionPool`): at most `max` per peer,
//! idle ones reused, callers waiting (with a deadline) when all are in use, and channels whose
//! peer died evicted.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::client::shared::Shared;
use crate::client::{Agent, Channel, ClientError};

/// Channels to one peer.
#[derive(Debug, Default)]
struct PeerChannels {
    idle: Vec<Channel>,
    /// Lent out, or being opened.
    in_use: usize,
}

#[derive(Debug)]
struct PoolState {
    shared: Arc<Shared>,
    max: usize,
    peers: Mutex<HashMap<String, PeerChannels>>,
    /// Signalled when a channel comes back (or a reservation is given up).
    returned: Condvar,
}

impl PoolState {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PeerChannels>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why [`ChannelPool::get`] gave no channel.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every channel to the peer was in use until the deadline.
    #[error("all {max} channels to {peer} stayed in use for {waited:?}: wait longer, return channels sooner, or allow more")]
    Exhausted {
        /// The peer.
        peer: String,
        /// The pool's limit per peer.
        max: usize,
        /// How long it waited.
        waited: Duration,
    },
    /// A new channel could not be opened (the peer is not attached, agentd is gone).
    #[error("opening a channel to {peer}: {source}")]
    Open {
        /// The peer.
        peer: String,
        /// Why.
        source: ClientError,
    },
}

/// Direct channels to peers, at most `max` per peer, shared by the agent's threads.
///
/// ```
/// use std::time::Duration;
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::patterns::ChannelPool;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-pool-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let strategy = Agent::attach(options("strategy-1", "strategy"))?;
/// let _exec = Agent::attach(options("exec-1", "execution"))?;   // accepts channels to it
/// let pool = ChannelPool::new(&strategy, 5);                   // the spec's default of 5
/// let first = pool.get("exec-1", Duration::from_secs(1))?;      // opened
/// let id = first.id();
/// drop(first);                                                  // back to the pool, idle
/// assert_eq!(pool.get("exec-1", Duration::from_secs(1))?.id(), id); // reused
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ChannelPool {
    state: Arc<PoolState>,
}

impl ChannelPool {
    /// A pool of `agent`'s channels, at most `max` (at least 1) per peer.
    pub fn new(agent: &Agent, max: usize) -> ChannelPool {
        ChannelPool {
            state: Arc::new(PoolState {
                shared: Arc::clone(&agent.tx.shared),
                max: max.max(1),
                peers: Mutex::new(HashMap::new()),
                returned: Condvar::new(),
            }),
        }
    }

    /// A channel to `peer`: an idle one (those whose peer died are evicted first), a new one
    /// while the pool has fewer than its limit, or the first returned within `wait`.
    pub fn get(&self, peer: &str, wait: Duration) -> Result<PooledChannel, PoolError> {
        let start = Instant::now();
        let deadline = start + wait;
        let mut peers = self.state.lock();
        loop {
            let entry = peers.entry(peer.to_string()).or_default();
            entry.idle.retain(|c| !c.is_closed());
            if let Some(channel) = entry.idle.pop() {
                entry.in_use += 1;
                return Ok(self.lend(peer, channel));
            }
            if entry.in_use < self.state.max {
                entry.in_use += 1;
                drop(peers);
                return match crate::client::agent::open_channel(&self.state.shared, peer) {
                    Ok(channel) => Ok(self.lend(peer, channel)),
                    Err(source) => {
                        self.give_back(peer, None);
                        Err(PoolError::Open {
                            peer: peer.into(),
                            source,
                        })
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(PoolError::Exhausted {
                    peer: peer.into(),
                    max: self.state.max,
                    waited: now - start,
                });
            }
            peers = self
                .state
                .returned
                .wait_timeout(peers, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Channels to `peer` idle in the pool, and lent out.
    pub fn counts(&self, peer: &str) -> (usize, usize) {
        self.state
            .lock()
            .get(peer)
            .map_or((0, 0), |p| (p.idle.len(), p.in_use))
    }

    fn lend(&self, peer: &str, channel: Channel) -> PooledChannel {
        PooledChannel {
            channel: Some(channel),
            peer: peer.into(),
            pool: self.clone(),
        }
    }

    /// A lent channel (or a reservation that opened none) comes back.
    fn give_back(&self, peer: &str, channel: Option<Channel>) {
        let mut peers = self.state.lock();
        if let Some(entry) = peers.get_mut(peer) {
            entry.in_use = entry.in_use.saturating_sub(1);
            if let Some(c) = channel.filter(|c| !c.is_closed()) {
                entry.idle.push(c);
            }
        }
        drop(peers);
        self.state.returned.notify_one();
    }
}

/// A channel lent by a [`ChannelPool`]: used through `Deref` to [`Channel`], back to the pool
/// when dropped (evicted instead if its peer closed it or died).
#[derive(Debug)]
pub struct PooledChannel {
    channel: Option<Channel>,
    peer: String,
    pool: ChannelPool,
}

impl std::ops::Deref for PooledChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        self.channel.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for PooledChannel {
    fn deref_mut(&mut self) -> &mut Channel {
        self.channel.as_mut().expect("present until dropped")
    }
}

impl Drop for PooledChannel {
    fn drop(&mut self) {
        self.pool.give_back(&self.peer, self.channel.take());
    }
}
