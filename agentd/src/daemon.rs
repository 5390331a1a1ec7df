//! Starting and stopping a bus: embedded in a process, or as `agentd`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use agentbus::paths;
use agentbus_ipc::segment::{CreateError, NamedSegment};
use mio::net::UnixListener;
use mio::{Interest, Poll, Waker};

use crate::bus_header::{self, BusHeader, HeaderOptions, Sizes};
use crate::config::{Config, ConfigError};
use crate::control::{Control, ControlParts, LISTENER, WAKER};
use crate::dead_letter_file::{DeadLetterFile, Found, Loaded};
use crate::dead_letters::DeadLetterQueue;
use crate::router::{DeadLetterLimit, Router, RouterConfig, RouterLinks, RouterWake, Sleeper};

/// Why a bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("invalid configuration: {0}")]
    InvalidConfig(#[from] ConfigError),
    /// Another agentd serves this bus.
    #[error("bus {bus:?} is already served by a running agentd{}: stop it first, or pick another bus name", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyRunning {
        /// The name of the bus asked for.
        bus: String,
        /// The other agentd's pid, from the bus header (`None` if no complete header could be
        /// read).
        pid: Option<u32>,
    },
    /// A file or socket operation failed.
    #[error("{what} ({}): {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file, directory or socket it was done to.
        path: PathBuf,
        /// What the operation returned.
        source: std::io::Error,
    },
    /// A shared-memory segment could not be made.
    #[error("creating shared memory: {0}")]
    Segment(#[from] CreateError),
    /// The socket directory is not safe: another uid (or group or others) could replace the
    /// control socket. The message says how to fix it.
    #[error(transparent)]
    UnsafeSocketDir(#[from] paths::SocketDirError),
    /// The dead-letter file could not be opened or read.
    #[error(transparent)]
    DeadLetterFile(#[from] crate::dead_letter_file::FileError),
    /// The kernel refused to make this process non-dumpable.
    #[error("making agentd non-dumpable (prctl PR_SET_DUMPABLE): {0}: without it, any process of this uid could open agents' lanes through /proc")]
    NonDumpable(nix::errno::Errno),
    /// The metrics endpoint could not listen.
    #[error(transparent)]
    Metrics(#[from] crate::metrics_server::ServeError),
}

/// A running bus: its control and router threads. Stops when dropped.
///
/// An embedded agentd with two agents, one sending raw bytes to the other:
///
/// ```
/// use std::time::Duration;
///
/// use agentbus::client::{Agent, AttachOptions, Raw};
/// use agentd::{Config, Daemon};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = Config::new(&format!("doc-daemon-{}", std::process::id()));
/// config.socket_dir = std::env::temp_dir().join(format!("agentbus-doc-{}", std::process::id()));
/// let dir = config.socket_dir.clone();
/// let daemon = Daemon::start(config)?; // the default wait parks: fine on a shared machine
///
/// let options = |id: &str| AttachOptions::new(daemon.bus(), id, "doc").socket_dir(&dir);
/// let mut feed = Agent::attach(options("feed"))?;
/// let mut strategy = Agent::attach(options("strategy"))?;
///
/// let to_strategy = feed.peer("strategy")?; // resolved once
/// feed.send(&to_strategy, Raw(b"AAPL 101.25 x 300"))?;
/// let tick = strategy.recv_timeout(Duration::from_secs(5))?.expect("delivered within 5 s");
/// assert_eq!(tick.raw(), Some(&b"AAPL 101.25 x 300"[..]));
/// assert_eq!(tick.from().agent_id, "feed"); // stamped by the router, not claimed by the sender
/// drop(tick);
///
/// drop((feed, strategy));
/// drop(daemon); // stops both threads, removes the socket and the bus header
/// std::fs::remove_dir(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Daemon {
    bus: String,
    socket: PathBuf,
    header: Arc<BusHeader>,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    router_wake: RouterWake,
    /// The dead-letter queue (its file is removed at stop when it holds no letter).
    dead_letters: Arc<Mutex<DeadLetterQueue>>,
    threads: Vec<JoinHandle<()>>,
    /// Where `/metrics` is served, if it is.
    metrics_addr: Option<std::net::SocketAddr>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StartError + 'a {
    move |source| StartError::Io {
        what,
        path: path.into(),
        source,
    }
}

/// Creates `dir` with mode 0700 (its missing parents with the default mode) unless it exists.
fn create_socket_dir(dir: &Path) -> Result<(), StartError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(io("creating the socket directory's parent", parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("creating the socket directory", dir)(e)),
    }
}

impl Daemon {
    /// Starts serving `config.bus`: refuses if a live agentd serves it, replaces what a dead
    /// one left behind.
    ///
    /// The socket directory is created with mode 0700 if missing; an existing one must pass
    /// [`paths::check_socket_dir`] (a directory owned by this uid, not writable by group or
    /// others), else [`StartError::UnsafeSocketDir`].
    ///
    /// Before it makes any shared memory, this makes the **whole calling process**
    /// non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`), for as long as it runs: agentd holds every
    /// agent's lanes, and a dumpable process's descriptors can be opened by any process of its
    /// uid through `/proc/<pid>/fd`. A process embedding agentd thus writes no core dumps, and
    /// debuggers of its uid (not root) cannot attach to it.
    pub fn start(config: Config) -> Result<Daemon, StartError> {
        config.validate()?;
        let dir = config.socket_dir.clone();
        create_socket_dir(&dir)?;
        paths::check_socket_dir(&dir)?;
        nix::sys::prctl::set_dumpable(false).map_err(StartError::NonDumpable)?;
        let socket = paths::socket_path(&dir, &config.bus);
        let header_name = paths::header_segment_name(&config.bus);
        if socket.exists() {
            if StdUnixStream::connect(&socket).is_ok() {
                return Err(StartError::AlreadyRunning {
                    bus: config.bus.clone(),
                    pid: bus_header::read_pid(&header_name).ok().flatten(),
                });
            }
            tracing::warn!(path = %socket.display(), "replacing a stale socket");
            std::fs::remove_file(&socket).map_err(io("removing a stale socket", &socket))?;
        }
        let header_options = HeaderOptions {
            sizes: Sizes {
                trace: config.trace_log,
                ..HeaderOptions::for_slots(config.max_agents).sizes
            },
            metrics: config.metrics,
        };
        let header = match BusHeader::create(&header_name, header_options) {
            Ok(h) => h,
            Err(CreateError::AlreadyExists { .. }) => {
                let pid = bus_header::read_pid(&header_name).ok().flatten();
                if pid.is_some_and(|p| p != std::process::id() && bus_header::process_alive(p)) {
                    return Err(StartError::AlreadyRunning {
                        bus: config.bus.clone(),
                        pid,
                    });
                }
                tracing::warn!(segment = %header_name, ?pid, "replacing a stale bus header");
                let _ = NamedSegment::unlink(&header_name);
                BusHeader::create(&header_name, header_options)?
            }
            Err(e) => return Err(e.into()),
        };
        let header = Arc::new(header);
        let metrics = config
            .metrics_addr
            .map(crate::metrics_server::MetricsServer::bind)
            .transpose()?;
        let mut listener =
            UnixListener::bind(&socket).map_err(io("binding the control socket", &socket))?;
        let _ = std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660));
        let poll = Poll::new().map_err(io("creating the event loop", &socket))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(io("watching the control socket", &socket))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), WAKER).map_err(io("creating a waker", &socket))?);
        let (sleeper, router_wake) =
            Sleeper::new().map_err(io("creating the router's poll set", &socket))?;
        let (commands_tx, commands_rx) = rtrb::RingBuffer::new(4096);
        let (events_tx, events_rx) = mpsc::channel();
        let (acks_tx, acks_rx) = mpsc::channel();
        let dead_letters = match config.dead_letter_path() {
            None => DeadLetterQueue::new(config.dead_letter_capacity, config.dead_letter_bytes),
            Some(path) => {
                let (q, loaded) = DeadLetterQueue::with_file(
                    config.dead_letter_capacity,
                    config.dead_letter_bytes,
                    &path,
                )?;
                log_loaded(&path, &loaded);
                q
            }
        };
        let dead_letters = Arc::new(Mutex::new(dead_letters));
        let shutdown = Arc::new(AtomicBool::new(false));
        let router = Router::new(
            RouterConfig {
                batch_limit: config.batch_limit,
                heartbeat_timeout: config.heartbeat_timeout,
                delivery_timeout: config.delivery_timeout,
                wait: config.wait,
                spin: config.router_spin,
                idle_slice: if config.lane_parking {
                    crate::router::IDLE_SLICE
                } else {
                    crate::router::UNRUNG_IDLE_SLICE
                },
                core: config.router_core,
                max_agents: config.max_agents,
                sys_agents_topic: 0,
                sys_alerts_topic: 1,
                dead_letter_limit: DeadLetterLimit {
                    rate: config.dead_letter_rate,
                    burst: config.dead_letter_burst,
                },
                metrics: config.metrics,
            },
            RouterLinks {
                commands: commands_rx,
                events: events_tx,
                acks: acks_tx,
                waker: Arc::clone(&waker),
                dead_letters: Arc::clone(&dead_letters),
                header: header.words().clone(),
                sleeper,
                shutdown: Arc::clone(&shutdown),
            },
        );
        let control = Control::new(ControlParts {
            config: config.clone(),
            poll,
            listener,
            commands: commands_tx,
            events: events_rx,
            acks: acks_rx,
            router_wake: router_wake.clone(),
            dead_letters: Arc::clone(&dead_letters),
            header: header.words().clone(),
            bus_header: Arc::clone(&header),
            shutdown: Arc::clone(&shutdown),
        });
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(io("starting a thread", &socket))
        };
        let router_thread = spawn("agentd-router", Box::new(move || router.run()))?;
        let control_thread = spawn("agentd-control", Box::new(move || control.run()))?;
        let mut threads = vec![router_thread, control_thread];
        let metrics_addr = metrics.as_ref().map(|m| m.addr());
        if let Some(server) = metrics {
            let (bus, stop) = (config.bus.clone(), Arc::clone(&shutdown));
            threads.push(spawn(
                "agentd-metrics",
                Box::new(move || server.run(bus, stop)),
            )?);
        }
        tracing::info!(bus = %config.bus, socket = %socket.display(), "agentd serving");
        Ok(Daemon {
            bus: config.bus,
            socket,
            header,
            shutdown,
            waker,
            router_wake,
            dead_letters,
            threads,
            metrics_addr,
        })
    }

    /// The control socket's path.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// Where it serves Prometheus metrics (`/metrics`), if it does: the address bound (with
    /// `--metrics 127.0.0.1:0`, the port the system chose).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_addr
    }

    /// The name of the bus it serves, as configured.
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// Stops: agents are told (their connections close), the threads end, the socket and the
    /// header segment are removed.
    pub fn stop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.shutdown.store(true, Ordering::Release);
        let _ = self.waker.wake();
        self.router_wake.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.header.unlink();
        // The dead letters are on file for the next agentd; with none, there is nothing to
        // keep, and no file is left behind.
        let mut q = crate::dead_letters::lock(&self.dead_letters);
        q.persist();
        if q.is_empty() {
            q.remove_file();
        }
        drop(q);
        tracing::info!(bus = %self.bus, "agentd stopped");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs what reading the dead-letter file at `path` found: letters read back (INFO), damage
/// (WARN), a file in the old format rewritten (INFO) or one set aside (WARN).
fn log_loaded(path: &Path, loaded: &Loaded) {
    let shown = path.display();
    if loaded.letters > 0 || loaded.corrupt > 0 || loaded.torn_bytes > 0 {
        tracing::info!(
            path = %shown,
            "dead letters read back: {} kept, {} corrupt records skipped, {} bytes of a torn last record dropped",
            loaded.letters,
            loaded.corrupt,
            loaded.torn_bytes
        );
    }
    if loaded.corrupt > 0 || loaded.torn_bytes > 0 {
        tracing::warn!(
            path = %shown,
            "the dead-letter file was damaged: {} records skipped, {} bytes cut; the rest is kept",
            loaded.corrupt,
            loaded.torn_bytes
        );
    }
    match loaded.found {
        Found::Current => {}
        Found::OldFormat { set_aside: false } => tracing::info!(
            path = %shown,
            "the dead-letter file was in the format before the file header: read with that format's rules ({} letters kept) and rewritten in the current one",
            loaded.letters
        ),
        Found::OldFormat { set_aside: true } => tracing::warn!(
            path = %shown,
            "the dead-letter file was in the format before the file header and could not be read whole: {} letters kept and rewritten in the current format; the old file was copied to {} first, look at it or delete it, agentd will not read it again",
            loaded.letters,
            DeadLetterFile::set_aside_path(path).display()
        ),
        Found::Unreadable { bytes } => tracing::warn!(
            path = %shown,
            "the dead-letter file is in no format this agentd reads (its header damaged, a newer agentd's file, or no dead-letter file): its {bytes} bytes were moved to {} and a new file started, so no letter was read back; look at it or delete it, agentd will not read it again",
            DeadLetterFile::set_aside_path(path).display()
        ),
    }
}
