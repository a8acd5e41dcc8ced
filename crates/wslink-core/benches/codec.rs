//! Codec micro-benchmarks: encoding and decoding an envelope that carries
//! 1 MiB of binary, and a small call, in both wire generations; un-chunking
//! a 64 MiB message. `copy_*` measure one copy of the same bytes into a
//! fresh buffer, the yardstick for "costs no more than two copies".
//! `v2_encode_segmented_*` are the zero-copy encodes the server uses
//! (`v2::encode_segmented`: the binary is sliced, not copied).
//!
//! ```text
//! cargo bench -p wslink-core --bench codec
//! ```
//!
//! `benches/run.sh` runs these and `wslink-bench` puts their medians in its
//! table (from `target/criterion/codec/*/new/estimates.json`).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::{UnchunkLimits, Unchunker};
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::DEFAULT_MAX_MSG_SIZE;
use wslink_core::{Message, Request, Value};

const MIB: usize = 1 << 20;

fn payload(n: usize) -> Bytes {
    (0..n)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// What `conformance.add(1, 2)` sends.
fn small_call() -> Message {
    Message::Request(Request {
        id: "rpc:c0123456789abcdef0123456789abcdef:17".into(),
        method: "conformance.add".into(),
        args: vec![Value::from(1), Value::from(2)],
        kwargs: Vec::new(),
    })
}

/// What `conformance.publish` sends: `{seq, blob}` with 1 MiB of binary.
fn binary_result(blob: &Bytes) -> Message {
    Message::Result {
        id: "publish:bench:0".into(),
        result: Value::map([("seq", Value::from(0)), ("blob", Value::Bin(blob.clone()))]),
    }
}

fn text(frame: &Frame) -> &str {
    match frame {
        Frame::Text(t) => std::str::from_utf8(t).expect("1.x text frames are UTF-8"),
        Frame::Binary(_) => panic!("expected a text frame"),
    }
}

fn decode_v1(frames: &[Frame]) -> Option<Message> {
    let mut d = v1::Decoder::new(v1::DecodeLimits::default());
    let mut out = None;
    for f in frames {
        match f {
            Frame::Text(_) => out = d.push_text(text(f)).expect("valid 1.x"),
            Frame::Binary(b) => d.push_binary(b.clone()).expect("announced"),
        }
    }
    out
}

fn decode_v2(frames: &[Frame]) -> Option<Message> {
    let mut d = v2::Decoder::new(v2::DecodeLimits::default());
    d.set_authenticated(true);
    let mut out = None;
    for f in frames {
        let Frame::Binary(b) = f else {
            panic!("2.x frames are binary")
        };
        out = d.push(b.clone()).expect("valid 2.x");
    }
    out
}

fn one_mib(c: &mut Criterion) {
    let blob = payload(MIB);
    let message = binary_result(&blob);
    let keys = AttachmentKeys::new();
    let v2_frames = v2::encode_frames(&message, DEFAULT_MAX_MSG_SIZE).unwrap();
    let v1_frames = v1::encode(&message, &keys).unwrap();
    assert_eq!(decode_v2(&v2_frames).as_ref(), Some(&message));
    assert_eq!(decode_v1(&v1_frames).as_ref(), Some(&message));

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("copy_1MiB", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&blob)))
    });
    g.bench_function("v2_encode_1MiB_binary", |b| {
        b.iter(|| v2::encode_frames(black_box(&message), DEFAULT_MAX_MSG_SIZE).unwrap())
    });
    g.bench_function("v2_encode_segmented_1MiB_binary", |b| {
        b.iter(|| {
            v2::encode_segmented(black_box(&message), DEFAULT_MAX_MSG_SIZE)
                .unwrap()
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("v2_decode_1MiB_binary", |b| {
        b.iter(|| decode_v2(black_box(&v2_frames)).unwrap())
    });
    g.bench_function("v1_encode_1MiB_binary", |b| {
        b.iter(|| v1::encode(black_box(&message), &keys).unwrap())
    });
    g.bench_function("v1_decode_1MiB_binary", |b| {
        b.iter(|| decode_v1(black_box(&v1_frames)).unwrap())
    });
    g.finish();
}

fn small(c: &mut Criterion) {
    let message = small_call();
    let keys = AttachmentKeys::new();
    let v2_frames = v2::encode_frames(&message, DEFAULT_MAX_MSG_SIZE).unwrap();
    let v1_frames = v1::encode(&message, &keys).unwrap();
    assert_eq!(decode_v2(&v2_frames).as_ref(), Some(&message));
    assert_eq!(decode_v1(&v1_frames).as_ref(), Some(&message));

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("v2_encode_small_call", |b| {
        b.iter(|| v2::encode_frames(black_box(&message), DEFAULT_MAX_MSG_SIZE).unwrap())
    });
    g.bench_function("v2_encode_segmented_small_call", |b| {
        b.iter(|| {
            v2::encode_segmented(black_box(&message), DEFAULT_MAX_MSG_SIZE)
                .unwrap()
                .collect::<Vec<_>>()
        })
    });
    g.bench_function("v2_decode_small_call", |b| {
        b.iter(|| decode_v2(black_box(&v2_frames)).unwrap())
    });
    g.bench_function("v1_encode_small_call", |b| {
        b.iter(|| v1::encode(black_box(&message), &keys).unwrap())
    });
    g.bench_function("v1_decode_small_call", |b| {
        b.iter(|| decode_v1(black_box(&v1_frames)).unwrap())
    });
    g.finish();
}

fn unchunk_64mib(c: &mut Criterion) {
    let size = 64 * MIB;
    let blob = payload(size);
    let message = Message::Result {
        id: "rpc:c1:0".into(),
        result: Value::Bin(blob.clone()),
    };
    // Frames as a wslink 2.x server sends them: 4 MiB each, in order.
    let frames: Vec<Bytes> = v2::encode(&message, DEFAULT_MAX_MSG_SIZE)
        .unwrap()
        .collect();
    let limits = UnchunkLimits {
        max_message_size: 128 * MIB,
        max_pending_bytes: 129 * MIB,
        ..UnchunkLimits::default()
    };
    let unchunk = |frames: &[Bytes]| {
        let mut u = Unchunker::new(limits);
        u.set_authenticated(true);
        let mut out = None;
        for f in frames {
            out = u.push(f.clone()).unwrap();
        }
        out.expect("the last frame completes the message")
    };
    assert_eq!(
        unchunk(&frames).len(),
        frames.iter().map(|f| f.len() - 12).sum::<usize>()
    );

    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(10);
    g.bench_function("copy_64MiB", |b| {
        b.iter(|| Bytes::copy_from_slice(black_box(&blob)))
    });
    g.bench_function("v2_unchunk_64MiB", |b| {
        b.iter(|| unchunk(black_box(&frames)))
    });
    g.bench_function("v2_encode_64MiB_chunked", |b| {
        b.iter(|| v2::encode_frames(black_box(&message), DEFAULT_MAX_MSG_SIZE).unwrap())
    });
    g.bench_function("v2_encode_segmented_64MiB_chunked", |b| {
        b.iter(|| {
            v2::encode_segmented(black_box(&message), DEFAULT_MAX_MSG_SIZE)
                .unwrap()
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, one_mib, small, unchunk_64mib);
criterion_main!(benches);
