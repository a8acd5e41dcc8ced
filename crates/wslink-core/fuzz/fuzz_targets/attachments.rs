//! Drives the 1.x `AttachmentTable` (and `AttachmentKeys`) with arbitrary
//! operations and checks it against a model of wslink's pairing rule: each
//! binary frame belongs to the oldest key announced and not yet delivered,
//! and a message takes the bytes of the keys it names, once.
//! - never panics; every error is justified and leaves the table unchanged
//!   (a header refused part-way keeps the keys before the bad one);
//! - announced keys and held bytes never exceed their limits, and held bytes
//!   are exactly the bytes received and not yet claimed or dropped;
//! - `claim` replaces exactly what the model says; in particular a key with
//!   no bytes stays a string, and map keys are never touched;
//! - `is_attachment_key` agrees with a reference for `wslink_bin[0-9]{1,20}`,
//!   and a refused key is reported whole, or cut to 64 bytes and `...`;
//!   `AttachmentKeys` hands out `wslink_bin0`, `wslink_bin1`, ...
//!
//! Input layout: byte 0 = the maximum of announced keys (low 4 bits), byte 1
//! = the held-bytes limit in units of 8 bytes, then operations, one byte
//! each (modulo 6) followed by its operands:
//! - 0 header: a count byte (modulo 4), then that many keys;
//! - 1 binary: a length byte, then the bytes;
//! - 2 claim: a value (see `value`);
//! - 3 discard_unclaimed; 4 clear;
//! - 5 keys: a count byte (modulo 8) of `next_key` calls.
//!
//! A key is one byte `b`: below 0x80 `wslink_bin{b % 8}`, below 0xa0
//! `wslink_bin0{b % 8}` (a valid key, distinct from `wslink_bin{b % 8}`),
//! below 0xc0 `wslink_bin` and `b & 0x1f` nines (0 to 31 digits, across the
//! 20-digit limit), else `b & 0x3f` raw bytes as a string (invalid UTF-8
//! replaced).

#![no_main]

mod common;

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use common::reported_key;
use libfuzzer_sys::fuzz_target;
use wslink_core::attachments::{
    is_attachment_key, AttachmentError, AttachmentKeys, AttachmentLimits, AttachmentTable,
};
use wslink_core::Value;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn key(&mut self) -> String {
        let b = self.byte().unwrap_or(0);
        match b {
            0..=0x7f => format!("wslink_bin{}", b % 8),
            0x80..=0x9f => format!("wslink_bin0{}", b % 8),
            0xa0..=0xbf => format!("wslink_bin{}", "9".repeat(usize::from(b & 0x1f))),
            _ => String::from_utf8_lossy(self.take(usize::from(b & 0x3f))).into_owned(),
        }
    }

    /// A small value tree: strings are keys (see above) so that claims hit.
    fn value(&mut self, depth: usize) -> Value {
        let Some(b) = self.byte() else {
            return Value::Nil;
        };
        match b % 6 {
            0 => Value::Str(self.key()),
            1 => Value::from(b),
            2 => {
                let n = usize::from(self.byte().unwrap_or(0) % 8);
                Value::Bin(Bytes::copy_from_slice(self.take(n)))
            }
            3 if depth < 4 => {
                let n = self.byte().unwrap_or(0) % 4;
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            4 if depth < 4 => {
                let n = self.byte().unwrap_or(0) % 4;
                Value::Map(
                    (0..n)
                        .map(|_| (self.value(depth + 1), self.value(depth + 1)))
                        .collect(),
                )
            }
            _ => Value::Nil,
        }
    }
}

/// The reference for `is_attachment_key`: `wslink_bin[0-9]{1,20}`, whole
/// string (20 digits: any u64 counter).
fn reference_is_key(s: &str) -> bool {
    let b = s.as_bytes();
    (11..=30).contains(&b.len())
        && &b[..10] == b"wslink_bin"
        && b[10..].iter().all(u8::is_ascii_digit)
}

#[derive(Default)]
struct Model {
    announced: VecDeque<String>,
    received: HashMap<String, Bytes>,
}

impl Model {
    fn held(&self) -> usize {
        self.received.values().map(Bytes::len).sum()
    }

    fn claim(&mut self, value: &mut Value) {
        match value {
            Value::Str(s) => {
                if let Some(data) = self.received.remove(s.as_str()) {
                    *value = Value::Bin(data);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.claim(v)),
            Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| self.claim(v)),
            _ => {}
        }
    }
}

/// Strings of `before` that had no bytes are still the same strings.
fn unclaimed_stay(before: &Value, after: &Value, had_bytes: &HashMap<String, Bytes>) {
    match (before, after) {
        (Value::Str(s), after) if !had_bytes.contains_key(s.as_str()) => {
            assert_eq!(after, before, "a key with no bytes must stay a string");
        }
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .for_each(|(a, b)| unclaimed_stay(a, b, had_bytes)),
        (Value::Map(a), Value::Map(b)) => a.iter().zip(b).for_each(|((ka, va), (kb, vb))| {
            assert_eq!(ka, kb, "map keys are never claimed");
            unclaimed_stay(va, vb, had_bytes)
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(a), Some(b)) = (input.byte(), input.byte()) else {
        return;
    };
    let limits = AttachmentLimits {
        max_announced: usize::from(a & 15),
        max_held_bytes: usize::from(b) * 8,
    };
    let mut table = AttachmentTable::new(limits);
    let mut model = Model::default();
    let keys = AttachmentKeys::new();
    let mut next_key = 0u64;

    while let Some(op) = input.byte() {
        match op % 6 {
            0 => {
                let n = input.byte().unwrap_or(0) % 4;
                let header: Vec<String> = (0..n).map(|_| input.key()).collect();
                let result = table.on_header(header.clone());
                let mut expected = Ok(());
                for key in header {
                    assert_eq!(is_attachment_key(&key), reference_is_key(&key), "{key:?}");
                    if !reference_is_key(&key) {
                        expected = Err(AttachmentError::BadKey {
                            key: reported_key(&key),
                        });
                        break;
                    }
                    if model.announced.len() >= limits.max_announced {
                        expected = Err(AttachmentError::TooManyAnnounced {
                            limit: limits.max_announced,
                        });
                        break;
                    }
                    model.announced.push_back(key);
                }
                assert_eq!(result, expected);
            }
            1 => {
                let n = usize::from(input.byte().unwrap_or(0));
                let data = Bytes::copy_from_slice(input.take(n));
                let held = model.held();
                match table.on_binary(data.clone()) {
                    Ok(()) => {
                        assert!(held + data.len() <= limits.max_held_bytes);
                        let key = model.announced.pop_front().expect("an announced key");
                        model.received.insert(key, data);
                    }
                    Err(AttachmentError::UnannouncedBinary { len }) => {
                        assert_eq!(len, data.len());
                        assert!(model.announced.is_empty());
                    }
                    Err(AttachmentError::TooManyBytes { held: h, limit }) => {
                        assert_eq!((h, limit), (held + data.len(), limits.max_held_bytes));
                        assert!(h > limit);
                    }
                    Err(e) => panic!("binary frame refused with {e:?}"),
                }
            }
            2 => {
                let before = input.value(0);
                let had_bytes = model.received.clone();
                let mut got = before.clone();
                table.claim(&mut got);
                let mut expected = before.clone();
                model.claim(&mut expected);
                assert_eq!(got, expected, "claim of {before:?}");
                unclaimed_stay(&before, &got, &had_bytes);
            }
            3 => {
                table.discard_unclaimed();
                model.received.clear();
            }
            4 => {
                table.clear();
                model = Model::default();
            }
            _ => {
                for _ in 0..input.byte().unwrap_or(0) % 8 {
                    let key = keys.next_key();
                    assert_eq!(key, format!("wslink_bin{next_key}"));
                    assert!(is_attachment_key(&key));
                    next_key += 1;
                }
            }
        }
        assert_eq!(table.announced(), model.announced.len());
        assert_eq!(table.held_bytes(), model.held());
        assert!(table.announced() <= limits.max_announced);
        assert!(table.held_bytes() <= limits.max_held_bytes);
    }
});
