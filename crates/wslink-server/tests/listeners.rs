//! Declared subscriptions: our clients tell the server what they listen
//! to and get only that; clients that never declare (every npm client, here
//! a bare peer) get every topic as before; producers see who listens.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use support::{result, Peer};
use wslink_client::Client;
use wslink_core::{Generation, Message, Value};
use wslink_server::{Limits, Server};

const SECRET: &str = "wslink-secret";

async fn start(server: &Server) -> String {
    support::start(server).await
}

async fn client(url: &str, generation: Generation, declare: bool) -> Client {
    Client::builder(url)
        .secret(SECRET)
        .generation(generation)
        .declare_subscriptions(declare)
        .connect()
        .await
        .unwrap()
}

/// Waits until `cond` holds (the server applies declarations as it reads
/// them, a moment after `subscribe` returns).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Publishes `n` messages of `size` bytes on each of `topics`.
fn publish_all(server: &Server, topics: &[&str], n: usize, size: usize) {
    let payload = bytes::Bytes::from(vec![7u8; size]);
    for i in 0..n {
        for t in topics {
            server
                .publisher()
                .publish(t, &(i, wslink_core::SharedBytes::from(payload.clone())))
                .unwrap();
        }
    }
}

#[tokio::test]
async fn declaring_clients_get_only_their_topics_and_the_wire_shows_it() {
    const N: usize = 50;
    const SIZE: usize = 20_000;
    let mut bytes_out = Vec::new();
    for declare in [true, false] {
        let server = Server::builder().build();
        let url = start(&server).await;
        let a = client(&url, Generation::V2, declare).await;
        let b = client(&url, Generation::V1, declare).await;
        assert_eq!(a.declares_subscriptions(), declare);
        let mut on_a = a.subscribe("scene.a").unwrap();
        let mut on_b = b.subscribe("scene.b").unwrap();
        if declare {
            let p = server.publisher();
            eventually("both declarations applied", || {
                p.has_listeners("scene.a")
                    && p.has_listeners("scene.b")
                    && !p.has_listeners("scene.c")
            })
            .await;
        }
        let before = server.metrics().bytes_out;
        publish_all(&server, &["scene.a", "scene.b"], N, SIZE);
        for (sub, topic) in [(&mut on_a, "scene.a"), (&mut on_b, "scene.b")] {
            for i in 0..N {
                let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(m.index(0), Some(&Value::from(i as u64)), "{topic}");
            }
        }
        // A round trip after the last publish: everything sent has arrived.
        a.call("no.such", vec![], vec![]).await.unwrap_err();
        b.call("no.such", vec![], vec![]).await.unwrap_err();
        let unrouted = a.stats().unrouted_publishes + b.stats().unrouted_publishes;
        bytes_out.push(server.metrics().bytes_out - before);
        if declare {
            assert_eq!(
                unrouted, 0,
                "a declaring client was sent a topic it did not subscribe to"
            );
        } else {
            assert_eq!(
                unrouted,
                2 * N as u64,
                "without declarations every client gets everything"
            );
        }
    }
    println!(
        "bytes sent: declaring {} vs not {}",
        bytes_out[0], bytes_out[1]
    );
    // Each client got half of what it used to.
    assert!(
        bytes_out[0] * 10 < bytes_out[1] * 6,
        "declaring {} bytes vs {} without",
        bytes_out[0],
        bytes_out[1]
    );
}

#[tokio::test]
async fn clients_that_never_declare_still_get_everything() {
    let server = Server::builder().build();
    let url = start(&server).await;
    let ours = client(&url, Generation::V2, true).await;
    let _sub = ours.subscribe("scene.a").unwrap();
    // A peer that speaks plain wslink, as npm's clients do: never declares.
    let mut plain = Peer::connect(&url, Generation::V2).await;
    let reply = plain.hello(SECRET).await;
    let caps = result(reply);
    assert_eq!(
        caps.get("capabilities"),
        Some(&Value::Array(vec![Value::from("subscriptions")])),
        "the offer is an extra field of the hello reply"
    );
    let p = server.publisher();
    eventually("declared", || p.has_listeners("scene.a")).await;
    for topic in ["scene.a", "scene.b", "other.topic"] {
        server.publisher().publish(topic, &topic).unwrap();
        match plain.recv().await.unwrap() {
            Message::Result { id, result } => {
                assert!(id.starts_with(&format!("publish:{topic}:")), "{id}");
                assert_eq!(result, Value::from(topic));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn producers_see_listeners_come_and_go() {
    let server = Server::builder().build();
    let url = start(&server).await;
    let p = server.publisher();
    let mut listening = p.listeners("sim.state");
    assert!(!*listening.borrow_and_update() && !p.has_listeners("sim.state"));

    let a = client(&url, Generation::V2, true).await;
    // Connected but not yet declared: it takes everything, so it listens.
    listening.changed().await.unwrap();
    assert!(*listening.borrow_and_update());
    let other = a.subscribe("other").unwrap();
    listening.changed().await.unwrap();
    assert!(!*listening.borrow_and_update(), "it declared another topic");

    let sub = a.subscribe("sim.state").unwrap();
    listening.changed().await.unwrap();
    assert!(*listening.borrow_and_update());
    drop(sub);
    listening.changed().await.unwrap();
    assert!(!*listening.borrow_and_update(), "the last subscriber left");

    let _again = a.subscribe("sim.state").unwrap();
    listening.changed().await.unwrap();
    assert!(*listening.borrow_and_update());
    drop(other);
    a.close().await;
    listening.changed().await.unwrap();
    assert!(!*listening.borrow_and_update(), "its connection closed");
    assert!(!p.has_listeners("sim.state") && !p.has_listeners("other"));
}

#[tokio::test]
async fn declarations_are_bounded_and_checked() {
    let limits = Limits {
        max_subscriptions: 8,
        ..Limits::default()
    };
    let server = Server::builder().limits(limits).build();
    let url = start(&server).await;
    let a = client(&url, Generation::V2, true).await;
    let subs: Vec<_> = (0..8)
        .map(|i| a.subscribe(&format!("t{i}")).unwrap())
        .collect();
    let mut ninth = a.subscribe("t8").unwrap();
    // The stream of the refused one ends, and says why.
    let end = tokio::time::timeout(Duration::from_secs(5), ninth.next())
        .await
        .unwrap();
    assert!(end.is_none());
    let why = ninth.refused().expect("refused");
    assert!(
        why.contains("too many subscriptions") && why.contains("limit 8"),
        "{why}"
    );
    // The eight still work.
    server.publisher().publish("t3", &1).unwrap();
    let mut t3 = subs.into_iter().nth(3).unwrap();
    assert_eq!(t3.next().await, Some(Value::from(1)));

    // By hand: a topic outside wslink's grammar, and args that are not a topic.
    let mut raw = Peer::connect(&url, Generation::V2).await;
    result(raw.hello(SECRET).await);
    for args in [vec![Value::from("bad topic")], vec![Value::from(3)], vec![]] {
        raw.send(&Message::Request(wslink_core::Request {
            id: format!("system:{}:9", raw.client_id),
            method: "wslink.subscribe".into(),
            args: args.clone(),
            kwargs: vec![],
        }))
        .await;
        match raw.recv().await.unwrap() {
            Message::Error { error, .. } => assert_eq!(error.code, -32001, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
    }
    // Before hello: unauthorized.
    let mut early = Peer::connect(&url, Generation::V2).await;
    early
        .send(&Message::Request(wslink_core::Request {
            id: "system:c0:1".into(),
            method: "wslink.subscribe".into(),
            args: vec![Value::from("t1")],
            kwargs: vec![],
        }))
        .await;
    match early.recv().await.unwrap() {
        Message::Error { error, .. } => assert_eq!(error.code, -32000),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn declared_waits_until_a_publish_from_elsewhere_reaches_the_subscriber() {
    let limits = Limits {
        max_subscriptions: 2,
        ..Limits::default()
    };
    let server = Server::builder().limits(limits).build();
    let url = start(&server).await;
    for generation in [Generation::V2, Generation::V1] {
        let viewer = client(&url, generation, true).await;
        let topic = format!("frames.{generation:?}");
        let mut frames = viewer.subscribe(&topic).unwrap();
        // No wait, no sleep: once declared, the server knows, so a publish
        // made right away by someone else (here the server's own
        // publisher) reaches this subscriber, every time.
        frames.declared().await.unwrap();
        assert!(server.publisher().has_listeners(&topic));
        server.publisher().publish(&topic, &1).unwrap();
        assert_eq!(frames.next().await, Some(Value::from(1)));
        // A second subscriber to a confirmed topic is confirmed at once.
        let again = viewer.subscribe(&topic).unwrap();
        tokio::time::timeout(Duration::from_millis(100), again.declared())
            .await
            .expect("already confirmed")
            .unwrap();
        // Past the server's limit: the refusal is an error naming the topic.
        let _second = viewer.subscribe("other").unwrap();
        let third = viewer.subscribe("third").unwrap();
        match third.declared().await {
            Err(wslink_client::Error::SubscriptionRefused { topic, reason }) => {
                assert_eq!(topic, "third");
                assert!(reason.contains("limit 2"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // A client that does not declare has nothing to wait for.
        let plain = client(&url, generation, false).await;
        let quiet = plain.subscribe(&topic).unwrap();
        tokio::time::timeout(Duration::from_millis(100), quiet.declared())
            .await
            .expect("nothing to confirm")
            .unwrap();
    }
}
