//! `agentd --check-config FILE`: 0 and a summary for a valid file, 1 and what is wrong (naming
//! the key) for an invalid one; `--log-format` is text or json.

use std::process::Command;

/// Removes the test's directory, even when it fails.
struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(dir: &Dir, name: &str, toml: &str) -> std::process::Output {
    let path = dir.0.join(name);
    std::fs::write(&path, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_agentd"))
        .arg("--check-config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_a_valid_file_and_names_what_is_wrong_in_an_invalid_one() {
    let dir =
        Dir(std::env::temp_dir().join(format!("agentbus-test-{}-checkcfg", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let ok = check(
        &dir,
        "ok.toml",
        "lane_capacity = 8192\n[[topics]]\npattern = \"md.>\"\nhistory = 5\npublishers = [\"type:feed\"]\n",
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("valid") && stdout.contains("8192") && stdout.contains("1 topic rules"),
        "{stdout}"
    );
    for (name, toml, says) in [
        ("size.toml", "lane_capacity = 5000\n", "lane_capacity"),
        ("key.toml", "lane_size = 1\n", "lane_size"),
        (
            "acl.toml",
            "[[topics]]\npattern = \"x.>\"\npublishers = [\"feed\"]\n",
            "topics.publishers",
        ),
    ] {
        let out = check(&dir, name, toml);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} accepted");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["--log-format", "yaml", "--check-config"])
        .arg(dir.0.join("ok.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("text or json"));
}
