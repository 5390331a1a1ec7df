//! Errors of the client's control-plane operations (attach, subscribe, resolve, ...).

use std::path::PathBuf;

use crate::control::Refusal;
use crate::error::CommunicationError;
use crate::paths::SocketDirError;

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
    /// agentd answered something this client does not understand.
    #[error("agentd sent an unexpected reply ({0}): are agentd and this client the same version?")]
    Protocol(String),
    /// The lane segment agentd handed over is unusable.
    #[error("the lanes agentd handed over are unusable: {0}")]
    BadLanes(String),
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
