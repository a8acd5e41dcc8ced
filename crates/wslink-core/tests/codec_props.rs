//! Round-trip properties of both wire codecs over arbitrary values.

use bytes::Bytes;
use proptest::prelude::*;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::{msgpack, Integer, Message, Value};

fn leaf(json_safe: bool) -> BoxedStrategy<Value> {
    let mut leaves = vec![
        Just(Value::Nil).boxed(),
        any::<bool>().prop_map(Value::Bool).boxed(),
        any::<i64>()
            .prop_map(|i| Value::Int(Integer::from(i)))
            .boxed(),
        any::<u64>()
            .prop_map(|i| Value::Int(Integer::from(i)))
            .boxed(),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::F64)
            .boxed(),
        ".{0,40}".prop_map(Value::Str).boxed(),
        proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|b| Value::Bin(Bytes::from(b)))
            .boxed(),
    ];
    if !json_safe {
        leaves.push(
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::F32)
                .boxed(),
        );
        leaves.push(
            (any::<i8>(), proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(t, b)| Value::Ext(t, Bytes::from(b)))
                .boxed(),
        );
    }
    proptest::strategy::Union::new(leaves).boxed()
}

fn value(json_safe: bool) -> impl Strategy<Value = Value> {
    leaf(json_safe).prop_recursive(4, 64, 8, move |inner| {
        let key = if json_safe {
            ".{0,12}".prop_map(Value::Str).boxed()
        } else {
            inner.clone()
        };
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..8).prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn msgpack_round_trips_any_value(v in value(false)) {
        let bytes = msgpack::encode(&v).unwrap();
        prop_assert_eq!(msgpack::decode(&bytes, msgpack::DEFAULT_MAX_DEPTH).unwrap(), v);
    }

    #[test]
    fn v2_frames_round_trip(v in value(false), max_frame in prop_oneof![Just(0usize), 13usize..400]) {
        let msg = Message::Result { id: "rpc:c1:7".into(), result: v };
        let mut decoder = v2::Decoder::new(Default::default());
        decoder.set_authenticated(true);
        let mut out = None;
        for frame in v2::encode(&msg, max_frame).unwrap() {
            prop_assert!(max_frame == 0 || frame.len() <= max_frame);
            prop_assert!(out.is_none(), "message completed before its last frame");
            out = decoder.push(frame).unwrap();
        }
        prop_assert_eq!(out, Some(msg));
    }

    #[test]
    fn v1_frames_round_trip_with_attachments(v in value(true)) {
        let msg = Message::Result { id: "publish:a.b:3".into(), result: v.clone() };
        let frames = v1::encode(&msg, &AttachmentKeys::new()).unwrap();
        let mut binaries = 0;
        v.for_each_binary(&mut |_| binaries += 1);
        prop_assert_eq!(frames.len(), 1 + 2 * binaries);
        let mut decoder = v1::Decoder::new(Default::default());
        let mut out = None;
        for frame in frames {
            match frame {
                Frame::Text(t) => out = decoder.push_text(std::str::from_utf8(&t).unwrap()).unwrap(),
                Frame::Binary(b) => decoder.push_binary(b).unwrap(),
            }
        }
        prop_assert_eq!(out, Some(msg));
        prop_assert_eq!(decoder.held_bytes(), 0);
    }

    #[test]
    fn msgpack_decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = msgpack::decode(&Bytes::from(bytes), 16);
    }

    #[test]
    fn v1_decoder_never_panics_on_garbage(text in ".{0,200}", bin in proptest::collection::vec(any::<u8>(), 0..50)) {
        let mut d = v1::Decoder::new(Default::default());
        let _ = d.push_text(&text);
        let _ = d.push_binary(Bytes::from(bin));
    }
}
