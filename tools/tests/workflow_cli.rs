//! `agentbus workflow run FILE` runs a TOML workflow against a live bus, a line per step, and
//! refuses a malformed file naming the line and the field.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions};
use agentbus::{record, Payload, TaskResponse, TaskStatus, Value};

/// Removes the test's directory, even when it fails.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_toml_workflow_runs_from_the_command_line_and_a_malformed_one_is_named() {
    let pid = std::process::id();
    let dir = Dir(std::env::temp_dir().join(format!("agentbus-test-{pid}-wfcli")));
    let bus = format!("wfcli-{pid}");
    let mut config = agentd::Config::new(&bus);
    config.socket_dir = dir.0.join("sock");
    let daemon = agentd::Daemon::start(config).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut worker = Agent::attach(
        AttachOptions::new(&bus, "pricer-1", "pricer").socket_dir(dir.0.join("sock")),
    )
    .unwrap();
    worker.on_request(|_, _| {
        Ok(Payload::TaskResponse(TaskResponse {
            status: TaskStatus::Completed,
            result: Some(Value::Map(record! { "px" => 101i64 })),
            ..Default::default()
        }))
    });
    let s = Arc::clone(&stop);
    let serving = std::thread::spawn(move || {
        worker
            .run_until(Instant::now() + Duration::from_secs(30), |_| {
                s.load(Ordering::Acquire)
            })
            .unwrap()
    });
    let file = dir.0.join("flow.toml");
    std::fs::write(
        &file,
        "name = \"quote-then-check\"\n\
         [[steps]]\nid = \"price\"\ntype = \"pricer\"\ntask_type = \"quote\"\n\
         [[steps]]\nid = \"again\"\nagent = \"pricer-1\"\ntask_type = \"quote\"\n\
         dependencies = [\"price\"]\nparameters = { px = \"${price.result.px}\" }\n\
         condition = \"${again.result.px} == 101\"\n",
    )
    .unwrap();
    let run = |path: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_agentbus"))
            .args(["workflow", "run"])
            .arg(path)
            .args(["--bus", &bus, "--socket-dir"])
            .arg(dir.0.join("sock"))
            .output()
            .unwrap()
    };
    let out = run(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "price            running",
        "price            done in",
        "again            done in",
        "completed in",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[steps]]\nid = \"a\"\ntype = \"p\"\ntaskType = \"q\"\n",
    )
    .unwrap();
    let out = run(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 5") && stderr.contains("taskType"),
        "{stderr}"
    );
    stop.store(true, Ordering::Release);
    serving.join().unwrap();
    drop(daemon);
}
