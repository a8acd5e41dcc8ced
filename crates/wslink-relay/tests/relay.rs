//! The relay's bounds, with raw WebSocket peers on both sides: what a
//! browser that finds no server gets, what a stalled reader costs, what is
//! left when either side leaves. (Kitware's servers and npm wslink through
//! the relay: tests/relay/run.sh.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wslink_relay::{Mode, Relay, RelayConfig};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn start(config: RelayConfig) -> (Relay, SocketAddr) {
    let relay = Relay::new(config).unwrap();
    let bound = relay.bind("127.0.0.1:0").await.unwrap();
    let addr = bound.local_addr();
    tokio::spawn(bound.run_until(std::future::pending()));
    (relay, addr)
}

fn relay_mode() -> RelayConfig {
    RelayConfig {
        mode: Mode::Relay,
        stall_timeout: Duration::from_secs(2),
        max_message_size: 2 * 1024 * 1024,
        ..RelayConfig::default()
    }
}

async fn connect(url: &str, headers: &[(&'static str, &str)]) -> Result<Ws, WsError> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
    Ok(ws)
}

async fn server(addr: SocketAddr, path: &str) -> Ws {
    connect(
        &format!("ws://{addr}{path}"),
        &[("wslink-relay-role", "server")],
    )
    .await
    .unwrap()
}

async fn client(addr: SocketAddr, path: &str) -> Ws {
    connect(&format!("ws://{addr}{path}"), &[]).await.unwrap()
}

/// The next data message, within 5 s.
async fn next_data(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the connection is open")
            .expect("no error");
        if msg.is_text() || msg.is_binary() {
            return msg;
        }
    }
}

/// The close code the peer ends with, within `within`; data before it is
/// skipped.
async fn close_code(ws: &mut Ws, within: Duration) -> Option<u16> {
    tokio::time::timeout(within, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the relay closes within the time")
}

/// This process's resident memory (relay and test peers together), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_browser_that_finds_no_server_is_told_so() {
    let (relay, addr) = start(relay_mode()).await;
    let url = format!("ws://{addr}/proxy/nobody");
    // A page (it sends an Origin) is refused at once.
    let mut page = connect(&url, &[("origin", "http://app.example")])
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut page, Duration::from_secs(5)).await,
        Some(4404)
    );
    // A client without an Origin is taken for a server until it speaks
    // first, which a server never does.
    let mut node = client(addr, "/proxy/nobody").await;
    node.send(Message::binary(vec![0u8; 40])).await.unwrap();
    assert_eq!(
        close_code(&mut node, Duration::from_secs(5)).await,
        Some(4404)
    );
    wait_until("the path is freed", || relay.servers() == 0).await;
    // Outside the route: no WebSocket at all.
    match connect(&format!("ws://{addr}/elsewhere"), &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn pairs_carry_messages_and_end_cleanly() {
    let (relay, addr) = start(relay_mode()).await;
    let mut srv = server(addr, "/proxy/a").await;
    wait_until("the server holds the path", || relay.servers() == 1).await;
    // A second server for the path: HTTP 409 before any upgrade.
    match connect(
        &format!("ws://{addr}/proxy/a"),
        &[("wslink-relay-role", "server")],
    )
    .await
    {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 409),
        other => panic!("expected HTTP 409, got {:?}", other.map(|_| ())),
    }
    let mut c1 = client(addr, "/proxy/a").await;
    c1.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next_data(&mut srv).await, Message::binary(vec![1, 2, 3]));
    srv.send(Message::text("back")).await.unwrap();
    assert_eq!(next_data(&mut c1).await, Message::text("back"));
    // A client over the size limit is dropped; its server stays.
    c1.send(Message::binary(vec![0u8; 3 * 1024 * 1024]))
        .await
        .unwrap();
    assert_eq!(
        close_code(&mut c1, Duration::from_secs(5)).await,
        Some(1009)
    );
    // What the server sends with no client is dropped, not kept.
    srv.send(Message::text("to nobody")).await.unwrap();
    wait_until("the message is dropped", || relay.dropped_messages() == 1).await;
    let mut c2 = client(addr, "/proxy/a").await;
    c2.send(Message::text("again")).await.unwrap();
    assert_eq!(next_data(&mut srv).await, Message::text("again"));
    // The server leaving ends its client, and frees the path.
    srv.close(None).await.unwrap();
    assert_eq!(
        close_code(&mut c2, Duration::from_secs(5)).await,
        Some(1001)
    );
    wait_until("the path is freed", || relay.servers() == 0).await;
    wait_until("no connection left", || relay.connections() == 0).await;
}

#[tokio::test]
async fn a_stalled_reader_costs_one_message_and_is_dropped() {
    let (relay, addr) = start(relay_mode()).await;
    let mut srv = server(addr, "/proxy/slow").await;
    let mut stalled = client(addr, "/proxy/slow").await;
    stalled.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_data(&mut srv).await, Message::text("hello"));

    let rss_before = rss_kib();
    // The server sends 1 MiB messages to a client that reads nothing. If
    // the relay queued them, all 256 MiB would go; it holds one at a time,
    // so the server is held back once the sockets' buffers are full.
    let chunk = vec![7u8; 1024 * 1024];
    let mut sent = 0usize;
    for _ in 0..256 {
        match tokio::time::timeout(
            Duration::from_millis(500),
            srv.send(Message::binary(chunk.clone())),
        )
        .await
        {
            Ok(result) => {
                result.unwrap();
                sent += 1;
            }
            Err(_) => break,
        }
    }
    assert!(
        sent < 64,
        "the server pushed {sent} MiB past a stalled client: the relay is buffering"
    );
    let rss_stalled = rss_kib();
    eprintln!(
        "stalled client: the server got {sent} MiB out before being held back; \
         process RSS {} -> {} KiB",
        rss_before, rss_stalled
    );
    assert!(
        rss_stalled.saturating_sub(rss_before) < 96 * 1024,
        "RSS grew from {rss_before} to {rss_stalled} KiB"
    );

    // Meanwhile another pair is served as usual.
    let mut other_srv = server(addr, "/proxy/other").await;
    let mut other = client(addr, "/proxy/other").await;
    other.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_data(&mut other_srv).await, Message::text("ping"));
    other_srv.send(Message::text("pong")).await.unwrap();
    assert_eq!(next_data(&mut other).await, Message::text("pong"));

    // After the stall timeout the stalled client is dropped, and the server
    // is read again (its message has nobody to go to, so it is dropped).
    let mut unblocked = false;
    for _ in 0..10 {
        if tokio::time::timeout(
            Duration::from_secs(1),
            srv.send(Message::binary(vec![1u8; 16])),
        )
        .await
        .is_ok()
        {
            unblocked = true;
            break;
        }
    }
    assert!(
        unblocked,
        "the server is still held back by a dropped client"
    );
    wait_until("the stalled client's connection is gone", || {
        relay.connections() == 3
    })
    .await;
    // Its socket ends after what the kernel had buffered; the close frame
    // (4408) is sent only if there was room for it, so either is right.
    let code = close_code(&mut stalled, Duration::from_secs(20)).await;
    assert!(matches!(code, None | Some(4408)), "closed with {code:?}");
    // The server keeps its path: the next client gets it.
    let mut next = client(addr, "/proxy/slow").await;
    next.send(Message::text("next")).await.unwrap();
    loop {
        // (messages queued in the server's own socket before the drop)
        if next_data(&mut srv).await == Message::text("next") {
            break;
        }
    }
    assert_eq!(relay.servers(), 2);
}

#[tokio::test]
async fn forward_mode_connects_to_the_target_once_per_browser() {
    // A target that echoes, as a wslink server would answer.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = target.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = target.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_binary() || msg.is_text() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    let (_relay, addr) = start(RelayConfig {
        mode: Mode::Forward,
        ..RelayConfig::default()
    })
    .await;
    let url = format!("ws://{addr}/proxy/{port}");
    let mut browser = client(addr, &format!("/proxy/{port}")).await;
    browser.send(Message::binary(vec![9; 1000])).await.unwrap();
    assert_eq!(
        next_data(&mut browser).await,
        Message::binary(vec![9; 1000])
    );
    // As Kitware's: one browser per target at a time (HTTP 403), once the
    // grace for the one before it to leave has passed.
    let asked = std::time::Instant::now();
    match connect(&url, &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
    assert!(
        asked.elapsed() >= Duration::from_millis(1900),
        "refused after {:?}, before the grace",
        asked.elapsed()
    );
    // A browser that connects while the one before it is still leaving (a
    // reloaded page) waits for it instead of being refused.
    let reloaded = tokio::spawn({
        let url = url.clone();
        async move { connect(&url, &[]).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    browser.close(None).await.unwrap();
    let mut again = match reloaded.await.unwrap() {
        Ok(ws) => ws,
        Err(e) => panic!("the browser after the one that left was refused: {e}"),
    };
    again.send(Message::text("x")).await.unwrap();
    assert_eq!(next_data(&mut again).await, Message::text("x"));
    // A port that is not listening: the browser is told.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let mut lost = client(addr, &format!("/proxy/{dead_port}")).await;
    assert_eq!(
        close_code(&mut lost, Duration::from_secs(15)).await,
        Some(4502)
    );
}

#[tokio::test]
async fn forward_mode_names_the_browser_in_x_forwarded_for() {
    // The target records the header of each upgrade it gets.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = target.local_addr().unwrap().port();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = target.accept().await {
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                // The Err type is tungstenite's Callback signature, not ours.
                #[allow(clippy::result_large_err)]
                let record = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                              resp| {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let _ = seen_tx.send(xff);
                    Ok(resp)
                };
                let mut ws = tokio_tungstenite::accept_hdr_async(tcp, record)
                    .await
                    .unwrap();
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    let (_relay, addr) = start(RelayConfig {
        mode: Mode::Forward,
        ..RelayConfig::default()
    })
    .await;
    let url = format!("ws://{addr}/proxy/{port}");
    let browser = connect(&url, &[]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.as_deref(), Some("127.0.0.1"));
    drop(browser);
    // Behind another proxy: its header goes on, the relay's peer last (a
    // server trusting both finds the browser left of them).
    let mut again = None;
    for _ in 0..50 {
        if let Ok(ws) = connect(&url, &[("x-forwarded-for", "203.0.113.7")]).await {
            again = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _again = again.expect("the target is free again");
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.as_deref(), Some("203.0.113.7, 127.0.0.1"));
}

/// One raw HTTP/1.1 GET; the status line and the whole answer.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    (status, answer)
}

#[tokio::test]
async fn www_serves_files_beside_the_route_and_nothing_outside() {
    let root = std::env::temp_dir().join(format!("wslink-relay-www-{}", std::process::id()));
    let www = root.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "<p>relay page</p>").unwrap();
    std::fs::write(root.join("secret.txt"), "not for the web").unwrap();
    let (_relay, addr) = start(RelayConfig {
        mode: Mode::Relay,
        www: Some(www.clone()),
        ..RelayConfig::default()
    })
    .await;
    let (status, answer) = http_get(addr, "/?ws=1").await;
    assert!(status.contains(" 302 "), "{status}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("location: index.html?ws=1"),
        "{answer}"
    );
    let (status, answer) = http_get(addr, "/index.html").await;
    assert!(
        status.contains(" 200 ") && answer.ends_with("<p>relay page</p>"),
        "{answer}"
    );
    for outside in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/nope.html",
    ] {
        let (status, _) = http_get(addr, outside).await;
        assert!(status.contains(" 404 "), "{outside}: {status}");
    }
    // The route is still a WebSocket route, not a file.
    let (status, _) = http_get(addr, "/proxy/x").await;
    assert!(status.contains(" 400 "), "{status}");
    let _ = std::fs::remove_dir_all(&root);
}
