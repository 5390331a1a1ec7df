//! What a bridge does: which bus, which NATS, what it exports, imports, serves and proxies.

use std::path::PathBuf;
use std::time::Duration;

use crate::subject;

/// A bridge's configuration (TOML: the same keys, see [`BridgeConfig::from_toml`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// The local bus.
    pub bus: String,
    /// Where the bus's socket is (`None`: the standard directory).
    #[serde(default)]
    pub socket_dir: Option<PathBuf>,
    /// The NATS server (`nats://host:port`; several, comma-separated, for a cluster).
    pub nats: String,
    /// This bus's id on NATS: what its exports carry as their origin, so that no bridge
    /// imports them back here. Unique per bus across the hosts a NATS server connects
    /// (default: `<hostname>/<bus>`).
    #[serde(default)]
    pub origin: String,
    /// The first subject token(s) of everything this bridge exchanges: topic `market.AAPL`
    /// travels as `<prefix>.market.AAPL`. Bridges that talk share it; another prefix keeps a
    /// set of buses apart on one NATS.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Topic patterns whose messages go out to NATS.
    #[serde(default)]
    pub export: Vec<String>,
    /// Topic patterns brought in from NATS onto the local bus.
    #[serde(default)]
    pub import: Vec<String>,
    /// Export or import patterns (each also listed there) whose messages travel at least once,
    /// over JetStream (the server runs with `-js`): exports wait for the stream's
    /// acknowledgement, imports come from this bus's durable consumer.
    #[serde(default)]
    pub jetstream: Vec<String>,
    /// Agent types whose requests from other hosts this bridge answers (from the local agents
    /// of that type).
    #[serde(default)]
    pub serve: Vec<String>,
    /// Agent types served on other hosts: a local request to one goes out as a NATS request.
    #[serde(default)]
    pub remote: Vec<String>,
    /// Messages the NATS client holds while NATS is slow or down before the bridge stops
    /// reading the local bus (then each exported topic's back-pressure policy applies).
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// How long a proxied request may take, end to end, when its sender set no ttl (ms).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_prefix() -> String {
    "agentbus".into()
}

fn default_buffer() -> usize {
    4096
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

/// A configuration that cannot work, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML is not a bridge configuration.
    #[error("bridge configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is wrong.
    #[error("bridge configuration: {key} = {value:?}: {why}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What it was.
        value: String,
        /// What is wrong and what to write.
        why: String,
    },
}

impl BridgeConfig {
    /// A bridge of bus `bus` to the NATS server at `nats`, exchanging nothing yet.
    pub fn new(bus: &str, nats: &str) -> BridgeConfig {
        BridgeConfig {
            bus: bus.into(),
            socket_dir: None,
            nats: nats.into(),
            origin: String::new(),
            prefix: default_prefix(),
            export: Vec::new(),
            import: Vec::new(),
            jetstream: Vec::new(),
            serve: Vec::new(),
            remote: Vec::new(),
            buffer: default_buffer(),
            request_timeout_ms: default_request_timeout_ms(),
        }
    }

    /// Reads a configuration from TOML: `bus`, `nats`, and any of `socket_dir`, `origin`,
    /// `prefix`, `export`, `import`, `jetstream`, `serve`, `remote`, `buffer`,
    /// `request_timeout_ms`.
    pub fn from_toml(text: &str) -> Result<BridgeConfig, ConfigError> {
        Ok(toml::from_str(text)?)
    }

    /// The origin id, defaulted from the host name and the bus.
    pub fn origin(&self) -> String {
        if !self.origin.is_empty() {
            return self.origin.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}/{}", self.bus)
    }

    /// How long a proxied request may take when its sender set no ttl.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Checks every value, saying what to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, value: &str, why: &str| ConfigError::Invalid {
            key,
            value: value.into(),
            why: why.into(),
        };
        if !self.nats.starts_with("nats://") && !self.nats.starts_with("tls://") {
            return Err(invalid(
                "nats",
                &self.nats,
                "write a server URL such as nats://127.0.0.1:4222",
            ));
        }
        subject::check_prefix(&self.prefix).map_err(|why| invalid("prefix", &self.prefix, &why))?;
        for (key, list) in [("export", &self.export), ("import", &self.import)] {
            for pattern in list {
                subject::check_pattern(pattern).map_err(|why| invalid(key, pattern, &why))?;
            }
        }
        if let Some(p) = self
            .jetstream
            .iter()
            .find(|p| !self.export.contains(p) && !self.import.contains(p))
        {
            return Err(invalid(
                "jetstream",
                p,
                "list the pattern in export or import too (jetstream only says how it travels)",
            ));
        }
        for (key, list) in [("serve", &self.serve), ("remote", &self.remote)] {
            for t in list {
                subject::check_token(t).map_err(|why| invalid(key, t, &why))?;
            }
        }
        if let Some(t) = self.serve.iter().find(|t| self.remote.contains(t)) {
            return Err(invalid(
                "remote",
                t,
                "a type both served here and proxied from here would send its requests in a circle: list it in one of serve and remote",
            ));
        }
        if self.buffer == 0 {
            return Err(invalid("buffer", "0", "hold at least one message"));
        }
        if self.export.is_empty()
            && self.import.is_empty()
            && self.serve.is_empty()
            && self.remote.is_empty()
        {
            return Err(invalid(
                "export",
                "",
                "the bridge would do nothing: export or import a topic pattern, or serve or proxy an agent type",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_reads_and_bad_values_say_what_to_write() {
        let c = BridgeConfig::from_toml(
            "bus = \"a\"\nnats = \"nats://127.0.0.1:4222\"\nexport = [\"market.>\"]\nremote = [\"risk\"]",
        )
        .unwrap();
        assert_eq!(c.prefix, "agentbus");
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.export = vec!["market .x".into()];
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("export"), "{e}");
        let mut bad = c.clone();
        bad.serve = vec!["risk".into()];
        assert!(bad.validate().unwrap_err().to_string().contains("circle"));
        let mut bad = c;
        bad.nats = "127.0.0.1:4222".into();
        assert!(bad.validate().unwrap_err().to_string().contains("nats://"));
        assert!(BridgeConfig::from_toml("bus = \"a\"\nnats = \"x\"\nexprot = []").is_err());
    }
}
