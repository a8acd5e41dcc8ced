//! Publishers that wait for their readers: a burst far larger than a
//! client's queue reaches a client that keeps up, whole and in order, with
//! memory bounded; a client that stops reading is dropped after the wait
//! bound and holds nobody else up.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::{result, rss_bytes, Peer};
use wslink_client::Client;
use wslink_core::{Generation, Value};
use wslink_server::{conformance, Limits, Server};

const SECRET: &str = "wslink-secret";
const MIB: u64 = 1 << 20;

async fn start(server: &Server) -> String {
    support::start(server).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_in_mebibyte_publishes_reaches_a_reader_that_keeps_up() {
    // The queue holds 8 MiB: the burst is 128 times that.
    let limits = Limits {
        outbound_queue_bytes: 8 * MIB as usize,
        ..Limits::default()
    };
    let server = conformance::builder().limits(limits).build();
    let url = start(&server).await;
    // The client's own buffer (64 MiB by default) absorbs this test's
    // reading pauses; the server's queue is what is under test.
    let reader = Client::connect(&url, SECRET).await.unwrap();
    let mut frames = reader.subscribe("bench").unwrap();
    let caller = Client::builder(&url)
        .secret(SECRET)
        .call_timeout(Duration::from_secs(600))
        .connect()
        .await
        .unwrap();

    let rss_before = rss_bytes();
    let started = Instant::now();
    const COUNT: u64 = 1024;
    let call = tokio::spawn(async move {
        caller
            .call(
                "conformance.publish",
                vec!["bench".into(), COUNT.into(), MIB.into()],
                vec![],
            )
            .await
    });
    let mut peak = 0;
    for expected in 0..COUNT {
        let m = tokio::time::timeout(Duration::from_secs(60), frames.next())
            .await
            .expect("a frame within a minute")
            .expect("the subscription ended");
        assert_eq!(
            m.get("seq"),
            Some(&Value::from(expected)),
            "out of order or missing"
        );
        let blob = m.get("blob").and_then(Value::as_bytes).unwrap();
        assert_eq!(blob.len() as u64, MIB);
        assert_eq!(blob[1], ((31 + expected) % 251) as u8);
        if expected % 64 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    assert_eq!(result_of(call.await.unwrap()), Value::from(COUNT));
    let secs = started.elapsed().as_secs_f64();
    let growth = peak.saturating_sub(rss_before) as u64;
    println!(
        "1 GiB in {secs:.1} s ({:.0} MiB/s); RSS growth at peak {} MiB (server and client in this process)",
        1024.0 / secs,
        growth / MIB
    );
    assert_eq!(frames.dropped(), 0);
    assert_eq!(
        server.metrics().slow_clients_closed,
        0,
        "the reader kept up and was kept"
    );
    // The server's queue bound (8 MiB) and a message in its writer, the
    // client's subscription buffer (up to 64 MiB) and reassembly, socket
    // buffers and the allocator's slack: bounded, and far below the 1 GiB
    // sent (before publish_wait, the queue bound disconnected the reader).
    assert!(growth < 224 * MIB, "memory grew by {} MiB", growth / MIB);
}

fn result_of(r: Result<Value, wslink_client::Error>) -> Value {
    r.unwrap_or_else(|e| panic!("conformance.publish failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_dropped_after_the_wait_and_holds_nobody_up() {
    let limits = Limits {
        outbound_queue_bytes: 4 * MIB as usize,
        publish_wait: Duration::from_millis(500),
        ..Limits::default()
    };
    let server = conformance::builder().limits(limits).build();
    let url = start(&server).await;
    // Says hello, then never reads again.
    let mut stalled = Peer::connect(&url, Generation::V2).await;
    result(stalled.hello(SECRET).await);
    let healthy = Client::connect(&url, SECRET).await.unwrap();
    let mut frames = healthy.subscribe("burst").unwrap();

    let started = Instant::now();
    let count = 64u64;
    let caller = healthy.clone();
    let call = tokio::spawn(async move {
        let sent = caller
            .call(
                "conformance.publish",
                vec!["burst".into(), count.into(), MIB.into()],
                vec![],
            )
            .await;
        (sent, started.elapsed())
    });
    for expected in 0..count {
        let m = tokio::time::timeout(Duration::from_secs(10), frames.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.get("seq"), Some(&Value::from(expected)));
    }
    let (sent, took) = call.await.unwrap();
    assert_eq!(sent.unwrap(), Value::from(count));
    println!("64 MiB published in {took:?} with a stalled reader beside");
    assert_eq!(
        server.metrics().slow_clients_closed,
        1,
        "the stalled reader is dropped"
    );
    // One wait bound for the stalled client, not one per message.
    assert!(
        took < Duration::from_secs(5),
        "the publisher was held {took:?}"
    );
    drop(stalled);
}
