//! Named and memfd segments: creation, errors that say what to do, and the memfd's seals.

mod support;

use std::time::Duration;

use agentbus_ipc::segment::{CreateError, MemfdSegment, NamedSegment, OpenError};
use nix::unistd::ftruncate;
use support::{receive_segment, role, spawn_with_segment};

fn unique(name: &str) -> String {
    format!("agentbus-test-{name}-{}", std::process::id())
}

#[test]
fn a_named_segment_is_shared_by_name_and_removed_by_unlink() {
    let name = unique("named");
    let created = NamedSegment::create(&name, 8192, 0o600).unwrap();
    // SAFETY-free check of sharing: write through one mapping, read through another.
    let a = created.region();
    let reader = NamedSegment::open(&name, false, 8192).unwrap();
    assert_eq!(reader.len(), 8192);
    let byte = |r: &agentbus_ipc::Region| {
        let mut v = [0u8; 1];
        v.copy_from_slice(&read_first(r));
        v[0]
    };
    write_first(&a, 0x5A);
    assert_eq!(byte(&reader.region()), 0x5A);
    NamedSegment::unlink(&name).unwrap();
    NamedSegment::unlink(&name).unwrap(); // already gone: fine
    match NamedSegment::open(&name, false, 1) {
        Err(e @ OpenError::NoSuchSegment { .. }) => {
            assert!(e.to_string().contains("is agentd running"), "{e}")
        }
        other => panic!("expected NoSuchSegment, got {other:?}"),
    }
}

fn write_first(r: &agentbus_ipc::Region, v: u8) {
    let ring =
        agentbus_ipc::ring::Ring::create(r.clone(), agentbus_ipc::ring::RingOptions::new(1024))
            .unwrap();
    let (mut tx, _) = ring.split();
    let mut c = tx.try_claim(1).unwrap();
    c.payload()[0] = v;
    c.commit(1);
}

fn read_first(r: &agentbus_ipc::Region) -> Vec<u8> {
    let ring = agentbus_ipc::ring::Ring::attach(r.clone()).unwrap();
    let mut rx = ring.into_consumer();
    rx.peek().unwrap().unwrap().to_vec()
}

#[test]
fn creating_a_named_segment_twice_says_who_owns_it() {
    let name = unique("twice");
    let _first = NamedSegment::create(&name, 4096, 0o600).unwrap();
    match NamedSegment::create(&name, 4096, 0o600) {
        Err(e @ CreateError::AlreadyExists { .. }) => {
            assert!(e.to_string().contains("another agentd"), "{e}")
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    NamedSegment::unlink(&name).unwrap();
}

#[test]
fn a_segment_smaller_than_needed_is_refused() {
    let name = unique("small");
    let _s = NamedSegment::create(&name, 4096, 0o600).unwrap();
    assert!(matches!(
        NamedSegment::open(&name, true, 1 << 20),
        Err(OpenError::TooSmall { len: 4096, .. })
    ));
    NamedSegment::unlink(&name).unwrap();
    assert!(matches!(
        MemfdSegment::create("x", 0),
        Err(CreateError::BadSize { size: 0 })
    ));
}

#[test]
fn an_unsealed_memfd_is_refused() {
    let fd =
        nix::sys::memfd::memfd_create("unsealed", nix::sys::memfd::MFdFlags::MFD_CLOEXEC).unwrap();
    ftruncate(&fd, 4096).unwrap();
    assert!(matches!(
        MemfdSegment::open(fd, 1),
        Err(OpenError::NotSealed { .. })
    ));
}

const LEN: usize = 1 << 16;

#[test]
fn a_child_maps_a_passed_memfd_writes_it_and_cannot_resize_it() {
    if role().as_deref() == Some("writer") {
        let segment = receive_segment();
        assert_eq!(segment.len(), LEN);
        write_first(&segment.region(), 0xC3);
        assert!(
            ftruncate(segment.fd(), 2 * LEN as i64).is_err(),
            "grow must fail"
        );
        assert!(
            ftruncate(segment.fd(), (LEN / 2) as i64).is_err(),
            "shrink must fail"
        );
        return;
    }
    let segment = MemfdSegment::create("agentbus-test-pass", LEN).unwrap();
    let child = spawn_with_segment(
        "a_child_maps_a_passed_memfd_writes_it_and_cannot_resize_it",
        "writer",
        &segment,
    );
    child.expect_success(Duration::from_secs(30));
    assert_eq!(read_first(&segment.region()), vec![0xC3]);
    assert_eq!(segment.len(), LEN);
}

#[test]
fn a_signal_during_a_blocked_receive_does_not_fail_it() {
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // A handler (rather than the default disposition) makes blocking calls return EINTR.
    let flag = Arc::new(AtomicBool::new(false));
    let handler = nix::sys::signal::SigHandler::Handler(noop);
    extern "C" fn noop(_: i32) {}
    let action = nix::sys::signal::SigAction::new(
        handler,
        nix::sys::signal::SaFlags::empty(), // no SA_RESTART: calls really are interrupted
        nix::sys::signal::SigSet::empty(),
    );
    install(&action);
    let (a, b) = UnixStream::pair().unwrap();
    let segment = MemfdSegment::create("eintr", 4096).unwrap();
    let me = nix::sys::pthread::pthread_self();
    let f = Arc::clone(&flag);
    let poker = std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(5));
            let _ = nix::sys::pthread::pthread_kill(me, nix::sys::signal::Signal::SIGUSR1);
        }
        f.store(true, Ordering::Release);
        agentbus_ipc::segment::fdpass::send_fds(&b, b"late", &[segment.fd()]).unwrap();
    });
    let mut buf = [0u8; 8];
    let (n, fds) = agentbus_ipc::segment::fdpass::recv_fds(&a, &mut buf).unwrap();
    assert!(
        flag.load(Ordering::Acquire),
        "returned only once the data came"
    );
    assert_eq!(&buf[..n], b"late");
    assert_eq!(fds.len(), 1);
    poker.join().unwrap();
}

fn install(action: &nix::sys::signal::SigAction) {
    // SAFETY: the handler installed does nothing, so it is async-signal-safe.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGUSR1, action) }.unwrap();
}
