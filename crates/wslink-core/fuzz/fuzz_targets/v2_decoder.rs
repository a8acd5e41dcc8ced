//! Feeds arbitrary binary frames to a 2.x `Decoder` with small limits, next
//! to a bare `Unchunker` with the same limits (fuzzed against a model by the
//! `unchunker` target), and checks the decoder against it: same chunk
//! errors, same pending bytes, and each completed message decoded exactly as
//! `msgpack::decode` + `Message::from_value` say. Every decoded message must
//! re-encode (`v2::encode`) into frames that decode back to an equal message.
//!
//! `msgpack::decode` also runs on the whole input and on every frame's bytes
//! after the 12-byte chunk header: errors must be justified by the input,
//! a decoded value must re-encode no longer than its input and decode back
//! equal, and the depth limit must be exact.
//!
//! Input layout (see `corpus/v2_decoder/`, made from the golden vectors):
//! - byte 0: bit 0 = authenticated from the start, bits 1..=3 = the maximum
//!   number of partial messages (0..=7), bits 4..=7 = the maximum nesting
//!   depth (0..=15);
//! - byte 1: the pending-bytes budget, in units of 64 bytes;
//! - then records `[u16 LE h][h & 0x7fff bytes]`, each one frame; bit 15 of
//!   `h` toggles authentication before the frame is pushed. A record cut
//!   short by the end of the input is still pushed.
//!
//! Size limits: 256 bytes before authentication, 4096 after.

#![no_main]

mod common;

use bytes::Bytes;
use common::{nesting, records, same_message, same_value};
use libfuzzer_sys::fuzz_target;
use wslink_core::chunking::{UnchunkLimits, Unchunker, HEADER_LEN};
use wslink_core::codec::{v2, CodecError};
use wslink_core::msgpack::{self, DecodeError};
use wslink_core::Message;

fuzz_target!(|data: &[u8]| {
    let [flags, budget, ref rest @ ..] = *data else {
        check_msgpack(data, 4);
        return;
    };
    let max_depth = usize::from(flags >> 4);
    check_msgpack(data, max_depth);

    let limits = v2::DecodeLimits {
        unchunk: UnchunkLimits {
            pre_auth_max_message_size: 256,
            max_message_size: 4096,
            max_pending_messages: usize::from((flags >> 1) & 7),
            max_pending_bytes: usize::from(budget) * 64,
        },
        max_depth,
    };
    let mut decoder = v2::Decoder::new(limits);
    let mut reference = Unchunker::new(limits.unchunk);
    let mut authenticated = flags & 1 == 1;
    decoder.set_authenticated(authenticated);
    reference.set_authenticated(authenticated);
    // The frame size the round trip re-encodes to: none, 1 byte of content
    // per frame (wslink's minimum), and two ordinary ones.
    let max_frame = [0, HEADER_LEN + 1, 40, 512][data.len() % 4];

    for (header, frame) in records(rest, 0x7fff) {
        if header & 0x8000 != 0 {
            authenticated = !authenticated;
            decoder.set_authenticated(authenticated);
            reference.set_authenticated(authenticated);
        }
        if let Some(body) = frame.get(HEADER_LEN..) {
            check_msgpack(body, max_depth);
        }
        let frame = Bytes::copy_from_slice(frame);
        let expected = reference.push(frame.clone());
        let got = decoder.push(frame);

        assert_eq!(decoder.pending_bytes(), reference.pending_bytes());
        assert!(decoder.pending_bytes() <= limits.unchunk.max_pending_bytes);
        match (expected, got) {
            (Err(e), Err(CodecError::Chunk(g))) => assert_eq!(e, g),
            (Ok(None), Ok(None)) => {}
            (Ok(Some(message)), got) => check_complete(&message, max_depth, got, max_frame),
            (e, g) => panic!("decoder gave {g:?} where the unchunker gave {e:?}"),
        }
    }
});

/// A message was reassembled: the decoder's verdict must be exactly what
/// decoding its bytes gives, and a decoded message must round-trip.
fn check_complete(
    bytes: &Bytes,
    max_depth: usize,
    got: Result<Option<Message>, CodecError>,
    max_frame: usize,
) {
    let expected = msgpack::decode(bytes, max_depth).map(Message::from_value);
    match (expected, got) {
        (Err(e), Err(CodecError::Msgpack(g))) => assert_eq!(e, g),
        (Ok(Err(e)), Err(CodecError::Envelope(g))) => assert_eq!(e, g),
        (Ok(Ok(m)), Ok(Some(g))) => {
            assert!(same_message(&m, &g), "{m:?} decoded as {g:?}");
            round_trip(&g, max_frame);
        }
        (e, g) => panic!("decoder gave {g:?} for a message that decodes to {e:?}"),
    }
}

fn round_trip(message: &Message, max_frame: usize) {
    let frames: Vec<Bytes> = v2::encode(message, max_frame)
        .expect("a decoded message encodes")
        .collect();
    let mut decoder = v2::Decoder::new(v2::DecodeLimits::default());
    decoder.set_authenticated(true);
    let last = frames.len() - 1;
    for (i, frame) in frames.into_iter().enumerate() {
        assert!(
            max_frame == 0 || frame.len() <= max_frame,
            "frame too large"
        );
        let out = decoder.push(frame).expect("our own frames decode");
        if i < last {
            assert!(out.is_none(), "message complete before its last frame");
        } else {
            let back = out.expect("message complete at its last frame");
            assert!(
                same_message(message, &back),
                "{message:?} came back as {back:?}"
            );
        }
    }
    assert_eq!(decoder.pending_bytes(), 0);
}

fn check_msgpack(input: &[u8], max_depth: usize) {
    let wire = Bytes::copy_from_slice(input);
    match msgpack::decode(&wire, max_depth) {
        Ok(v) => {
            let depth = nesting(&v);
            assert!(
                depth <= max_depth,
                "nesting {depth} over the limit {max_depth}"
            );
            let again = msgpack::encode(&v).expect("a decoded value encodes");
            // Our encoder picks the shortest form of every header, number and
            // float width is kept, so it never needs more bytes than the input.
            assert!(
                again.len() <= input.len(),
                "{v:?} re-encoded in {} bytes, from {}",
                again.len(),
                input.len()
            );
            let back = msgpack::decode(&again, depth).expect("re-encoded value decodes");
            assert!(same_value(&v, &back), "{v:?} came back as {back:?}");
            assert_eq!(msgpack::encode(&back).unwrap(), again, "encoding is stable");
            if depth > 0 {
                assert_eq!(
                    msgpack::decode(&again, depth - 1),
                    Err(DecodeError::TooDeep { limit: depth - 1 })
                );
            }
        }
        Err(DecodeError::Truncated { offset, needed }) => {
            assert!(offset <= input.len() && needed > 0);
        }
        Err(DecodeError::TrailingBytes { extra }) => {
            assert!(extra > 0 && extra < input.len());
            let prefix = wire.slice(..input.len() - extra);
            assert!(msgpack::decode(&prefix, max_depth).is_ok());
        }
        Err(DecodeError::InvalidMarker { marker, offset }) => {
            assert_eq!(marker, 0xc1);
            assert_eq!(input.get(offset), Some(&0xc1));
        }
        Err(DecodeError::InvalidUtf8 { offset }) => {
            // A string of no bytes is valid, so the bad one starts inside.
            assert!(offset < input.len());
        }
        Err(DecodeError::TooDeep { limit }) => {
            assert_eq!(limit, max_depth);
            // Each level costs a byte at least, so a limit of the input's
            // length never trips (kept short: decoding recurses per level).
            if input.len() <= 512 {
                let unlimited = msgpack::decode(&wire, input.len());
                assert!(!matches!(unlimited, Err(DecodeError::TooDeep { .. })));
            }
        }
    }
}
