//! One attachment to agentd: the control connection and what agentd handed over with it (the
//! lane segment, the rings in it, the agent's eventfd for waking the router). An agent makes
//! one at attach and a new one each time it re-attaches to a restarted agentd.

use std::sync::Arc;

use agentbus_ipc::ring::{Consumer, Producer};
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::wait::{EventFd, EventWake};
use agentbus_ipc::words::SharedDoorbell;

use super::conn::ControlConn;
use super::shared::unexpected;
use super::{AttachOptions, ClientError, HandoverError};
use crate::control::{AttachInfo, AttachRequest, Request, Response, PROTOCOL_VERSION};
use crate::lanes::{self, PRIORITIES};
use crate::paths;

/// What one attach gave this agent.
#[derive(Debug)]
pub(crate) struct Attachment {
    /// The control connection (its closing is this agent's death to agentd).
    pub(crate) conn: ControlConn,
    /// Slot, epoch, heartbeat interval.
    pub(crate) info: AttachInfo,
    /// The lane segment, kept mapped.
    pub(crate) lanes: MemfdSegment,
    /// Heartbeat, load, the router's beat and its sleeping flag for this agent.
    pub(crate) control: lanes::ControlBlock,
    /// The outbound lanes, CRITICAL first (each wakes the router through this agent's eventfd).
    pub(crate) outbound: Vec<Producer>,
    /// The inbound lanes, CRITICAL first.
    pub(crate) inbound: Vec<Consumer>,
    /// The doorbell the router rings when it writes into an inbound lane.
    pub(crate) bell: SharedDoorbell,
}

impl Attachment {
    /// Connects to the bus's agentd and attaches as `options` says.
    pub(crate) fn connect(options: &AttachOptions) -> Result<Attachment, ClientError> {
        let dir = options
            .socket_dir
            .clone()
            .unwrap_or_else(paths::default_socket_dir);
        let path = paths::socket_path(&dir, &options.bus);
        options.prepare_to_connect(&dir, &path)?;
        let mut conn = ControlConn::connect(&path, &options.bus, options.control_timeout)?;
        let (response, mut fds) = conn.call(&Request::Attach(AttachRequest {
            protocol: PROTOCOL_VERSION,
            agent_id: options.agent_id.clone(),
            agent_type: options.agent_type.clone(),
            instance_id: options.instance_id.clone(),
            capabilities: options.capabilities.clone(),
            max_capacity: options.max_capacity,
        }))?;
        let info = match response {
            Response::Attached(info) => info,
            other => return Err(unexpected(other)),
        };
        if fds.len() != 2 {
            return Err(HandoverError::Descriptors { got: fds.len() }.into());
        }
        let event_fd = fds.pop().expect("two descriptors");
        let lanes_fd = fds.pop().expect("two descriptors");
        let lanes = MemfdSegment::open(lanes_fd, lanes::CONTROL_BLOCK).map_err(|source| {
            HandoverError::Map {
                what: "lanes",
                source,
            }
        })?;
        let region = lanes.region();
        let layout = lanes::check(&region).map_err(HandoverError::from)?;
        // This agent's own way to wake the router: its eventfd, signalled while the router's
        // flag in this agent's control block says it sleeps.
        let router_wake = EventWake::new(
            lanes::router_asleep_word(&region),
            Arc::new(EventFd::from_fd(event_fd)),
        )
        .ok_or(HandoverError::MisplacedWakeFlag)?;
        let lane = |direction, priority| {
            move |source| HandoverError::Lane {
                direction,
                priority,
                source,
            }
        };
        let mut outbound = Vec::with_capacity(PRIORITIES);
        for (p, ring) in layout.outbound_ring(&region).enumerate() {
            let mut producer = ring.map_err(lane("outbound", p))?.into_producer();
            producer.set_wake(router_wake.clone());
            outbound.push(producer);
        }
        let mut inbound = Vec::with_capacity(PRIORITIES);
        for (p, ring) in layout.inbound_rings(&region).enumerate() {
            inbound.push(ring.map_err(lane("inbound", p))?.into_consumer());
        }
        Ok(Attachment {
            conn,
            info,
            control: lanes::ControlBlock::of(&region),
            bell: lanes::agent_bell(&region),
            lanes,
            outbound,
            inbound,
        })
    }
}
