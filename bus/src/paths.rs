//! Where a bus lives: its control socket and its header segment.

use std::path::{Path, PathBuf};

/// The directory holding bus sockets: `$XDG_RUNTIME_DIR/agentbus`, else `/tmp/agentbus-<uid>`.
pub fn default_socket_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("agentbus"),
        _ => std::env::temp_dir().join(format!("agentbus-{}", nix_uid())),
    }
}

fn nix_uid() -> u32 {
    // The real uid, from /proc (no libc call needed in this crate).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(0)
}

/// The control socket of bus `bus` in `dir`.
pub fn socket_path(dir: &Path, bus: &str) -> PathBuf {
    dir.join(format!("{bus}.sock"))
}

/// The name of bus `bus`'s header segment in `/dev/shm`.
pub fn header_segment_name(bus: &str) -> String {
    format!("agentbus.{bus}.ctl")
}

/// Whether `bus` is a usable bus name: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with a dot.
pub fn valid_bus_name(bus: &str) -> bool {
    !bus.is_empty()
        && bus.len() <= 64
        && !bus.starts_with('.')
        && bus
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
