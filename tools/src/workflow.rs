//! `agentbus workflow run FILE`: runs a workflow defined in TOML, a live line per step.
//!
//! ```toml
//! name = "order-flow"
//!
//! [[steps]]
//! id = "price"
//! type = "pricer"            # or agent = "pricer-1", or capabilities = ["quote"]
//! task_type = "quote"
//!
//! [[steps]]
//! id = "risk"
//! capabilities = ["risk_check"]
//! task_type = "check"
//! dependencies = ["price"]
//! parameters = { px = "${price.result.px}" }
//! condition = "${risk.result.approved} == true"
//! timeout_ms = 2000
//! on_error = "retry"         # fail (default), skip, or retry
//! retries = 2
//! backoff_ms = 100
//! ```

use std::path::PathBuf;
use std::time::Duration;

use agentbus::client::{Agent, AttachOptions};
use agentbus::patterns::workflow::{self, AgentCriteria, OnError, Step, StepEvent, Workflow};
use agentbus::{MessagePriority, Record, Value};
use anyhow::{bail, Context};
use serde::Deserialize;

/// Options of `agentbus workflow`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkflowArgs {
    /// `run`.
    pub action: String,
    /// The workflow's TOML file.
    pub file: PathBuf,
    /// The bus.
    #[arg(long, default_value = "default")]
    pub bus: String,
    /// Where the bus's socket is (default: the standard directory).
    #[arg(long)]
    pub socket_dir: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWorkflow {
    name: String,
    steps: Vec<FileStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    id: String,
    agent: Option<String>,
    capabilities: Option<Vec<String>>,
    #[serde(rename = "type")]
    agent_type: Option<String>,
    task_type: String,
    #[serde(default)]
    parameters: toml::Table,
    priority: Option<String>,
    timeout_ms: Option<u64>,
    condition: Option<String>,
    on_error: Option<String>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    #[serde(default)]
    dependencies: Vec<String>,
}

/// Reads a workflow from TOML `text` (from `path`, for errors): a malformed file is an error
/// naming the line and the field.
pub fn parse(text: &str, path: &str) -> anyhow::Result<Workflow> {
    let file: FileWorkflow =
        toml::from_str(text).with_context(|| format!("workflow file {path}"))?;
    let steps = file
        .steps
        .into_iter()
        .map(|s| step(s).with_context(|| format!("workflow file {path}")))
        .collect::<anyhow::Result<_>>()?;
    Ok(Workflow {
        name: file.name,
        steps,
    })
}

fn step(s: FileStep) -> anyhow::Result<Step> {
    let agent = match (s.agent, s.capabilities, s.agent_type) {
        (Some(id), None, None) => AgentCriteria::Agent(id),
        (None, Some(caps), None) => AgentCriteria::Capability(caps),
        (None, None, Some(t)) => AgentCriteria::Type(t),
        _ => bail!(
            "step {:?}: give exactly one of `agent`, `capabilities` or `type`",
            s.id
        ),
    };
    let on_error = match s.on_error.as_deref().unwrap_or("fail") {
        "fail" => OnError::Fail,
        "skip" => OnError::Skip,
        "retry" => OnError::Retry {
            count: s.retries.unwrap_or(3),
            backoff: Duration::from_millis(s.backoff_ms.unwrap_or(1000)),
        },
        other => bail!(
            "step {:?}: on_error = {other:?}: use fail, skip or retry",
            s.id
        ),
    };
    let priority = match s.priority.as_deref().unwrap_or("normal") {
        "critical" => MessagePriority::Critical,
        "high" => MessagePriority::High,
        "normal" => MessagePriority::Normal,
        "low" => MessagePriority::Low,
        other => bail!(
            "step {:?}: priority = {other:?}: use critical, high, normal or low",
            s.id
        ),
    };
    let mut step = Step::new(&s.id, agent, &s.task_type)
        .parameters(record(&s.parameters))
        .on_error(on_error)
        .timeout(Duration::from_millis(s.timeout_ms.unwrap_or(30_000)));
    step.priority = priority;
    step.dependencies = s.dependencies;
    if let Some(c) = s.condition {
        step = step.condition(&c);
    }
    Ok(step)
}

fn record(t: &toml::Table) -> Record {
    t.iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

fn value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::List(a.iter().map(value).collect()),
        toml::Value::Table(t) => Value::Map(record(t)),
    }
}

/// Runs the command.
pub fn run(args: WorkflowArgs) -> anyhow::Result<()> {
    if args.action != "run" {
        bail!(
            "unknown workflow action {:?}: use `agentbus workflow run FILE`",
            args.action
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let workflow = parse(&text, &args.file.display().to_string())?;
    let mut options = AttachOptions::new(
        &args.bus,
        &format!("workflow-{}", std::process::id()),
        "orchestrator",
    );
    if let Some(dir) = &args.socket_dir {
        options = options.socket_dir(dir);
    }
    let mut agent = Agent::attach(options)?;
    println!(
        "workflow {:?}: {} steps",
        workflow.name,
        workflow.steps.len()
    );
    let outcome = workflow::run(&mut agent, &workflow, |e| match e {
        StepEvent::Running { step, attempt } if *attempt == 1 => println!("  {step:<16} running"),
        StepEvent::Running { step, attempt } => {
            println!("  {step:<16} running (attempt {attempt})")
        }
        StepEvent::Done { step, took } => println!("  {step:<16} done in {took:?}"),
        StepEvent::Retried { step, why, after } => {
            println!("  {step:<16} retried in {after:?}: {why}")
        }
        StepEvent::Skipped { step, why } => println!("  {step:<16} skipped: {why}"),
        StepEvent::Failed { step, why } => println!("  {step:<16} failed: {why}"),
        StepEvent::Stopped { step, condition } => {
            println!("  {step:<16} stopped the workflow: {condition} is false")
        }
    })?;
    let _ = agent.detach();
    match (&outcome.stopped_by, &outcome.failed_by) {
        (_, Some(step)) => bail!("workflow failed at step {step:?} after {:?}", outcome.took),
        (Some(step), None) => {
            println!("stopped by step {step:?} after {:?}", outcome.took);
            Ok(())
        }
        (None, None) => {
            println!("completed in {:?}", outcome.took);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_parses_into_a_workflow_and_a_malformed_one_names_the_line_and_the_field() {
        let w = parse(
            "name = \"w\"\n[[steps]]\nid = \"a\"\ntype = \"pricer\"\ntask_type = \"quote\"\n\
             [[steps]]\nid = \"b\"\ncapabilities = [\"risk\"]\ntask_type = \"check\"\n\
             dependencies = [\"a\"]\nparameters = { px = \"${a.result.px}\" }\n\
             on_error = \"retry\"\nretries = 2\nbackoff_ms = 10\n",
            "w.toml",
        )
        .unwrap();
        assert_eq!(w.steps.len(), 2);
        assert_eq!(w.steps[1].dependencies, vec!["a".to_string()]);
        assert_eq!(
            w.steps[1].on_error,
            OnError::Retry {
                count: 2,
                backoff: Duration::from_millis(10)
            }
        );
        let e = parse(
            "name = \"w\"\n[[steps]]\nid = \"a\"\ntype = \"pricer\"\ntask_typo = \"quote\"\n",
            "bad.toml",
        )
        .unwrap_err();
        let text = format!("{e:#}");
        assert!(
            text.contains("bad.toml") && text.contains("line 5") && text.contains("task_typo"),
            "{text}"
        );
        let e = parse(
            "name = \"w\"\n[[steps]]\nid = \"a\"\ntask_type = \"quote\"\n",
            "none.toml",
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("exactly one of"), "{e:#}");
    }
}
