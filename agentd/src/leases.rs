//! Named leases arbitrated by agentd: leader election (one unit of a one-unit lease), resource
//! allocation (units of a larger one) and conflict resolution (who waits goes first by
//! priority, then by arrival).
//!
//! A grant carries a fencing token that only grows: tokens start at agentd's start time in
//! nanoseconds since the epoch and count up from there, so a restarted agentd (on a clock that
//! moved forward) hands out larger ones too. A grant lasts its ttl unless renewed; a holder
//! whose agent dies (its control socket closes) loses it at once, and the waiters are served
//! in order. The control thread owns the table (no lock); it tells the waiters granted and
//! announces every change on `sys.leases`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agentbus::control::{LeaseGrant, LeaseRequest};
use mio::Token;

/// Who holds or waits: the agent's slot, id and control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Its slot.
    pub slot: u32,
    /// Its agent id (named in listings and notices).
    pub agent_id: String,
    /// Its control connection: where its grant is pushed.
    pub conn: Token,
}

#[derive(Debug)]
struct Holder {
    party: Party,
    units: u32,
    token: u64,
    ttl: Duration,
    expires: Instant,
}

#[derive(Debug)]
struct Waiter {
    party: Party,
    units: u32,
    ttl: Duration,
    priority: u8,
    /// Arrival order, for equal priorities.
    seq: u64,
}

#[derive(Debug)]
struct Lease {
    capacity: u32,
    holders: Vec<Holder>,
    /// Highest priority first, then by arrival.
    waiters: Vec<Waiter>,
}

impl Lease {
    fn free_units(&self) -> u32 {
        self.capacity
            .saturating_sub(self.holders.iter().map(|h| h.units).sum())
    }
}

/// What became of an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Granted now.
    Granted(LeaseGrant),
    /// Waiting in line at `position` (1: next) behind `holders`.
    Queued {
        /// Its place in line.
        position: u32,
        /// Who holds it now.
        holders: Vec<String>,
    },
    /// Taken, and the request may not wait: who holds it.
    Busy(Vec<String>),
    /// Malformed or conflicting (what to do about it).
    Refused(String),
}

/// A grant made to a waiter (to push to its connection) or a change to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `party` was granted `grant` after waiting.
    Granted {
        /// Who.
        party: Party,
        /// What.
        grant: LeaseGrant,
    },
    /// `party`'s hold of `name` ended: released, expired, or its agent left.
    Freed {
        /// Who held it.
        party: Party,
        /// The lease.
        name: String,
        /// The token it held.
        token: u64,
        /// `released`, `expired` or `holder left`.
        why: &'static str,
    },
}

/// Every lease by name.
#[derive(Debug)]
pub struct LeaseTable {
    leases: HashMap<String, Lease>,
    last_token: u64,
    arrivals: u64,
}

/// The longest a lease may be asked to last (an hour): a grant must end if its holder hangs.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

impl LeaseTable {
    /// No lease yet; tokens start after `first_token` (agentd's start, ns since the epoch).
    pub fn new(first_token: u64) -> LeaseTable {
        LeaseTable {
            leases: HashMap::new(),
            last_token: first_token,
            arrivals: 0,
        }
    }

    fn grant(
        &mut self,
        name: &str,
        party: Party,
        units: u32,
        ttl: Duration,
        now: Instant,
    ) -> LeaseGrant {
        self.last_token += 1;
        let token = self.last_token;
        if let Some(l) = self.leases.get_mut(name) {
            l.holders.push(Holder {
                party,
                units,
                token,
                ttl,
                expires: now + ttl,
            });
        }
        LeaseGrant {
            name: name.into(),
            units,
            token,
            ttl_ms: ttl.as_millis() as u32,
        }
    }

    /// `party` asks for what `req` says at `now`.
    pub fn acquire(&mut self, party: Party, req: &LeaseRequest, now: Instant) -> Acquired {
        if req.name.is_empty() || req.name.len() > 256 {
            return Acquired::Refused("a lease needs a name of 1 to 256 bytes".into());
        }
        if req.units == 0 || req.capacity == 0 || req.units > req.capacity {
            return Acquired::Refused(format!(
                "asked for {} of {} units: ask for 1 to capacity units of a lease of at least 1",
                req.units, req.capacity
            ));
        }
        let ttl = Duration::from_millis(req.ttl_ms as u64);
        if ttl.is_zero() || ttl > MAX_TTL {
            return Acquired::Refused(format!(
                "a ttl of {} ms: ask for 1 ms to {} s (renew to hold it longer)",
                req.ttl_ms,
                MAX_TTL.as_secs()
            ));
        }
        let lease = self
            .leases
            .entry(req.name.clone())
            .or_insert_with(|| Lease {
                capacity: req.capacity,
                holders: Vec::new(),
                waiters: Vec::new(),
            });
        if lease.capacity != req.capacity {
            return Acquired::Refused(format!(
                "lease {:?} has {} units, not {}: ask with its capacity",
                req.name, lease.capacity, req.capacity
            ));
        }
        if lease.holders.iter().any(|h| h.party.slot == party.slot)
            || lease.waiters.iter().any(|w| w.party.slot == party.slot)
        {
            return Acquired::Refused(format!(
                "this agent holds or waits for lease {:?} already",
                req.name
            ));
        }
        // Nobody waits ahead of it, and the units are free: granted now.
        if lease.waiters.is_empty() && lease.free_units() >= req.units {
            return Acquired::Granted(self.grant(&req.name, party, req.units, ttl, now));
        }
        let holders = lease
            .holders
            .iter()
            .map(|h| h.party.agent_id.clone())
            .collect();
        if !req.wait {
            return Acquired::Busy(holders);
        }
        self.arrivals += 1;
        let waiter = Waiter {
            party,
            units: req.units,
            ttl,
            priority: req.priority,
            seq: self.arrivals,
        };
        let at = lease
            .waiters
            .iter()
            .position(|w| {
                (w.priority, std::cmp::Reverse(w.seq))
                    < (waiter.priority, std::cmp::Reverse(waiter.seq))
            })
            .unwrap_or(lease.waiters.len());
        lease.waiters.insert(at, waiter);
        Acquired::Queued {
            position: at as u32 + 1,
            holders,
        }
    }

    /// Extends `slot`'s grant `token` of `name` by its ttl from `now`; `Err` says why it cannot
    /// (expired, taken, never held).
    pub fn renew(
        &mut self,
        slot: u32,
        name: &str,
        token: u64,
        now: Instant,
    ) -> Result<LeaseGrant, String> {
        let h = self
            .leases
            .get_mut(name)
            .and_then(|l| l.holders.iter_mut().find(|h| h.party.slot == slot && h.token == token))
            .ok_or_else(|| {
                format!("this agent does not hold lease {name:?} with token {token}: it expired or was released; acquire it again")
            })?;
        h.expires = now + h.ttl;
        Ok(LeaseGrant {
            name: name.into(),
            units: h.units,
            token: h.token,
            ttl_ms: h.ttl.as_millis() as u32,
        })
    }

    /// `slot` gives back grant `token` of `name` (or, with token 0, stops waiting for it); the
    /// changes that follow.
    pub fn release(&mut self, slot: u32, name: &str, token: u64, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(l) = self.leases.get_mut(name) {
            if token == 0 {
                l.waiters.retain(|w| w.party.slot != slot);
            } else if let Some(at) = l
                .holders
                .iter()
                .position(|h| h.party.slot == slot && h.token == token)
            {
                let h = l.holders.remove(at);
                changes.push(Change::Freed {
                    party: h.party,
                    name: name.into(),
                    token: h.token,
                    why: "released",
                });
            }
        }
        self.serve(name, now, &mut changes);
        changes
    }

    /// The agent in `slot` is gone: its holds end and its waits are dropped; the changes that
    /// follow.
    pub fn left(&mut self, slot: u32, now: Instant) -> Vec<Change> {
        for l in self.leases.values_mut() {
            l.waiters.retain(|w| w.party.slot != slot);
        }
        let names: Vec<String> = self.leases.keys().cloned().collect();
        self.end_holds(names, |h| h.party.slot == slot, "holder left", now)
    }

    /// Ends the grants whose ttl ran out by `now`; the changes that follow.
    pub fn expire(&mut self, now: Instant) -> Vec<Change> {
        let names: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, l)| l.holders.iter().any(|h| h.expires <= now))
            .map(|(n, _)| n.clone())
            .collect();
        self.end_holds(names, |h| h.expires <= now, "expired", now)
    }

    /// Ends the holds of the leases `names` that `ends` picks (for the reason `why`), then
    /// serves each lease's waiters; the changes that follow.
    fn end_holds(
        &mut self,
        names: Vec<String>,
        ends: impl Fn(&Holder) -> bool,
        why: &'static str,
        now: Instant,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for name in names {
            let Some(l) = self.leases.get_mut(&name) else {
                continue;
            };
            let (gone, kept): (Vec<Holder>, Vec<Holder>) =
                std::mem::take(&mut l.holders).into_iter().partition(&ends);
            l.holders = kept;
            for h in gone {
                changes.push(Change::Freed {
                    party: h.party,
                    name: name.clone(),
                    token: h.token,
                    why,
                });
            }
            self.serve(&name, now, &mut changes);
        }
        changes
    }

    /// Grants `name` to its waiters in order while the first one's units are free (the first
    /// in line is never overtaken by a smaller request behind it); forgets a lease nobody holds
    /// or waits for.
    fn serve(&mut self, name: &str, now: Instant, changes: &mut Vec<Change>) {
        loop {
            let Some(l) = self.leases.get_mut(name) else {
                return;
            };
            if l.holders.is_empty() && l.waiters.is_empty() {
                self.leases.remove(name);
                return;
            }
            let Some(first) = l.waiters.first() else {
                return;
            };
            if first.units > l.free_units() {
                return;
            }
            let w = l.waiters.remove(0);
            let grant = self.grant(name, w.party.clone(), w.units, w.ttl, now);
            changes.push(Change::Granted {
                party: w.party,
                grant,
            });
        }
    }

    /// The soonest a grant expires, if any is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.leases
            .values()
            .flat_map(|l| l.holders.iter().map(|h| h.expires))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(slot: u32) -> Party {
        Party {
            slot,
            agent_id: format!("agent-{slot}"),
            conn: Token(slot as usize),
        }
    }

    fn req(name: &str, units: u32, capacity: u32, priority: u8) -> LeaseRequest {
        LeaseRequest {
            name: name.into(),
            units,
            capacity,
            ttl_ms: 1000,
            priority,
            wait: true,
        }
    }

    fn token(a: &Acquired) -> u64 {
        match a {
            Acquired::Granted(g) => g.token,
            other => panic!("not granted: {other:?}"),
        }
    }

    #[test]
    fn a_lease_goes_to_one_holder_then_to_waiters_by_priority_then_arrival_with_growing_tokens() {
        let now = Instant::now();
        let mut t = LeaseTable::new(1_000);
        let first = token(&t.acquire(party(1), &req("leader", 1, 1, 0), now));
        assert!(first > 1_000);
        let low = t.acquire(party(2), &req("leader", 1, 1, 0), now);
        let high = t.acquire(party(3), &req("leader", 1, 1, 9), now);
        let low2 = t.acquire(party(4), &req("leader", 1, 1, 0), now);
        assert!(
            matches!(low, Acquired::Queued { position: 1, .. }),
            "{low:?}"
        );
        assert!(
            matches!(high, Acquired::Queued { position: 1, .. }),
            "{high:?}"
        );
        assert!(
            matches!(low2, Acquired::Queued { position: 3, .. }),
            "{low2:?}"
        );
        // The holder dies: the high-priority waiter gets it, with a larger token.
        let changes = t.left(1, now);
        let granted: Vec<(u32, u64)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Granted { party, grant } => Some((party.slot, grant.token)),
                _ => None,
            })
            .collect();
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].0, 3);
        assert!(granted[0].1 > first);
        // Released: then the earlier of the two equal ones.
        let changes = t.release(3, "leader", granted[0].1, now);
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Granted { party, .. } if party.slot == 2)));
    }

    #[test]
    fn counted_units_are_shared_and_the_first_in_line_is_never_overtaken() {
        let now = Instant::now();
        let mut t = LeaseTable::new(0);
        token(&t.acquire(party(1), &req("gpu", 3, 4, 0), now));
        let big = t.acquire(party(2), &req("gpu", 2, 4, 0), now);
        assert!(matches!(big, Acquired::Queued { .. }));
        // One unit is free, but the waiter ahead wants two: a later small request waits too.
        let small = t.acquire(party(3), &req("gpu", 1, 4, 0), now);
        assert!(
            matches!(small, Acquired::Queued { position: 2, .. }),
            "{small:?}"
        );
        let mut nowait = req("gpu", 1, 4, 0);
        nowait.wait = false;
        assert!(matches!(
            t.acquire(party(5), &nowait, now),
            Acquired::Busy(_)
        ));
        assert!(matches!(
            t.acquire(party(6), &req("gpu", 1, 8, 0), now),
            Acquired::Refused(_)
        ));
    }

    #[test]
    fn a_grant_not_renewed_expires_and_a_renewed_one_does_not() {
        let now = Instant::now();
        let mut t = LeaseTable::new(0);
        let a = token(&t.acquire(party(1), &req("a", 1, 1, 0), now));
        let b = token(&t.acquire(party(2), &req("b", 1, 1, 0), now));
        t.renew(2, "b", b, now + Duration::from_millis(900))
            .unwrap();
        let changes = t.expire(now + Duration::from_millis(1001));
        assert_eq!(changes.len(), 1);
        assert!(
            matches!(&changes[0], Change::Freed { name, token, why: "expired", .. } if name == "a" && *token == a)
        );
        assert!(t.renew(1, "a", a, now).is_err());
        assert!(t
            .renew(2, "b", b, now + Duration::from_millis(1001))
            .is_ok());
    }
}
