//! Passing file descriptors over a Unix socket (`SCM_RIGHTS`).
//!
//! agentd hands each agent its lane memfd this way. Received descriptors are opened
//! close-on-exec, so they never leak into programs the receiver starts.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// The most descriptors one message may carry.
pub const MAX_FDS: usize = 8;

/// Why descriptors could not be passed.
#[derive(Debug, thiserror::Error)]
pub enum FdPassError {
    /// More than [`MAX_FDS`] descriptors, or a message with no bytes.
    #[error("a message must carry 1..={MAX_FDS} descriptors and at least one byte of data (got {fds} descriptors, {bytes} bytes)")]
    BadMessage {
        /// Descriptors asked for.
        fds: usize,
        /// Bytes of data asked for.
        bytes: usize,
    },
    /// The peer closed the socket.
    #[error("the peer closed the socket before the descriptors arrived")]
    Closed,
    /// The control data was cut short: the receiver's buffer was too small for what was sent.
    #[error("descriptors were truncated in transit: the sender sent more than {MAX_FDS}")]
    Truncated,
    /// A system error, with the call that failed.
    #[error("{call} failed while passing descriptors: {errno}")]
    Os {
        /// The system call that failed (`sendmsg` or `recvmsg`), with a note when the failure
        /// was found after it returned (`sendmsg (short write)`).
        call: &'static str,
        /// What it returned.
        errno: Errno,
    },
}

/// Sends `data` with `fds` attached. The receiver gets duplicates; the sender keeps its own.
pub fn send_fds(
    socket: &impl AsFd,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<(), FdPassError> {
    let sent = send_fds_partial(socket, data, fds)?;
    if sent != data.len() {
        return Err(FdPassError::Os {
            call: "sendmsg (short write)",
            errno: Errno::EMSGSIZE,
        });
    }
    Ok(())
}

/// As [`send_fds`], for a non-blocking socket: returns how many bytes of `data` went (at least
/// one, with every descriptor attached to the first), or `EAGAIN` when none could. The caller
/// sends the rest as plain bytes.
pub fn send_fds_partial(
    socket: &impl AsFd,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> Result<usize, FdPassError> {
    if fds.is_empty() || fds.len() > MAX_FDS || data.is_empty() {
        return Err(FdPassError::BadMessage {
            fds: fds.len(),
            bytes: data.len(),
        });
    }
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [IoSlice::new(data)];
    loop {
        match sendmsg::<()>(
            socket.as_fd().as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => continue, // a signal arrived first: nothing was sent
            other => {
                return other.map_err(|errno| FdPassError::Os {
                    call: "sendmsg",
                    errno,
                })
            }
        }
    }
}

/// Receives one message into `buf`, returning how many bytes arrived and the descriptors that
/// came with it (possibly none), each close-on-exec.
pub fn recv_fds(socket: &UnixStream, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), FdPassError> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue, // a signal arrived first: nothing was received
            other => {
                break other.map_err(|errno| FdPassError::Os {
                    call: "recvmsg",
                    errno,
                })?
            }
        }
    };
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(|errno| FdPassError::Os {
        call: "recvmsg (control data)",
        errno,
    })? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for fd in raw {
                // SAFETY: the kernel just installed this descriptor in our table for this
                // message; nothing else in the process knows its number, so we own it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(FdPassError::Truncated);
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Err(FdPassError::Closed);
    }
    Ok((msg.bytes, fds))
}

/// A one-shot meeting point for handing descriptors to a process this one starts: listen on a
/// fresh socket path, tell the child the path, accept its connection with a timeout (so a child
/// that died before connecting fails the parent instead of hanging it). The path is removed on
/// drop.
#[derive(Debug)]
pub struct Rendezvous {
    listener: std::os::unix::net::UnixListener,
    path: std::path::PathBuf,
}

impl Rendezvous {
    /// Listens on a new path in the temporary directory.
    pub fn new() -> std::io::Result<Rendezvous> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "agentbus-rv-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(Rendezvous { listener, path })
    }

    /// The path the other process connects to.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Accepts one connection, waiting at most `timeout`.
    pub fn accept(&self, timeout: std::time::Duration) -> std::io::Result<UnixStream> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    return Ok(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() >= deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("nobody connected to {} in time", self.path.display()),
                        ));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
