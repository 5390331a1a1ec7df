//! Orchestrated workflows across real agents: a DAG of 5 steps, results feeding later
//! parameters, one step retried, one skipped, a step whose agent dies mid-task (retried on
//! another), and a condition that stops the workflow.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::client::{Agent, HandlerError};
use agentbus::patterns::workflow::{
    self, AgentCriteria, OnError, Step, StepEvent, StepOutcome, Workflow,
};
use agentbus::{record, Payload, TaskResponse, TaskStatus, Value};
use support::*;

fn done(result: Value) -> Payload {
    Payload::TaskResponse(TaskResponse {
        status: TaskStatus::Completed,
        result: Some(result),
        ..Default::default()
    })
}

/// An agent answering task requests with `answer` until `stop`.
fn serve(
    mut agent: Agent,
    stop: Arc<AtomicBool>,
    answer: impl FnMut(&agentbus::TaskRequest) -> Result<Payload, HandlerError> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let answer = Arc::new(Mutex::new(answer));
    agent.on_request(move |req, _tx| {
        let m = req.to_message().unwrap();
        let Payload::TaskRequest(t) = m.payload else {
            return Err(HandlerError::new("not a task"));
        };
        (answer.lock().unwrap())(&t)
    });
    std::thread::spawn(move || {
        agent
            .run_until(Instant::now() + Duration::from_secs(30), |_| {
                stop.load(Ordering::Acquire)
            })
            .unwrap();
    })
}

fn workflow(approve: bool) -> Workflow {
    let ty = |t: &str| AgentCriteria::Type(t.into());
    Workflow {
        name: "order-flow".into(),
        steps: vec![
            Step::new("price", ty("pricer"), "quote"),
            Step::new(
                "risk",
                AgentCriteria::Capability(vec!["risk_check".into()]),
                "check",
            )
            .after(&["price"])
            .parameters(record! { "px" => "${price.result.px}", "approve" => approve })
            .condition("${risk.result.approved} == true"),
            Step::new("flaky", ty("flaky"), "warm_up").on_error(OnError::Retry {
                count: 2,
                backoff: Duration::from_millis(20),
            }),
            Step::new("news", AgentCriteria::Agent("newsbot".into()), "headlines")
                .on_error(OnError::Skip),
            Step::new("order", ty("worker"), "place")
                .after(&["risk", "flaky", "news"])
                .parameters(record! { "limit" => "${risk.result.limit}" })
                .timeout(Duration::from_millis(400))
                .on_error(OnError::Retry {
                    count: 1,
                    backoff: Duration::from_millis(10),
                }),
        ],
    }
}

#[test]
fn a_dag_of_five_steps_with_a_retry_a_skip_and_an_agent_dying_mid_task() {
    let bus = start("workflow");
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    threads.push(serve(
        bus.attach("pricer-1", "pricer"),
        Arc::clone(&stop),
        |_| Ok(done(Value::Map(record! { "px" => 101i64 }))),
    ));
    let risk =
        agentbus::client::Agent::attach(bus.options("risk-1", "risk").capabilities(["risk_check"]))
            .unwrap();
    threads.push(serve(risk, Arc::clone(&stop), |t| {
        assert_eq!(
            t.parameters.get("px"),
            Some(&Value::Int(101)),
            "the price step's result"
        );
        let approved = t.parameters.get("approve") == Some(&Value::Bool(true));
        Ok(done(Value::Map(
            record! { "approved" => approved, "limit" => 5000i64 },
        )))
    }));
    let tries = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&tries);
    threads.push(serve(
        bus.attach("flaky-1", "flaky"),
        Arc::clone(&stop),
        move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(HandlerError::new("cold cache"))
            } else {
                Ok(done(Value::Null))
            }
        },
    ));
    threads.push(serve(
        bus.attach("newsbot", "news"),
        Arc::clone(&stop),
        |_| Err(HandlerError::new("feed down")),
    ));
    // The first worker dies holding the order: its replacement attaches as it goes.
    let mut doomed = bus.attach("worker-1", "worker");
    let replacement = bus.options("worker-2", "worker");
    let stop2 = Arc::clone(&stop);
    threads.push(std::thread::spawn(move || {
        let got = doomed.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(got.is_some(), "worker-1 got the order");
        drop(got);
        drop(doomed); // dies mid-task: never answers
        let worker = Agent::attach(replacement).unwrap();
        serve(worker, stop2, |t| {
            Ok(done(Value::Map(
                record! { "placed" => true, "limit" => t.parameters.get("limit").cloned().unwrap_or_default() },
            )))
        })
        .join()
        .unwrap();
    }));
    let mut orchestrator = bus.attach("orchestrator", "orchestrator");
    let mut events = Vec::new();
    let outcome = workflow::run(&mut orchestrator, &workflow(true), |e| {
        eprintln!("{e:?}");
        events.push(e.clone());
    })
    .unwrap();
    eprintln!("outcome: {outcome:?}");
    assert!(outcome.completed(), "{outcome:?}");
    let step = |id: &str| outcome.steps[id].clone();
    assert!(matches!(
        step("price"),
        StepOutcome::Done { attempts: 1, .. }
    ));
    assert!(
        matches!(step("flaky"), StepOutcome::Done { attempts: 2, .. }),
        "retried once"
    );
    assert!(
        matches!(step("news"), StepOutcome::Skipped { .. }),
        "skipped"
    );
    match step("order") {
        StepOutcome::Done {
            attempts, result, ..
        } => {
            assert_eq!(attempts, 2, "its first agent died mid-task");
            assert_eq!(
                result,
                Value::Map(record! { "placed" => true, "limit" => 5000i64 }),
                "the risk step's result fed its parameters"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(events
        .iter()
        .any(|e| matches!(e, StepEvent::Retried { step, .. } if step == "flaky")));
    assert!(events
        .iter()
        .any(|e| matches!(e, StepEvent::Skipped { step, .. } if step == "news")));
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_condition_stops_the_workflow_and_a_malformed_one_is_refused() {
    let bus = start("workflow-stop");
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = vec![serve(
        bus.attach("pricer-1", "pricer"),
        Arc::clone(&stop),
        |_| Ok(done(Value::Map(record! { "px" => 101i64 }))),
    )];
    let risk = Agent::attach(bus.options("risk-1", "risk").capabilities(["risk_check"])).unwrap();
    threads.push(serve(risk, Arc::clone(&stop), |_| {
        Ok(done(Value::Map(
            record! { "approved" => false, "limit" => 0i64 },
        )))
    }));
    threads.push(serve(
        bus.attach("flaky-1", "flaky"),
        Arc::clone(&stop),
        |_| Ok(done(Value::Null)),
    ));
    threads.push(serve(
        bus.attach("newsbot", "news"),
        Arc::clone(&stop),
        |_| Ok(done(Value::Null)),
    ));
    let _worker = bus.attach("worker-1", "worker"); // never reached
    let mut orchestrator = bus.attach("orchestrator", "orchestrator");
    let outcome = workflow::run(&mut orchestrator, &workflow(false), |_| {}).unwrap();
    assert_eq!(outcome.stopped_by.as_deref(), Some("risk"));
    assert_eq!(outcome.steps["order"], StepOutcome::NotRun);
    // A cycle and an unknown dependency are refused before anything is sent, naming them.
    let mut cyclic = workflow(true);
    cyclic.steps[0].dependencies = vec!["order".into()];
    let e = workflow::run(&mut orchestrator, &cyclic, |_| {}).unwrap_err();
    assert!(e.to_string().contains("cycle"), "{e}");
    let mut unknown = workflow(true);
    unknown.steps[1].dependencies = vec!["pricing".into()];
    let e = workflow::run(&mut orchestrator, &unknown, |_| {}).unwrap_err();
    assert!(e.to_string().contains("\"pricing\""), "{e}");
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
}
