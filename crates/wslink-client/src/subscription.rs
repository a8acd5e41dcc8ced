//! Subscriptions: a bounded queue per subscriber, fed by the connection task.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;
use wslink_core::Value;

use crate::Client;

/// The receiving end of one subscriber: a ring of at most `capacity`
/// messages. When it is full, the oldest message makes room for the newest.
#[derive(Debug)]
pub(crate) struct SubQueue {
    inner: Mutex<QueueInner>,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct QueueInner {
    buf: VecDeque<Value>,
    waker: Option<Waker>,
    ended: bool,
}

impl SubQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(SubQueue {
            inner: Mutex::new(QueueInner::default()),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a message; returns `true` if an older one was dropped for it.
    pub(crate) fn push(&self, value: Value) -> bool {
        let mut q = lock(&self.inner);
        let mut dropped = false;
        if q.buf.len() >= self.capacity {
            q.buf.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
            dropped = true;
        }
        q.buf.push_back(value);
        if let Some(w) = q.waker.take() {
            w.wake();
        }
        dropped
    }

    /// No more messages will come: the stream ends once the queue is empty.
    pub(crate) fn end(&self) {
        let mut q = lock(&self.inner);
        q.ended = true;
        if let Some(w) = q.waker.take() {
            w.wake();
        }
    }

    fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        let mut q = lock(&self.inner);
        if let Some(v) = q.buf.pop_front() {
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
}

/// Locks a mutex, ignoring poisoning: the data behind these locks stays
/// consistent even if a holder panicked (every update is a single step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The messages published on one topic, as a [`Stream`] of their values.
///
/// Returned by [`Client::subscribe`]. wslink servers send every publish to
/// every client, so subscribing is local: it only decides which of the
/// messages this client keeps. Dropping the subscription unsubscribes.
///
/// **Buffering.** Each subscription buffers at most
/// [`ClientBuilder::subscription_buffer`](crate::ClientBuilder::subscription_buffer)
/// messages (256 by default). The connection never waits for a slow
/// subscriber, because that would stall every call on the connection too.
/// When a subscriber falls behind and its buffer is full, the **oldest**
/// buffered message is dropped to make room for the newest, and
/// [`dropped`](Subscription::dropped) counts it. Publishes are often frames
/// of a stream (images, progress), where the latest matters most; if every
/// message matters, read promptly or raise the buffer.
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
