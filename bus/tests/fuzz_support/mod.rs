//! What the fuzz targets share: how many cases they run, and 16-byte aligned copies of bytes
//! (ring frames, and so every decoder's input, start 16-byte aligned).
#![allow(dead_code)]

use proptest::test_runner::{Config, RngSeed};
use rkyv::util::AlignedVec;

/// The seed of the short default run: the same cases every time, so that a test run (and CI)
/// is reproducible. A long run picks a random seed unless `FUZZ_SEED` names one.
const DEFAULT_SEED: u64 = 0xA6E4_7B05_F022_2026;

/// The configuration of a fuzz target: `default` cases with a fixed seed, or, for a long run,
/// `FUZZ_CASES` cases (proptest's own `PROPTEST_CASES` works too) with a random seed or
/// `FUZZ_SEED`. No regression files are written: a failure prints its shrunk input, which a
/// test of its own keeps.
pub fn config(default: u32) -> Config {
    let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let long = from_env("FUZZ_CASES").or_else(|| from_env("PROPTEST_CASES"));
    let seed = match (long, from_env("FUZZ_SEED")) {
        (_, Some(seed)) => RngSeed::Fixed(seed),
        (Some(_), None) => RngSeed::Random,
        (None, None) => RngSeed::Fixed(DEFAULT_SEED),
    };
    Config {
        cases: long.map_or(default, |n| n.min(u32::MAX as u64) as u32),
        failure_persistence: None,
        rng_seed: seed,
        ..Config::default()
    }
}

/// `bytes`, copied to a 16-byte aligned buffer.
pub fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut v = AlignedVec::<16>::with_capacity(bytes.len());
    v.extend_from_slice(bytes);
    v
}

/// Runs `f` on a thread with a 2 MiB stack (what a spawned thread gets by default), so that a
/// recursion past it aborts the test run instead of passing on the main thread's larger stack.
pub fn on_small_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .name("2 MiB stack".into())
        .stack_size(2 << 20)
        .spawn(f)
        .expect("a thread starts")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
