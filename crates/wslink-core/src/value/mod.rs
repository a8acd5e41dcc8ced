//! The dynamic value that travels in wslink messages.
//!
//! wslink payloads are msgpack (2.x) or JSON plus binary attachments (1.x).
//! [`Value`] covers both without loss: integers keep their full `i64`/`u64`
//! range, `f32` and `f64` stay distinct, and binary data has its own variant
//! backed by [`Bytes`], so cloning a value that holds a 100 MiB frame for
//! several clients shares the buffer instead of copying it.

mod de;
mod integer;
mod ser;

use std::fmt;

use bytes::Bytes;

pub use de::{from_value, ValueError};
pub use integer::Integer;
pub use ser::to_value;

/// Key-value pairs in wire order. Keys are values because msgpack allows any
/// key type; wslink itself only ever sends strings.
pub type Map = Vec<(Value, Value)>;

/// A wslink value: what msgpack can carry, with binary kept apart from text.
///
/// ```
/// use wslink_core::Value;
/// use bytes::Bytes;
///
/// let frame = Value::map([
///     ("width", Value::from(640)),
///     ("pixels", Value::from(Bytes::from_static(b"\x00\x01"))),
/// ]);
/// assert_eq!(frame.get("width").and_then(Value::as_u64), Some(640));
/// assert!(frame.get("pixels").unwrap().as_bytes().is_some());
/// ```
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// msgpack `nil`, JSON `null`.
    #[default]
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer anywhere in `i64::MIN..=u64::MAX`.
    Int(Integer),
    /// A single-precision float (msgpack `float 32`).
    F32(f32),
    /// A double-precision float.
    F64(f64),
    /// UTF-8 text.
    Str(String),
    /// Binary data: msgpack `bin` in 2.x, an attachment in 1.x.
    Bin(Bytes),
    /// An ordered list.
    Array(Vec<Value>),
    /// Key-value pairs, in the order they were written.
    Map(Map),
    /// A msgpack extension (type tag and data); JSON cannot carry it.
    Ext(i8, Bytes),
}

impl Value {
    /// Builds a map from string keys, keeping their order.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// Looks up a string key in a map; `None` for other values.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Looks up an element of an array.
    pub fn index(&self, i: usize) -> Option<&Value> {
        match self {
            Value::Array(items) => items.get(i),
            _ => None,
        }
    }

    /// `true` for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer as `i64`, if it is an integer in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => i.as_i64(),
            _ => None,
        }
    }

    /// The integer as `u64`, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => i.as_u64(),
            _ => None,
        }
    }

    /// Any number as `f64` (integers may round).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(i.as_f64()),
            Value::F32(f) => Some(f64::from(*f)),
            Value::F64(f) => Some(*f),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The binary data, if this is binary.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::F32(_) | Value::F64(_) => "float",
            Value::Str(_) => "string",
            Value::Bin(_) => "binary",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "extension",
        }
    }

    /// Visits every binary value, depth first, in wire order.
    pub fn for_each_binary(&self, f: &mut impl FnMut(&Bytes)) {
        match self {
            Value::Bin(b) => f(b),
            Value::Array(items) => items.iter().for_each(|v| v.for_each_binary(f)),
            Value::Map(entries) => entries.iter().for_each(|(k, v)| {
                k.for_each_binary(f);
                v.for_each_binary(f)
            }),
            _ => {}
        }
    }
}

impl fmt::Debug for Value {
    // Binary is summarised: dumping a megabyte frame into a log helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::F32(x) => write!(f, "{x:?}f32"),
            Value::F64(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bin(b) if b.len() <= 16 => write!(f, "Bin({:02x?})", &b[..]),
            Value::Bin(b) => write!(f, "Bin({} bytes)", b.len()),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Ext(t, b) => write!(f, "Ext({t}, {} bytes)", b.len()),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(Integer::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F32(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Bin(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bin(Bytes::from(v))
    }
}
impl From<Integer> for Value {
    fn from(v: Integer) -> Self {
        Value::Int(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::Array(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}
impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Self {
        Value::Array(iter.into_iter().collect())
    }
}
