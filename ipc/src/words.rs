//! Atomic 64-bit words over a region: heartbeats, loads, counters and registry snapshots that
//! several processes read and write without locks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::region::Region;
use crate::wait::Doorbell;

/// A table of `AtomicU64` laid over a region, indexed from 0.
#[derive(Debug, Clone)]
pub struct WordTable {
    region: Region,
}

impl WordTable {
    /// The words of `region`, or `None` if it is not 8-byte aligned. Its length is rounded down
    /// to whole words.
    pub fn new(region: Region) -> Option<WordTable> {
        (region.as_ptr() as usize % 8 == 0).then_some(WordTable { region })
    }

    /// How many words.
    pub fn len(&self) -> usize {
        self.region.len() / 8
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The word at `index`.
    ///
    /// # Panics
    /// If `index` is out of range (a caller bug: indexes are layout constants).
    pub fn word(&self, index: usize) -> &AtomicU64 {
        assert!(
            index < self.len(),
            "word {index} outside a table of {}",
            self.len()
        );
        // SAFETY: in bounds (checked above) and 8-aligned (checked in `new`); AtomicU64 accepts
        // any bit pattern; the region, held by self, outlives the borrow.
        unsafe { &*self.region.as_ptr().add(index * 8).cast::<AtomicU64>() }
    }

    /// Loads word `index`.
    pub fn load(&self, index: usize, order: Ordering) -> u64 {
        self.word(index).load(order)
    }

    /// Stores word `index`.
    pub fn store(&self, index: usize, value: u64, order: Ordering) {
        self.word(index).store(value, order)
    }

    /// Writes `text` into `words` consecutive words starting at `index` (cut to `8 * words`
    /// bytes, zero-padded), Relaxed: publish it with a Release store of a word that readers
    /// check first.
    pub fn store_str(&self, index: usize, words: usize, text: &str) {
        let bytes = text.as_bytes();
        for w in 0..words {
            let mut chunk = [0u8; 8];
            let start = (w * 8).min(bytes.len());
            let end = (start + 8).min(bytes.len());
            chunk[..end - start].copy_from_slice(&bytes[start..end]);
            self.store(index + w, u64::from_le_bytes(chunk), Ordering::Relaxed);
        }
    }

    /// Reads text written by [`WordTable::store_str`] (invalid UTF-8 is replaced).
    pub fn load_str(&self, index: usize, words: usize) -> String {
        let mut bytes = Vec::with_capacity(words * 8);
        for w in 0..words {
            bytes.extend_from_slice(&self.load(index + w, Ordering::Relaxed).to_le_bytes());
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }
}

/// A [`Doorbell`] at the start of a region, which several producers ring and one consumer
/// sleeps on: the router sleeps on one for every agent's outbound lanes, and each agent on one
/// for its inbound lanes.
#[derive(Debug, Clone)]
pub struct SharedDoorbell {
    region: Region,
}

impl SharedDoorbell {
    /// The doorbell at the start of `region` (8 bytes, 4-byte aligned), or `None`.
    pub fn new(region: Region) -> Option<SharedDoorbell> {
        (region.len() >= std::mem::size_of::<Doorbell>() && region.as_ptr() as usize % 4 == 0)
            .then_some(SharedDoorbell { region })
    }

    /// The doorbell in the region's first 8 bytes, shared with every process that maps it.
    pub fn bell(&self) -> &Doorbell {
        // SAFETY: the region holds at least a Doorbell and is 4-aligned (checked in `new`);
        // Doorbell is two AtomicU32, valid for any bit pattern; the region outlives the borrow.
        unsafe { &*self.region.as_ptr().cast::<Doorbell>() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Mapping;
    use std::sync::Arc;

    #[test]
    fn strings_round_trip_through_words_and_are_cut_to_fit() {
        let t = WordTable::new(Region::whole(Arc::new(Mapping::heap(4096).unwrap()))).unwrap();
        assert_eq!(t.len(), 512);
        t.store_str(3, 2, "risk-engine");
        assert_eq!(t.load_str(3, 2), "risk-engine");
        t.store_str(3, 1, "risk-engine");
        assert_eq!(t.load_str(3, 1), "risk-eng");
        t.store_str(3, 2, "ab");
        assert_eq!(t.load_str(3, 2), "ab");
        t.store(0, 7, Ordering::Release);
        assert_eq!(t.load(0, Ordering::Acquire), 7);
    }
}
