//! agentd's configuration: a TOML file, overridden by command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentbus::paths;
use agentbus_ipc::wait::Wait;
use serde::Deserialize;

/// Everything agentd needs to run a bus.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bus name.
    pub bus: String,
    /// Where the control socket goes.
    pub socket_dir: PathBuf,
    /// The core the router thread is pinned to (`None`: not pinned).
    pub router_core: Option<usize>,
    /// How the router waits when idle.
    pub wait: Wait,
    /// With the parking wait: how long the router spins after its last frame before it
    /// sleeps. Longer catches the next message sooner (no futex wake-up) at the price of a
    /// core burning that long after every burst; see the README's table.
    pub router_spin: Duration,
    /// Bytes per lane (a power of two, 4 KiB to 64 MiB).
    pub lane_capacity: usize,
    /// Most agents at once (1 to 256).
    pub max_agents: usize,
    /// Most frames the router takes from one lane in one pass.
    pub batch_limit: usize,
    /// How often agents should beat.
    pub heartbeat_interval: Duration,
    /// A heartbeat older than this makes an agent UNRESPONSIVE.
    pub heartbeat_timeout: Duration,
    /// How long a frame without a ttl may wait for a full destination before it is dead.
    pub delivery_timeout: Duration,
    /// Users allowed to attach besides agentd's own.
    pub allow_uids: Vec<u32>,
    /// Groups allowed to attach.
    pub allow_gids: Vec<u32>,
    /// Dead letters kept (the oldest are dropped, and counted, past this).
    pub dead_letter_capacity: usize,
    /// Bytes of dead letters kept, frames included (the oldest are dropped, and counted, past
    /// this).
    pub dead_letter_bytes: usize,
    /// Dead letters a second one agent may cause, sustained, before it is throttled.
    pub dead_letter_rate: u64,
    /// Dead letters one agent may cause at once before it is throttled.
    pub dead_letter_burst: u64,
    /// Whether lanes have doorbells (agents and router may park). False for busy-spinning
    /// deployments: publishing then skips a fence per batch, and nobody can sleep on a lane.
    pub lane_parking: bool,
}

/// The router's default spin before parking (measured: README, "Choosing the router's wait").
pub const DEFAULT_ROUTER_SPIN: Duration = Duration::from_micros(5);

/// The most agents a bus can hold.
pub const MAX_AGENTS: usize = 256;

impl Config {
    /// Defaults for bus `bus`.
    pub fn new(bus: &str) -> Config {
        Config {
            bus: bus.into(),
            socket_dir: paths::default_socket_dir(),
            router_core: None,
            wait: Wait::default(),
            router_spin: DEFAULT_ROUTER_SPIN,
            lane_capacity: 1 << 16,
            max_agents: 64,
            batch_limit: 64,
            heartbeat_interval: Duration::from_millis(100),
            heartbeat_timeout: Duration::from_secs(2),
            delivery_timeout: Duration::from_secs(5),
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            dead_letter_capacity: 100_000,
            dead_letter_bytes: 64 << 20,
            dead_letter_rate: 1_000,
            dead_letter_burst: 10_000,
            lane_parking: true,
        }
    }

    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !paths::valid_bus_name(&self.bus) {
            return Err(format!(
                "bus name {:?} is not valid: use 1 to 64 letters, digits, '-', '_' or '.'",
                self.bus
            ));
        }
        if !self.lane_capacity.is_power_of_two() || !(4096..=1 << 26).contains(&self.lane_capacity)
        {
            return Err(format!(
                "lane_capacity {} must be a power of two from 4096 to 67108864 bytes",
                self.lane_capacity
            ));
        }
        if !(1..=MAX_AGENTS).contains(&self.max_agents) {
            return Err(format!(
                "max_agents {} must be 1 to {MAX_AGENTS}",
                self.max_agents
            ));
        }
        if self.batch_limit == 0 {
            return Err("batch_limit must be at least 1".into());
        }
        if self.dead_letter_rate == 0 || self.dead_letter_burst == 0 {
            return Err(
                "dead_letter_rate and dead_letter_burst must be at least 1 (they bound how fast one agent can fill the dead-letter queue)"
                    .into(),
            );
        }
        if self.dead_letter_bytes < 4096 {
            return Err(format!(
                "dead_letter_bytes {} must be at least 4096",
                self.dead_letter_bytes
            ));
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err("heartbeat_timeout must be longer than heartbeat_interval".into());
        }
        Ok(())
    }

    /// Applies a TOML file's settings over these.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        self.apply_toml(&text)
            .map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Applies TOML settings over these.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let f: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(v) = f.bus {
            self.bus = v;
        }
        if let Some(v) = f.socket_dir {
            self.socket_dir = v;
        }
        if let Some(v) = f.router_core {
            self.router_core = Some(v);
        }
        if let Some(v) = f.wait {
            self.wait = v.parse()?;
        }
        if let Some(v) = f.router_spin_us {
            self.router_spin = Duration::from_micros(v);
        }
        if let Some(v) = f.lane_capacity {
            self.lane_capacity = v;
        }
        if let Some(v) = f.max_agents {
            self.max_agents = v;
        }
        if let Some(v) = f.batch_limit {
            self.batch_limit = v;
        }
        if let Some(v) = f.heartbeat_interval_ms {
            self.heartbeat_interval = Duration::from_millis(v);
        }
        if let Some(v) = f.heartbeat_timeout_ms {
            self.heartbeat_timeout = Duration::from_millis(v);
        }
        if let Some(v) = f.delivery_timeout_ms {
            self.delivery_timeout = Duration::from_millis(v);
        }
        if let Some(v) = f.allow_uids {
            self.allow_uids = v;
        }
        if let Some(v) = f.allow_gids {
            self.allow_gids = v;
        }
        if let Some(v) = f.dead_letter_capacity {
            self.dead_letter_capacity = v;
        }
        if let Some(v) = f.dead_letter_bytes {
            self.dead_letter_bytes = v;
        }
        if let Some(v) = f.dead_letter_rate {
            self.dead_letter_rate = v;
        }
        if let Some(v) = f.dead_letter_burst {
            self.dead_letter_burst = v;
        }
        if let Some(v) = f.lane_parking {
            self.lane_parking = v;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bus: Option<String>,
    socket_dir: Option<PathBuf>,
    router_core: Option<usize>,
    wait: Option<String>,
    router_spin_us: Option<u64>,
    lane_capacity: Option<usize>,
    max_agents: Option<usize>,
    batch_limit: Option<usize>,
    heartbeat_interval_ms: Option<u64>,
    heartbeat_timeout_ms: Option<u64>,
    delivery_timeout_ms: Option<u64>,
    allow_uids: Option<Vec<u32>>,
    allow_gids: Option<Vec<u32>>,
    dead_letter_capacity: Option<usize>,
    dead_letter_bytes: Option<usize>,
    dead_letter_rate: Option<u64>,
    dead_letter_burst: Option<u64>,
    lane_parking: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_unknown_keys_are_refused() {
        let mut c = Config::new("x");
        c.apply_toml("lane_capacity = 8192\nwait = \"spin\"\nallow_gids = [10]")
            .unwrap();
        assert_eq!(c.lane_capacity, 8192);
        assert_eq!(c.wait.to_string(), "spin");
        assert_eq!(c.allow_gids, vec![10]);
        assert!(c.lane_parking, "doorbells on unless configured off");
        c.apply_toml("lane_parking = false").unwrap();
        assert!(!c.lane_parking);
        assert!(c.validate().is_ok());
        assert!(c
            .apply_toml("lane_size = 1")
            .unwrap_err()
            .contains("lane_size"));
        c.lane_capacity = 5000;
        assert!(c.validate().unwrap_err().contains("power of two"));
    }
}
