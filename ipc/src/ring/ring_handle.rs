//! A ring laid out in a region: creating it, attaching to it, and splitting it into its sides.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::consumer::Consumer;
use super::cursor;
use super::error::AttachError;
use super::layout::*;
use super::producer::Producer;
use super::words::{RawWords, Words};
use crate::region::{Mapping, Region};
use crate::wait::Doorbell;

/// How to create a ring.
#[derive(Debug, Clone, Copy)]
pub struct RingOptions {
    /// Bytes of frame space: a power of two, at least 128.
    pub capacity: usize,
    /// Whether either side may park on a doorbell. When true, each side issues a fence and checks
    /// the peer's sleeping flag after publishing (about one uncontended fence per batch); when
    /// false, peers must spin or back off, and `Park` degrades to short sleeps.
    pub parking: bool,
}

impl RingOptions {
    /// A ring of `capacity` bytes that supports parking.
    pub fn new(capacity: usize) -> RingOptions {
        RingOptions {
            capacity,
            parking: true,
        }
    }

    /// Sets whether the ring supports parking.
    pub fn parking(mut self, parking: bool) -> RingOptions {
        self.parking = parking;
        self
    }
}

/// A ring in a region; split it with [`Ring::into_producer`], [`Ring::into_consumer`] (one side
/// per process) or [`Ring::split`] (both sides in this process).
#[derive(Debug)]
pub struct Ring {
    region: Region,
    capacity: usize,
    parking: bool,
}

impl Ring {
    /// Bytes a ring of `capacity` needs, header included.
    pub fn size_for(capacity: usize) -> usize {
        RING_HEADER + capacity
    }

    fn check(region: &Region, capacity: u64) -> Result<(), AttachError> {
        let cap = usize::try_from(capacity).unwrap_or(usize::MAX);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) {
            return Err(AttachError::BadCapacity {
                capacity,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        if region.len() < Ring::size_for(cap) {
            return Err(AttachError::TooSmall {
                len: region.len(),
                needed: Ring::size_for(cap),
            });
        }
        if region.as_ptr() as usize % 128 != 0 {
            return Err(AttachError::Misaligned {
                addr: region.as_ptr() as usize,
            });
        }
        Ok(())
    }

    fn words(region: &Region, capacity: usize) -> RawWords {
        // SAFETY: `check` verified that the region (kept alive by every side that holds these
        // words) covers the ring's header and frame area and is 128-byte aligned.
        unsafe { RawWords::new(region.as_ptr(), Ring::size_for(capacity)) }
    }

    /// Initialises a new ring at the start of `region`. Nobody else may use the region yet.
    pub fn create(region: Region, options: RingOptions) -> Result<Ring, AttachError> {
        Ring::check(&region, options.capacity as u64)?;
        cursor::init(
            &Ring::words(&region, options.capacity),
            options.capacity,
            options.parking,
            new_key(),
        );
        Ok(Ring {
            region,
            capacity: options.capacity,
            parking: options.parking,
        })
    }

    /// A ring in fresh heap memory: for tests, and in-process queues.
    pub fn heap(options: RingOptions) -> Result<Ring, AttachError> {
        let len = Ring::size_for(options.capacity);
        let map = Mapping::heap(len).ok_or(AttachError::TooSmall {
            len: 0,
            needed: len,
        })?;
        Ring::create(Region::whole(Arc::new(map)), options)
    }

    /// Attaches to a ring another process created at the start of `region`, validating its
    /// header (the creator is trusted no more than it must be).
    pub fn attach(region: Region) -> Result<Ring, AttachError> {
        if region.len() < RING_HEADER {
            return Err(AttachError::TooSmall {
                len: region.len(),
                needed: RING_HEADER,
            });
        }
        if region.as_ptr() as usize % 128 != 0 {
            return Err(AttachError::Misaligned {
                addr: region.as_ptr() as usize,
            });
        }
        // SAFETY: the region holds at least the header (checked above) and is aligned.
        let header = unsafe { RawWords::new(region.as_ptr(), RING_HEADER) };
        // SYNC POINT with the Release store of the magic in `cursor::init`.
        let magic = header.load(OFF_MAGIC, Ordering::Acquire);
        if magic != MAGIC {
            return Err(AttachError::BadMagic { found: magic });
        }
        let version_flags = header.load(OFF_VERSION_FLAGS, Ordering::Relaxed);
        if version_flags >> 32 != VERSION {
            return Err(AttachError::BadVersion {
                found: version_flags >> 32,
                expected: VERSION,
            });
        }
        let capacity = header.load(OFF_CAPACITY, Ordering::Relaxed);
        Ring::check(&region, capacity)?;
        Ok(Ring {
            region,
            capacity: capacity as usize,
            parking: version_flags & FLAG_PARKING != 0,
        })
    }

    /// Bytes of frame space.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest payload one frame carries.
    pub fn max_payload(&self) -> usize {
        max_payload_for(self.capacity)
    }

    /// Whether the ring supports parking.
    pub fn parking(&self) -> bool {
        self.parking
    }

    /// The producing side. This process must be the ring's only producer.
    pub fn into_producer(self) -> Producer {
        let words = Ring::words(&self.region, self.capacity);
        Producer::new(self, words)
    }

    /// The consuming side. This process must be the ring's only consumer.
    pub fn into_consumer(self) -> Consumer {
        let words = Ring::words(&self.region, self.capacity);
        Consumer::new(self, words)
    }

    /// The consuming side, taking over from a previous consumer at the head it released (to
    /// collect what a dead consumer left unread). The previous consumer must be gone.
    pub fn into_consumer_at_head(self) -> Consumer {
        let words = Ring::words(&self.region, self.capacity);
        Consumer::new_at_head(self, words)
    }

    /// Both sides, for use in this process (threads, tests).
    pub fn split(self) -> (Producer, Consumer) {
        let other = Ring {
            region: self.region.clone(),
            capacity: self.capacity,
            parking: self.parking,
        };
        (self.into_producer(), other.into_consumer())
    }

    /// Wakes whoever sleeps on this ring, on either side (after a change they must notice
    /// that is not a frame, such as the ring being closed).
    pub fn wake_both(&self) {
        self.data_bell().ring();
        self.space_bell().ring();
    }

    pub(crate) fn bell(&self, offset: usize) -> &Doorbell {
        debug_assert!(offset == OFF_DATA_BELL || offset == OFF_SPACE_BELL);
        // SAFETY: both doorbell offsets lie inside the ring header, which `check` confirmed is in
        // the region; they are 128-byte aligned (Doorbell needs 4); Doorbell is two AtomicU32,
        // valid for any bit pattern; the region outlives the returned borrow of self.
        unsafe { &*self.region.as_ptr().add(offset).cast::<Doorbell>() }
    }

    pub(crate) fn data_bell(&self) -> &Doorbell {
        self.bell(OFF_DATA_BELL)
    }

    pub(crate) fn space_bell(&self) -> &Doorbell {
        self.bell(OFF_SPACE_BELL)
    }

    pub(crate) fn base(&self) -> *mut u8 {
        self.region.as_ptr()
    }
}
