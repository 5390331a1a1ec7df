//! `AcquireLease`, `RenewLease` and `ReleaseLease`; grants to waiters pushed to their
//! connections; every change announced on `sys.leases`.

use std::time::Instant;

use agentbus::control::{LeaseQueued, LeaseRequest, LeaseToken, Push, Refusal, Response};
use agentbus::{record, Message, MessagePriority, Notification};
use mio::Token;

use super::{refuse, Control, Reply};
use crate::leases::{Acquired, Change, Party};
use crate::router::Command;

fn party(ctl: &Control, token: Token) -> Option<Party> {
    let (slot, _) = ctl.attached_slot(token)?;
    let agent_id = ctl.registry.agent(slot)?.identity.agent_id.clone();
    Some(Party {
        slot,
        agent_id,
        conn: token,
    })
}

pub(super) fn acquire(ctl: &mut Control, token: Token, req: &LeaseRequest) -> Reply {
    let Some(party) = party(ctl, token) else {
        return refuse(Refusal::NotAttached, "attach before acquiring leases");
    };
    let holder = party.agent_id.clone();
    match ctl.leases.acquire(party, req, Instant::now()) {
        Acquired::Granted(grant) => {
            announce(ctl, "granted", &grant.name, &holder, grant.token);
            Response::Lease(grant).into()
        }
        Acquired::Queued { position, holders } => {
            Response::LeaseQueued(LeaseQueued { position, holders }).into()
        }
        Acquired::Busy(holders) => refuse(
            Refusal::NoRoom,
            format!(
                "lease {:?} is held by {}: ask with wait to queue for it, or try again later",
                req.name,
                holders.join(", ")
            ),
        ),
        Acquired::Refused(why) => refuse(Refusal::BadRequest, why),
    }
}

pub(super) fn renew(ctl: &mut Control, token: Token, lease: &LeaseToken) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before renewing leases");
    };
    match ctl
        .leases
        .renew(slot, &lease.name, lease.token, Instant::now())
    {
        Ok(grant) => Response::Lease(grant).into(),
        Err(why) => refuse(Refusal::BadRequest, why),
    }
}

pub(super) fn release(ctl: &mut Control, token: Token, lease: &LeaseToken) -> Reply {
    let Some((slot, _)) = ctl.attached_slot(token) else {
        return refuse(Refusal::NotAttached, "attach before releasing leases");
    };
    let changes = ctl
        .leases
        .release(slot, &lease.name, lease.token, Instant::now());
    apply(ctl, changes);
    Response::Done.into()
}

/// Pushes grants to the waiters that got them and announces every change.
pub(super) fn apply(ctl: &mut Control, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Granted { party, grant } => {
                announce(ctl, "granted", &grant.name, &party.agent_id, grant.token);
                let pushed = ctl.reply(
                    party.conn,
                    Reply {
                        response: Response::Push(Push::LeaseGranted(grant)),
                        fds: Vec::new(),
                    },
                );
                if !pushed {
                    tracing::warn!(slot = party.slot, "a lease granted could not be pushed");
                }
            }
            Change::Freed {
                party,
                name,
                token,
                why,
            } => announce(ctl, why, &name, &party.agent_id, token),
        }
    }
}

/// Ends the grants whose ttl ran out, serving their waiters.
pub(super) fn expire(ctl: &mut Control) {
    let changes = ctl.leases.expire(Instant::now());
    if !changes.is_empty() {
        apply(ctl, changes);
    }
}

/// Publishes on `sys.leases`: lease `name` was `event` (granted, released, expired, holder
/// left) for `agent`, with fencing token `token`.
fn announce(ctl: &mut Control, event: &str, name: &str, agent: &str, token: u64) {
    let msg = Message::notification(
        crate::router::agentd_identity(),
        Notification {
            event: format!("lease_{}", event.replace(' ', "_")),
            data: record! {
                "lease" => name.to_string(),
                "agent" => agent.to_string(),
                "token" => token as i64,
            },
        },
    )
    .priority(MessagePriority::High);
    let topic = ctl.sys_leases;
    if ctl
        .push(Command::Notice {
            topic,
            message: Box::new(msg),
        })
        .is_err()
    {
        tracing::warn!(lease = name, "a sys.leases notice could not be queued");
    }
}
