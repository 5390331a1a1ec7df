//! Requests across hosts. A *serving* bridge answers NATS requests for agent types served on
//! its bus (a queue group, so one bridge answers each); a *proxying* bridge attaches an agent
//! of each remote type that forwards every request it gets as a NATS request and answers with
//! what comes back. Both hold the request's deadline: its ttl, else the configured timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AgentType, BodyKind, Encoded, PendingRequest};
use agentbus::{CommunicationError, ErrorKind, ErrorPayload, Flags, FrameHeader, Message};
use async_nats::{Client, HeaderMap, Subject};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_util::StreamExt;
use tokio::runtime::Handle;

use crate::carried::Carried;
use crate::stats::Counters;
use crate::subject;

/// Header of a reply that is a failure: what went wrong.
pub const ERROR: &str = "Agentbus-Error";
/// Header of a reply that is a failure: its kind (`timeout`, `agent_unreachable`, ...).
pub const ERROR_KIND: &str = "Agentbus-Error-Kind";

/// How often a bridge with requests in flight looks for their replies.
const IN_FLIGHT_POLL: Duration = Duration::from_micros(200);

/// A NATS request for a local agent type.
pub(crate) struct Asked {
    pub agent_type: String,
    pub carried: Carried,
    pub body: Bytes,
    pub reply: Option<Subject>,
}

/// Hands the NATS requests for `agent_type` that come on `sub` (its subject, in the serving
/// queue group) to the serving thread.
pub(crate) async fn take_requests(
    mut sub: async_nats::Subscriber,
    agent_type: String,
    to_server: Sender<Asked>,
    counters: Arc<Counters>,
) {
    while let Some(m) = sub.next().await {
        let carried = match Carried::from_headers(m.headers.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                Counters::add(&counters.requests_failed);
                tracing::warn!(subject = %m.subject, "bridge: a request that is not agentbus's: {e}");
                continue;
            }
        };
        let asked = Asked {
            agent_type: agent_type.clone(),
            carried,
            body: m.payload,
            reply: m.reply,
        };
        if tokio::task::block_in_place(|| to_server.send(asked).is_err()) {
            break;
        }
    }
}

/// A request asked of the local bus, waiting for its reply.
pub(crate) struct InFlight {
    request: PendingRequest,
    reply: Option<Subject>,
    deadline: Instant,
}

/// The serving side's local half: asks local agents, answers on NATS.
pub(crate) struct Server {
    pub agent: Agent,
    pub from_nats: Receiver<Asked>,
    pub client: Client,
    pub runtime: Handle,
    pub origin: String,
    pub counters: Arc<Counters>,
    pub default_timeout: Duration,
    pub types: HashMap<String, AgentType>,
    pub in_flight: Vec<InFlight>,
}

impl Server {
    /// Serves until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            let wait = if self.in_flight.is_empty() {
                Duration::from_millis(100)
            } else {
                IN_FLIGHT_POLL
            };
            if let Ok(asked) = self.from_nats.recv_timeout(wait) {
                self.ask(asked);
            }
            self.collect();
        }
    }

    fn ask(&mut self, asked: Asked) {
        let c = &asked.carried;
        let timeout = if c.ttl_ms > 0 {
            Duration::from_millis(c.ttl_ms as u64)
        } else {
            self.default_timeout
        };
        let started = self.destination(&asked.agent_type).and_then(|to| {
            let request = Encoded {
                kind: c.kind,
                body: &asked.body,
                message_type: c.message_type,
                priority: c.priority,
                ttl_ms: c.ttl_ms,
                trace: c.trace,
            };
            self.agent.start_request(&to, request)
        });
        match started {
            Ok(request) => self.in_flight.push(InFlight {
                request,
                reply: asked.reply,
                deadline: Instant::now() + timeout,
            }),
            Err(e) => self.fail(asked.reply, &e),
        }
    }

    fn destination(&mut self, agent_type: &str) -> Result<AgentType, CommunicationError> {
        if let Some(t) = self.types.get(agent_type) {
            return Ok(t.clone());
        }
        let t = self.agent.agent_type(agent_type)?;
        self.types.insert(agent_type.into(), t.clone());
        Ok(t)
    }

    /// Answers the requests whose replies came or whose time ran out.
    fn collect(&mut self) {
        let mut i = 0;
        while i < self.in_flight.len() {
            let now = Instant::now();
            let outcome = match self.in_flight[i].request.try_wait(&mut self.agent) {
                Some(r) => Some(r),
                None if now >= self.in_flight[i].deadline => {
                    Some(Err(CommunicationError::Timeout {
                        what: "a reply from the serving host's agents".into(),
                        after: Duration::ZERO,
                    }))
                }
                None => None,
            };
            let Some(outcome) = outcome else {
                i += 1;
                continue;
            };
            let done = self.in_flight.swap_remove(i);
            match outcome {
                Ok(reply) => self.answer(done.reply, &reply),
                Err(e) => self.fail(done.reply, &e),
            }
        }
    }

    fn answer(&mut self, to: Option<Subject>, reply: &Message) {
        let Some(to) = to else {
            return;
        };
        let (flags, body) = match agentbus::codec::body_of(&reply.payload) {
            Ok(b) => b,
            Err(e) => {
                let e = CommunicationError::from(e);
                return self.fail(Some(to), &e);
            }
        };
        let carried = Carried {
            origin: self.origin.clone(),
            from: reply.from.agent_id.clone(),
            kind: BodyKind::of(flags),
            message_type: reply.message_type,
            priority: reply.priority,
            ttl_ms: 0,
            id: reply.id.0,
            correlation: reply.correlation_id.0,
            trace: reply.trace,
        };
        let sent = self.runtime.block_on(self.client.publish_with_headers(
            to,
            carried.to_headers(),
            body.into(),
        ));
        match sent {
            Ok(()) => Counters::add(&self.counters.served),
            Err(e) => {
                Counters::add(&self.counters.requests_failed);
                tracing::warn!("bridge: answering a request: {e}");
            }
        }
    }

    fn fail(&mut self, to: Option<Subject>, e: &CommunicationError) {
        Counters::add(&self.counters.requests_failed);
        let Some(to) = to else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert(ERROR, e.to_string().as_str());
        headers.insert(ERROR_KIND, format!("{:?}", e.kind()).as_str());
        let _ = self
            .runtime
            .block_on(self.client.publish_with_headers(to, headers, Bytes::new()));
    }
}

/// What came back for a proxied request: its local header and NATS's answer.
pub(crate) type Answered = (FrameHeader, Result<async_nats::Message, String>);

/// The proxy of one remote agent type: a local agent of that type.
pub(crate) struct Proxy {
    pub agent: Agent,
    pub agent_type: String,
    pub client: Client,
    pub runtime: Handle,
    pub prefix: String,
    pub origin: String,
    pub counters: Arc<Counters>,
    pub default_timeout: Duration,
    pub answers: (Sender<Answered>, Receiver<Answered>),
    pub in_flight: usize,
}

impl Proxy {
    /// Forwards until `stop` is set.
    pub fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Acquire) {
            while let Ok((header, answer)) = self.answers.1.try_recv() {
                self.in_flight -= 1;
                self.answer(&header, answer);
            }
            let wait = if self.in_flight > 0 {
                IN_FLIGHT_POLL
            } else {
                Duration::from_millis(100)
            };
            let (header, carried, body) = match self.agent.recv_timeout(wait) {
                Ok(Some(d)) => {
                    let h = *d.header();
                    if !h.flags.contains(Flags::EXPECTS_REPLY) {
                        continue; // only requests are for another host
                    }
                    let c =
                        Carried::of(&h, d.extensions().trace(), &self.origin, &d.from().agent_id);
                    (h, c, Bytes::copy_from_slice(d.body_bytes()))
                }
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(agent_type = %self.agent_type, "bridge proxy: receiving: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            self.forward(header, carried, body);
        }
    }

    fn forward(&mut self, header: FrameHeader, carried: Carried, body: Bytes) {
        let timeout = if header.ttl_ms > 0 {
            Duration::from_millis(header.ttl_ms as u64)
        } else {
            self.default_timeout
        };
        let subject = subject::of_requests(&self.prefix, &self.agent_type);
        let client = self.client.clone();
        let answers = self.answers.0.clone();
        self.runtime.spawn(async move {
            let request = async_nats::Request::new()
                .headers(carried.to_headers())
                .payload(body)
                .timeout(Some(timeout));
            let answer = client
                .send_request(subject, request)
                .await
                .map_err(|e| e.to_string());
            let _ = answers.send((header, answer));
        });
        self.in_flight += 1;
        Counters::add(&self.counters.proxied);
    }

    fn answer(&mut self, request: &FrameHeader, answer: Result<async_nats::Message, String>) {
        let outcome = answer.and_then(|m| {
            if let Some(err) = m.headers.as_ref().and_then(|h| h.get(ERROR)) {
                return Err(format!("the serving host: {}", err.as_str()));
            }
            Carried::from_headers(m.headers.as_ref())
                .map(|c| (c, m.payload))
                .map_err(|e| e.to_string())
        });
        let sent = match outcome {
            Ok((c, body)) => {
                let reply = Encoded {
                    kind: c.kind,
                    body: &body,
                    message_type: c.message_type,
                    priority: c.priority,
                    ttl_ms: 0,
                    trace: c.trace,
                };
                self.agent.sender().reply(request, reply)
            }
            Err(why) => {
                Counters::add(&self.counters.requests_failed);
                let kind = if why.contains("timed out") || why.contains("TimedOut") {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::AgentUnreachable
                };
                let error = Message::error(
                    self.agent.identity(),
                    ErrorPayload {
                        kind,
                        details: format!(
                            "no {} agent on another host answered: {why}",
                            self.agent_type
                        ),
                    },
                );
                self.agent.sender().reply(request, &error)
            }
        };
        if let Err(e) = sent {
            tracing::warn!(agent_type = %self.agent_type, "bridge proxy: answering locally: {e}");
        }
    }
}
