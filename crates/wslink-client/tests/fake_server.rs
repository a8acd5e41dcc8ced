//! The client against an in-process fake server: the normal paths that a
//! real server cannot be made to show on demand (timeouts, replies out of
//! order, frame sizes), and hostile servers: lying chunk headers, replies to
//! unknown ids, garbage frames, endless publishes to a subscriber that does
//! not read.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use support::fake::{chunk_frame, serve, CLIENT_ID};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_client::{Client, Error, Generation, Value};
use wslink_core::codec::{v2, Frame};
use wslink_core::{Message, RpcError};

const LIMIT: Duration = Duration::from_secs(10);

async fn client(url: &str) -> Client {
    Client::builder(url)
        .secret("s")
        .call_timeout(LIMIT)
        .connect()
        .await
        .unwrap()
}

/// Runs `f` with a time limit, so that a broken client fails instead of hanging.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f).await.expect("timed out")
}

#[tokio::test]
async fn hello_sends_the_secret_and_reads_the_limits() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        let hello = c.hello(Some(1000)).await;
        assert_eq!(hello.id, "system:c0:0");
        assert_eq!(
            hello.args[0].get("secret").and_then(Value::as_str),
            Some("s")
        );
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    assert_eq!(c.client_id(), CLIENT_ID);
    assert_eq!(c.max_msg_size(), Some(1000));
    c.close().await;
    within(server).await.unwrap();
}

#[tokio::test]
async fn a_refused_hello_is_an_auth_error() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        let hello = c.request().await;
        c.send(&Message::Error {
            id: hello.id,
            error: RpcError::authentication_failed(),
        })
        .await;
        c.close_frame().await;
    })
    .await;
    let err = Client::connect(&url, "wrong").await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { code: -32000, message, .. } if message == "Authentication failed"),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn connection_refused_names_the_url() {
    // Bind and drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let err = Client::connect(&url, "s").await.unwrap_err();
    assert!(err.is_connection_refused(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.to_lowercase().contains("refused"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_url_is_refused_before_connecting() {
    let err = Client::connect("http//nope", "s").await.unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
}

#[tokio::test]
async fn many_calls_in_flight_get_their_own_replies() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let mut calls = Vec::new();
        for _ in 0..50 {
            calls.push(c.request().await);
        }
        // Answer in reverse order: routing is by id, not by order.
        for r in calls.iter().rev() {
            let result = r.args[0].clone();
            c.reply(&r.id, result).await;
        }
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    let calls = (0..50).map(|i| {
        let c = c.clone();
        async move { c.call("echo", vec![Value::from(i)], vec![]).await }
    });
    let results = within(futures_util::future::join_all(calls)).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().as_u64(), Some(i as u64));
    }
    c.close().await;
    within(server).await.unwrap();
}

#[tokio::test]
async fn typed_calls_go_through_serde() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Sum {
        total: i64,
        parts: Vec<i64>,
    }
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        assert_eq!(r.args, vec![Value::from(2), Value::from(3)]);
        assert_eq!(r.kwargs, vec![(Value::from("scale"), Value::from(10))]);
        let result = Value::map([
            ("total", Value::from(50)),
            ("parts", Value::from(vec![Value::from(2), Value::from(3)])),
        ]);
        c.reply(&r.id, result).await;
        let r = c.request().await;
        c.reply(&r.id, Value::from("not a number")).await;
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    #[derive(serde::Serialize)]
    struct Opts {
        scale: i64,
    }
    let sum: Sum = c
        .call_typed_with_kwargs("sum", (2, 3), Opts { scale: 10 })
        .await
        .unwrap();
    assert_eq!(
        sum,
        Sum {
            total: 50,
            parts: vec![2, 3]
        }
    );
    let err = c.call_typed::<u32>("sum", [1]).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    let err = c.call_typed::<u32>("sum", 5).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgs { .. }), "{err:?}");
    c.close().await;
}

#[tokio::test]
async fn uploads_are_chunked_to_the_servers_max_msg_size() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(Some(1000)).await;
        let r = c.request().await;
        let data = r.args[0].as_bytes().unwrap().clone();
        assert_eq!(data.len(), 10_000);
        // The hello is one frame; every frame of the call fits 1000 bytes.
        assert!(c.binary_frame_sizes.len() > 10);
        assert!(c.binary_frame_sizes.iter().all(|&n| n <= 1000));
        c.reply(&r.id, Value::from(data.len())).await;
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    let data = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let n = c
        .call("size", vec![Value::Bin(data)], vec![])
        .await
        .unwrap();
    assert_eq!(n.as_u64(), Some(10_000));
    c.close().await;
    within(server).await.unwrap();
}

#[tokio::test]
async fn timeouts_default_and_per_call_and_late_replies_are_counted() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let first = c.request().await;
        let second = c.request().await;
        let typed = c.request().await;
        // Answer all three, too late.
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.reply(&first.id, Value::Nil).await;
        c.reply(&second.id, Value::Nil).await;
        c.reply(&typed.id, Value::Nil).await;
        let third = c.request().await;
        c.reply(&third.id, Value::from("in time")).await;
        c.close_frame().await;
    })
    .await;
    let c = Client::builder(&url)
        .call_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let err = c.call("slow", vec![], vec![]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { method, after } if method == "slow" && *after == Duration::from_millis(100)),
        "{err:?}"
    );
    let err = c
        .call_with_timeout("slower", vec![], vec![], Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Timeout { after, .. } if *after == Duration::from_millis(200)));
    let err = c
        .call_typed_with_timeout::<String>("slowest", (), (), Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Timeout { method, after } if method == "slowest" && *after == Duration::from_millis(150)),
        "{err:?}"
    );
    let ok = c
        .call_with_timeout("fine", vec![], vec![], LIMIT)
        .await
        .unwrap();
    assert_eq!(ok.as_str(), Some("in time"));
    assert_eq!(c.stats().unknown_replies, 3);
    c.close().await;
}

#[tokio::test]
async fn close_fails_calls_in_flight_and_sends_a_close_frame() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let _never_answered = c.request().await;
        let frame = c.close_frame().await.expect("a close frame");
        assert_eq!(frame.code, CloseCode::Normal);
    })
    .await;
    let c = client(&url).await;
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.call("hang", vec![], vec![]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    within(c.close()).await;
    let err = within(call).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    assert!(c.is_closed());
    let err = c.call("after", vec![], vec![]).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    within(server).await.unwrap();
}

#[tokio::test]
async fn a_server_that_vanishes_fails_pending_calls() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let _ = c.request().await;
        drop(c); // TCP closed without a close frame
    })
    .await;
    let c = client(&url).await;
    let err = within(c.call("x", vec![], vec![])).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
    within(c.closed()).await;
}

#[tokio::test]
async fn replies_to_unknown_ids_are_ignored_and_counted() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        for id in [
            format!("rpc:{CLIENT_ID}:999"),    // nobody waits for it
            "rpc:someoneelse:0".to_string(),   // another client's id
            "nonsense".to_string(),            // not an id at all
            "system:c0:0".to_string(),         // a second hello reply
            "publish:bad topic:0".to_string(), // malformed publish
        ] {
            c.reply(&id, Value::from("stray")).await;
        }
        c.send(&Message::Error {
            id: format!("rpc:{CLIENT_ID}:12345"),
            error: RpcError::new(-1, "stray error"),
        })
        .await;
        c.reply(&r.id, Value::from("mine")).await;
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    let v = within(c.call("x", vec![], vec![])).await.unwrap();
    assert_eq!(v.as_str(), Some("mine"));
    assert_eq!(c.stats().unknown_replies, 6);
    assert!(!c.is_closed());
    c.close().await;
    within(server).await.unwrap();
}

/// Starts a server that answers the hello, waits for one call, then sends
/// `garbage`; returns the error the call got and the close frame the
/// server received.
async fn after_garbage(
    generation: Generation,
    garbage: Vec<Ws>,
) -> (
    Error,
    Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
) {
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
    let c = Client::builder(&url)
        .generation(generation)
        .max_message_size(1 << 20)
        .call_timeout(LIMIT)
        .connect()
        .await
        .unwrap();
    let err = within(c.call("x", vec![], vec![])).await.unwrap_err();
    within(c.closed()).await;
    let later = c.call("y", vec![], vec![]).await.unwrap_err();
    assert!(matches!(later, Error::Protocol { .. }), "{later:?}");
    (err, within(rx).await.unwrap())
}

fn assert_protocol(err: &Error, needle: &str) {
    assert!(
        matches!(err, Error::Protocol { .. }) && err.to_string().contains(needle),
        "expected a protocol error mentioning {needle:?}, got {err:?} ({err})"
    );
}

#[tokio::test]
async fn a_chunk_header_declaring_4_gib_is_refused_without_allocating() {
    let (err, close) =
        after_garbage(Generation::V2, vec![chunk_frame(7, 0, u32::MAX, b"tiny")]).await;
    assert_protocol(&err, "over the limit");
    assert_eq!(close.unwrap().code, CloseCode::Size);
}

#[tokio::test]
async fn chunks_that_contradict_each_other_are_a_protocol_error() {
    // Same message id, different totals.
    let (err, close) = after_garbage(
        Generation::V2,
        vec![
            chunk_frame(1, 0, 100, &[0; 10]),
            chunk_frame(1, 10, 200, &[0; 10]),
        ],
    )
    .await;
    assert_protocol(&err, "earlier chunk");
    assert_eq!(close.unwrap().code, CloseCode::Protocol);

    // A chunk running past the declared end.
    let (err, _) = after_garbage(Generation::V2, vec![chunk_frame(2, 95, 100, &[0; 10])]).await;
    assert!(matches!(err, Error::Protocol { .. }), "{err:?}");

    // A frame too short for a header.
    let (err, _) =
        after_garbage(Generation::V2, vec![Ws::Binary(Bytes::from_static(b"abc"))]).await;
    assert_protocol(&err, "shorter than");
}

#[tokio::test]
async fn garbage_frames_are_a_protocol_error() {
    // Not msgpack behind a valid header.
    let (err, close) = after_garbage(
        Generation::V2,
        vec![chunk_frame(3, 0, 4, &[0xc1, 0xc1, 0xc1, 0xc1])],
    )
    .await;
    assert_protocol(&err, "msgpack");
    assert_eq!(close.unwrap().code, CloseCode::Protocol);

    // Valid msgpack, not an envelope.
    let frames = v2::encode_frames(&Value::from(42), 0).unwrap();
    let Frame::Binary(b) = frames.into_iter().next().unwrap() else {
        unreachable!()
    };
    let (err, _) = after_garbage(Generation::V2, vec![Ws::Binary(b)]).await;
    assert_protocol(&err, "must be a map");

    // A text frame on a 2.x connection.
    let (err, _) = after_garbage(Generation::V2, vec![Ws::Text("{}".into())]).await;
    assert_protocol(&err, "text frame");

    // 1.x: not JSON.
    let (err, _) = after_garbage(Generation::V1, vec![Ws::Text("{not json".into())]).await;
    assert_protocol(&err, "JSON");

    // 1.x: a binary frame no header announced.
    let (err, _) = after_garbage(
        Generation::V1,
        vec![Ws::Binary(Bytes::from_static(b"\x00\x01"))],
    )
    .await;
    assert_protocol(&err, "without an attachment header");

    // 1.x: a text frame over the size limit (1 MiB here).
    let big = format!("\"{}\"", "x".repeat((1 << 20) + 1));
    let (err, close) = after_garbage(Generation::V1, vec![Ws::Text(big.into())]).await;
    assert_protocol(&err, "size limit");
    assert_eq!(close.unwrap().code, CloseCode::Size);
}

#[tokio::test]
async fn endless_publishes_to_a_subscriber_that_does_not_read() {
    const SENT: usize = 20_000;
    const BUFFER: usize = 16;
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        let blob = Value::from(vec![7u8; 1024]);
        for seq in 0..SENT {
            let result = Value::map([("seq", Value::from(seq)), ("blob", blob.clone())]);
            c.reply("publish:frames:0", result).await;
        }
        // Publishes on a topic nobody wants, too.
        c.reply("publish:other:0", Value::Nil).await;
        c.reply(&r.id, Value::from("still answering")).await;
        c.close_frame().await;
    })
    .await;
    let c = Client::builder(&url)
        .subscription_buffer(BUFFER)
        .call_timeout(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    let mut sub = c.subscribe("frames").unwrap();
    // The subscriber does not read; the call must still get its reply.
    let v = c.call("x", vec![], vec![]).await.unwrap();
    assert_eq!(v.as_str(), Some("still answering"));
    assert_eq!(sub.queued(), BUFFER);
    assert_eq!(sub.dropped(), (SENT - BUFFER) as u64);
    let stats = c.stats();
    assert_eq!(stats.dropped_publishes, (SENT - BUFFER) as u64);
    assert_eq!(stats.unrouted_publishes, 1);
    // What is left is the newest messages, in order.
    for seq in SENT - BUFFER..SENT {
        let m = sub.next().await.unwrap();
        assert_eq!(m.get("seq").and_then(Value::as_u64), Some(seq as u64));
    }
    assert_eq!(sub.queued(), 0);
    c.close().await;
    // After the close, the stream ends.
    assert!(within(sub.next()).await.is_none());
    within(server).await.unwrap();
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes_and_topics_are_checked() {
    let (url, _server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let r = c.request().await;
        c.reply("publish:t:0", Value::from(1)).await;
        c.reply(&r.id, Value::Nil).await;
        let r = c.request().await;
        c.reply("publish:t:0", Value::from(2)).await;
        c.reply(&r.id, Value::Nil).await;
        c.close_frame().await;
    })
    .await;
    let c = client(&url).await;
    assert!(matches!(
        c.subscribe("not a topic"),
        Err(Error::InvalidTopic(_))
    ));
    let mut a = c.subscribe("t").unwrap();
    let b = c.subscribe("t").unwrap();
    c.call("x", vec![], vec![]).await.unwrap();
    assert_eq!(a.recv().await.unwrap().as_u64(), Some(1));
    assert_eq!(b.queued(), 1);
    drop(a);
    drop(b);
    c.call("x", vec![], vec![]).await.unwrap();
    assert_eq!(c.stats().unrouted_publishes, 1);
    c.close().await;
}

#[tokio::test]
async fn v1_binary_goes_as_attachments_both_ways() {
    let (url, server) = serve(Generation::V1, |mut c| async move {
        let hello = c.request().await;
        c.reply(
            &hello.id,
            Value::map([("clientID", Value::from(CLIENT_ID))]),
        )
        .await;
        let r = c.request().await;
        let arg = r.args[0].clone();
        assert_eq!(
            arg.get("data").and_then(Value::as_bytes).map(|b| b.len()),
            Some(3)
        );
        // The 1.x server's quirk: an extra unreferenced attachment first.
        c.raw(Ws::Text(
            r#"{"wslink":"1.0","method":"wslink.binary.attachment","args":["wslink_bin1"]}"#.into(),
        ))
        .await;
        c.raw(Ws::Binary(Bytes::from_static(b"junk"))).await;
        c.reply(&r.id, arg).await;
        c.close_frame().await;
    })
    .await;
    let c = Client::builder(&url)
        .generation(Generation::V1)
        .connect()
        .await
        .unwrap();
    assert_eq!(c.max_msg_size(), None);
    let arg = Value::map([("data", Value::from(Bytes::from_static(b"\x01\x02\x03")))]);
    let back = c.call("echo", vec![arg.clone()], vec![]).await.unwrap();
    assert_eq!(back, arg);
    c.close().await;
    within(server).await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        let frame = c.close_frame().await.expect("a close frame");
        assert_eq!(frame.code, CloseCode::Normal);
    })
    .await;
    let c = client(&url).await;
    drop(c);
    within(server).await.unwrap();
}

/// The client reads frames itself, so answering pings is its own job now
/// (aiohttp, under Kitware's servers, closes connections whose heartbeat
/// pings go unanswered).
#[tokio::test]
async fn pings_are_answered_with_their_payload() {
    let (url, server) = serve(Generation::V2, |mut c| async move {
        c.hello(None).await;
        c.raw(Ws::Ping(Bytes::from_static(b"first"))).await;
        c.raw(Ws::Ping(Bytes::from_static(b"heartbeat"))).await;
        // RFC 6455 lets a pong answer only the latest ping; at least that
        // one must come back.
        let mut pongs = Vec::new();
        while let Some(Ok(frame)) = c.ws.next().await {
            if let Ws::Pong(p) = frame {
                let done = &p[..] == b"heartbeat";
                pongs.push(p);
                if done {
                    break;
                }
            }
        }
        assert_eq!(
            pongs.last().map(|p| &p[..]),
            Some(&b"heartbeat"[..]),
            "{pongs:?}"
        );
    })
    .await;
    // The client only connects: its connection task answers on its own.
    let _c = client(&url).await;
    within(server).await.unwrap();
}

/// A frame written in the same segment as the upgrade response (here the
/// hello's answer, sent before the hello arrives) is read by the client's
/// frame reader, not dropped with tungstenite's handshake buffer.
#[tokio::test]
async fn a_frame_right_behind_the_upgrade_response_is_not_lost() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use wslink_core::protocol::HelloReply;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            tcp.read_exact(&mut byte).await.unwrap();
            request.push(byte[0]);
        }
        let text = String::from_utf8(request).unwrap();
        let key = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("Sec-WebSocket-Key: ")
                    .or_else(|| l.strip_prefix("sec-websocket-key: "))
            })
            .expect("a key")
            .trim();
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        let hello = Message::Result {
            id: wslink_core::ids::HELLO_ID.into(),
            result: HelloReply {
                client_id: CLIENT_ID.into(),
                max_msg_size: None,
                capabilities: Vec::new(),
            }
            .to_value(),
        };
        for frame in v2::encode_frames(&hello, 4 << 20).unwrap() {
            let Frame::Binary(b) = frame else {
                panic!("2.x frames are binary")
            };
            assert!(b.len() < 126);
            out.extend_from_slice(&[0x82, b.len() as u8]);
            out.extend_from_slice(&b);
        }
        // One write: the response and the frame arrive together.
        tcp.write_all(&out).await.unwrap();
        // Hold the connection until the client leaves.
        let mut sink = [0u8; 1024];
        while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let c = client(&url).await;
    assert_eq!(c.client_id(), CLIENT_ID);
    drop(c);
    within(server).await.unwrap();
}
