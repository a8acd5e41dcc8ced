//! The client against servers that lie, misbehave or attack: every case
//! must end in a typed error (or a closed connection, or a message ignored
//! and counted), never in a panic, a stack overflow, a hang or memory that
//! grows with what the server sends.
//!
//! Memory is measured with a counting allocator, per test thread: a
//! `#[tokio::test]` runs the client's connection task and the scripted
//! server on the test's own thread, so the bytes that thread holds at its
//! peak bound what the client held (the server's share included).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use support::fake::{chunk_frame, serve, Conn, CLIENT_ID};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_client::{Client, ClientBuilder, Error, Generation, Value};
use wslink_core::chunking::ChunkHeader;
use wslink_core::codec::{v2, Frame};
use wslink_core::{Message, RpcError};

const LIMIT: Duration = Duration::from_secs(20);
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Memory accounting

struct Counting;

thread_local! {
    /// Bytes this thread allocated and has not freed.
    static LIVE: Cell<usize> = const { Cell::new(0) };
    /// The highest `LIVE` since the last `reset_peak`.
    static PEAK: Cell<usize> = const { Cell::new(0) };
    /// The largest single allocation since the last `reset_peak`.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + n;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
    let _ = LARGEST.try_with(|l| l.set(l.get().max(n)));
}

fn shrank(n: usize) {
    // Memory freed by another thread than its allocator's only makes the
    // counts higher (never lower) than the truth: bounds stay valid.
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
}

// SAFETY: every call goes straight to the system allocator; the counters
// are plain thread-local cells (const-initialized, no destructor, so
// touching them never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What this thread's allocations did while `f` ran.
#[derive(Debug)]
struct Footprint {
    /// The most bytes held at once, above what was held before.
    peak: usize,
    /// The largest single allocation.
    largest: usize,
}

async fn footprint<T>(f: impl Future<Output = T>) -> (T, Footprint) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    LARGEST.with(|l| l.set(0));
    let out = f.await;
    let print = Footprint {
        peak: PEAK.with(Cell::get).saturating_sub(start),
        largest: LARGEST.with(Cell::get),
    };
    (out, print)
}

// ---------------------------------------------------------------------------
// Helpers

/// Runs `f` with a time limit, so that a hanging client fails the test.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

fn builder(url: &str, generation: Generation) -> ClientBuilder {
    Client::builder(url)
        .secret("s")
        .generation(generation)
        .call_timeout(LIMIT)
}

/// Answers the hello, waits for one call, sends `garbage` as is, then
/// reports the client's close frame. Returns the call's error and that
/// close frame; checks that later calls get the same kind of error.
async fn after_garbage(
    generation: Generation,
    configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    garbage: Vec<Ws>,
) -> (Error, Option<CloseFrame>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (url, _server) = serve(generation, move |mut c| async move {
        c.hello(None).await;
        let _ = c.request().await;
        for g in garbage {
            c.raw(g).await;
        }
        let _ = tx.send(c.close_frame().await);
    })
    .await;
    let c = configure(builder(&url, generation))
        .connect()
        .await
        .unwrap();
    let err = within(c.call("x", vec![], vec![])).await.unwrap_err();
    within(c.closed()).await;
    let later = c.call("y", vec![], vec![]).await.unwrap_err();
    assert_eq!(
        std::mem::discriminant(&later),
        std::mem::discriminant(&err),
        "{later:?} after {err:?}"
    );
    (err, within(rx).await.unwrap())
}

#[track_caller]
fn assert_protocol(err: &Error, needle: &str) {
    assert!(
        matches!(err, Error::Protocol { .. }) && err.to_string().contains(needle),
        "expected a protocol error mentioning {needle:?}, got {err:?} ({err})"
    );
}

#[track_caller]
fn assert_closed_with(close: Option<CloseFrame>, code: CloseCode) {
    let close = close.expect("the client sent no close frame");
    assert_eq!(close.code, code, "{close:?}");
}

fn binary(message: &Message, max_frame: usize) -> Vec<Ws> {
    v2::encode_frames(message, max_frame)
        .unwrap()
        .into_iter()
        .map(|f| match f {
            Frame::Binary(b) => Ws::Binary(b),
            Frame::Text(_) => unreachable!(),
        })
        .collect()
}

/// A 2.x frame holding `msgpack` whole.
fn whole(msgpack: &[u8]) -> Ws {
    chunk_frame(11, 0, msgpack.len() as u32, msgpack)
}

// ---------------------------------------------------------------------------
// 2.x chunk headers that lie

#[tokio::test]
async fn a_chunk_header_declaring_4_gib_is_refused_at_the_default_limit() {
    let (err, close) = after_garbage(
        Generation::V2,
        |b| b,
        vec![chunk_frame(7, 0, u32::MAX, b"tiny")],
    )
    .await;
    assert_protocol(&err, "declared size of 4294967295 bytes is over the limit");
    assert_closed_with(close, CloseCode::Size);
}

/// Even with the size limit lifted, a 4 GiB declaration costs what
/// arrives, not what it declares; and the server leaving mid-message fails
/// the call with `Closed`.
#[tokio::test]
async fn a_4_gib_message_within_the_limit_holds_only_the_bytes_that_arrived() {
    const SENT: usize = 4 * MIB;
    const CHUNK: usize = 64 * 1024;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let _ = c.request().await;
        let content = vec![0x90u8; CHUNK];
        for i in 0..SENT / CHUNK {
            c.raw(chunk_frame(7, (i * CHUNK) as u32, u32::MAX, &content))
                .await;
        }
        c.raw(Ws::Close(None)).await;
        c.close_frame().await;
    })
    .await;
    let (err, print) = unlimited_call_footprint(&url).await;
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    // 4 MiB arrived; a reassembler that believed the header would have
    // asked for 4 GiB at the first chunk.
    assert!(print.largest < 16 * MIB, "{print:?}");
    assert!(print.peak < 24 * MIB, "{print:?}");
    within(server).await.unwrap();
}

/// Makes one call with the size limit lifted, on 2.x; returns its error
/// and what the client allocated meanwhile.
async fn unlimited_call_footprint(url: &str) -> (Error, Footprint) {
    footprint(async {
        let c = builder(url, Generation::V2)
            .max_message_size(usize::MAX)
            .connect()
            .await
            .unwrap();
        within(c.call("x", vec![], vec![])).await.unwrap_err()
    })
    .await
}

/// A WebSocket frame header promising 1 GiB costs what arrives too: the
/// client's frame reader grows the payload with the bytes, never by the
/// declared length.
#[tokio::test]
async fn a_frame_header_declaring_1_gib_holds_only_the_bytes_that_arrived() {
    const SENT: usize = 2 * MIB;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let _ = c.request().await;
        let mut head = vec![0x82, 127];
        head.extend_from_slice(&(1u64 << 30).to_be_bytes());
        c.raw_bytes(&head).await;
        c.raw_bytes(&vec![0x90u8; SENT]).await;
    })
    .await;
    let (err, print) = unlimited_call_footprint(&url).await;
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    assert!(print.largest < 16 * MIB, "{print:?}");
    assert!(print.peak < 24 * MIB, "{print:?}");
    within(server).await.unwrap();
}

#[tokio::test]
async fn inconsistent_chunks_are_protocol_errors() {
    let cases: Vec<(&str, Vec<Ws>, &str)> = vec![
        (
            "past the end",
            vec![chunk_frame(1, 95, 100, &[0; 10])],
            "runs past the declared total",
        ),
        (
            // u32 offset + length would wrap around to a small number.
            "offset wrapping around",
            vec![chunk_frame(1, u32::MAX - 3, 1000, &[0; 8])],
            "runs past the declared total",
        ),
        (
            "overlapping",
            vec![
                chunk_frame(1, 0, 100, &[0; 10]),
                chunk_frame(1, 5, 100, &[0; 10]),
            ],
            "overlaps",
        ),
        (
            "duplicate",
            vec![
                chunk_frame(1, 0, 100, &[0; 10]),
                chunk_frame(1, 0, 100, &[0; 10]),
            ],
            "already received",
        ),
        (
            "duplicate of a later chunk",
            vec![
                chunk_frame(1, 50, 100, &[0; 10]),
                chunk_frame(1, 0, 100, &[0; 10]),
                chunk_frame(1, 50, 100, &[0; 10]),
            ],
            "already received",
        ),
        (
            "changing total",
            vec![
                chunk_frame(1, 0, 100, &[0; 10]),
                chunk_frame(1, 10, 200, &[0; 10]),
            ],
            "earlier chunk",
        ),
        ("empty chunk", vec![chunk_frame(1, 0, 100, &[])], "is empty"),
        (
            "zero total",
            vec![chunk_frame(1, 0, 0, &[1])],
            "total size of 0",
        ),
        (
            "short frame",
            vec![Ws::Binary(Bytes::from_static(&[1, 2, 3]))],
            "shorter than",
        ),
    ];
    for (what, frames, needle) in cases {
        let (err, close) = after_garbage(Generation::V2, |b| b, frames).await;
        assert!(
            matches!(err, Error::Protocol { .. }) && err.to_string().contains(needle),
            "{what}: {err:?}"
        );
        assert_closed_with(close, CloseCode::Protocol);
    }
}

/// 100,000 messages started and never finished: the client holds 64 at
/// most, then gives up on the connection.
#[tokio::test]
async fn a_hundred_thousand_partial_messages_stop_at_the_limit() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (url, _server) = serve(Generation::V2, move |mut c| async move {
        c.hello(None).await;
        let _ = c.request().await;
        for id in 0..100_000u32 {
            let frame = chunk_frame(id, 0, 2, b"x");
            if c.ws.feed(frame).await.is_err() {
                break;
            }
        }
        let _ = c.ws.flush().await;
        let _ = tx.send(c.close_frame().await);
    })
    .await;
    let (err, print) = footprint(async {
        let c = builder(&url, Generation::V2).connect().await.unwrap();
        within(c.call("x", vec![], vec![])).await.unwrap_err()
    })
    .await;
    assert_protocol(&err, "over the limit of 64 partial messages");
    assert_closed_with(within(rx).await.unwrap(), CloseCode::Protocol);
    assert!(print.peak < 8 * MIB, "{print:?}");
}

/// The limit on partial messages is the builder's: four held is fine, a
/// fifth is a protocol error.
#[tokio::test]
async fn max_pending_messages_is_settable() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (url, server) = serve(Generation::V2, move |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        for id in 0..4u32 {
            c.raw(chunk_frame(id, 0, 2, b"x")).await;
        }
        c.reply(&r.id, Value::from("four held")).await;
        let _ = c.request().await;
        c.raw(chunk_frame(4, 0, 2, b"x")).await;
        let _ = tx.send(c.close_frame().await);
    })
    .await;
    let c = builder(&url, Generation::V2)
        .max_pending_messages(4)
        .connect()
        .await
        .unwrap();
    let v = within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(v.as_str(), Some("four held"));
    let err = within(c.call("y", vec![], vec![])).await.unwrap_err();
    assert_protocol(&err, "over the limit of 4 partial messages");
    assert_closed_with(within(rx).await.unwrap(), CloseCode::Protocol);
    within(server).await.unwrap();
}

/// The bytes partial messages may hold are the builder's too, apart from
/// the message size limit.
#[tokio::test]
async fn max_pending_bytes_is_settable() {
    const CHUNK: usize = 16 * 1024;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (url, server) = serve(Generation::V2, move |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        let content = vec![0x90u8; CHUNK];
        c.raw(chunk_frame(7, 0, MIB as u32, &content)).await;
        c.reply(&r.id, Value::from("16 KiB held")).await;
        let _ = c.request().await;
        for i in 1..16 {
            c.raw(chunk_frame(7, (i * CHUNK) as u32, MIB as u32, &content))
                .await;
        }
        let _ = tx.send(c.close_frame().await);
    })
    .await;
    let c = builder(&url, Generation::V2)
        .max_pending_bytes(64 * 1024)
        .connect()
        .await
        .unwrap();
    let v = within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(v.as_str(), Some("16 KiB held"));
    let err = within(c.call("y", vec![], vec![])).await.unwrap_err();
    assert_protocol(&err, "over the limit of 65536");
    assert_closed_with(within(rx).await.unwrap(), CloseCode::Size);
    within(server).await.unwrap();
}

/// `levels` arrays nested in one another, the innermost empty.
fn nested_value(levels: usize) -> Value {
    let mut v = Value::Array(Vec::new());
    for _ in 1..levels {
        v = Value::from(vec![v]);
    }
    v
}

/// The nesting limit is the builder's, in both generations, and counts the
/// message's own map: with 10 levels, a result of 9 nested arrays passes
/// and one of 10 does not.
#[tokio::test]
async fn max_depth_is_settable() {
    for generation in [Generation::V2, Generation::V1] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (url, server) = serve(generation, move |mut c| async move {
            match generation {
                Generation::V2 => {
                    c.hello(None).await;
                }
                Generation::V1 => v1_hello(&mut c).await,
            }
            let r = c.request().await;
            c.reply(&r.id, nested_value(9)).await;
            let r = c.request().await;
            c.reply(&r.id, nested_value(10)).await;
            let _ = tx.send(c.close_frame().await);
        })
        .await;
        let c = builder(&url, generation)
            .max_depth(10)
            .connect()
            .await
            .unwrap();
        let v = within(c.call("x", vec![], vec![])).await.unwrap();
        assert_eq!(v, nested_value(9), "{generation:?}");
        let err = within(c.call("y", vec![], vec![])).await.unwrap_err();
        assert_protocol(&err, "nesting deeper than 10 levels");
        assert_closed_with(within(rx).await.unwrap(), CloseCode::Protocol);
        within(server).await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// Messages that do not parse

/// `depth` nested one-element arrays around an empty one, as msgpack.
fn nested_msgpack(depth: usize) -> Vec<u8> {
    let mut m = vec![0x91; depth];
    m.push(0x90);
    m
}

#[tokio::test]
async fn malformed_msgpack_is_a_protocol_error() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("undefined marker", vec![0xc1], "invalid msgpack marker"),
        (
            "array claiming 4 billion elements",
            vec![0xdd, 0xff, 0xff, 0xff, 0xff],
            "truncated",
        ),
        (
            "binary claiming 4 GiB",
            vec![0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
            "truncated",
        ),
        (
            "map claiming 4 billion entries",
            vec![0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0],
            "truncated",
        ),
        ("trailing bytes", vec![0x80, 0x80], "trailing bytes"),
        ("not an envelope", vec![0x2a], "must be a map"),
        (
            "100,000 nested arrays",
            nested_msgpack(100_000),
            "nesting deeper than 128",
        ),
        (
            "100,000 nested maps",
            [0x81, 0xc0]
                .repeat(100_000)
                .into_iter()
                .chain([0x80])
                .collect(),
            "nesting deeper than 128",
        ),
    ];
    for (what, msgpack, needle) in cases {
        let (err, close) = after_garbage(Generation::V2, |b| b, vec![whole(&msgpack)]).await;
        assert!(
            matches!(err, Error::Protocol { .. }) && err.to_string().contains(needle),
            "{what}: {err:?} ({err})"
        );
        assert_closed_with(close, CloseCode::Protocol);
    }
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error() {
    let deep_arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_objects = format!("{}null{}", r#"{"a":"#.repeat(100_000), "}".repeat(100_000));
    let deep_result =
        format!(r#"{{"wslink":"1.0","id":"rpc:{CLIENT_ID}:0","result":{deep_arrays}}}"#);
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{not json".into(), "JSON"),
        ("truncated", r#"{"wslink":"1.0","id":"#.into(), "JSON"),
        ("not an envelope", "[1, 2]".into(), "map"),
        ("100,000 nested arrays", deep_arrays, "recursion limit"),
        ("100,000 nested objects", deep_objects, "recursion limit"),
        (
            "a reply nested 100,000 deep",
            deep_result,
            "recursion limit",
        ),
    ];
    for (what, text, needle) in cases {
        let (err, close) = after_garbage(Generation::V1, |b| b, vec![Ws::Text(text.into())]).await;
        assert!(
            matches!(err, Error::Protocol { .. }) && err.to_string().contains(needle),
            "{what}: {err:?} ({err})"
        );
        assert_closed_with(close, CloseCode::Protocol);
    }
}

#[tokio::test]
async fn a_hello_reply_nested_100_000_deep_fails_the_connect() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        let _ = c.request().await;
        // {"id": "system:c0:0", "result": [[[...]]]}
        let mut m = vec![0x82, 0xa2, b'i', b'd', 0xab];
        m.extend_from_slice(b"system:c0:0");
        m.extend_from_slice(&[0xa6, b'r', b'e', b's', b'u', b'l', b't']);
        m.extend(nested_msgpack(100_000));
        c.raw(whole(&m)).await;
        c.close_frame().await;
    })
    .await;
    let err = within(builder(&url, Generation::V2).connect())
        .await
        .unwrap_err();
    assert_protocol(&err, "nesting deeper than 128");
}

#[tokio::test]
async fn a_hello_reply_over_the_size_limit_fails_the_connect() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        let hello = c.request().await;
        c.reply(&hello.id, Value::from(Bytes::from(vec![0u8; 4096])))
            .await;
        c.close_frame().await;
    })
    .await;
    let err = within(
        builder(&url, Generation::V2)
            .max_message_size(1024)
            .connect(),
    )
    .await
    .unwrap_err();
    assert_protocol(&err, "over the size limit");
}

#[tokio::test]
async fn a_hello_reply_without_a_client_id_is_a_protocol_error() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        let hello = c.request().await;
        c.reply(&hello.id, Value::from("welcome")).await;
        c.close_frame().await;
    })
    .await;
    let err = within(builder(&url, Generation::V2).connect())
        .await
        .unwrap_err();
    assert_protocol(&err, "no client id");
}

// ---------------------------------------------------------------------------
// Replies nobody asked for

#[tokio::test]
async fn replies_to_ids_never_sent_and_duplicate_replies_are_ignored() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let first = c.request().await;
        assert_eq!(first.id, format!("rpc:{CLIENT_ID}:0"));
        // Before the real reply: a reply to the call the client has not
        // made yet (it must not be kept for it), ids that overflow, other
        // clients' ids, and a request (servers do not send those).
        for id in [
            format!("rpc:{CLIENT_ID}:1"),
            format!("rpc:{CLIENT_ID}:18446744073709551616"),
            format!("rpc:{CLIENT_ID}:-1"),
            format!("rpc:{CLIENT_ID}:"),
            "rpc:other:0".to_string(),
            "system:c0:0".to_string(),
            String::new(),
        ] {
            c.reply(&id, Value::from("stray")).await;
        }
        c.send(&Message::Request(wslink_core::Request {
            id: "rpc:server:0".into(),
            method: "client.method".into(),
            args: vec![],
            kwargs: vec![],
        }))
        .await;
        c.reply(&first.id, Value::from("first")).await;
        // After it: the same reply again, and an error for the same id.
        c.reply(&first.id, Value::from("first again")).await;
        c.send(&Message::Error {
            id: first.id.clone(),
            error: RpcError::new(-1, "late error"),
        })
        .await;
        let second = c.request().await;
        assert_eq!(second.id, format!("rpc:{CLIENT_ID}:1"));
        c.reply(&second.id, Value::from("second")).await;
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V2).connect().await.unwrap();
    let first = within(c.call("a", vec![], vec![])).await.unwrap();
    assert_eq!(first.as_str(), Some("first"));
    let second = within(c.call("b", vec![], vec![])).await.unwrap();
    assert_eq!(second.as_str(), Some("second"));
    let stats = c.stats();
    assert_eq!(stats.unknown_replies, 9, "{stats:?}");
    assert_eq!(stats.unexpected_messages, 1, "{stats:?}");
    assert!(!c.is_closed());
    c.close().await;
    within(server).await.unwrap();
}

// ---------------------------------------------------------------------------
// Publish floods

/// Publishes far bigger than the byte budget, to a subscriber that reads
/// nothing: it keeps the newest that fit, the client's memory stays flat,
/// and calls still get their replies.
#[tokio::test]
async fn a_publish_flood_is_held_to_the_subscription_byte_budget() {
    const SENT: usize = 400;
    const BLOB: usize = 256 * 1024;
    const BUDGET: usize = 2 * MIB;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        for seq in 0..SENT {
            let blob = Value::from(Bytes::from(vec![seq as u8; BLOB]));
            let result = Value::map([("seq", Value::from(seq)), ("blob", blob)]);
            c.reply("publish:frames:0", result).await;
        }
        c.reply(&r.id, Value::from("still answering")).await;
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V2)
        .subscription_buffer(100_000)
        .subscription_buffer_bytes(BUDGET)
        .connect()
        .await
        .unwrap();
    let mut sub = c.subscribe("frames").unwrap();
    let (v, print) = footprint(within(c.call("x", vec![], vec![]))).await;
    assert_eq!(v.unwrap().as_str(), Some("still answering"));
    // 100 MiB were published; the subscriber holds what fits in 2 MiB.
    let kept = sub.queued();
    assert!((1..=BUDGET / BLOB).contains(&kept), "{kept}");
    assert!(sub.queued_bytes() <= BUDGET, "{}", sub.queued_bytes());
    assert_eq!(sub.dropped(), (SENT - kept) as u64);
    assert_eq!(c.stats().dropped_publishes, (SENT - kept) as u64);
    assert!(print.peak < BUDGET + 8 * MIB, "{print:?}");
    // The newest, in order.
    for seq in SENT - kept..SENT {
        let m = sub.recv().await.unwrap();
        assert_eq!(m.get("seq").and_then(Value::as_u64), Some(seq as u64));
        assert_eq!(
            m.get("blob").and_then(Value::as_bytes).unwrap()[0],
            seq as u8
        );
    }
    assert_eq!(sub.queued_bytes(), 0);
    c.close().await;
    assert!(within(sub.recv()).await.is_none());
    within(server).await.unwrap();
}

/// The same flood to a subscriber that reads, slowly, while it goes on:
/// what it gets is in order and ends with the newest; memory stays flat.
#[tokio::test]
async fn a_publish_flood_to_a_slow_reader_stays_in_order_and_bounded() {
    const SENT: u64 = 2000;
    const BLOB: usize = 64 * 1024;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let blob = Value::from(Bytes::from(vec![1u8; BLOB]));
        for seq in 0..SENT {
            let result = Value::map([("seq", Value::from(seq)), ("blob", blob.clone())]);
            c.reply("publish:frames:0", result).await;
            if seq % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V2)
        .subscription_buffer_bytes(MIB)
        .connect()
        .await
        .unwrap();
    let mut sub = c.subscribe("frames").unwrap();
    let (seen, print) = footprint(within(async {
        let mut seen = Vec::new();
        while let Some(m) = sub.recv().await {
            let seq = m.get("seq").and_then(Value::as_u64).unwrap();
            seen.push(seq);
            if seq == SENT - 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        seen
    }))
    .await;
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(seen.last(), Some(&(SENT - 1)));
    assert_eq!(seen.len() as u64 + sub.dropped(), SENT);
    assert!(print.peak < 8 * MIB, "{print:?}");
    c.close().await;
    within(server).await.unwrap();
}

/// One publish bigger than the whole budget is still delivered (alone).
#[tokio::test]
async fn a_publish_over_the_byte_budget_is_kept_alone() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        c.reply("publish:t:0", Value::from(1)).await;
        c.reply("publish:t:0", Value::from(Bytes::from(vec![9u8; 4096])))
            .await;
        c.reply(&r.id, Value::Nil).await;
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V2)
        .subscription_buffer_bytes(1024)
        .connect()
        .await
        .unwrap();
    let mut sub = c.subscribe("t").unwrap();
    within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(sub.queued(), 1);
    assert_eq!(sub.dropped(), 1);
    let big = sub.recv().await.unwrap();
    assert_eq!(big.as_bytes().map(|b| b.len()), Some(4096));
    c.close().await;
    within(server).await.unwrap();
}

// ---------------------------------------------------------------------------
// 1.x attachments out of step

fn header(key: &str) -> Ws {
    Ws::Text(
        format!(r#"{{"wslink":"1.0","method":"wslink.binary.attachment","args":["{key}"]}}"#)
            .into(),
    )
}

async fn v1_hello(c: &mut Conn) {
    let hello = c.request().await;
    c.reply(
        &hello.id,
        Value::map([("clientID", Value::from(CLIENT_ID))]),
    )
    .await;
}

#[tokio::test]
async fn v1_a_header_without_its_binary_leaves_the_key_a_string() {
    let (url, server) = serve(Generation::V1, |mut c| async move {
        v1_hello(&mut c).await;
        let r = c.request().await;
        c.raw(header("wslink_bin77")).await;
        c.raw(Ws::Text(
            format!(
                r#"{{"wslink":"1.0","id":"{}","result":{{"img":"wslink_bin77"}}}}"#,
                r.id
            )
            .into(),
        ))
        .await;
        let r = c.request().await;
        c.reply(&r.id, Value::from("next")).await;
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V1).connect().await.unwrap();
    let v = within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(v.get("img").and_then(Value::as_str), Some("wslink_bin77"));
    let v = within(c.call("y", vec![], vec![])).await.unwrap();
    assert_eq!(v.as_str(), Some("next"));
    c.close().await;
    within(server).await.unwrap();
}

#[tokio::test]
async fn v1_a_binary_without_a_header_is_a_protocol_error() {
    let (err, close) = after_garbage(
        Generation::V1,
        |b| b,
        vec![Ws::Binary(Bytes::from_static(b"\x00\x01"))],
    )
    .await;
    assert_protocol(&err, "without an attachment header");
    assert_closed_with(close, CloseCode::Protocol);
}

#[tokio::test]
async fn v1_a_flood_of_headers_without_binaries_stops_at_the_limit() {
    let garbage = (0..5000)
        .map(|i| header(&format!("wslink_bin{i}")))
        .collect();
    let (err, close) = after_garbage(Generation::V1, |b| b, garbage).await;
    assert_protocol(&err, "more than 1024 attachment keys");
    assert_closed_with(close, CloseCode::Protocol);
}

/// The number of keys announced ahead of their bytes is the builder's:
/// four waiting is fine, a fifth is a protocol error.
#[tokio::test]
async fn v1_max_pending_attachments_is_settable() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (url, server) = serve(Generation::V1, move |mut c| async move {
        v1_hello(&mut c).await;
        let r = c.request().await;
        for i in 0..4 {
            c.raw(header(&format!("wslink_bin{i}"))).await;
        }
        c.reply(&r.id, Value::from("four announced")).await;
        let _ = c.request().await;
        c.raw(header("wslink_bin4")).await;
        let _ = tx.send(c.close_frame().await);
    })
    .await;
    let c = builder(&url, Generation::V1)
        .max_pending_attachments(4)
        .connect()
        .await
        .unwrap();
    let v = within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(v.as_str(), Some("four announced"));
    let err = within(c.call("y", vec![], vec![])).await.unwrap_err();
    assert_protocol(&err, "more than 4 attachment keys");
    assert_closed_with(within(rx).await.unwrap(), CloseCode::Protocol);
    within(server).await.unwrap();
}

/// A key is a counter: one the size of a text frame is refused, else 1024
/// of them would be held (up to 1024 times the text frame limit).
#[tokio::test]
async fn v1_an_attachment_key_the_size_of_a_frame_is_refused() {
    let key = format!("wslink_bin{}", "7".repeat(MIB));
    let (err, close) = after_garbage(Generation::V1, |b| b, vec![header(&key)]).await;
    assert_protocol(&err, "not a wslink_binN key");
    assert!(err.to_string().len() < 1024, "{}", err.to_string().len());
    assert_closed_with(close, CloseCode::Protocol);
}

#[tokio::test]
async fn v1_attachments_no_message_claims_are_bounded() {
    let mut garbage = Vec::new();
    for i in 0..2048 {
        garbage.push(header(&format!("wslink_bin{i}")));
        garbage.push(Ws::Binary(Bytes::from(vec![0u8; 1024])));
    }
    let (err, close) = after_garbage(Generation::V1, |b| b.max_message_size(MIB), garbage).await;
    assert_protocol(&err, "over the limit of 1048576");
    assert_closed_with(close, CloseCode::Size);
}

// ---------------------------------------------------------------------------
// Servers that leave or stall

#[tokio::test]
async fn a_server_closing_mid_chunked_reply_fails_pending_calls_with_closed() {
    for close_frame in [true, false] {
        let (url, server) = serve(Generation::V2, move |mut c| async move {
            c.hello(Some(64)).await;
            let a = c.request().await;
            let _b = c.request().await;
            let reply = Message::Result {
                id: a.id,
                result: Value::from("a reply long enough to need several chunks"),
            };
            let frames = binary(&reply, 32);
            assert!(frames.len() > 2);
            for f in frames.into_iter().take(2) {
                c.raw(f).await;
            }
            if close_frame {
                c.raw(Ws::Close(None)).await;
                c.close_frame().await;
            }
            // else: drop the TCP connection without a close frame.
        })
        .await;
        let c = builder(&url, Generation::V2).connect().await.unwrap();
        let (a, b) = within(futures_util::future::join(
            c.call("a", vec![], vec![]),
            c.call("b", vec![], vec![]),
        ))
        .await;
        for err in [a.unwrap_err(), b.unwrap_err()] {
            assert!(matches!(err, Error::Closed { .. }), "{err:?}");
        }
        within(c.closed()).await;
        let later = c.call("c", vec![], vec![]).await.unwrap_err();
        assert!(matches!(later, Error::Closed { .. }), "{later:?}");
        within(server).await.unwrap();
    }
}

#[tokio::test]
async fn a_server_that_never_answers_the_hello_is_a_timeout() {
    for generation in [Generation::V2, Generation::V1] {
        let (url, _server) = serve(generation, |mut c| async move {
            let _ = c.request().await;
            c.close_frame().await;
        })
        .await;
        let started = Instant::now();
        let err = within(
            builder(&url, generation)
                .connect_timeout(Duration::from_millis(300))
                .connect(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Timeout { method, after } if method == "wslink.hello" && *after == Duration::from_millis(300)),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// A server that floods publishes (and half a hello reply) instead of
/// answering: still a timeout, and nothing piles up meanwhile.
#[tokio::test]
async fn a_server_flooding_instead_of_answering_the_hello_is_a_timeout() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        let _ = c.request().await;
        // The first half of a hello reply, never finished.
        c.raw(chunk_frame(1, 0, 1000, &[0x83; 500])).await;
        let blob = Value::from(Bytes::from(vec![1u8; 64 * 1024]));
        loop {
            let frames = binary(
                &Message::Result {
                    id: "publish:t:0".into(),
                    result: blob.clone(),
                },
                0,
            );
            for f in frames {
                if c.ws.send(f).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let (err, print) = footprint(within(
        builder(&url, Generation::V2)
            .connect_timeout(Duration::from_millis(500))
            .connect(),
    ))
    .await;
    let err = err.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { method, .. } if method == "wslink.hello"),
        "{err:?}"
    );
    assert!(print.peak < 8 * MIB, "{print:?}");
}

/// A server that stops reading: calls time out, and `close` returns instead
/// of waiting forever for a write that cannot finish.
#[tokio::test]
async fn close_returns_when_the_server_stops_reading() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(Some(64 * 1024)).await;
        // Never read again, never close.
        std::future::pending::<()>().await;
        drop(c);
    })
    .await;
    let c = builder(&url, Generation::V2).connect().await.unwrap();
    // More than the socket buffers hold, so the writer blocks.
    let upload = Value::from(Bytes::from(vec![0u8; 64 * MIB]));
    let err =
        within(c.call_with_timeout("upload", vec![upload], vec![], Duration::from_millis(500)))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let started = Instant::now();
    within(c.close()).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let later = c.call("x", vec![], vec![]).await.unwrap_err();
    assert!(matches!(later, Error::Closed { .. }), "{later:?}");
}

/// Dropping every handle while the writer is stuck on a server that does
/// not read abandons the rest of the upload and ends the connection.
#[tokio::test]
async fn dropping_the_client_abandons_an_upload_the_server_does_not_read() {
    const UPLOAD: usize = 64 * MIB;
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let (report, received) = tokio::sync::oneshot::channel();
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(Some(64 * 1024)).await;
        let _ = wait.await;
        // Now read everything until the client is gone.
        let mut bytes = 0;
        while let Some(Ok(frame)) = c.ws.next().await {
            bytes += frame.len();
        }
        let _ = report.send(bytes);
    })
    .await;
    let c = builder(&url, Generation::V2).connect().await.unwrap();
    let upload = Value::from(Bytes::from(vec![0u8; UPLOAD]));
    let err =
        within(c.call_with_timeout("upload", vec![upload], vec![], Duration::from_millis(500)))
            .await
            .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    drop(c);
    tokio::time::sleep(Duration::from_millis(100)).await;
    go.send(()).unwrap();
    let received = within(received).await.unwrap();
    assert!(received < UPLOAD / 2, "{received}");
}

/// A server announcing the smallest `maxMsgSize` (one byte of content per
/// 13-byte frame) costs the client frames, not memory.
#[tokio::test]
async fn a_tiny_max_msg_size_does_not_multiply_upload_memory() {
    const UPLOAD: usize = 64 * 1024;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(Some(13)).await;
        // Count the upload's frames without keeping them.
        let (mut frames, mut received, mut total) = (0usize, 0usize, usize::MAX);
        while received < total {
            let Some(Ok(Ws::Binary(b))) = c.ws.next().await else {
                panic!("the upload ended early");
            };
            let (h, content) = ChunkHeader::parse(&b).unwrap();
            assert!(b.len() <= 13);
            total = h.total as usize;
            received += content.len();
            frames += 1;
        }
        assert!(frames > UPLOAD, "{frames}");
        // The request's id is known: it is the client's first call.
        c.reply(&format!("rpc:{CLIENT_ID}:0"), Value::from(frames))
            .await;
        c.close_frame().await;
    })
    .await;
    let c = builder(&url, Generation::V2).connect().await.unwrap();
    let upload = Value::from(Bytes::from(vec![5u8; UPLOAD]));
    let (frames, print) = footprint(within(c.call("upload", vec![upload], vec![]))).await;
    assert!(frames.unwrap().as_u64().unwrap() > UPLOAD as u64);
    // Frames made all at once would cost ~50 bytes each (3+ MiB here).
    assert!(print.peak < MIB, "{print:?}");
    c.close().await;
    within(server).await.unwrap();
}

/// A call abandoned in the middle of a chunked upload, because it timed out
/// or because its caller dropped the future, stops sending: the frames not
/// yet handed to the socket are dropped, and the next call goes out right
/// behind the ones that were.
#[tokio::test]
async fn an_abandoned_upload_stops_sending_its_frames() {
    const UPLOAD: usize = 64 * MIB;
    for drop_the_future in [false, true] {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (url, server) = serve(Generation::V2, |mut c| async move {
            c.hello(Some(64 * 1024)).await;
            // Not reading yet: the socket's buffers fill and the writer
            // blocks in the middle of the upload.
            let _ = wait.await;
            let mut upload_bytes = 0usize;
            let next = loop {
                let Some(Ok(Ws::Binary(b))) = c.ws.next().await else {
                    panic!("the connection ended before the next call");
                };
                let (h, content) = ChunkHeader::parse(&b).unwrap();
                if h.total as usize > UPLOAD {
                    upload_bytes += content.len();
                    continue;
                }
                // Any other message is the next call, small enough for one frame.
                assert_eq!(content.len(), h.total as usize);
                let content = b.slice(b.len() - content.len()..);
                match v2::decode_message(&content, 128).unwrap() {
                    Message::Request(r) => break r,
                    other => panic!("expected a request, got {other:?}"),
                }
            };
            assert_eq!(next.method, "after");
            c.reply(&next.id, Value::from(upload_bytes as u64)).await;
            c.close_frame().await;
        })
        .await;
        let c = builder(&url, Generation::V2).connect().await.unwrap();
        let upload = Value::from(Bytes::from(vec![0u8; UPLOAD]));
        let quick = Duration::from_millis(500);
        if drop_the_future {
            let call = c.call("upload", vec![upload], vec![]);
            assert!(tokio::time::timeout(quick, call).await.is_err());
        } else {
            let call = c.call_with_timeout("upload", vec![upload], vec![], quick);
            let err = within(call).await.unwrap_err();
            assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        }
        go.send(()).unwrap();
        let sent = within(c.call("after", vec![], vec![])).await.unwrap();
        let sent = sent.as_u64().unwrap() as usize;
        // What the socket's buffers held when the call was abandoned, not
        // the whole upload.
        assert!(
            sent < UPLOAD / 2,
            "dropped future: {drop_the_future}: {sent} bytes of the upload sent"
        );
        c.close().await;
        within(server).await.unwrap();
    }
}
