//! The client against Kitware's Python wslink servers, 2.6.0 and 1.12.4,
//! running the conformance service (tests/peers/python/conformance_server.py).
//!
//! Needs the reference peers: `bash tests/peers/install.sh` (or `WSLINK_PY2`
//! / `WSLINK_PY1`). Without them these tests fail and say so.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::peers::{server, SECRET};
use wslink_client::{Client, Error, Generation, Value};
use wslink_core::protocol::codes;

const LARGE: usize = 6 * 1024 * 1024;

fn pattern(size: usize, seed: u64) -> Bytes {
    (0..size as u64)
        .map(|i| ((i * 31 + seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn connect(generation: Generation) -> Client {
    Client::builder(&server(generation).url)
        .secret(SECRET)
        .generation(generation)
        .call_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to the Python {generation} peer: {e}"))
}

/// Declares the test once per generation.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn v2() {
                super::$name(wslink_client::Generation::V2).await
            }
            #[tokio::test]
            async fn v1() {
                super::$name(wslink_client::Generation::V1).await
            }
        }
    };
}

both!(calls_dynamic_and_typed);
async fn calls_dynamic_and_typed(g: Generation) {
    let c = connect(g).await;
    assert!(c.client_id().starts_with('c'));
    assert_eq!(
        c.max_msg_size(),
        match g {
            Generation::V2 => Some(4 * 1024 * 1024),
            Generation::V1 => None,
        }
    );
    let five = c
        .call(
            "conformance.add",
            vec![Value::from(2), Value::from(3)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(five, Value::from(5));
    let sum: f64 = c.call_typed("conformance.add", (0.5, 0.25)).await.unwrap();
    assert_eq!(sum, 0.75);
    let got = c
        .call(
            "conformance.kwargs",
            vec![Value::from(1), Value::from("a")],
            vec![(Value::from("x"), Value::from(1))],
        )
        .await
        .unwrap();
    assert_eq!(
        got.get("args"),
        Some(&Value::from(vec![Value::from(1), Value::from("a")]))
    );
    assert_eq!(
        got.get("kwargs").and_then(|k| k.get("x")),
        Some(&Value::from(1))
    );
    c.close().await;
}

both!(integers_keep_their_full_range);
async fn integers_keep_their_full_range(g: Generation) {
    let c = connect(g).await;
    let edges: Value = [
        Value::from(9007199254740993i64),
        Value::from(-9007199254740993i64),
        Value::from(i64::MAX),
        Value::from(i64::MIN),
        Value::from(u64::MAX),
    ]
    .into_iter()
    .collect();
    let back = c
        .call("conformance.echo", vec![edges.clone()], vec![])
        .await
        .unwrap();
    assert_eq!(back, edges);
    let typed: (i64, u64) = c
        .call_typed("conformance.echo", ((i64::MIN, u64::MAX),))
        .await
        .unwrap();
    assert_eq!(typed, (i64::MIN, u64::MAX));
    c.close().await;
}

both!(large_binary_both_ways);
async fn large_binary_both_ways(g: Generation) {
    let c = connect(g).await;
    // Up: 6 MiB, over the 2.x server's 4 MiB frame limit, so chunked.
    let data = pattern(LARGE, 8);
    let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(u32::from(b)));
    let digest = c
        .call("conformance.digest", vec![Value::Bin(data.clone())], vec![])
        .await
        .unwrap();
    assert_eq!(
        digest.get("len").and_then(Value::as_u64),
        Some(LARGE as u64)
    );
    assert_eq!(
        digest.get("sum").and_then(Value::as_u64),
        Some(u64::from(sum))
    );
    // Down.
    let blob = c
        .call(
            "conformance.blob",
            vec![Value::from(LARGE), Value::from(3)],
            vec![],
        )
        .await
        .unwrap();
    assert!(blob.get("blob").and_then(Value::as_bytes) == Some(&pattern(LARGE, 3)));
    // Both, nested, with an empty one.
    let nested = Value::map([
        (
            "x",
            Value::from(vec![Value::Bin(pattern(10, 1)), Value::Bin(Bytes::new())]),
        ),
        ("z", Value::Bin(data)),
    ]);
    let back = c
        .call("conformance.echo", vec![nested.clone()], vec![])
        .await
        .unwrap();
    assert!(back == nested, "nested binary echo differs");
    c.close().await;
}

both!(error_replies_are_typed);
async fn error_replies_are_typed(g: Generation) {
    let c = connect(g).await;
    let err = c
        .call("conformance.fail", vec![Value::from("boom-42")], vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rpc { code: codes::EXCEPTION_ERROR, message, .. } if message == "Exception raised"),
        "{err:?}"
    );
    assert!(err.exception().unwrap().contains("boom-42"), "{err:?}");
    assert!(err.to_string().contains("boom-42"), "{err}");

    let err = c
        .call("conformance.nope", vec![], vec![])
        .await
        .unwrap_err();
    assert!(err.is_method_not_found(), "{err:?}");
    assert!(err.to_string().contains("conformance.nope"), "{err}");
    // The connection is still fine.
    assert_eq!(
        c.call("conformance.echo", vec![Value::from("ok")], vec![])
            .await
            .unwrap(),
        Value::from("ok")
    );
    c.close().await;
}

both!(a_wrong_secret_is_an_auth_error);
async fn a_wrong_secret_is_an_auth_error(g: Generation) {
    let err = Client::builder(&server(g).url)
        .secret("not-the-secret")
        .generation(g)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Auth {
                code: codes::AUTHENTICATION_ERROR,
                ..
            }
        ),
        "{err:?}"
    );
}

both!(publishes_reach_every_subscriber_in_order);
async fn publishes_reach_every_subscriber_in_order(g: Generation) {
    // Topics per generation: the two generations' servers are separate, but
    // other tests of this binary share each server.
    let topic = format!("tests.order{}", if g == Generation::V2 { 2 } else { 1 });
    let a = connect(g).await;
    let b = connect(g).await;
    let mut subs = [a.subscribe(&topic).unwrap(), b.subscribe(&topic).unwrap()];
    let n = a
        .call(
            "conformance.publish",
            vec![
                Value::from(topic.as_str()),
                Value::from(20),
                Value::from(1024),
            ],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(n, Value::from(20));
    for sub in &mut subs {
        for seq in 0..20u64 {
            let m = tokio::time::timeout(Duration::from_secs(10), sub.recv())
                .await
                .expect("publish in time")
                .expect("connection open");
            assert_eq!(m.get("seq").and_then(Value::as_u64), Some(seq));
            assert!(m.get("blob").and_then(Value::as_bytes) == Some(&pattern(1024, seq)));
        }
        assert_eq!(sub.dropped(), 0);
    }
    drop(subs);
    a.close().await;
    b.close().await;
}

both!(calls_in_flight_together);
async fn calls_in_flight_together(g: Generation) {
    let c = connect(g).await;
    let calls = (0..20).map(|i| {
        let c = c.clone();
        async move {
            let v = Value::map([("i", Value::from(i)), ("b", Value::Bin(pattern(100, i)))]);
            let back = c.call("conformance.echo", vec![v.clone()], vec![]).await;
            (v, back)
        }
    });
    for (sent, back) in futures_util::future::join_all(calls).await {
        assert_eq!(back.unwrap(), sent);
    }
    c.close().await;
}

both!(a_timed_out_call_leaves_the_connection_usable);
async fn a_timed_out_call_leaves_the_connection_usable(g: Generation) {
    let c = connect(g).await;
    let err = c
        .call_with_timeout(
            "conformance.sleep",
            vec![Value::from(600)],
            vec![],
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The Python server answers the sleep later; that reply is ignored.
    let v = c
        .call("conformance.echo", vec![Value::from("after")], vec![])
        .await
        .unwrap();
    assert_eq!(v, Value::from("after"));
    assert_eq!(c.stats().unknown_replies, 1);
    c.close().await;
}

both!(closing_fails_calls_in_flight);
async fn closing_fails_calls_in_flight(g: Generation) {
    let c = connect(g).await;
    let pending = {
        let c = c.clone();
        tokio::spawn(async move {
            c.call("conformance.sleep", vec![Value::from(1000)], vec![])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.close().await;
    let err = pending.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Closed { .. }), "{err:?}");
}
