//! How deep a message may nest, and the checks that keep encoding and validating it within a
//! thread's stack.
//!
//! rkyv serializes, validates (bytecheck) and deserializes a recursive type by recursion, one
//! set of stack frames per level. A [`Value`] nested 12,000 lists deep (a 190 KB body) overflowed
//! a 2 MiB thread stack while a receiver validated it (about 20,000 levels in a release build),
//! and one 10,000 levels deep while it was serialized: a stack overflow aborts the whole
//! process, and a receiver validates whatever any peer sends. So both ends bound it:
//! - the encoder refuses a payload whose values nest lists and maps more than
//!   [`MAX_VALUE_DEPTH`] deep ([`EncodeError::TooDeep`]) before it serializes anything;
//! - the decoder validates an archive with rkyv's subtree depth limit: pointers followed more
//!   than [`MAX_ARCHIVE_DEPTH`] deep fail validation (a [`DecodeError`]) before the recursion
//!   goes any deeper, whatever the bytes claim.

use std::num::NonZeroUsize;

use rkyv::rancor;
use rkyv::validation::archive::ArchiveValidator;
use rkyv::validation::shared::SharedValidator;
use rkyv::validation::Validator;

use crate::body::Payload;
use crate::error::{DecodeError, EncodeError};
use crate::value::{Record, Value};

/// The most levels lists and maps may nest in one [`Value`] of a payload: a scalar is 0 deep,
/// `[1]` is 1 deep, `{"a": [1]}` is 2 deep. A payload with a deeper value is refused by the
/// encoder ([`EncodeError::TooDeep`]).
pub const MAX_VALUE_DEPTH: usize = 64;

/// The most pointers deep a receiver follows while it validates an archive (a spec payload's or
/// a typed value's): each list, each level of a map's B-tree, each string or byte vector kept
/// out of line is one. Every payload the encoder accepts is far within it (values
/// [`MAX_VALUE_DEPTH`] deep, maps of tens of thousands of entries at every level, in the largest
/// lane agentd allows), and validating this deep takes well under 200 KiB of stack.
pub const MAX_ARCHIVE_DEPTH: usize = 512;

impl Value {
    /// Whether lists and maps nest more than `levels` deep in this value (see
    /// [`MAX_VALUE_DEPTH`] for how depth counts). It looks no more than `levels + 1` deep, so it
    /// is safe on a value of any depth.
    pub fn nests_deeper_than(&self, levels: usize) -> bool {
        match self {
            Value::List(items) => {
                levels == 0 || items.iter().any(|v| v.nests_deeper_than(levels - 1))
            }
            Value::Map(map) => levels == 0 || map.values().any(|v| v.nests_deeper_than(levels - 1)),
            _ => false,
        }
    }
}

/// Refuses a payload with a value nested more than [`MAX_VALUE_DEPTH`] deep.
pub(crate) fn check_payload(payload: &Payload) -> Result<(), EncodeError> {
    let too_deep = |v: &Value| v.nests_deeper_than(MAX_VALUE_DEPTH);
    let record = |r: &Record| r.values().any(too_deep);
    let deep = match payload {
        Payload::TaskRequest(t) => {
            record(&t.parameters) || t.constraints.iter().any(|c| too_deep(&c.value))
        }
        Payload::TaskResponse(t) => {
            t.result.as_ref().is_some_and(too_deep)
                || t.error
                    .as_ref()
                    .and_then(|e| e.details.as_ref())
                    .is_some_and(too_deep)
        }
        Payload::ResourceRequest(r) => record(&r.parameters),
        Payload::Coordination(c) => {
            record(&c.coordination_data)
                || c.proposed_action
                    .as_ref()
                    .is_some_and(|a| record(&a.parameters))
        }
        Payload::Notification(n) => record(&n.data),
        Payload::TaskUpdate(_)
        | Payload::StatusUpdate(_)
        | Payload::ResourceResponse(_)
        | Payload::Heartbeat(_)
        | Payload::Error(_)
        | Payload::Raw(_) => false,
    };
    if deep {
        Err(EncodeError::TooDeep {
            max: MAX_VALUE_DEPTH,
        })
    } else {
        Ok(())
    }
}

/// The validator a spec payload's archive is checked with: rkyv's high-level one, limited to
/// [`MAX_ARCHIVE_DEPTH`].
pub(crate) fn payload_validator(bytes: &[u8]) -> Validator<ArchiveValidator<'_>, SharedValidator> {
    Validator::new(
        ArchiveValidator::with_max_depth(bytes, NonZeroUsize::new(MAX_ARCHIVE_DEPTH)),
        SharedValidator::new(),
    )
}

/// The validator a typed value's archive is checked with: rkyv's low-level one (no shared
/// pointers), limited to [`MAX_ARCHIVE_DEPTH`].
pub(crate) fn typed_validator(bytes: &[u8]) -> Validator<ArchiveValidator<'_>, ()> {
    Validator::new(
        ArchiveValidator::with_max_depth(bytes, NonZeroUsize::new(MAX_ARCHIVE_DEPTH)),
        (),
    )
}

/// Why rkyv refused an archive: its error and the first of the traces it added, and whether it
/// was refused for nesting past [`MAX_ARCHIVE_DEPTH`] (which rkyv reports only as a trace, and
/// `rancor::Error` does not keep in a release build).
#[derive(Debug)]
pub(crate) struct CheckError {
    reason: String,
    context: Vec<String>,
    too_deep: bool,
}

/// Traces kept for the message: the innermost few say what was being checked.
const TRACES_KEPT: usize = 3;

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)?;
        for c in &self.context {
            write!(f, "; {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckError {}

impl rancor::Trace for CheckError {
    fn trace<R>(mut self, trace: R) -> Self
    where
        R: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
    {
        let text = trace.to_string();
        // rkyv's wording for its subtree depth limit (pinned by the nesting tests).
        self.too_deep |= text.contains("maximum subtree depth");
        if self.context.len() < TRACES_KEPT {
            self.context.push(text);
        }
        self
    }
}

impl rancor::Source for CheckError {
    fn new<T: std::error::Error + Send + Sync + 'static>(source: T) -> Self {
        CheckError {
            reason: source.to_string(),
            context: Vec::new(),
            too_deep: false,
        }
    }
}

impl CheckError {
    /// As a [`DecodeError`] about `what` (the body, ...), saying so when it was nested too deep.
    pub(crate) fn into_decode_error(self, what: &str) -> DecodeError {
        if self.too_deep {
            DecodeError::new(format!(
                "{what} nests pointers more than {MAX_ARCHIVE_DEPTH} deep, past what a receiver \
                 validates (a value may nest lists and maps {MAX_VALUE_DEPTH} deep, and \
                 encoders refuse deeper ones)"
            ))
        } else {
            DecodeError::new(format!("{what} failed validation: {self}"))
        }
    }
}
