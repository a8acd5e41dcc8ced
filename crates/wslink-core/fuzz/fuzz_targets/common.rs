//! Helpers shared by the fuzz targets (each target is its own crate and
//! uses only some of them).

#![allow(dead_code)]

use wslink_core::{Message, Value};

/// Structural equality with floats compared bit for bit: a NaN equals
/// itself, and 0.0 differs from -0.0. `Value`'s own `PartialEq` follows IEEE
/// rules instead, under which a message holding a NaN never equals itself.
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Map(x), Value::Map(y)) => same_map(x, y),
        (Value::Array(_) | Value::Map(_) | Value::F32(_) | Value::F64(_), _) => false,
        (a, b) => a == b,
    }
}

fn same_map(x: &[(Value, Value)], y: &[(Value, Value)]) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y)
            .all(|((ka, va), (kb, vb))| same_value(ka, kb) && same_value(va, vb))
}

/// [`same_value`] for whole messages.
pub fn same_message(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Request(x), Message::Request(y)) => {
            x.id == y.id
                && x.method == y.method
                && x.args.len() == y.args.len()
                && x.args.iter().zip(&y.args).all(|(a, b)| same_value(a, b))
                && same_map(&x.kwargs, &y.kwargs)
        }
        (Message::Result { id: ia, result: ra }, Message::Result { id: ib, result: rb }) => {
            ia == ib && same_value(ra, rb)
        }
        (Message::Error { id: ia, error: ea }, Message::Error { id: ib, error: eb }) => {
            ia == ib
                && ea.code == eb.code
                && ea.message == eb.message
                && match (&ea.data, &eb.data) {
                    (Some(a), Some(b)) => same_value(a, b),
                    (None, None) => true,
                    _ => false,
                }
        }
        (Message::AttachmentHeader { keys: a }, Message::AttachmentHeader { keys: b }) => a == b,
        _ => false,
    }
}

/// How deeply arrays and maps nest in `v` (0 for a scalar, 1 for `[1]`),
/// map keys included: what a decoder's depth limit counts.
pub fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| nesting(k).max(nesting(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Splits `[u16 little-endian header][payload]` records. The payload length
/// is `header & mask`; a record cut short by the end of the input keeps what
/// is there, so truncation is exercised too. A lone trailing byte is ignored.
pub fn records(mut rest: &[u8], mask: u16) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let [lo, hi, ref tail @ ..] = *rest else {
            return None;
        };
        let header = u16::from_le_bytes([lo, hi]);
        let n = usize::from(header & mask).min(tail.len());
        let (payload, tail) = tail.split_at(n);
        rest = tail;
        Some((header, payload))
    })
}

/// What an error reports of a refused attachment key: the key itself, or
/// its first 64 bytes (cut at a character boundary) and `...` when longer.
pub fn reported_key(key: &str) -> String {
    if key.len() <= 64 {
        return key.to_owned();
    }
    let end = (0..=64)
        .rev()
        .find(|&i| key.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &key[..end])
}
