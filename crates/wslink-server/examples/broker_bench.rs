//! Scale-out on NATS, measured: what a broker hop costs a small publish,
//! frame fan-out over three edges against one process, and calls through
//! a worker against in-process calls. Numbers for BENCHMARKS.md.
//!
//! ```text
//! NATS_SERVER=target/peers/nats/bin/nats-server \
//!   cargo run --release -p wslink-server --features broker --example broker_bench -- [N]
//! ```
//!
//! N is the subscribers per edge for the fan-out (default 64: 3 × 64 over
//! three edges against 192 on one). Everything, clients included, runs in
//! this one process on loopback beside one nats-server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wslink_client::{Client, Subscription};
use wslink_server::broker::{BrokerConfig, Worker};
use wslink_server::{
    CallContext, HandlerError, Limits, Methods, Publisher, Server, SharedBytes, Value,
};

/// The nats-server child, killed (and its config removed) on drop.
struct Nats(Child, PathBuf);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn start_nats() -> (Nats, String) {
    let binary = std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/peers/nats/bin/nats-server"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::env::temp_dir().join(format!("wslink-broker-bench-{port}.conf"));
    // 1 MiB frames plus their envelope must fit (the default is 1 MB).
    std::fs::write(
        &config,
        format!("listen: 127.0.0.1:{port}\nmax_payload: 8MB\n"),
    )
    .unwrap();
    let child = Command::new(&binary)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e} (set NATS_SERVER)", binary.display()));
    let nats = Nats(child, config);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (nats, format!("nats://127.0.0.1:{port}"))
}

async fn serve(server: &Server) -> String {
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr());
    tokio::spawn(listener.run());
    url
}

fn builder() -> wslink_server::ServerBuilder {
    // Room for a few 1 MiB frames per subscriber.
    let limits = Limits {
        outbound_queue_bytes: 256 << 20,
        ..Limits::default()
    };
    Server::builder().limits(limits)
}

async fn edge(nats: &str, prefix: &str, methods: Methods) -> (Server, String) {
    let server = builder()
        .methods(methods)
        .broker(BrokerConfig::nats(nats).prefix(prefix))
        .build();
    let url = serve(&server).await;
    server.broker_ready().await;
    (server, url)
}

async fn client(url: &str) -> Client {
    Client::builder(url)
        .subscription_buffer(64)
        .subscription_buffer_bytes(512 << 20)
        .max_message_size(16 << 20)
        .connect()
        .await
        .unwrap()
}

async fn subscribe(server: &Server, client: &Client, topic: &str) -> Subscription {
    let subscription = client.subscribe(topic).unwrap();
    while !server.publisher().has_listeners(topic) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    subscription
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One small publish at a time, timed from `publish()` until the client's
/// subscription yields it.
async fn latency(
    from: &Publisher,
    topic: &str,
    to: &mut Subscription,
    rounds: usize,
) -> (Duration, Duration) {
    let base = Instant::now();
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 100 {
        let sent = base.elapsed().as_nanos() as u64;
        from.publish(topic, &(sent, "a small status message"))
            .unwrap();
        let message = to.recv().await.unwrap();
        let got = base.elapsed().as_nanos() as u64;
        let sent = message.index(0).and_then(Value::as_u64).unwrap();
        if i >= 100 {
            samples.push(Duration::from_nanos(got - sent));
        }
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Frames published one after another, each once every subscriber has the
/// one before: the time until all subscribers have a frame.
async fn fan_out(
    from: &Publisher,
    subscriptions: Vec<Subscription>,
    size: usize,
    frames: usize,
) -> Duration {
    let frame = SharedBytes::from(vec![1u8; size]);
    let subscriptions: Arc<Vec<_>> = Arc::new(
        subscriptions
            .into_iter()
            .map(tokio::sync::Mutex::new)
            .collect(),
    );
    let started = Instant::now();
    for i in 0..frames {
        from.publish("bench.frame", &(i, frame.clone())).unwrap();
        let mut waits = Vec::new();
        for k in 0..subscriptions.len() {
            let subscriptions = subscriptions.clone();
            waits.push(tokio::spawn(async move {
                let message = subscriptions[k].lock().await.recv().await.unwrap();
                assert_eq!(message.index(0).and_then(Value::as_u64), Some(i as u64));
            }));
        }
        for wait in waits {
            wait.await.unwrap();
        }
    }
    started.elapsed() / frames as u32
}

async fn calls_per_second(client: &Client, method: &str, total: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let method = method.to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / 32 {
                let sum: i64 = client.call_typed(&method, (1, 2)).await.unwrap();
                assert_eq!(sum, 3);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (total / 32 * 32) as f64 / started.elapsed().as_secs_f64()
}

fn add_method(name: &str) -> Methods {
    let mut methods = Methods::new();
    methods.add(name, |_ctx: CallContext, (a, b): (i64, i64)| async move {
        Ok::<_, HandlerError>(a + b)
    });
    methods
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: subscribers per edge"))
        .unwrap_or(64);
    let (_nats, nats) = start_nats();
    println!("nats-server at {nats}; fan-out with N = {n} subscribers per edge");

    // 1. A small publish: to a client of the same process, then to a client
    //    of another process through the broker.
    {
        let (a, a_url) = edge(&nats, "lat", Methods::new()).await;
        let (b, b_url) = edge(&nats, "lat", Methods::new()).await;
        let (on_a, on_b) = (client(&a_url).await, client(&b_url).await);
        let mut local = subscribe(&a, &on_a, "bench.local").await;
        let mut remote = subscribe(&b, &on_b, "bench.remote").await;
        let (local_median, local_p99) =
            latency(&a.publisher(), "bench.local", &mut local, 5000).await;
        let (hop_median, hop_p99) =
            latency(&a.publisher(), "bench.remote", &mut remote, 5000).await;
        println!(
            "small publish, publish() to the client's recv(): same process median {local_median:?} p99 {local_p99:?}; \
             through the broker median {hop_median:?} p99 {hop_p99:?}; the hop adds {:?} at the median",
            hop_median.saturating_sub(local_median)
        );
    }

    // 2. Frames to 3N subscribers: one process, then 3 edges × N fed by a
    //    publisher process of its own (a worker).
    for (size, frames) in [(1usize << 20, 10usize), (100 << 10, 30)] {
        let one = builder().build();
        let one_url = serve(&one).await;
        let mut subscriptions = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..3 * n {
            let c = client(&one_url).await;
            subscriptions.push(subscribe(&one, &c, "bench.frame").await);
            clients.push(c);
        }
        let single = fan_out(&one.publisher(), subscriptions, size, frames).await;
        for c in clients.drain(..) {
            c.close().await;
        }

        let prefix = format!("fan{size}");
        let worker = Worker::new(BrokerConfig::nats(&nats).prefix(&prefix))
            .start()
            .await
            .unwrap();
        let mut subscriptions = Vec::new();
        let mut edges = Vec::new();
        for _ in 0..3 {
            let (server, url) = edge(&nats, &prefix, Methods::new()).await;
            for _ in 0..n {
                let c = client(&url).await;
                subscriptions.push(subscribe(&server, &c, "bench.frame").await);
                clients.push(c);
            }
            edges.push(server);
        }
        let scaled = fan_out(&worker.publisher(), subscriptions, size, frames).await;
        let delivered = (3 * n * size) as f64 / (1 << 20) as f64;
        println!(
            "{} KiB frames to {} subscribers: one process {single:?} per frame ({:.0} MiB/s delivered); \
             3 edges over NATS {scaled:?} per frame ({:.0} MiB/s)",
            size >> 10,
            3 * n,
            delivered / single.as_secs_f64(),
            delivered / scaled.as_secs_f64(),
        );
        for c in clients {
            c.close().await;
        }
        worker.stop();
    }

    // 3. Calls: a method of the edge itself, then one served by a worker.
    {
        let (_a, a_url) = edge(&nats, "calls", add_method("local.add")).await;
        let _worker = Worker::new(BrokerConfig::nats(&nats).prefix("calls"))
            .methods(add_method("remote.add"))
            .start()
            .await
            .unwrap();
        let c = client(&a_url).await;
        let local = calls_per_second(&c, "local.add", 20_000).await;
        let remote = calls_per_second(&c, "remote.add", 20_000).await;
        println!(
            "calls/s, one client with 32 in flight: in-process {local:.0}; through a worker {remote:.0}"
        );
    }
}
