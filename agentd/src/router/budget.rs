//! Dead letters per source: a token bucket that throttles an agent making too many.
//!
//! Every dead letter the router makes while routing an agent's frames (no route, ttl run out, a
//! destination failed) spends one token from that agent's bucket; the bucket refills at
//! `rate` tokens a second up to `burst`. An agent with an empty bucket is throttled: the router
//! leaves its lanes unread until a token has refilled, so its sends back up into `QueueFull`
//! and it cannot make agentd log, allocate or copy faster than `rate` dead letters a second,
//! however fast it writes. The other agents' frames are routed as usual meanwhile.

/// Token units per dead letter (tokens are kept in nano-letters so integer refill is exact).
const UNIT: u64 = 1_000_000_000;

/// How fast dead letters may come from one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadLetterLimit {
    /// Dead letters a second, sustained.
    pub rate: u64,
    /// Dead letters at once, from a full bucket.
    pub burst: u64,
}

/// One agent's bucket.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetterBudget {
    units: u64,
    last_ns: u64,
    throttled_since: Option<u64>,
}

/// What a refill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetState {
    /// At least one dead letter may be made.
    Open,
    /// Empty: leave the agent's lanes unread. `started` is true on the pass the throttling began.
    Throttled {
        /// Whether this pass began the throttling (log it once).
        started: bool,
    },
    /// The bucket is full again after throttling that lasted `for_ns`.
    Recovered {
        /// How long the agent was throttled.
        for_ns: u64,
    },
}

impl DeadLetterBudget {
    /// A full bucket at `now_ns`.
    pub fn new(limit: DeadLetterLimit, now_ns: u64) -> DeadLetterBudget {
        DeadLetterBudget {
            units: limit.burst.saturating_mul(UNIT),
            last_ns: now_ns,
            throttled_since: None,
        }
    }

    /// Refills for the time since the last call and says whether the agent may be read.
    pub fn refill(&mut self, limit: DeadLetterLimit, now_ns: u64) -> BudgetState {
        let full = limit.burst.saturating_mul(UNIT);
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.units = self
            .units
            .saturating_add(elapsed.saturating_mul(limit.rate))
            .min(full);
        match self.throttled_since {
            Some(since) if self.units >= full => {
                self.throttled_since = None;
                BudgetState::Recovered {
                    for_ns: now_ns.saturating_sub(since),
                }
            }
            Some(_) if self.units < UNIT => BudgetState::Throttled { started: false },
            Some(_) => BudgetState::Open,
            None if self.units < UNIT => {
                self.throttled_since = Some(now_ns);
                BudgetState::Throttled { started: true }
            }
            None => BudgetState::Open,
        }
    }

    /// Spends one dead letter (never below empty: a letter already being made is not undone).
    pub fn spend(&mut self) {
        self.units = self.units.saturating_sub(UNIT);
    }

    /// Whether another dead letter is affordable now (without refilling).
    pub fn affordable(&self) -> bool {
        self.units >= UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: DeadLetterLimit = DeadLetterLimit {
        rate: 1000,
        burst: 10,
    };

    #[test]
    fn a_burst_then_the_rate() {
        let mut b = DeadLetterBudget::new(LIMIT, 0);
        for _ in 0..10 {
            assert_eq!(b.refill(LIMIT, 0), BudgetState::Open);
            b.spend();
        }
        assert_eq!(b.refill(LIMIT, 0), BudgetState::Throttled { started: true });
        assert_eq!(
            b.refill(LIMIT, 500_000),
            BudgetState::Throttled { started: false }
        );
        // 1 ms at 1000/s buys one letter.
        assert_eq!(b.refill(LIMIT, 1_000_000), BudgetState::Open);
        b.spend();
        assert!(!b.affordable());
        // 10 ms refills the bucket: the episode ends, 10 ms after it began.
        assert_eq!(
            b.refill(LIMIT, 11_000_000),
            BudgetState::Recovered { for_ns: 11_000_000 }
        );
        assert_eq!(b.refill(LIMIT, 11_000_000), BudgetState::Open);
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let mut b = DeadLetterBudget::new(LIMIT, 1_000_000_000);
        for _ in 0..10 {
            b.spend();
        }
        assert_eq!(b.refill(LIMIT, 5), BudgetState::Throttled { started: true });
    }
}
