//! A `nats-server` of one's own on loopback, for tests and benchmarks of bridges: a free port,
//! JetStream with a store directory when asked, killed (and its store removed) when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// A running (or stopped, to be started again) `nats-server` on 127.0.0.1.
#[derive(Debug)]
pub struct LocalNats {
    port: u16,
    child: Option<Child>,
    store: Option<PathBuf>,
}

impl LocalNats {
    /// Starts one on a free port; `store`: with JetStream, keeping its streams there.
    pub fn start(store: Option<PathBuf>) -> std::io::Result<LocalNats> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = LocalNats {
            port,
            child: None,
            store,
        };
        server.restart()?;
        Ok(server)
    }

    /// Starts it again (after [`LocalNats::kill`]) on the same port, and waits until it
    /// listens.
    pub fn restart(&mut self) -> std::io::Result<()> {
        let mut command = Command::new("nats-server");
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(store) = &self.store {
            command.arg("-js").arg("-sd").arg(store);
        }
        self.child = Some(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let deadline = Instant::now() + LISTEN_WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                self.kill();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "nats-server did not listen on port {} within {LISTEN_WAIT:?}",
                        self.port
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops it (kill, then wait for it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.kill();
        if let Some(store) = &self.store {
            let _ = std::fs::remove_dir_all(store);
        }
    }
}
