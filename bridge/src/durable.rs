//! At-least-once for chosen topics, over JetStream (`nats-server -js`): an export waits for the
//! server's acknowledgement that the stream holds it; an import comes from a durable consumer
//! of this bus's own and is acknowledged once it is republished on the local bus, so a bridge
//! that was down gets what it missed when it is back (and a message it republished but could
//! not acknowledge comes again: at least once, not exactly once).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use crossbeam_channel::Sender;
use futures_util::StreamExt;

use crate::carried::Carried;
use crate::import::Incoming;
use crate::stats::Counters;
use crate::subject;

/// How long the server waits for an imported message's acknowledgement before it sends it
/// again.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// A name NATS accepts for streams and consumers: letters, digits, `_` and `-`.
fn name_of(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The stream holding topic pattern `pattern`'s messages under `prefix`.
pub fn stream_name(prefix: &str, pattern: &str) -> String {
    format!("AGENTBUS_{}", name_of(&subject::of_topic(prefix, pattern)))
}

/// Makes (or finds) the stream for `pattern`.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    prefix: &str,
    pattern: &str,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    js.get_or_create_stream(stream::Config {
        name: stream_name(prefix, pattern),
        subjects: vec![subject::of_topic(prefix, pattern)],
        ..Default::default()
    })
    .await
}

/// Reads this bus's durable consumer of `pattern`'s stream and hands each message (with what
/// acknowledges it) to the local side; this bus's own exports are acknowledged and skipped.
pub(crate) async fn import(
    stream: stream::Stream,
    prefix: String,
    pattern: String,
    origin: String,
    to_bus: Sender<Incoming>,
    counters: Arc<Counters>,
) -> Result<(), async_nats::Error> {
    let durable = format!("bridge_{}_{}", name_of(&origin), name_of(&pattern));
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            consumer::pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: subject::of_topic(&prefix, &pattern),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%pattern, "bridge import (JetStream): {e}");
                continue;
            }
        };
        let carried = match Carried::from_headers(m.headers.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                Counters::add(&counters.import_failed);
                tracing::warn!(subject = %m.subject, "bridge import (JetStream): {e}");
                let _ = m.ack().await; // never a message for us: do not have it sent again
                continue;
            }
        };
        if carried.origin == origin {
            Counters::add(&counters.echoes);
            let _ = m.ack().await;
            continue;
        }
        let Some(topic) = subject::topic_of(&prefix, &m.subject) else {
            continue;
        };
        let incoming = Incoming {
            topic: topic.to_string(),
            carried,
            body: m.payload.clone(),
            ack: Some(m),
        };
        if !crate::import::hand_over(&to_bus, incoming) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_names_are_what_nats_accepts() {
        assert_eq!(
            super::stream_name("agentbus", "orders.>"),
            "AGENTBUS_agentbus_orders__"
        );
    }
}
