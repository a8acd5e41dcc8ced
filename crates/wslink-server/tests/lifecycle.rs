//! Connection and server lifecycle: who receives a publish, in what order,
//! hooks, static files, keepalive, idle timeout and graceful shutdown.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{error_code, result, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wslink_core::protocol::codes;
use wslink_core::{Generation, Message, Value};
use wslink_server::{conformance, CallContext, HandlerError, Server};

const SECRET: &str = "wslink-secret";

/// Binds, spawns `run()`, and returns the URL and the task running it.
async fn spawn(server: &Server) -> (String, tokio::task::JoinHandle<()>) {
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr());
    let task = tokio::spawn(async move { listener.run().await.unwrap() });
    (url, task)
}

async fn authed(url: &str, generation: Generation) -> Peer {
    let mut peer = Peer::connect(url, generation).await;
    result(peer.hello(SECRET).await);
    peer
}

/// The next message on `topic`, skipping nothing else: a test peer here
/// receives only what it is sent.
async fn next_publish(peer: &mut Peer) -> (String, Value) {
    match peer.recv().await.unwrap() {
        Message::Result { id, result } => (id, result),
        other => panic!("expected a publish, got {other:?}"),
    }
}

async fn nothing_arrives(peer: &mut Peer) {
    let got = tokio::time::timeout(Duration::from_millis(300), peer.recv()).await;
    assert!(got.is_err(), "unexpected message: {got:?}");
}

#[tokio::test]
async fn publish_to_all_to_one_and_to_all_but_the_last_active() {
    let server = conformance::builder().build();
    let (url, _task) = spawn(&server).await;
    let publisher = server.publisher();
    let mut a = authed(&url, Generation::V2).await;
    let mut b = authed(&url, Generation::V1).await;
    // Not authenticated: receives no publish at all.
    let mut stranger = Peer::connect(&url, Generation::V2).await;

    assert_eq!(publisher.publish("news.all", &"hi").unwrap(), 2);
    for peer in [&mut a, &mut b] {
        let (id, value) = next_publish(peer).await;
        assert!(id.starts_with("publish:news.all:"), "{id}");
        assert_eq!(value, Value::from("hi"));
    }
    nothing_arrives(&mut stranger).await;

    assert_eq!(
        publisher.publish_to(&b.client_id, "news.one", &7).unwrap(),
        1
    );
    assert_eq!(next_publish(&mut b).await.1, Value::from(7));
    nothing_arrives(&mut a).await;

    // `a` made the latest call, so it is the one skipped.
    b.call("conformance.add", vec![Value::from(1), Value::from(1)])
        .await;
    a.call("conformance.add", vec![Value::from(1), Value::from(1)])
        .await;
    assert_eq!(
        publisher
            .publish_skip_last_active("news.others", &"x")
            .unwrap(),
        1
    );
    assert_eq!(next_publish(&mut b).await.1, Value::from("x"));
    nothing_arrives(&mut a).await;
}

#[tokio::test]
async fn a_topic_name_the_npm_client_would_drop_is_refused() {
    let server = Server::builder().build();
    let err = server
        .publisher()
        .publish("has space", &1)
        .expect_err("an invalid topic must be refused");
    assert!(err.to_string().contains("has space"), "{err}");
}

#[tokio::test]
async fn every_client_sees_each_topic_in_publish_order() {
    let server = Server::builder().build();
    let (url, _task) = spawn(&server).await;
    let mut peers = vec![
        authed(&url, Generation::V2).await,
        authed(&url, Generation::V1).await,
    ];
    let publisher = server.publisher();
    // Two topics published from two threads at once: order holds per topic.
    let threads: Vec<_> = ["order.a", "order.b"]
        .into_iter()
        .map(|topic| {
            let publisher = publisher.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    publisher.publish(topic, &i).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for peer in &mut peers {
        let mut next = [0u64, 0u64];
        for _ in 0..400 {
            let (id, value) = next_publish(peer).await;
            let slot = usize::from(id.starts_with("publish:order.b:"));
            assert_eq!(value.as_u64(), Some(next[slot]), "{id} out of order");
            next[slot] += 1;
        }
        assert_eq!(next, [200, 200]);
    }
}

#[tokio::test]
async fn hooks_see_each_connection_open_and_close() {
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let (e1, e2) = (events.clone(), events.clone());
    let server = Server::builder()
        .on_connect(move |info| {
            e1.lock()
                .unwrap()
                .push(format!("open {}", info.uri().path()));
        })
        .on_close(move |id| e2.lock().unwrap().push(format!("close {id}")))
        .build();
    let (url, _task) = spawn(&server).await;
    let peer = authed(&url, Generation::V2).await;
    let id = peer.client_id.clone();
    assert_eq!(server.client_ids(), vec![id.clone()]);
    drop(peer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        *events.lock().unwrap(),
        vec!["open /ws".to_string(), format!("close {id}")]
    );
    assert!(server.client_ids().is_empty());
    let m = server.metrics();
    assert_eq!((m.connections_total, m.connections_open), (1, 0));
}

/// A plain HTTP/1.1 GET; returns (status line, body).
async fn http_get(addr: &str, path: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    (
        head.lines().next().unwrap().to_string(),
        raw[split + 4..].to_vec(),
    )
}

#[tokio::test]
async fn static_files_share_the_port_and_stay_inside_their_directory() {
    let dir = std::env::temp_dir().join(format!("wslink-content-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(dir.join("sub/app.js"), "let x = 1;").unwrap();
    let server = Server::builder().content(&dir).build();
    let (url, _task) = spawn(&server).await;
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_string();

    // `/` redirects to index.html, as wslink's aiohttp server does.
    let (status, _) = http_get(&addr, "/").await;
    assert!(status.contains(" 302"), "{status}");
    let (status, body) = http_get(&addr, "/index.html").await;
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(body, b"<h1>home</h1>");
    let (status, body) = http_get(&addr, "/sub/app.js").await;
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(body, b"let x = 1;");
    for escape in [
        "/../Cargo.toml",
        "/sub/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
    ] {
        let (status, _) = http_get(&addr, escape).await;
        assert!(
            status.contains(" 404") || status.contains(" 400") || status.contains(" 403"),
            "{escape}: {status}"
        );
    }
    let (status, _) = http_get(&addr, "/missing.txt").await;
    assert!(status.contains(" 404"), "{status}");
    // A link inside the directory that points out of it serves nothing;
    // one that stays inside serves its target.
    let outside = dir.with_extension("outside.txt");
    std::fs::write(&outside, "private").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.join("sub/app.js"), dir.join("alias.js")).unwrap();
    let (status, body) = http_get(&addr, "/leak.txt").await;
    assert!(status.contains(" 404"), "{status}");
    assert!(!body.windows(7).any(|w| w == b"private"));
    let (status, body) = http_get(&addr, "/alias.js").await;
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(body, b"let x = 1;");
    std::fs::remove_file(&outside).unwrap();
    // The WebSocket endpoint still works beside the files.
    authed(&url, Generation::V2).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_peer_that_never_answers_pings_is_closed() {
    let server = Server::builder()
        .keepalive(Some(Duration::from_millis(200)))
        .build();
    let (url, _task) = spawn(&server).await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
    // A hand-made upgrade, after which this peer reads but never replies:
    // its pings go unanswered, as with a frozen browser tab.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the server kept a silent peer for 5 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed too early: {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.contains("keepalive timeout"),
        "no close reason in {text:?}"
    );
}

#[tokio::test]
async fn the_server_stops_after_its_idle_timeout() {
    let server = Server::builder()
        .idle_timeout(Some(Duration::from_millis(300)))
        .build();
    let (url, task) = spawn(&server).await;
    let peer = authed(&url, Generation::V2).await;
    // Connected clients keep it alive past the timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!task.is_finished(), "stopped with a client connected");
    drop(peer);
    let stopped = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(
        stopped.is_ok(),
        "still running 5 s after the last client left"
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_calls_then_closes_with_a_reason() {
    let server = conformance::builder()
        .shutdown_grace(Duration::from_secs(3))
        .method("slow.double", |_: CallContext, (x,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok::<_, HandlerError>(x * 2)
        })
        .build();
    let (url, task) = spawn(&server).await;
    let mut peer = authed(&url, Generation::V2).await;
    let requests: Vec<Message> = (0..5)
        .map(|i| peer.request("slow.double", vec![Value::from(i)]))
        .collect();
    for r in &requests {
        peer.send(r).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown();
    let mut answered = Vec::new();
    let reason = loop {
        match peer.recv().await {
            Ok(m) => answered.push(m),
            Err(reason) => break reason,
        }
    };
    assert_eq!(answered.len(), 5, "replies owed were lost: {answered:?}");
    for m in &answered {
        let i = requests.iter().position(|r| r.id() == m.id()).unwrap();
        assert_eq!(result(m.clone()), Value::from(i as u64 * 2));
    }
    assert!(reason.starts_with("1001"), "close: {reason}");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run() returns after shutdown")
        .unwrap();
    // New connections are refused once stopped.
    assert!(tokio_tungstenite::connect_async(&url).await.is_err());
}

#[tokio::test]
async fn one_grace_period_covers_calls_and_flush_together() {
    let server = conformance::builder()
        .shutdown_grace(Duration::from_secs(1))
        .method("slow.forever", |_: CallContext, (): ()| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, HandlerError>(())
        })
        .build();
    let (url, task) = spawn(&server).await;
    // This client stops reading with 32 MiB queued for it, more than the
    // socket buffers hold, so its writer cannot finish, and one of its calls
    // never does: both waits run to the end of the grace period.
    let mut peer = authed(&url, Generation::V2).await;
    let blob = peer.request("conformance.blob", vec![Value::from(32u64 << 20)]);
    peer.send(&blob).await;
    let stuck = peer.request("slow.forever", vec![]);
    peer.send(&stuck).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    server.shutdown();
    while server.metrics().connections_open > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the connection outlived the shutdown"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gone = started.elapsed();
    // One grace period (plus the close frame's 100 ms), not one per wait.
    assert!(
        gone < Duration::from_millis(1600),
        "connection gone after {gone:?}"
    );
    tokio::time::timeout(Duration::from_millis(2600), task)
        .await
        .expect("run() returns within grace + 1 s")
        .unwrap();
    drop(peer);
}

#[tokio::test]
async fn errors_from_handlers_keep_the_connection_usable() {
    let server = conformance::builder().build();
    let (url, _task) = spawn(&server).await;
    let mut peer = authed(&url, Generation::V2).await;
    let failed = peer
        .call("conformance.fail", vec![Value::from("broken")])
        .await;
    assert_eq!(error_code(&failed), codes::EXCEPTION_ERROR);
    let after = peer
        .call("conformance.add", vec![Value::from(20), Value::from(22)])
        .await;
    assert_eq!(result(after), Value::from(42));
    let m = server.metrics();
    assert!(m.calls >= 2 && m.call_errors >= 1, "{m:?}");
}
