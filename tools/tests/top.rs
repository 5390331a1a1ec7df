//! `agentbus top` against a running bus: the live view driven in tmux (rates, keys, an agentd
//! restart, quitting), one frame printed with `--once`, and a bus with no agentd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Raw};

const AGENTS: [(&str, &str); 3] = [("alpha", "pinger"), ("beta", "ponger"), ("gamma", "relay")];
const TOPIC: &str = "top.ticks";

/// Removes the test's directory, even when it fails.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bus served by an agentd in this process, in a directory of its own.
struct Bus {
    name: String,
    socket_dir: PathBuf,
    daemon: Option<agentd::Daemon>,
    /// Last: the directory goes after the agentd that uses it.
    dir: Dir,
}

impl Bus {
    fn start(tag: &str) -> Bus {
        let pid = std::process::id();
        let dir = Dir(std::env::temp_dir().join(format!("agentbus-test-{pid}-{tag}")));
        std::fs::create_dir_all(&dir.0).unwrap();
        let mut bus = Bus {
            name: format!("{tag}-{pid}"),
            socket_dir: dir.0.join("sock"),
            daemon: None,
            dir,
        };
        bus.restart();
        bus
    }

    /// Starts (again) the agentd serving the bus.
    fn restart(&mut self) {
        let mut config = agentd::Config::new(&self.name);
        config.socket_dir = self.socket_dir.clone();
        config.dead_letter_persist = false;
        self.daemon = Some(agentd::Daemon::start(config).unwrap());
    }

    fn stop(&mut self) {
        drop(self.daemon.take());
    }

    fn attach(&self, id: &str, kind: &str) -> Agent {
        Agent::attach(AttachOptions::new(&self.name, id, kind).socket_dir(&self.socket_dir))
            .unwrap()
    }
}

/// Agents sending each other messages until dropped: each sends to the next in a ring, alpha
/// also publishes on [`TOPIC`] (which beta reads), and each then drains what came, parking up
/// to 2 ms: a few hundred messages a second each, without a busy core.
struct Traffic {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(bus: &Bus) -> Traffic {
        let mut agents: Vec<Agent> = AGENTS.iter().map(|(id, t)| bus.attach(id, t)).collect();
        agents[1].subscribe(TOPIC).unwrap().detach();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, mut agent) in agents.into_iter().enumerate() {
            let peer = agent.peer(AGENTS[(i + 1) % AGENTS.len()].0).unwrap();
            let topic = (i == 0).then(|| agent.topic(TOPIC).unwrap());
            let stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // A full lane (QueueFull) only means this round sends nothing.
                    let _ = agent.send(&peer, Raw(b"ping"));
                    if let Some(topic) = &topic {
                        let _ = agent.send(topic, Raw(b"tick"));
                    }
                    while let Ok(Some(_)) = agent.recv_timeout(Duration::from_millis(2)) {}
                }
            }));
        }
        Traffic { stop, threads }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A tmux server of the test's own (`tmux -S`, its socket in the test's directory), killed
/// with its session when dropped.
struct Tmux {
    socket: PathBuf,
    session: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts `command` in a detached session of `width` x `height`, on a server listening
    /// in directory `dir`.
    fn start(dir: &Path, width: u16, height: u16, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux"),
            session: format!("agentbus-top-{}", std::process::id()),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let session = tmux.session.clone();
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        tmux
    }

    fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let out = self.cmd(&["send-keys", "-t", &self.session, keys]);
        assert!(out.status.success(), "tmux send-keys: {out:?}");
    }

    fn running(&self) -> bool {
        self.cmd(&["has-session", "-t", &self.session])
            .status
            .success()
    }

    /// Polls the screen for up to `secs` until `ok` accepts it; panics with the last screen.
    fn wait_for(&self, secs: u64, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on screen in {secs} s:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-session", "-t", &self.session]);
        let _ = self.cmd(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn tmux_missing() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("CI").is_some() {
        panic!("tmux is not installed: CI must install it to test `agentbus top`");
    }
    !found
}

/// The cell in column `column` of the row that has a cell `key`, on `screen` (columns
/// split at blanks; `column` must come before any header holding a blank).
fn cell<'a>(screen: &'a str, key: &str, column: &str) -> Option<&'a str> {
    let lines: Vec<Vec<&str>> = screen
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let header = lines.iter().position(|l| l.contains(&column))?;
    let at = lines[header].iter().position(|c| *c == column)?;
    let row = lines[header..].iter().find(|l| l.contains(&key))?;
    row.get(at).copied()
}

/// Whether a rate as `top` writes it is above zero.
fn positive(rate: Option<&str>) -> bool {
    rate.is_some_and(|r| !matches!(r, "-" | "0" | "0.0"))
}

fn top_command(bus: &str, dir: &Path) -> String {
    format!(
        "'{}' top --bus '{bus}' --interval-ms 300; echo $? > '{}'",
        env!("CARGO_BIN_EXE_agentbus"),
        dir.join("top-exit").display()
    )
}

#[test]
fn the_live_view_shows_agents_and_rates_follows_keys_and_a_restart_and_quits() {
    if tmux_missing() {
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let mut bus = Bus::start("top-live");
    let traffic = Traffic::start(&bus);
    let tmux = Tmux::start(&bus.dir.0, 160, 45, &top_command(&bus.name, &bus.dir.0));

    let screen = tmux.wait_for(10, "agents with rates", |s| {
        AGENTS.iter().all(|(id, _)| s.contains(id))
            && positive(cell(s, "alpha", "sent/s"))
            && positive(cell(s, "beta", "recv/s"))
            && positive(cell(s, TOPIC, "pub/s"))
    });
    assert!(screen.contains("ponger"), "{screen}");
    assert!(screen.contains("q quit"), "{screen}");

    tmux.keys("s");
    tmux.wait_for(5, "the agents sorted by recv/s", |s| {
        s.contains("by recv/s") && s.contains("s sort: recv/s")
    });
    tmux.keys("t");
    tmux.wait_for(5, "the topics hidden", |s| {
        s.contains("topics: hidden") && !s.contains(TOPIC)
    });

    drop(traffic);
    bus.stop();
    tmux.wait_for(10, "word of no agentd", |s| {
        s.contains("no agentd serves bus")
    });
    bus.restart();
    let _delta = bus.attach("delta", "late");
    tmux.wait_for(10, "the restarted agentd's agent", |s| {
        s.contains("delta") && !s.contains("alpha")
    });

    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(5);
    while tmux.running() {
        assert!(Instant::now() < deadline, "top still runs after q");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = std::fs::read_to_string(bus.dir.0.join("top-exit")).unwrap();
    assert_eq!(exit.trim(), "0", "top exited with {exit}");
}

fn top(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .arg("top")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn once_prints_one_frame_with_rates_in_120_columns() {
    let bus = Bus::start("top-once");
    let traffic = Traffic::start(&bus);
    let out = top(&["--once", "--bus", &bus.name, "--interval-ms", "300"]);
    drop(traffic);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with(&format!("bus {}", bus.name)), "{text}");
    for (id, kind) in AGENTS {
        assert!(text.contains(id) && text.contains(kind), "{text}");
    }
    assert!(positive(cell(&text, "alpha", "sent/s")), "{text}");
    assert!(positive(cell(&text, TOPIC, "deliv/s")), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    assert!(text.lines().count() <= 45, "{text}");
}

#[test]
fn a_bus_without_agentd_is_an_error_at_start() {
    let bus = format!("top-none-{}", std::process::id());
    for once in [true, false] {
        let mut args = vec!["--bus", &bus];
        if once {
            args.push("--once");
        }
        let out = top(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "top {args:?} succeeded with no agentd"
        );
        assert!(stderr.contains("no agentd serves bus"), "{stderr}");
    }
}

/// `agentbus demo` as a child, stopped with SIGINT when dropped (it then cleans up: socket
/// directory, bus header), killed if it does not end within 10 s.
struct Demo {
    child: std::process::Child,
    output: Option<JoinHandle<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(out) = self.output.take() {
            let _ = out.join();
        }
    }
}

#[test]
fn during_the_demo_the_live_view_shows_its_agents_and_their_rates() {
    use std::io::BufRead;
    if tmux_missing() {
        return;
    }
    let pid = std::process::id();
    let dir = Dir(std::env::temp_dir().join(format!("agentbus-test-{pid}-top-demo")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentbus"))
        .args(["demo", "--seconds", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the demo's first line").unwrap();
    // Read the rest as it comes, so the demo never blocks on a full pipe.
    let output =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    let demo = Demo {
        child,
        output: Some(output),
    };
    let bus = first
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no bus name in {first:?}"))
        .to_string();
    let tmux = Tmux::start(&dir.0, 160, 45, &top_command(&bus, &dir.0));
    let agents = [
        "feed-1",
        "strategy-1",
        "strategy-2",
        "risk-1",
        "exec-1",
        "exec-2",
    ];
    tmux.wait_for(15, "the demo's agents with their rates", |s| {
        agents.iter().all(|a| s.contains(a))
            && positive(cell(s, "feed-1", "sent/s"))
            && positive(cell(s, "strategy-1", "recv/s"))
            && positive(cell(s, "market.AAPL", "pub/s"))
    });
    tmux.keys("q");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmux.running() {
        assert!(Instant::now() < deadline, "top did not quit on q");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(demo);
}
