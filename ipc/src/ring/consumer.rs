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

    pub(crate) fn new_at_head(ring: Ring, words: RawWords) -> Consumer {
        let cursor = ConsumerCursor::at_head(words, ring.capacity());
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

    /// As [`Consumer::peek`], with the stream position of the frame returned (after any padding
    /// `peek` stepped over): the position names this frame and no other, across laps, so a
    /// reader that must remember something about a frame between peeks keys it with this.
    pub fn peek_with_position(&mut self) -> Result<Option<(u64, &[u8])>, ReadError> {
        match self.cursor.peek()? {
            None => Ok(None),
            // SAFETY: as in `peek`: the payload lies inside the frame area and stays unwritten
            // until a release past it, which needs `&mut self`.
            Some(f) => Ok(Some((self.cursor.position(), unsafe {
                std::slice::from_raw_parts(self.ring.base().add(f.payload_offset), f.len)
            }))),
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

    /// Bytes of frame space in the ring.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.cursor.position()
    }

    /// Whether the ring has doorbells (its producer wakes a parked consumer).
    pub fn parking(&self) -> bool {
        self.ring.parking()
    }

    /// The next frame as a guard that reads it in place and, when dropped, pops it and releases
    /// it (one store). Use [`Consumer::peek`]/[`Consumer::pop`]/[`Consumer::release`] instead to
    /// release a batch at once.
    pub fn read(&mut self) -> Result<Option<ReadGuard<'_>>, ReadError> {
        Ok(self.cursor.peek()?.map(|f| ReadGuard {
            offset: f.payload_offset,
            len: f.len,
            consumer: self,
        }))
    }
}

/// A frame being read in place; see [`Consumer::read`].
#[derive(Debug)]
pub struct ReadGuard<'a> {
    consumer: &'a mut Consumer,
    offset: usize,
    len: usize,
}

impl ReadGuard<'_> {
    /// The frame's payload.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the cursor validated [offset, offset + len) inside the frame area when it
        // peeked; the guard holds the consumer's only `&mut`, so nothing pops or releases the
        // frame (and so the producer does not overwrite it) until the guard is dropped, which
        // ends every borrow returned here.
        unsafe { std::slice::from_raw_parts(self.consumer.ring.base().add(self.offset), self.len) }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.consumer.pop();
        self.consumer.release();
    }
}
