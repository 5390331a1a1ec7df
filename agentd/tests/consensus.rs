//! Consensus among real agents: weighted votes, a silent participant that abstains, and an
//! early decision once the outcome cannot change.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus::patterns::consensus::{self, ConsensusOptions, Participant, Vote};
use agentbus::record;
use support::*;

/// Agents answering proposals with `vote` from their handler loop until `stop`.
fn voter(mut agent: Agent, vote: Vote, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Agent> {
    agent.on_request(move |req, _tx| {
        assert!(consensus::proposal_of(req).is_some(), "a proposal");
        Ok(consensus::ballot(vote))
    });
    std::thread::spawn(move || {
        agent
            .run_until(Instant::now() + Duration::from_secs(30), |_| {
                stop.load(Ordering::Acquire)
            })
            .unwrap();
        agent
    })
}

#[test]
fn weighted_votes_a_silent_abstainer_and_an_early_decision() {
    let bus = start("consensus");
    let stop = Arc::new(AtomicBool::new(false));
    let risk = voter(bus.attach("risk", "risk"), Vote::No, Arc::clone(&stop));
    let alpha = voter(
        bus.attach("alpha", "strategy"),
        Vote::Yes,
        Arc::clone(&stop),
    );
    let beta = voter(bus.attach("beta", "strategy"), Vote::Yes, Arc::clone(&stop));
    let _silent = bus.attach("silent", "strategy"); // never answers
    let mut coordinator = bus.attach("coordinator", "coordinator");
    let participants: Vec<Participant> = [
        ("risk", 3.0),
        ("alpha", 1.0),
        ("beta", 1.0),
        ("silent", 1.0),
    ]
    .iter()
    .map(|(id, weight)| Participant {
        peer: coordinator.peer(id).unwrap(),
        weight: *weight,
    })
    .collect();
    let limit = record! { "limit" => 2_000_000i64 };

    // Threshold 0.55 of 6 (3.3): once risk says no, the yes votes can reach at most 3 (alpha,
    // beta and the silent one), so the round is rejected as soon as risk has voted, without
    // waiting for the silent one.
    let early = consensus::propose(
        &mut coordinator,
        &participants,
        limit.clone(),
        ConsensusOptions {
            threshold: 0.55,
            timeout: Duration::from_secs(10),
        },
    )
    .unwrap();
    eprintln!("early decision in {:?}: {early:?}", early.took);
    assert!(!early.accepted);
    assert!(early.early, "decided before the silent one answered");
    assert!(early.took < Duration::from_secs(5), "{:?}", early.took);
    let silent = early.votes.iter().find(|v| v.agent_id == "silent").unwrap();
    assert_eq!(silent.vote, None, "named as not heard");
    assert_eq!(early.total, 6.0);
    assert_eq!(early.no, 3.0, "risk's weight decided it");

    // Threshold 1/3 of 6 = 2: the two yes votes decide it; then the silent one's abstention is
    // irrelevant, and it is named as not heard.
    let yes = consensus::propose(
        &mut coordinator,
        &participants,
        limit,
        ConsensusOptions {
            threshold: 1.0 / 3.0,
            timeout: Duration::from_secs(10),
        },
    )
    .unwrap();
    assert!(yes.accepted, "{yes:?}");
    assert!(yes.yes >= 2.0);

    stop.store(true, Ordering::Release);
    for h in [risk, alpha, beta] {
        h.join().unwrap();
    }
}

#[test]
fn a_silent_participant_abstains_at_the_timeout_and_weights_decide() {
    let bus = start("consensus-silent");
    let stop = Arc::new(AtomicBool::new(false));
    let yes = voter(bus.attach("yes", "x"), Vote::Yes, Arc::clone(&stop));
    let no = voter(bus.attach("no", "x"), Vote::No, Arc::clone(&stop));
    let _silent = bus.attach("silent", "x");
    let mut coordinator = bus.attach("coordinator", "x");
    let p = |id: &str, weight: f64, c: &Agent| Participant {
        peer: c.peer(id).unwrap(),
        weight,
    };
    let participants = vec![
        p("yes", 2.0, &coordinator),
        p("no", 1.0, &coordinator),
        p("silent", 1.0, &coordinator),
    ];
    // 2 of 4 yes is under 0.67 of 4 (2.68), but 3 would not be: the round waits for the silent
    // one, and its silence (an abstention at the timeout) makes it a rejection.
    let started = Instant::now();
    let outcome = consensus::propose(
        &mut coordinator,
        &participants,
        record! { "limit" => 1i64 },
        ConsensusOptions {
            threshold: 0.67,
            timeout: Duration::from_millis(400),
        },
    )
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert!(!outcome.accepted);
    assert!(!outcome.early);
    assert_eq!(
        (outcome.yes, outcome.no, outcome.abstained),
        (2.0, 1.0, 1.0)
    );
    let silent = outcome
        .votes
        .iter()
        .find(|v| v.agent_id == "silent")
        .unwrap();
    assert_eq!(silent.vote, Some(Vote::Abstain));
    assert!(
        silent.note.as_deref().unwrap_or("").contains("no answer"),
        "{silent:?}"
    );
    // Bad rounds are refused before anything is sent.
    assert!(consensus::propose(
        &mut coordinator,
        &[],
        record! {},
        ConsensusOptions::default()
    )
    .is_err());
    stop.store(true, Ordering::Release);
    for h in [yes, no] {
        h.join().unwrap();
    }
}
