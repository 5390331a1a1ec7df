//! What an agent attaches with.

use std::path::PathBuf;
use std::time::Duration;

use agentbus_ipc::wait::Wait;

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
        }
    }

    /// Adds capabilities.
    pub fn capabilities<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.capabilities.extend(caps.into_iter().map(Into::into));
        self
    }

    /// Sets the socket directory.
    pub fn socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.socket_dir = Some(dir.into());
        self
    }

    /// Sets the capacity.
    pub fn max_capacity(mut self, n: u32) -> Self {
        self.max_capacity = n;
        self
    }

    /// Sets the wait strategy.
    pub fn wait(mut self, wait: Wait) -> Self {
        self.wait = wait;
        self
    }
}
