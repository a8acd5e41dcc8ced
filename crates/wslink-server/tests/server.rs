//! The server against a bare WebSocket peer: handshake, dispatch,
//! concurrency, both generations, slow clients.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{bin, error_code, result, start, Peer};
use wslink_core::protocol::codes;
use wslink_core::{Generation, Message, Value};
use wslink_server::{conformance, CallContext, HandlerError, Limits, Server, TopicPolicy};

#[tokio::test]
async fn hello_then_calls_in_both_generations() {
    let url = start(&conformance::builder().build()).await;
    for generation in [Generation::V2, Generation::V1] {
        let mut peer = Peer::connect(&url, generation).await;
        let hello = result(peer.hello("wslink-secret").await);
        let id = hello.get("clientID").unwrap().as_str().unwrap();
        assert!(wslink_core::ids::is_valid_name(id), "{id}");
        assert_eq!(
            hello.get("maxMsgSize").and_then(Value::as_u64),
            (generation == Generation::V2).then_some(4 << 20)
        );
        let sum = result(
            peer.call("conformance.add", vec![Value::from(2), Value::from(3)])
                .await,
        );
        assert_eq!(sum, Value::from(5));
        let blob = bin(&[1, 2, 3]);
        let echoed = result(
            peer.call("conformance.echo", vec![Value::map([("x", blob.clone())])])
                .await,
        );
        assert_eq!(echoed.get("x"), Some(&blob), "{generation}");
        let missing = peer.call("conformance.nope", vec![]).await;
        assert_eq!(error_code(&missing), codes::METHOD_NOT_FOUND);
    }
}

#[tokio::test]
async fn unauthenticated_messages_reach_no_handler() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = Server::builder()
        .method("count.hit", move |_: CallContext, (): ()| {
            let h = h.clone();
            async move { Ok::<_, HandlerError>(h.fetch_add(1, Ordering::SeqCst)) }
        })
        .build();
    let url = start(&server).await;
    for generation in [Generation::V2, Generation::V1] {
        let mut peer = Peer::connect(&url, generation).await;
        let before = peer.call("count.hit", vec![]).await;
        assert_eq!(error_code(&before), codes::AUTHENTICATION_ERROR);
        let wrong = peer.hello("not-the-secret").await;
        assert_eq!(error_code(&wrong), codes::AUTHENTICATION_ERROR);
        let still = peer.call("count.hit", vec![]).await;
        assert_eq!(error_code(&still), codes::AUTHENTICATION_ERROR);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a handler ran before authentication"
    );
    assert_eq!(server.metrics().auth_failures, 2);
}

#[tokio::test]
async fn repeated_wrong_secrets_close_the_connection_with_a_reason() {
    let url = start(&Server::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    for _ in 0..Limits::default().max_auth_failures {
        let reply = peer.hello("guess").await;
        assert_eq!(error_code(&reply), codes::AUTHENTICATION_ERROR);
    }
    let closed = peer.recv().await.unwrap_err();
    assert!(
        closed.starts_with("1008") && closed.contains("failed wslink.hello"),
        "{closed}"
    );
}

#[tokio::test]
async fn calls_on_one_connection_overlap() {
    let url = start(&conformance::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    peer.hello("wslink-secret").await;
    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let req = peer.request("conformance.sleep", vec![Value::from(400)]);
        ids.push(req.id().unwrap().to_owned());
        peer.send(&req).await;
    }
    // A quick call sent after the slow ones is answered before them.
    let quick = peer.request("conformance.add", vec![Value::from(1), Value::from(1)]);
    peer.send(&quick).await;
    let first = peer.recv().await.unwrap();
    assert_eq!(
        first.id(),
        quick.id(),
        "the quick call waited behind the sleeps"
    );
    for _ in 0..4 {
        let m = peer.recv().await.unwrap();
        assert!(ids.iter().any(|id| Some(id.as_str()) == m.id()));
        assert_eq!(result(m), Value::from(400));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1200),
        "4 x 400 ms took {took:?}: calls did not overlap"
    );
}

#[tokio::test]
async fn wrong_arguments_get_a_clear_exception() {
    let url = start(&conformance::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    peer.hello("wslink-secret").await;
    let reply = peer
        .call("conformance.sleep", vec![Value::from("soon")])
        .await;
    let Message::Error { error, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(error.code, codes::EXCEPTION_ERROR);
    let text = error
        .data
        .unwrap()
        .get("exception")
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        text.contains("conformance.sleep") && text.contains("expected u64"),
        "{text}"
    );
}

#[tokio::test]
async fn large_messages_are_chunked_both_ways() {
    let url = start(&conformance::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    peer.hello("wslink-secret").await;
    let size = 6 * 1024 * 1024;
    let reply = result(
        peer.call("conformance.blob", vec![Value::from(size), Value::from(3)])
            .await,
    );
    assert_eq!(
        reply.get("blob").unwrap().as_bytes().unwrap(),
        &conformance::pattern(size, 3)
    );
    let upload = Value::Bin(conformance::pattern(size, 8));
    let digest = result(peer.call("conformance.digest", vec![upload]).await);
    assert_eq!(digest.get("len").and_then(Value::as_u64), Some(size as u64));
}

/// Payloads sent without a copy (`SharedBytes`, `Value::Bin`) arrive
/// intact in both generations, in one frame and cut across many, next to
/// small and copied binary.
#[tokio::test]
async fn shared_payloads_arrive_intact() {
    #[derive(serde::Serialize)]
    struct Tiles {
        seq: u64,
        big: wslink_server::SharedBytes,
        #[serde(with = "wslink_server::core::shared_bytes")]
        medium: Bytes,
        copied: Bytes,
        value: Value,
        small: wslink_server::SharedBytes,
    }
    let tiles = Tiles {
        seq: 9,
        big: conformance::pattern(1 << 20, 1).into(),
        medium: conformance::pattern(300_000, 2),
        copied: conformance::pattern(200_000, 3),
        value: Value::Bin(conformance::pattern(70_000, 4)),
        small: conformance::pattern(100, 5).into(),
    };
    let expected = wslink_core::to_value(&tiles).unwrap();
    for max_frame_size in [4 << 20, 100_000] {
        let limits = Limits {
            max_frame_size,
            ..Limits::default()
        };
        let server = conformance::builder().limits(limits).build();
        let url = start(&server).await;
        let mut peers = Vec::new();
        for generation in [Generation::V2, Generation::V1] {
            let mut peer = Peer::connect(&url, generation).await;
            peer.hello("wslink-secret").await;
            peers.push(peer);
        }
        assert_eq!(server.publisher().publish("tiles", &tiles).unwrap(), 2);
        for peer in &mut peers {
            let m = peer.recv().await.unwrap();
            assert!(m.id().unwrap().starts_with("publish:tiles:"));
            assert!(result(m) == expected, "frame size {max_frame_size}");
        }
    }
}

#[tokio::test]
async fn text_on_a_2x_connection_is_refused_with_a_reason() {
    let url = start(&Server::builder().build()).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    peer.hello("wslink-secret").await;
    peer.send_frame(wslink_core::Frame::text("{}".into())).await;
    let closed = peer.recv().await.unwrap_err();
    assert!(closed.starts_with("1003"), "{closed}");
}

#[tokio::test]
async fn a_stalled_client_does_not_block_others_or_grow_memory() {
    let frame = Bytes::from(vec![7u8; 1 << 20]);
    let limits = Limits {
        outbound_queue_bytes: 8 << 20,
        ..Limits::default()
    };
    let server = Server::builder().limits(limits).build();
    let url = start(&server).await;
    let publisher = server.publisher();
    publisher.set_topic_policy("frames.latest", TopicPolicy::KeepLatest);

    // The stalled peer says hello and then never reads again.
    let mut stalled = Peer::connect(&url, Generation::V2).await;
    stalled.hello("wslink-secret").await;
    let mut healthy = Peer::connect(&url, Generation::V2).await;
    healthy.hello("wslink-secret").await;

    let rss_before = support::rss_bytes();
    // 1 MiB frames for ten seconds' worth at 60 per second, as fast as we can.
    let mut received = 0;
    for i in 0..600u32 {
        publisher.publish("frames.latest", &frame).unwrap();
        if i % 10 == 0 {
            // The healthy client keeps up and keeps getting the newest frames.
            let m = healthy.recv().await.unwrap();
            assert!(m.id().unwrap().starts_with("publish:frames.latest:"));
            received += 1;
        }
    }
    let rss_growth = support::rss_bytes().saturating_sub(rss_before);
    assert!(received >= 60);
    // Queue bound (8 MiB) + socket buffers + one frame in flight per client.
    assert!(
        rss_growth < 64 << 20,
        "memory grew by {} MiB",
        rss_growth >> 20
    );
    assert!(
        server.metrics().frames_dropped > 0,
        "keep-latest never dropped a stale frame"
    );

    // Under the default policy the laggard is disconnected, not buffered.
    for _ in 0..64 {
        publisher.publish("frames.all", &frame).unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(5), healthy.recv()).await;
    }
    assert!(server.metrics().slow_clients_closed >= 1);
    let reply = healthy.call("no.such.method", vec![]).await;
    assert_eq!(error_code(&reply), codes::METHOD_NOT_FOUND);
}

#[tokio::test]
async fn publish_latest_keeps_the_newest_message_of_each_slot() {
    // One topic, two streams (as vtk.js gets every view's frames on one
    // topic): a stalled client must end up with the newest of each, not
    // just the newest of the topic.
    let server = Server::builder().build();
    let url = start(&server).await;
    let publisher = server.publisher();
    let mut stalled = Peer::connect(&url, Generation::V2).await;
    stalled.hello("wslink-secret").await;

    #[derive(serde::Serialize)]
    struct Frame {
        view: &'static str,
        seq: u32,
        pixels: wslink_core::SharedBytes,
    }
    let pixels = wslink_core::SharedBytes::from(vec![1u8; 1 << 20]);
    for seq in 0..400u32 {
        let view = if seq % 2 == 0 { "1" } else { "2" };
        let frame = Frame {
            view,
            seq,
            pixels: pixels.clone(),
        };
        publisher
            .publish_latest("viewport.frames", view, &frame)
            .unwrap();
    }
    assert!(
        server.metrics().frames_dropped > 0,
        "nothing was ever replaced"
    );
    assert_eq!(server.metrics().slow_clients_closed, 0);

    // Now it reads: whatever the socket buffers held, then the queue, whose
    // last two messages are the newest of each view.
    let mut last = std::collections::HashMap::new();
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), stalled.recv()).await {
        let Message::Result { result, .. } = m else {
            panic!("expected a publish, got {m:?}")
        };
        let view = result
            .get("view")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let seq = result.get("seq").and_then(Value::as_u64).unwrap();
        let previous = last.insert(view, seq);
        assert!(
            previous < Some(seq),
            "out of order: {previous:?} then {seq}"
        );
    }
    assert_eq!(last.get("1"), Some(&398));
    assert_eq!(last.get("2"), Some(&399));
}

/// A batch of slow calls that arrived together must not hold back the
/// replies of those already answered (renders for mouse moves queued behind
/// each other would show no frame until the last): a writer that waits for
/// the reader to run out of frames before it writes fails this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_written_while_slow_calls_queued_behind_them_run() {
    const CALLS: usize = 10;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let server = Server::builder()
        .method("render.slow", move |_: CallContext, (): ()| {
            let s = s.clone();
            async move {
                // Synchronous work, done at the future's first poll.
                let n = s.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::sleep(Duration::from_millis(30));
                Ok::<_, HandlerError>(n)
            }
        })
        .build();
    let url = start(&server).await;
    let mut peer = Peer::connect(&url, Generation::V2).await;
    result(peer.hello("wslink-secret").await);
    let calls: Vec<Message> = (0..CALLS)
        .map(|_| peer.request("render.slow", vec![]))
        .collect();
    peer.send_together(&calls).await;
    let first = peer.recv().await.unwrap();
    let started_then = started.load(Ordering::SeqCst);
    assert_eq!(result(first), Value::from(1));
    assert!(
        started_then < CALLS,
        "the first reply came only once all {CALLS} calls had started"
    );
    for n in 2..=CALLS {
        assert_eq!(result(peer.recv().await.unwrap()), Value::from(n));
    }
}
