//! The ring's position protocol, independent of where its memory lives.
//!
//! [`ProducerCursor`] and [`ConsumerCursor`] hold each side's private state and speak to the
//! shared words only through [`Words`], so the same code runs over shared memory
//! ([`super::RawWords`]) and under the loom model checker. They deal in offsets; the
//! [`super::Producer`] and [`super::Consumer`] wrappers turn offsets into byte slices.

use std::sync::atomic::Ordering;

use super::error::{ClaimError, Corruption};
use super::layout::*;
use super::words::Words;

/// Writes a fresh ring header through `words`: version, flags, capacity, commit key, head 0, and
/// the magic last (Release), so an attacher that sees the magic sees the rest. `key` must be odd
/// (use a random one: see the module docs of [`super`]).
pub fn init<W: Words>(words: &W, capacity: usize, parking: bool, key: u64) {
    let flags = if parking { FLAG_PARKING } else { 0 };
    words.store(
        OFF_VERSION_FLAGS,
        (VERSION << 32) | flags,
        Ordering::Relaxed,
    );
    words.store(OFF_CAPACITY, capacity as u64, Ordering::Relaxed);
    words.store(OFF_KEY, key | 1, Ordering::Relaxed);
    words.store(OFF_HEAD, 0, Ordering::Relaxed);
    // SYNC POINT with the Acquire load of the magic in `Ring::attach`.
    words.store(OFF_MAGIC, MAGIC, Ordering::Release);
}

/// A claimed, not yet committed, frame.
#[derive(Debug)]
pub struct Reservation {
    /// Stream position of the frame's header.
    pub frame_pos: u64,
    /// Offset of the payload from the ring's start.
    pub payload_offset: usize,
    /// Payload bytes claimed; the commit may use fewer.
    pub len: usize,
    pad_pos: Option<u64>,
}

/// The producer's private state.
#[derive(Debug)]
pub struct ProducerCursor<W> {
    words: W,
    key: u64,
    capacity: u64,
    mask: u64,
    max_payload: usize,
    tail: u64,
    cached_head: u64,
    batching: bool,
    held: Option<u64>,
}

impl<W: Words> ProducerCursor<W> {
    /// A producer at the start of a freshly initialised ring of `capacity` bytes.
    pub fn new(words: W, capacity: usize) -> Self {
        // Read once: the key never changes after `init`, and a later write by the peer must not
        // change what we consider committed.
        let key = words.load(OFF_KEY, Ordering::Relaxed);
        ProducerCursor {
            words,
            key,
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            max_payload: max_payload_for(capacity),
            tail: 0,
            cached_head: 0,
            batching: false,
            held: None,
        }
    }

    /// The largest payload a frame may carry.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Bytes written so far (the next frame's position).
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// The consumer's head as last read.
    pub fn cached_head(&self) -> u64 {
        self.cached_head
    }

    /// Bytes committed and not yet released by the consumer, reading its head now (a monitor's
    /// sample: a head past the tail, which only a broken consumer writes, reads as 0).
    pub fn pending(&self) -> u64 {
        // Relaxed: a gauge; nothing is read on the strength of it.
        let head = self.words.load(OFF_HEAD, Ordering::Relaxed);
        self.tail.saturating_sub(head)
    }

    /// Claims room for a frame of up to `len` payload bytes.
    pub fn reserve(&mut self, len: usize) -> Result<Reservation, ClaimError> {
        if len > self.max_payload {
            return Err(ClaimError::TooLarge {
                len,
                max: self.max_payload,
            });
        }
        let frame = frame_size(len) as u64;
        let off = self.tail & self.mask;
        let room = self.capacity - off;
        let pad = if frame > room { room } else { 0 };
        // One header's worth of slack: the ring is never filled to its last byte, which keeps
        // the largest frame (see `max_payload_for`) placeable in an empty ring.
        let needed = pad + frame + FRAME_HEADER as u64;
        if self.tail + needed - self.cached_head > self.capacity {
            // SYNC POINT with the Release store of the head in `ConsumerCursor::release`: the
            // consumer is done with every byte below the head we load.
            let head = self.words.load(OFF_HEAD, Ordering::Acquire);
            if head < self.cached_head || head > self.tail {
                return Err(Corruption {
                    position: self.tail,
                    value: head,
                    reason: "the consumer's head is outside the range it may hold",
                }
                .into());
            }
            self.cached_head = head;
            let used = self.tail - head;
            if used + needed > self.capacity {
                return Err(ClaimError::Full {
                    needed: needed as usize,
                    free: (self.capacity - used) as usize,
                });
            }
        }
        let pad_pos = if pad > 0 {
            let info = encode_info(KIND_PAD, (room - FRAME_HEADER as u64) as usize);
            self.words
                .store(OFF_DATA + off as usize + 8, info, Ordering::Relaxed);
            Some(self.tail)
        } else {
            None
        };
        let frame_pos = self.tail + pad;
        Ok(Reservation {
            frame_pos,
            payload_offset: OFF_DATA + (frame_pos & self.mask) as usize + FRAME_HEADER,
            len,
            pad_pos,
        })
    }

    /// Commits a reservation with `len` payload bytes (at most what was reserved), making it,
    /// and any padding before it, visible to the consumer; inside a batch, the first frame of
    /// the batch is held back until [`ProducerCursor::publish`].
    pub fn commit(&mut self, res: Reservation, len: usize) {
        let len = len.min(res.len);
        let off = (res.frame_pos & self.mask) as usize;
        self.words.store(
            OFF_DATA + off + 8,
            encode_info(KIND_DATA, len),
            Ordering::Relaxed,
        );
        let next = res.frame_pos + frame_size(len) as u64;
        let first = match res.pad_pos {
            Some(pad_pos) => {
                // The data frame's commit word becomes visible with the padding's (Release) below.
                self.words
                    .store(OFF_DATA + off, res.frame_pos ^ self.key, Ordering::Relaxed);
                pad_pos
            }
            None => res.frame_pos,
        };
        if !self.batching {
            self.store_commit(first, Ordering::Release);
        } else if self.held.is_none() {
            self.held = Some(first);
        } else {
            // Reached only after the held first frame, whose Release store orders this one.
            self.store_commit(first, Ordering::Relaxed);
        }
        self.tail = next;
    }

    fn store_commit(&self, pos: u64, order: Ordering) {
        // With Release: SYNC POINT with the Acquire load of the commit word in
        // `ConsumerCursor::peek`; everything written to the frame before is visible after it.
        self.words
            .store(OFF_DATA + (pos & self.mask) as usize, pos ^ self.key, order);
    }

    /// Starts a batch: frames committed until [`ProducerCursor::publish`] become visible together.
    pub fn begin_batch(&mut self) {
        self.batching = true;
    }

    /// Ends a batch, publishing all its frames with one Release store. Returns whether anything
    /// was published.
    pub fn publish(&mut self) -> bool {
        self.batching = false;
        match self.held.take() {
            Some(pos) => {
                self.store_commit(pos, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Whether a batch is open.
    pub fn is_batching(&self) -> bool {
        self.batching
    }
}

/// A frame found by [`ConsumerCursor::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    /// Offset of the payload from the ring's start.
    pub payload_offset: usize,
    /// Payload length.
    pub len: usize,
}

/// The consumer's private state.
#[derive(Debug)]
pub struct ConsumerCursor<W> {
    words: W,
    key: u64,
    capacity: u64,
    mask: u64,
    max_payload: usize,
    pos: u64,
    released: u64,
    peeked: u64,
}

impl<W: Words> ConsumerCursor<W> {
    /// A consumer at the start of a freshly initialised ring of `capacity` bytes.
    pub fn new(words: W, capacity: usize) -> Self {
        let key = words.load(OFF_KEY, Ordering::Relaxed);
        ConsumerCursor {
            words,
            key,
            capacity: capacity as u64,
            mask: capacity as u64 - 1,
            max_payload: max_payload_for(capacity),
            pos: 0,
            released: 0,
            peeked: 0,
        }
    }

    /// A consumer taking over a ring where its previous consumer released up to (for example, to
    /// collect what a dead consumer left unread). The head is the previous consumer's word: if it
    /// is nonsense, reads find nothing or report corruption.
    pub fn at_head(words: W, capacity: usize) -> Self {
        let head = words.load(OFF_HEAD, Ordering::Acquire);
        let mut c = ConsumerCursor::new(words, capacity);
        c.pos = head & !(FRAME_ALIGN as u64 - 1);
        c.released = c.pos;
        c
    }

    /// The next frame, if one is committed. Padding is skipped. Does not advance.
    pub fn peek(&mut self) -> Result<Option<Peeked>, Corruption> {
        // At most one padding frame precedes a data frame; a second in a row is corruption.
        for _ in 0..2 {
            let off = self.pos & self.mask;
            // SYNC POINT with the Release store of the commit word in `ProducerCursor::commit`
            // or `publish`.
            let commit = self.words.load(OFF_DATA + off as usize, Ordering::Acquire);
            if commit != self.pos ^ self.key {
                return Ok(None);
            }
            let info = self
                .words
                .load(OFF_DATA + off as usize + 8, Ordering::Relaxed);
            let corrupt = |reason| Corruption {
                position: self.pos,
                value: info,
                reason,
            };
            let (kind, len) = decode_info(info).ok_or(corrupt("bad frame tag"))?;
            let room = self.capacity - off;
            match kind {
                KIND_DATA => {
                    if len > self.max_payload || frame_size(len) as u64 > room {
                        return Err(corrupt("frame length runs past the ring"));
                    }
                    self.peeked = frame_size(len) as u64;
                    return Ok(Some(Peeked {
                        payload_offset: OFF_DATA + off as usize + FRAME_HEADER,
                        len,
                    }));
                }
                KIND_PAD => {
                    if off == 0 || len as u64 + FRAME_HEADER as u64 != room {
                        return Err(corrupt("padding frame does not end at the ring's end"));
                    }
                    self.pos += room;
                }
                _ => return Err(corrupt("unknown frame kind")),
            }
        }
        Err(Corruption {
            position: self.pos,
            value: 0,
            reason: "two padding frames in a row",
        })
    }

    /// Moves past the frame the last `peek` returned (locally: the producer sees the room only
    /// after [`ConsumerCursor::release`]).
    pub fn pop(&mut self) {
        self.pos += self.peeked;
        self.peeked = 0;
    }

    /// Publishes the read position, giving the producer back the room of every popped frame.
    /// Returns whether the head moved.
    pub fn release(&mut self) -> bool {
        if self.pos == self.released {
            return false;
        }
        // SYNC POINT with the Acquire load of the head in `ProducerCursor::reserve`: we are done
        // reading every byte below this position.
        self.words.store(OFF_HEAD, self.pos, Ordering::Release);
        self.released = self.pos;
        true
    }

    /// Bytes read so far (popped, released or not).
    pub fn position(&self) -> u64 {
        self.pos
    }
}
