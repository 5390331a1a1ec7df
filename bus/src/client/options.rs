//! What an agent attaches with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentbus_ipc::wait::Wait;

use super::{BreakerConfig, ClientError, DeliveryConfig, ReconnectPolicy};
use crate::paths::{self, SocketDirError};

/// How to attach: which bus, who this agent is, how it waits.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// The bus name (`default`).
    pub bus: String,
    /// Unique on the bus.
    pub agent_id: String,
    /// Its type: load-balanced routing picks agents by type.
    pub agent_type: String,
    /// Which instance, when several run.
    pub instance_id: Option<String>,
    /// What it can do: capability routing picks agents having all that a message requires.
    pub capabilities: Vec<String>,
    /// How many tasks it holds at most (load-balanced routing keeps it under this).
    pub max_capacity: u32,
    /// Where bus sockets live; `None`: [`crate::paths::default_socket_dir`].
    pub socket_dir: Option<PathBuf>,
    /// How `recv_timeout` and blocking sends wait.
    pub wait: Wait,
    /// How long a control request (attach, subscribe, ...) may take.
    pub control_timeout: Duration,
    /// Make this process non-dumpable before attaching (`false`): see
    /// [`AttachOptions::non_dumpable`].
    pub non_dumpable: bool,
    /// A circuit breaker per request destination ([`BreakerConfig::default`]: five failures in a
    /// row open it for five seconds); `None`: none.
    pub breaker: Option<BreakerConfig>,
    /// How at-least-once messages are retried, and how long this agent remembers the ones it
    /// took to drop their retried copies ([`DeliveryConfig::default`]: the spec's).
    pub delivery: DeliveryConfig,
    /// How it re-attaches when agentd restarts ([`ReconnectPolicy::default`]: tries again from
    /// 20 ms, doubling to 1 s, for ever); `None`: it stays disconnected.
    pub reconnect: Option<ReconnectPolicy>,
}

impl AttachOptions {
    /// Options for agent `agent_id` of type `agent_type` on bus `bus`, parking when idle.
    pub fn new(bus: &str, agent_id: &str, agent_type: &str) -> AttachOptions {
        AttachOptions {
            bus: bus.into(),
            agent_id: agent_id.into(),
            agent_type: agent_type.into(),
            instance_id: None,
            capabilities: Vec::new(),
            max_capacity: 100,
            socket_dir: None,
            wait: Wait::default(),
            control_timeout: Duration::from_secs(10),
            non_dumpable: false,
            breaker: Some(BreakerConfig::default()),
            delivery: DeliveryConfig::default(),
            reconnect: Some(ReconnectPolicy::default()),
        }
    }

    /// Sets how it re-attaches when agentd restarts (`None`: it stays disconnected).
    pub fn reconnect(mut self, policy: Option<ReconnectPolicy>) -> Self {
        self.reconnect = policy;
        self
    }

    /// Sets how at-least-once messages are retried and deduplicated.
    pub fn delivery(mut self, delivery: DeliveryConfig) -> Self {
        self.delivery = delivery;
        self
    }

    /// Sets the request destinations' circuit breakers (`None`: no breakers).
    pub fn breaker(mut self, breaker: Option<BreakerConfig>) -> Self {
        self.breaker = breaker;
        self
    }

    /// Adds to what it can do (capability routing picks agents having all that a message
    /// requires); duplicates are harmless.
    pub fn capabilities<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.capabilities.extend(caps.into_iter().map(Into::into));
        self
    }

    /// Sets where the bus socket is looked for, instead of
    /// [`crate::paths::default_socket_dir`].
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }

    /// Sets how many tasks it holds at most (100 unless set): load-balanced and capability
    /// routing pass it over while its load is at this.
    pub fn max_capacity(mut self, n: u32) -> Self {
        self.max_capacity = n;
        self
    }

    /// Sets how `recv_timeout` and blocking sends wait (parking unless set).
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }

    /// Makes the attaching process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`) before it
    /// connects, so that other processes of the same uid cannot open its lanes through
    /// `/proc/<pid>/fd`, read its memory through `/proc/<pid>/mem`, or `ptrace` it.
    ///
    /// Without it, any process of the agent's uid can read and write the agent's lanes: the
    /// bus isolates agents of different uids only. The setting is for the whole process and
    /// stays after the agent detaches; it also stops core dumps, and debuggers and profilers
    /// running as the same uid can no longer attach. Root (`CAP_SYS_PTRACE`) can still read
    /// everything. An `execve` of a new program resets it.
    ///
    /// ```no_run
    /// use agentbus::client::{Agent, AttachOptions};
    ///
    /// let agent = Agent::attach(AttachOptions::new("demo", "vault", "secrets").non_dumpable(true));
    /// ```
    pub fn non_dumpable(mut self, yes: bool) -> Self {
        self.non_dumpable = yes;
        self
    }

    /// What `Agent::attach` does before it connects: checks the socket directory
    /// ([`crate::paths::check_socket_dir`]; a missing one means no agentd runs), then applies
    /// the settings that concern the whole process (today: [`Self::non_dumpable`]).
    pub(crate) fn prepare_to_connect(&self, dir: &Path, socket: &Path) -> Result<(), ClientError> {
        match paths::check_socket_dir(dir) {
            Ok(()) => {}
            Err(SocketDirError::Missing { .. }) => {
                return Err(ClientError::BusNotRunning {
                    bus: self.bus.clone(),
                    path: socket.into(),
                })
            }
            Err(e) => return Err(e.into()),
        }
        if self.non_dumpable {
            nix::sys::prctl::set_dumpable(false)
                .map_err(|e| ClientError::NonDumpable(std::io::Error::from(e)))?;
        }
        Ok(())
    }
}
