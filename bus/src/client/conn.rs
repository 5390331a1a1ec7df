//! A blocking request/response connection to agentd's control socket.

use std::io::{ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use agentbus_ipc::segment::fdpass::{recv_fds, FdPassError};
use nix::errno::Errno;

use super::ClientError;
use crate::control::{decode_response, encode_frame, FrameReader, Request, Response};

#[derive(Debug)]
pub(crate) struct ControlConn {
    stream: UnixStream,
    reader: FrameReader,
    fds: Vec<OwnedFd>,
    timeout: Duration,
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
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|source| ClientError::Io {
                what: "setting a read timeout",
                source,
            })?;
        Ok(ControlConn {
            stream,
            reader: FrameReader::default(),
            fds: Vec::new(),
            timeout,
        })
    }

    /// Sends `request` and waits for the answer, with any descriptors that came with it.
    pub(crate) fn call(
        &mut self,
        request: &Request,
    ) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        self.stream
            .write_all(&encode_frame(request))
            .map_err(|e| match e.kind() {
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => ClientError::Disconnected,
                _ => ClientError::Io {
                    what: "sending a request",
                    source: e,
                },
            })?;
        loop {
            if let Some(frame) = self.reader.next_frame().map_err(ClientError::Protocol)? {
                let response = decode_response(&frame).map_err(ClientError::Protocol)?;
                return Ok((response, std::mem::take(&mut self.fds)));
            }
            let mut buf = [0u8; 4096];
            match recv_fds(&self.stream, &mut buf) {
                Ok((n, fds)) => {
                    self.reader.push(&buf[..n]);
                    self.fds.extend(fds);
                }
                Err(FdPassError::Closed) => return Err(ClientError::Disconnected),
                Err(FdPassError::Os {
                    errno: Errno::EAGAIN,
                    ..
                }) => return Err(ClientError::Timeout(self.timeout)),
                Err(FdPassError::Os {
                    errno: Errno::ECONNRESET,
                    ..
                }) => return Err(ClientError::Disconnected),
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            }
        }
    }
}
