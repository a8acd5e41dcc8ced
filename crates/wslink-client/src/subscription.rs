//! Subscriptions: a bounded queue per subscriber, fed by the connection task.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use tokio::sync::Notify;
use wslink_core::Value;

use crate::{Client, Error};

/// The receiving end of one subscriber: a ring of at most `capacity`
/// messages and (roughly) `max_bytes` bytes. When a new message takes it
/// over either bound, the oldest messages make room for it; the newest is
/// always kept.
#[derive(Debug)]
pub(crate) struct SubQueue {
    inner: Mutex<QueueInner>,
    capacity: usize,
    max_bytes: usize,
    dropped: AtomicU64,
    /// Woken when the declaration is confirmed, refused, or the connection
    /// ends (see [`Subscription::declared`]).
    settled: Notify,
}

#[derive(Debug, Default)]
struct QueueInner {
    /// Each message with what it is charged (see [`charge`]).
    buf: VecDeque<(Value, usize)>,
    /// The sum of the charges in `buf`.
    bytes: usize,
    waker: Option<Waker>,
    ended: bool,
    /// The server refused to declare the topic (see `Subscription::refused`).
    refused: Option<String>,
    /// The server confirmed the topic's declaration, or nothing needs
    /// confirming (a client that does not declare).
    confirmed: bool,
}

/// What a buffered value is charged: the bytes of its strings, binaries
/// and extensions, plus the size of a [`Value`] for each value in it.
///
/// Binaries decoded from a 2.x message are slices of the message's buffer,
/// so this is close to the memory the value keeps alive. Recursion is
/// bounded by the decoders' nesting limit (128 levels).
fn charge(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    NODE + match value {
        Value::Str(s) => s.len(),
        Value::Bin(b) | Value::Ext(_, b) => b.len(),
        Value::Array(items) => items.iter().map(charge).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| charge(k) + charge(v)).sum(),
        _ => 0,
    }
}

impl SubQueue {
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(SubQueue {
            inner: Mutex::new(QueueInner::default()),
            capacity: capacity.max(1),
            max_bytes,
            dropped: AtomicU64::new(0),
            settled: Notify::new(),
        })
    }

    /// The server confirmed the topic (or nothing is declared): publishes
    /// made from now on reach this subscriber.
    pub(crate) fn confirm(&self) {
        lock(&self.inner).confirmed = true;
        self.settled.notify_waiters();
    }

    pub(crate) fn is_confirmed(&self) -> bool {
        lock(&self.inner).confirmed
    }

    /// Queues a message; returns how many older ones were dropped for it.
    pub(crate) fn push(&self, value: Value) -> u64 {
        let size = charge(&value);
        let mut evicted = Vec::new();
        {
            let mut q = lock(&self.inner);
            q.bytes += size;
            q.buf.push_back((value, size));
            while q.buf.len() > 1 && (q.buf.len() > self.capacity || q.bytes > self.max_bytes) {
                if let Some((old, old_size)) = q.buf.pop_front() {
                    q.bytes -= old_size;
                    evicted.push(old);
                }
            }
            if let Some(w) = q.waker.take() {
                w.wake();
            }
        }
        // Freed outside the lock: the reader need not wait for it.
        let dropped = evicted.len() as u64;
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        dropped
    }

    /// No more messages will come: the stream ends once the queue is empty.
    pub(crate) fn end(&self) {
        {
            let mut q = lock(&self.inner);
            q.ended = true;
            if let Some(w) = q.waker.take() {
                w.wake();
            }
        }
        self.settled.notify_waiters();
    }

    /// The server refused the subscription: the stream ends, saying why.
    pub(crate) fn refuse(&self, reason: String) {
        lock(&self.inner).refused = Some(reason);
        self.end();
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        let mut q = lock(&self.inner);
        if let Some((v, size)) = q.buf.pop_front() {
            q.bytes -= size;
            return Poll::Ready(Some(v));
        }
        if q.ended {
            return Poll::Ready(None);
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn len(&self) -> usize {
        lock(&self.inner).buf.len()
    }

    fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }
}

/// Locks a mutex, ignoring poisoning: the data behind these locks stays
/// consistent even if a holder panicked (every update is a single step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The messages published on one topic, as a [`Stream`] of their values.
///
/// Returned by [`Client::subscribe`]. Kitware's servers send every publish
/// to every client, so there subscribing only decides which messages this
/// client keeps; this project's server is told (see
/// [`Client::declares_subscriptions`]) and sends only subscribed topics.
/// Dropping the last subscription to a topic unsubscribes.
///
/// **Buffering.** Each subscription buffers at most
/// [`ClientBuilder::subscription_buffer`](crate::ClientBuilder::subscription_buffer)
/// messages (256 by default) and
/// [`ClientBuilder::subscription_buffer_bytes`](crate::ClientBuilder::subscription_buffer_bytes)
/// bytes (64 MiB by default). The connection never waits for a slow
/// subscriber, because that would stall every call on the connection too.
/// When a subscriber falls behind and a new message would take its buffer
/// over either bound, the **oldest** buffered messages are dropped to make
/// room for the newest (which is always kept), and
/// [`dropped`](Subscription::dropped) counts them. Publishes are often
/// frames of a stream (images, progress), where the latest matters most; if
/// every message matters, read promptly or raise the bounds. So an endless
/// flood of publishes costs a subscriber that does not read a bounded
/// amount of memory, never the connection's.
///
/// The stream ends (`None`) when the connection closes, after the messages
/// already buffered have been read. A subscription keeps its connection open
/// even when every [`Client`] handle is gone.
///
/// ```no_run
/// use futures_util::StreamExt;
/// # async fn demo() -> Result<(), wslink_client::Error> {
/// let client = wslink_client::Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
/// let mut frames = client.subscribe("viewport.image.push")?;
/// while let Some(frame) = frames.next().await {
///     println!("{} bytes", frame.get("image").and_then(|v| v.as_bytes()).map_or(0, |b| b.len()));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription {
    pub(crate) client: Client,
    pub(crate) topic: String,
    pub(crate) queue: Arc<SubQueue>,
}

impl Subscription {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Messages dropped so far because this subscriber fell behind.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// Messages buffered and not yet read.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What the buffered messages are charged against
    /// [`ClientBuilder::subscription_buffer_bytes`](crate::ClientBuilder::subscription_buffer_bytes):
    /// the bytes of their strings and binaries plus the size of a
    /// [`Value`] (a few dozen bytes) for each value in them.
    pub fn queued_bytes(&self) -> usize {
        self.queue.bytes()
    }

    /// Why the server refused this subscription, if it did. A server that
    /// knows subscriptions (see [`Client::declares_subscriptions`]) bounds
    /// how many one connection may declare; past it the subscription's
    /// stream ends at once and this says so.
    pub fn refused(&self) -> Option<String> {
        lock(&self.queue.inner).refused.clone()
    }

    /// Waits until the server has taken note of this subscription, so that
    /// whatever is published from then on, by any connection, reaches it.
    ///
    /// A client that declares its subscriptions (see
    /// [`Client::declares_subscriptions`]) tells the server in a message of
    /// its own; a publish made on another connection before that message
    /// arrives is not sent to this client. Calls made on *this* client
    /// after [`Client::subscribe`] are ordered after the declaration and
    /// need no wait; wait here before asking something else to publish.
    /// Returns at once against servers that send every topic to everyone
    /// (Kitware's).
    ///
    /// Fails with [`Error::SubscriptionRefused`] if the server refused the
    /// topic, or with the connection's error if it ended first.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), wslink_client::Error> {
    /// let viewer = wslink_client::Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
    /// let producer = wslink_client::Client::connect("ws://127.0.0.1:8080/ws", "wslink-secret").await?;
    /// let mut frames = viewer.subscribe("bench")?;
    /// frames.declared().await?;
    /// producer.call("conformance.publish", vec!["bench".into(), 10u64.into(), 1024u64.into()], vec![]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn declared(&self) -> Result<(), Error> {
        loop {
            let settled = self.queue.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let q = lock(&self.queue.inner);
                if let Some(reason) = &q.refused {
                    return Err(Error::SubscriptionRefused {
                        topic: self.topic.clone(),
                        reason: reason.clone(),
                    });
                }
                if q.confirmed {
                    return Ok(());
                }
                if q.ended {
                    return Err(self
                        .client
                        .inner
                        .shared
                        .ended()
                        .map(|e| e.to_error())
                        .unwrap_or_else(|| Error::Closed {
                            detail: "the connection ended".into(),
                        }));
                }
            }
            settled.await;
        }
    }

    /// The next message, or `None` once the connection has closed and the
    /// buffer is empty. The same as `StreamExt::next`.
    pub async fn recv(&mut self) -> Option<Value> {
        std::future::poll_fn(|cx| self.queue.poll_pop(cx)).await
    }

    /// The client this subscription belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Stream for Subscription {
    type Item = Value;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        self.queue.poll_pop(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client.unsubscribe(&self.topic, &self.queue);
    }
}
