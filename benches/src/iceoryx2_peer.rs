//! iceoryx2 (zero-copy publish-subscribe over shared memory) as a peer: a ping-pong between
//! two processes over two services, both sides busy-polling, 64-byte payloads. Built only with
//! the `peers` feature.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use iceoryx2::prelude::*;

use crate::cases::{measure, on_core, Config, POLLS_PER_CHECK};
use crate::child::{ParentWatch, Peer};
use crate::report::Row;

/// iceoryx2 payloads are sized at compile time: this peer always carries 64 bytes.
pub const PAYLOAD: usize = 64;
type Payload = [u8; PAYLOAD];

fn services(tag: &str) -> (String, String) {
    (
        format!("agentbus/bench/{tag}/ping"),
        format!("agentbus/bench/{tag}/pong"),
    )
}

type Service =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, Payload, ()>;

/// The node and the two services (ping, pong) of a ping-pong tagged `tag`, opened or created.
fn open_services(tag: &str) -> anyhow::Result<(Node<ipc::Service>, Service, Service)> {
    let (ping_name, pong_name) = services(tag);
    let node = NodeBuilder::new().create::<ipc::Service>().map_err(err)?;
    let open = |name: &str| -> anyhow::Result<Service> {
        node.service_builder(&name.try_into().map_err(err)?)
            .publish_subscribe::<Payload>()
            .open_or_create()
            .map_err(err)
    };
    let (ping, pong) = (open(&ping_name)?, open(&pong_name)?);
    Ok((node, ping, pong))
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("iceoryx2: {e:?}")
}

/// The iceoryx2 files in /dev/shm.
fn iox2_files() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("iox2_"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Ping-pong with a child process over iceoryx2. iceoryx2 leaves a small global management
/// file in /dev/shm when its last node goes; the ones this case created are removed after it.
pub fn iceoryx2(cfg: Config) -> anyhow::Result<Row> {
    let before = iox2_files();
    let row = iceoryx2_pingpong(cfg);
    for f in iox2_files() {
        if !before.contains(&f) {
            let _ = std::fs::remove_file(f);
        }
    }
    row
}

fn iceoryx2_pingpong(cfg: Config) -> anyhow::Result<Row> {
    let tag = std::process::id().to_string();
    let mut args = cfg.child_args("iceoryx2");
    args.push(tag.clone());
    // Spawned from this (unpinned) thread: a child inherits its parent thread's affinity.
    let mut peer = Peer::spawn_plain(&args)?;
    // iceoryx2's ports are not Send: everything lives on the measuring thread.
    let hist = on_core(cfg.cores.0, || {
        let (_node, ping, pong) = open_services(&tag)?;
        let publisher = ping.publisher_builder().create().map_err(err)?;
        let subscriber = pong.subscriber_builder().create().map_err(err)?;
        // Wait until the child's subscriber is there (its first pong says so).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            publisher
                .loan_uninit()
                .map_err(err)?
                .write_payload([0; PAYLOAD])
                .send()
                .map_err(err)?;
            std::thread::sleep(Duration::from_millis(5));
            if subscriber.receive().map_err(err)?.is_some() {
                break;
            }
            peer.check_alive()?;
            if Instant::now() > deadline {
                bail!("the iceoryx2 child never answered");
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        while subscriber.receive().map_err(err)?.is_some() {}
        let payload = [0xA5u8; PAYLOAD];
        let hist = measure(&cfg, |_| {
            publisher
                .loan_uninit()
                .map_err(err)?
                .write_payload(payload)
                .send()
                .map_err(err)?;
            let mut polls = 0u32;
            loop {
                if let Some(sample) = subscriber.receive().map_err(err)? {
                    std::hint::black_box(sample.payload()[PAYLOAD - 1]);
                    return Ok(());
                }
                std::hint::spin_loop();
                polls = polls.wrapping_add(1);
                if polls % POLLS_PER_CHECK == 0 {
                    peer.check_alive()?;
                }
            }
        })?;
        // The stop signal: a payload of 0xFF.
        publisher
            .loan_uninit()
            .map_err(err)?
            .write_payload([0xFF; PAYLOAD])
            .send()
            .map_err(err)?;
        Ok(hist)
    })?;
    peer.finish()?;
    Ok(Row {
        id: "iceoryx2".into(),
        name: "iceoryx2".into(),
        hist,
    })
}

/// The child's half: echo every ping as a pong until the stop payload.
pub fn iceoryx2_child(args: &[String]) -> anyhow::Result<()> {
    let tag = args
        .first()
        .ok_or_else(|| anyhow!("iceoryx2 child: no service tag"))?;
    let (_node, ping, pong) = open_services(tag)?;
    let subscriber = ping.subscriber_builder().create().map_err(err)?;
    let publisher = pong.publisher_builder().create().map_err(err)?;
    let mut parent = ParentWatch::new();
    let mut polls = 0u32;
    loop {
        if let Some(sample) = subscriber.receive().map_err(err)? {
            let p: Payload = *sample.payload();
            if p == [0xFF; PAYLOAD] {
                return Ok(());
            }
            publisher
                .loan_uninit()
                .map_err(err)?
                .write_payload(p)
                .send()
                .map_err(err)?;
        } else {
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls % POLLS_PER_CHECK == 0 {
                parent.check_alive()?;
            }
        }
    }
}
