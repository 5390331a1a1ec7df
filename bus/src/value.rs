//! A JSON-like value that archives: the spec's `Record<string, any>`.
// rkyv's derive generates public `*Resolver` types without Debug; every type written here
// derives Debug, and so do their archived forms.
#![allow(missing_debug_implementations)]

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};

/// null, booleans, numbers, strings, bytes, lists and string-keyed maps.
#[derive(Debug, Clone, PartialEq, Default, Archive, Serialize, Deserialize)]
#[rkyv(serialize_bounds(
    __S: rkyv::ser::Writer + rkyv::ser::Allocator,
    __S::Error: rkyv::rancor::Source,
))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext)))]
#[rkyv(derive(Debug))]
pub enum Value {
    /// No value (the spec's `null`); the default.
    #[default]
    Null,
    /// `true` or `false`; `From<bool>` builds one.
    Bool(bool),
    /// A whole number, 64-bit signed; `From<i64>` builds one (`100i64` in [`crate::record!`]).
    Int(i64),
    /// A 64-bit floating-point number; `From<f64>` builds one.
    Float(f64),
    /// UTF-8 text; `From<&str>` and `From<String>` build one.
    String(String),
    /// Bytes kept as they are, not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// Values in order, each of any kind; `From<Vec<Value>>` builds one.
    List(#[rkyv(omit_bounds)] Vec<Value>),
    /// A map with string keys, in key order.
    Map(#[rkyv(omit_bounds)] BTreeMap<String, Value>),
}

/// A string-keyed map of values: the spec's `Record<string, any>`.
pub type Record = BTreeMap<String, Value>;

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
impl From<Record> for Value {
    fn from(v: Record) -> Self {
        Value::Map(v)
    }
}

/// Builds a [`Record`] from `key => value` pairs: `record! { "qty" => 100i64, "side" => "buy" }`.
#[macro_export]
macro_rules! record {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut r = $crate::Record::new();
        $(r.insert(::std::string::String::from($k), $crate::Value::from($v));)*
        r
    }};
}
