//! A rogue agent: attaches by speaking the control protocol directly and keeps the raw lane
//! segment, to write what the client library never would.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use agentbus::control::{
    decode_response, encode_frame, AttachRequest, FrameReader, Request, Response, PROTOCOL_VERSION,
};
use agentbus::lanes::{self, LaneLayout};
use agentbus::paths;
use agentbus_ipc::segment::fdpass::recv_fds;
use agentbus_ipc::segment::MemfdSegment;

use super::TestBus;

/// Attaches as `id`, returning the control connection, the lane segment and its layout.
pub fn raw_attach(bus: &TestBus, id: &str) -> (UnixStream, MemfdSegment, LaneLayout) {
    let (s, seg, layout, _rest) = raw_attach_keeping(bus, id);
    (s, seg, layout)
}

/// As [`raw_attach`], also returning every other descriptor agentd handed over (a hostile
/// agent keeps them all, to try what it can do with each).
pub fn raw_attach_keeping(
    bus: &TestBus,
    id: &str,
) -> (UnixStream, MemfdSegment, LaneLayout, Vec<OwnedFd>) {
    let mut s = UnixStream::connect(paths::socket_path(&bus.dir, &bus.bus)).unwrap();
    s.write_all(&encode_frame(&Request::Attach(AttachRequest {
        protocol: PROTOCOL_VERSION,
        agent_id: id.into(),
        agent_type: "rogue".into(),
        instance_id: None,
        capabilities: vec![],
        max_capacity: 10,
    })))
    .unwrap();
    let mut buf = [0u8; 4096];
    let (n, mut fds) = recv_fds(&s, &mut buf).unwrap();
    let mut reader = FrameReader::default();
    reader.push(&buf[..n]);
    let frame = reader.next_frame().unwrap().expect("one whole reply");
    assert!(matches!(
        decode_response(&frame).unwrap(),
        Response::Attached(_)
    ));
    let rest = fds.split_off(1);
    let seg = MemfdSegment::open(fds.pop().unwrap(), lanes::CONTROL_BLOCK).unwrap();
    let layout = lanes::check(&seg.region()).unwrap();
    (s, seg, layout, rest)
}
