//! A hostile agent and the router's wake-ups: whatever it writes into what it can map, and
//! however it signals, the other agents' messages keep flowing and the router does not burn
//! its core; the hostile one is named (`wakes_ignored`).

mod support;

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::Agent;
use agentbus_ipc::segment::MemfdSegment;
use agentbus_ipc::words::{SharedDoorbell, WordTable};
use agentd::router::SPURIOUS_WAKES_PER_SECOND;
use support::raw::raw_attach_keeping;
use support::*;

/// Round trips the two honest agents make while the hostile one works.
const ROUND_TRIPS: i64 = 300;
/// Far more than those round trips take (milliseconds); a router put to sleep with work
/// pending (100 ms a time) would take about a minute.
const PATIENCE: Duration = Duration::from_secs(20);

/// Stops the hostile threads when dropped (also when the test fails).
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// `a` asks `b` (which echoes in a thread) [`ROUND_TRIPS`] times; returns how long it took,
/// and both agents, still attached. Every message must come back, in order.
fn round_trips(mut a: Agent, mut b: Agent) -> (Duration, Agent, Agent) {
    let to_a = b.peer("honest-a").unwrap();
    let to_b = a.peer("honest-b").unwrap();
    let echo = std::thread::spawn(move || {
        for _ in 0..ROUND_TRIPS {
            let Some(d) = b.recv_timeout(PATIENCE).unwrap() else {
                panic!("b got nothing for {PATIENCE:?}");
            };
            let seq = seq_of(&d);
            drop(d);
            b.send_blocking(&to_a, &note(&b, seq), PATIENCE).unwrap();
        }
        b
    });
    let start = Instant::now();
    for seq in 0..ROUND_TRIPS {
        a.send_blocking(&to_b, &note(&a, seq), PATIENCE).unwrap();
        let d = a
            .recv_timeout(PATIENCE)
            .unwrap()
            .unwrap_or_else(|| panic!("round trip {seq} never came back"));
        assert_eq!(seq_of(&d), seq);
        assert!(
            start.elapsed() < PATIENCE,
            "{seq} round trips in {PATIENCE:?}"
        );
    }
    let took = start.elapsed();
    (took, a, echo.join().unwrap())
}

/// Overwrites every word of `table` with `value`.
fn scribble(table: &WordTable, value: u64) {
    for i in 0..table.len() {
        table.store(i, value, Ordering::Relaxed);
    }
}

#[test]
fn an_agent_scribbling_over_everything_it_maps_delays_only_itself() {
    let bus = start("hostile-scribble");
    let a = bus.attach("honest-a", "x");
    let b = bus.attach("honest-b", "x");
    let (_conn, seg, _layout, others) = raw_attach_keeping(&bus, "rogue");
    // Its control block (the router's sleeping flag for it included) and every other
    // descriptor it was given that maps; not its rings, whose corruption detaches it at once.
    let mut tables = vec![WordTable::new(seg.region().sub(0, 4096).unwrap()).unwrap()];
    let mut mapped = Vec::new();
    for fd in others {
        if let Ok(m) = MemfdSegment::open(fd, 8) {
            tables.push(WordTable::new(m.region()).unwrap());
            mapped.push(m);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = Stop(Arc::clone(&stop));
    let scribbler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut v = 0u64;
            while !stop.load(Ordering::Acquire) {
                for t in &tables {
                    scribble(t, v % 3); // 0 clears flags, 1 sets them, 2 is garbage
                }
                v = v.wrapping_add(1);
                std::thread::yield_now();
            }
            drop(mapped);
        })
    };
    let (took, _a, _b) = round_trips(a, b);
    eprintln!("{ROUND_TRIPS} round trips beside a scribbling agent: {took:?}");
    drop(_stop);
    scribbler.join().unwrap();
}

/// CPU time (user + system) the router thread of this process has used.
fn router_cpu() -> Duration {
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "agentd-router" {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            let ticks: u64 =
                fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
            let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
                .unwrap()
                .unwrap() as u64;
            return Duration::from_millis(ticks * 1000 / hz);
        }
    }
    panic!("no agentd-router thread in this process");
}

#[test]
fn an_agent_signalling_in_a_loop_is_muted_and_named_and_the_router_sleeps() {
    let bus = start("hostile-signal");
    let a = bus.attach("honest-a", "x");
    let b = bus.attach("honest-b", "x");
    let mut observer = bus.attach("observer", "ops");
    let (_conn, _seg, _layout, others) = raw_attach_keeping(&bus, "rogue");
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = Stop(Arc::clone(&stop));
    // Whatever it was given that maps, it rings as a doorbell; whatever does not, it writes
    // to (an eventfd counts each write as a wake-up); as fast as it can.
    let mut bells = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    for fd in others {
        match fd.try_clone().map(|dup| MemfdSegment::open(dup, 8)) {
            Ok(Ok(m)) => bells.push(m),
            _ => fds.push(fd),
        }
    }
    let signaller = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let bells: Vec<SharedDoorbell> = bells
                .iter()
                .filter_map(|m| SharedDoorbell::new(m.region()))
                .collect();
            let mut sent = 0u64;
            while !stop.load(Ordering::Acquire) {
                for fd in &fds {
                    if nix::unistd::write(fd, &1u64.to_ne_bytes()).is_ok() {
                        sent += 1;
                    }
                }
                for bell in &bells {
                    bell.bell().ring();
                    sent += 1;
                }
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let cpu0 = router_cpu();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let busy = router_cpu() - cpu0;
    let wall = t0.elapsed();
    let (took, _a, _b) = round_trips(a, b);
    drop(_stop);
    let sent = signaller.join().unwrap();
    let rogue = agent_info(&mut observer, "rogue");
    eprintln!(
        "rogue signalled {sent} times; router CPU {busy:?} in {wall:?} of it; {} wakes ignored; {ROUND_TRIPS} honest round trips meanwhile in {took:?}",
        rogue.wakes_ignored
    );
    assert!(sent > 1000, "the rogue signalled only {sent} times");
    assert!(
        busy < wall / 4,
        "the router used {busy:?} of CPU in {wall:?} while the rogue signalled"
    );
    assert!(
        rogue.wakes_ignored > SPURIOUS_WAKES_PER_SECOND as u64,
        "the rogue is named: {rogue:?}"
    );
    let honest = agent_info(&mut observer, "honest-a");
    assert_eq!(honest.wakes_ignored, 0, "{honest:?}");
}
