//! `poll` and `run_until`: the agent's handlers, run on what arrives.

use std::time::Instant;

use super::delivery::copy_frame;
use super::Agent;
use crate::body::Payload;
use crate::codec::decode;
use crate::control::{Request, Response};
use crate::error::CommunicationError;
use crate::header::{Flags, Hex};
use crate::kinds::RouteKind;
use crate::lanes::PRIORITIES;
use crate::payload::{ErrorKind, ErrorPayload};

/// The span handlers of the message with `header` run in: `agentbus.message` with its trace
/// and span ids (W3C sizes, hex), id and type, or a disabled span for an untraced message.
fn trace_span(
    header: &crate::header::FrameHeader,
    env: &crate::codec::Envelope<'_>,
) -> tracing::Span {
    if header.extension_len == 0 {
        return tracing::Span::none();
    }
    let trace = env.extensions.trace();
    if trace.trace_id == [0; 16] {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "agentbus.message",
        trace_id = %Hex(&trace.trace_id),
        span_id = %Hex(&trace.span_id),
        message_id = %header.message_id,
        message_type = %header.message_type,
    )
}

impl Agent {
    /// Publishes a timed batch whose delay has passed ([`super::Sender::set_batching`]), sends
    /// the at-least-once retries that are due, then dispatches everything waiting now (up
    /// to `max` messages), most urgent first: replies to this agent's requests are filed for
    /// their [`super::PendingRequest`] (acknowledgements for their
    /// [`super::PendingDelivery`]); requests go to the request handler; topic messages to the
    /// matching subscription handlers (after their filters), events among them; other messages
    /// to the message handler ([`Agent::on_message`]) when there is one (a message sent with an
    /// acknowledgement request is acknowledged when its handler returns); retried
    /// copies of what was taken already are dropped; everything else is queued for
    /// [`Agent::recv`] (whose user acknowledges it, [`super::Sender::ack`]). Returns how many
    /// messages it took.
    pub fn poll(&mut self, max: usize) -> Result<usize, CommunicationError> {
        self.reconnect_if_due()?;
        self.tx.flush_due();
        self.drive_deliveries();
        let mut n = 0;
        while n < max {
            let Some((lane, header)) = self.rx.next_lane(PRIORITIES) else {
                break;
            };
            n += 1;
            let Some(header) = header else {
                // Unreadable: report it; dropping the guard skips the frame.
                if let Some(guard) = self.rx.read_lane(lane) {
                    decode(guard.bytes())?;
                }
                continue;
            };
            let for_request =
                header.flags.contains(Flags::EXPECTS_REPLY) && self.handlers.request.is_some();
            let topic = if header.route == RouteKind::Topic
                && !for_request
                && !self.handlers.subscriptions.is_empty()
            {
                self.topic_name(header.destination)
                    .filter(|name| self.handlers.wants_topic(name))
            } else {
                None
            };
            let from = self.rx.sender_of(&header);
            let acked = header.flags.contains(Flags::ACK_REQUESTED);
            if acked {
                self.rx.dedup.take(&header, Instant::now());
            }
            let Some(guard) = self.rx.read_lane(lane) else {
                continue;
            };
            let mut env = decode(guard.bytes())?;
            env.from = &from;
            // Handlers run inside a span carrying the message's trace context, when it has
            // one: an application's subscriber (JSON logs, OpenTelemetry) follows it across
            // agents. Nothing is formatted unless a subscriber records the span.
            let span = trace_span(&header, &env);
            let _entered = span.enter();
            if let (true, Some(handler)) = (for_request, self.handlers.request.as_mut()) {
                let result = handler(&env, &mut self.tx);
                drop(guard); // hand the request's room back before replying
                let payload = match result {
                    Ok(payload) => payload,
                    Err(e) => Payload::Error(ErrorPayload {
                        kind: ErrorKind::HandlerError,
                        details: e.into_message(),
                    }),
                };
                self.tx.reply(&header, payload)?;
            } else if let Some(name) = topic {
                self.handlers.dispatch_topic(&name, &env, &mut self.tx);
                drop(guard);
                if acked {
                    // The handler has returned: at-least-once is done with it.
                    self.tx.ack(&header)?;
                }
            } else if let (false, Some(handler)) = (
                header.route == RouteKind::Topic,
                self.handlers.message.as_mut(),
            ) {
                handler(&env, &mut self.tx);
                drop(guard);
                if acked {
                    self.tx.ack(&header)?;
                }
            } else {
                let copy = copy_frame(guard.bytes());
                drop(guard);
                self.rx.queue.push_back((header, copy));
            }
        }
        Ok(n)
    }

    /// The name of topic `id`, learnt from agentd once (all topics at a time) and kept (shared:
    /// no allocation per message).
    fn topic_name(&mut self, id: u64) -> Option<std::sync::Arc<str>> {
        if let Some(n) = self.handlers.topic_names.get(&id) {
            return Some(n.clone());
        }
        if let Ok(Response::Topics(topics)) = self.sender().shared.call(&Request::ListTopics) {
            for t in topics {
                self.handlers.topic_names.insert(t.id, t.name.into());
            }
        }
        self.handlers.topic_names.get(&id).cloned()
    }

    /// Runs this agent's handlers ([`Agent::poll`]) until `deadline` or until `stop` says so,
    /// sleeping on the agent's doorbell (or spinning, as configured) when there is nothing to do.
    /// Messages no handler takes are queued for [`Agent::recv`]. If agentd dies meanwhile, it
    /// re-attaches as the agent's reconnect policy says and goes on; `Disconnected` only if it
    /// is still gone at the deadline, or the policy gave up.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut stop: impl FnMut(&mut Agent) -> bool,
    ) -> Result<(), CommunicationError> {
        loop {
            let handled = match self.poll(256) {
                Ok(n) => n,
                // agentd is gone: wait for it to come back (as the reconnect policy says), or
                // report it at the deadline.
                Err(CommunicationError::Disconnected { .. }) => {
                    self.reconnect_until(deadline)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if stop(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            if handled == 0 {
                if let Err(e) = self.rx.check_link() {
                    match e {
                        CommunicationError::Disconnected { .. } => {
                            self.reconnect_until(deadline)?;
                            continue;
                        }
                        e => return Err(e),
                    }
                }
                // Not past a timed batch's delay: it is published by the next `poll`.
                let until = self
                    .tx
                    .flush_due()
                    .map_or(deadline, |due| due.min(deadline));
                self.rx.idle(until);
            }
        }
    }
}
