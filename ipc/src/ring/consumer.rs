//! The consuming side: peek, read in place, pop, release.

use std::time::Instant;

use super::cursor::ConsumerCursor;
use super::error::ReadError;
use super::ring_handle::Ring;
use super::words::RawWords;
use crate::wait::{WaitError, WaitStrategy};

/// The consuming side of a ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    cursor: ConsumerCursor<RawWords>,
}

impl Consumer {
    pub(crate) fn new(ring: Ring, words: RawWords) -> Consumer {
        let cursor = ConsumerCursor::new(words, ring.capacity());
        Consumer { ring, cursor }
    }

    /// The next frame's payload, read in place, if one is committed. Does not advance: call
    /// [`Consumer::pop`] when done with it.
    pub fn peek(&mut self) -> Result<Option<&[u8]>, ReadError> {
        match self.cursor.peek()? {
            None => Ok(None),
            // SAFETY: the cursor validated that the payload lies inside the frame area; the
            // producer does not write these bytes again until we release past them, which needs
            // `&mut self` and so ends this borrow first.
            Some(f) => Ok(Some(unsafe {
                std::slice::from_raw_parts(self.ring.base().add(f.payload_offset), f.len)
            })),
        }
    }

    /// Moves past the frame the last `peek` returned. Its room returns to the producer at the
    /// next [`Consumer::release`].
    pub fn pop(&mut self) {
        self.cursor.pop();
    }

    /// Publishes the read position with one store, waking a producer parked for room.
    pub fn release(&mut self) {
        if self.cursor.release() && self.ring.parking() {
            self.ring.space_bell().ring_if_sleeping();
        }
    }

    /// Waits until a frame is ready to `peek`, with `wait`, until `deadline`.
    pub fn wait(
        &mut self,
        wait: &impl WaitStrategy,
        deadline: Option<Instant>,
    ) -> Result<(), WaitError<ReadError>> {
        let bell = self.ring.parking().then(|| self.ring.data_bell());
        let cursor = &mut self.cursor;
        wait.wait_for(bell, deadline, || {
            cursor
                .peek()
                .map(|f| f.map(|_| ()))
                .map_err(ReadError::from)
        })
    }

    /// Reads up to `max` frames, calling `f` with each payload in place, then releases them all
    /// with one store. Returns how many were read.
    pub fn read_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> Result<usize, ReadError> {
        let mut n = 0;
        while n < max {
            match self.peek() {
                Ok(Some(payload)) => f(payload),
                Ok(None) => break,
                Err(e) => {
                    self.release();
                    return Err(e);
                }
            }
            self.pop();
            n += 1;
        }
        self.release();
        Ok(n)
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.cursor.position()
    }
}
