//! The Rust client's limits, through the C API: servers (and session
//! managers) that lie in chunk headers, send garbage, oversized frames or
//! floods, or never answer. Every case must come back from the extern
//! function as the right status with a readable message, never as a crash
//! or a hang, and in memory bounded by the limits, not by what the peer
//! claims or sends.
//!
//! Memory is counted by a global allocator over the whole process (the
//! library's runtime threads and the scripted server's thread included),
//! so the tests of this file take turns (`serial()`): each one's peak is
//! its own.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_c::wslink_status::*;
use wslink_c::*;
use wslink_core::{Generation, Value};

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Memory accounting

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
    LARGEST.fetch_max(n, Ordering::Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; the counters
// are atomics, which never allocate.
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
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The process's allocations while `f` ran: the most held at once above
/// the start, and the largest single one.
#[derive(Debug)]
struct Footprint {
    peak: usize,
    largest: usize,
}

fn footprint<T>(f: impl FnOnce() -> T) -> (T, Footprint) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    let out = f();
    let print = Footprint {
        peak: PEAK.load(Ordering::Relaxed).saturating_sub(start),
        largest: LARGEST.load(Ordering::Relaxed),
    };
    (out, print)
}

/// One test at a time in this file.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connects to a scripted server of `generation`.
fn connect(url: &str, generation: Generation, tune: impl FnOnce(&mut Opts)) -> Conn {
    let mut opts = Opts::new(generation);
    tune(&mut opts);
    Conn::open(url, &opts).expect("connect")
}

/// The scripted server answers the hello, waits for one call and sends
/// `garbage`; returns what that call got through the C API, and checks
/// that the connection is then closed and later calls fail the same way.
fn after_garbage(generation: Generation, tune: impl FnOnce(&mut Opts), garbage: Vec<Ws>) -> Failed {
    let (url, server) = scripted(generation, move |mut peer| async move {
        peer.hello().await;
        let _ = peer.request().await;
        for frame in garbage {
            peer.raw(frame).await;
        }
        peer.until_closed().await;
    });
    let conn = connect(&url, generation, tune);
    let failed = conn
        .call("x", "[]", &[])
        .expect_err("garbage must fail the call");
    assert!(
        conn.is_closed(),
        "the library closes after a protocol error"
    );
    let later = conn.call("y", "[]", &[]).expect_err("and later calls");
    assert_eq!(later.status, failed.status, "{later:?} after {failed:?}");
    drop(conn);
    server.join().unwrap();
    failed
}

#[track_caller]
fn assert_status(failed: &Failed, status: wslink_status, needle: &str) {
    assert_eq!(failed.status, status, "{failed:?}");
    assert!(
        failed.message.contains(needle),
        "expected {needle:?}: {failed:?}"
    );
    // A message a C program can print: bounded whatever the server sent.
    assert!(failed.message.len() < 1024, "{}", failed.message.len());
}

// ---------------------------------------------------------------------------
// 2.x chunk headers that lie

#[test]
fn a_chunk_header_declaring_4_gib_is_a_protocol_error() {
    let _turn = serial();
    let (failed, print) =
        footprint(|| after_garbage(Generation::V2, |_| {}, vec![chunk(7, 0, u32::MAX, b"tiny")]));
    assert_status(
        &failed,
        WSLINK_ERR_PROTOCOL,
        "declared size of 4294967295 bytes is over the limit",
    );
    assert!(print.largest < MIB, "{print:?}");
}

/// With the size limit lifted, a 4 GiB declaration still costs what
/// arrives (4 MiB here), not what it declares.
#[test]
fn a_4_gib_message_within_a_lifted_limit_holds_only_the_bytes_that_arrived() {
    let _turn = serial();
    const SENT: usize = 4 * MIB;
    const CHUNK: usize = 64 * 1024;
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        peer.hello().await;
        let _ = peer.request().await;
        let content = vec![0x90u8; CHUNK];
        for i in 0..SENT / CHUNK {
            peer.raw(chunk(7, (i * CHUNK) as u32, u32::MAX, &content))
                .await;
        }
        peer.raw(Ws::Close(None)).await;
        peer.until_closed().await;
    });
    let (failed, print) = footprint(|| {
        let conn = connect(&url, Generation::V2, |o| o.max_message_size = u64::MAX);
        conn.call("x", "[]", &[])
            .expect_err("the server left mid-message")
    });
    assert_status(&failed, WSLINK_ERR_CLOSED, "closed");
    assert!(print.largest < 16 * MIB, "{print:?}");
    assert!(print.peak < 24 * MIB, "{print:?}");
    server.join().unwrap();
}

#[test]
fn inconsistent_chunks_are_protocol_errors() {
    let _turn = serial();
    let cases: Vec<(Vec<Ws>, &str)> = vec![
        (
            vec![chunk(1, 95, 100, &[0; 10])],
            "runs past the declared total",
        ),
        (
            vec![chunk(1, u32::MAX - 3, 1000, &[0; 8])],
            "runs past the declared total",
        ),
        (
            vec![chunk(1, 0, 100, &[0; 10]), chunk(1, 5, 100, &[0; 10])],
            "overlaps",
        ),
        (
            vec![chunk(1, 0, 100, &[0; 10]), chunk(1, 0, 100, &[0; 10])],
            "already received",
        ),
        (
            vec![chunk(1, 0, 100, &[0; 10]), chunk(1, 10, 200, &[0; 10])],
            "earlier chunk",
        ),
        (
            vec![Ws::Binary(Bytes::from_static(&[1, 2, 3]))],
            "shorter than",
        ),
    ];
    for (frames, needle) in cases {
        let failed = after_garbage(Generation::V2, |_| {}, frames);
        assert_status(&failed, WSLINK_ERR_PROTOCOL, needle);
    }
}

/// 100,000 messages started and never finished: the library holds 64 at
/// most (the default), then closes.
#[test]
fn a_hundred_thousand_partial_messages_stop_at_the_limit() {
    let _turn = serial();
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        peer.hello().await;
        let _ = peer.request().await;
        for id in 0..100_000u32 {
            if peer.ws.feed(chunk(id, 0, 2, b"x")).await.is_err() {
                break;
            }
        }
        let _ = peer.ws.flush().await;
        peer.until_closed().await;
    });
    let (failed, print) = footprint(|| {
        let conn = connect(&url, Generation::V2, |_| {});
        conn.call("x", "[]", &[])
            .expect_err("a flood of partial messages")
    });
    assert_status(
        &failed,
        WSLINK_ERR_PROTOCOL,
        "over the limit of 64 partial messages",
    );
    assert!(print.peak < 8 * MIB, "{print:?}");
    server.join().unwrap();
}

/// The options' limit is the one enforced: four partial messages pass
/// with `max_pending_messages = 4`, a fifth does not.
#[test]
fn max_pending_messages_from_the_options_is_enforced() {
    let _turn = serial();
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        peer.hello().await;
        let r = peer.request().await;
        for id in 0..4u32 {
            peer.raw(chunk(id, 0, 2, b"x")).await;
        }
        peer.reply(&r.id, Value::from("four held")).await;
        let _ = peer.request().await;
        peer.raw(chunk(4, 0, 2, b"x")).await;
        peer.until_closed().await;
    });
    let conn = connect(&url, Generation::V2, |o| o.max_pending_messages = 4);
    assert_eq!(conn.call("x", "[]", &[]).unwrap().json, r#""four held""#);
    let failed = conn.call("y", "[]", &[]).unwrap_err();
    assert_status(
        &failed,
        WSLINK_ERR_PROTOCOL,
        "over the limit of 4 partial messages",
    );
    drop(conn);
    server.join().unwrap();
}

// ---------------------------------------------------------------------------
// Frames and messages that do not parse

/// A WebSocket frame header declaring more than `max_message_size` is
/// refused from the header: a 4 GiB frame costs nothing near 4 GiB, at the
/// default limit (256 MiB) as at a tight one.
#[test]
fn a_frame_header_declaring_4_gib_is_refused() {
    let _turn = serial();
    for limit in [0u64, MIB as u64] {
        let (url, server) = scripted(Generation::V2, |mut peer| async move {
            peer.hello().await;
            let _ = peer.request().await;
            // FIN + binary, unmasked, 64-bit length 2^32, then a little.
            let mut frame = vec![0x82, 127];
            frame.extend_from_slice(&(1u64 << 32).to_be_bytes());
            frame.extend_from_slice(&[0u8; 1024]);
            let _ = peer.ws.get_mut().write_all(&frame).await;
            let _ = peer.ws.get_mut().flush().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        });
        let conn = connect(&url, Generation::V2, |o| o.max_message_size = limit);
        let (failed, print) = footprint(|| conn.call("x", "[]", &[]).unwrap_err());
        assert_status(&failed, WSLINK_ERR_PROTOCOL, "over the size limit");
        assert!(print.peak < 4 * MIB, "{print:?}");
        drop(conn);
        server.join().unwrap();
    }
}

#[test]
fn malformed_msgpack_is_a_protocol_error() {
    let _turn = serial();
    let whole = |m: &[u8]| chunk(11, 0, m.len() as u32, m);
    let mut deep = vec![0x91u8; 100_000];
    deep.push(0x90);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xc1], "invalid msgpack marker"),
        (vec![0xdd, 0xff, 0xff, 0xff, 0xff], "truncated"),
        (vec![0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], "truncated"),
        (vec![0x2a], "must be a map"),
        (deep, "nesting deeper than 128"),
    ];
    for (msgpack, needle) in cases {
        let (failed, print) =
            footprint(|| after_garbage(Generation::V2, |_| {}, vec![whole(&msgpack)]));
        assert_status(&failed, WSLINK_ERR_PROTOCOL, needle);
        assert!(print.peak < 8 * MIB, "{needle}: {print:?}");
    }
}

#[test]
fn malformed_json_is_a_protocol_error_in_1x() {
    let _turn = serial();
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "JSON"),
        ("[1, 2]".into(), "map"),
        (deep, "recursion limit"),
    ];
    for (text, needle) in cases {
        let failed = after_garbage(Generation::V1, |_| {}, vec![Ws::Text(text.into())]);
        assert_status(&failed, WSLINK_ERR_PROTOCOL, needle);
    }
}

#[test]
fn a_flood_of_1x_attachment_headers_stops_at_the_limit() {
    let _turn = serial();
    let headers = (0..2000)
        .map(|i| {
            Ws::Text(
                format!(r#"{{"wslink":"1.0","method":"wslink.binary.attachment","args":["wslink_bin{i}"]}}"#)
                    .into(),
            )
        })
        .collect();
    let failed = after_garbage(Generation::V1, |_| {}, headers);
    assert_status(
        &failed,
        WSLINK_ERR_PROTOCOL,
        "more than 1024 attachment keys",
    );
}

// ---------------------------------------------------------------------------
// Floods, silence, refusals

static RELEASE: Mutex<Option<mpsc::Receiver<()>>> = Mutex::new(None);
static SEEN: AtomicUsize = AtomicUsize::new(0);
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// Holds up its first message until the test says so; counts the rest.
unsafe extern "C" fn slow_reader(_user: *mut c_void, message: *const wslink_payload) {
    if message.is_null() {
        ENDED.fetch_add(1, Ordering::SeqCst);
        return;
    }
    if SEEN.fetch_add(1, Ordering::SeqCst) == 0 {
        if let Some(rx) = RELEASE.lock().unwrap().take() {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
    }
}

/// A server publishing 12.5 MiB while the callback is stuck: the
/// subscription keeps at most its byte budget, drops the oldest, and calls
/// still get answered meanwhile.
#[test]
fn a_publish_flood_to_a_stuck_callback_is_held_to_the_subscription_budget() {
    let _turn = serial();
    const SENT: usize = 200;
    const BLOB: usize = 64 * 1024;
    const BUDGET: u64 = MIB as u64;
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        peer.hello().await;
        let r = peer.request().await;
        let blob = Bytes::from(vec![0x5au8; BLOB]);
        for seq in 0..SENT {
            let message = Value::map([
                ("seq", Value::from(seq as u64)),
                ("blob", Value::from(blob.clone())),
            ]);
            peer.reply(&format!("publish:flood:{seq}"), message).await;
        }
        peer.reply(&r.id, Value::from("still answering")).await;
        peer.until_closed().await;
    });
    let (tx, rx) = mpsc::channel();
    *RELEASE.lock().unwrap() = Some(rx);
    SEEN.store(0, Ordering::SeqCst);
    ENDED.store(0, Ordering::SeqCst);

    let conn = connect(&url, Generation::V2, |o| {
        o.subscription_buffer_bytes = BUDGET
    });
    let topic = cstr("flood");
    let mut sub = std::ptr::null_mut();
    let status = unsafe {
        wslink_subscribe(
            conn.0,
            topic.as_ptr(),
            Some(slow_reader),
            std::ptr::null_mut(),
            &mut sub,
        )
    };
    assert_eq!(status, WSLINK_OK);
    let (answer, print) = footprint(|| conn.call("x", "[]", &[]));
    assert_eq!(answer.unwrap().json, r#""still answering""#);
    assert!(print.peak < BUDGET as usize + 8 * MIB, "{print:?}");

    tx.send(()).unwrap();
    drop(conn); // ends the subscription: the callback gets its NULL
    let deadline = Instant::now() + Duration::from_secs(20);
    while ENDED.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ENDED.load(Ordering::SeqCst), 1, "the end was reported once");
    let dropped = unsafe { wslink_subscription_dropped(sub) };
    let seen = SEEN.load(Ordering::SeqCst);
    assert_eq!(
        seen as u64 + dropped,
        SENT as u64,
        "seen {seen}, dropped {dropped}"
    );
    assert!(
        dropped > 0 && seen as u64 <= 1 + BUDGET / BLOB as u64 + 1,
        "seen {seen}"
    );
    assert_eq!(unsafe { wslink_unsubscribe(sub) }, WSLINK_OK);
    server.join().unwrap();
}

#[test]
fn a_server_that_never_answers_the_hello_is_a_timeout() {
    let _turn = serial();
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        let _ = peer.request().await;
        peer.until_closed().await;
    });
    let mut opts = Opts::new(Generation::V2);
    opts.connect_timeout_ms = 300;
    let started = Instant::now();
    let failed = Conn::open(&url, &opts).err().expect("no hello reply");
    assert_status(&failed, WSLINK_ERR_TIMEOUT, "wslink.hello");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.join().unwrap();
}

#[test]
fn a_refused_hello_is_an_auth_error_with_the_servers_code() {
    let _turn = serial();
    let failed = Conn::open(
        our_server(),
        &Opts {
            secret: Some(cstr("not the secret")),
            ..Opts::new(Generation::V2)
        },
    )
    .err()
    .expect("wrong secret");
    assert_status(&failed, WSLINK_ERR_AUTH, "Authentication failed");
    assert_eq!(failed.code, -32000);
}

#[test]
fn a_server_closing_mid_call_fails_it_with_closed() {
    let _turn = serial();
    for generation in [Generation::V2, Generation::V1] {
        let failed = after_garbage(generation, |_| {}, vec![Ws::Close(None)]);
        assert_status(&failed, WSLINK_ERR_CLOSED, "closed");
    }
}

#[test]
fn a_call_that_gets_no_answer_times_out_and_the_connection_goes_on() {
    let _turn = serial();
    let (url, server) = scripted(Generation::V2, |mut peer| async move {
        peer.hello().await;
        let _ignored = peer.request().await;
        let r = peer.request().await;
        peer.reply(&r.id, Value::from(1)).await;
        peer.until_closed().await;
    });
    let conn = connect(&url, Generation::V2, |_| {});
    let failed = conn
        .call_ex("silence", Some("[]"), None, &[], 200)
        .unwrap_err();
    assert_status(&failed, WSLINK_ERR_TIMEOUT, "no reply within");
    assert_eq!(conn.call("next", "[]", &[]).unwrap().json, "1");
    drop(conn);
    server.join().unwrap();
}

// ---------------------------------------------------------------------------
// Session managers that lie

/// A plain TCP "launcher" that reads one request and answers `answer`
/// (again and again if `repeat`, until the client hangs up). Returns its URL.
fn fake_launcher(answer: Vec<u8>, repeat: bool) -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/paraview/", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        loop {
            if s.write_all(&answer).is_err() || !repeat {
                break;
            }
        }
    });
    (url, thread)
}

fn launch(url: &str, request: &str, opts: &Opts) -> Result<Conn, Failed> {
    let url = cstr(url);
    let request = cstr(request);
    let o = opts.c();
    let mut conn = std::ptr::null_mut();
    let mut answer = std::ptr::null_mut();
    let status =
        unsafe { wslink_launch(url.as_ptr(), request.as_ptr(), &o, &mut conn, &mut answer) };
    if status == WSLINK_OK {
        unsafe { wslink_string_free(answer) };
        Ok(Conn(conn))
    } else {
        assert!(conn.is_null() && answer.is_null());
        Err(Failed::last(status))
    }
}

#[test]
fn session_managers_that_lie_are_launch_errors_within_bounds() {
    let _turn = serial();
    let request = r#"{"application": "conf"}"#;
    let opts = Opts::new(Generation::V2);
    let answer = |head: &str, body: &str| {
        format!("{head}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    };
    let cases: Vec<(Vec<u8>, bool, wslink_status, &str)> = vec![
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{".to_vec(),
            false,
            WSLINK_ERR_LAUNCH,
            "announces 10000000000 bytes",
        ),
        // Headers that never end (sent again and again).
        (
            [b"HTTP/1.1 200 OK\r\nX-Pad: ".as_slice(), &[b'a'; 8192]].concat(),
            true,
            WSLINK_ERR_LAUNCH,
            "headers are over",
        ),
        // A body without a length that never ends.
        (
            [b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), &[b' '; 8192]].concat(),
            true,
            WSLINK_ERR_LAUNCH,
            "over 1048576 bytes",
        ),
        (
            answer(
                "HTTP/1.1 503 Service Unavailable",
                r#"{"error": "no port available"}"#,
            ),
            false,
            WSLINK_ERR_LAUNCH,
            "HTTP 503: no port available",
        ),
        (
            answer("HTTP/1.1 200 OK", "hello"),
            false,
            WSLINK_ERR_LAUNCH,
            "not JSON",
        ),
        (
            answer("HTTP/1.1 200 OK", r#"{"id": "x"}"#),
            false,
            WSLINK_ERR_LAUNCH,
            "no \"sessionURL\"",
        ),
        (
            answer("HTTP/1.1 200 OK", "{}").split_off(3),
            false,
            WSLINK_ERR_LAUNCH,
            "not an HTTP answer",
        ),
    ];
    for (answer, repeat, status, needle) in cases {
        let (url, thread) = fake_launcher(answer, repeat);
        let (got, print) = footprint(|| launch(&url, request, &opts));
        let failed = got.err().expect("a lying launcher");
        assert_status(&failed, status, needle);
        assert!(print.peak < 4 * MIB, "{needle}: {print:?}");
        thread.join().unwrap();
    }
}

#[test]
fn a_session_manager_that_never_answers_is_a_timeout() {
    let _turn = serial();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/paraview/", listener.local_addr().unwrap());
    let opts = Opts {
        launch_timeout_ms: 300,
        ..Opts::new(Generation::V2)
    };
    let started = Instant::now();
    let failed = launch(&url, r#"{"application": "conf"}"#, &opts)
        .err()
        .expect("silence");
    assert_status(&failed, WSLINK_ERR_TIMEOUT, "did not answer within");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}
