//! The envelopes every wslink message travels in.
//!
//! | message | fields, in wire order |
//! | --- | --- |
//! | request | `wslink`, `id`, `method`, `args`, `kwargs` |
//! | result | `wslink`, `id`, `result` |
//! | error | `wslink`, `id`, `error: {code, message, data?}` |
//! | 1.x attachment header | `wslink`, `method: "wslink.binary.attachment"`, `args: [key]` |
//!
//! Reading is as lenient as wslink where wslink is lenient (a missing
//! `wslink` field, missing `args` or `kwargs`) and strict where leniency would
//! hide a broken peer (an `args` that is not an array is an error, not `[]`).

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::protocol::{ATTACHMENT_METHOD, WSLINK_VERSION};
use crate::value::{Map, Value};

/// A call: `method(*args, **kwargs)`, answered under the same `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `rpc:CLIENT:N` for calls, `system:c0:0` for hello.
    pub id: String,
    /// The registered method name, e.g. `viewport.image.render`.
    pub method: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map,
}

/// The `error` object of an error reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("wslink error {code}: {message}")]
pub struct RpcError {
    /// One of [`crate::protocol::codes`], or an application's own.
    pub code: i64,
    /// A short description.
    pub message: String,
    /// Details; wslink puts `{method, exception, trace}` here for exceptions.
    pub data: Option<Value>,
}

impl RpcError {
    /// An error without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// The same error, carrying `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error as the `error` map of a reply.
    pub fn to_value(&self) -> Value {
        let mut entries = vec![
            ("code", Value::from(self.code)),
            ("message", Value::from(self.message.as_str())),
        ];
        if let Some(data) = &self.data {
            entries.push(("data", data.clone()));
        }
        Value::map(entries)
    }
}

/// Any complete wslink message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call (or the hello).
    Request(Request),
    /// A successful reply, or a publish (`publish:TOPIC:N` ids).
    Result {
        /// The id of the call, or the publish id.
        id: String,
        /// The returned or published value.
        result: Value,
    },
    /// A failed call.
    Error {
        /// The id of the call.
        id: String,
        /// What went wrong.
        error: RpcError,
    },
    /// 1.x only: the next binary frames carry these attachment keys' bytes.
    AttachmentHeader {
        /// `wslink_binN` keys, in the order their frames follow.
        keys: Vec<String>,
    },
}

/// A message that is well-formed msgpack or JSON but not a wslink envelope.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvelopeError {
    /// The top-level value is not a map.
    #[error("a wslink message must be a map, found {found}")]
    NotAMap {
        /// What was found instead.
        found: &'static str,
    },
    /// A message with no `id` that is not an attachment header.
    #[error("message without an id (method {method:?}) cannot be answered")]
    NoId {
        /// Its method, if it had one.
        method: Option<String>,
    },
    /// A field has the wrong type.
    #[error("field {field:?} of message {id:?} must be {expected}, found {found}")]
    BadField {
        /// The message id, when it could be read, so that a reply can be sent.
        id: Option<String>,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: &'static str,
    },
    /// Neither `method`, `result` nor `error`.
    #[error("message {id:?} has no method, result or error")]
    NoPayload {
        /// Its id.
        id: String,
    },
}

impl EnvelopeError {
    /// The id of the offending message, if it had a readable one.
    pub fn id(&self) -> Option<&str> {
        match self {
            EnvelopeError::BadField { id, .. } => id.as_deref(),
            EnvelopeError::NoPayload { id } => Some(id),
            _ => None,
        }
    }
}

impl Message {
    /// Interprets a decoded value as an envelope.
    ///
    /// ```
    /// use wslink_core::{Message, Value};
    /// let v = Value::map([
    ///     ("wslink", Value::from("1.0")),
    ///     ("id", Value::from("rpc:c1:0")),
    ///     ("method", Value::from("math.add")),
    ///     ("args", Value::from(vec![Value::from(1), Value::from(2)])),
    /// ]);
    /// let Message::Request(req) = Message::from_value(v).unwrap() else { panic!() };
    /// assert_eq!(req.method, "math.add");
    /// assert!(req.kwargs.is_empty());
    /// ```
    pub fn from_value(value: Value) -> Result<Message, EnvelopeError> {
        let Value::Map(entries) = value else {
            return Err(EnvelopeError::NotAMap {
                found: value.kind(),
            });
        };
        let mut fields = Fields::default();
        for (k, v) in entries {
            let Value::Str(key) = k else { continue };
            fields.set(&key, v);
        }
        fields.into_message()
    }

    /// Decodes a msgpack envelope: the same message, or the same error, as
    /// [`msgpack::decode`](crate::msgpack::decode) followed by
    /// [`Message::from_value`], without building what it would throw
    /// away (the top-level map, its keys, the `wslink` version string).
    /// Every small call and reply goes through here.
    ///
    /// ```
    /// use wslink_core::envelope::Message;
    /// use wslink_core::Value;
    ///
    /// let v = Value::map([
    ///     ("wslink", Value::from("1.0")),
    ///     ("id", Value::from("rpc:c1:1")),
    ///     ("method", Value::from("math.add")),
    ///     ("args", Value::Array(vec![1.into(), 2.into()])),
    /// ]);
    /// let bytes = wslink_core::msgpack::encode(&v).unwrap();
    /// let message = Message::from_msgpack(&bytes, 64).unwrap();
    /// assert_eq!(message, Message::from_value(v).unwrap());
    /// ```
    pub fn from_msgpack(
        bytes: &bytes::Bytes,
        max_depth: usize,
    ) -> Result<Message, crate::codec::CodecError> {
        let mut fields = Fields::default();
        let top = crate::msgpack::decode_fields(bytes, max_depth, Fields::wants, |key, v| {
            fields.set(key, v);
        })?;
        match top {
            crate::msgpack::TopLevel::Map => Ok(fields.into_message()?),
            crate::msgpack::TopLevel::Other(value) => Ok(Message::from_value(value)?),
        }
    }

    /// The message as a value, fields in wslink's order.
    pub fn to_value(&self) -> Value {
        let version = ("wslink", Value::from(WSLINK_VERSION));
        match self {
            Message::Request(r) => Value::map([
                version,
                ("id", Value::from(r.id.as_str())),
                ("method", Value::from(r.method.as_str())),
                ("args", Value::Array(r.args.clone())),
                ("kwargs", Value::Map(r.kwargs.clone())),
            ]),
            Message::Result { id, result } => Value::map([
                version,
                ("id", Value::from(id.as_str())),
                ("result", result.clone()),
            ]),
            Message::Error { id, error } => Value::map([
                version,
                ("id", Value::from(id.as_str())),
                ("error", error.to_value()),
            ]),
            Message::AttachmentHeader { keys } => Value::map([
                version,
                ("method", Value::from(ATTACHMENT_METHOD)),
                (
                    "args",
                    keys.iter().map(|k| Value::from(k.as_str())).collect(),
                ),
            ]),
        }
    }

    /// The message's id, if it has one.
    pub fn id(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(&r.id),
            Message::Result { id, .. } | Message::Error { id, .. } => Some(id),
            Message::AttachmentHeader { .. } => None,
        }
    }
}

#[derive(Default)]
struct Fields {
    id: Option<Value>,
    method: Option<Value>,
    args: Option<Value>,
    kwargs: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
}

impl Fields {
    /// Whether `key` is a field of the envelope (others are ignored).
    fn wants(key: &str) -> bool {
        matches!(
            key,
            "id" | "method" | "args" | "kwargs" | "result" | "error"
        )
    }

    /// Sets a field; a key given twice keeps its last value.
    fn set(&mut self, key: &str, v: Value) {
        match key {
            "id" => self.id = Some(v),
            "method" => self.method = Some(v),
            "args" => self.args = Some(v),
            "kwargs" => self.kwargs = Some(v),
            "result" => self.result = Some(v),
            "error" => self.error = Some(v),
            _ => {}
        }
    }

    fn into_message(self) -> Result<Message, EnvelopeError> {
        let id = match self.id {
            None | Some(Value::Nil) => None,
            Some(Value::Str(id)) => Some(id),
            Some(other) => {
                return Err(EnvelopeError::BadField {
                    id: None,
                    field: "id",
                    expected: "a string",
                    found: other.kind(),
                })
            }
        };
        let bad = |id: &Option<String>, field, expected, found: &Value| EnvelopeError::BadField {
            id: id.clone(),
            field,
            expected,
            found: found.kind(),
        };
        let method = match self.method {
            None => None,
            Some(Value::Str(m)) => Some(m),
            Some(other) => return Err(bad(&id, "method", "a string", &other)),
        };
        let Some(id) = id else {
            if method.as_deref() == Some(ATTACHMENT_METHOD) {
                let keys = match self.args {
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .map(|k| match k {
                            Value::Str(s) => Ok(s),
                            other => Err(bad(&None, "args", "an array of strings", &other)),
                        })
                        .collect::<Result<_, _>>()?,
                    None | Some(Value::Nil) => Vec::new(),
                    Some(other) => return Err(bad(&None, "args", "an array", &other)),
                };
                return Ok(Message::AttachmentHeader { keys });
            }
            return Err(EnvelopeError::NoId { method });
        };
        let some_id = Some(id.clone());
        if let Some(method) = method {
            let args = match self.args {
                None | Some(Value::Nil) => Vec::new(),
                Some(Value::Array(items)) => items,
                Some(other) => return Err(bad(&some_id, "args", "an array", &other)),
            };
            let kwargs = match self.kwargs {
                None | Some(Value::Nil) => Vec::new(),
                Some(Value::Map(entries)) => entries,
                Some(other) => return Err(bad(&some_id, "kwargs", "a map", &other)),
            };
            return Ok(Message::Request(Request {
                id,
                method,
                args,
                kwargs,
            }));
        }
        if let Some(error) = self.error.filter(|e| !e.is_nil()) {
            let code = error
                .get("code")
                .and_then(Value::as_i64)
                .ok_or_else(|| bad(&some_id, "error.code", "an integer", &error))?;
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let data = error.get("data").cloned();
            return Ok(Message::Error {
                id,
                error: RpcError {
                    code,
                    message,
                    data,
                },
            });
        }
        match self.result {
            Some(result) => Ok(Message::Result { id, result }),
            None => Err(EnvelopeError::NoPayload { id }),
        }
    }
}

/// A result or publish envelope around a borrowed, typed payload, so that a
/// user's serde type is encoded straight to the wire.
///
/// ```
/// use wslink_core::envelope::ResultEnvelope;
/// #[derive(serde::Serialize)]
/// struct Frame { width: u32 }
/// let env = ResultEnvelope { id: "publish:frames:0", result: &Frame { width: 8 } };
/// let bytes = wslink_core::msgpack::encode(&env).unwrap();
/// assert_eq!(bytes[0], 0x83); // a map of three fields
/// ```
pub struct ResultEnvelope<'a, T: ?Sized> {
    /// The id of the call, or a publish id.
    pub id: &'a str,
    /// The payload.
    pub result: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for ResultEnvelope<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("wslink", WSLINK_VERSION)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("result", self.result)?;
        map.end()
    }
}

/// A request envelope around borrowed, typed arguments.
pub struct RequestEnvelope<'a, A: ?Sized, K: ?Sized> {
    /// The call id.
    pub id: &'a str,
    /// The method name.
    pub method: &'a str,
    /// Positional arguments; must serialize as a sequence.
    pub args: &'a A,
    /// Keyword arguments; must serialize as a map.
    pub kwargs: &'a K,
}

impl<A: Serialize + ?Sized, K: Serialize + ?Sized> Serialize for RequestEnvelope<'_, A, K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("wslink", WSLINK_VERSION)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("method", self.method)?;
        map.serialize_entry("args", self.args)?;
        map.serialize_entry("kwargs", self.kwargs)?;
        map.end()
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Request(r) => RequestEnvelope {
                id: &r.id,
                method: &r.method,
                args: &r.args,
                kwargs: &MapRef(&r.kwargs),
            }
            .serialize(s),
            Message::Result { id, result } => ResultEnvelope { id, result }.serialize(s),
            Message::Error { id, error } => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("wslink", WSLINK_VERSION)?;
                map.serialize_entry("id", id)?;
                map.serialize_entry("error", &error.to_value())?;
                map.end()
            }
            Message::AttachmentHeader { .. } => self.to_value().serialize(s),
        }
    }
}

struct MapRef<'a>(&'a Map);

impl Serialize for MapRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Message, EnvelopeError> {
        Message::from_value(v)
    }

    /// `from_msgpack` against the long way round, decode then
    /// `from_value`: the same message or the same error text, for valid
    /// envelopes, each of their truncations and byte changes, and at
    /// depth limits that cut them.
    #[test]
    fn from_msgpack_agrees_with_decode_then_from_value() {
        use crate::msgpack;
        let blob = Value::Bin(bytes::Bytes::from_static(b"\x00\x01\xff"));
        let samples = [
            Value::map([
                ("wslink", Value::from("1.0")),
                ("id", Value::from("rpc:c1:7")),
                ("method", Value::from("math.add")),
                (
                    "args",
                    Value::Array(vec![1.into(), Value::from("two"), blob.clone()]),
                ),
                ("kwargs", Value::map([("scale", Value::F64(2.5))])),
            ]),
            Value::map([
                ("wslink", Value::from("1.0")),
                ("id", Value::from("publish:frames:3")),
                (
                    "result",
                    Value::map([("image", blob.clone()), ("w", 640.into())]),
                ),
            ]),
            Value::map([
                ("id", Value::from("rpc:c1:8")),
                (
                    "error",
                    Value::map([
                        ("code", Value::from(-32601)),
                        ("message", Value::from("no")),
                    ]),
                ),
            ]),
            Value::map([
                ("wslink", Value::from("1.0")),
                ("method", Value::from(ATTACHMENT_METHOD)),
                ("args", Value::Array(vec![Value::from("wslink_bin0")])),
            ]),
            // Keys that are not strings, a key twice, an unknown key with a
            // nested value, a long string (str16) key.
            Value::Map(vec![
                (Value::from(1), Value::from("x")),
                (Value::from("id"), Value::from("first")),
                (
                    Value::from("extra"),
                    Value::Array(vec![Value::map([("a", blob)])]),
                ),
                (Value::from("id"), Value::from("rpc:c1:9")),
                (Value::from("k".repeat(300)), Value::Nil),
                (Value::from("result"), Value::Nil),
            ]),
            Value::Array(vec![Value::from("not a map")]),
            Value::from("id"),
        ];
        let long_way = |b: &bytes::Bytes, depth: usize| {
            msgpack::decode(b, depth)
                .map_err(crate::codec::CodecError::from)
                .and_then(|v| Message::from_value(v).map_err(Into::into))
        };
        let check = |b: &bytes::Bytes, depth: usize| {
            let fast = Message::from_msgpack(b, depth);
            let slow = long_way(b, depth);
            match (&fast, &slow) {
                (Ok(f), Ok(s)) => assert_eq!(f, s, "{b:x?}"),
                (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string(), "{b:x?}"),
                _ => panic!("{b:x?} at depth {depth}: {fast:?} but {slow:?}"),
            }
            fast.is_ok()
        };
        // A small deterministic generator (xorshift) for the byte changes.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for sample in &samples {
            let bytes = msgpack::encode(sample).unwrap();
            for depth in [0, 1, 2, 3, msgpack::DEFAULT_MAX_DEPTH] {
                check(&bytes, depth);
            }
            for cut in 0..bytes.len() {
                check(&bytes.slice(..cut), msgpack::DEFAULT_MAX_DEPTH);
            }
            for _ in 0..2000 {
                let mut changed = bytes.to_vec();
                for _ in 0..=(next() % 3) {
                    let at = (next() % changed.len() as u64) as usize;
                    changed[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    changed.push(next() as u8);
                }
                if check(&bytes::Bytes::from(changed), msgpack::DEFAULT_MAX_DEPTH) {
                    accepted += 1;
                }
            }
        }
        // The changes must not all be refused, or the agreement would be
        // only on errors.
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn round_trips_every_kind() {
        let msgs = [
            Message::Request(Request {
                id: "rpc:c1:4".into(),
                method: "m".into(),
                args: vec![Value::from(1)],
                kwargs: vec![(Value::from("k"), Value::Nil)],
            }),
            Message::Result {
                id: "rpc:c1:4".into(),
                result: Value::Nil,
            },
            Message::Error {
                id: "rpc:c1:4".into(),
                error: RpcError::method_not_found("m"),
            },
            Message::AttachmentHeader {
                keys: vec!["wslink_bin3".into()],
            },
        ];
        for m in msgs {
            assert_eq!(parse(m.to_value()).unwrap(), m);
        }
    }

    #[test]
    fn bad_shapes_are_typed_errors_that_keep_the_id() {
        assert!(matches!(
            parse(Value::from(3)),
            Err(EnvelopeError::NotAMap { found: "integer" })
        ));
        let err = parse(Value::map([
            ("id", Value::from("rpc:c:1")),
            ("method", Value::from("m")),
            ("args", Value::from(5)),
        ]))
        .unwrap_err();
        assert_eq!(err.id(), Some("rpc:c:1"));
        assert!(err.to_string().contains("\"args\""));
        assert!(matches!(
            parse(Value::map([("method", Value::from("x"))])),
            Err(EnvelopeError::NoId { .. })
        ));
    }
}
