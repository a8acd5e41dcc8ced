//! Every limit of `Limits` at its boundary: a message exactly at the limit
//! is accepted, one byte (or one message, level, call...) more is refused
//! with a close code and a reason that names the limit. Most tests set the
//! limit to a small value, to show it is configurable and to keep them
//! fast; the defaults documented in PROTOCOL.md are checked at the end.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use support::{bin, error_code, result, start, Peer};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_core::chunking::{chunk, ChunkHeader, HEADER_LEN};
use wslink_core::protocol::{codes, hello_request};
use wslink_core::{msgpack, Generation, Message, Request, Value};
use wslink_server::{conformance, CallContext, HandlerError, Limits, Server};

const SECRET: &str = "wslink-secret";

async fn serve(limits: Limits) -> String {
    start(&conformance::builder().limits(limits).build()).await
}

async fn authed(url: &str, generation: Generation) -> Peer {
    let mut peer = Peer::connect(url, generation).await;
    result(peer.hello(SECRET).await);
    peer
}

fn echo_request(id: &str, arg: Value) -> Value {
    Message::Request(Request {
        id: id.into(),
        method: "conformance.echo".into(),
        args: vec![arg],
        kwargs: vec![],
    })
    .to_value()
}

/// msgpack of `conformance.echo(x)` where `x` is a string or binary of
/// whatever length makes the whole message exactly `total` bytes.
fn echo_msgpack(id: &str, total: usize, binary: bool) -> Vec<u8> {
    let make = |n: usize| {
        let arg = if binary {
            bin(&vec![7u8; n])
        } else {
            Value::from("x".repeat(n))
        };
        msgpack::encode(&echo_request(id, arg)).unwrap().to_vec()
    };
    let base = make(0).len();
    let mut n = total.saturating_sub(base);
    // Longer length prefixes may take a few bytes back.
    for _ in 0..8 {
        let len = make(n).len();
        if len == total {
            return make(n);
        }
        n = if len > total {
            n - (len - total)
        } else {
            n + 1
        };
    }
    panic!("no echo call of exactly {total} bytes")
}

/// A 1.x echo call of exactly `total` bytes of JSON.
fn echo_json(id: &str, total: usize) -> String {
    let shell = format!(
        r#"{{"wslink":"1.0","id":"{id}","method":"conformance.echo","args":[""],"kwargs":{{}}}}"#
    );
    assert!(total >= shell.len());
    format!(
        r#"{{"wslink":"1.0","id":"{id}","method":"conformance.echo","args":["{}"],"kwargs":{{}}}}"#,
        "x".repeat(total - shell.len())
    )
}

fn frame(id: u32, offset: u32, total: u32, content: &[u8]) -> Bytes {
    let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
    f.extend_from_slice(content);
    Bytes::from(f)
}

async fn send_binary(peer: &mut Peer, data: impl Into<Bytes>) {
    // The server may already have closed: what it said is read next.
    let _ = peer.ws.send(Ws::Binary(data.into())).await;
}

/// The 1.x text frame that announces the binary frame after it.
fn attachment_header(key: &str) -> String {
    format!(r#"{{"wslink":"1.0","method":"wslink.binary.attachment","args":["{key}"]}}"#)
}

async fn send_text(peer: &mut Peer, text: String) {
    let _ = peer.ws.send(Ws::Text(text.into())).await;
}

/// The next reply's id and whether it is a result.
async fn reply_id(peer: &mut Peer) -> String {
    let m = peer.recv().await.unwrap();
    m.id().unwrap().to_owned()
}

async fn closed_with(peer: &mut Peer, code: u16, needle: &str) {
    let reason = loop {
        match peer.recv().await {
            Ok(_) => continue,
            Err(reason) => break reason,
        }
    };
    assert!(
        reason.starts_with(&code.to_string()) && reason.contains(needle),
        "expected close {code} mentioning {needle:?}, got {reason:?}"
    );
}

#[tokio::test]
async fn pre_auth_message_size() {
    let limits = Limits {
        pre_auth_max_message_size: 600,
        ..Limits::default()
    };
    let url = serve(limits).await;

    // 2.x: a call of exactly 600 bytes is read (and refused: no hello yet).
    let mut peer = Peer::connect(&url, Generation::V2).await;
    send_binary(
        &mut peer,
        frame(1, 0, 600, &echo_msgpack("rpc:c0:1", 600, false)),
    )
    .await;
    let m = peer.recv().await.unwrap();
    assert_eq!(error_code(&m), codes::AUTHENTICATION_ERROR);
    // 601 bytes, in one frame: refused from the frame header.
    send_binary(
        &mut peer,
        frame(2, 0, 601, &echo_msgpack("rpc:c0:2", 601, false)),
    )
    .await;
    closed_with(&mut peer, 1009, "before wslink.hello").await;
    // 601 bytes declared, a few sent: refused from the chunk header.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    send_binary(&mut peer, frame(3, 0, 601, b"abc")).await;
    closed_with(
        &mut peer,
        1009,
        "over the limit of 600 before authentication",
    )
    .await;

    // 1.x: the same for JSON text.
    let mut peer = Peer::connect(&url, Generation::V1).await;
    send_text(&mut peer, echo_json("rpc:c0:1", 600)).await;
    let m = peer.recv().await.unwrap();
    assert_eq!(error_code(&m), codes::AUTHENTICATION_ERROR);
    send_text(&mut peer, echo_json("rpc:c0:2", 601)).await;
    closed_with(&mut peer, 1009, "before wslink.hello").await;

    // A huge frame is refused from its header alone: nothing is buffered.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    tokio::io::AsyncWriteExt::write_all(peer.ws.get_mut(), &header)
        .await
        .unwrap();
    closed_with(
        &mut peer,
        1009,
        "frame of 1099511627776 bytes before wslink.hello",
    )
    .await;
}

#[tokio::test]
async fn max_message_size() {
    let limits = Limits {
        max_message_size: 64 * 1024,
        ..Limits::default()
    };
    let url = serve(limits).await;

    // 2.x: a reassembled message of exactly the limit, in 16 KiB frames.
    let mut peer = authed(&url, Generation::V2).await;
    let body = Bytes::from(echo_msgpack("rpc:c0:1", 64 * 1024, true));
    for f in chunk(body, 11, 16 * 1024).unwrap() {
        send_binary(&mut peer, f).await;
    }
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    let body = Bytes::from(echo_msgpack("rpc:c0:2", 64 * 1024 + 1, true));
    for f in chunk(body, 12, 16 * 1024).unwrap() {
        send_binary(&mut peer, f).await;
    }
    closed_with(&mut peer, 1009, "over the limit of 65536").await;

    // 1.x: an attachment frame of exactly the limit, then one byte more.
    let mut peer = authed(&url, Generation::V1).await;
    send_text(&mut peer, attachment_header("wslink_bin1")).await;
    send_binary(&mut peer, vec![1u8; 64 * 1024]).await;
    send_text(
        &mut peer,
        r#"{"wslink":"1.0","id":"rpc:c0:1","method":"conformance.echo","args":["wslink_bin1"],"kwargs":{}}"#.into(),
    )
    .await;
    let echoed = result(peer.recv().await.unwrap());
    assert_eq!(echoed.as_bytes().map(|b| b.len()), Some(64 * 1024));
    send_text(&mut peer, attachment_header("wslink_bin2")).await;
    send_binary(&mut peer, vec![1u8; 64 * 1024 + 1]).await;
    closed_with(
        &mut peer,
        1009,
        "attachment frame of 65537 bytes is over the limit of 65536",
    )
    .await;
}

#[tokio::test]
async fn max_text_size() {
    let limits = Limits {
        max_text_size: 4096,
        ..Limits::default()
    };
    let url = serve(limits).await;
    let mut peer = authed(&url, Generation::V1).await;
    send_text(&mut peer, echo_json("rpc:c0:1", 4096)).await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    send_text(&mut peer, echo_json("rpc:c0:2", 4097)).await;
    closed_with(
        &mut peer,
        1009,
        "text frame of 4097 bytes is over the limit of 4096",
    )
    .await;
}

#[tokio::test]
async fn max_frame_size() {
    let limits = Limits {
        max_frame_size: 8192,
        ..Limits::default()
    };
    let url = serve(limits).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    let hello = result(peer.hello(SECRET).await);
    assert_eq!(hello.get("maxMsgSize").and_then(Value::as_u64), Some(8192));
    // Frames of maxMsgSize + 4 KiB (`frame_overhead`) are accepted, as
    // wslink's aiohttp does (aiohttp 3.14 stops one byte short of it).
    let limit = 8192 + 4096;
    let body = Bytes::from(echo_msgpack("rpc:c0:1", 3 * (limit - HEADER_LEN), true));
    for f in chunk(body, 21, limit).unwrap() {
        assert_eq!(f.len(), limit);
        send_binary(&mut peer, f).await;
    }
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    let body = Bytes::from(echo_msgpack("rpc:c0:2", 3 * limit, true));
    let first = chunk(body, 22, limit + 1).unwrap().next().unwrap();
    assert_eq!(first.len(), limit + 1);
    send_binary(&mut peer, first).await;
    closed_with(
        &mut peer,
        1009,
        "over maxMsgSize; chunk messages to 8192 bytes",
    )
    .await;
}

#[tokio::test]
async fn frame_overhead() {
    // WSLINK_MSG_OVERHEAD: the slack over maxMsgSize, which it does not change.
    let limits = Limits {
        max_frame_size: 1000,
        frame_overhead: 100,
        ..Limits::default()
    };
    let url = serve(limits).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    let hello = result(peer.hello(SECRET).await);
    assert_eq!(hello.get("maxMsgSize").and_then(Value::as_u64), Some(1000));
    let limit = 1100;
    let body = Bytes::from(echo_msgpack("rpc:c0:1", 2 * (limit - HEADER_LEN), true));
    for f in chunk(body, 31, limit).unwrap() {
        assert_eq!(f.len(), limit);
        send_binary(&mut peer, f).await;
    }
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    let body = Bytes::from(echo_msgpack("rpc:c0:2", 3 * limit, true));
    send_binary(
        &mut peer,
        chunk(body, 32, limit + 1).unwrap().next().unwrap(),
    )
    .await;
    closed_with(
        &mut peer,
        1009,
        "over maxMsgSize; chunk messages to 1000 bytes",
    )
    .await;
}

#[tokio::test]
async fn max_pending_messages() {
    let limits = Limits {
        max_pending_messages: 4,
        ..Limits::default()
    };
    let url = serve(limits).await;
    let mut peer = authed(&url, Generation::V2).await;
    let bodies: Vec<Vec<u8>> = (0..5)
        .map(|i| echo_msgpack(&format!("rpc:c0:{i}"), 100, false))
        .collect();
    // Four partial messages at once are fine: complete them all.
    for (i, body) in bodies.iter().take(4).enumerate() {
        send_binary(&mut peer, frame(i as u32, 0, 100, &body[..50])).await;
    }
    for (i, body) in bodies.iter().take(4).enumerate() {
        send_binary(&mut peer, frame(i as u32, 50, 100, &body[50..])).await;
        assert_eq!(reply_id(&mut peer).await, format!("rpc:c0:{i}"));
    }
    // A fifth beside four is not.
    for (i, body) in bodies.iter().enumerate() {
        send_binary(&mut peer, frame(10 + i as u32, 0, 100, &body[..50])).await;
    }
    closed_with(&mut peer, 1008, "over the limit of 4 partial messages").await;
}

#[tokio::test]
async fn announced_attachment_keys_follow_max_pending_messages() {
    // 1.x keys announced and still waiting for their binary: 16 per
    // allowed partial message (here 20 x 16 = 320).
    let url = serve(Limits {
        max_pending_messages: 20,
        ..Limits::default()
    })
    .await;
    let mut peer = authed(&url, Generation::V1).await;
    for n in 0..320 {
        send_text(&mut peer, attachment_header(&format!("wslink_bin{n}"))).await;
    }
    // At the limit the connection still works, and pairing still holds.
    send_binary(&mut peer, vec![7u8; 3]).await;
    send_text(
        &mut peer,
        r#"{"wslink":"1.0","id":"rpc:c0:1","method":"conformance.echo","args":["wslink_bin0"],"kwargs":{}}"#.into(),
    )
    .await;
    assert_eq!(result(peer.recv().await.unwrap()), bin(&[7, 7, 7]));
    // 319 keys wait now; two more are one over.
    send_text(&mut peer, attachment_header("wslink_bin320")).await;
    send_text(&mut peer, attachment_header("wslink_bin321")).await;
    closed_with(&mut peer, 1008, "more than 320 attachment keys announced").await;
}

#[tokio::test]
async fn max_pending_bytes() {
    // Four partial messages holding 1000 bytes each cost 4 x (1000 + 128).
    let held = 4 * (1000 + wslink_core::chunking::SEGMENT_OVERHEAD);
    for (limit, fits) in [(held, true), (held - 1, false)] {
        let url = serve(Limits {
            max_pending_bytes: limit,
            ..Limits::default()
        })
        .await;
        let mut peer = authed(&url, Generation::V2).await;
        let bodies: Vec<Vec<u8>> = (0..4)
            .map(|i| echo_msgpack(&format!("rpc:c0:{i}"), 2000, true))
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            send_binary(&mut peer, frame(i as u32, 0, 2000, &body[..1000])).await;
        }
        if fits {
            for (i, body) in bodies.iter().enumerate() {
                send_binary(&mut peer, frame(i as u32, 1000, 2000, &body[1000..])).await;
                assert_eq!(reply_id(&mut peer).await, format!("rpc:c0:{i}"));
            }
        } else {
            closed_with(&mut peer, 1009, &format!("over the limit of {limit}")).await;
        }
    }

    // 1.x: attachments waiting for their message share the same budget.
    let url = serve(Limits {
        max_pending_bytes: 10_000,
        ..Limits::default()
    })
    .await;
    let mut peer = authed(&url, Generation::V1).await;
    send_text(&mut peer, attachment_header("wslink_bin1")).await;
    send_text(&mut peer, attachment_header("wslink_bin2")).await;
    send_binary(&mut peer, vec![1u8; 6000]).await;
    send_binary(&mut peer, vec![2u8; 4000]).await;
    send_text(
        &mut peer,
        r#"{"wslink":"1.0","id":"rpc:c0:1","method":"conformance.echo","args":[["wslink_bin1","wslink_bin2"]],"kwargs":{}}"#.into(),
    )
    .await;
    let echoed = result(peer.recv().await.unwrap());
    assert_eq!(
        echoed.index(1).and_then(Value::as_bytes).map(|b| b.len()),
        Some(4000)
    );
    send_text(&mut peer, attachment_header("wslink_bin3")).await;
    send_text(&mut peer, attachment_header("wslink_bin4")).await;
    send_binary(&mut peer, vec![1u8; 6000]).await;
    send_binary(&mut peer, vec![2u8; 4001]).await;
    closed_with(&mut peer, 1009, "over the limit of 10000").await;
}

/// `depth` nested arrays (the envelope map and `args` count as two).
fn nested_msgpack(depth: usize) -> Vec<u8> {
    let mut v = Value::Nil;
    for _ in 0..depth - 2 {
        v = Value::from(vec![v]);
    }
    msgpack::encode(&echo_request("rpc:c0:1", v))
        .unwrap()
        .to_vec()
}

fn nested_json(depth: usize) -> String {
    let inner = depth - 2;
    format!(
        r#"{{"wslink":"1.0","id":"rpc:c0:1","method":"conformance.echo","args":[{}{}],"kwargs":{{}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[tokio::test]
async fn max_depth() {
    let url = serve(Limits {
        max_depth: 10,
        ..Limits::default()
    })
    .await;
    let mut peer = authed(&url, Generation::V2).await;
    send_binary(
        &mut peer,
        frame(1, 0, nested_msgpack(10).len() as u32, &nested_msgpack(10)),
    )
    .await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    send_binary(
        &mut peer,
        frame(2, 0, nested_msgpack(11).len() as u32, &nested_msgpack(11)),
    )
    .await;
    closed_with(&mut peer, 1008, "nesting deeper than 10 levels").await;

    let mut peer = authed(&url, Generation::V1).await;
    send_text(&mut peer, nested_json(10)).await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    send_text(&mut peer, nested_json(11)).await;
    closed_with(&mut peer, 1008, "JSON nesting deeper than 10 levels").await;
}

#[tokio::test]
async fn max_in_flight_calls() {
    // Calls that wait for the test to let them finish.
    let running = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (r, s, g) = (running.clone(), started.clone(), gate.clone());
    let server = Server::builder()
        .limits(Limits {
            max_in_flight_calls: 3,
            ..Limits::default()
        })
        .method("gate.wait", move |_: CallContext, (): ()| {
            let (r, s, g) = (r.clone(), s.clone(), g.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                s.fetch_add(1, Ordering::SeqCst);
                g.acquire().await.unwrap().forget();
                r.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(())
            }
        })
        .build();
    let url = start(&server).await;
    let mut peer = authed(&url, Generation::V2).await;
    for _ in 0..4 {
        let req = peer.request("gate.wait", vec![]);
        peer.send(&req).await;
    }
    let wait_for = |n: usize| {
        let started = started.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while started.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "{n} calls never started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        3,
        "a fourth call ran beside three"
    );
    gate.add_permits(1);
    wait_for(4).await;
    assert_eq!(running.load(Ordering::SeqCst), 3);
    gate.add_permits(3);
    for _ in 0..4 {
        peer.recv().await.unwrap();
    }
}

#[tokio::test]
async fn max_pre_auth_messages() {
    let url = serve(Limits {
        max_pre_auth_messages: 3,
        ..Limits::default()
    })
    .await;
    // Two refused calls, then a hello: still allowed.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    for _ in 0..2 {
        let m = peer
            .call("conformance.add", vec![Value::from(1), Value::from(1)])
            .await;
        assert_eq!(error_code(&m), codes::AUTHENTICATION_ERROR);
    }
    result(peer.hello(SECRET).await);
    // Three: the third is answered, then the connection closes.
    let mut peer = Peer::connect(&url, Generation::V1).await;
    for _ in 0..3 {
        let m = peer
            .call("conformance.add", vec![Value::from(1), Value::from(1)])
            .await;
        assert_eq!(error_code(&m), codes::AUTHENTICATION_ERROR);
    }
    closed_with(&mut peer, 1008, "too many messages before wslink.hello").await;
    // Messages that are not requests count too.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    for i in 0..3 {
        let m = Message::Result {
            id: format!("publish:news:{i}"),
            result: Value::from(i),
        };
        peer.send(&m).await;
    }
    closed_with(&mut peer, 1008, "too many messages before wslink.hello").await;
    // So do system requests other than hello: declarations, unknown methods.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    for method in ["wslink.subscribe", "wslink.nonsense", "wslink.unsubscribe"] {
        let mut req = peer.request(method, vec![Value::from("news")]);
        if let Message::Request(r) = &mut req {
            r.id = r.id.replacen("rpc:", "system:", 1);
        }
        peer.send(&req).await;
        let m = peer.recv().await.unwrap();
        assert!(
            error_code(&m) != 0,
            "{method} before hello must be refused: {m:?}"
        );
    }
    closed_with(&mut peer, 1008, "too many messages before wslink.hello").await;
}

#[tokio::test]
async fn max_auth_failures() {
    let url = serve(Limits {
        max_auth_failures: 2,
        ..Limits::default()
    })
    .await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    assert_eq!(
        error_code(&peer.hello("wrong").await),
        codes::AUTHENTICATION_ERROR
    );
    result(peer.hello(SECRET).await);
    let mut peer = Peer::connect(&url, Generation::V2).await;
    for _ in 0..2 {
        assert_eq!(
            error_code(&peer.hello("wrong").await),
            codes::AUTHENTICATION_ERROR
        );
    }
    closed_with(&mut peer, 1008, "too many failed wslink.hello attempts").await;
}

#[tokio::test]
async fn hello_deadline() {
    let url = serve(Limits {
        hello_deadline: Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    // A hello in time keeps the connection past the deadline.
    let mut on_time = Peer::connect(&url, Generation::V2).await;
    let mut silent = Peer::connect(&url, Generation::V2).await;
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(250)).await;
    result(on_time.hello(SECRET).await);
    closed_with(&mut silent, 1008, "no successful wslink.hello within 0.5 s").await;
    assert!(opened.elapsed() >= Duration::from_millis(450));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sum = on_time
        .call("conformance.add", vec![Value::from(1), Value::from(2)])
        .await;
    assert_eq!(result(sum), Value::from(3));
}

#[tokio::test]
async fn the_hello_deadline_bounds_a_validator_that_never_answers() {
    let server = conformance::builder()
        .limits(Limits {
            hello_deadline: Duration::from_millis(400),
            ..Limits::default()
        })
        .validator(|secret: String, _client: String| async move {
            if secret == "hang" {
                std::future::pending::<()>().await;
            }
            secret == SECRET
        })
        .build();
    let url = start(&server).await;
    let mut hung = Peer::connect(&url, Generation::V2).await;
    hung.send(&Message::Request(hello_request("hang"))).await;
    let opened = Instant::now();
    closed_with(&mut hung, 1008, "the validator did not answer").await;
    assert!(
        opened.elapsed() < Duration::from_secs(3),
        "{:?}",
        opened.elapsed()
    );
    // The validator still admits a good secret on another connection.
    let mut peer = authed(&url, Generation::V2).await;
    let sum = peer
        .call("conformance.add", vec![Value::from(1), Value::from(2)])
        .await;
    assert_eq!(result(sum), Value::from(3));
}

#[tokio::test]
async fn max_connections() {
    let url = serve(Limits {
        max_connections: 3,
        ..Limits::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(authed(&url, Generation::V2).await);
    }
    let refused = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("503"), "{refused}");
    // One leaves: its slot is free again.
    let mut gone = open.pop().unwrap();
    gone.ws.close(None).await.unwrap();
    let _ = gone.recv().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the slot never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Upgrades racing on several threads: the limit is one atomic step, so no
/// more than `max_connections` get through however they interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_connections_holds_under_concurrent_upgrades() {
    let url = serve(Limits {
        max_connections: 4,
        ..Limits::default()
    })
    .await;
    let attempts: Vec<_> = (0..48)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { tokio_tungstenite::connect_async(url.as_str()).await })
        })
        .collect();
    let mut open = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok((ws, _)) => open.push(ws),
            Err(e) => assert!(e.to_string().contains("503"), "{e}"),
        }
    }
    assert_eq!(open.len(), 4, "exactly the limit gets through");
}

/// HOST:PORT of a ws:// URL.
fn host_port(url: &str) -> String {
    let rest = url.trim_start_matches("ws://");
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// Whether the server closed this socket within `within` (EOF or reset on
/// a read), having sent it nothing but perhaps an error status.
async fn closed_by_server(socket: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An error status (408) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn max_pending_connections() {
    let url = serve(Limits {
        max_pending_connections: 3,
        http_header_timeout: Duration::from_secs(30),
        ..Limits::default()
    })
    .await;
    let addr = host_port(&url);
    // Three sockets that connect and say nothing hold every slot ...
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // ... so a fourth is closed at once, and so is a WebSocket client.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_by_server(&mut fourth, Duration::from_secs(5)).await,
        "a socket past max_pending_connections was kept"
    );
    assert!(tokio_tungstenite::connect_async(url.as_str())
        .await
        .is_err());
    // A WebSocket connection does not hold a slot once upgraded: with one
    // silent socket gone, clients get in one after another.
    drop(silent.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open = Vec::new();
    while open.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "upgraded clients still hold slots"
        );
        match tokio::time::timeout(Duration::from_secs(2), authed_or_none(&url)).await {
            Ok(Some(peer)) => open.push(peer),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    drop(silent);
}

async fn authed_or_none(url: &str) -> Option<Peer> {
    let localhost = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut peer = Peer::connect_from(url, Generation::V2, localhost)
        .await
        .ok()?;
    result(peer.hello(SECRET).await);
    Some(peer)
}

#[tokio::test]
async fn http_header_timeout() {
    let url = serve(Limits {
        http_header_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let addr = host_port(&url);
    // Nothing sent, and half a request line: both closed after the timeout.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut partial, b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(closed_by_server(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_by_server(&mut partial, Duration::from_secs(5)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    // A WebSocket client that upgraded is not timed by it.
    let mut peer = authed(&url, Generation::V2).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sum = peer
        .call("conformance.add", vec![Value::from(1), Value::from(2)])
        .await;
    assert_eq!(result(sum), Value::from(3));
}

#[tokio::test]
async fn defaults_at_their_boundaries() {
    let d = Limits::default();
    assert_eq!(d.pre_auth_max_message_size, 512);
    assert_eq!(d.max_message_size, 128 << 20);
    assert_eq!(d.max_text_size, 16 << 20);
    assert_eq!(d.max_frame_size, 4 << 20);
    assert_eq!(d.max_pending_messages, 64);
    assert_eq!(d.max_pending_bytes, 128 << 20);
    assert_eq!(d.max_depth, 128);
    assert_eq!(d.max_in_flight_calls, 256);
    assert_eq!(d.outbound_queue_bytes, 64 << 20);
    assert_eq!(d.outbound_queue_messages, 4096);
    assert_eq!(d.max_pre_auth_messages, 16);
    assert_eq!(d.max_auth_failures, 5);
    assert_eq!(d.hello_deadline, Duration::from_secs(30));
    assert_eq!(d.max_connections, 16_384);
    assert_eq!(d.max_pending_connections, 1024);
    assert_eq!(d.http_header_timeout, Duration::from_secs(30));

    let url = serve(Limits::default()).await;
    // Pre-hello: 512 bytes read, 513 refused.
    let mut peer = Peer::connect(&url, Generation::V2).await;
    send_binary(
        &mut peer,
        frame(1, 0, 512, &echo_msgpack("rpc:c0:1", 512, false)),
    )
    .await;
    assert_eq!(
        error_code(&peer.recv().await.unwrap()),
        codes::AUTHENTICATION_ERROR
    );
    send_binary(
        &mut peer,
        frame(2, 0, 513, &echo_msgpack("rpc:c0:2", 513, false)),
    )
    .await;
    closed_with(&mut peer, 1009, "before wslink.hello").await;
    // Depth: 128 levels in 2.x; 127 in 1.x (serde_json's own bound).
    let mut peer = authed(&url, Generation::V2).await;
    send_binary(
        &mut peer,
        frame(1, 0, nested_msgpack(128).len() as u32, &nested_msgpack(128)),
    )
    .await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    send_binary(
        &mut peer,
        frame(2, 0, nested_msgpack(129).len() as u32, &nested_msgpack(129)),
    )
    .await;
    closed_with(&mut peer, 1008, "nesting deeper than 128 levels").await;
    let mut peer = authed(&url, Generation::V1).await;
    send_text(&mut peer, nested_json(127)).await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    send_text(&mut peer, nested_json(128)).await;
    closed_with(&mut peer, 1008, "JSON nesting deeper than 127 levels").await;
    // 2.x frames: maxMsgSize + 4 KiB.
    let mut peer = authed(&url, Generation::V2).await;
    let limit = (4 << 20) + 4096;
    let body = Bytes::from(echo_msgpack("rpc:c0:1", limit - HEADER_LEN, true));
    send_binary(&mut peer, frame(1, 0, body.len() as u32, &body)).await;
    assert_eq!(reply_id(&mut peer).await, "rpc:c0:1");
    let body = Bytes::from(echo_msgpack("rpc:c0:2", limit + 1 - HEADER_LEN, true));
    send_binary(&mut peer, frame(2, 0, body.len() as u32, &body)).await;
    closed_with(&mut peer, 1009, "over maxMsgSize").await;
}
