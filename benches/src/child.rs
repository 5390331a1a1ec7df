//! Starting the other half of a case in a child process and handing it the shared segment.

use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentbus_ipc::segment::fdpass::{recv_fds, send_fds, Rendezvous};
use agentbus_ipc::segment::MemfdSegment;
use anyhow::{bail, Context};

/// The hidden first argument that makes the binary a child.
pub const CHILD_FLAG: &str = "--child";

/// A running child; killed if dropped before [`Peer::finish`].
#[derive(Debug)]
pub struct Peer(Child);

impl Peer {
    /// Starts this binary as a child with `args` after [`CHILD_FLAG`], and hands it `segment`.
    pub fn spawn(args: &[String], segment: &MemfdSegment) -> anyhow::Result<Peer> {
        let rv = Rendezvous::new().context("listening for the child")?;
        let exe = std::env::current_exe().context("finding this binary")?;
        let child = Command::new(exe)
            .arg(CHILD_FLAG)
            .arg(rv.path())
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the child process")?;
        let peer = Peer(child);
        let stream = rv
            .accept(Duration::from_secs(30))
            .context("waiting for the child to connect")?;
        send_fds(&stream, b"segment", &[segment.fd()]).context("handing over the segment")?;
        Ok(peer)
    }

    /// Starts this binary as a child with `args` after [`CHILD_FLAG`] and an unused rendezvous
    /// path, for cases that share no segment (the child finds its peer by other means).
    pub fn spawn_plain(args: &[String]) -> anyhow::Result<Peer> {
        Peer::spawn_plain_at("-", args)
    }

    /// As [`Peer::spawn_plain`], passing `path` where the rendezvous path goes (a socket the
    /// child connects to by itself).
    pub fn spawn_plain_at(path: &str, args: &[String]) -> anyhow::Result<Peer> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let child = Command::new(exe)
            .arg(CHILD_FLAG)
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .context("starting the child process")?;
        Ok(Peer(child))
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Fails if the child has exited (it should be running until the case ends).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.0.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("the child process ended early: {status}"),
        }
    }

    /// Waits for the child to exit and checks it succeeded.
    pub fn finish(mut self) -> anyhow::Result<()> {
        let status = self.0.wait()?;
        if !status.success() {
            bail!("the child process failed: {status}");
        }
        Ok(())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// In the child: fails once the parent that started this process has gone, so an orphaned
/// child never spins on a core forever.
#[derive(Debug)]
pub struct ParentWatch(nix::unistd::Pid);

impl ParentWatch {
    /// Remembers the current parent.
    pub fn new() -> ParentWatch {
        ParentWatch(nix::unistd::getppid())
    }

    /// Fails if the parent has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if nix::unistd::getppid() != self.0 {
            bail!("the parent process went away");
        }
        Ok(())
    }
}

impl Default for ParentWatch {
    fn default() -> Self {
        ParentWatch::new()
    }
}

/// In the child: connects to the parent at `path` and receives the segment.
pub fn receive_segment(path: &str) -> anyhow::Result<MemfdSegment> {
    let stream = UnixStream::connect(path).context("connecting to the parent")?;
    let mut buf = [0u8; 16];
    let (_, mut fds) = recv_fds(&stream, &mut buf).context("receiving the segment")?;
    let fd = fds.pop().context("the parent sent no descriptor")?;
    Ok(MemfdSegment::open(fd, 1)?)
}
