//! A blocking request/response connection to agentd's control socket, which also carries
//! agentd's unsolicited pushes (channel offers), queued until asked for.

use std::collections::VecDeque;
use std::io::{ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use agentbus_ipc::segment::fdpass::{recv_fds, FdPassError};
use nix::errno::Errno;

use super::ClientError;
use crate::control::{decode_response, encode_frame, FrameReader, Push, Request, Response};

#[derive(Debug)]
pub(crate) struct ControlConn {
    stream: UnixStream,
    reader: FrameReader,
    /// Descriptors received and not yet matched to their message, in arrival order (each
    /// message's descriptors arrive with its first byte, so order matches message order).
    fds: VecDeque<OwnedFd>,
    pushes: VecDeque<(Push, Vec<OwnedFd>)>,
    timeout: Duration,
    /// The bus, for errors that tell how to start its agentd.
    bus: String,
}

impl ControlConn {
    pub(crate) fn connect(
        path: &Path,
        bus: &str,
        timeout: Duration,
    ) -> Result<ControlConn, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => ClientError::BusNotRunning {
                bus: bus.into(),
                path: path.into(),
            },
            _ => ClientError::Io {
                what: "connecting",
                source: e,
            },
        })?;
        let conn = ControlConn {
            stream,
            reader: FrameReader::default(),
            fds: VecDeque::new(),
            pushes: VecDeque::new(),
            timeout,
            bus: bus.into(),
        };
        conn.set_timeout(timeout)?;
        Ok(conn)
    }

    fn set_timeout(&self, timeout: Duration) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|source| ClientError::Io {
                what: "setting a read timeout",
                source,
            })
    }

    /// The next message from agentd, with its descriptors; `Timeout` if none came in time.
    fn read_message(&mut self, timeout: Duration) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                let response = decode_response(&frame)?;
                let fds = (0..response.fd_count())
                    .filter_map(|_| self.fds.pop_front())
                    .collect();
                return Ok((response, fds));
            }
            let mut buf = [0u8; 4096];
            match recv_fds(&self.stream, &mut buf) {
                Ok((n, fds)) => {
                    self.reader.push(&buf[..n]);
                    self.fds.extend(fds);
                }
                Err(FdPassError::Closed) => return Err(self.disconnected()),
                Err(FdPassError::Os {
                    errno: Errno::EAGAIN,
                    ..
                }) => return Err(ClientError::Timeout(timeout)),
                Err(FdPassError::Os {
                    errno: Errno::ECONNRESET,
                    ..
                }) => return Err(self.disconnected()),
                Err(e) => return Err(ClientError::Receive(e)),
            }
        }
    }

    /// Sends `request` and waits for the answer, with any descriptors that came with it.
    /// Pushes that arrive meanwhile are queued for [`ControlConn::next_push`].
    pub(crate) fn call(
        &mut self,
        request: &Request,
    ) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.stream
            .write_all(&encode_frame(request))
            .map_err(|e| match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => self.disconnected(),
                _ => ClientError::Io {
                    what: "sending a request",
                    source: e,
                },
            })?;
        loop {
            match self.read_message(self.timeout)? {
                (Response::Push(p), fds) => self.pushes.push_back((p, fds)),
                other => return Ok(other),
            }
        }
    }

    fn disconnected(&self) -> ClientError {
        ClientError::Disconnected {
            bus: self.bus.clone(),
        }
    }

    /// Whether agentd closed the connection (it stopped, died, or detached this agent), without
    /// waiting: one non-blocking peek.
    pub(crate) fn closed(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut b = [0u8; 1];
        loop {
            match nix::sys::socket::recv(
                self.stream.as_raw_fd(),
                &mut b,
                nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => return true,
                Ok(_) | Err(Errno::EAGAIN) => return false,
                Err(Errno::EINTR) => {}
                Err(_) => return true,
            }
        }
    }

    /// The first push from agentd that `wanted` accepts, waiting up to `timeout`; other pushes
    /// that arrive meanwhile stay queued, in order, for their own takers.
    pub(crate) fn next_push(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&Push) -> bool,
    ) -> Result<Option<(Push, Vec<OwnedFd>)>, ClientError> {
        if let Some(at) = self.pushes.iter().position(|(p, _)| wanted(p)) {
            return Ok(self.pushes.remove(at));
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.set_timeout(left)?;
            let got = self.read_message(left);
            self.set_timeout(self.timeout)?;
            match got {
                Ok((Response::Push(p), fds)) if wanted(&p) => return Ok(Some((p, fds))),
                Ok((Response::Push(p), fds)) => self.pushes.push_back((p, fds)),
                Ok((other, _)) => {
                    return Err(ClientError::Protocol(format!(
                        "unexpected unsolicited {other:?}"
                    )))
                }
                Err(ClientError::Timeout(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}
