//! Re-attaching when agentd restarts.
//!
//! An agent finds agentd gone on a call (the router's beat stops, the control socket reads
//! end-of-file): that call returns `Disconnected`. Later calls of the [`Agent`] (not of a lent
//! [`super::Sender`] or [`super::Receiver`] alone, which cannot swap the lanes under the other)
//! try to attach again, with backoff ([`ReconnectPolicy`]), until agentd is back or the policy
//! gives up. Re-attaching keeps the agent's id, type and capabilities, subscribes its
//! subscriptions again (their [`super::Subscription`] guards follow), creates again the topics
//! it created with a configuration, fails its outstanding requests (their replies died with
//! agentd), keeps retrying its at-least-once messages, sends again what the dead agentd never
//! read from its outbound lanes (or counts what cannot be), and tells the application
//! ([`ConnectionEvent`], [`Agent::on_connection`]). Handles resolved before the restart are
//! resolved again by name the first time they are used.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::link::Attachment;
use super::pending::lock;
use super::reroute::Named;
use super::Agent;
use crate::codec::Route;
use crate::control::{Request, Response, TopicRequest};
use crate::error::CommunicationError;
use crate::header::{Flags, FrameHeader};
use crate::kinds::RouteKind;

/// How an agent re-attaches after agentd dies ([`super::AttachOptions::reconnect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The wait before the second try (the first is made at the first call after agentd was
    /// found gone); it doubles after each failed try.
    pub first_delay: Duration,
    /// The longest wait between tries.
    pub max_delay: Duration,
    /// Gives up after agentd has been gone this long (`None`: never): every later call returns
    /// `Disconnected`.
    pub give_up_after: Option<Duration>,
}

impl Default for ReconnectPolicy {
    /// Tries again after 20 ms, doubling up to 1 s between tries, for ever.
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            give_up_after: None,
        }
    }
}

/// What happened to an agent's link to agentd ([`Agent::on_connection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// agentd was found gone; `unsent` messages this agent had sent were never read by it.
    Lost {
        /// Messages in this agent's outbound lanes agentd never took.
        unsent: u64,
    },
    /// Attached again to a restarted agentd.
    Reconnected {
        /// Tries it took.
        attempts: u32,
        /// How long agentd was gone, from when this agent found out.
        down_for: Duration,
        /// The slot the new agentd gave this agent.
        slot: u32,
        /// Subscriptions made again.
        subscriptions: usize,
        /// Messages the dead agentd never read that were sent again.
        resent: u64,
        /// Messages the dead agentd never read that could not be sent again (replies and
        /// acknowledgements to requests of before the restart, messages to a destination the new
        /// agentd does not know, or no room): counted here, never lost silently.
        not_resent: u64,
        /// Outstanding requests failed (their replies could not come any more).
        requests_failed: usize,
        /// Messages the dead agentd had delivered into this agent's lanes and it had not read
        /// yet: kept for `recv` (the old lanes go).
        kept_unread: u64,
    },
    /// The policy's `give_up_after` passed without agentd: every later call is `Disconnected`.
    GaveUp {
        /// How long agentd had been gone.
        after: Duration,
    },
}

/// A handler of [`ConnectionEvent`]s.
pub type ConnectionHandler = Box<dyn FnMut(&ConnectionEvent) + Send>;

/// Where re-attaching stands.
pub(crate) struct Reconnect {
    policy: Option<ReconnectPolicy>,
    /// When agentd was found gone (this outage).
    down_since: Option<Instant>,
    attempts: u32,
    next_try: Instant,
    delay: Duration,
    gave_up: bool,
    handler: Option<ConnectionHandler>,
    /// Re-attaches so far.
    pub(crate) reconnects: u64,
}

impl std::fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconnect")
            .field("policy", &self.policy)
            .field("down_since", &self.down_since)
            .field("attempts", &self.attempts)
            .field("gave_up", &self.gave_up)
            .field("reconnects", &self.reconnects)
            .finish_non_exhaustive()
    }
}

impl Reconnect {
    pub(crate) fn new(policy: Option<ReconnectPolicy>) -> Reconnect {
        Reconnect {
            policy,
            down_since: None,
            attempts: 0,
            next_try: Instant::now(),
            delay: Duration::ZERO,
            gave_up: false,
            handler: None,
            reconnects: 0,
        }
    }

    /// Whether a later call may still re-attach (a policy, not given up).
    fn will_retry(&self) -> bool {
        self.policy.is_some() && !self.gave_up
    }

    fn emit(&mut self, event: ConnectionEvent) {
        if let Some(h) = self.handler.as_mut() {
            h(&event);
        }
    }
}

impl Agent {
    /// Calls `handler` when this agent finds agentd gone, re-attaches, or gives up (from the
    /// call that found out or re-attached).
    pub fn on_connection(&mut self, handler: impl FnMut(&ConnectionEvent) + Send + 'static) {
        self.reconnect.handler = Some(Box::new(handler));
    }

    /// Whether this agent is attached to a live agentd now: asks the kernel whether agentd
    /// closed its connection (one system call), and if agentd is gone tries to re-attach when
    /// the backoff allows. `Ok` when attached (again); `Disconnected` otherwise.
    pub fn ensure_connected(&mut self) -> Result<(), CommunicationError> {
        // Found gone or not, what follows says which.
        let _ = self.tx.shared.probe_link();
        self.reconnect_if_due()
    }

    /// If agentd was found gone: `Ok` once re-attached (now, or by an earlier call), else the
    /// `Disconnected` error (a try is made when the backoff allows).
    pub(crate) fn reconnect_if_due(&mut self) -> Result<(), CommunicationError> {
        if !self.tx.shared.is_gone() {
            return Ok(());
        }
        let err = self.tx.shared.gone();
        let now = Instant::now();
        let Some(policy) = self.reconnect.policy else {
            return Err(err);
        };
        let down_since = match self.reconnect.down_since {
            Some(t) => t,
            None => {
                self.reconnect.down_since = Some(now);
                self.reconnect.attempts = 0;
                self.reconnect.delay = policy.first_delay;
                self.reconnect.next_try = now;
                self.reconnect.gave_up = false;
                let unsent = match &err {
                    CommunicationError::Disconnected { unsent, .. } => unsent.unwrap_or(0),
                    _ => 0,
                };
                self.reconnect.emit(ConnectionEvent::Lost { unsent });
                now
            }
        };
        if self.reconnect.gave_up {
            return Err(err);
        }
        if policy
            .give_up_after
            .is_some_and(|limit| now.duration_since(down_since) > limit)
        {
            self.reconnect.gave_up = true;
            let after = now.duration_since(down_since);
            self.reconnect.emit(ConnectionEvent::GaveUp { after });
            return Err(err);
        }
        if now < self.reconnect.next_try {
            return Err(err);
        }
        self.reconnect.attempts += 1;
        let attachment = match Attachment::connect(&self.tx.shared.options) {
            Ok(a) => a,
            Err(_) => {
                self.reconnect.next_try = now + self.reconnect.delay;
                self.reconnect.delay = (self.reconnect.delay * 2).min(policy.max_delay);
                return Err(err);
            }
        };
        let event = self.adopt(attachment, down_since);
        self.reconnect.down_since = None;
        self.reconnect.reconnects += 1;
        self.reconnect.emit(event);
        Ok(())
    }

    /// As [`Agent::reconnect_if_due`], waiting (sleeping between tries) until re-attached or
    /// `deadline`.
    pub(crate) fn reconnect_until(&mut self, deadline: Instant) -> Result<(), CommunicationError> {
        loop {
            match self.reconnect_if_due() {
                Ok(()) => return Ok(()),
                Err(e) if !self.reconnect.will_retry() => return Err(e),
                Err(e) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    let wake = self.reconnect.next_try.clamp(now, deadline);
                    std::thread::sleep(
                        wake.saturating_duration_since(now)
                            .max(Duration::from_millis(1)),
                    );
                }
            }
        }
    }

    /// Takes over attachment `a` (agentd restarted) and restores what this agent had set up.
    fn adopt(&mut self, a: Attachment, down_since: Instant) -> ConnectionEvent {
        let unsent = self.tx.shared.unsent_frame_copies();
        let names = std::mem::take(&mut self.tx.shared.book().names);
        let beat_every = super::agent::beat_every_ns(&a.info);
        let slot = a.info.slot;
        self.tx.shared.reattach(a.conn, a.info, a.lanes);
        self.tx.relink(a.outbound, a.control.clone(), beat_every);
        let kept = self.rx.relink(a.inbound, a.bell, a.control, beat_every);
        self.handlers.topic_names.clear();
        let subscriptions = self.restore();
        let requests_failed = lock(&self.rx.requests).reattached();
        let (resent, not_resent) = self.resend(&unsent, &names);
        ConnectionEvent::Reconnected {
            attempts: self.reconnect.attempts,
            down_for: down_since.elapsed(),
            slot,
            subscriptions,
            resent,
            not_resent,
            requests_failed,
            kept_unread: kept,
        }
    }

    /// Subscribes this agent's subscriptions again and creates again the topics it created
    /// with a configuration; returns how many subscriptions were made again.
    fn restore(&mut self) -> usize {
        let shared = std::sync::Arc::clone(&self.tx.shared);
        let (subscriptions, topics) = {
            let book = shared.book();
            (book.subscriptions.clone(), book.topics.clone())
        };
        for (name, config) in topics {
            // Refused if another agent made it first, otherwise: its sends say so then.
            let _ = shared.call(&Request::CreateTopic(TopicRequest {
                name,
                config: Some(config),
            }));
        }
        let mut made = 0;
        for entry in subscriptions {
            if let Ok(Response::Id(id)) =
                shared.call(&Request::Subscribe(entry.pattern.to_string()))
            {
                entry.id.store(id, Ordering::Relaxed);
                made += 1;
            }
        }
        made
    }

    /// Sends again the frames the dead agentd never read, each to its destination resolved
    /// again by name; returns how many were sent and how many could not be.
    fn resend(
        &mut self,
        frames: &[Vec<u8>],
        names: &std::collections::HashMap<(RouteKind, u64), Named>,
    ) -> (u64, u64) {
        let (mut resent, mut not) = (0, 0);
        for frame in frames {
            let Ok(mut header) = FrameHeader::parse(frame) else {
                not += 1;
                continue;
            };
            // Answers to requests made to the dead agentd's world: their requesters failed
            // those requests.
            if header.flags.contains(Flags::IS_REPLY) {
                not += 1;
                continue;
            }
            let kind = match header.route {
                RouteKind::Multicast => RouteKind::Agent,
                k => k,
            };
            let destination = if kind == RouteKind::Broadcast {
                Some(header.destination)
            } else {
                names
                    .get(&(kind, header.destination))
                    .cloned()
                    .and_then(|n| self.tx.resolve_again(n).ok())
                    .map(|r| r.destination)
            };
            let Some(destination) = destination else {
                not += 1;
                continue;
            };
            header.destination = destination;
            let route = Route {
                kind: header.route,
                destination,
            };
            if self.tx.write_frame(frame, &header, route).is_ok() {
                resent += 1;
            } else {
                not += 1;
            }
        }
        (resent, not)
    }
}
