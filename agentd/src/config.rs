//! agentd's configuration: a TOML file, overridden by command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agentbus::control::{
    topic_matches, Access, BackPressure, ParseBackPressureError, ParsePrincipalError, Principal,
    TopicConfig, MAX_HISTORY,
};
use agentbus::paths;
use agentbus_ipc::wait::{ParseWaitError, Wait};
use serde::Deserialize;

/// Everything agentd needs to run a bus.
#[derive(Debug, Clone)]
pub struct Config {
    /// The bus's name (1 to 64 of `[A-Za-z0-9_.-]`): it names the control socket
    /// (`<bus>.sock`) and the header segment (`agentbus.<bus>.ctl`).
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
    /// Groups allowed to attach: a peer whose gid (from `SO_PEERCRED`) is listed may, whatever
    /// its uid.
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
    /// How topics behave, by name: the first rule whose pattern matches a new topic's name
    /// applies (none: [`TopicConfig::default`]). A client creating a topic with a
    /// configuration of its own overrides the rule's back-pressure, size and history, but not
    /// its access lists: those it must ask for as the rule sets them.
    pub topics: Vec<TopicRule>,
    /// Whether dead letters are kept in a file across restarts (true; false: memory only).
    pub dead_letter_persist: bool,
    /// The dead-letter file (`None`: `<socket_dir>/<bus>.dlq`, as [`Config::dead_letter_path`]
    /// says).
    pub dead_letter_file: Option<PathBuf>,
    /// Whether the router records per-message metrics (routing latency, messages by type,
    /// per-topic counts) in the bus header; the counters per agent and the router's totals are
    /// kept either way.
    pub metrics: bool,
    /// Where agentd serves Prometheus metrics over HTTP (`None`: it does not).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Traced messages the router keeps in the trace log (0: no log), for `agentbus trace`.
    pub trace_log: usize,
}

/// The most records the trace log may keep.
pub const MAX_TRACE_LOG: usize = 1 << 20;

/// A configuration for the topics whose names match `pattern` (TOML: a `[[topics]]` table with
/// `pattern` and any of `back_pressure`, `max_message_size`, `history`, `publishers` and
/// `subscribers`, the last two lists of `agent:ID` and `type:TYPE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRule {
    /// A subscription pattern: exact, `*` for one segment, a trailing `>` for the rest.
    pub pattern: String,
    /// What a topic it matches is created with.
    pub config: TopicConfig,
}

/// The router's default spin before parking (measured: README, "Choosing the router's wait").
pub const DEFAULT_ROUTER_SPIN: Duration = Duration::from_micros(5);

/// The most agents a bus can hold.
pub const MAX_AGENTS: usize = 256;

/// Why a configuration was refused: which setting, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting's value is out of its range.
    #[error("{key} = {value} is not valid: {allowed}")]
    Invalid {
        /// The setting, as its TOML key.
        key: &'static str,
        /// The value given, as text.
        value: String,
        /// What it may be, as a sentence for the user.
        allowed: String,
    },
    /// The heartbeat timeout is not longer than the interval: every agent would look dead.
    #[error("heartbeat_timeout_ms ({timeout:?}) must be longer than heartbeat_interval_ms ({interval:?}): raise the timeout or shorten the interval")]
    HeartbeatTimeout {
        /// The heartbeat timeout given (`heartbeat_timeout_ms`).
        timeout: Duration,
        /// The heartbeat interval given (`heartbeat_interval_ms`), which the timeout must exceed.
        interval: Duration,
    },
    /// `wait` names no wait strategy.
    #[error("wait: {0}")]
    Wait(#[from] ParseWaitError),
    /// The text is not TOML, has a key agentd does not know, or a value of the wrong type.
    #[error("invalid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// The configuration file could not be read.
    #[error("cannot read config {}: {source}; check the path and its permissions", path.display())]
    Read {
        /// The configuration file's path, as given.
        path: PathBuf,
        /// What reading it returned.
        source: std::io::Error,
    },
    /// The configuration file's settings are wrong.
    #[error("config {}: {source}", path.display())]
    File {
        /// The configuration file's path, as given.
        path: PathBuf,
        /// What is wrong in it.
        source: Box<ConfigError>,
    },
}

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
            topics: Vec::new(),
            dead_letter_persist: true,
            dead_letter_file: None,
            metrics: true,
            metrics_addr: None,
            trace_log: 0,
        }
    }

    /// Checks the values, saying what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(
            key: &'static str,
            value: String,
            allowed: impl Into<String>,
        ) -> Result<(), ConfigError> {
            Err(ConfigError::Invalid {
                key,
                value,
                allowed: allowed.into(),
            })
        }
        if !paths::valid_bus_name(&self.bus) {
            return invalid(
                "bus",
                format!("{:?}", self.bus),
                "use 1 to 64 letters, digits, '-', '_' or '.'",
            );
        }
        if !self.lane_capacity.is_power_of_two() || !(4096..=1 << 26).contains(&self.lane_capacity)
        {
            return invalid(
                "lane_capacity",
                self.lane_capacity.to_string(),
                "it must be a power of two from 4096 to 67108864 bytes",
            );
        }
        if self.trace_log > MAX_TRACE_LOG {
            return invalid(
                "trace_log",
                self.trace_log.to_string(),
                format!("it must be 0 (no trace log) to {MAX_TRACE_LOG} records"),
            );
        }
        if !(1..=MAX_AGENTS).contains(&self.max_agents) {
            return invalid(
                "max_agents",
                self.max_agents.to_string(),
                format!("it must be 1 to {MAX_AGENTS}"),
            );
        }
        if self.batch_limit == 0 {
            return invalid("batch_limit", "0".into(), "it must be at least 1");
        }
        for (key, value) in [
            ("dead_letter_rate", self.dead_letter_rate),
            ("dead_letter_burst", self.dead_letter_burst),
        ] {
            if value == 0 {
                return invalid(
                    key,
                    "0".into(),
                    "dead_letter_rate and dead_letter_burst must be at least 1 (they bound how fast one agent can fill the dead-letter queue)",
                );
            }
        }
        if self.dead_letter_bytes < 4096 {
            return invalid(
                "dead_letter_bytes",
                self.dead_letter_bytes.to_string(),
                "it must be at least 4096",
            );
        }
        for rule in &self.topics {
            if !crate::control::valid_pattern(&rule.pattern) {
                return invalid(
                    "topics.pattern",
                    rule.pattern.clone(),
                    "it must be dot-separated non-empty segments, `*` for one segment, a final `>` for the rest",
                );
            }
            if rule.config.history > MAX_HISTORY {
                return invalid(
                    "topics.history",
                    rule.config.history.to_string(),
                    format!("a topic keeps at most {MAX_HISTORY} messages of history"),
                );
            }
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(ConfigError::HeartbeatTimeout {
                timeout: self.heartbeat_timeout,
                interval: self.heartbeat_interval,
            });
        }
        Ok(())
    }

    /// Applies a TOML file's settings over these.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        self.apply_toml(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            source: Box::new(e),
        })
    }

    /// Applies TOML settings over these.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let f: FileConfig = toml::from_str(text)?;
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
        if let Some(v) = f.dead_letter_persist {
            self.dead_letter_persist = v;
        }
        if let Some(v) = f.dead_letter_file {
            self.dead_letter_file = Some(v);
        }
        if let Some(v) = f.metrics {
            self.metrics = v;
        }
        if let Some(v) = f.metrics_addr {
            self.metrics_addr = Some(v.parse().map_err(|_| ConfigError::Invalid {
                key: "metrics_addr",
                value: v,
                allowed: "an address and port, such as \"127.0.0.1:9464\"".into(),
            })?);
        }
        if let Some(v) = f.trace_log {
            self.trace_log = v;
        }
        if let Some(rules) = f.topics {
            for rule in rules {
                let back_pressure = match rule.back_pressure {
                    Some(name) => {
                        name.parse()
                            .map_err(|e: ParseBackPressureError| ConfigError::Invalid {
                                key: "topics.back_pressure",
                                value: e.given,
                                allowed: "use block, dead-letter-slow or drop-oldest".into(),
                            })?
                    }
                    None => BackPressure::default(),
                };
                let access = |key: &'static str, list: Option<Vec<String>>| match list {
                    None => Ok(Access::Anyone),
                    Some(names) => names
                        .into_iter()
                        .map(|n| {
                            n.parse()
                                .map_err(|e: ParsePrincipalError| ConfigError::Invalid {
                                    key,
                                    value: e.given,
                                    allowed: "write agent:ID or type:TYPE".into(),
                                })
                        })
                        .collect::<Result<Vec<Principal>, _>>()
                        .map(Access::Only),
                };
                self.topics.push(TopicRule {
                    pattern: rule.pattern,
                    config: TopicConfig {
                        back_pressure,
                        max_message_size: rule.max_message_size.unwrap_or(0),
                        history: rule.history.unwrap_or(0),
                        publishers: access("topics.publishers", rule.publishers)?,
                        subscribers: access("topics.subscribers", rule.subscribers)?,
                    },
                });
            }
        }
        Ok(())
    }

    /// Where dead letters are kept across restarts, if they are.
    pub fn dead_letter_path(&self) -> Option<PathBuf> {
        if !self.dead_letter_persist {
            return None;
        }
        Some(
            self.dead_letter_file
                .clone()
                .unwrap_or_else(|| self.socket_dir.join(format!("{}.dlq", self.bus))),
        )
    }

    /// How a topic named `name`, created without a configuration, behaves: the first rule of
    /// [`Config::topics`] whose pattern matches it, else the default.
    pub fn topic_config_for(&self, name: &str) -> TopicConfig {
        self.topics
            .iter()
            .find(|rule| topic_matches(&rule.pattern, name))
            .map_or_else(TopicConfig::default, |rule| rule.config.clone())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTopicRule {
    pattern: String,
    back_pressure: Option<String>,
    max_message_size: Option<u32>,
    history: Option<u32>,
    publishers: Option<Vec<String>>,
    subscribers: Option<Vec<String>>,
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
    topics: Option<Vec<FileTopicRule>>,
    dead_letter_persist: Option<bool>,
    dead_letter_file: Option<PathBuf>,
    metrics: Option<bool>,
    metrics_addr: Option<String>,
    trace_log: Option<usize>,
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
        let e = c.apply_toml("lane_size = 1").unwrap_err();
        assert!(matches!(e, ConfigError::Toml(_)), "{e:?}");
        assert!(e.to_string().contains("lane_size"), "{e}");
        let e = c.apply_toml("wait = \"nap\"").unwrap_err();
        assert!(matches!(e, ConfigError::Wait(_)), "{e:?}");
        c.lane_capacity = 5000;
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    key: "lane_capacity",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("power of two"), "{e}");
    }

    #[test]
    fn topic_rules_come_from_toml_first_match_wins_and_bad_ones_are_named() {
        let mut c = Config::new("x");
        c.apply_toml(
            "[[topics]]\npattern = \"market.>\"\nback_pressure = \"dead-letter-slow\"\n\
             [[topics]]\npattern = \"market.*\"\nback_pressure = \"block\"\n\
             [[topics]]\npattern = \"orders.>\"\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        let dls = TopicConfig::with(BackPressure::DeadLetterSlow);
        assert_eq!(
            c.topic_config_for("market.AAPL"),
            dls,
            "the first match wins"
        );
        assert_eq!(c.topic_config_for("orders.new"), TopicConfig::default());
        assert_eq!(c.topic_config_for("alerts.risk"), TopicConfig::default());
        let e = Config::new("x")
            .apply_toml("[[topics]]\npattern = \"md.>\"\nback_pressure = \"drop\"")
            .unwrap_err();
        assert!(
            e.to_string().contains("= drop") && e.to_string().contains("dead-letter-slow"),
            "{e}"
        );
        let mut c = Config::new("x");
        c.apply_toml("[[topics]]\npattern = \"md.>.x\"").unwrap();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("md.>.x"), "{e}");
    }

    #[test]
    fn an_unreadable_file_names_its_path() {
        let mut c = Config::new("x");
        let path = Path::new("/nonexistent/agentd.toml");
        let e = c.apply_file(path).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/agentd.toml"), "{e}");
    }
}
