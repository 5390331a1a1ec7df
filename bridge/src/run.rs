//! Starting and stopping a bridge: its NATS connection and runtime, and a thread per local
//! agent (exporter, importer, server, one proxy per remote type).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use agentbus::client::{Agent, AttachOptions};
use tokio::runtime::Runtime;

use crate::export::Exporter;
use crate::import::{self, Importer};
use crate::requests::{self, Proxy, Server};
use crate::stats::Counters;
use crate::{BridgeConfig, BridgeStats, ConfigError};

/// Messages handed from NATS to a local agent's thread before the NATS side waits.
const HANDOVER: usize = 1024;

/// Why a bridge did not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The NATS server could not be reached.
    #[error("cannot reach NATS at {url}: {source} (is nats-server running there? `nats-server -a 127.0.0.1 -p 4222` starts one)")]
    Nats {
        /// The server asked for.
        url: String,
        /// What the client said.
        source: async_nats::ConnectError,
    },
    /// NATS refused a subscription.
    #[error("subscribing to {subject} on NATS: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What the client said.
        source: async_nats::SubscribeError,
    },
    /// JetStream refused a stream (is the server running with `-js`?).
    #[error("JetStream stream for {pattern:?}: {why} (jetstream patterns need nats-server started with -js)")]
    JetStream {
        /// The pattern.
        pattern: String,
        /// What the server said.
        why: String,
    },
    /// The local bus refused the bridge's agent.
    #[error("attaching the bridge's agent {agent:?} to bus {bus:?}: {source}")]
    Attach {
        /// The bus.
        bus: String,
        /// The agent id.
        agent: String,
        /// What the client said.
        source: agentbus::client::ClientError,
    },
    /// The runtime or a thread could not start.
    #[error("starting the bridge: {0}")]
    Io(#[from] std::io::Error),
}

/// A running bridge. Stops (its threads end, its agents detach, its NATS connection closes)
/// when dropped or [`Bridge::stop`]ped.
pub struct Bridge {
    origin: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    runtime: Option<Runtime>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("origin", &self.origin)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// Checks `cfg`, connects to NATS, attaches the bridge's agents and starts forwarding.
    pub fn start(cfg: BridgeConfig) -> Result<Bridge, BridgeError> {
        cfg.validate()?;
        let origin = cfg.origin();
        let counters = Arc::new(Counters::default());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bridge-nats")
            .enable_all()
            .build()?;
        let client = runtime
            .block_on(crate::link::connect(&cfg, &origin, Arc::clone(&counters)))
            .map_err(|source| BridgeError::Nats {
                url: cfg.nats.clone(),
                source,
            })?;
        let attach = |role: &str, agent_type: &str| -> Result<Agent, BridgeError> {
            let id = format!("bridge-{role}");
            // A proxy's capacity is above the load it reports (below).
            let mut options = AttachOptions::new(&cfg.bus, &id, agent_type).max_capacity(u32::MAX);
            if let Some(dir) = &cfg.socket_dir {
                options = options.socket_dir(dir);
            }
            Agent::attach(options).map_err(|source| BridgeError::Attach {
                bus: cfg.bus.clone(),
                agent: id,
                source,
            })
        };
        let mut bridge = Bridge {
            origin: origin.clone(),
            counters: Arc::clone(&counters),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            runtime: None,
        };
        let handle = runtime.handle().clone();
        let importer_id = "bridge-in".to_string();
        let js = (!cfg.jetstream.is_empty()).then(|| async_nats::jetstream::new(client.clone()));
        let mut streams = HashMap::new();
        if let Some(js) = &js {
            for pattern in &cfg.jetstream {
                let stream = runtime
                    .block_on(crate::durable::ensure_stream(js, &cfg.prefix, pattern))
                    .map_err(|e| BridgeError::JetStream {
                        pattern: pattern.clone(),
                        why: e.to_string(),
                    })?;
                streams.insert(pattern.clone(), stream);
            }
        }

        if !cfg.import.is_empty() {
            let (to_bus, from_nats) = crossbeam_channel::bounded(HANDOVER);
            for pattern in &cfg.import {
                if let Some(stream) = streams.get(pattern).cloned() {
                    let (prefix, pattern, origin) =
                        (cfg.prefix.clone(), pattern.clone(), origin.clone());
                    let (to_bus, counters) = (to_bus.clone(), Arc::clone(&counters));
                    runtime.spawn(async move {
                        let imported = crate::durable::import(
                            stream,
                            prefix,
                            pattern.clone(),
                            origin,
                            to_bus,
                            counters,
                        )
                        .await;
                        if let Err(e) = imported {
                            tracing::error!(%pattern, "bridge: JetStream import stopped: {e}");
                        }
                    });
                    continue;
                }
                let subject = crate::subject::of_topic(&cfg.prefix, pattern);
                let sub = subscribe(&runtime, &client, subject, None)?;
                runtime.spawn(import::forward(
                    sub,
                    cfg.prefix.clone(),
                    origin.clone(),
                    to_bus.clone(),
                    Arc::clone(&counters),
                ));
            }
            let importer = Importer {
                agent: attach("in", "bridge")?,
                runtime: handle.clone(),
                from_nats,
                counters: Arc::clone(&counters),
                topics: HashMap::new(),
            };
            bridge.thread("bridge-import", move |stop| importer.run(stop))?;
        }

        if !cfg.export.is_empty() {
            let mut agent = attach("out", "bridge")?;
            let subscriptions = cfg
                .export
                .iter()
                .map(|p| agent.subscribe(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|source| BridgeError::Attach {
                    bus: cfg.bus.clone(),
                    agent: "bridge-out".into(),
                    source,
                })?;
            let exporter = Exporter {
                agent,
                subscriptions,
                client: client.clone(),
                runtime: handle.clone(),
                prefix: cfg.prefix.clone(),
                origin: origin.clone(),
                importer: importer_id,
                counters: Arc::clone(&counters),
                names: HashMap::new(),
                durable: js.clone().map(|js| {
                    let exported = cfg
                        .jetstream
                        .iter()
                        .filter(|p| cfg.export.contains(p))
                        .cloned()
                        .collect();
                    (js, exported)
                }),
            };
            bridge.thread("bridge-export", move |stop| exporter.run(stop))?;
        }

        if !cfg.serve.is_empty() {
            let (to_server, from_nats) = crossbeam_channel::bounded(HANDOVER);
            for agent_type in &cfg.serve {
                let subject = crate::subject::of_requests(&cfg.prefix, agent_type);
                let group = Some(crate::subject::SERVE_GROUP);
                let sub = subscribe(&runtime, &client, subject, group)?;
                runtime.spawn(requests::take_requests(
                    sub,
                    agent_type.clone(),
                    to_server.clone(),
                    Arc::clone(&counters),
                ));
            }
            let server = Server {
                agent: attach("serve", "bridge")?,
                from_nats,
                client: client.clone(),
                runtime: handle.clone(),
                origin: origin.clone(),
                counters: Arc::clone(&counters),
                default_timeout: cfg.request_timeout(),
                types: HashMap::new(),
                in_flight: Vec::new(),
            };
            bridge.thread("bridge-serve", move |stop| server.run(stop))?;
        }

        for agent_type in &cfg.remote {
            let mut agent = attach(&format!("remote-{agent_type}"), agent_type)?;
            // Busy beyond any local agent: load-balanced routing prefers a local agent of the
            // type whenever one has room, and comes here only when none does.
            agent.sender().set_load(PROXY_LOAD);
            let proxy = Proxy {
                agent,
                agent_type: agent_type.clone(),
                client: client.clone(),
                runtime: handle.clone(),
                prefix: cfg.prefix.clone(),
                origin: origin.clone(),
                counters: Arc::clone(&counters),
                default_timeout: cfg.request_timeout(),
                answers: crossbeam_channel::unbounded(),
                in_flight: 0,
            };
            bridge.thread(&format!("bridge-proxy-{agent_type}"), move |stop| {
                proxy.run(stop)
            })?;
        }
        tracing::info!(
            origin = %origin,
            nats = %cfg.nats,
            export = ?cfg.export,
            import = ?cfg.import,
            serve = ?cfg.serve,
            remote = ?cfg.remote,
            "bridge running"
        );
        bridge.runtime = Some(runtime);
        Ok(bridge)
    }

    fn thread(
        &mut self,
        name: &str,
        body: impl FnOnce(&AtomicBool) + Send + 'static,
    ) -> Result<(), BridgeError> {
        let stop = Arc::clone(&self.stop);
        let t = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(&stop))?;
        self.threads.push(t);
        Ok(())
    }

    /// This bus's id on NATS.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// What it counted so far.
    pub fn stats(&self) -> BridgeStats {
        self.counters.snapshot()
    }

    /// Stops forwarding: the threads end (within 100 ms), the agents detach, the NATS
    /// connection closes.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The load a proxy agent reports (its capacity is above it).
const PROXY_LOAD: u32 = 1 << 30;

/// Subscribes to `subject` (in queue group `group`, if any), waiting for NATS to take it: a
/// refusal is an error at start, not a silent gap.
fn subscribe(
    runtime: &Runtime,
    client: &async_nats::Client,
    subject: String,
    group: Option<&str>,
) -> Result<async_nats::Subscriber, BridgeError> {
    let subscribed = runtime.block_on(async {
        let sub = match group {
            Some(g) => client.queue_subscribe(subject.clone(), g.into()).await,
            None => client.subscribe(subject.clone()).await,
        }?;
        // The server has the subscription once a flush round trip is done.
        client.flush().await.ok();
        Ok::<_, async_nats::SubscribeError>(sub)
    });
    subscribed.map_err(|source| BridgeError::Subscribe { subject, source })
}
