//! Isolation across uids: a socket directory another uid created (or could write) is refused by
//! agentd and by agents; agentd's descriptors (every agent's lanes) cannot be opened through
//! `/proc` by other processes of its uid; an agent can opt in to the same protection.
//!
//! The tests that need a second uid run only as root (they drop to uid 65534 in child
//! processes) and say so when skipped.

mod support;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, ClientError};
use agentbus::paths::{self, SocketDirError};
use agentd::{Config, Daemon, StartError};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::process::AgentdProcess;
use support::*;

/// The uid (and gid) of "another user": `nobody`.
const OTHER: u32 = 65534;

/// Set in the environment of the child process of
/// `an_agent_attached_non_dumpable_makes_its_process_non_dumpable`: `<bus>\n<socket dir>`.
const CHILD_ENV: &str = "AGENTBUS_ISOLATION_NON_DUMPABLE_CHILD";

/// Set in the environment of the child of the other-uid attach tests:
/// `<bus>\n<socket dir>\n<refused|allowed>`.
const OTHER_UID_ENV: &str = "AGENTBUS_ISOLATION_OTHER_UID_CHILD";

fn is_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipping {test}: it needs root, to act as a second uid ({OTHER}) in child processes"
    );
    false
}

fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn header_file(bus: &str) -> PathBuf {
    Path::new("/dev/shm").join(paths::header_segment_name(bus))
}

/// A fresh directory under the temp dir, removed with all it holds when dropped, even when the
/// test fails.
struct TempTree {
    path: PathBuf,
}

impl TempTree {
    fn new(name: &str) -> TempTree {
        let path =
            std::env::temp_dir().join(format!("agentbus-isolation-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempTree { path }
    }

    /// Hands the tree to uid [`OTHER`], so that it can create what it likes in it.
    fn give_to_other(&self) {
        std::os::unix::fs::chown(&self.path, Some(OTHER), Some(OTHER)).unwrap();
    }

    /// `name` in the tree, created (mode 0700) by a process of uid [`OTHER`]: a squatter.
    fn squatted(&self, name: &str) -> PathBuf {
        self.give_to_other();
        let dir = self.path.join(name);
        let out = as_other("mkdir")
            .args(["-m", "700"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mkdir as uid {OTHER}: {out:?}");
        assert_eq!(std::fs::metadata(&dir).unwrap().uid(), OTHER);
        dir
    }

    /// Removes the tree now and checks that nothing is left.
    fn close(self) {
        let _ = std::fs::remove_dir_all(&self.path);
        assert!(!self.path.exists(), "{} left behind", self.path.display());
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `program`, to be run as uid and gid [`OTHER`] (std drops the supplementary groups).
fn as_other(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.uid(OTHER).gid(OTHER);
    c
}

/// An `agentd` child process, killed (if still running) and cleaned up after when dropped.
struct AgentdChild {
    child: Child,
    bus: String,
    dir: PathBuf,
}

impl AgentdChild {
    fn spawn(mut cmd: Command, bus: &str, dir: &Path) -> AgentdChild {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        AgentdChild {
            child: cmd.spawn().expect("agentd starts"),
            bus: bus.into(),
            dir: dir.into(),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits at most `limit` for it to exit; `None` if it is still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills it (if still running) and reaps it.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// What it wrote to stderr; call once it has exited (it reads to the end).
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }

    /// Waits (at most 20 s) until its socket exists and `ready` holds, failing early if it exits.
    fn wait_ready(&mut self, mut ready: impl FnMut(&AgentdChild) -> bool) {
        let socket = paths::socket_path(&self.dir, &self.bus);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(socket.exists() && ready(self)) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("agentd exited ({status}): {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "agentd did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for AgentdChild {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(paths::socket_path(&self.dir, &self.bus));
        let _ = std::fs::remove_file(header_file(&self.bus));
    }
}

fn expect_start_refused(dir: &Path, bus: &str) -> String {
    let mut cfg = Config::new(bus);
    cfg.socket_dir = dir.into();
    let text = match Daemon::start(cfg) {
        Err(e @ StartError::UnsafeSocketDir(_)) => e.to_string(),
        Err(e) => panic!("agentd should refuse {} as unsafe: {e}", dir.display()),
        Ok(_) => panic!("agentd is serving the unsafe {}", dir.display()),
    };
    assert!(!paths::socket_path(dir, bus).exists(), "a socket was made");
    assert!(!header_file(bus).exists(), "a bus header was made");
    text
}

fn attach_error(dir: &Path, bus: &str) -> SocketDirError {
    let mut options = AttachOptions::new(bus, "victim", "x").socket_dir(dir);
    options.control_timeout = Duration::from_secs(1);
    match Agent::attach(options) {
        Err(ClientError::UnsafeSocketDir(e)) => e,
        Err(e) => panic!("attach should refuse {} as unsafe: {e}", dir.display()),
        Ok(_) => panic!("attached through the unsafe {}", dir.display()),
    }
}

#[test]
fn agentd_refuses_a_socket_directory_another_uid_created() {
    if !is_root("agentd_refuses_a_socket_directory_another_uid_created") {
        return;
    }
    let tree = TempTree::new("squat-embedded");
    let dir = tree.squatted("sock");
    let bus = format!("iso-squat-embedded-{}", std::process::id());
    let text = expect_start_refused(&dir, &bus);
    let expected = format!(
        "socket directory {} is owned by uid {OTHER}, not {} (this process)",
        dir.display(),
        uid()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("--socket-dir / XDG_RUNTIME_DIR"), "{text}");
    // agentd left the squatter's directory as it found it.
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
    tree.close();
}

#[test]
fn the_agentd_binary_refuses_a_squatted_default_socket_directory() {
    if !is_root("the_agentd_binary_refuses_a_squatted_default_socket_directory") {
        return;
    }
    let tree = TempTree::new("squat-default");
    // With XDG_RUNTIME_DIR unset, agentd's default is $TMPDIR/agentbus-<uid>.
    let dir = tree.squatted(&format!("agentbus-{}", uid()));
    let bus = format!("iso-squat-binary-{}", std::process::id());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentd"));
    cmd.args(["--bus", &bus, "--log-level", "warn"])
        .env("TMPDIR", &tree.path)
        .env_remove("XDG_RUNTIME_DIR");
    let mut agentd = AgentdChild::spawn(cmd, &bus, &dir);
    let Some(status) = agentd.wait_exit(Duration::from_secs(20)) else {
        agentd.stop();
        panic!("agentd is serving the squatted {}", dir.display());
    };
    let stderr = agentd.stderr();
    assert!(!status.success(), "agentd exited 0: {stderr}");
    let expected = format!("{} is owned by uid {OTHER}, not {}", dir.display(), uid());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!header_file(&bus).exists(), "a bus header was made");
    drop(agentd);
    tree.close();
}

#[test]
fn an_agent_refuses_to_attach_through_a_squatted_socket_directory() {
    if !is_root("an_agent_refuses_to_attach_through_a_squatted_socket_directory") {
        return;
    }
    let tree = TempTree::new("squat-client");
    let dir = tree.squatted("sock");
    let bus = format!("iso-squat-client-{}", std::process::id());
    // The squatter's socket, where the agent expects agentd's.
    let fake = UnixListener::bind(paths::socket_path(&dir, &bus)).unwrap();
    fake.set_nonblocking(true).unwrap();
    match attach_error(&dir, &bus) {
        SocketDirError::WrongOwner { owner, uid: me, .. } => {
            assert_eq!((owner, me), (OTHER, uid()));
        }
        other => panic!("expected WrongOwner, got {other:?}"),
    }
    match fake.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the agent connected to the squatter's socket: {other:?}"),
    }
    drop(fake);
    tree.close();
}

#[test]
fn a_socket_directory_others_could_write_or_a_symlink_or_a_file_is_refused() {
    let tree = TempTree::new("unsafe-modes");
    let bus = format!("iso-unsafe-modes-{}", std::process::id());
    for mode in [0o770, 0o707, 0o1777] {
        let dir = tree.path.join(format!("mode-{mode:o}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let text = expect_start_refused(&dir, &bus);
        assert!(text.contains("writable by group or others"), "{text}");
        assert!(
            text.contains(&format!("chmod go-w {}", dir.display())),
            "{text}"
        );
        assert!(
            matches!(attach_error(&dir, &bus), SocketDirError::Writable { mode: m, .. } if m == mode),
            "mode {mode:o}"
        );
    }
    let good = tree.path.join("good");
    std::fs::create_dir(&good).unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = tree.path.join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    let text = expect_start_refused(&link, &bus);
    assert!(text.contains("is a symbolic link"), "{text}");
    assert!(matches!(
        attach_error(&link, &bus),
        SocketDirError::Symlink { .. }
    ));
    // A missing one is not unsafe: nobody has served a bus there yet.
    let absent = tree.path.join("absent");
    assert!(matches!(
        Agent::attach(AttachOptions::new(&bus, "victim", "x").socket_dir(&absent)),
        Err(ClientError::BusNotRunning { .. })
    ));
    let file = tree.path.join("file");
    std::fs::write(&file, b"").unwrap();
    let text = expect_start_refused(&file, &bus);
    assert!(text.contains("is not a directory"), "{text}");
    assert!(matches!(
        attach_error(&file, &bus),
        SocketDirError::NotADirectory { .. }
    ));
    tree.close();
}

#[test]
fn agentd_creates_its_socket_directory_private_and_agents_attach_through_it() {
    let tree = TempTree::new("fresh");
    let mut cfg = config("iso-fresh");
    cfg.socket_dir = tree.path.join("run").join("agentbus");
    let bus = start_with(cfg);
    let meta = std::fs::symlink_metadata(&bus.dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700);
    assert_eq!(meta.uid(), uid());
    // The socket: agentd's uid and group only; the bus header: written by agentd's uid only,
    // read by its group too (ops tools).
    let socket = std::fs::metadata(paths::socket_path(&bus.dir, &bus.bus)).unwrap();
    assert_eq!(socket.mode() & 0o777, 0o660, "socket mode");
    assert_eq!(socket.uid(), uid());
    let header = std::fs::metadata(header_file(&bus.bus)).unwrap();
    assert_eq!(header.mode() & 0o777, 0o640, "bus header mode");
    assert_eq!(header.uid(), uid());
    let mut a = bus.attach("a", "x");
    let mut b = bus.attach("b", "x");
    let to_b = a.peer("b").unwrap();
    a.send(&to_b, &note(&a, 1)).unwrap();
    assert_eq!(recv_seqs(&mut b, 1, Duration::from_secs(5)), vec![1]);
    drop((a, b));
    let header = header_file(&bus.bus);
    drop(bus);
    assert!(!header.exists(), "{} left behind", header.display());
    tree.close();
}

/// agentd's descriptors a hostile process would want to open, as `(fd, link)`: memfds (lane
/// and channel segments) and eventfds (wake-ups); an agentd with no agent attached has
/// eventfds only.
fn shared_fds(pid: Pid) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let link = std::fs::read_link(e.path()).ok()?;
            let link = link.to_string_lossy().into_owned();
            (link.starts_with("/memfd:") || link.contains("[eventfd]"))
                .then(|| (e.file_name().to_string_lossy().into_owned(), link))
        })
        .collect()
}

#[test]
fn agentds_descriptors_cannot_be_opened_through_proc_by_its_own_uid() {
    if !is_root("agentds_descriptors_cannot_be_opened_through_proc_by_its_own_uid") {
        return;
    }
    let tree = TempTree::new("proc-fds");
    tree.give_to_other();
    std::fs::set_permissions(&tree.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = tree.path.join("sock");
    let bus = format!("iso-proc-fds-{}", std::process::id());
    let mut cmd = as_other(env!("CARGO_BIN_EXE_agentd"));
    cmd.args(["--bus", &bus, "--log-level", "warn", "--socket-dir"])
        .arg(&dir);
    let mut agentd = AgentdChild::spawn(cmd, &bus, &dir);
    let pid = agentd.pid();
    agentd.wait_ready(|a| !shared_fds(a.pid()).is_empty());
    let (fd, link) = shared_fds(pid).remove(0);
    // Another process of agentd's uid tries to open it, as a hostile agent would a lane.
    let out = as_other("sh")
        .arg("-c")
        .arg(format!("exec 3</proc/{pid}/fd/{fd} && echo opened"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !stdout.contains("opened"),
        "uid {OTHER} opened agentd's {link} through /proc/{pid}/fd/{fd}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    let out = as_other("ls")
        .arg(format!("/proc/{pid}/fd"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "uid {OTHER} listed agentd's descriptors"
    );
    // SIGTERM: agentd stops and removes its socket and bus header.
    kill(pid, Signal::SIGTERM).unwrap();
    let status = agentd.wait_exit(Duration::from_secs(10));
    if !status.is_some_and(|s| s.success()) {
        agentd.stop();
        panic!(
            "agentd did not stop cleanly on SIGTERM: {status:?}: {}",
            agentd.stderr()
        );
    }
    assert!(
        !paths::socket_path(&dir, &bus).exists(),
        "socket left behind"
    );
    assert!(!header_file(&bus).exists(), "bus header left behind");
    drop(agentd);
    tree.close();
}

#[test]
fn an_agent_attached_non_dumpable_makes_its_process_non_dumpable() {
    let agentd = AgentdProcess::start("iso-non-dumpable", &[]);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_attaches_non_dumpable_when_spawned_by_its_test",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", agentd.bus, agentd.dir.to_string_lossy()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("non-dumpable after attach"),
        "the child failed: {out:?}"
    );
    drop(agentd);
}

/// The child side of `an_agent_attached_non_dumpable_makes_its_process_non_dumpable` (a fresh
/// process, so that no embedded agentd has made it non-dumpable); ignored unless its parent runs it.
#[test]
#[ignore = "the child process of an_agent_attached_non_dumpable_makes_its_process_non_dumpable"]
fn helper_attaches_non_dumpable_when_spawned_by_its_test() {
    let spec = std::env::var(CHILD_ENV).expect("run by its parent test, which sets the bus");
    let (bus, dir) = spec.split_once('\n').unwrap();
    assert!(
        nix::sys::prctl::get_dumpable().unwrap(),
        "a fresh process is dumpable"
    );
    let plain = Agent::attach(AttachOptions::new(bus, "plain", "x").socket_dir(dir)).unwrap();
    assert!(
        nix::sys::prctl::get_dumpable().unwrap(),
        "only the opt-in makes a process non-dumpable"
    );
    let guarded = Agent::attach(
        AttachOptions::new(bus, "guarded", "x")
            .socket_dir(dir)
            .non_dumpable(true),
    )
    .unwrap();
    assert!(
        !nix::sys::prctl::get_dumpable().unwrap(),
        "attached with non_dumpable(true), yet dumpable"
    );
    println!("non-dumpable after attach");
    drop((plain, guarded));
}

/// An agentd of this (root) process on a socket directory uid [`OTHER`] can reach (root-owned,
/// mode 0755; the socket is group-accessible and the child runs with group 0), allowing
/// `allow_uids`; a topic only `execution` agents may use.
fn bus_for_other_uid(tree: &TempTree, name: &str, allow_uids: Vec<u32>) -> TestBus {
    let dir = tree.path.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = config(name);
    cfg.socket_dir = dir;
    cfg.allow_uids = allow_uids;
    start_with(cfg)
}

/// Runs this test binary's [`helper_attaches_as_another_uid`] as uid [`OTHER`] (group 0) on
/// `bus`, expecting `expect`; returns what it printed.
fn run_as_other_uid(bus: &TestBus, expect: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_attaches_as_another_uid",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            OTHER_UID_ENV,
            format!("{}\n{}\n{expect}", bus.bus, bus.dir.to_string_lossy()),
        )
        .uid(OTHER)
        .gid(0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the child of uid {OTHER} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_process_of_another_uid_is_refused_unless_allowed_and_then_only_gets_its_topics() {
    if !is_root("a_process_of_another_uid_is_refused_unless_allowed_and_then_only_gets_its_topics")
    {
        return;
    }
    let tree = TempTree::new("other-uid");
    // Not in allow_uids: refused at attach, naming what to change.
    let closed = bus_for_other_uid(&tree, "iso-closed", vec![]);
    let said = run_as_other_uid(&closed, "refused");
    assert!(
        said.contains("refused") && said.contains("allow_uids"),
        "{said}"
    );
    drop(closed);
    // Allowed: attached, but kept off a topic only execution agents may use.
    let open = bus_for_other_uid(&tree, "iso-open", vec![OTHER]);
    let exec = open.attach("exec-1", "execution");
    let fills = agentbus::control::TopicConfig::default()
        .publishers([agentbus::control::Principal::of_type("execution")])
        .subscribers([agentbus::control::Principal::of_type("execution")]);
    exec.create_topic("orders.fills", fills).unwrap();
    let said = run_as_other_uid(&open, "allowed");
    for line in [
        "attached as uid 65534",
        "publish refused",
        "subscribe refused",
    ] {
        assert!(said.contains(line), "{line:?} not in {said}");
    }
    drop(exec);
    drop(open);
    tree.close();
}

/// The child side of the other-uid test: attaches as uid [`OTHER`] and reports what agentd
/// let it do; ignored unless its parent runs it.
#[test]
#[ignore = "the child process of a_process_of_another_uid_is_refused_unless_allowed_and_then_only_gets_its_topics"]
fn helper_attaches_as_another_uid() {
    let spec = std::env::var(OTHER_UID_ENV).expect("run by its parent test");
    let mut parts = spec.split('\n');
    let (bus, dir, expect) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(uid(), OTHER);
    let options = AttachOptions::new(bus, "intruder", "x").socket_dir(dir);
    match (expect, Agent::attach(options)) {
        (
            "refused",
            Err(ClientError::Refused {
                kind: agentbus::control::Refusal::Unauthorized,
                message,
            }),
        ) => println!("refused: {message}"),
        ("allowed", Ok(mut agent)) => {
            println!("attached as uid {}", uid());
            let fills = agent.topic("orders.fills").unwrap();
            match agent.send(&fills, agentbus::client::Raw(b"forged")) {
                Err(agentbus::CommunicationError::Unauthorized { .. }) => {
                    println!("publish refused")
                }
                other => panic!("publish: {other:?}"),
            }
            match agent.subscribe("orders.fills") {
                Err(ClientError::Refused {
                    kind: agentbus::control::Refusal::Unauthorized,
                    ..
                }) => println!("subscribe refused"),
                other => panic!("subscribe: {other:?}"),
            }
        }
        (expect, other) => panic!("expected {expect}, got {:?}", other.map(|_| "attached")),
    }
}
