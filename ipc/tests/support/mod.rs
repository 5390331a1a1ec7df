//! Running a test's other half in a child process: the test binary re-executes itself with
//! the same test name and a role in the environment; the child receives a memfd over a socket.
#![allow(dead_code)]

use std::os::unix::net::UnixStream;
use std::process::{Child, Command};
use std::time::Duration;

use agentbus_ipc::segment::fdpass::{recv_fds, send_fds, Rendezvous};
use agentbus_ipc::segment::MemfdSegment;

const ROLE: &str = "AGENTBUS_TEST_ROLE";
const SOCK: &str = "AGENTBUS_TEST_SOCK";

/// The role this process plays, when it is a test's child.
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// Kills the child if the test panics before waiting for it.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits for the child, at most `timeout`, and asserts it exited successfully.
    pub fn expect_success(mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "child failed: {status}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child did not finish in {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Starts this test (`test_name`) again in a child with `role`, and hands it `segment`.
pub fn spawn_with_segment(test_name: &str, role: &str, segment: &MemfdSegment) -> ChildGuard {
    let rv = Rendezvous::new().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(SOCK, rv.path())
        // The child's own libtest summary would read like a second test run; failures still
        // reach stderr.
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(child);
    let stream = rv.accept(Duration::from_secs(30)).unwrap();
    send_fds(&stream, b"segment", &[segment.fd()]).unwrap();
    guard
}

/// In the child: receives the segment the parent handed over.
pub fn receive_segment() -> MemfdSegment {
    let path = std::env::var(SOCK).expect("started by spawn_with_segment");
    let stream = UnixStream::connect(path).unwrap();
    let mut buf = [0u8; 16];
    let (n, mut fds) = recv_fds(&stream, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"segment");
    MemfdSegment::open(fds.pop().unwrap(), 1).unwrap()
}
