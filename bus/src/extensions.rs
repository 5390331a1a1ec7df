//! The extension block: what a message carries only when it is set (trace context, reply-to,
//! metadata), between the fixed [`crate::FrameHeader`] and the payload.
//!
//! Present only when [`crate::Flags::EXTENDED`] is set. Wire layout, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 2 | block length `u16`: a multiple of 16, these two bytes included |
//! | ... | items: a `u8` tag, a `u16` length, that many bytes |
//! | ... | zeros to the block's end (a zero tag ends the items) |
//!
//! Items: **1** trace context (16-byte trace id, 8-byte span id); **2** reply-to (UTF-8);
//! **3** one metadata entry (a `u8` key length, the key, the value; both UTF-8), in key order.
//! A message with none of them has no block and costs nothing. The router copies the block as
//! it is; readers check it once, when the header is parsed (`check`), and read it in place.

use std::collections::BTreeMap;

use crate::error::{DecodeError, EncodeError};
use crate::header::TraceContext;

/// Item tag: the trace context.
const TAG_TRACE: u8 = 1;
/// Item tag: where replies go.
const TAG_REPLY_TO: u8 = 2;
/// Item tag: one metadata entry.
const TAG_METADATA: u8 = 3;
/// Bytes of the trace item's data.
const TRACE_LEN: usize = 24;
/// Bytes in front of each item's data: tag and length.
const ITEM_HEAD: usize = 3;
/// The largest block: the biggest multiple of 16 a `u16` holds.
pub const MAX_BLOCK: usize = 0xFFF0;
/// The longest metadata key (its length travels in one byte).
pub const MAX_KEY: usize = 255;

/// What a message carries beside its payload when set, borrowed from the message that is sent.
#[derive(Debug, Clone, Copy)]
pub struct Extras<'a> {
    /// Trace context (all zeros: not traced).
    pub trace: TraceContext,
    /// Where replies should go, when not to the sender.
    pub reply_to: Option<&'a str>,
    /// Free-form string metadata.
    pub metadata: Option<&'a BTreeMap<String, String>>,
}

impl Extras<'_> {
    /// Nothing optional: no extension block.
    pub const NONE: Extras<'static> = Extras {
        trace: TraceContext {
            trace_id: [0; 16],
            span_id: [0; 8],
        },
        reply_to: None,
        metadata: None,
    };

    fn entries(&self) -> impl Iterator<Item = (&String, &String)> {
        self.metadata.into_iter().flatten()
    }

    /// Bytes of the block these extras make: 0 when nothing is set, else a multiple of 16.
    pub fn block_len(&self) -> Result<usize, EncodeError> {
        let mut used = 0;
        if !self.trace.is_empty() {
            used += ITEM_HEAD + TRACE_LEN;
        }
        if let Some(r) = self.reply_to {
            used += ITEM_HEAD + r.len();
        }
        for (k, v) in self.entries() {
            if k.len() > MAX_KEY {
                return Err(EncodeError::MetadataKeyTooLong {
                    len: k.len(),
                    max: MAX_KEY,
                });
            }
            used += ITEM_HEAD + 1 + k.len() + v.len();
        }
        if used == 0 {
            return Ok(0);
        }
        let len = (2 + used).next_multiple_of(16);
        if len > MAX_BLOCK {
            return Err(EncodeError::ExtrasTooLarge {
                size: len,
                max: MAX_BLOCK,
            });
        }
        Ok(len)
    }

    /// Writes the block into `out`, which is exactly [`Extras::block_len`] bytes (nothing is
    /// written for an empty block).
    ///
    /// # Panics
    /// If `out` is not that long (a caller bug: frames are claimed with room).
    pub fn write(&self, out: &mut [u8]) {
        if out.is_empty() {
            return;
        }
        let len = out.len() as u16;
        out[..2].copy_from_slice(&len.to_le_bytes());
        let mut at = 2;
        let mut item = |out: &mut [u8], tag: u8, parts: &[&[u8]]| {
            let n: usize = parts.iter().map(|p| p.len()).sum();
            out[at] = tag;
            out[at + 1..at + 3].copy_from_slice(&(n as u16).to_le_bytes());
            at += ITEM_HEAD;
            for p in parts {
                out[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
        };
        if !self.trace.is_empty() {
            item(out, TAG_TRACE, &[&self.trace.trace_id, &self.trace.span_id]);
        }
        if let Some(r) = self.reply_to {
            item(out, TAG_REPLY_TO, &[r.as_bytes()]);
        }
        for (k, v) in self.entries() {
            item(
                out,
                TAG_METADATA,
                &[&[k.len() as u8], k.as_bytes(), v.as_bytes()],
            );
        }
        out[at..].fill(0);
    }
}

/// One item read from a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item<'a> {
    Trace(TraceContext),
    ReplyTo(&'a str),
    Metadata(&'a str, &'a str),
}

/// Why an item of an extension block is malformed (reported inside a [`DecodeError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ItemError {
    #[error("item {tag} at byte {at} has no length")]
    NoLength { tag: u8, at: usize },
    #[error("item {tag} of {len} bytes runs past the block")]
    PastBlock { tag: u8, len: usize },
    #[error("{what} is not UTF-8: {source}")]
    NotUtf8 {
        what: &'static str,
        source: std::str::Utf8Error,
    },
    #[error("a metadata key of {len} bytes runs past its item")]
    KeyPastItem { len: usize },
    #[error("unknown item {tag} of {len} bytes")]
    Unknown { tag: u8, len: usize },
}

/// Reads the item at `at` of `block`: `None` at the end of the items, an error for anything
/// malformed. Every access is bounds-checked, so it is safe on bytes a peer rewrites.
fn item_at(block: &[u8], at: usize) -> Result<Option<(Item<'_>, usize)>, ItemError> {
    let Some(&tag) = block.get(at) else {
        return Ok(None);
    };
    if tag == 0 {
        return Ok(None);
    }
    let Some(len) = block.get(at + 1..at + 3) else {
        return Err(ItemError::NoLength { tag, at });
    };
    let n = u16::from_le_bytes([len[0], len[1]]) as usize;
    let start = at + ITEM_HEAD;
    let Some(data) = block.get(start..start + n) else {
        return Err(ItemError::PastBlock { tag, len: n });
    };
    fn text<'b>(b: &'b [u8], what: &'static str) -> Result<&'b str, ItemError> {
        std::str::from_utf8(b).map_err(|source| ItemError::NotUtf8 { what, source })
    }
    let item = match (tag, n) {
        (TAG_TRACE, TRACE_LEN) => {
            let mut t = TraceContext::default();
            t.trace_id.copy_from_slice(&data[..16]);
            t.span_id.copy_from_slice(&data[16..]);
            Item::Trace(t)
        }
        (TAG_REPLY_TO, _) => Item::ReplyTo(text(data, "reply-to")?),
        (TAG_METADATA, 1..) => {
            let k = data[0] as usize;
            let Some(key) = data.get(1..1 + k) else {
                return Err(ItemError::KeyPastItem { len: k });
            };
            Item::Metadata(
                text(key, "a metadata key")?,
                text(&data[1 + k..], "a metadata value")?,
            )
        }
        _ => return Err(ItemError::Unknown { tag, len: n }),
    };
    Ok(Some((item, start + n)))
}

/// Checks the block at the start of `after` (the bytes after the header) and returns its
/// length and trace context.
pub(crate) fn check(after: &[u8]) -> Result<(usize, TraceContext), DecodeError> {
    let bad = |why: String| Err(DecodeError::new(format!("extension block: {why}")));
    if after.len() < 16 {
        return bad(format!("{} bytes, less than a block", after.len()));
    }
    let len = u16::from_le_bytes([after[0], after[1]]) as usize;
    if len < 16 || len % 16 != 0 || len > after.len() {
        return bad(format!(
            "length {len} (a multiple of 16 up to {})",
            after.len()
        ));
    }
    let block = &after[..len];
    let mut trace = TraceContext::default();
    let mut at = 2;
    loop {
        match item_at(block, at) {
            Ok(None) => break,
            Ok(Some((item, next))) => {
                if let Item::Trace(t) = item {
                    trace = t;
                }
                at = next;
            }
            Err(why) => return bad(why.to_string()),
        }
    }
    if at == 2 {
        return bad("no items".into());
    }
    if block[at..].iter().any(|&b| b != 0) {
        return bad(format!("bytes after the items at {at} are not zero"));
    }
    if len != at.next_multiple_of(16) {
        return bad(format!("{len} bytes where its items take {at}"));
    }
    Ok((len, trace))
}

/// A message's extension block, read in place (empty when the message has none).
///
/// It was checked when the header was parsed; reading it again checks every bound once more,
/// so bytes rewritten since (a channel's peer can write its ring) can make an item vanish but
/// never make a read unsafe.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extensions<'a> {
    block: &'a [u8],
}

impl<'a> Extensions<'a> {
    /// The block at `block` (its exact bytes, or empty).
    pub(crate) fn new(block: &'a [u8]) -> Extensions<'a> {
        Extensions { block }
    }

    /// The extension block of `frame`, as its parsed `header` bounds it (empty where the frame
    /// is shorter than the header says, which a parsed header rules out).
    pub fn of(header: &crate::FrameHeader, frame: &'a [u8]) -> Extensions<'a> {
        Extensions::new(
            frame
                .get(crate::HEADER_LEN..header.prefix_len())
                .unwrap_or_default(),
        )
    }

    fn items(&self) -> impl Iterator<Item = Item<'a>> + 'a {
        let block = self.block;
        let mut at = 2;
        std::iter::from_fn(move || match item_at(block, at) {
            Ok(Some((item, next))) => {
                at = next;
                Some(item)
            }
            Ok(None) | Err(_) => None,
        })
    }

    /// The trace context (all zeros when not traced).
    pub fn trace(&self) -> TraceContext {
        self.items()
            .find_map(|i| match i {
                Item::Trace(t) => Some(t),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Where replies should go, when the sender named somewhere other than itself.
    pub fn reply_to(&self) -> Option<&'a str> {
        self.items().find_map(|i| match i {
            Item::ReplyTo(r) => Some(r),
            _ => None,
        })
    }

    /// The metadata entries, in key order.
    pub fn metadata(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.items().filter_map(|i| match i {
            Item::Metadata(k, v) => Some((k, v)),
            _ => None,
        })
    }

    /// The value of metadata key `key`, read in place; `None` if the sender set none.
    pub fn metadata_value(&self, key: &str) -> Option<&'a str> {
        self.metadata().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The metadata, copied out (allocates).
    pub fn metadata_map(&self) -> BTreeMap<String, String> {
        self.metadata()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_map() -> BTreeMap<String, String> {
        [("desk", "equities"), ("venue", "XNAS")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn extras_round_trip_through_a_block() {
        let map = sample_map();
        let extras = Extras {
            trace: TraceContext {
                trace_id: [1; 16],
                span_id: [2; 8],
            },
            reply_to: Some("replies.me"),
            metadata: Some(&map),
        };
        let len = extras.block_len().unwrap();
        assert_eq!(len % 16, 0);
        let mut block = vec![0xAA; len];
        extras.write(&mut block);
        let (checked, trace) = check(&block).unwrap();
        assert_eq!(checked, len);
        assert_eq!(trace, extras.trace);
        let ext = Extensions::new(&block);
        assert_eq!(ext.trace(), extras.trace);
        assert_eq!(ext.reply_to(), Some("replies.me"));
        assert_eq!(ext.metadata_map(), map);
        assert_eq!(ext.metadata_value("venue"), Some("XNAS"));
        assert_eq!(ext.metadata_value("nope"), None);
        assert_eq!(Extras::NONE.block_len().unwrap(), 0);
    }

    #[test]
    fn a_malformed_block_is_refused_with_its_reason() {
        let map = sample_map();
        let extras = Extras {
            reply_to: Some("r"),
            metadata: Some(&map),
            ..Extras::NONE
        };
        let mut good = vec![0; extras.block_len().unwrap()];
        extras.write(&mut good);
        let cases: &[(usize, u8, &str)] = &[
            (0, 17, "length"),
            (2, 9, "unknown item"),
            (3, 200, "runs past"),
            (5, 0xFF, "not UTF-8"),
            (good.len() - 1, 1, "not zero"),
        ];
        for &(at, value, why) in cases {
            let mut bad = good.clone();
            bad[at] = value;
            let err = check(&bad).unwrap_err();
            assert!(err.reason.contains(why), "byte {at}: {err}");
        }
    }

    #[test]
    fn oversized_extras_are_refused_before_anything_is_written() {
        let long_key: BTreeMap<String, String> = [("k".repeat(256), "v".into())].into();
        let e = Extras {
            metadata: Some(&long_key),
            ..Extras::NONE
        };
        assert!(matches!(
            e.block_len(),
            Err(EncodeError::MetadataKeyTooLong { len: 256, .. })
        ));
        let huge: BTreeMap<String, String> = [("k".into(), "v".repeat(70_000))].into();
        let e = Extras {
            metadata: Some(&huge),
            ..Extras::NONE
        };
        assert!(matches!(
            e.block_len(),
            Err(EncodeError::ExtrasTooLarge { .. })
        ));
    }
}
