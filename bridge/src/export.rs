//! Local topics out to NATS: a thread with its own agent, subscribed to the export patterns,
//! publishing each message's body bytes as they are.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::client::{Agent, Subscription};
use agentbus::RouteKind;
use async_nats::Client;
use bytes::Bytes;
use tokio::runtime::Handle;

use crate::carried::Carried;
use crate::stats::Counters;
use crate::subject;

/// The export side.
pub(crate) struct Exporter {
    pub agent: Agent,
    pub subscriptions: Vec<Subscription>,
    pub client: Client,
    pub runtime: Handle,
    pub prefix: String,
    pub origin: String,
    /// The id of this bridge's importing agent: what it republished is never sent back out.
    pub importer: String,
    pub counters: Arc<Counters>,
    /// Topic names by id, learnt from agentd as new ids come.
    pub names: HashMap<u64, String>,
    /// JetStream, and the export patterns that go through it (at least once).
    pub durable: Option<(async_nats::jetstream::Context, Vec<String>)>,
}

impl Exporter {
    /// Forwards until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let (topic, carried, body) = match self.agent.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(d)) => {
                    let h = *d.header();
                    if h.route != RouteKind::Topic || d.from().agent_id == self.importer {
                        continue; // not a topic message, or one this bridge brought in
                    }
                    let carried =
                        Carried::of(&h, d.extensions().trace(), &self.origin, &d.from().agent_id);
                    (
                        h.destination,
                        carried,
                        Bytes::copy_from_slice(d.body_bytes()),
                    )
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("bridge export: receiving from the local bus: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let Some(name) = self.name_of(topic) else {
                Counters::add(&self.counters.export_failed);
                continue;
            };
            if name.starts_with("sys.") {
                continue; // a bus's own notices stay on it
            }
            let subject = subject::of_topic(&self.prefix, &name);
            let through_jetstream = self.durable.as_ref().is_some_and(|(_, patterns)| {
                patterns
                    .iter()
                    .any(|p| agentbus::control::topic_matches(p, &name))
            });
            let published = if through_jetstream {
                self.publish_durably(subject, &carried, body, stop)
            } else {
                self.publish(subject, carried.to_headers(), body, stop)
                    .map(|r| r.map_err(|e| e.to_string()))
            };
            match published {
                Some(Ok(())) => Counters::add(&self.counters.exported),
                Some(Err(e)) => {
                    Counters::add(&self.counters.export_failed);
                    tracing::warn!(topic = %name, "bridge export: NATS refused a message: {e}");
                }
                None => Counters::add(&self.counters.export_failed), // stopping
            }
        }
        drop(self.subscriptions);
    }

    /// Publishes one message; waits only while the client's buffer is full (NATS slow or
    /// away): the bridge then stops reading its lanes, and each topic's back-pressure policy
    /// applies. `None` if the bridge is stopped meanwhile.
    fn publish(
        &self,
        subject: String,
        headers: async_nats::HeaderMap,
        body: Bytes,
        stop: &AtomicBool,
    ) -> Option<Result<(), async_nats::PublishError>> {
        let subject = async_nats::Subject::from(subject);
        while !stop.load(Ordering::Acquire) {
            // A publish still waiting for room after a while is dropped (nothing was queued)
            // and tried again, so that a stop is noticed.
            let attempt =
                self.client
                    .publish_with_headers(subject.clone(), headers.clone(), body.clone());
            let waited = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_millis(100), attempt).await
            });
            if let Ok(sent) = waited {
                return Some(sent);
            }
        }
        None
    }

    /// Publishes one message into its JetStream stream and waits for the server's
    /// acknowledgement, trying again (the same message id: the server keeps one copy) until
    /// it comes. `None` if the bridge is stopped meanwhile.
    fn publish_durably(
        &self,
        subject: String,
        carried: &Carried,
        body: Bytes,
        stop: &AtomicBool,
    ) -> Option<Result<(), String>> {
        let (js, _) = self.durable.as_ref()?;
        let mut headers = carried.to_headers();
        // JetStream keeps one message per id within its duplicate window.
        let msg_id = format!("{}/{:016x}/{}", carried.origin, carried.id, carried.from);
        headers.insert("Nats-Msg-Id", msg_id.as_str());
        while !stop.load(Ordering::Acquire) {
            let acked = self.runtime.block_on(async {
                let ack = js
                    .publish_with_headers(subject.clone(), headers.clone(), body.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::time::timeout(Duration::from_secs(2), ack)
                    .await
                    .map_err(|_| "no acknowledgement within 2 s".to_string())?
                    .map_err(|e| e.to_string())
            });
            match acked {
                Ok(_) => return Some(Ok(())),
                Err(e) => {
                    tracing::warn!(%subject, "bridge export (JetStream): {e}; trying again");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        None
    }

    /// The name of topic `id`, asking agentd for the topic list when it is new.
    fn name_of(&mut self, id: u64) -> Option<String> {
        if let Some(n) = self.names.get(&id) {
            return Some(n.clone());
        }
        match self.agent.list_topics() {
            Ok(topics) => {
                self.names = topics.into_iter().map(|t| (t.id, t.name)).collect();
            }
            Err(e) => tracing::warn!("bridge export: listing topics: {e}"),
        }
        self.names.get(&id).cloned()
    }
}
