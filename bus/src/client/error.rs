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

/// Why what agentd handed over (an agent's lanes and its eventfd for waking the router at
/// attach, or a channel's segment) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The attach answer did not come with the lanes' and the eventfd's descriptors.
    #[error("expected 2 descriptors (lanes, router eventfd), got {got}: agentd and this client disagree on the protocol; run both from the same agentbus version")]
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
        /// What it was (`lanes`, `channel`).
        what: &'static str,
        /// Why it could not be mapped (not sealed, too small, `mmap` failed, ...).
        source: OpenError,
    },
    /// The router's sleeping flag is not where an aligned word can be.
    #[error("the router's sleeping flag is misplaced in the lane segment: agentd and this client disagree on the layout; run both from the same agentbus version")]
    MisplacedWakeFlag,
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
        /// Why the ring could not be attached (wrong magic, version or capacity, ...).
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
        /// The name of the bus tried (as `agentd --bus` takes it).
        bus: String,
        /// The socket path tried.
        path: PathBuf,
    },
    /// agentd refused the request.
    #[error("agentd refused ({kind:?}): {message}")]
    Refused {
        /// agentd's reason, as a value to match on.
        kind: Refusal,
        /// What to do.
        message: String,
    },
    /// The connection to agentd closed: it stopped, or detached this agent.
    #[error("agentd for bus {bus:?} closed the control connection: it stopped or detached this agent; start it if it stopped (`agentd --bus {bus}`), then attach again")]
    Disconnected {
        /// The name of the bus whose agentd closed the connection.
        bus: String,
    },
    /// agentd did not answer in time.
    #[error("agentd did not answer within {0:?}: it may be wedged; check `agentbus stat`")]
    Timeout(std::time::Duration),
    /// A socket error.
    #[error("control connection to agentd: {what}: {source}; check that agentd runs (`agentbus stat`), then attach again")]
    Io {
        /// What was being done.
        what: &'static str,
        /// What the socket call returned.
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
    #[error("control connection to agentd: receiving: {0}; check that agentd runs (`agentbus stat`), then attach again")]
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
    #[error("could not make this process non-dumpable (prctl PR_SET_DUMPABLE): {0}; attach without `non_dumpable`, or where the kernel allows it")]
    NonDumpable(std::io::Error),
}

/// Without the agent it came from: an agent converts its own control-plane failures itself,
/// counting what agentd never took when the connection closed.
impl From<ClientError> for CommunicationError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::BusNotRunning { bus, path } => CommunicationError::BusNotRunning {
                bus,
                reason: format!("nothing listens on {}", path.display()),
            },
            ClientError::Refused {
                kind: Refusal::Unauthorized,
                message,
            } => CommunicationError::Unauthorized { what: message },
            ClientError::Refused { kind, message } => CommunicationError::Refused {
                refusal: kind,
                message,
            },
            ClientError::Disconnected { bus } => {
                CommunicationError::Disconnected { bus, unsent: None }
            }
            ClientError::Timeout(after) => CommunicationError::Timeout {
                what: "an answer from agentd".into(),
                after,
            },
            e @ (ClientError::Protocol(_)
            | ClientError::BadFrame(_)
            | ClientError::BadResponse(_)) => CommunicationError::InvalidFormat {
                reason: e.to_string(),
            },
            e @ (ClientError::Io { .. }
            | ClientError::Receive(_)
            | ClientError::BadLanes(_)
            | ClientError::UnsafeSocketDir(_)
            | ClientError::NonDumpable(_)) => CommunicationError::Control {
                reason: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::payload::ErrorKind;

    /// Every control-plane failure converts to what happened, with a kind of the spec's, and
    /// never to an unreachable agent with a made-up or empty name.
    #[test]
    fn control_plane_failures_convert_to_what_happened() {
        let cases: Vec<(ClientError, ErrorKind)> = vec![
            (
                ClientError::BusNotRunning {
                    bus: "b".into(),
                    path: "/run/agentbus/b.sock".into(),
                },
                ErrorKind::AgentUnreachable,
            ),
            (
                ClientError::Disconnected { bus: "b".into() },
                ErrorKind::AgentUnreachable,
            ),
            (
                ClientError::Timeout(Duration::from_millis(7)),
                ErrorKind::Timeout,
            ),
            (
                ClientError::Refused {
                    kind: Refusal::Unauthorized,
                    message: "uid 7 is not allowed".into(),
                },
                ErrorKind::Unauthorized,
            ),
            (
                ClientError::Refused {
                    kind: Refusal::NoSuchAgent,
                    message: "no agent \"x\" is attached".into(),
                },
                ErrorKind::AgentUnreachable,
            ),
            (
                ClientError::Refused {
                    kind: Refusal::BadRequest,
                    message: "topic \"a..b\" is not valid".into(),
                },
                ErrorKind::InvalidFormat,
            ),
            (
                ClientError::Refused {
                    kind: Refusal::NoRoom,
                    message: "no free slot".into(),
                },
                ErrorKind::QueueFull,
            ),
            (
                ClientError::Protocol("Done".into()),
                ErrorKind::InvalidFormat,
            ),
            (
                ClientError::Io {
                    what: "sending a request",
                    source: std::io::Error::other("boom"),
                },
                ErrorKind::AgentUnreachable,
            ),
        ];
        for (client, kind) in cases {
            let shown = client.to_string();
            let e = CommunicationError::from(client);
            assert_eq!(e.kind(), kind, "{e:?}");
            assert!(
                !matches!(e, CommunicationError::AgentUnreachable { .. }),
                "{shown} became {e:?}"
            );
        }
    }

    #[test]
    fn the_conversions_keep_what_they_know() {
        match CommunicationError::from(ClientError::BusNotRunning {
            bus: "b".into(),
            path: "/run/agentbus/b.sock".into(),
        }) {
            CommunicationError::BusNotRunning { bus, reason } => {
                assert_eq!(bus, "b");
                assert!(reason.contains("/run/agentbus/b.sock"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Without its agent, nobody counted the lanes: not a claim of 0.
        assert_eq!(
            CommunicationError::from(ClientError::Disconnected { bus: "b".into() }),
            CommunicationError::Disconnected {
                bus: "b".into(),
                unsent: None
            }
        );
        assert_eq!(
            CommunicationError::from(ClientError::Timeout(Duration::from_millis(7))),
            CommunicationError::Timeout {
                what: "an answer from agentd".into(),
                after: Duration::from_millis(7)
            }
        );
    }

    /// Every message tells what to do next: the ones naming a bus say how to start its agentd.
    #[test]
    fn bus_errors_say_how_to_start_agentd() {
        for e in [
            CommunicationError::BusNotRunning {
                bus: "b".into(),
                reason: "nothing listens on /x".into(),
            },
            CommunicationError::Disconnected {
                bus: "b".into(),
                unsent: Some(3),
            },
            CommunicationError::Disconnected {
                bus: "b".into(),
                unsent: None,
            },
        ] {
            let text = e.to_string();
            assert!(text.contains("`agentd --bus b`"), "{text}");
        }
        let text = CommunicationError::Disconnected {
            bus: "b".into(),
            unsent: Some(3),
        }
        .to_string();
        assert!(
            text.contains("3 messages this agent sent were never routed"),
            "{text}"
        );
    }
}
