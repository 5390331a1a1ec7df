//! `bridge`: what crossing hosts through NATS costs beside staying on one bus, in one run. Two
//! embedded agentd, a nats-server on loopback and a bridge on each bus; a topic ping-pong on
//! one bus, and the same ping-pong from one bus to the other and back (each way: router,
//! bridge, NATS, bridge, router). Every agent parks: two cores hold two routers, two bridges,
//! NATS and the agents only if nobody spins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::client::{Agent, AttachOptions, Raw};
use agentbus_bridge::{Bridge, BridgeConfig, LocalNats};
use agentbus_ipc::clock::monotonic_ns;
use agentbus_ipc::wait::{Park, Wait};
use anyhow::{bail, Context};

use crate::bus_cases::{bus_tuned, Bus};
use crate::report::{histogram, Row};

const WAIT: Duration = Duration::from_secs(10);

fn attach(bus: &Bus, id: &str) -> anyhow::Result<Agent> {
    Ok(Agent::attach(
        AttachOptions::new(&bus.name, id, "bench")
            .socket_dir(&bus.dir)
            .wait(Wait::Park(Park::default())),
    )?)
}

/// An agent answering each message on `ping` with the same bytes on `pong`, until `stop`.
fn echo(
    bus: &Bus,
    id: &str,
    ping: &str,
    pong: &str,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut agent = attach(bus, id)?;
    let sub = agent.subscribe(ping)?;
    let pong = agent.topic(pong)?;
    Ok(std::thread::spawn(move || {
        let _sub = sub;
        while !stop.load(Ordering::Acquire) {
            let Ok(Some(d)) = agent.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            let body = d.raw().map(<[u8]>::to_vec).unwrap_or_default();
            drop(d);
            let _ = agent.send_blocking(&pong, Raw(&body), WAIT);
        }
    }))
}

/// Round trips of `me` publishing on `ping` and waiting for the echo on its subscription.
fn ping_pong(
    me: &mut Agent,
    ping: &str,
    rounds: u64,
    size: usize,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let topic = me.topic(ping)?;
    let body = vec![0xA5; size];
    let mut hist = histogram();
    let warmup = (rounds / 10).max(10);
    for i in 0..rounds + warmup {
        let t0 = monotonic_ns();
        me.send_blocking(&topic, Raw(&body), WAIT)?;
        if me.recv_timeout(WAIT)?.is_none() {
            bail!("no echo on {ping} within {WAIT:?}");
        }
        if i >= warmup {
            hist.record(monotonic_ns().saturating_sub(t0).max(1))?;
        }
    }
    Ok(hist)
}

/// The local and the cross-bus ping-pong, `rounds` each, `size`-byte bodies.
pub fn bridge(rounds: u64, size: usize) -> anyhow::Result<Vec<Row>> {
    let nats = LocalNats::start(None).context(
        "bench bridge runs nats-server: install it (Debian: apt-get install nats-server)",
    )?;
    let park = Wait::Park(Park::default());
    let a = bus_tuned("bridge-a", None, park, true, |_| {})?;
    let b = bus_tuned("bridge-b", None, park, true, |_| {})?;
    let bridge_cfg = |bus: &Bus, export: &str, import: &str| {
        let mut c = BridgeConfig::new(&bus.name, &nats.url());
        c.socket_dir = Some(bus.dir.clone());
        c.origin = bus.name.clone();
        c.export = vec![export.into()];
        c.import = vec![import.into()];
        c
    };
    let bridge_a = Bridge::start(bridge_cfg(&a, "x.ping", "x.pong"))?;
    let bridge_b = Bridge::start(bridge_cfg(&b, "x.pong", "x.ping"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let echoes = [
        echo(
            &a,
            "echo-local",
            "local.ping",
            "local.pong",
            Arc::clone(&stop),
        )?,
        echo(&b, "echo-remote", "x.ping", "x.pong", Arc::clone(&stop))?,
    ];
    let mut me = attach(&a, "pinger")?;
    let _local = me.subscribe("local.pong")?;
    let _remote = me.subscribe("x.pong")?;
    // Until the bridges' NATS subscriptions are in place: one ping crosses.
    let deadline = Instant::now() + WAIT;
    let probe = me.topic("x.ping")?;
    loop {
        me.send_blocking(&probe, Raw(b"probe"), WAIT)?;
        if me.recv_timeout(Duration::from_millis(200))?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "nothing crossed the bridge: {} / {}",
                bridge_a.stats(),
                bridge_b.stats()
            );
        }
    }
    while me.recv_timeout(Duration::from_millis(100))?.is_some() {}
    let local = ping_pong(&mut me, "local.ping", rounds, size)?;
    let across = ping_pong(&mut me, "x.ping", rounds, size)?;
    stop.store(true, Ordering::Release);
    for e in echoes {
        let _ = e.join();
    }
    drop((bridge_a, bridge_b));
    Ok(vec![
        Row {
            id: "topic-ping-pong".into(),
            name: "topic ping-pong, one bus".into(),
            hist: local,
        },
        Row {
            id: "bridge-ping-pong".into(),
            name: "across buses via NATS".into(),
            hist: across,
        },
    ])
}
