//! wslink 1.x: JSON text frames. Each binary value is replaced by a
//! `wslink_binN` key; the bytes go first, as a header text frame
//! `{"wslink":"1.0","method":"wslink.binary.attachment","args":[key]}` and
//! one binary frame, and the JSON message follows.

use std::cell::RefCell;

use bytes::Bytes;
use serde::ser::{Error as _, Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{CodecError, Frame};
use crate::attachments::{AttachmentKeys, AttachmentLimits, AttachmentTable};
use crate::envelope::Message;
use crate::value::{to_value, Value};

/// The frames of one message: attachment headers and bytes, then the JSON.
pub type Frames = Vec<Frame>;

/// Encodes a message as 1.x frames, drawing attachment keys from `keys`.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::attachments::AttachmentKeys;
/// use wslink_core::codec::{v1, Frame};
/// use wslink_core::{Message, Value};
/// let msg = Message::Result { id: "rpc:c1:0".into(), result: Value::from(Bytes::from_static(b"\xff")) };
/// let frames = v1::encode(&msg, &AttachmentKeys::new()).unwrap();
/// assert_eq!(frames.len(), 3);
/// assert_eq!(frames[1], Frame::Binary(Bytes::from_static(b"\xff")));
/// let Frame::Text(json) = &frames[2] else { panic!() };
/// assert_eq!(&json[..], br#"{"wslink":"1.0","id":"rpc:c1:0","result":"wslink_bin0"}"#);
/// ```
pub fn encode(message: &Message, keys: &AttachmentKeys) -> Result<Frames, CodecError> {
    encode_value(&message.to_value(), keys)
}

/// Encodes a typed result or publish (`{wslink, id, result}`) as 1.x frames.
pub fn encode_result<T: Serialize + ?Sized>(
    id: &str,
    result: &T,
    keys: &AttachmentKeys,
) -> Result<Frames, CodecError> {
    let result = to_value(result).map_err(|e| CodecError::Encode(e.to_string()))?;
    encode(
        &Message::Result {
            id: id.to_owned(),
            result,
        },
        keys,
    )
}

/// Encodes an envelope already in value form.
pub fn encode_value(envelope: &Value, keys: &AttachmentKeys) -> Result<Frames, CodecError> {
    let attachments = RefCell::new(Vec::new());
    let json = serde_json::to_string(&Json {
        value: envelope,
        keys,
        attachments: &attachments,
    })
    .map_err(|e| CodecError::Encode(e.to_string()))?;
    let attachments = attachments.into_inner();
    let mut frames = Vec::with_capacity(attachments.len() * 2 + 1);
    for (key, data) in attachments {
        let header = Message::AttachmentHeader { keys: vec![key] };
        let header = serde_json::to_string(&header.to_value())
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        frames.push(Frame::text(header));
        frames.push(Frame::Binary(data));
    }
    frames.push(Frame::text(json));
    Ok(frames)
}

/// Serializes a value as JSON, swapping each binary for a fresh key.
struct Json<'a> {
    value: &'a Value,
    keys: &'a AttachmentKeys,
    attachments: &'a RefCell<Vec<(String, Bytes)>>,
}

impl<'a> Json<'a> {
    fn child(&self, value: &'a Value) -> Json<'a> {
        Json {
            value,
            keys: self.keys,
            attachments: self.attachments,
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Bin(data) => {
                let key = self.keys.next_key();
                let out = s.serialize_str(&key);
                self.attachments.borrow_mut().push((key, data.clone()));
                out
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.child(item))?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, &self.child(v))?;
                }
                map.end()
            }
            Value::Ext(tag, _) => Err(S::Error::custom(format!(
                "msgpack extension type {tag} has no JSON form"
            ))),
            other => other.serialize(s),
        }
    }
}

/// Whether arrays and objects nest deeper than `limit` levels in a JSON
/// text (the outermost counting as 1), found without parsing it: brackets
/// inside strings do not count, and the text need not be valid JSON. Both
/// ends run it before handing a peer's text to a recursive parser, so the
/// parser never descends further than `limit`.
///
/// ```
/// use wslink_core::codec::v1::json_deeper_than;
/// assert!(json_deeper_than("[[[[]]]]", 3));
/// assert!(!json_deeper_than(r#"{"a":"[[[[[["}"#, 1));
/// ```
pub fn json_deeper_than(text: &str, limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Limits a 1.x decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest text frame accepted.
    pub max_text_size: usize,
    /// Attachment bookkeeping bounds.
    pub attachments: AttachmentLimits,
}

/// Default for [`DecodeLimits::max_text_size`]: 16 MiB.
pub const DEFAULT_MAX_TEXT_SIZE: usize = 16 * 1024 * 1024;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_text_size: DEFAULT_MAX_TEXT_SIZE,
            attachments: AttachmentLimits::default(),
        }
    }
}

/// Turns one connection's incoming 1.x frames into messages with their
/// attachments in place.
///
/// JSON nesting is bounded at 127 levels (serde_json's recursion limit).
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::codec::v1;
/// use wslink_core::Message;
/// let mut d = v1::Decoder::new(v1::DecodeLimits::default());
/// assert!(d.push_text(r#"{"wslink":"1.0","method":"wslink.binary.attachment","args":["wslink_bin1"]}"#).unwrap().is_none());
/// d.push_binary(Bytes::from_static(b"xyz")).unwrap();
/// let msg = d.push_text(r#"{"wslink":"1.0","id":"rpc:c1:0","method":"m","args":["wslink_bin1"],"kwargs":{}}"#).unwrap();
/// let Some(Message::Request(req)) = msg else { panic!() };
/// assert_eq!(req.args[0].as_bytes().unwrap().as_ref(), b"xyz");
/// ```
#[derive(Debug)]
pub struct Decoder {
    max_text_size: usize,
    table: AttachmentTable,
}

impl Decoder {
    /// An empty decoder.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder {
            max_text_size: limits.max_text_size,
            table: AttachmentTable::new(limits.attachments),
        }
    }

    /// Feeds a text frame. Attachment headers return `None`; any other
    /// message comes back with the bytes of its attachments in place.
    /// Attachments no message claimed are dropped afterwards, so that a
    /// client cannot park bytes on the connection.
    pub fn push_text(&mut self, text: &str) -> Result<Option<Message>, CodecError> {
        if text.len() > self.max_text_size {
            return Err(CodecError::TextTooLarge {
                len: text.len(),
                limit: self.max_text_size,
            });
        }
        let value: Value = serde_json::from_str(text).map_err(CodecError::Json)?;
        let mut message = Message::from_value(value)?;
        match &mut message {
            Message::AttachmentHeader { keys } => {
                self.table.on_header(std::mem::take(keys))?;
                return Ok(None);
            }
            Message::Request(req) => {
                req.args.iter_mut().for_each(|v| self.table.claim(v));
                req.kwargs.iter_mut().for_each(|(_, v)| self.table.claim(v));
            }
            Message::Result { result, .. } => self.table.claim(result),
            // An error voids whatever was sent for the failed reply.
            Message::Error { .. } => self.table.clear(),
        }
        self.table.discard_unclaimed();
        Ok(Some(message))
    }

    /// Feeds a binary frame: the bytes of the oldest announced key.
    pub fn push_binary(&mut self, data: Bytes) -> Result<(), CodecError> {
        Ok(self.table.on_binary(data)?)
    }

    /// Bytes held for messages not yet arrived.
    pub fn held_bytes(&self) -> usize {
        self.table.held_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert!(!json_deeper_than(r#"{"a":[1,[2]]}"#, 3));
        assert!(json_deeper_than(r#"{"a":[1,[[2]]]}"#, 3));
        assert!(json_deeper_than("[[[[]]]]", 3));
        assert!(!json_deeper_than("[[[]]]", 3));
        assert!(json_deeper_than(r#"{"a":{"b":[{}]}}"#, 3));
        // Brackets in strings, escaped quotes included, do not count.
        assert!(!json_deeper_than(r#"{"a":"[[[\"[[[","b":[]}"#, 2));
        assert!(!json_deeper_than(r#"[[["[[[[\"[[[["]]]"#, 3));
        assert!(!json_deeper_than(r#"["\\",[]]"#, 2));
        assert!(json_deeper_than(r#"["\\",[[]]]"#, 2));
        assert!(!json_deeper_than("", 0));
        assert!(json_deeper_than("[", 0));
    }

    #[test]
    fn every_binary_gets_its_own_key_and_frames() {
        let keys = AttachmentKeys::new();
        let result = Value::map([
            ("a", Value::from(vec![1u8])),
            ("b", Value::from(vec![Value::from(vec![2u8, 3])])),
        ]);
        let frames = encode_result("publish:t:0", &result, &keys).unwrap();
        assert_eq!(frames.len(), 5);
        let mut d = Decoder::new(DecodeLimits::default());
        let mut out = None;
        for f in frames {
            match f {
                Frame::Text(t) => out = d.push_text(std::str::from_utf8(&t).unwrap()).unwrap(),
                Frame::Binary(b) => d.push_binary(b).unwrap(),
            }
        }
        assert_eq!(
            out,
            Some(Message::Result {
                id: "publish:t:0".into(),
                result
            })
        );
    }

    #[test]
    fn deep_json_is_refused() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let mut d = Decoder::new(DecodeLimits::default());
        assert!(matches!(d.push_text(&deep), Err(CodecError::Json(_))));
    }

    #[test]
    fn text_limit_applies() {
        let mut d = Decoder::new(DecodeLimits {
            max_text_size: 4,
            ..Default::default()
        });
        assert!(matches!(
            d.push_text("[1,2,3]"),
            Err(CodecError::TextTooLarge { len: 7, limit: 4 })
        ));
    }
}
