//! The healthy clients: one per wire generation, calling and receiving
//! publishes throughout the run, on the official client library. Every
//! wrong, failed or late reply and every missing publish is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wslink_client::{Client, Generation, Subscription, Value};

/// A topic no one may ever publish on: an attacker tries, before hello.
pub const INTRUSION_TOPIC: &str = "adversarial.intrusion";

/// How long a reply or publish may take before it counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(15);

#[derive(Default)]
pub struct Stats {
    pub calls: AtomicU64,
    pub calls_lost: AtomicU64,
    pub publishes: AtomicU64,
    pub publishes_lost: AtomicU64,
    pub intrusions: AtomicU64,
    pub max_latency_us: AtomicU64,
    pub problems: Mutex<Vec<String>>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub calls: u64,
    pub calls_lost: u64,
    pub publishes: u64,
    pub publishes_lost: u64,
    pub intrusions: u64,
}

impl Snapshot {
    pub fn since(&self, before: &Snapshot) -> Snapshot {
        Snapshot {
            calls: self.calls - before.calls,
            calls_lost: self.calls_lost - before.calls_lost,
            publishes: self.publishes - before.publishes,
            publishes_lost: self.publishes_lost - before.publishes_lost,
            intrusions: self.intrusions - before.intrusions,
        }
    }

    pub fn clean(&self) -> bool {
        self.calls_lost == 0 && self.publishes_lost == 0 && self.intrusions == 0
    }
}

impl Stats {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap();
        if p.len() < 20 {
            p.push(what);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            calls: self.calls.load(Ordering::Relaxed),
            calls_lost: self.calls_lost.load(Ordering::Relaxed),
            publishes: self.publishes.load(Ordering::Relaxed),
            publishes_lost: self.publishes_lost.load(Ordering::Relaxed),
            intrusions: self.intrusions.load(Ordering::Relaxed),
        }
    }

    /// The worst call latency since the last call of this, in ms.
    pub fn take_max_latency_ms(&self) -> f64 {
        self.max_latency_us.swap(0, Ordering::Relaxed) as f64 / 1000.0
    }
}

/// `bytes(size, seed)` of the conformance service.
pub fn pattern(size: usize, seed: u64) -> Vec<u8> {
    (0..size)
        .map(|i| ((i as u64 % 251 * 31 + seed) % 251) as u8)
        .collect()
}

pub struct Healthy {
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Healthy {
    pub async fn start(url: &str) -> Result<Healthy, String> {
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for generation in [Generation::V2, Generation::V1] {
            let client = Client::builder(url)
                .generation(generation)
                .call_timeout(LOST_AFTER)
                .connect()
                .await
                .map_err(|e| format!("healthy {generation} client: {e}"))?;
            let topic = format!(
                "adversarial.heartbeat.{}",
                if generation == Generation::V2 {
                    "v2"
                } else {
                    "v1"
                }
            );
            let heartbeats = client.subscribe(&topic).map_err(|e| e.to_string())?;
            let intrusions = client
                .subscribe(INTRUSION_TOPIC)
                .map_err(|e| e.to_string())?;
            tasks.push(tokio::spawn(run(
                client,
                topic,
                heartbeats,
                intrusions,
                stats.clone(),
                stop.clone(),
            )));
        }
        Ok(Healthy { stats, stop, tasks })
    }

    /// Stops the loops after their current call.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn run(
    client: Client,
    topic: String,
    mut heartbeats: Subscription,
    intrusions: Subscription,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let tag = format!("healthy {}", client.generation());
    let expected_blob = pattern(16, 0);
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        stats.calls.fetch_add(1, Ordering::Relaxed);
        match client
            .call(
                "conformance.add",
                vec![Value::from(i), Value::from(1)],
                vec![],
            )
            .await
        {
            Ok(v) if v.as_u64() == Some(i + 1) => {}
            Ok(v) => {
                stats.calls_lost.fetch_add(1, Ordering::Relaxed);
                stats.problem(format!("{tag}: add({i}, 1) returned {v:?}"));
            }
            Err(e) => {
                stats.calls_lost.fetch_add(1, Ordering::Relaxed);
                stats.problem(format!("{tag}: add({i}, 1) failed: {e}"));
            }
        }
        let took = started.elapsed().as_micros() as u64;
        stats.max_latency_us.fetch_max(took, Ordering::Relaxed);

        if i.is_multiple_of(4) {
            stats.calls.fetch_add(1, Ordering::Relaxed);
            stats.publishes.fetch_add(1, Ordering::Relaxed);
            let args = vec![Value::from(topic.as_str()), Value::from(1), Value::from(16)];
            match client.call("conformance.publish", args, vec![]).await {
                Ok(v) if v.as_u64() == Some(1) => {
                    match tokio::time::timeout(LOST_AFTER, heartbeats.recv()).await {
                        Ok(Some(m))
                            if m.get("blob").and_then(Value::as_bytes).map(|b| b.as_ref())
                                == Some(expected_blob.as_slice()) => {}
                        Ok(Some(m)) => {
                            stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
                            stats.problem(format!("{tag}: wrong heartbeat publish {m:?}"));
                        }
                        Ok(None) => {
                            stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
                            stats.problem(format!("{tag}: subscription ended"));
                        }
                        Err(_) => {
                            stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
                            stats.problem(format!("{tag}: heartbeat publish never came"));
                        }
                    }
                }
                Ok(v) => {
                    stats.calls_lost.fetch_add(1, Ordering::Relaxed);
                    stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
                    stats.problem(format!("{tag}: publish returned {v:?}"));
                }
                Err(e) => {
                    stats.calls_lost.fetch_add(1, Ordering::Relaxed);
                    stats.publishes_lost.fetch_add(1, Ordering::Relaxed);
                    stats.problem(format!("{tag}: publish failed: {e}"));
                }
            }
        }
        let seen = intrusions.queued() as u64;
        if seen > stats.intrusions.load(Ordering::Relaxed) {
            stats.intrusions.store(seen, Ordering::Relaxed);
            stats.problem(format!("{tag}: a message arrived on {INTRUSION_TOPIC}"));
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.close().await;
}
