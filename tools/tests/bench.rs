//! `agentbus bench all` in a tiny configuration: every case runs once and reports sane numbers
//! (this checks the harness, not the speed).

use std::path::PathBuf;
use std::process::Command;

/// A fresh scratch directory for one test's output files.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agentbus-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `agentbus bench ARGS...`, which must succeed; its stdout.
fn bench(configure: impl FnOnce(&mut Command) -> &mut Command) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentbus"));
    cmd.arg("bench").env("RUST_BACKTRACE", "0");
    let out = configure(&mut cmd)
        .output()
        .expect("the agentbus binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bench_all_runs_every_case_and_writes_sane_json_hgrm_and_svg() {
    let dir = scratch("test");
    let json = dir.join("out.json");
    let stdout = bench(|c| {
        c.args([
            "all", "--count", "300", "--rate", "20000", "--wait", "backoff", "--json",
        ])
        .arg(&json)
        .arg("--hgrm")
        .arg(dir.join("hgrm"))
        .arg("--plot")
        .arg(dir.join("plot.svg"))
    });
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(v["machine"]["cores"].as_u64().unwrap() >= 1);
    let cases = v["cases"].as_array().unwrap();
    let names: Vec<&str> = cases.iter().map(|c| c["case"].as_str().unwrap()).collect();
    for want in [
        "floor 64 B",
        "ring",
        "channel",
        "routed",
        "priority idle",
        "priority LOW flood",
        "fanout to 2",
        "fanout to 2, spinning",
        "unix socket",
        "crossbeam channel",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("rate ")));
    let ids: Vec<&str> = cases
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_else(|| panic!("no id: {c}")))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "ids are non-empty kebab-case: {id:?}"
        );
        assert!(!ids[..i].contains(id), "id {id:?} twice in {ids:?}");
    }
    for want in [
        "floor",
        "floor-signal",
        "ring",
        "channel",
        "routed",
        "throughput-routed",
        "throughput-routed-batched",
        "throughput-channel",
        "throughput-ring",
        "fanout",
        "fanout-spin",
        "slow-subscriber-alone",
        "slow-subscriber-drop-oldest",
        "slow-subscriber-dead-letter-slow",
    ] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    assert!(
        stdout.contains("Under block, the one that never reads stopped the publisher after"),
        "{stdout}"
    );
    assert!(
        !ids.iter().any(|id| id.starts_with("sweep-")),
        "sweep is not part of all: {ids:?}"
    );
    for c in cases {
        if c["kind"] == "rtt" {
            let (p50, p99, max) = (
                c["p50"].as_u64().unwrap(),
                c["p99"].as_u64().unwrap(),
                c["max"].as_u64().unwrap(),
            );
            assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{c}");
            assert!(c["count"].as_u64().unwrap() >= 300, "{c}");
            assert!(c["ratio_p50_to_floor"].as_f64().unwrap() > 0.0, "{c}");
        } else {
            assert_eq!(c["kind"], "throughput");
            assert!(c["msgs_per_s"].as_f64().unwrap() > 1000.0, "{c}");
            assert!(c["bytes_per_s"].as_f64().unwrap() > 0.0, "{c}");
        }
    }
    assert!(stdout.contains("p50/floor"), "{stdout}");
    let hgrm = std::fs::read_to_string(dir.join("hgrm").join("routed.hgrm")).unwrap();
    assert!(
        hgrm.contains("Percentile") && hgrm.contains("#[Max"),
        "{hgrm}"
    );
    let svg = std::fs::read_to_string(dir.join("plot.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("routed"),
        "an SVG with the curves"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_case_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["bench", "warp"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown case") && err.contains("routed"),
        "{err}"
    );
}

#[test]
fn bench_tail_prints_its_four_tables() {
    let stdout = bench(|c| c.args(["tail", "--count", "300", "--seconds", "0.2"]));
    for want in [
        "(a) the machine",
        "(b) the round trips",
        "(c) the model",
        "(d) when",
    ] {
        assert!(stdout.contains(want), "{want} missing: {stdout}");
    }
    for path in ["floor", "ring", "channel", "routed"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(path)),
            "{path}: {stdout}"
        );
    }
}

#[test]
fn bench_sweep_prints_its_table_and_writes_ids_per_size() {
    let dir = scratch("sweep");
    let json = dir.join("sweep.json");
    let stdout = bench(|c| {
        c.args(["sweep", "--count", "300", "--wait", "backoff", "--json"])
            .arg(&json)
    });
    assert!(stdout.contains("p99.9/fl"), "{stdout}");
    for size in [8, 64, 256, 1024, 4096] {
        for case in ["floor", "channel", "routed"] {
            assert!(
                stdout.lines().any(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some(&size.to_string()) && w.next() == Some(case)
                }),
                "{size} {case}: {stdout}"
            );
        }
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ids: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for want in ["sweep-floor-8", "sweep-channel-256", "sweep-routed-4096"] {
        assert!(ids.contains(&want), "{want} missing from {ids:?}");
    }
    assert_eq!(ids.len(), 15, "{ids:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
