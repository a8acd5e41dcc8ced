//! The C API against this project's server (in process, with the
//! conformance service), called as a C program calls it: values as JSON
//! plus buffers both ways, both generations, subscriptions and their
//! thread, launching, and every misuse a C caller can make (NULL, bad
//! UTF-8, bad JSON) returning a status instead of crashing.

mod common;

use std::ffi::{c_char, c_void, CString};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use wslink_c::wslink_status::*;
use wslink_c::*;
use wslink_core::Generation;

const BOTH: [Generation; 2] = [Generation::V2, Generation::V1];

fn open(generation: Generation) -> Conn {
    Conn::open(our_server(), &Opts::new(generation)).expect("connect to our server")
}

/// bytes(size, seed) of the conformance service.
fn pattern(size: usize, seed: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn values_go_as_json_and_binaries_as_buffers_in_both_generations() {
    for generation in BOTH {
        let conn = open(generation);
        assert_eq!(
            conn.call("conformance.add", "[2, 3]", &[]).unwrap().json,
            "5"
        );
        // Exact integers at both ends of the msgpack range.
        let got = conn
            .call("conformance.add", "[18446744073709551614, 1]", &[])
            .unwrap();
        assert_eq!(got.json, "18446744073709551615", "{generation:?}");

        // Two buffers, one used twice, inside nested JSON; keys keep order.
        let a = pattern(70_000, 1);
        let b = b"small".to_vec();
        let got = conn
            .call(
                "conformance.echo",
                r#"[{"z": {"$binary": 1}, "a": [{"$binary": 0}, {"$binary": 1}], "n": null}]"#,
                &[&a, &b],
            )
            .unwrap();
        assert_eq!(
            got.json, r#"{"z":{"$binary":0},"a":[{"$binary":1},{"$binary":2}],"n":null}"#,
            "{generation:?}"
        );
        assert_eq!(got.buffers, vec![b.clone(), a.clone(), b.clone()]);

        // Keyword arguments, with a placeholder among them.
        let got = conn
            .call_ex(
                "conformance.kwargs",
                Some("[1]"),
                Some(r#"{"data": {"$binary": 0}}"#),
                &[b"kw"],
                0,
            )
            .unwrap();
        assert_eq!(got.json, r#"{"args":[1],"kwargs":{"data":{"$binary":0}}}"#);
        assert_eq!(got.buffers, vec![b"kw".to_vec()]);

        // A large result comes back as one buffer, whatever the chunking.
        let got = conn.call("conformance.blob", "[3000000, 5]", &[]).unwrap();
        assert_eq!(got.json, r#"{"size":3000000,"blob":{"$binary":0}}"#);
        assert_eq!(got.buffers, vec![pattern(3_000_000, 5)]);
        assert_eq!(
            unsafe { wslink_connection_generation(conn.0) },
            if generation == Generation::V1 { 1 } else { 2 }
        );
        let id = text(unsafe { wslink_connection_client_id(conn.0) });
        assert!(id.starts_with('c') && id.len() == 33, "{id}");
    }
}

#[test]
fn error_replies_carry_the_servers_code_message_and_data() {
    let conn = open(Generation::V2);
    let failed = assert_failed(
        conn.call("conformance.fail", r#"["a reason"]"#, &[]),
        WSLINK_ERR_RPC,
        "a reason",
    );
    assert_eq!(failed.code, -32001);
    assert!(failed.data.unwrap().contains(r#""exception":"a reason""#));
    let failed = assert_failed(
        conn.call("no.such.method", "[]", &[]),
        WSLINK_ERR_RPC,
        "no.such.method",
    );
    assert_eq!(failed.code, -32601);
    // A success clears the thread's last error.
    conn.call("conformance.add", "[1, 1]", &[]).unwrap();
    assert_eq!(text(wslink_last_error_message()), "");
    assert_eq!(wslink_last_error_status(), WSLINK_OK);
    assert_eq!(wslink_last_error_code(), 0);
    assert!(wslink_last_error_data().is_null());
}

#[test]
fn misuse_is_an_error_code_never_a_crash() {
    let conn = open(Generation::V2);
    let m = cstr("conformance.add");
    let mut result: *mut wslink_payload = std::ptr::dangling_mut(); // set to NULL on failure
    let call = |method: *const c_char,
                args: *const c_char,
                bufs: *const wslink_buffer,
                n: usize,
                out: *mut *mut wslink_payload| unsafe {
        wslink_call(conn.0, method, args, bufs, n, out)
    };

    assert_eq!(
        call(
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            &mut result
        ),
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(result.is_null());
    assert!(text(wslink_last_error_message()).contains("method is NULL"));
    let status = unsafe {
        wslink_call(
            std::ptr::null(),
            m.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            &mut result,
        )
    };
    assert_eq!(status, WSLINK_ERR_INVALID_ARGUMENT);
    assert!(text(wslink_last_error_message()).contains("connection is NULL"));

    let bad_utf8 = CString::new(vec![b'a', 0xff, 0xfe]).unwrap();
    assert_eq!(
        call(
            bad_utf8.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            &mut result
        ),
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(text(wslink_last_error_message()).contains("method is not valid UTF-8 (at byte 1)"));

    for (args, needle) in [
        ("[1,", "args_json is not valid JSON"),
        (r#"{"a": 1}"#, "args_json must be a JSON array, not map"),
        (r#"[{"$binary": 0}]"#, "buffer index below 0"),
        (r#"[{"$binary": -1}]"#, "buffer index"),
    ] {
        let a = cstr(args);
        assert_eq!(
            call(m.as_ptr(), a.as_ptr(), std::ptr::null(), 0, &mut result),
            WSLINK_ERR_INVALID_ARGUMENT,
            "{args}"
        );
        let message = text(wslink_last_error_message());
        assert!(message.contains(needle), "{args}: {message}");
    }
    // A buffer no placeholder refers to, NULL buffers with a count, NULL data with a length.
    let unused = [wslink_buffer {
        data: b"x".as_ptr(),
        len: 1,
    }];
    let a = cstr("[1, 2]");
    assert_eq!(
        call(m.as_ptr(), a.as_ptr(), unused.as_ptr(), 1, &mut result),
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(text(wslink_last_error_message()).contains("buffer 0 is not referred to"));
    assert_eq!(
        call(m.as_ptr(), a.as_ptr(), std::ptr::null(), 3, &mut result),
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(text(wslink_last_error_message()).contains("buffers is NULL but buffer_count is 3"));
    let null_data = [wslink_buffer {
        data: std::ptr::null(),
        len: 9,
    }];
    let p = cstr(r#"[{"$binary": 0}]"#);
    assert_eq!(
        call(m.as_ptr(), p.as_ptr(), null_data.as_ptr(), 1, &mut result),
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(text(wslink_last_error_message()).contains("buffers[0].data is NULL but its len is 9"));
    // NULL data with length 0 is an empty buffer; a NULL result pointer drops the result.
    let empty = [wslink_buffer {
        data: std::ptr::null(),
        len: 0,
    }];
    let echo = cstr("conformance.echo");
    assert_eq!(
        call(
            echo.as_ptr(),
            p.as_ptr(),
            empty.as_ptr(),
            1,
            std::ptr::null_mut()
        ),
        WSLINK_OK
    );

    // Connecting and subscribing with what C can get wrong.
    let mut out: *mut wslink_connection = std::ptr::dangling_mut();
    assert_eq!(
        unsafe { wslink_connect(std::ptr::null(), std::ptr::null(), &mut out) },
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(out.is_null());
    let url = cstr(our_server());
    assert_eq!(
        unsafe { wslink_connect(url.as_ptr(), std::ptr::null(), std::ptr::null_mut()) },
        WSLINK_ERR_INVALID_ARGUMENT
    );
    let opts = Opts::new(Generation::V2); // owns the secret the C struct points to
    let gen7 = wslink_options {
        generation: 7,
        ..opts.c()
    };
    assert_eq!(
        unsafe { wslink_connect(url.as_ptr(), &gen7, &mut out) },
        WSLINK_ERR_INVALID_ARGUMENT
    );
    assert!(text(wslink_last_error_message()).contains("generation must be 1 or 2"));
    let https = cstr("wss://example.invalid/ws");
    let status =
        unsafe { wslink_connect(https.as_ptr(), &Opts::new(Generation::V2).c(), &mut out) };
    assert_ne!(status, WSLINK_OK);
    let not_a_url = cstr("not a url");
    let status =
        unsafe { wslink_connect(not_a_url.as_ptr(), &Opts::new(Generation::V2).c(), &mut out) };
    assert_eq!(
        status,
        WSLINK_ERR_INVALID_URL,
        "{}",
        text(wslink_last_error_message())
    );
    let mut sub: *mut wslink_subscription = std::ptr::dangling_mut();
    let topic = cstr("bad topic!");
    let status = unsafe {
        wslink_subscribe(
            conn.0,
            topic.as_ptr(),
            Some(count_messages),
            std::ptr::null_mut(),
            &mut sub,
        )
    };
    assert_eq!(status, WSLINK_ERR_INVALID_ARGUMENT);
    assert!(sub.is_null());
    let topic = cstr("fine.topic");
    let status =
        unsafe { wslink_subscribe(conn.0, topic.as_ptr(), None, std::ptr::null_mut(), &mut sub) };
    assert_eq!(status, WSLINK_ERR_INVALID_ARGUMENT);
    assert!(text(wslink_last_error_message()).contains("callback is NULL"));

    // NULL everywhere a handle is freed or read.
    unsafe {
        assert_eq!(wslink_close(std::ptr::null_mut()), WSLINK_OK);
        assert_eq!(wslink_unsubscribe(std::ptr::null_mut()), WSLINK_OK);
        wslink_payload_free(std::ptr::null_mut());
        wslink_string_free(std::ptr::null_mut());
        assert_eq!(wslink_subscription_dropped(std::ptr::null()), 0);
        assert!(wslink_connection_client_id(std::ptr::null()).is_null());
        assert!(wslink_connection_is_closed(std::ptr::null()));
        assert_eq!(wslink_connection_generation(std::ptr::null()), 0);
    }
    assert_eq!(
        text(wslink_status_name(WSLINK_ERR_TIMEOUT as i32)),
        "WSLINK_ERR_TIMEOUT"
    );
    assert_eq!(text(wslink_status_name(99)), "unknown status");
    assert_eq!(text(wslink_version()), env!("CARGO_PKG_VERSION"));
}

/// A blocking call from a thread that drives a tokio runtime would make
/// tokio panic; it is refused with a status instead.
#[test]
fn a_call_from_inside_a_tokio_runtime_is_refused_not_a_panic() {
    let conn = open(Generation::V2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let failed = rt
        .block_on(async { conn.call("conformance.add", "[1, 2]", &[]) })
        .unwrap_err();
    assert_eq!(failed.status, WSLINK_ERR_INTERNAL);
    assert!(failed.message.contains("tokio runtime"), "{failed:?}");
    assert_eq!(
        conn.call("conformance.add", "[1, 2]", &[]).unwrap().json,
        "3"
    );
}

// ---------------------------------------------------------------------------
// Subscriptions

unsafe extern "C" fn count_messages(user: *mut c_void, message: *const wslink_payload) {
    if !message.is_null() {
        (*(user as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
    }
}

/// What a recording callback saw.
#[derive(Default)]
struct Record {
    messages: Vec<Got>,
    threads: Vec<String>,
    ends: Vec<(wslink_status, String)>,
}

unsafe extern "C" fn record_message(user: *mut c_void, message: *const wslink_payload) {
    let record = &*(user as *const Mutex<Record>);
    let mut r = record.lock().unwrap();
    r.threads
        .push(std::thread::current().name().unwrap_or("?").to_owned());
    if message.is_null() {
        r.ends.push((
            wslink_last_error_status(),
            text(wslink_last_error_message()),
        ));
    } else {
        r.messages.push(Got::read(message));
    }
}

#[test]
fn publishes_reach_the_callback_in_order_on_its_own_named_thread() {
    for generation in BOTH {
        let conn = open(generation);
        let record = Box::new(Mutex::new(Record::default()));
        let user = &*record as *const Mutex<Record> as *mut c_void;
        let topic = cstr("c.api.order");
        let mut sub = std::ptr::null_mut();
        assert_eq!(
            unsafe {
                wslink_subscribe(conn.0, topic.as_ptr(), Some(record_message), user, &mut sub)
            },
            WSLINK_OK
        );
        let got = conn
            .call("conformance.publish", r#"["c.api.order", 20, 5000]"#, &[])
            .unwrap();
        assert_eq!(got.json, "20");
        wait_until("20 publishes", || {
            record.lock().unwrap().messages.len() == 20
        });
        {
            let r = record.lock().unwrap();
            for (seq, m) in r.messages.iter().enumerate() {
                assert_eq!(m.json, format!(r#"{{"seq":{seq},"blob":{{"$binary":0}}}}"#));
                assert_eq!(m.buffers, vec![pattern(5000, seq)]);
            }
            assert!(
                r.threads.iter().all(|t| t == CALLBACK_THREAD_NAME),
                "{:?}",
                r.threads
            );
            assert!(r.ends.is_empty());
        }
        assert_eq!(unsafe { wslink_subscription_dropped(sub) }, 0);
        // Closing ends the subscription: one NULL call, saying why.
        drop(conn);
        wait_until("the end", || !record.lock().unwrap().ends.is_empty());
        assert_eq!(unsafe { wslink_unsubscribe(sub) }, WSLINK_OK);
        let r = record.lock().unwrap();
        assert_eq!(r.ends.len(), 1);
        assert_eq!(r.ends[0].0, WSLINK_ERR_CLOSED, "{:?}", r.ends);
        assert!(r.ends[0].1.contains("closed"), "{:?}", r.ends);
    }
}

#[test]
fn after_unsubscribe_returns_the_callback_never_runs_again() {
    let conn = open(Generation::V2);
    let count = Box::new(AtomicUsize::new(0));
    let topic = cstr("c.api.stop");
    let mut sub = std::ptr::null_mut();
    let user = &*count as *const AtomicUsize as *mut c_void;
    assert_eq!(
        unsafe { wslink_subscribe(conn.0, topic.as_ptr(), Some(count_messages), user, &mut sub) },
        WSLINK_OK
    );
    conn.call("conformance.publish", r#"["c.api.stop", 3, 10]"#, &[])
        .unwrap();
    wait_until("3 publishes", || count.load(Ordering::SeqCst) == 3);
    assert_eq!(unsafe { wslink_unsubscribe(sub) }, WSLINK_OK);
    conn.call("conformance.publish", r#"["c.api.stop", 3, 10]"#, &[])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    drop(count); // safe: no callback can use it any more
}

/// What the re-entrant callback needs.
struct Reentrant {
    conn: *const wslink_connection,
    sub: AtomicPtr<wslink_subscription>,
    sums: Mutex<Vec<String>>,
    unsubscribed: AtomicUsize,
}

/// Calls the library from inside the callback: a call on the same
/// connection, then unsubscribing its own subscription.
unsafe extern "C" fn reenter(user: *mut c_void, message: *const wslink_payload) {
    let state = &*(user as *const Reentrant);
    if message.is_null() {
        return;
    }
    let method = cstr("conformance.add");
    let args = cstr("[40, 2]");
    let mut result = std::ptr::null_mut();
    if wslink_call(
        state.conn,
        method.as_ptr(),
        args.as_ptr(),
        std::ptr::null(),
        0,
        &mut result,
    ) == WSLINK_OK
    {
        state.sums.lock().unwrap().push(Got::read(result).json);
        wslink_payload_free(result);
    }
    let sub = state.sub.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if !sub.is_null() {
        // Its own subscription, from its own callback: returns at once.
        assert_eq!(wslink_unsubscribe(sub), WSLINK_OK);
        state.unsubscribed.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_callback_may_call_and_unsubscribe_itself_without_deadlock() {
    let conn = open(Generation::V2);
    let state = Box::new(Reentrant {
        conn: conn.0,
        sub: AtomicPtr::new(std::ptr::null_mut()),
        sums: Mutex::new(Vec::new()),
        unsubscribed: AtomicUsize::new(0),
    });
    let topic = cstr("c.api.reenter");
    let mut sub = std::ptr::null_mut();
    let user = &*state as *const Reentrant as *mut c_void;
    // Publishes before the handle is stored are not possible: nothing is
    // published until the call below.
    assert_eq!(
        unsafe { wslink_subscribe(conn.0, topic.as_ptr(), Some(reenter), user, &mut sub) },
        WSLINK_OK
    );
    state.sub.store(sub, Ordering::SeqCst);
    conn.call("conformance.publish", r#"["c.api.reenter", 5, 10]"#, &[])
        .unwrap();
    wait_until("the callback's unsubscribe", || {
        state.unsubscribed.load(Ordering::SeqCst) == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        *state.sums.lock().unwrap(),
        vec!["42".to_owned()],
        "one message, then no more"
    );
    assert_eq!(
        conn.call("conformance.add", "[1, 2]", &[]).unwrap().json,
        "3"
    );
}

#[test]
fn many_threads_call_on_one_connection_at_once() {
    let conn = Arc::new(open(Generation::V2));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                for j in 0..20 {
                    let got = conn
                        .call("conformance.add", &format!("[{i}, {j}]"), &[])
                        .unwrap();
                    assert_eq!(got.json, (i + j).to_string());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

// ---------------------------------------------------------------------------
// Launching

/// A session manager answering one POST with a session on our server,
/// carrying the server's secret; returns its URL and the request it got.
fn fake_launcher(session_url: String) -> (String, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/paraview/", listener.local_addr().unwrap());
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= length {
                    break;
                }
            }
            assert!(n > 0);
        }
        let body =
            format!(r#"{{"id": "s1", "sessionURL": "{session_url}", "secret": "{SECRET}"}}"#);
        // Chunked, as some servers answer.
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        s.write_all(answer.as_bytes()).unwrap();
        String::from_utf8(request).unwrap()
    });
    (url, thread)
}

#[test]
fn launch_posts_the_request_and_connects_with_the_answers_secret() {
    let (url, launcher) = fake_launcher(our_server().to_owned());
    let manager = cstr(&url);
    let request = cstr(r#"{"application": "conf", "file": "can.ex2"}"#);
    let opts = Opts {
        secret: Some(cstr("not the servers secret: the launcher's wins")),
        ..Opts::new(Generation::V2)
    };
    let o = opts.c();
    let mut conn = std::ptr::null_mut();
    let mut answer = std::ptr::null_mut();
    let status = unsafe {
        wslink_launch(
            manager.as_ptr(),
            request.as_ptr(),
            &o,
            &mut conn,
            &mut answer,
        )
    };
    assert_eq!(status, WSLINK_OK, "{}", text(wslink_last_error_message()));
    let conn = Conn(conn);
    assert!(text(answer).contains(r#""id": "s1""#));
    unsafe { wslink_string_free(answer) };
    assert_eq!(
        conn.call("conformance.add", "[20, 22]", &[]).unwrap().json,
        "42"
    );
    let seen = launcher.join().unwrap();
    assert!(seen.starts_with("POST /paraview/ HTTP/1.1\r\n"), "{seen}");
    assert!(seen.contains("Content-Type: application/json"), "{seen}");
    assert!(
        seen.ends_with(r#"{"application": "conf", "file": "can.ex2"}"#),
        "{seen}"
    );
}

#[test]
fn launch_checks_its_request_and_url_before_sending() {
    let opts = Opts::new(Generation::V2);
    let o = opts.c();
    let mut conn = std::ptr::null_mut();
    for (url, request, status, needle) in [
        (
            "http://127.0.0.1:9/x/",
            "[]",
            WSLINK_ERR_INVALID_ARGUMENT,
            "must be a JSON object",
        ),
        (
            "http://127.0.0.1:9/x/",
            r#"{"app": "x"}"#,
            WSLINK_ERR_INVALID_ARGUMENT,
            "needs \"application\"",
        ),
        (
            "http://127.0.0.1:9/x/",
            "{",
            WSLINK_ERR_INVALID_ARGUMENT,
            "not valid JSON",
        ),
        (
            "https://127.0.0.1/x/",
            r#"{"application": "x"}"#,
            WSLINK_ERR_INVALID_URL,
            "https is not supported",
        ),
        (
            "ws://127.0.0.1/x/",
            r#"{"application": "x"}"#,
            WSLINK_ERR_INVALID_URL,
            "must start with http://",
        ),
    ] {
        let (u, r) = (cstr(url), cstr(request));
        let got =
            unsafe { wslink_launch(u.as_ptr(), r.as_ptr(), &o, &mut conn, std::ptr::null_mut()) };
        assert_eq!(got, status, "{url} {request}");
        let message = text(wslink_last_error_message());
        assert!(message.contains(needle), "{message}");
    }
    // Nobody listening: a launch error naming the launcher.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (u, r) = (
        cstr(&format!("http://127.0.0.1:{port}/p/")),
        cstr(r#"{"application": "x"}"#),
    );
    let got = unsafe { wslink_launch(u.as_ptr(), r.as_ptr(), &o, &mut conn, std::ptr::null_mut()) };
    assert_eq!(got, WSLINK_ERR_LAUNCH);
    assert!(text(wslink_last_error_message()).contains("cannot connect"));
}

// ---------------------------------------------------------------------------
// A panic inside the library

/// A bug inside the library (forced here) comes out of the extern function
/// as WSLINK_ERR_INTERNAL with the panic's message; nothing unwinds into
/// the caller, and the connection and library go on working.
#[cfg(feature = "test-hooks")]
#[test]
fn a_panic_inside_the_library_is_an_internal_error() {
    let conn = open(Generation::V2);
    wslink_debug_panic_next_call();
    let failed = conn.call("conformance.add", "[1, 2]", &[]).unwrap_err();
    assert_eq!(failed.status, WSLINK_ERR_INTERNAL);
    assert!(
        failed.message.contains("internal error in wslink_call_ex"),
        "{failed:?}"
    );
    assert!(
        failed
            .message
            .contains("forced by wslink_debug_panic_next_call()"),
        "{failed:?}"
    );
    assert_eq!(
        conn.call("conformance.add", "[1, 2]", &[]).unwrap().json,
        "3"
    );
}

/// A conformance server on wss:// with a fresh self-signed certificate for
/// 127.0.0.1, and that certificate as a PEM file (removed on drop).
struct TlsServer {
    url: String,
    cert: std::path::PathBuf,
}

impl TlsServer {
    fn start() -> TlsServer {
        let tls = wslink_server::tls::TlsConfig::self_signed(["127.0.0.1"]).unwrap();
        let cert = std::env::temp_dir().join(format!("wslink-c-tls-{}.pem", std::process::id()));
        std::fs::write(&cert, tls.certificate_pem().unwrap()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = wslink_server::conformance::builder()
                    .secret(SECRET)
                    .tls(tls)
                    .build();
                let listener = server.bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("wss://{}/ws", listener.local_addr()))
                    .unwrap();
                listener.run().await.unwrap();
            });
        });
        let url = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TlsServer { url, cert }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert);
    }
}

#[test]
fn wss_trusts_the_ca_file_it_is_given_and_nothing_else() {
    let server = TlsServer::start();
    for generation in BOTH {
        // The server's own certificate as the CA file: calls work.
        let opts = Opts {
            ca_file: Some(cstr(server.cert.to_str().unwrap())),
            ..Opts::new(generation)
        };
        let conn = Conn::open(&server.url, &opts).expect("wss:// with the CA file");
        assert_eq!(
            conn.call("conformance.add", "[2, 3]", &[]).unwrap().json,
            "5"
        );
        let big = pattern(300_000, 7);
        let got = conn
            .call("conformance.echo", r#"[{"$binary": 0}]"#, &[&big])
            .unwrap();
        assert_eq!(got.buffers, vec![big], "{generation:?}");
    }

    // Without it the self-signed certificate is not trusted.
    let refused = Conn::open(&server.url, &Opts::new(Generation::V2)).err();
    let refused = refused.expect("an untrusted certificate was accepted");
    assert_eq!(refused.status, WSLINK_ERR_CONNECT, "{refused:?}");
    assert!(
        refused.message.to_lowercase().contains("certificate"),
        "{refused:?}"
    );

    // A CA file that is not there is the caller's mistake, named.
    let missing = "/definitely/not/here/ca.pem";
    let opts = Opts {
        ca_file: Some(cstr(missing)),
        ..Opts::new(Generation::V2)
    };
    let bad = Conn::open(&server.url, &opts)
        .err()
        .expect("a missing CA file");
    assert_eq!(bad.status, WSLINK_ERR_INVALID_ARGUMENT, "{bad:?}");
    assert!(bad.message.contains(missing), "{bad:?}");

    // accept_invalid_certs: no check at all (what Kitware's --ssl adhoc needs).
    let opts = Opts {
        accept_invalid_certs: true,
        ..Opts::new(Generation::V2)
    };
    let conn = Conn::open(&server.url, &opts).expect("wss:// unchecked");
    assert_eq!(
        conn.call("conformance.add", "[20, 22]", &[]).unwrap().json,
        "42"
    );
}
