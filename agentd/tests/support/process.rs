//! The real `agentd` binary as a child process, killed and cleaned up on drop.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions};
use agentbus::paths;

/// `agentd --bus <bus> --socket-dir <dir> --log-level warn <extra>`, started.
fn spawn(bus: &str, dir: &std::path::Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_agentd"))
        .args(["--bus", bus, "--socket-dir"])
        .arg(dir)
        .args(["--log-level", "warn"])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agentd starts")
}

/// A running `agentd` child on its own bus and socket directory.
pub struct AgentdProcess {
    pub child: Child,
    pub bus: String,
    pub dir: PathBuf,
}

impl AgentdProcess {
    /// Starts `agentd --bus <name-pid> --socket-dir <tmp>` with `extra` arguments and waits
    /// until an agent can attach.
    pub fn start(name: &str, extra: &[&str]) -> AgentdProcess {
        let cfg = super::config(name);
        let child = spawn(&cfg.bus, &cfg.socket_dir, extra);
        let p = AgentdProcess {
            child,
            bus: cfg.bus,
            dir: cfg.socket_dir,
        };
        p.wait_up();
        p
    }

    /// Starts a new agentd on the same bus and socket directory (after [`AgentdProcess::kill`]),
    /// and waits until it serves.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        self.child = spawn(&self.bus, &self.dir, extra);
        self.wait_up();
    }

    /// Waits until a live agentd answers on the socket.
    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let socket = paths::socket_path(&self.dir, &self.bus);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "agentd did not come up");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn options(&self, id: &str, kind: &str) -> AttachOptions {
        AttachOptions::new(&self.bus, id, kind).socket_dir(&self.dir)
    }

    /// Attaches, retrying while agentd finishes starting.
    pub fn attach(&self, id: &str, kind: &str) -> Agent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Agent::attach(self.options(id, kind)) {
                Ok(a) => return a,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("attach {id}: {e}"),
            }
        }
    }

    /// SIGKILLs agentd and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentdProcess {
    fn drop(&mut self) {
        self.kill();
        // A killed agentd leaves its socket and header: remove them.
        let _ = std::fs::remove_file(paths::socket_path(&self.dir, &self.bus));
        let _ = std::fs::remove_file(
            PathBuf::from("/dev/shm").join(paths::header_segment_name(&self.bus)),
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
