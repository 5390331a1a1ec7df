//! `patterns`: what the coordination patterns cost on this machine: a consensus round among 4
//! voters (every one must answer: threshold 1.0), a workflow of 3 steps in a row (each sent to
//! one of the same agents by type), and a lease handover (from the holder's release to the
//! waiter's grant). One embedded agentd, every agent parking.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::patterns::consensus::{self, ConsensusOptions, Participant, Vote};
use agentbus::patterns::{Lease, LeaseOptions};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{Park, Wait};
use anyhow::Context;

use crate::bus_cases::bus_tuned;
use crate::report::{histogram, Row};

/// Voters in a consensus round.
pub const VOTERS: usize = 4;

/// The consensus round and the lease handover, `rounds` of each (a tenth first, unrecorded).
pub fn patterns(rounds: u64, router_core: usize) -> anyhow::Result<Vec<Row>> {
    let park = Wait::Park(Park::default());
    let b = bus_tuned("patterns", Some(router_core), park, true, |_| {})?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut voters = Vec::new();
    for i in 0..VOTERS {
        let mut agent = b.attach(&format!("voter-{i}"), park)?;
        // A proposal gets a yes; a workflow step, a completed task.
        agent.on_request(|req, _| {
            Ok(if consensus::proposal_of(req).is_some() {
                consensus::ballot(Vote::Yes)
            } else {
                agentbus::Payload::TaskResponse(agentbus::TaskResponse {
                    status: agentbus::TaskStatus::Completed,
                    ..Default::default()
                })
            })
        });
        let stop = Arc::clone(&stop);
        voters.push(std::thread::spawn(move || {
            agent.run_until(Instant::now() + Duration::from_secs(3600), |_| {
                stop.load(Ordering::Acquire)
            })
        }));
    }
    // Not of type "bench": workflow steps go to the voters by that type.
    let mut coordinator = agentbus::client::Agent::attach(
        agentbus::client::AttachOptions::new(&b.name, "coordinator", "coordinator")
            .socket_dir(&b.dir)
            .wait(park),
    )?;
    let participants: Vec<Participant> = (0..VOTERS)
        .map(|i| {
            Ok(Participant {
                peer: coordinator.peer(&format!("voter-{i}"))?,
                weight: 1.0,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let warmup = rounds / 10;
    let mut round = histogram();
    for i in 0..rounds + warmup {
        let outcome = consensus::propose(
            &mut coordinator,
            &participants,
            agentbus::record! { "round" => i as i64 },
            ConsensusOptions {
                threshold: 1.0,
                timeout: Duration::from_secs(5),
            },
        )?;
        if !outcome.accepted {
            anyhow::bail!("patterns: a consensus round was not accepted: {outcome:?}");
        }
        if i >= warmup {
            round.record((outcome.took.as_nanos() as u64).max(1))?;
        }
    }
    let flow = workflow_rounds(&mut coordinator, rounds)?;
    stop.store(true, Ordering::Release);
    for v in voters {
        v.join()
            .map_err(|_| anyhow::anyhow!("a voter panicked"))??;
    }
    let handover = lease_handover(&b, rounds.min(2000), park)?;
    Ok(vec![
        Row {
            id: "consensus-4".into(),
            name: format!("consensus round, {VOTERS} voters"),
            hist: round,
        },
        Row {
            id: "workflow-3".into(),
            name: "workflow, 3 steps in a row".into(),
            hist: flow,
        },
        Row {
            id: "lease-handover".into(),
            name: "lease handover".into(),
            hist: handover,
        },
    ])
}

/// A workflow of 3 steps in a row (each needs the one before), each run by one of the voters
/// (by type), `rounds` times (a tenth first, unrecorded).
fn workflow_rounds(
    agent: &mut agentbus::client::Agent,
    rounds: u64,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    use agentbus::patterns::workflow::{self, AgentCriteria, Step, Workflow};
    let voter = || AgentCriteria::Type("bench".into());
    let flow = Workflow {
        name: "bench".into(),
        steps: vec![
            Step::new("a", voter(), "a"),
            Step::new("b", voter(), "b").after(&["a"]),
            Step::new("c", voter(), "c").after(&["b"]),
        ],
    };
    let warmup = rounds / 10;
    let mut hist = histogram();
    for i in 0..rounds + warmup {
        let outcome = workflow::run(agent, &flow, |_| {})?;
        if !outcome.completed() {
            anyhow::bail!("patterns: a workflow did not complete: {outcome:?}");
        }
        if i >= warmup {
            hist.record((outcome.took.as_nanos() as u64).max(1))?;
        }
    }
    Ok(hist)
}

/// From the holder's release to the waiter's grant, `rounds` times (a tenth first, unrecorded).
fn lease_handover(
    b: &crate::bus_cases::Bus,
    rounds: u64,
    park: Wait,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let options = LeaseOptions::new("bench.primary").ttl(Duration::from_secs(10));
    let mut holder = b.attach("holder", park)?;
    let mut waiter = b.attach("waiter", park)?;
    let released_at = Arc::new(AtomicU64::new(0));
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let waiting = {
        let (options, released_at) = (options.clone(), Arc::clone(&released_at));
        std::thread::spawn(move || -> anyhow::Result<()> {
            let queued = options.wait(Duration::from_secs(10));
            while go_rx.recv().unwrap_or(false) {
                let lease = Lease::acquire(&mut waiter, &queued)?;
                let took = monotonic_ns().saturating_sub(released_at.load(Ordering::Acquire));
                drop(lease);
                done_tx.send(took).context("the bench went away")?;
            }
            Ok(())
        })
    };
    let warmup = rounds / 10;
    let mut hist = histogram();
    for i in 0..rounds + warmup {
        let lease = Lease::acquire(&mut holder, &options)?;
        go_tx.send(true)?;
        // Long enough for the waiter's request to be in line (it answers `LeaseQueued`).
        std::thread::sleep(Duration::from_millis(2));
        released_at.store(monotonic_ns(), Ordering::Release);
        lease.release()?;
        let took = done_rx
            .recv_timeout(Duration::from_secs(10))
            .context("the waiter was never granted the lease")?;
        if i >= warmup {
            hist.record(took.max(1))?;
        }
    }
    drop(go_tx);
    waiting
        .join()
        .map_err(|_| anyhow::anyhow!("the waiter panicked"))??;
    Ok(hist)
}
