//! The segmented (zero-copy) encoding against the copying one: for any
//! value, sharing threshold, reserve and frame size, the segments are the
//! bytes `msgpack::encode` makes and the frames those `chunking::chunk`
//! makes; large payloads that opt in are sliced, never copied.

use bytes::Bytes;
use proptest::prelude::*;
use serde::ser::{Error as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use wslink_core::chunking::{chunk, chunk_segmented, SegmentedFrame, HEADER_LEN, MIN_SHARED_PART};
use wslink_core::codec::v2;
use wslink_core::shared_bytes::SHARE_THRESHOLD;
use wslink_core::{msgpack, to_value, Integer, Message, SharedBytes, Value};

/// Seeded bytes: drawing large payloads byte by byte would make each case
/// slow in debug builds.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn binary() -> impl Strategy<Value = Value> {
    (
        prop_oneof![0..64usize, 0..6_000usize, 60_000..70_000usize],
        any::<u64>(),
    )
        .prop_map(|(len, seed)| Value::Bin(pattern(len, seed)))
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Int(Integer::from(i))),
        any::<u64>().prop_map(|i| Value::Int(Integer::from(i))),
        any::<f32>().prop_map(Value::F32),
        any::<f64>().prop_map(Value::F64),
        ".{0,40}".prop_map(Value::Str),
        (any::<i8>(), 0..300usize, any::<u64>()).prop_map(|(t, n, s)| Value::Ext(t, pattern(n, s))),
        binary(),
        binary(),
        binary(),
    ]
    .boxed()
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((inner.clone(), inner), 0..6).prop_map(Value::Map),
        ]
    })
}

fn threshold() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        1..100usize,
        100..5_000usize,
        Just(SHARE_THRESHOLD)
    ]
}

fn max_frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        1..64usize,
        13..5_000usize,
        5_000..150_000usize
    ]
}

/// Every binary in `v` (keys too) at least `threshold` long, in order.
fn binaries(v: &Value, threshold: usize, out: &mut Vec<Bytes>) {
    match v {
        Value::Bin(b) if b.len() >= threshold => out.push(b.clone()),
        Value::Array(items) => items.iter().for_each(|i| binaries(i, threshold, out)),
        Value::Map(entries) => entries.iter().for_each(|(k, i)| {
            binaries(k, threshold, out);
            binaries(i, threshold, out);
        }),
        _ => {}
    }
}

fn contains(outer: &Bytes, inner: &[u8]) -> bool {
    let range = outer.as_ptr_range();
    range.start <= inner.as_ptr() && inner.as_ptr_range().end <= range.end
}

/// Checks frames against the copying path, and that payloads are sliced.
fn same_frames(
    frames: Vec<SegmentedFrame>,
    expected: Vec<Bytes>,
    shared: &[Bytes],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(frames.len(), expected.len());
    for (frame, want) in frames.into_iter().zip(expected) {
        prop_assert_eq!(frame.len(), want.len());
        for part in frame.parts() {
            prop_assert!(!part.is_empty());
            // A slice of a shared payload is never a tiny one.
            if shared.iter().any(|s| contains(s, part)) {
                prop_assert!(part.len() >= MIN_SHARED_PART, "{} byte slice", part.len());
            }
        }
        prop_assert_eq!(frame.into_bytes(), want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn segments_are_the_copying_encoders_bytes(
        v in value(),
        threshold in threshold(),
        reserve in prop_oneof![Just(0usize), Just(HEADER_LEN), 0..40usize],
    ) {
        let message = msgpack::encode_segmented_with(&v, reserve, threshold).unwrap();
        let expected = msgpack::encode(&v).unwrap();
        prop_assert_eq!(message.len(), expected.len());
        prop_assert_eq!(message.segments().map(<[u8]>::len).sum::<usize>(), expected.len());
        prop_assert!(message.segments().all(|s| !s.is_empty()));
        prop_assert_eq!(message.to_bytes(), expected.clone());
        // Every binary over the threshold is shared as it is: same memory.
        let mut want = Vec::new();
        binaries(&v, threshold, &mut want);
        let got: Vec<&Bytes> = message.shared().collect();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(g.as_ptr(), w.as_ptr());
            prop_assert_eq!(g.len(), w.len());
        }
        prop_assert_eq!(
            message.copied_len(),
            expected.len() - want.iter().map(Bytes::len).sum::<usize>()
        );
    }

    #[test]
    fn frames_are_the_copying_chunkers_frames(
        v in value(),
        threshold in threshold(),
        reserve in prop_oneof![Just(0usize), Just(HEADER_LEN), Just(HEADER_LEN + 5)],
        max_frame in max_frame_size(),
        id in any::<u32>(),
    ) {
        let message = msgpack::encode_segmented_with(&v, reserve, threshold).unwrap();
        let shared: Vec<Bytes> = message.shared().cloned().collect();
        let frames: Vec<SegmentedFrame> = chunk_segmented(message, id, max_frame).unwrap().collect();
        let expected: Vec<Bytes> = chunk(msgpack::encode(&v).unwrap(), id, max_frame).unwrap().collect();
        same_frames(frames, expected, &shared)?;
    }

    /// Typed structs with the opt-in types, through the 2.x codec: the
    /// frames decode to what the copying codec's frames decode to, and are
    /// those frames but for the chunk id.
    #[test]
    fn typed_opt_in_matches_v2_encode(
        sizes in proptest::collection::vec(0..150_000usize, 0..4),
        max_frame in max_frame_size(),
    ) {
        let image = Image {
            seq: sizes.len() as u64,
            tiles: sizes.iter().enumerate().map(|(i, n)| SharedBytes::from(pattern(*n, i as u64))).collect(),
            thumbnail: pattern(sizes.first().copied().unwrap_or(0), 99),
        };
        let segmented: Vec<Bytes> = v2::encode_segmented(&image, max_frame).unwrap().map(SegmentedFrame::into_bytes).collect();
        let copied: Vec<Bytes> = v2::encode(&image, max_frame).unwrap().collect();
        prop_assert_eq!(segmented.len(), copied.len());
        for (s, c) in segmented.iter().zip(&copied) {
            prop_assert_eq!(&s[4..], &c[4..], "the same frame but for its id");
        }
    }
}

#[derive(Serialize)]
struct Image {
    seq: u64,
    tiles: Vec<SharedBytes>,
    #[serde(with = "wslink_core::shared_bytes")]
    thumbnail: Bytes,
}

fn frames_of(v: &Value, max_frame: usize) -> (Vec<SegmentedFrame>, Vec<Bytes>) {
    let message = msgpack::encode_segmented_with(v, HEADER_LEN, SHARE_THRESHOLD).unwrap();
    let frames = chunk_segmented(message, 7, max_frame).unwrap().collect();
    let expected = chunk(msgpack::encode(v).unwrap(), 7, max_frame)
        .unwrap()
        .collect();
    (frames, expected)
}

#[test]
fn one_frame_is_the_buffer_and_the_payload() {
    let payload = pattern(1 << 20, 1);
    let v = Value::map([
        ("seq", Value::from(1)),
        ("blob", Value::Bin(payload.clone())),
    ]);
    let (frames, expected) = frames_of(&v, 0);
    assert_eq!(frames.len(), 1);
    let parts = frames[0].parts();
    assert_eq!(parts.len(), 2, "header and envelope, then the payload");
    assert_eq!(parts[1].as_ptr(), payload.as_ptr());
    assert_eq!(parts[1].len(), payload.len());
    assert_eq!(frames[0].clone().into_bytes(), expected[0]);
}

#[test]
fn frames_cut_across_a_payload_boundary() {
    let a = pattern(100_000, 2);
    let b = pattern(100_000, 3);
    let v = Value::Array(vec![
        Value::Bin(a.clone()),
        Value::from("between"),
        Value::Bin(b.clone()),
        Value::from(42),
    ]);
    let (frames, expected) = frames_of(&v, 30_000);
    assert_eq!(frames.len(), expected.len());
    // The frame holding the end of `a` also holds `b`'s start: a slice of
    // each, with the copied bytes between them.
    let spanning = frames
        .iter()
        .find(|f| {
            f.parts().iter().any(|p| contains(&a, p)) && f.parts().iter().any(|p| contains(&b, p))
        })
        .expect("a frame across the boundary");
    let kinds: Vec<&str> = spanning
        .parts()
        .iter()
        .map(|p| {
            if contains(&a, p) {
                "a"
            } else if contains(&b, p) {
                "b"
            } else {
                "own"
            }
        })
        .collect();
    assert_eq!(kinds, ["own", "a", "own", "b"]);
    // Every payload byte is sliced, none copied: the frames' own parts
    // hold only headers and msgpack.
    let sliced: usize = frames
        .iter()
        .flat_map(|f| f.parts())
        .filter(|p| contains(&a, p) || contains(&b, p))
        .map(Bytes::len)
        .sum();
    assert_eq!(sliced, a.len() + b.len());
    for (frame, want) in frames.into_iter().zip(expected) {
        assert_eq!(frame.into_bytes(), want);
    }
}

#[test]
fn a_tiny_slice_at_a_cut_is_copied() {
    let a = pattern(100_000, 4);
    let v = Value::Bin(a.clone());
    // Content per frame 99,990: the second frame gets the payload's last
    // 15 bytes (5 bytes of bin32 header came first), under MIN_SHARED_PART.
    let (frames, expected) = frames_of(&v, 100_002);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].parts().len(), 1);
    assert_eq!(frames[1].len(), HEADER_LEN + 15);
    for (frame, want) in frames.into_iter().zip(expected) {
        assert_eq!(frame.into_bytes(), want);
    }
}

#[test]
fn many_small_segments_are_coalesced() {
    // A threshold of 1 shares every binary; 500 of 10 bytes each must not
    // become 1000 slices of a frame.
    let v = Value::Array((0..500).map(|i| Value::Bin(pattern(10, i))).collect());
    let message = msgpack::encode_segmented_with(&v, HEADER_LEN, 1).unwrap();
    assert_eq!(message.shared().count(), 500);
    let frames: Vec<SegmentedFrame> = chunk_segmented(message, 1, 0).unwrap().collect();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].parts().len(), 1);
    let expected: Vec<Bytes> = chunk(msgpack::encode(&v).unwrap(), 1, 0).unwrap().collect();
    assert_eq!(frames[0].clone().into_bytes(), expected[0]);
}

#[test]
fn plain_bytes_and_small_payloads_are_copied() {
    #[derive(Serialize)]
    struct Plain {
        bytes: Bytes,
        vec: serde_bytes_like::Buf,
        small: SharedBytes,
    }
    let plain = Plain {
        bytes: pattern(200_000, 5),
        vec: serde_bytes_like::Buf(pattern(200_000, 6).to_vec()),
        small: SharedBytes::from(pattern(SHARE_THRESHOLD - 1, 7)),
    };
    let message = msgpack::encode_segmented(&plain).unwrap();
    assert_eq!(message.shared().count(), 0);
    assert_eq!(message.to_bytes(), msgpack::encode(&plain).unwrap());
}

/// A `Vec<u8>` serialized as binary, as `serde_bytes` does.
mod serde_bytes_like {
    pub struct Buf(pub Vec<u8>);
    impl serde::Serialize for Buf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
}

#[test]
fn to_value_keeps_shared_buffers() {
    let tile = pattern(SHARE_THRESHOLD, 8);
    let image = Image {
        seq: 1,
        tiles: vec![SharedBytes::from(tile.clone())],
        thumbnail: pattern(10, 9),
    };
    let v = to_value(&image).unwrap();
    let got = v
        .get("tiles")
        .unwrap()
        .index(0)
        .unwrap()
        .as_bytes()
        .unwrap();
    assert_eq!(got.as_ptr(), tile.as_ptr());
    // Small ones are copied as before.
    let thumb = v.get("thumbnail").unwrap().as_bytes().unwrap();
    assert_ne!(thumb.as_ptr(), image.thumbnail.as_ptr());
    assert_eq!(thumb, &image.thumbnail);
}

/// Serializes a payload, then fails.
struct Failing(SharedBytes);

impl Serialize for Failing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&self.0)?;
        Err(S::Error::custom("no second element"))
    }
}

#[test]
fn an_error_leaves_nothing_behind() {
    let payload = SharedBytes::from(pattern(SHARE_THRESHOLD, 10));
    assert!(msgpack::encode_segmented(&Failing(payload.clone())).is_err());
    assert!(v2::encode_segmented(&Failing(payload.clone()), 0).is_err());
    // Outside an encode, nothing is shared: to_value's capture is its own.
    let v = Value::Bin(payload.0.clone());
    let message = msgpack::encode_segmented(&v).unwrap();
    assert_eq!(message.shared().count(), 1);
    assert_eq!(message.to_bytes(), msgpack::encode(&v).unwrap());
}

/// Encodes something else (segmented) in the middle of its own serialize.
struct Nested(SharedBytes, SharedBytes);

impl Serialize for Nested {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&self.0)?;
        let inner = msgpack::encode_segmented(&self.1).map_err(S::Error::custom)?;
        assert_eq!(inner.shared().count(), 1);
        seq.serialize_element(&self.1)?;
        seq.end()
    }
}

#[test]
fn nested_encodes_do_not_disturb_each_other() {
    let n = Nested(
        SharedBytes::from(pattern(SHARE_THRESHOLD, 11)),
        SharedBytes::from(pattern(SHARE_THRESHOLD + 1, 12)),
    );
    let message = msgpack::encode_segmented(&n).unwrap();
    let shared: Vec<&Bytes> = message.shared().collect();
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0].as_ptr(), n.0.as_ptr());
    assert_eq!(shared[1].as_ptr(), n.1.as_ptr());
    assert_eq!(message.to_bytes(), msgpack::encode(&n).unwrap());
}

#[test]
fn v2_segmented_frames_decode() {
    let msg = Message::Result {
        id: "rpc:c1:3".into(),
        result: Value::map([("blob", Value::Bin(pattern(300_000, 13)))]),
    };
    let mut decoder = v2::Decoder::new(Default::default());
    decoder.set_authenticated(true);
    let mut out = None;
    for frame in v2::encode_segmented(&msg, 65_536).unwrap() {
        assert!(frame.len() <= 65_536);
        out = decoder.push(frame.into_bytes()).unwrap();
    }
    assert_eq!(out, Some(msg));
}
