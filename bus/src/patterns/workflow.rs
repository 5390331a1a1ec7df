//! Orchestrated workflows: steps sent as task requests to agents chosen by id, capability or
//! type, run as soon as their dependencies are done (independent ones in parallel), with
//! parameters that may name earlier results, a condition that can stop the workflow, and a
//! policy per step for errors (fail, retry with backoff, skip).
//!
//! A step is a `TaskRequest` (its `task_id` the step's id, its `task_type` and its parameters,
//! `${step.result.key}` references replaced by that step's result) sent as a request; the
//! answer is its outcome: a `TaskResponse` whose status is `Completed` gives the step's result
//! (its `result` value), any other answer, an error answer, a timeout or an unreachable agent
//! is the step's failure, handled as its `on_error` says. A step whose agent dies mid-task is
//! not answered: it times out, and a retry sent by capability or type reaches another agent.
//! After a step completes, its condition (if any) is checked: false stops the workflow (what
//! is running is abandoned, what has not started is not run). The outcome names what became
//! of every step.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::body::Payload;
use crate::client::{Agent, PendingRequest, Responder};
use crate::error::CommunicationError;
use crate::kinds::MessagePriority;
use crate::message::Message;
use crate::payload::{TaskRequest, TaskStatus};
use crate::value::{Record, Value};

/// Which agent runs a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCriteria {
    /// The agent with this id.
    Agent(String),
    /// The least-loaded agent having all these capabilities.
    Capability(Vec<String>),
    /// The least-loaded agent of this type.
    Type(String),
}

/// What a step's failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The workflow fails.
    Fail,
    /// Tried again, `count` more times at most, after `backoff` (doubling); then it fails.
    Retry {
        /// More attempts at most.
        count: u32,
        /// The wait before the first retry.
        backoff: Duration,
    },
    /// The step is skipped (its dependents run; a reference to its result is null).
    Skip,
}

/// A comparison of an earlier result with a literal: `${risk.result.approved} == true`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The text as written (for outcomes and errors).
    pub text: String,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its id: what dependencies and references name.
    pub id: String,
    /// Who runs it.
    pub agent: AgentCriteria,
    /// The task type sent.
    pub task_type: String,
    /// Its parameters; a string value `${step.result.key}` (or `${step.result}`) is replaced
    /// by that result.
    pub parameters: Record,
    /// Its priority.
    pub priority: MessagePriority,
    /// How long its agent has to answer.
    pub timeout: Duration,
    /// Checked when it completes: false stops the workflow.
    pub condition: Option<Condition>,
    /// What a failure does.
    pub on_error: OnError,
    /// Steps that must be done first.
    pub dependencies: Vec<String>,
}

impl Step {
    /// A step `id` of `task_type` for the agent `agent`, no parameters, 30 s, failing the
    /// workflow on error.
    pub fn new(id: &str, agent: AgentCriteria, task_type: &str) -> Step {
        Step {
            id: id.into(),
            agent,
            task_type: task_type.into(),
            parameters: Record::new(),
            priority: MessagePriority::Normal,
            timeout: Duration::from_secs(30),
            condition: None,
            on_error: OnError::Fail,
            dependencies: Vec::new(),
        }
    }

    /// With parameters.
    pub fn parameters(mut self, parameters: Record) -> Step {
        self.parameters = parameters;
        self
    }

    /// After these steps.
    pub fn after(mut self, steps: &[&str]) -> Step {
        self.dependencies = steps.iter().map(|s| s.to_string()).collect();
        self
    }

    /// With this error policy.
    pub fn on_error(mut self, on_error: OnError) -> Step {
        self.on_error = on_error;
        self
    }

    /// With this timeout.
    pub fn timeout(mut self, timeout: Duration) -> Step {
        self.timeout = timeout;
        self
    }

    /// Stopping the workflow unless `condition` holds once it completed.
    pub fn condition(mut self, condition: &str) -> Step {
        self.condition = Some(Condition {
            text: condition.into(),
        });
        self
    }
}

/// A workflow: its steps (in any order; dependencies order them).
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// Its name.
    pub name: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// What became of a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Done, with its result.
    Done {
        /// What it produced.
        result: Value,
        /// Attempts made.
        attempts: u32,
        /// From its first attempt to its result.
        took: Duration,
    },
    /// Skipped after failing (its `on_error` is `Skip`).
    Skipped {
        /// Why it failed.
        why: String,
    },
    /// Failed (and failed the workflow).
    Failed {
        /// Why.
        why: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Not run: the workflow stopped or failed first.
    NotRun,
}

/// What a workflow came to.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowOutcome {
    /// Every step's outcome, by id.
    pub steps: BTreeMap<String, StepOutcome>,
    /// The step whose condition stopped it, if one did.
    pub stopped_by: Option<String>,
    /// The step whose failure failed it, if one did.
    pub failed_by: Option<String>,
    /// From start to end.
    pub took: Duration,
}

impl WorkflowOutcome {
    /// Whether every step was done or skipped.
    pub fn completed(&self) -> bool {
        self.stopped_by.is_none() && self.failed_by.is_none()
    }
}

/// A step's progress, as it happens ([`run`]'s `events`).
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent {
    /// Sent to its agent (attempt 1 or later).
    Running {
        /// The step.
        step: String,
        /// Which attempt.
        attempt: u32,
    },
    /// Done.
    Done {
        /// The step.
        step: String,
        /// From its first attempt.
        took: Duration,
    },
    /// Failed, to be tried again after `after`.
    Retried {
        /// The step.
        step: String,
        /// Why the attempt failed.
        why: String,
        /// The wait before the next.
        after: Duration,
    },
    /// Failed and skipped.
    Skipped {
        /// The step.
        step: String,
        /// Why.
        why: String,
    },
    /// Failed (and fails the workflow).
    Failed {
        /// The step.
        step: String,
        /// Why.
        why: String,
    },
    /// Its condition is false: the workflow stops.
    Stopped {
        /// The step.
        step: String,
        /// The condition.
        condition: String,
    },
}

/// Why a workflow could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// Malformed: a duplicate id, a dependency on an unknown step, a cycle, a bad condition or
    /// reference.
    #[error("workflow {workflow:?} is not valid: {why}")]
    Invalid {
        /// The workflow.
        workflow: String,
        /// What is wrong, naming the step.
        why: String,
    },
    /// A step's agent could not be resolved (no such agent, capability set or type).
    #[error("step {step:?}: {source}")]
    Resolve {
        /// The step.
        step: String,
        /// Why.
        source: CommunicationError,
    },
}

enum Handle {
    Peer(crate::client::Peer),
    Capability(crate::client::Capability),
    Type(crate::client::AgentType),
}

impl Handle {
    fn responder(&self) -> Responder<'_> {
        match self {
            Handle::Peer(p) => Responder::Peer(p),
            Handle::Capability(c) => Responder::Capability(c),
            Handle::Type(t) => Responder::Type(t),
        }
    }
}

struct Running {
    request: PendingRequest,
    sent: Instant,
}

#[derive(Default)]
struct StepState {
    attempts: u32,
    first_sent: Option<Instant>,
    running: Option<Running>,
    /// Waiting for its retry until then.
    retry_at: Option<Instant>,
    backoff: Duration,
    outcome: Option<StepOutcome>,
}

/// Runs `workflow` from `agent`, calling `events` as steps start, finish, retry, skip or fail.
pub fn run(
    agent: &mut Agent,
    workflow: &Workflow,
    mut events: impl FnMut(&StepEvent),
) -> Result<WorkflowOutcome, WorkflowError> {
    validate(workflow)?;
    let handles = resolve(agent, workflow)?;
    let started = Instant::now();
    let mut states: HashMap<&str, StepState> = workflow
        .steps
        .iter()
        .map(|s| (s.id.as_str(), StepState::default()))
        .collect();
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut stopped_by = None;
    let mut failed_by = None;
    loop {
        let now = Instant::now();
        let mut progressed = false;
        // Start (or retry) every step whose dependencies are done.
        if stopped_by.is_none() && failed_by.is_none() {
            for step in &workflow.steps {
                let state = &states[step.id.as_str()];
                let due = state.outcome.is_none()
                    && state.running.is_none()
                    && state.retry_at.is_none_or(|t| now >= t);
                let ready = step.dependencies.iter().all(|d| {
                    matches!(
                        states[d.as_str()].outcome,
                        Some(StepOutcome::Done { .. } | StepOutcome::Skipped { .. })
                    )
                });
                if !(due && ready) {
                    continue;
                }
                let message = task(agent, step, &results);
                let sent = agent.start_request(handles[step.id.as_str()].responder(), &message);
                let state = states
                    .get_mut(step.id.as_str())
                    .expect("every step has a state");
                state.attempts += 1;
                state.retry_at = None;
                state.first_sent.get_or_insert(now);
                events(&StepEvent::Running {
                    step: step.id.clone(),
                    attempt: state.attempts,
                });
                match sent {
                    Ok(request) => state.running = Some(Running { request, sent: now }),
                    Err(e) => {
                        if let Some(id) = failed(step, state, e.to_string(), &mut events) {
                            failed_by = failed_by.or(Some(id));
                        }
                    }
                }
            }
        }
        // Collect answers and timeouts.
        for step in &workflow.steps {
            let state = states
                .get_mut(step.id.as_str())
                .expect("every step has a state");
            let Some(running) = state.running.as_mut() else {
                continue;
            };
            let answer = match running.request.try_wait(agent) {
                Some(a) => a,
                None if running.sent.elapsed() >= step.timeout => {
                    Err(CommunicationError::Timeout {
                        what: format!("step {:?}'s answer", step.id),
                        after: step.timeout,
                    })
                }
                None => continue,
            };
            state.running = None;
            progressed = true;
            match answer
                .map_err(|e| e.to_string())
                .and_then(|m| result_of(&m))
            {
                Ok(result) => {
                    let took = state.first_sent.map_or(Duration::ZERO, |t| t.elapsed());
                    events(&StepEvent::Done {
                        step: step.id.clone(),
                        took,
                    });
                    results.insert(step.id.clone(), result.clone());
                    state.outcome = Some(StepOutcome::Done {
                        result,
                        attempts: state.attempts,
                        took,
                    });
                    if let Some(c) = &step.condition {
                        if !evaluate(&c.text, &results).unwrap_or(false) && stopped_by.is_none() {
                            events(&StepEvent::Stopped {
                                step: step.id.clone(),
                                condition: c.text.clone(),
                            });
                            stopped_by = Some(step.id.clone());
                        }
                    }
                }
                Err(why) => {
                    if let Some(id) = failed(step, state, why, &mut events) {
                        failed_by = failed_by.or(Some(id));
                    }
                }
            }
        }
        let ended = stopped_by.is_some() || failed_by.is_some();
        let pending = states.values().any(|s| s.outcome.is_none());
        if ended || !pending {
            // What still runs is abandoned (a late answer is counted); the rest was not run.
            let steps = workflow
                .steps
                .iter()
                .map(|s| {
                    let state = states.remove(s.id.as_str()).unwrap_or_default();
                    (s.id.clone(), state.outcome.unwrap_or(StepOutcome::NotRun))
                })
                .collect();
            return Ok(WorkflowOutcome {
                steps,
                stopped_by,
                failed_by,
                took: started.elapsed(),
            });
        }
        // An answer may have made steps ready: start them before waiting.
        if !progressed {
            agent.receiver().wait_ready(Duration::from_millis(2));
        }
    }
}

/// A step's attempt failed with `why`: retried, skipped or failed as its policy says; returns
/// the step's id when it fails the workflow.
fn failed(
    step: &Step,
    state: &mut StepState,
    why: String,
    events: &mut impl FnMut(&StepEvent),
) -> Option<String> {
    match step.on_error {
        OnError::Retry { count, backoff } if state.attempts <= count => {
            let after = if state.backoff.is_zero() {
                backoff
            } else {
                state.backoff * 2
            };
            state.backoff = after;
            state.retry_at = Some(Instant::now() + after);
            events(&StepEvent::Retried {
                step: step.id.clone(),
                why,
                after,
            });
            None
        }
        OnError::Skip => {
            events(&StepEvent::Skipped {
                step: step.id.clone(),
                why: why.clone(),
            });
            state.outcome = Some(StepOutcome::Skipped { why });
            None
        }
        _ => {
            events(&StepEvent::Failed {
                step: step.id.clone(),
                why: why.clone(),
            });
            state.outcome = Some(StepOutcome::Failed {
                why,
                attempts: state.attempts,
            });
            Some(step.id.clone())
        }
    }
}

/// The task request for `step`, its references replaced by `results`.
fn task(agent: &Agent, step: &Step, results: &HashMap<String, Value>) -> Message {
    let parameters = step
        .parameters
        .iter()
        .map(|(k, v)| (k.clone(), substitute(v, results)))
        .collect();
    Message::task_request(
        agent.identity(),
        TaskRequest {
            task_id: step.id.clone(),
            task_type: step.task_type.clone(),
            parameters,
            dependencies: step.dependencies.clone(),
            ..Default::default()
        },
    )
    .priority(step.priority)
}

/// `v`, a string `${step.result[.key...]}` replaced by that result (null if there is none).
fn substitute(v: &Value, results: &HashMap<String, Value>) -> Value {
    match v {
        Value::String(s) if s.starts_with("${") && s.ends_with('}') => {
            lookup(&s[2..s.len() - 1], results).unwrap_or(Value::Null)
        }
        other => other.clone(),
    }
}

/// `step.result.key...` in `results`.
fn lookup(path: &str, results: &HashMap<String, Value>) -> Option<Value> {
    let mut parts = path.split('.');
    let step = parts.next()?;
    if parts.next()? != "result" {
        return None;
    }
    let mut v = results.get(step)?.clone();
    for key in parts {
        v = match v {
            Value::Map(m) => m.get(key)?.clone(),
            _ => return None,
        };
    }
    Some(v)
}

/// `${ref} op literal`; `None` if it cannot be evaluated.
fn evaluate(condition: &str, results: &HashMap<String, Value>) -> Option<bool> {
    let (left, op, right) = split_condition(condition)?;
    let l = substitute(&Value::String(left.into()), results);
    let r = literal(right);
    let ord = compare(&l, &r);
    Some(match op {
        "==" => l == r || ord == Some(std::cmp::Ordering::Equal),
        "!=" => !(l == r || ord == Some(std::cmp::Ordering::Equal)),
        "<" => ord == Some(std::cmp::Ordering::Less),
        "<=" => matches!(
            ord,
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ),
        ">" => ord == Some(std::cmp::Ordering::Greater),
        ">=" => matches!(
            ord,
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ),
        _ => return None,
    })
}

fn split_condition(c: &str) -> Option<(&str, &str, &str)> {
    for op in ["==", "!=", "<=", ">=", "<", ">"] {
        if let Some((l, r)) = c.split_once(op) {
            return Some((l.trim(), op, r.trim()));
        }
    }
    None
}

fn literal(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        return Value::Float(f);
    }
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => Value::String(s.trim_matches('"').into()),
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let num = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

/// A step's answer as its result: a completed `TaskResponse`'s `result` (null if none).
fn result_of(m: &Message) -> Result<Value, String> {
    match &m.payload {
        Payload::TaskResponse(r) if r.status == TaskStatus::Completed => {
            Ok(r.result.clone().unwrap_or(Value::Null))
        }
        Payload::TaskResponse(r) => Err(format!(
            "the task ended {:?}{}",
            r.status,
            r.error
                .as_ref()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default()
        )),
        other => Err(format!(
            "answered with a {} instead of a task response",
            other
                .message_type()
                .map_or("raw message".into(), |t| t.to_string())
        )),
    }
}

fn validate(workflow: &Workflow) -> Result<(), WorkflowError> {
    let invalid = |why: String| WorkflowError::Invalid {
        workflow: workflow.name.clone(),
        why,
    };
    let mut ids = std::collections::HashSet::new();
    for s in &workflow.steps {
        if !ids.insert(s.id.as_str()) {
            return Err(invalid(format!("two steps are called {:?}", s.id)));
        }
    }
    for s in &workflow.steps {
        if let Some(d) = s.dependencies.iter().find(|d| !ids.contains(d.as_str())) {
            return Err(invalid(format!(
                "step {:?} depends on {d:?}, which is not a step",
                s.id
            )));
        }
        if let Some(c) = &s.condition {
            if split_condition(&c.text).is_none() {
                return Err(invalid(format!(
                    "step {:?}'s condition {:?} is not `${{step.result.key}} <op> value` (op: == != < <= > >=)",
                    s.id, c.text
                )));
            }
        }
    }
    // No cycles: repeatedly take the steps whose dependencies are all taken.
    let mut done: std::collections::HashSet<&str> = std::collections::HashSet::new();
    while done.len() < workflow.steps.len() {
        let before = done.len();
        for s in &workflow.steps {
            if s.dependencies.iter().all(|d| done.contains(d.as_str())) {
                done.insert(s.id.as_str());
            }
        }
        if done.len() == before {
            let stuck: Vec<&str> = workflow
                .steps
                .iter()
                .map(|s| s.id.as_str())
                .filter(|id| !done.contains(id))
                .collect();
            return Err(invalid(format!(
                "the dependencies of {stuck:?} form a cycle"
            )));
        }
    }
    Ok(())
}

fn resolve<'w>(
    agent: &mut Agent,
    workflow: &'w Workflow,
) -> Result<HashMap<&'w str, Handle>, WorkflowError> {
    workflow
        .steps
        .iter()
        .map(|s| {
            let handle = match &s.agent {
                AgentCriteria::Agent(id) => agent.peer(id).map(Handle::Peer),
                AgentCriteria::Capability(c) => agent.capability(c).map(Handle::Capability),
                AgentCriteria::Type(t) => agent.agent_type(t).map(Handle::Type),
            }
            .map_err(|source| WorkflowError::Resolve {
                step: s.id.clone(),
                source,
            })?;
            Ok((s.id.as_str(), handle))
        })
        .collect()
}
