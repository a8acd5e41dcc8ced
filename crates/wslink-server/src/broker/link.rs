//! One process's connection to the broker: the outbox of shared publishes,
//! the subscription to other processes' publishes, and the client that
//! forwards calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{topics, BrokerConfig, BrokerError};
use crate::server::Shared;

/// What the broker link has done since the server started.
///
/// ```
/// use wslink_server::broker::BrokerStats;
/// let stats = BrokerStats::default();
/// assert_eq!(stats.dropped, 0);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Shared publishes handed to the broker.
    pub forwarded: u64,
    /// Shared publishes not handed to the broker: it was away, the outbox
    /// was full, or the message was over the broker's `max_payload`. Local
    /// clients got them all the same.
    pub dropped: u64,
    /// Publishes of other processes delivered to this one's clients.
    pub received: u64,
    /// Messages from the broker that were not valid envelopes.
    pub malformed: u64,
    /// Calls sent to workers.
    pub calls_forwarded: u64,
    /// Calls sent to workers that came back as no worker, a timeout, or the
    /// broker away.
    pub calls_failed: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub dropped: AtomicU64,
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub calls_forwarded: AtomicU64,
    pub calls_failed: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> BrokerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BrokerStats {
            forwarded: get(&self.forwarded),
            dropped: get(&self.dropped),
            received: get(&self.received),
            malformed: get(&self.malformed),
            calls_forwarded: get(&self.calls_forwarded),
            calls_failed: get(&self.calls_failed),
        }
    }
}

/// What the link's tasks share with it. The tasks never hold the `Link`
/// itself: when the server is dropped, so is the link, which cancels its
/// `stop` token, and the tasks end.
pub(crate) struct LinkState {
    pub config: BrokerConfig,
    pub counters: Counters,
    pub client: OnceLock<async_nats::Client>,
    pub ready: watch::Sender<bool>,
}

pub(crate) struct Link {
    pub state: Arc<LinkState>,
    outbox: mpsc::Sender<(String, Bytes)>,
    pending: Mutex<Option<mpsc::Receiver<(String, Bytes)>>>,
    subscribe_topics: bool,
    /// Cancelled when the server has shut down or the link is dropped: the
    /// tasks end and the NATS connection is drained and closed.
    stop: CancellationToken,
    remote: crate::handler::ErasedHandler,
}

impl Link {
    pub fn new(config: BrokerConfig, subscribe_topics: bool) -> Link {
        let (outbox, pending) = mpsc::channel(config.outbox_messages);
        let (ready, _) = watch::channel(false);
        let state = Arc::new(LinkState {
            config,
            counters: Counters::default(),
            client: OnceLock::new(),
            ready,
        });
        Link {
            remote: super::workers::remote_handler(state.clone()),
            state,
            outbox,
            pending: Mutex::new(Some(pending)),
            subscribe_topics,
            stop: CancellationToken::new(),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.state.config
    }

    pub fn stats(&self) -> BrokerStats {
        self.state.counters.snapshot()
    }

    pub fn count_dropped(&self) {
        bump(&self.state.counters.dropped);
    }

    /// The handler that forwards calls this process does not serve.
    pub fn remote_handler(&self) -> &crate::handler::ErasedHandler {
        &self.remote
    }

    /// Queues an encoded shared publish; never waits.
    pub fn send(&self, subject: String, payload: Bytes) {
        if self.outbox.try_send((subject, payload)).is_err() {
            bump(&self.state.counters.dropped);
        }
    }

    /// Resolves once the link is connected and subscribed.
    pub async fn ready(&self) {
        let mut ready = self.state.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Starts the link's tasks on the current runtime, once; later calls do
    /// nothing.
    pub fn start(&self, shared: Weak<Shared>) {
        let Some(outbox) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let state = self.state.clone();
        let stop = self.stop.clone();
        let subscribe_topics = self.subscribe_topics;
        let token = self.stop.clone();
        let server = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = server_stopped(server) => token.cancel(),
                () = token.cancelled() => {}
            }
        });
        tokio::spawn(async move {
            if let Err(e) = run(state, outbox, shared, stop, subscribe_topics).await {
                tracing::error!(error = %e, "broker link failed; shared topics and workers are off");
            }
        });
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    state: Arc<LinkState>,
    outbox: mpsc::Receiver<(String, Bytes)>,
    shared: Weak<Shared>,
    stop: CancellationToken,
    subscribe_topics: bool,
) -> Result<(), BrokerError> {
    let config = &state.config;
    config.check_prefix()?;
    let url = config.url.clone();
    let client = async_nats::ConnectOptions::new()
        .name(format!("wslink {}", config.prefix))
        // A process's own publishes reach its clients directly, never back
        // from the broker.
        .no_echo()
        .client_capacity(config.client_capacity)
        .subscription_capacity(config.subscription_capacity)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 100).min(2_000))
        })
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(%url, "broker connected; shared delivery on")
                    }
                    async_nats::Event::Disconnected => tracing::warn!(
                        %url,
                        "broker disconnected; local delivery goes on, shared publishes are dropped until it returns"
                    ),
                    other => tracing::warn!(%url, event = %other, "broker event"),
                }
            }
        })
        .connect(config.url.as_str())
        .await
        .map_err(|source| BrokerError::Connect {
            url: config.url.clone(),
            source,
        })?;
    let _ = state.client.set(client.clone());
    tokio::spawn(forward(client.clone(), outbox, state.clone(), stop.clone()));
    let mut subscription =
        if subscribe_topics {
            let subject = format!("{}.topic.>", config.prefix);
            Some(client.subscribe(subject.clone()).await.map_err(|source| {
                BrokerError::Subscribe {
                    url: config.url.clone(),
                    subject,
                    source,
                }
            })?)
        } else {
            None
        };
    tokio::select! {
        () = barrier(&client, &config.prefix) => {}
        () = stop.cancelled() => return close(&client).await,
    }
    state.ready.send_replace(true);
    let Some(subscription) = subscription.as_mut() else {
        stop.cancelled().await;
        return close(&client).await;
    };
    let prefix_len = config.prefix.len() + ".topic.".len();
    loop {
        tokio::select! {
            message = subscription.next() => {
                let Some(message) = message else { return Ok(()) };
                let Some(shared) = shared.upgrade() else { return Ok(()) };
                let topic = message.subject.get(prefix_len..).unwrap_or_default();
                topics::deliver(&shared, &state.counters, topic, message.payload);
            }
            () = stop.cancelled() => return close(&client).await,
        }
    }
}

/// Drains the NATS client: its subscriptions end, what it has queued is
/// sent, and its connection closes, so a stopped server holds no socket to
/// the broker and takes no more of its messages.
async fn close(client: &async_nats::Client) -> Result<(), BrokerError> {
    if let Err(e) = client.drain().await {
        tracing::debug!(error = %e, "broker connection already closed");
    }
    Ok(())
}

/// Resolves once the server has shut down: asked to, and its connections
/// gone or its grace period over, so that calls they forwarded to workers
/// have had their answers. Resolves at once if the server is gone.
async fn server_stopped(shared: Weak<Shared>) {
    let Some(server) = shared.upgrade() else {
        return;
    };
    let mut shutdown = server.shutdown.subscribe();
    let grace = server.config.shutdown_grace;
    drop(server);
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        return;
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        let Some(server) = shared.upgrade() else {
            return;
        };
        let changed = server.open_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if server.open.load(Ordering::Acquire) == 0 {
            return;
        }
        tokio::select! {
            () = changed => {}
            () = &mut deadline => return,
        }
    }
}

/// Returns once the NATS server has processed everything this client sent
/// before (subscriptions included), waiting for a first connection if need
/// be. A flush only empties the socket buffer; a request nobody answers
/// comes back as "no responders" from the server itself, after it has
/// read what came before it on this connection.
pub(crate) async fn barrier(client: &async_nats::Client, prefix: &str) {
    let subject = format!("{prefix}._barrier");
    loop {
        let request = async_nats::Request::new().timeout(Some(Duration::from_secs(2)));
        match client.send_request(subject.clone(), request).await {
            Ok(_) => return,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Hands queued shared publishes to the NATS client, in order.
async fn forward(
    client: async_nats::Client,
    mut outbox: mpsc::Receiver<(String, Bytes)>,
    state: Arc<LinkState>,
    stop: CancellationToken,
) {
    let counters = &state.counters;
    loop {
        let next = tokio::select! {
            next = outbox.recv() => next,
            () = stop.cancelled() => None,
        };
        let Some((subject, payload)) = next else {
            return;
        };
        // Stale frames are worth less than none: while the broker is away,
        // nothing piles up to be replayed when it returns.
        if client.connection_state() != State::Connected {
            bump(&counters.dropped);
            continue;
        }
        let bytes = payload.len();
        match client.publish(subject, payload).await {
            Ok(()) => bump(&counters.forwarded),
            Err(e) => {
                // Over the broker's max_payload, mostly.
                tracing::warn!(error = %e, bytes, "shared publish not sent to the broker; delivered locally only");
                bump(&counters.dropped);
            }
        }
    }
}
