//! Mounting the wslink endpoint as one route of an existing hyper or axum app.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use support::{result, Peer};
use wslink_core::{Generation, Value};
use wslink_server::conformance;

#[tokio::test]
async fn the_endpoint_mounts_inside_a_hyper_app() {
    let wslink = conformance::builder().build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let wslink = wslink.clone();
            tokio::spawn(async move {
                // The app's own router: one route is wslink, the rest is the app.
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let wslink = wslink.clone();
                    async move {
                        if req.uri().path() == "/ws" {
                            return Ok::<_, Infallible>(
                                wslink.handle_request(req, Some(peer)).await,
                            );
                        }
                        Ok(Response::new(Full::new(Bytes::from_static(
                            b"the app's own page",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });

    let mut peer = Peer::connect(&format!("ws://{addr}/ws"), Generation::V2).await;
    peer.hello("wslink-secret").await;
    let sum = result(
        peer.call("conformance.add", vec![Value::from(20), Value::from(22)])
            .await,
    );
    assert_eq!(sum, Value::from(42));
}

#[tokio::test]
async fn the_endpoint_mounts_as_one_route_of_an_axum_router() {
    use axum::extract::{ConnectInfo, Request};
    use axum::routing::get;
    use std::net::SocketAddr;

    let wslink = conformance::builder().build();
    let app = axum::Router::new()
        .route("/", get(|| async { "the app's own page" }))
        .route(
            "/ws",
            get(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| {
                    let wslink = wslink.clone();
                    async move { wslink.handle_request(req, Some(peer)).await }
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });

    // The app's own route still answers beside the endpoint.
    let mut http = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = Vec::new();
    http.read_to_end(&mut page).await.unwrap();
    assert!(String::from_utf8_lossy(&page).ends_with("the app's own page"));

    for generation in [Generation::V2, Generation::V1] {
        let mut peer = Peer::connect(&format!("ws://{addr}/ws"), generation).await;
        peer.hello("wslink-secret").await;
        let sum = result(
            peer.call("conformance.add", vec![Value::from(20), Value::from(22)])
                .await,
        );
        assert_eq!(sum, Value::from(42), "{generation:?}");
    }
}
