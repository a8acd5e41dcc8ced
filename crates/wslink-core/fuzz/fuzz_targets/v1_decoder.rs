//! Feeds a sequence of text and binary frames to a 1.x `Decoder` with small
//! limits and checks every outcome:
//! - the text size limit applies exactly, and every other verdict on a text
//!   frame is what `serde_json` + `Message::from_value` say about it (an
//!   attachment header gives `None`, a message comes back as parsed, with
//!   only attachment keys turned into bytes);
//! - errors are the typed ones each kind of frame can cause, with the right
//!   details; held bytes never exceed their limit and drop to 0 once a
//!   message is out;
//! - every binary in a message is a frame received since the last message,
//!   each used once;
//! - every message re-encodes (`v1::encode`) into frames that decode back to
//!   an equal message (unless a bare `wslink_binN` string in it collides
//!   with a key the encoder hands out: 1.x cannot tell those apart).
//!
//! Input layout (see `corpus/v1_decoder/`, made from the golden vectors):
//! - byte 0: bits 0..=2 = the maximum of announced keys (0..=7), bits
//!   3..=7 = the text size limit in units of 64 bytes;
//! - byte 1: the held-bytes limit, in units of 16 bytes;
//! - then records `[u16 LE h][h & 0x7fff bytes]`, each one frame: binary if
//!   bit 15 of `h` is set, else text (invalid UTF-8 replaced, as a WebSocket
//!   library would have refused it). A record cut short by the end of the
//!   input is still pushed.

#![no_main]

mod common;

use bytes::Bytes;
use common::{records, reported_key, same_message};
use libfuzzer_sys::fuzz_target;
use wslink_core::attachments::{
    is_attachment_key, AttachmentError, AttachmentKeys, AttachmentLimits,
};
use wslink_core::codec::{v1, CodecError, Frame};
use wslink_core::{Message, Value};

fuzz_target!(|data: &[u8]| {
    let [a, b, ref rest @ ..] = *data else {
        return;
    };
    let limits = v1::DecodeLimits {
        max_text_size: usize::from(a >> 3) * 64,
        attachments: AttachmentLimits {
            max_announced: usize::from(a & 7),
            max_held_bytes: usize::from(b) * 16,
        },
    };
    let mut decoder = v1::Decoder::new(limits);
    // Binary frames accepted since the last message.
    let mut received: Vec<Bytes> = Vec::new();

    for (header, payload) in records(rest, 0x7fff) {
        let held = decoder.held_bytes();
        if header & 0x8000 != 0 {
            let data = Bytes::copy_from_slice(payload);
            match decoder.push_binary(data.clone()) {
                Ok(()) => {
                    assert!(decoder.held_bytes() <= held + data.len());
                    received.push(data);
                }
                Err(CodecError::Attachment(AttachmentError::UnannouncedBinary { len })) => {
                    assert_eq!(len, data.len());
                    assert_eq!(decoder.held_bytes(), held);
                }
                Err(CodecError::Attachment(AttachmentError::TooManyBytes { held: h, limit })) => {
                    assert_eq!(
                        (h, limit),
                        (held + data.len(), limits.attachments.max_held_bytes)
                    );
                    assert!(h > limit);
                    assert_eq!(decoder.held_bytes(), held);
                }
                Err(e) => panic!("binary frame refused with {e:?}"),
            }
        } else {
            let text = String::from_utf8_lossy(payload);
            check_text(&mut decoder, &limits, &text, &mut received);
        }
        assert!(decoder.held_bytes() <= limits.attachments.max_held_bytes);
    }
});

fn check_text(
    decoder: &mut v1::Decoder,
    limits: &v1::DecodeLimits,
    text: &str,
    received: &mut Vec<Bytes>,
) {
    let got = decoder.push_text(text);
    if text.len() > limits.max_text_size {
        assert!(
            matches!(got, Err(CodecError::TextTooLarge { len, limit })
                if len == text.len() && limit == limits.max_text_size),
            "{got:?}"
        );
        return;
    }
    let expected = match serde_json::from_str::<Value>(text) {
        Err(_) => {
            assert!(matches!(got, Err(CodecError::Json(_))), "{got:?}");
            return;
        }
        Ok(v) => Message::from_value(v),
    };
    match (expected, got) {
        (Err(e), Err(CodecError::Envelope(g))) => assert_eq!(e, g),
        (Ok(Message::AttachmentHeader { .. }), Ok(None)) => {}
        (Ok(Message::AttachmentHeader { keys }), Err(CodecError::Attachment(e))) => match e {
            AttachmentError::BadKey { key } => {
                assert!(keys
                    .iter()
                    .any(|k| !is_attachment_key(k) && reported_key(k) == key));
            }
            AttachmentError::TooManyAnnounced { limit } => {
                assert_eq!(limit, limits.attachments.max_announced);
            }
            e => panic!("attachment header refused with {e:?}"),
        },
        (Ok(parsed), Ok(Some(message))) => {
            assert!(
                claimed(&parsed.to_value(), &message.to_value()),
                "{parsed:?} came out as {message:?}"
            );
            if matches!(message, Message::Error { .. }) {
                // An error voids whatever was sent for the reply.
                received.clear();
            }
            let mut bins = 0;
            message.to_value().for_each_binary(&mut |b| {
                bins += 1;
                let i = received
                    .iter()
                    .position(|r| r == b)
                    .expect("a binary received since the last message");
                received.swap_remove(i);
            });
            // Received bytes no message claimed are dropped.
            received.clear();
            assert_eq!(decoder.held_bytes(), 0);
            round_trip(&message, bins);
        }
        (e, g) => panic!("decoder gave {g:?} for text that parses as {e:?}"),
    }
}

/// `decoded` is `parsed`, except that some attachment keys became bytes.
fn claimed(parsed: &Value, decoded: &Value) -> bool {
    match (parsed, decoded) {
        (Value::Str(k), Value::Bin(_)) => is_attachment_key(k),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| claimed(a, b))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && claimed(va, vb))
        }
        (a, b) => a == b,
    }
}

fn round_trip(message: &Message, bins: usize) {
    let frames = v1::encode(message, &AttachmentKeys::new()).expect("a decoded message encodes");
    assert_eq!(frames.len(), 2 * bins + 1);
    let mut decoder = v1::Decoder::new(v1::DecodeLimits::default());
    let mut out = None;
    for (i, frame) in frames.into_iter().enumerate() {
        assert!(out.is_none(), "message complete before its last frame");
        match frame {
            Frame::Text(t) => {
                assert!(i % 2 == 0, "text frame out of place");
                let text = std::str::from_utf8(&t).expect("text frames are UTF-8");
                out = decoder.push_text(text).expect("our own frames decode");
            }
            Frame::Binary(b) => {
                assert!(i % 2 == 1, "binary frame out of place");
                decoder.push_binary(b).expect("our own frames decode");
            }
        }
    }
    let back = out.expect("message complete at its last frame");
    // The encoder hands out wslink_bin0.. for the binaries; a string equal to
    // one of those in a claimable place would be taken for it.
    let mut collides = false;
    claimable_strings(message, &mut |s| {
        collides |= s
            .strip_prefix("wslink_bin")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < bins && s == format!("wslink_bin{n}"));
    });
    assert!(
        collides || same_message(message, &back),
        "{message:?} came back as {back:?}"
    );
}

/// Strings where the decoder looks for attachment keys: values (not map
/// keys) of request arguments and of results.
fn claimable_strings(message: &Message, f: &mut impl FnMut(&str)) {
    fn walk(v: &Value, f: &mut impl FnMut(&str)) {
        match v {
            Value::Str(s) => f(s),
            Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
            Value::Map(entries) => entries.iter().for_each(|(_, v)| walk(v, f)),
            _ => {}
        }
    }
    match message {
        Message::Request(r) => {
            r.args.iter().for_each(|v| walk(v, f));
            r.kwargs.iter().for_each(|(_, v)| walk(v, f));
        }
        Message::Result { result, .. } => walk(result, f),
        _ => {}
    }
}
