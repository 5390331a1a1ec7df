//! Consensus: a proposal sent to every participant at once, weighted votes, a threshold, and a
//! decision as soon as the outcome can no longer change.
//!
//! The proposer sends the proposal (a `COORDINATION` message, `ConsensusRequest`, the proposal
//! in `coordination_data["proposal"]`) as a request to every participant in parallel, then
//! collects the answers until the deadline. A participant answers from its own request handler
//! ([`proposal_of`] recognises a proposal, [`ballot`] is the answer). A participant that does not
//! answer in time, answers with an error, or cannot be reached abstains. The proposal is
//! accepted when the weight of the yes votes reaches `threshold` of all the participants'
//! weight (an abstention counts as not yes); the round ends early as soon as that is certain
//! either way, and the participants not heard yet are named as such.

use std::time::{Duration, Instant};

use crate::body::{AgentIdentifier, Payload};
use crate::client::{Agent, Peer, PendingRequest};
use crate::codec::Envelope;
use crate::error::CommunicationError;
use crate::message::Message;
use crate::payload::{Coordination, CoordinationType};
use crate::value::{Record, Value};
use crate::MessagePriority;

/// A participant's answer to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// For.
    Yes,
    /// Against.
    No,
    /// Neither (also: no answer in time, an error, unreachable).
    Abstain,
}

impl Vote {
    fn name(self) -> &'static str {
        match self {
            Vote::Yes => "yes",
            Vote::No => "no",
            Vote::Abstain => "abstain",
        }
    }
}

/// One participant of a round: who, and how much its vote weighs.
#[derive(Debug, Clone)]
pub struct Participant {
    /// The agent.
    pub peer: Peer,
    /// Its weight (1.0 for an equal say; must be positive and finite).
    pub weight: f64,
}

/// How a round is decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsensusOptions {
    /// The share of all the weight the yes votes must reach (the spec's 0.67).
    pub threshold: f64,
    /// How long participants have to answer (then they abstain).
    pub timeout: Duration,
}

impl Default for ConsensusOptions {
    /// Threshold 0.67, 30 s to answer (the spec's).
    fn default() -> ConsensusOptions {
        ConsensusOptions {
            threshold: 0.67,
            timeout: Duration::from_secs(30),
        }
    }
}

/// How one participant voted.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteRecord {
    /// The participant's agent id.
    pub agent_id: String,
    /// Its weight.
    pub weight: f64,
    /// Its vote; `None` if the round was decided before it answered.
    pub vote: Option<Vote>,
    /// Why it abstained without saying so (timeout, error, unreachable), if it did.
    pub note: Option<String>,
}

/// What a round came to.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusOutcome {
    /// Whether the yes votes reached the threshold.
    pub accepted: bool,
    /// Weight of the yes votes.
    pub yes: f64,
    /// Weight of the no votes.
    pub no: f64,
    /// Weight of the abstentions.
    pub abstained: f64,
    /// Weight of every participant.
    pub total: f64,
    /// Every participant's vote, in the order given.
    pub votes: Vec<VoteRecord>,
    /// Decided before every participant answered (the rest could not change it).
    pub early: bool,
    /// From sending the proposal to the decision.
    pub took: Duration,
}

/// Why a round could not be held.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// No participants, a weight not positive, a threshold outside (0, 1].
    #[error("consensus round not valid: {0}")]
    Invalid(String),
    /// The proposer's own link failed.
    #[error(transparent)]
    Communication(#[from] CommunicationError),
}

/// Asks `participants` to vote on `proposal` (in parallel), as `options` says.
///
/// ```
/// use std::time::{Duration, Instant};
/// use agentbus::client::{Agent, AttachOptions};
/// use agentbus::patterns::consensus::{self, ConsensusOptions, Participant, Vote};
/// use agentbus::record;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # struct Gone(std::path::PathBuf);
/// # impl Drop for Gone { fn drop(&mut self) { let _ = std::fs::remove_dir_all(&self.0); } }
/// # let name = format!("doc-consensus-{}", std::process::id());
/// # let dir = Gone(std::env::temp_dir().join(&name));
/// # let mut config = agentd::Config::new(&name);
/// # config.socket_dir = dir.0.clone();
/// # let daemon = agentd::Daemon::start(config)?;
/// # let options = |id: &str, kind: &str| AttachOptions::new(daemon.bus(), id, kind).socket_dir(&dir.0);
/// let mut risk = Agent::attach(options("risk-1", "risk"))?;
/// risk.on_request(|req, _tx| match consensus::proposal_of(req) {
///     Some(p) if p.get("limit").is_some() => Ok(consensus::ballot(Vote::Yes)),
///     _ => Ok(consensus::ballot(Vote::No)),
/// });
/// let voter = std::thread::spawn(move || risk.run_until(Instant::now() + Duration::from_secs(5), |_| false));
/// let mut coordinator = Agent::attach(options("coordinator", "coordinator"))?;
/// let participants = [Participant { peer: coordinator.peer("risk-1")?, weight: 1.0 }];
/// let outcome = consensus::propose(
///     &mut coordinator,
///     &participants,
///     record! { "limit" => 2_000_000i64 },
///     ConsensusOptions { timeout: Duration::from_secs(5), ..Default::default() },
/// )?;
/// assert!(outcome.accepted);
/// # drop(voter);
/// # Ok(()) }
/// ```
pub fn propose(
    agent: &mut Agent,
    participants: &[Participant],
    proposal: Record,
    options: ConsensusOptions,
) -> Result<ConsensusOutcome, ConsensusError> {
    check(participants, options)?;
    let started = Instant::now();
    let deadline = started + options.timeout;
    let total: f64 = participants
        .iter()
        .map(|p| p.weight)
        .fold(0.0, |a, w| a + w);
    let needed = options.threshold * total;
    let names: Vec<AgentIdentifier> = participants
        .iter()
        .map(|p| AgentIdentifier::new(p.peer.name(), ""))
        .collect();
    let message = Message::coordination(
        agent.identity(),
        Coordination {
            coordination_type: CoordinationType::ConsensusRequest,
            participants: names,
            coordination_data: crate::record! { "proposal" => Value::Map(proposal) },
            proposed_action: None,
        },
    )
    .priority(MessagePriority::High);
    let mut votes: Vec<VoteRecord> = participants
        .iter()
        .map(|p| VoteRecord {
            agent_id: p.peer.name().into(),
            weight: p.weight,
            vote: None,
            note: None,
        })
        .collect();
    // Every proposal out before any answer is waited for.
    let mut pending: Vec<Option<PendingRequest>> = Vec::with_capacity(participants.len());
    for (i, p) in participants.iter().enumerate() {
        match agent.start_request(&p.peer, &message) {
            Ok(r) => pending.push(Some(r)),
            Err(e) => {
                votes[i].vote = Some(Vote::Abstain);
                votes[i].note = Some(format!("not reached: {e}"));
                pending.push(None);
            }
        }
    }
    let tally = |votes: &[VoteRecord], vote: Vote| -> f64 {
        votes
            .iter()
            .filter(|v| v.vote == Some(vote))
            .map(|v| v.weight)
            .fold(0.0, |a, w| a + w)
    };
    loop {
        for (i, slot) in pending.iter_mut().enumerate() {
            let Some(request) = slot.as_mut() else {
                continue;
            };
            let Some(answer) = request.try_wait(agent) else {
                continue;
            };
            *slot = None;
            let (vote, note) = match answer {
                Ok(m) => match vote_of(&m) {
                    Some(v) => (v, None),
                    None => (Vote::Abstain, Some("answered without a vote".into())),
                },
                Err(e) => (Vote::Abstain, Some(e.to_string())),
            };
            votes[i].vote = Some(vote);
            votes[i].note = note;
        }
        let yes = tally(&votes, Vote::Yes);
        let unheard: f64 = votes
            .iter()
            .filter(|v| v.vote.is_none())
            .map(|v| v.weight)
            .fold(0.0, |a, w| a + w);
        let decided = yes >= needed || yes + unheard < needed;
        if decided || Instant::now() >= deadline {
            let early = unheard > 0.0 && decided;
            if !decided {
                // Out of time: the silent abstain.
                for v in votes.iter_mut().filter(|v| v.vote.is_none()) {
                    v.vote = Some(Vote::Abstain);
                    v.note = Some(format!("no answer within {:?}", options.timeout));
                }
            }
            // Dropping the rest abandons them: a late answer is counted, not taken.
            drop(pending);
            return Ok(ConsensusOutcome {
                accepted: yes >= needed,
                yes,
                no: tally(&votes, Vote::No),
                abstained: tally(&votes, Vote::Abstain),
                total,
                votes,
                early,
                took: started.elapsed(),
            });
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(5));
        agent.receiver().wait_ready(wait);
    }
}

fn check(participants: &[Participant], options: ConsensusOptions) -> Result<(), ConsensusError> {
    if participants.is_empty() {
        return Err(ConsensusError::Invalid(
            "no participants: name at least one".into(),
        ));
    }
    if let Some(p) = participants
        .iter()
        .find(|p| !(p.weight.is_finite() && p.weight > 0.0))
    {
        return Err(ConsensusError::Invalid(format!(
            "{}'s weight is {}: weights must be positive and finite",
            p.peer.name(),
            p.weight
        )));
    }
    if !(options.threshold > 0.0 && options.threshold <= 1.0) {
        return Err(ConsensusError::Invalid(format!(
            "threshold {}: use a share of the total weight in (0, 1]",
            options.threshold
        )));
    }
    Ok(())
}

/// The proposal `request` carries, if it is a consensus proposal (for a participant's request
/// handler).
pub fn proposal_of(request: &Envelope<'_>) -> Option<Record> {
    let m = request.to_message().ok()?;
    let Payload::Coordination(c) = m.payload else {
        return None;
    };
    if c.coordination_type != CoordinationType::ConsensusRequest {
        return None;
    }
    match c.coordination_data.get("proposal") {
        Some(Value::Map(p)) => Some(p.clone()),
        _ => None,
    }
}

/// A participant's answer carrying `vote` (what its request handler returns).
pub fn ballot(vote: Vote) -> Payload {
    Payload::Coordination(Coordination {
        coordination_type: CoordinationType::ConsensusRequest,
        participants: Vec::new(),
        coordination_data: crate::record! { "vote" => vote.name() },
        proposed_action: None,
    })
}

/// The vote an answer carries.
fn vote_of(m: &Message) -> Option<Vote> {
    let Payload::Coordination(c) = &m.payload else {
        return None;
    };
    match c.coordination_data.get("vote") {
        Some(Value::String(v)) if v == "yes" => Some(Vote::Yes),
        Some(Value::String(v)) if v == "no" => Some(Vote::No),
        Some(Value::String(v)) if v == "abstain" => Some(Vote::Abstain),
        _ => None,
    }
}
