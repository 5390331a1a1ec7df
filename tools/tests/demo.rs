//! `agentbus demo` runs end to end (embedded agentd, six agent processes) and its accounting
//! balances.

use std::process::Command;

#[test]
fn the_demo_runs_for_three_seconds_and_its_accounting_balances() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["demo", "--seconds", "3", "--rate", "1000"])
        .output()
        .expect("the agentbus binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("every agent balances"), "{stdout}");
    for agent in [
        "feed-1",
        "strategy-1",
        "strategy-2",
        "risk-1",
        "exec-1",
        "exec-2",
    ] {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(agent) && l.trim_end().ends_with("ok"))
            .unwrap_or_else(|| panic!("no balanced row for {agent}:\n{stdout}"));
        let sent: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(sent > 0, "{agent} sent nothing: {row}");
    }
    for section in [
        "messages sent, by type and route",
        "one-way latency by route kind",
        "t=  1s",
    ] {
        assert!(stdout.contains(section), "missing {section:?}:\n{stdout}");
    }
    assert!(
        stdout.contains("task_request/capability") && stdout.contains("task_request/load_balanced")
    );
}

#[test]
fn bad_demo_options_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["demo", "--symbols", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--symbols must be 1 to 8"));
}
