//! A mailbox: one cache-line-aligned slot of payload with a sequence word, in shared memory.
//!
//! The writer copies the payload in, then stores the sequence number with Release; the reader
//! spins until it sees that number (Acquire) and copies the payload out. Nothing can carry a
//! payload between two cores with less work, which makes a pair of mailboxes the *floor* that
//! `agentbus bench` measures every transport against.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::region::Region;

/// Bytes before the payload: the sequence word, alone on its cache line's first 8 bytes.
const SEQ: usize = 8;

/// A mailbox laid out at the start of a region.
#[derive(Debug)]
pub struct Mailbox {
    region: Region,
    capacity: usize,
}

impl Mailbox {
    /// Bytes a mailbox carrying up to `capacity` payload bytes takes, rounded to whole
    /// 128-byte blocks so two mailboxes never share a cache line (or its prefetch pair).
    pub fn size_for(capacity: usize) -> usize {
        (SEQ + capacity).next_multiple_of(128)
    }

    /// A mailbox in `region` (128-byte aligned, at least `size_for(capacity)` long), or `None`.
    pub fn new(region: Region, capacity: usize) -> Option<Mailbox> {
        (region.len() >= Mailbox::size_for(capacity) && region.as_ptr() as usize % 128 == 0)
            .then_some(Mailbox { region, capacity })
    }

    fn seq(&self) -> &AtomicU64 {
        // SAFETY: the region is 128-aligned and at least 8 bytes long (checked in `new`);
        // AtomicU64 accepts any bit pattern; the region outlives the borrow of self.
        unsafe { &*self.region.as_ptr().cast::<AtomicU64>() }
    }

    /// Writes `payload` (at most the capacity; longer is cut) and publishes it as `seq`.
    pub fn send(&self, seq: u64, payload: &[u8]) {
        let n = payload.len().min(self.capacity);
        // SAFETY: the payload area [8, 8 + capacity) lies inside the region (checked in `new`);
        // by the mailbox protocol the reader does not read it until it sees the new sequence,
        // stored below with Release, and the writer waits for the reader's reply before writing
        // again (a ping-pong). A reader in another process racing anyway only reads stale bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(payload.as_ptr(), self.region.as_ptr().add(SEQ), n)
        };
        // SYNC POINT with the Acquire load in `receive`.
        self.seq().store(seq, Ordering::Release);
    }

    /// Spins until the mailbox holds `seq`, then copies the payload into `out` (up to its
    /// length and the capacity). Gives up after `max_spins` polls, returning false.
    pub fn receive(&self, seq: u64, out: &mut [u8], max_spins: u64) -> bool {
        let mut spins = 0;
        // SYNC POINT with the Release store in `send`.
        while self.seq().load(Ordering::Acquire) != seq {
            std::hint::spin_loop();
            spins += 1;
            if spins == max_spins {
                return false;
            }
        }
        let n = out.len().min(self.capacity);
        // SAFETY: the source range lies inside the region (checked in `new`); it was completely
        // written before the sequence we acquired.
        unsafe {
            std::ptr::copy_nonoverlapping(self.region.as_ptr().add(SEQ), out.as_mut_ptr(), n)
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Mapping;
    use std::sync::Arc;

    #[test]
    fn a_mailbox_carries_the_payload_of_the_sequence_it_publishes() {
        let region = Region::whole(Arc::new(Mapping::heap(4096).unwrap()));
        let mb = Mailbox::new(region, 64).unwrap();
        mb.send(1, &[7u8; 64]);
        let mut out = [0u8; 64];
        assert!(mb.receive(1, &mut out, 10));
        assert_eq!(out, [7u8; 64]);
        assert!(!mb.receive(2, &mut out, 10), "nothing published as 2 yet");
    }

    #[test]
    fn a_region_too_small_for_the_capacity_is_refused() {
        let region = Region::whole(Arc::new(Mapping::heap(4096).unwrap()));
        assert!(Mailbox::new(region.sub(0, 64).unwrap(), 64).is_none());
        assert_eq!(Mailbox::size_for(64), 128);
        assert_eq!(Mailbox::size_for(120), 128);
        assert_eq!(Mailbox::size_for(121), 256);
    }
}
