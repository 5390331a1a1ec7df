//! The dead-letter queue: every frame the bus could not deliver, with the reason.
//!
//! Bounded twice: in letters and in bytes (frames included), the oldest dropped first and
//! counted, so no sender can grow agentd's memory past the configured bytes. Each letter is
//! logged at WARN, at most [`LOG_LINES_PER_SECOND`] a second; the lines held back are counted
//! and reported by the next line logged after the second is over.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::control::{DeadLetterInfo, DeadLetterPage};

use crate::dead_letter_file::{DeadLetterFile, FileError, Loaded};

/// WARN lines per second for dead letters; past it, lines are counted, not written.
pub const LOG_LINES_PER_SECOND: u32 = 10;
/// Bytes a letter costs besides its frame (its record and reason), for the byte bound.
const LETTER_OVERHEAD: usize = 256;
/// The most letters one page lists.
pub const PAGE_LETTERS: usize = 1024;
/// The most bytes one page's letters take (their reasons counted), well under the control
/// message limit.
const PAGE_BYTES: usize = 256 << 10;

/// Locks the queue shared by the router and the control thread. A panic while it was held
/// (between two consistent states) leaves it usable: keep recording and listing.
pub fn lock(
    queue: &std::sync::Mutex<DeadLetterQueue>,
) -> std::sync::MutexGuard<'_, DeadLetterQueue> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

/// A dead letter: what is listed, and the frame (kept for replay).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// What `DeadLetters` lists of it; its `sequence` is set by the queue when it is pushed.
    pub info: DeadLetterInfo,
    /// The frame's bytes (empty when the frame alone was over the byte bound).
    pub frame: Vec<u8>,
}

impl DeadLetter {
    fn cost(&self) -> usize {
        LETTER_OVERHEAD + self.info.reason.len() + self.frame.len()
    }
}

/// Dead-letter WARN lines, at most [`LOG_LINES_PER_SECOND`] a second.
#[derive(Debug, Default)]
struct LogLimit {
    second: u64,
    lines: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether to write a line at `now_ns`; also the count of lines held back before it, when
    /// a new second starts.
    fn admit(&mut self, now_ns: u64) -> (bool, u64) {
        let second = now_ns / 1_000_000_000;
        let mut held_back = 0;
        if second != self.second {
            self.second = second;
            self.lines = 0;
            held_back = std::mem::take(&mut self.suppressed);
        }
        if self.lines < LOG_LINES_PER_SECOND {
            self.lines += 1;
            (true, held_back)
        } else {
            self.suppressed += 1;
            (false, held_back)
        }
    }
}

/// Dead letters in arrival order, bounded in count and bytes; the oldest go first, counted.
#[derive(Debug)]
pub struct DeadLetterQueue {
    /// Where letters are kept across restarts, if anywhere.
    file: Option<DeadLetterFile>,
    /// Letters at the back not yet written to the file.
    unsaved: usize,
    letters: VecDeque<DeadLetter>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    total: u64,
    /// `total`, readable without the lock: how the router learns, with one load a pass, that
    /// letters were made by anyone (itself, the control thread, a client's report) and are to
    /// be announced on `sys.alerts`.
    made: Arc<AtomicU64>,
    evicted: u64,
    log: LogLimit,
}

impl DeadLetterQueue {
    /// A queue holding at most `capacity` letters and `max_bytes` bytes.
    pub fn new(capacity: usize, max_bytes: usize) -> DeadLetterQueue {
        DeadLetterQueue {
            file: None,
            unsaved: 0,
            letters: VecDeque::new(),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(LETTER_OVERHEAD * 2),
            bytes: 0,
            total: 0,
            made: Arc::new(AtomicU64::new(0)),
            evicted: 0,
            log: LogLimit::default(),
        }
    }

    /// As [`DeadLetterQueue::new`], kept in the file at `path` too (the file may hold twice the
    /// byte bound before it is rewritten): the letters it holds are read back, numbered as
    /// they were, and new ones follow. Says what it read and skipped.
    pub fn with_file(
        capacity: usize,
        max_bytes: usize,
        path: &std::path::Path,
    ) -> Result<(DeadLetterQueue, Loaded), FileError> {
        let mut q = DeadLetterQueue::new(capacity, max_bytes);
        let (file, letters, loaded) = DeadLetterFile::open(path, 2 * q.max_bytes as u64)?;
        for letter in letters {
            q.keep(letter);
        }
        q.total = q.letters.back().map_or(0, |l| l.info.sequence + 1);
        q.made.store(q.total, Ordering::Release);
        q.file = Some(file);
        Ok((q, loaded))
    }

    /// Adds a letter as it is numbered, dropping the oldest past the bounds.
    fn keep(&mut self, letter: DeadLetter) {
        while !self.letters.is_empty()
            && (self.letters.len() >= self.capacity || self.bytes + letter.cost() > self.max_bytes)
        {
            if let Some(old) = self.letters.pop_front() {
                self.bytes -= old.cost();
                self.evicted += 1;
            }
        }
        self.bytes += letter.cost();
        self.letters.push_back(letter);
    }

    /// Writes the letters added since the last call to the file (agentd's control thread calls
    /// it about every 100 ms, and when stopping: a crash loses at most that much). A failed
    /// write is logged and those letters stay in memory only.
    pub fn persist(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let n = std::mem::take(&mut self.unsaved).min(self.letters.len());
        if n == 0 {
            return;
        }
        let new = self.letters.iter().skip(self.letters.len() - n);
        if let Err(e) = file.append(new, self.letters.iter()) {
            tracing::warn!("{e}");
        }
    }

    /// Takes the letter with sequence number `sequence` out of the queue (and its file), for a
    /// retry; `None` if it is not held.
    pub fn take(&mut self, sequence: u64) -> Option<DeadLetter> {
        let at = self
            .letters
            .iter()
            .position(|l| l.info.sequence == sequence)?;
        let letter = self.letters.remove(at)?;
        self.bytes -= letter.cost();
        // Letters after it not yet written stay unwritten; the file is rewritten without it.
        self.unsaved = self.unsaved.min(self.letters.len());
        if let Some(file) = self.file.as_mut() {
            let saved = self.letters.len() - self.unsaved;
            if let Err(e) = file.rewrite(self.letters.iter().take(saved)) {
                tracing::warn!("{e}");
            }
        }
        Some(letter)
    }

    /// Removes the file (agentd stopping with no letter to keep).
    pub fn remove_file(&mut self) {
        if let Some(file) = self.file.take() {
            file.remove();
        }
    }

    /// Drops every letter (from the file too); returns how many there were.
    pub fn purge(&mut self) -> u64 {
        let n = self.letters.len() as u64;
        self.letters.clear();
        self.bytes = 0;
        self.unsaved = 0;
        if let Some(file) = self.file.as_mut() {
            if let Err(e) = file.rewrite(std::iter::empty()) {
                tracing::warn!("{e}");
            }
        }
        n
    }

    /// Adds a letter; its sequence number is the count of letters before it.
    pub fn push(&mut self, mut letter: DeadLetter) {
        let (write, held_back) = self.log.admit(letter.info.at_ns);
        if held_back > 0 {
            tracing::warn!(
                "{held_back} dead-letter log lines held back in the last second (at most {LOG_LINES_PER_SECOND} a second); `dead_letters` lists them all"
            );
        }
        if write {
            tracing::warn!(
                id = %agentbus::MessageId(letter.info.message_id),
                source_slot = letter.info.source_slot,
                reason = %letter.info.reason,
                "dead letter"
            );
        }
        if letter.cost() > self.max_bytes {
            // Keep the record, not the frame: one letter never takes the whole bound.
            letter.frame = Vec::new();
        }
        letter.info.sequence = self.total;
        self.keep(letter);
        self.total += 1;
        self.unsaved += 1;
        // Release: pairs with the router's Acquire load in `Alerts::due`; the letter itself
        // is read under the lock.
        self.made.store(self.total, Ordering::Release);
    }

    /// The count of letters ever made (the next sequence number), readable without the lock.
    pub fn made(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.made)
    }

    /// The oldest letter held whose sequence number is `sequence` or later.
    pub fn first_from(&self, sequence: u64) -> Option<&DeadLetter> {
        // Ascending, with gaps where letters were taken out to be retried.
        let at = self.letters.partition_point(|l| l.info.sequence < sequence);
        self.letters.get(at)
    }

    /// Up to `max` letters (and at most a page's bytes) from sequence number `from` on, oldest
    /// first, and where the next page starts.
    pub fn page(&self, from: u64, max: usize) -> DeadLetterPage {
        let max = max.clamp(1, PAGE_LETTERS);
        let first = self.letters.front().map_or(self.total, |l| l.info.sequence);
        let skip = from.saturating_sub(first) as usize;
        let mut letters = Vec::new();
        let mut bytes = 0;
        for l in self.letters.iter().skip(skip) {
            if letters.len() == max || (bytes > 0 && bytes + l.cost() > PAGE_BYTES) {
                break;
            }
            bytes += l.cost() - l.frame.len();
            letters.push(l.info.clone());
        }
        let next = letters.last().map_or(from.max(first), |l| l.sequence + 1);
        DeadLetterPage {
            more: next < self.total,
            next,
            letters,
            total: self.total,
            evicted: self.evicted,
        }
    }

    /// Letters ever added.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Letters dropped because the queue was full (in count or bytes).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Letters held now.
    pub fn len(&self) -> usize {
        self.letters.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentbus::{MessageType, RouteKind};

    fn letter(at_ns: u64, frame: usize) -> DeadLetter {
        DeadLetter {
            info: DeadLetterInfo {
                sequence: 0,
                message_id: 1,
                message_type: MessageType::Notification,
                route: RouteKind::Agent,
                source_slot: 0,
                destination_slot: None,
                reason: "test".into(),
                at_ns,
                frame_len: frame as u32,
                retries: 0,
            },
            frame: vec![0; frame],
        }
    }

    #[test]
    fn bytes_are_bounded_and_the_oldest_go_first() {
        let mut q = DeadLetterQueue::new(1_000_000, 1 << 20);
        for i in 0..1000 {
            q.push(letter(i, 30_000));
        }
        assert!(q.bytes() <= 1 << 20, "{} bytes held", q.bytes());
        assert_eq!(q.total(), 1000);
        assert_eq!(q.evicted() as usize + q.len(), 1000);
        let page = q.page(0, 10);
        assert_eq!(page.letters[0].sequence, q.evicted(), "oldest kept first");
        // A frame larger than the whole bound keeps its record only.
        q.push(letter(0, 2 << 20));
        assert!(q.bytes() <= 1 << 20);
    }

    #[test]
    fn pages_cover_every_letter_once() {
        let mut q = DeadLetterQueue::new(100_000, 1 << 30);
        for i in 0..5000 {
            q.push(letter(i, 10));
        }
        let mut from = 0;
        let mut seen = Vec::new();
        loop {
            let page = q.page(from, 700);
            seen.extend(page.letters.iter().map(|l| l.sequence));
            from = page.next;
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, (0..5000).collect::<Vec<u64>>());
    }

    #[test]
    fn log_lines_are_limited_per_second_and_the_rest_counted() {
        let mut l = LogLimit::default();
        let written = (0..100).filter(|_| l.admit(5).0).count();
        assert_eq!(written, LOG_LINES_PER_SECOND as usize);
        assert_eq!(l.admit(1_000_000_005), (true, 90));
    }
}
