//! A server behind a relay (`Server::serve_reverse`): browsers reach it
//! through the relay one after another, each with its own hello. Kitware's
//! relay and server on either end: tests/relay/run.sh.

mod support;

use std::time::{Duration, Instant};

use support::{bin, error_code, result, Peer};
use wslink_core::{Generation, Value};
use wslink_relay::{Mode, Relay, RelayConfig};
use wslink_server::{conformance, ReverseError};

async fn relay() -> (Relay, String, tokio::sync::oneshot::Sender<()>) {
    let relay = Relay::new(RelayConfig {
        mode: Mode::Relay,
        ..RelayConfig::default()
    })
    .unwrap();
    let bound = relay.bind("127.0.0.1:0").await.unwrap();
    let base = format!("ws://{}", bound.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(bound.run_until(async {
        let _ = stopped.await;
    }));
    (relay, base, stop)
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn browsers_take_turns_and_each_says_its_own_hello() {
    let (relay, base, _stop) = relay().await;
    let url = format!("{base}/proxy/job-1");
    let server = conformance::builder().build();
    let serving = tokio::spawn({
        let server = server.clone();
        let url = url.clone();
        async move { server.serve_reverse(&url).await }
    });
    wait_until("the server reaches the relay", || relay.servers() == 1).await;

    let mut first = Peer::connect(&url, Generation::V2).await;
    assert!(matches!(
        first.hello("wslink-secret").await,
        wslink_core::Message::Result { .. }
    ));
    let sum = result(
        first
            .call("conformance.add", vec![Value::from(2), Value::from(3)])
            .await,
    );
    assert_eq!(sum, Value::from(5));
    // 5 MiB each way: chunked frames are masked and unmasked intact.
    let big: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let echoed = result(first.call("conformance.echo", vec![bin(&big)]).await);
    assert_eq!(echoed, bin(&big));
    first.ws.close(None).await.unwrap();
    drop(first);

    // The next browser on the same path gets the same server connection,
    // which the relay told that the last browser left: no call before a hello.
    let mut second = Peer::connect(&url, Generation::V2).await;
    let refused = second
        .call("conformance.add", vec![Value::from(1), Value::from(1)])
        .await;
    assert_eq!(error_code(&refused), -32000);
    assert!(matches!(
        second.hello("wslink-secret").await,
        wslink_core::Message::Result { .. }
    ));
    let sum = result(
        second
            .call("conformance.add", vec![Value::from(1), Value::from(1)])
            .await,
    );
    assert_eq!(sum, Value::from(2));

    // Shutting the server down ends its relay connection and frees the path.
    server.shutdown();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve_reverse returns after shutdown")
        .unwrap()
        .unwrap();
    wait_until("the path is free", || relay.servers() == 0).await;
}

#[tokio::test]
async fn serve_reverse_returns_when_the_relay_goes() {
    let (relay, base, stop) = relay().await;
    let server = conformance::builder().build();
    let url = format!("{base}/proxy/job-2");
    let serving = tokio::spawn(async move { server.serve_reverse(&url).await });
    wait_until("the server reaches the relay", || relay.servers() == 1).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve_reverse returns when the relay closes")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_relay_that_is_not_there_or_refuses_is_an_error() {
    let server = conformance::builder().build();
    let err = server
        .serve_reverse("wss://relay.example/x")
        .await
        .unwrap_err();
    assert!(matches!(err, ReverseError::Url { .. }), "{err}");

    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = unused.local_addr().unwrap();
    drop(unused);
    let err = server
        .serve_reverse(&format!("ws://{dead}/proxy/x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ReverseError::Connect { .. }), "{err}");

    // Our relay answers 404 outside its route, and 409 to a second server.
    let (relay, base, _stop) = relay().await;
    let err = server
        .serve_reverse(&format!("{base}/elsewhere"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let holder = conformance::builder().build();
    let url = format!("{base}/proxy/held");
    tokio::spawn({
        let url = url.clone();
        async move { holder.serve_reverse(&url).await }
    });
    wait_until("the first server holds the path", || relay.servers() == 1).await;
    let err = server.serve_reverse(&url).await.unwrap_err();
    assert!(
        matches!(err, ReverseError::Handshake { .. }) && err.to_string().contains("409"),
        "{err}"
    );
}
