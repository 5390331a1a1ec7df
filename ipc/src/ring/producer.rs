//! The producing side: claim, write in place, commit.

use std::time::Instant;

use super::cursor::{ProducerCursor, Reservation};
use super::error::ClaimError;
use super::ring_handle::Ring;
use super::words::RawWords;
use crate::wait::{EventWake, WaitError, WaitStrategy};
use crate::words::SharedDoorbell;

/// The producing side of a ring.
#[derive(Debug)]
pub struct Producer {
    ring: Ring,
    cursor: ProducerCursor<RawWords>,
    wake: Option<Wake>,
}

/// Whom a producer wakes after publishing, instead of the ring's own data doorbell: a consumer
/// that waits on several rings at once.
#[derive(Debug, Clone)]
pub enum Wake {
    /// One futex doorbell the consumer sleeps on (shared by every producer that has it).
    Bell(SharedDoorbell),
    /// This producer's own eventfd and sleeping flag (nothing shared with other producers).
    Event(EventWake),
}

impl From<SharedDoorbell> for Wake {
    fn from(bell: SharedDoorbell) -> Wake {
        Wake::Bell(bell)
    }
}

impl From<EventWake> for Wake {
    fn from(wake: EventWake) -> Wake {
        Wake::Event(wake)
    }
}

impl Producer {
    pub(crate) fn new(ring: Ring, words: RawWords) -> Producer {
        let cursor = ProducerCursor::new(words, ring.capacity());
        Producer {
            ring,
            cursor,
            wake: None,
        }
    }

    /// Wakes `wake` instead of the ring's own data doorbell after publishing, for a consumer
    /// that waits on several rings at once. Takes effect only on rings created with parking.
    pub fn set_wake(&mut self, wake: impl Into<Wake>) {
        self.wake = Some(wake.into());
    }

    fn wake_consumer(&self) {
        if self.ring.parking() {
            match &self.wake {
                Some(Wake::Bell(shared)) => shared.bell().ring_if_sleeping(),
                Some(Wake::Event(event)) => event.ring_if_sleeping(),
                None => self.ring.data_bell().ring_if_sleeping(),
            }
        }
    }

    /// The largest payload a frame may carry.
    pub fn max_payload(&self) -> usize {
        self.cursor.max_payload()
    }

    /// Claims a frame of up to `len` payload bytes, or fails at once if the ring is full.
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_>, ClaimError> {
        let res = self.cursor.reserve(len)?;
        Ok(Claim {
            producer: self,
            res: Some(res),
        })
    }

    /// Claims a frame, waiting for room with `wait` until `deadline`.
    pub fn claim(
        &mut self,
        len: usize,
        wait: &impl WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<Claim<'_>, ClaimError> {
        let bell = self.ring.parking().then(|| self.ring.space_bell());
        let cursor = &mut self.cursor;
        let res = wait
            .wait_for(bell, deadline, || match cursor.reserve(len) {
                Ok(res) => Ok(Some(res)),
                Err(ClaimError::Full { .. }) => Ok(None),
                Err(e) => Err(e),
            })
            .map_err(|e| match e {
                WaitError::TimedOut => ClaimError::TimedOut,
                WaitError::Failed(e) => e,
            })?;
        Ok(Claim {
            producer: self,
            res: Some(res),
        })
    }

    /// Starts a batch: frames committed until [`Producer::publish`] reach the consumer together,
    /// with one Release store and at most one wake-up.
    pub fn begin_batch(&mut self) {
        self.cursor.begin_batch();
    }

    /// Ends a batch and publishes it.
    pub fn publish(&mut self) {
        if self.cursor.publish() {
            self.wake_consumer();
        }
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.cursor.tail()
    }

    /// Bytes committed but not yet released by the consumer, as of the last head this producer
    /// read (an upper bound: the consumer may have read more since).
    pub fn backlog_hint(&self) -> u64 {
        self.cursor.tail() - self.cursor.cached_head()
    }

    /// Bytes committed and not yet released by the consumer, reading its head now (one load
    /// of a word the consumer writes: for monitors, not for every frame).
    pub fn pending(&self) -> u64 {
        self.cursor.pending()
    }
}

/// A claimed frame: write the payload in place, then [`Claim::commit`]. Dropping it uncommitted
/// abandons it; the consumer never sees it.
#[derive(Debug)]
pub struct Claim<'a> {
    producer: &'a mut Producer,
    res: Option<Reservation>,
}

impl Claim<'_> {
    /// The claimed payload bytes, in the ring. Their previous contents are unspecified.
    pub fn payload(&mut self) -> &mut [u8] {
        let res = self
            .res
            .as_ref()
            .expect("a claim is reserved until committed");
        // SAFETY: the reservation lies inside the ring's frame area (the cursor computed it from
        // its own validated state) and the protocol gives this producer sole use of those bytes
        // until commit: the consumer reads them only after the commit word's Release.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.producer.ring.base().add(res.payload_offset),
                res.len,
            )
        }
    }

    /// Payload bytes claimed.
    pub fn len(&self) -> usize {
        self.res.as_ref().map_or(0, |r| r.len)
    }

    /// Whether zero bytes were claimed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes the frame with its first `len` payload bytes (capped at the claim's length).
    /// Inside a batch, it becomes visible at [`Producer::publish`].
    pub fn commit(mut self, len: usize) {
        if let Some(res) = self.res.take() {
            let p = &mut *self.producer;
            p.cursor.commit(res, len);
            if !p.cursor.is_batching() {
                p.wake_consumer();
            }
        }
    }
}
