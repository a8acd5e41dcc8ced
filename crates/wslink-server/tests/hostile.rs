//! Regression tests for what the adversarial suite (tests/adversarial)
//! found: each failed before its fix.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::SinkExt;
use support::{result, start, Peer};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as Ws;
use wslink_core::chunking::ChunkHeader;
use wslink_core::protocol::codes;
use wslink_core::{msgpack, Generation, Message, Value};
use wslink_server::{conformance, Limits};

const SECRET: &str = "wslink-secret";

async fn authed(url: &str, generation: Generation) -> Peer {
    let mut peer = Peer::connect(url, generation).await;
    result(peer.hello(SECRET).await);
    peer
}

fn whole(body: &[u8]) -> Bytes {
    let mut f = ChunkHeader {
        id: 1,
        offset: 0,
        total: body.len() as u32,
    }
    .encode()
    .to_vec();
    f.extend_from_slice(body);
    Bytes::from(f)
}

/// 2.x used to close the connection (1008) where 1.x answered -32001.
#[tokio::test]
async fn a_2x_request_with_bad_args_gets_an_error_reply_and_the_connection_goes_on() {
    let url = start(&conformance::builder().build()).await;
    let mut peer = authed(&url, Generation::V2).await;
    let body = msgpack::encode(&Value::map([
        ("wslink", Value::from("1.0")),
        ("id", Value::from("rpc:c0:9")),
        ("method", Value::from("conformance.add")),
        ("args", Value::map([("a", Value::from(1))])),
    ]))
    .unwrap();
    peer.ws.send(Ws::Binary(whole(&body))).await.unwrap();
    let Message::Error { id, error } = peer.recv().await.unwrap() else {
        panic!("expected an error reply")
    };
    assert_eq!(
        (id.as_str(), error.code),
        ("rpc:c0:9", codes::EXCEPTION_ERROR)
    );
    let text = format!("{:?}", error.data);
    assert!(
        text.contains("\\\"args\\\"") && text.contains("array"),
        "{text}"
    );
    let sum = peer
        .call("conformance.add", vec![Value::from(1), Value::from(2)])
        .await;
    assert_eq!(result(sum), Value::from(3));
}

/// tungstenite used to buffer (and reserve) whole frames of up to 128 MiB
/// from clients that had not said hello.
#[tokio::test]
async fn a_large_frame_before_hello_is_refused_from_its_header() {
    let url = start(&conformance::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    // A binary frame header declaring 16 MiB, and only 4 KiB of it.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(16u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0; 4]);
    header.extend_from_slice(&[0; 4096]);
    peer.ws.get_mut().write_all(&header).await.unwrap();
    let started = Instant::now();
    let closed = peer.recv().await.unwrap_err();
    assert!(
        closed.starts_with("1009")
            && closed.contains("frame of 16777216 bytes before wslink.hello"),
        "{closed}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Replies used to be queued without bound for a client that sent calls
/// and read nothing (each call freed its in-flight slot once its reply was
/// queued, not sent).
#[tokio::test]
async fn a_client_that_does_not_read_its_replies_is_not_read_either() {
    let server = conformance::builder()
        .limits(Limits {
            outbound_queue_bytes: 1 << 20,
            ..Limits::default()
        })
        .build();
    let url = start(&server).await;
    let mut peer = authed(&url, Generation::V2).await;
    const CALLS: usize = 400;
    const SIZE: u64 = 64 * 1024;
    for seed in 0..CALLS {
        let req = peer.request(
            "conformance.blob",
            vec![Value::from(SIZE), Value::from(seed)],
        );
        peer.send(&req).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // 25 MiB of replies asked for; what the server read is bounded by the
    // queue (1 MiB) and what the sockets hold.
    let dispatched = server.metrics().calls as usize;
    assert!(
        dispatched < CALLS,
        "the server read all {dispatched} calls of a client that reads nothing"
    );
    // Nothing is lost: reading resumes, every reply comes.
    for _ in 0..CALLS {
        let blob = result(peer.recv().await.unwrap());
        assert_eq!(blob.get("size").and_then(Value::as_u64), Some(SIZE));
    }
}

/// Replies used to count against the publish bound: a client with large
/// replies queued was disconnected as "too slow" by any publish.
#[tokio::test]
async fn queued_replies_do_not_get_a_client_disconnected_by_a_publish() {
    let server = conformance::builder()
        .limits(Limits {
            outbound_queue_bytes: 1 << 20,
            ..Limits::default()
        })
        .build();
    let url = start(&server).await;
    let publisher = server.publisher();
    let mut peer = authed(&url, Generation::V2).await;
    const CALLS: usize = 16;
    for seed in 0..CALLS {
        let req = peer.request(
            "conformance.blob",
            vec![Value::from(1u64 << 20), Value::from(seed)],
        );
        peer.send(&req).await;
    }
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        publisher.publish("news", &"small").unwrap();
    }
    let (mut replies, mut publishes) = (0, 0);
    while replies < CALLS || publishes < 10 {
        let m = peer
            .recv()
            .await
            .unwrap_or_else(|e| panic!("{replies} replies, {publishes} publishes, then {e}"));
        if m.id().unwrap().starts_with("publish:") {
            publishes += 1;
        } else {
            replies += 1;
        }
    }
    assert_eq!(server.metrics().slow_clients_closed, 0);
}
