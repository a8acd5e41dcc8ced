//! Values across the boundary: JSON text plus binary buffers, binary values
//! standing in the JSON as `{"$binary": N}` (the N-th buffer).

use std::ffi::{c_char, CString};
use std::fmt::Write as _;

use bytes::Bytes;
use wslink_core::Value;

use crate::error::{c_string, Failure};

/// A run of bytes: `len` bytes at `data`. `data` may be NULL when `len` is 0.
///
/// Given to the library (call arguments), the bytes are copied before the
/// function returns. Returned by the library (inside a `wslink_payload`),
/// they belong to that payload.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct wslink_buffer {
    /// The first byte.
    pub data: *const u8,
    /// How many bytes.
    pub len: usize,
}

/// A value as C sees it: JSON text in which every binary value is replaced
/// by `{"$binary": N}`, N indexing `buffers` (from 0). A msgpack extension
/// (2.x only) comes as `{"$ext": TYPE, "$binary": N}`.
///
/// A call's result (`wslink_call`) is owned by the caller and freed with
/// `wslink_payload_free()`. A published message given to a subscription
/// callback is lent for the callback's duration only: copy what you keep.
#[repr(C)]
#[derive(Debug)]
pub struct wslink_payload {
    /// UTF-8 JSON, NUL-terminated (the JSON itself never holds a NUL byte:
    /// JSON escapes it).
    pub json: *const c_char,
    /// Bytes of `json` before its NUL.
    pub json_len: usize,
    /// The binary values, in the order their placeholders are numbered
    /// (NULL when `buffer_count` is 0).
    pub buffers: *const wslink_buffer,
    /// How many buffers.
    pub buffer_count: usize,
}

/// A payload and what its pointers point into. `view` comes first, so a
/// pointer to this is a pointer to the public struct.
#[repr(C)]
pub(crate) struct OwnedPayload {
    view: wslink_payload,
    _json: CString,
    _buffers: Vec<wslink_buffer>,
    /// The binaries themselves: slices of the received message, not copies.
    _keep: Vec<Bytes>,
}

impl OwnedPayload {
    pub(crate) fn new(value: &Value) -> Box<OwnedPayload> {
        let mut keep = Vec::new();
        let mut json = String::new();
        write_json(value, &mut json, &mut Some(&mut keep));
        let json_len = json.len();
        let json = c_string(json);
        let buffers: Vec<wslink_buffer> = keep
            .iter()
            .map(|b| wslink_buffer {
                data: b.as_ptr(),
                len: b.len(),
            })
            .collect();
        Box::new(OwnedPayload {
            view: wslink_payload {
                json: json.as_ptr(),
                json_len,
                buffers: if buffers.is_empty() {
                    std::ptr::null()
                } else {
                    buffers.as_ptr()
                },
                buffer_count: buffers.len(),
            },
            _json: json,
            _buffers: buffers,
            _keep: keep,
        })
    }

    pub(crate) fn view(&self) -> &wslink_payload {
        &self.view
    }

    /// Hands the payload to C.
    pub(crate) fn into_raw(self: Box<Self>) -> *mut wslink_payload {
        Box::into_raw(self).cast()
    }

    /// Takes back a payload handed out by [`OwnedPayload::into_raw`].
    ///
    /// # Safety
    ///
    /// `p` comes from `into_raw` and was not freed yet.
    pub(crate) unsafe fn from_raw(p: *mut wslink_payload) -> Box<OwnedPayload> {
        Box::from_raw(p.cast())
    }
}

/// `value` as JSON, binaries shown as `{"$binary": N}` with nothing kept:
/// for error data, where buffers have nowhere to go.
pub(crate) fn to_json_lossy(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out, &mut None);
    out
}

/// Writes `value` as JSON; binaries become placeholders and, when `keep`
/// is given, go there.
fn write_json(value: &Value, out: &mut String, keep: &mut Option<&mut Vec<Bytes>>) {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let n = i128::from(*i);
            let _ = write!(out, "{n}");
        }
        // serde_json writes the shortest text that reads back the same
        // number, and `null` for NaN and infinities (JSON has neither).
        Value::F32(f) => out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into())),
        Value::F64(f) => out.push_str(&serde_json::to_string(f).unwrap_or_else(|_| "null".into())),
        Value::Str(s) => write_str(s, out),
        Value::Bin(b) => {
            let n = hold(b, keep);
            let _ = write!(out, "{{\"$binary\":{n}}}");
        }
        Value::Ext(tag, b) => {
            let n = hold(b, keep);
            let _ = write!(out, "{{\"$ext\":{tag},\"$binary\":{n}}}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out, keep);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match k {
                    Value::Str(s) => write_str(s, out),
                    // msgpack allows any key; JSON only strings. A key
                    // such as 1 or true becomes its JSON text, as Python's
                    // json module writes it.
                    other => {
                        let mut text = String::new();
                        write_json(other, &mut text, &mut None);
                        write_str(&text, out);
                    }
                }
                out.push(':');
                write_json(v, out, keep);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    // Serializing a string into JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn hold(b: &Bytes, keep: &mut Option<&mut Vec<Bytes>>) -> usize {
    match keep {
        Some(list) => {
            list.push(b.clone());
            list.len() - 1
        }
        None => 0,
    }
}

/// The caller's arguments being read: JSON texts whose `{"$binary": N}`
/// (and `{"$ext": T, "$binary": N}`) placeholders take buffer N. Every
/// buffer must be referred to at least once, in one text or another.
pub(crate) struct Inputs<'a> {
    buffers: &'a [Bytes],
    used: Vec<bool>,
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(buffers: &'a [Bytes]) -> Self {
        Inputs {
            buffers,
            used: vec![false; buffers.len()],
        }
    }

    /// Reads one JSON text (`what` names it in messages).
    pub(crate) fn parse(&mut self, json: &str, what: &str) -> Result<Value, Failure> {
        let mut value: Value = serde_json::from_str(json)
            .map_err(|e| Failure::invalid(format!("{what} is not valid JSON: {e}")))?;
        substitute(&mut value, self.buffers, &mut self.used, what)?;
        Ok(value)
    }

    /// Fails if a buffer was given that no placeholder refers to.
    pub(crate) fn finish(self) -> Result<(), Failure> {
        match self.used.iter().position(|u| !u) {
            None => Ok(()),
            Some(unused) => Err(Failure::invalid(format!(
                "buffer {unused} is not referred to: put {{\"$binary\": {unused}}} where it goes in the arguments"
            ))),
        }
    }
}

/// The placeholder this map is, if it is one: `(buffer index, extension type)`.
fn placeholder(entries: &[(Value, Value)]) -> Option<(Option<u64>, Option<i64>)> {
    let mut index = None;
    let mut ext = None;
    for (k, v) in entries {
        match k.as_str()? {
            "$binary" => index = Some(v.as_u64()),
            "$ext" => ext = Some(v.as_i64()),
            _ => return None,
        }
    }
    let index = index?;
    match ext {
        None => Some((index, None)),
        Some(t) => Some((index, Some(t.unwrap_or(i64::MIN)))),
    }
}

fn substitute(
    value: &mut Value,
    buffers: &[Bytes],
    used: &mut [bool],
    what: &str,
) -> Result<(), Failure> {
    match value {
        Value::Array(items) => {
            for item in items {
                substitute(item, buffers, used, what)?;
            }
        }
        Value::Map(entries) => {
            if let Some((index, ext)) = placeholder(entries) {
                let count = buffers.len();
                let n = index
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n < count)
                    .ok_or_else(|| {
                        Failure::invalid(format!(
                            "{what}: a \"$binary\" placeholder must be a buffer index below {count} (the buffers given)"
                        ))
                    })?;
                used[n] = true;
                let bytes = buffers[n].clone();
                *value = match ext {
                    None => Value::Bin(bytes),
                    Some(t) => {
                        let tag = i8::try_from(t).map_err(|_| {
                            Failure::invalid(format!(
                                "{what}: \"$ext\" must be an integer from -128 to 127"
                            ))
                        })?;
                        Value::Ext(tag, bytes)
                    }
                };
                return Ok(());
            }
            for (k, v) in entries {
                substitute(k, buffers, used, what)?;
                substitute(v, buffers, used, what)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binaries_become_numbered_placeholders_in_order() {
        let v = Value::map([
            ("a", Value::from(Bytes::from_static(b"one"))),
            (
                "b",
                Value::from(vec![
                    Value::from(1),
                    Value::from(Bytes::from_static(b"two")),
                ]),
            ),
            ("c", Value::Ext(5, Bytes::from_static(b"x"))),
        ]);
        let p = OwnedPayload::new(&v);
        let json = unsafe { std::ffi::CStr::from_ptr(p.view().json) }
            .to_str()
            .unwrap();
        assert_eq!(
            json,
            r#"{"a":{"$binary":0},"b":[1,{"$binary":1}],"c":{"$ext":5,"$binary":2}}"#
        );
        assert_eq!(p.view().json_len, json.len());
        assert_eq!(p.view().buffer_count, 3);
        let second = unsafe { *p.view().buffers.add(1) };
        assert_eq!(
            unsafe { std::slice::from_raw_parts(second.data, second.len) },
            b"two"
        );
    }

    fn from_json(json: &str, buffers: &[Bytes], what: &str) -> Result<Value, Failure> {
        let mut inputs = Inputs::new(buffers);
        let value = inputs.parse(json, what)?;
        inputs.finish()?;
        Ok(value)
    }

    #[test]
    fn json_keeps_integers_exact_and_key_order() {
        let v: Value = from_json(
            r#"{"z": 18446744073709551615, "a": -9223372036854775808, "f": 0.1}"#,
            &[],
            "x",
        )
        .unwrap();
        assert_eq!(
            to_json_lossy(&v),
            r#"{"z":18446744073709551615,"a":-9223372036854775808,"f":0.1}"#
        );
    }

    #[test]
    fn placeholders_become_binaries_and_every_buffer_must_be_used() {
        let bufs = [Bytes::from_static(b"p"), Bytes::from_static(b"q")];
        let v = from_json(
            r#"[{"$binary": 1}, {"k": {"$binary": 0}}, {"$binary": 1}]"#,
            &bufs,
            "args",
        )
        .unwrap();
        assert_eq!(v.index(0).and_then(Value::as_bytes).unwrap().as_ref(), b"q");
        assert_eq!(
            v.index(1)
                .unwrap()
                .get("k")
                .and_then(Value::as_bytes)
                .unwrap()
                .as_ref(),
            b"p"
        );
        let e = from_json(r#"[{"$binary": 2}]"#, &bufs, "args").unwrap_err();
        assert!(e.message.contains("below 2"), "{}", e.message);
        let e = from_json(r#"[{"$binary": 0}]"#, &bufs, "args").unwrap_err();
        assert!(
            e.message.contains("buffer 1 is not referred to"),
            "{}",
            e.message
        );
        let e = from_json(r#"[{"$binary": "0"}]"#, &bufs[..1], "args").unwrap_err();
        assert!(e.message.contains("buffer index"), "{}", e.message);
        let e = from_json("[1,", &[], "args").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
    }

    #[test]
    fn non_string_keys_and_odd_floats_still_make_json() {
        let v = Value::Map(vec![
            (Value::from(1), Value::F64(f64::NAN)),
            (Value::from(true), Value::F32(0.1)),
        ]);
        assert_eq!(to_json_lossy(&v), r#"{"1":null,"true":0.1}"#);
    }
}
