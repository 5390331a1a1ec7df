//! Pinning the current thread to a core.

/// Why a thread could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The core is not one this process may run on.
    #[error("core {core} is not available to this process (available: {available:?}); pick one of those, or check the cpuset/taskset it runs under")]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// The cores this process may use.
        available: Vec<usize>,
    },
    /// The kernel refused the affinity change.
    #[error("the kernel refused to pin this thread to core {core}")]
    Refused {
        /// The core asked for.
        core: usize,
    },
}

/// The cores this process may run on, in ascending order.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids
}

/// Pins the calling thread to `core`, so the scheduler never migrates it.
pub fn pin_current_thread(core: usize) -> Result<(), PinError> {
    let available = available_cores();
    if !available.contains(&core) {
        return Err(PinError::NoSuchCore { core, available });
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(PinError::Refused { core })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_an_available_core_works_and_a_missing_one_is_refused() {
        let cores = available_cores();
        assert!(!cores.is_empty());
        let handle = std::thread::spawn(move || pin_current_thread(cores[0]));
        assert!(handle.join().unwrap().is_ok());
        match pin_current_thread(usize::MAX) {
            Err(PinError::NoSuchCore { core, .. }) => assert_eq!(core, usize::MAX),
            other => panic!("expected NoSuchCore, got {other:?}"),
        }
    }
}
