//! Corrupt frames: a seeded loop of many random mutations of real encoded frames. Each decode
//! must end in an error or a valid message, never a panic.

mod support;

use agentbus::codec::header_for;
use agentbus::*;
use agentbus_ipc::ring::{Ring, RingOptions};
use rkyv::util::AlignedVec;
use support::{full_message, payloads, route};

fn encoded_frames() -> Vec<Vec<u8>> {
    let (mut tx, mut rx) = Ring::heap(RingOptions::new(1 << 16)).unwrap().split();
    let mut frames = Vec::new();
    for (i, p) in payloads().into_iter().enumerate() {
        let m = full_message(p, i as u64);
        encode(&mut tx, &header_for(&m, route(), 1), &m).unwrap();
        frames.push(rx.peek().unwrap().unwrap().to_vec());
        rx.pop();
        rx.release();
    }
    frames
}

#[test]
fn random_mutations_of_encoded_frames_never_panic_the_decoder() {
    let frames = encoded_frames();
    let mut rng = fastrand::Rng::with_seed(0xC0DEC);
    let iterations = if cfg!(miri) { 200 } else { 200_000 };
    let (mut errors, mut valid) = (0u64, 0u64);
    let mut buf = AlignedVec::<16>::new();
    for _ in 0..iterations {
        let frame = &frames[rng.usize(..frames.len())];
        buf.clear();
        buf.extend_from_slice(frame);
        let mut len = buf.len();
        match rng.u8(..4) {
            // flip 1..=4 random bits
            0 => {
                for _ in 0..rng.usize(1..=4) {
                    let i = rng.usize(..buf.len());
                    buf[i] ^= 1 << rng.u8(..8);
                }
            }
            // overwrite a random byte run in the body
            1 => {
                let start = rng.usize(HEADER_LEN..buf.len());
                let end = (start + rng.usize(1..32)).min(buf.len());
                for b in &mut buf[start..end] {
                    *b = rng.u8(..);
                }
            }
            // truncate
            2 => len = rng.usize(..buf.len()),
            // corrupt a header field only
            _ => {
                let i = rng.usize(..HEADER_LEN);
                buf[i] = rng.u8(..);
            }
        }
        match decode(&buf[..len]) {
            Ok(env) => {
                // A mutation that still validates must also be copyable in full.
                env.to_message().expect("a validated body deserializes");
                valid += 1;
            }
            Err(e) => {
                assert!(!e.reason.is_empty());
                errors += 1;
            }
        }
    }
    assert!(
        errors > iterations / 2,
        "most mutations are caught: {errors} errors, {valid} valid"
    );
}
