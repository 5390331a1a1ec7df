//! Where a bus lives: its control socket and its header segment.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

/// What to tell a user whose socket directory is refused.
const SOCKET_DIR_FIX: &str = "remove it (agentd recreates it, mode 0700) or pick another with --socket-dir / XDG_RUNTIME_DIR";

/// Why a socket directory is not safe to use (see [`check_socket_dir`]).
#[derive(Debug, thiserror::Error)]
pub enum SocketDirError {
    /// The directory does not exist: no agentd has served a bus there.
    #[error("socket directory {} does not exist: no agentd serves a bus there; start one (`agentd --bus NAME`), or pass the --socket-dir / XDG_RUNTIME_DIR it uses", dir.display())]
    Missing {
        /// The socket directory checked, as given.
        dir: PathBuf,
    },
    /// Its metadata could not be read.
    #[error("socket directory {}: cannot inspect it: {source}", dir.display())]
    Inspect {
        /// The socket directory checked, as given.
        dir: PathBuf,
        /// What `symlink_metadata` returned.
        source: std::io::Error,
    },
    /// It is a symbolic link, which whoever can write its parent may point anywhere.
    #[error("socket directory {} is a symbolic link, not a directory: {SOCKET_DIR_FIX}", dir.display())]
    Symlink {
        /// The socket directory checked, as given.
        dir: PathBuf,
    },
    /// It is not a directory.
    #[error("socket directory {} is not a directory: {SOCKET_DIR_FIX}", dir.display())]
    NotADirectory {
        /// The path checked, as given: something other than a directory is there.
        dir: PathBuf,
    },
    /// Another uid owns it, so that uid can replace the sockets inside.
    #[error("socket directory {} is owned by uid {owner}, not {uid} (this process) or root: someone else may have created it; {SOCKET_DIR_FIX}", dir.display())]
    WrongOwner {
        /// The socket directory checked, as given.
        dir: PathBuf,
        /// The uid that owns it.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// Group or others may write it, so they can replace the sockets inside.
    #[error("socket directory {} is writable by group or others (mode {mode:o}): they could replace the bus socket; run `chmod go-w {}`, or {SOCKET_DIR_FIX}", dir.display(), dir.display())]
    Writable {
        /// The socket directory checked, as given.
        dir: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`), with group or other write set.
        mode: u32,
    },
}

/// Checks that `dir` is safe to hold bus sockets, as ssh and systemd check their directories:
/// a real directory (not a symbolic link), owned by this process's effective uid or by root, and
/// not writable by group or others. Whoever can write the directory can replace a bus socket with
/// their own and receive the attach requests (and agents' messages) meant for agentd.
///
/// agentd checks its directory before serving; [`Agent::attach`](crate::client::Agent::attach)
/// checks it before connecting (and reports a missing one as
/// [`ClientError::BusNotRunning`](crate::client::ClientError::BusNotRunning)). A directory that
/// does not exist is refused ([`SocketDirError::Missing`]): only agentd creates it.
///
/// ```no_run
/// use agentbus::paths;
///
/// if let Err(e) = paths::check_socket_dir(&paths::default_socket_dir()) {
///     eprintln!("{e}"); // says what is wrong and how to fix it
/// }
/// ```
pub fn check_socket_dir(dir: &Path) -> Result<(), SocketDirError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SocketDirError::Missing { dir: dir.into() })
        }
        Err(source) => {
            return Err(SocketDirError::Inspect {
                dir: dir.into(),
                source,
            })
        }
    };
    if meta.file_type().is_symlink() {
        return Err(SocketDirError::Symlink { dir: dir.into() });
    }
    if !meta.is_dir() {
        return Err(SocketDirError::NotADirectory { dir: dir.into() });
    }
    let uid = nix::unistd::geteuid().as_raw();
    // Root can replace anything anyway: a directory it owns (`/run/agentbus` made by a
    // service manager, agentd running as root) is as safe as one's own.
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(SocketDirError::WrongOwner {
            dir: dir.into(),
            owner: meta.uid(),
            uid,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(SocketDirError::Writable {
            dir: dir.into(),
            mode,
        });
    }
    Ok(())
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
