//! What engineers would use instead, measured the same way: Unix domain sockets between two
//! processes, and a crossbeam channel between two threads.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use anyhow::Context;

use crate::cases::{measure, on_core, pin, Config};
use crate::child::Peer;
use crate::report::Row;

/// Unix-socket ping-pong between this process and a child.
pub fn uds(cfg: Config) -> anyhow::Result<Row> {
    let path = std::env::temp_dir().join(format!("agentbus-bench-uds-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).context("binding the peer socket")?;
    let peer = Peer::spawn_plain_at(&path.display().to_string(), &cfg.child_args("uds"))?;
    listener.set_nonblocking(false)?;
    let (mut s, _) = listener.accept().context("the child connecting")?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = std::fs::remove_file(&path);
    let out = vec![0xA5u8; cfg.size.max(1)];
    let mut back = vec![0u8; cfg.size.max(1)];
    let hist = on_core(cfg.cores.0, || {
        measure(&cfg, |_| {
            s.write_all(&out)?;
            s.read_exact(&mut back)?;
            Ok(())
        })
    })?;
    peer.finish()?;
    Ok(Row {
        id: "uds".into(),
        name: "unix socket".into(),
        hist,
    })
}

/// The child's half of `uds`: connect and echo.
pub fn uds_child(path: &str, size: usize, total: u64) -> anyhow::Result<()> {
    let mut s = UnixStream::connect(path).context("connecting to the parent")?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = vec![0u8; size.max(1)];
    for _ in 0..total {
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
    }
    Ok(())
}

/// crossbeam-channel ping-pong between two threads of this process, pinned to the two cores.
pub fn crossbeam(cfg: Config) -> anyhow::Result<Row> {
    let (to_tx, to_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let (back_tx, back_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let total = cfg.total();
    let echo = std::thread::spawn(move || -> anyhow::Result<()> {
        pin(cfg.cores.1)?;
        for _ in 0..total {
            let v = to_rx.recv_timeout(Duration::from_secs(30))?;
            back_tx.send(v)?;
        }
        Ok(())
    });
    let hist = on_core(cfg.cores.0, || {
        let mut buf = vec![0xA5u8; cfg.size];
        measure(&cfg, |_| {
            to_tx.send(std::mem::take(&mut buf))?;
            buf = back_rx.recv_timeout(Duration::from_secs(30))?;
            Ok(())
        })
    })?;
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(Row {
        id: "crossbeam".into(),
        name: "crossbeam channel".into(),
        hist,
    })
}
