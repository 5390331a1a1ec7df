//! NATS subjects in to local topics: tasks subscribed on NATS hand messages to a thread with
//! its own agent, which republishes them (body bytes unchanged) on the topic of the same name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::client::{Agent, Encoded, Topic};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use futures_util::StreamExt;

use crate::carried::Carried;
use crate::stats::Counters;
use crate::subject;

/// A message from NATS for the local bus.
pub(crate) struct Incoming {
    pub topic: String,
    pub carried: Carried,
    pub body: Bytes,
    /// A JetStream message, acknowledged once republished (at least once).
    pub ack: Option<async_nats::jetstream::Message>,
}

/// How long a republish waits for room in the bridge's lane before it counts as failed.
const PUBLISH_WAIT: Duration = Duration::from_secs(1);

/// Hands what comes on `sub` (a subscription under `prefix`) to `to_bus`, skipping what this
/// bus (`origin`) exported itself; ends when the subscription does.
pub(crate) async fn forward(
    mut sub: async_nats::Subscriber,
    prefix: String,
    origin: String,
    to_bus: Sender<Incoming>,
    counters: Arc<Counters>,
) {
    while let Some(m) = sub.next().await {
        let carried = match Carried::from_headers(m.headers.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                Counters::add(&counters.import_failed);
                tracing::warn!(subject = %m.subject, "bridge import: {e}");
                continue;
            }
        };
        if carried.origin == origin {
            Counters::add(&counters.echoes);
            continue;
        }
        let Some(topic) = subject::topic_of(&prefix, &m.subject) else {
            continue;
        };
        if topic.starts_with("sys.") {
            continue;
        }
        let incoming = Incoming {
            topic: topic.to_string(),
            carried,
            body: m.payload,
            ack: None,
        };
        if !hand_over(&to_bus, incoming) {
            break;
        }
    }
}

/// Hands `incoming` to the local side, waiting (off the runtime's other tasks) while it is
/// behind: NATS holds what comes meanwhile, and says so if it has to drop some. False once the
/// local side is gone.
pub(crate) fn hand_over(to_bus: &Sender<Incoming>, incoming: Incoming) -> bool {
    match to_bus.try_send(incoming) {
        Ok(()) => true,
        Err(TrySendError::Full(incoming)) => {
            !tokio::task::block_in_place(|| to_bus.send(incoming).is_err())
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// The import side's local half.
pub(crate) struct Importer {
    pub agent: Agent,
    pub runtime: tokio::runtime::Handle,
    pub from_nats: Receiver<Incoming>,
    pub counters: Arc<Counters>,
    pub topics: HashMap<String, Topic>,
}

impl Importer {
    /// Republishes until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let Ok(m) = self.from_nats.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            match self.publish(&m) {
                Ok(()) => {
                    Counters::add(&self.counters.imported);
                    if let Some(js) = &m.ack {
                        // Not acknowledged (the server is away): it comes again, a duplicate.
                        if let Err(e) = self.runtime.block_on(js.ack()) {
                            tracing::warn!(topic = %m.topic, "bridge import: acknowledging to JetStream: {e}");
                        }
                    }
                }
                // Not acknowledged: JetStream sends it again after its ack wait.
                Err(e) => {
                    Counters::add(&self.counters.import_failed);
                    tracing::warn!(topic = %m.topic, "bridge import: not republished: {e}");
                }
            }
        }
    }

    fn publish(&mut self, m: &Incoming) -> Result<(), agentbus::CommunicationError> {
        if !self.topics.contains_key(&m.topic) {
            let t = self.agent.topic(&m.topic)?;
            self.topics.insert(m.topic.clone(), t);
        }
        let topic = &self.topics[&m.topic];
        let c = &m.carried;
        let message = Encoded {
            kind: c.kind,
            body: &m.body,
            message_type: c.message_type,
            priority: c.priority,
            ttl_ms: c.ttl_ms,
            trace: c.trace,
        };
        self.agent
            .send_blocking(topic, message, PUBLISH_WAIT)
            .map(drop)
    }
}
