//! Errors of the client's control-plane operations (attach, subscribe, resolve, ...).

use std::path::PathBuf;

use agentbus_ipc::ring::AttachError;
use agentbus_ipc::segment::fdpass::FdPassError;
use agentbus_ipc::segment::OpenError;

use crate::channel_layout::ChannelLayoutError;
use crate::control::{ControlDecodeError, FrameError, Refusal};
use crate::error::CommunicationError;
use crate::lanes::LaneLayoutError;
use crate::paths::SocketDirError;

/// Why the shared memory agentd handed over (an agent's lanes and the router's doorbell at
/// attach, or a channel's segment) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The attach answer did not come with the lanes' and the doorbell's descriptors.
    #[error("expected 2 descriptors (lanes, router doorbell), got {got}: agentd and this client disagree on the protocol; run both from the same agentbus version")]
    Descriptors {
        /// Descriptors received.
        got: usize,
    },
    /// A channel offer came without its segment's descriptor.
    #[error("a channel came without its segment: agentd and this client disagree on the protocol; run both from the same agentbus version")]
    NoChannelSegment,
    /// A descriptor could not be mapped.
    #[error("mapping the {what}: {source}")]
    Map {
        /// What it was (`lanes`, `router doorbell`, `channel`).
        what: &'static str,
        /// Why.
        source: OpenError,
    },
    /// The router's doorbell is not aligned for a futex word.
    #[error("the router doorbell is misaligned: agentd and this client disagree on the layout; run both from the same agentbus version")]
    MisalignedDoorbell,
    /// The lane segment's control block is wrong.
    #[error(transparent)]
    Lanes(#[from] LaneLayoutError),
    /// A lane's ring could not be attached.
    #[error("{direction} lane {priority}: {source}")]
    Lane {
        /// `outbound` or `inbound`.
        direction: &'static str,
        /// Its priority (0 is CRITICAL).
        priority: usize,
        /// Why.
        source: AttachError,
    },
    /// The channel segment is wrong.
    #[error(transparent)]
    Channel(#[from] ChannelLayoutError),
}

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the bus's socket.
    #[error("no agentd is listening on {}: start it with `agentd --bus {bus}`", path.display())]
    BusNotRunning {
        /// The bus.
        bus: String,
        /// The socket path tried.
        path: PathBuf,
    },
    /// agentd refused the request.
    #[error("agentd refused ({kind:?}): {message}")]
    Refused {
        /// Why.
        kind: Refusal,
        /// What to do.
        message: String,
    },
    /// The connection to agentd closed: it stopped, or detached this agent.
    #[error("agentd closed the control connection: it stopped or detached this agent; attach again once it runs")]
    Disconnected,
    /// agentd did not answer in time.
    #[error("agentd did not answer within {0:?}: it may be wedged; check `agentbus stat`")]
    Timeout(std::time::Duration),
    /// A socket error.
    #[error("control connection to agentd: {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// agentd answered something this client does not expect there.
    #[error("agentd sent an unexpected reply ({0}): are agentd and this client the same version?")]
    Protocol(String),
    /// agentd's stream announced a message over the size limit.
    #[error("agentd sent a bad control frame: {0}")]
    BadFrame(#[from] FrameError),
    /// agentd's message does not decode as a response.
    #[error(transparent)]
    BadResponse(#[from] ControlDecodeError),
    /// Receiving from the control connection (with its descriptors) failed.
    #[error("control connection to agentd: receiving: {0}")]
    Receive(#[source] FdPassError),
    /// The shared memory agentd handed over (lanes, or a channel) is unusable.
    #[error("the shared memory agentd handed over is unusable: {0}")]
    BadLanes(#[from] HandoverError),
    /// Another uid (or group or others) could replace the bus socket in the socket directory,
    /// or it is not a real directory: see [`crate::paths::check_socket_dir`]. Nothing was sent.
    #[error(transparent)]
    UnsafeSocketDir(#[from] SocketDirError),
    /// [`AttachOptions::non_dumpable`](crate::client::AttachOptions::non_dumpable) was asked
    /// for and the kernel refused it; nothing was sent.
    #[error("could not make this process non-dumpable (prctl PR_SET_DUMPABLE): {0}")]
    NonDumpable(std::io::Error),
}

impl From<ClientError> for CommunicationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused {
                kind: Refusal::Unauthorized,
                message,
            } => CommunicationError::Unauthorized { what: message },
            ClientError::Refused {
                kind: Refusal::NoSuchAgent,
                message,
            } => CommunicationError::AgentUnreachable {
                agent: String::new(),
                reason: message,
            },
            ClientError::Disconnected => CommunicationError::Disconnected { unsent: 0 },
            ClientError::Timeout(after) => CommunicationError::Timeout {
                what: "agentd".into(),
                after,
            },
            other => CommunicationError::AgentUnreachable {
                agent: "agentd".into(),
                reason: other.to_string(),
            },
        }
    }
}
