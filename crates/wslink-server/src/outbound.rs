//! Each connection's bounded outbound queue.
//!
//! Frames for one client wait here until its socket takes them. The queue is
//! bounded in bytes and messages; what happens at the bound is the topic's
//! [`TopicPolicy`]. Replies to calls are never dropped: they have a bound of
//! their own, the same size, kept by backpressure instead (the connection is
//! not read while its queued replies are over it, see
//! [`Outbound::reply_room`]), and they do not count against publishes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::publisher::TopicPolicy;
use crate::transport::OutFrame;

/// Why a connection's writer stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub code: u16,
    pub reason: String,
    /// Send what is queued first (graceful) or drop it (error).
    pub drain: bool,
}

pub(crate) enum Next {
    Frames(Arc<[OutFrame]>),
    Ping,
    Close(CloseRequest),
}

/// The result of queueing a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Queued, and an older message of the same topic was dropped for it.
    Replaced,
    /// Over the bound under [`TopicPolicy::Queue`]: the client is being
    /// disconnected and the message was not queued.
    Overflow,
    /// The connection is closing; nothing was queued.
    Closed,
}

struct Item {
    frames: Arc<[OutFrame]>,
    /// The frames' full length (a segmented frame's slices together), what
    /// the bounds count.
    bytes: usize,
    latest_of: Option<Arc<str>>,
    reply: bool,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    /// The replies among `items`, and their bytes.
    replies: usize,
    reply_bytes: usize,
    ping: bool,
    close: Option<CloseRequest>,
    dead: bool,
    /// When the writer last took a publish: a waiting publisher's measure
    /// of whether this client is making progress.
    last_pop: Option<std::time::Instant>,
}

impl Queue {
    fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
        self.replies = 0;
        self.reply_bytes = 0;
    }
}

pub(crate) struct Outbound {
    queue: Mutex<Queue>,
    notify: Notify,
    /// Wakes the connection's reader when a close is requested from
    /// elsewhere (a publisher finding the queue full), so it stops reading.
    closing: Notify,
    /// Wakes a reader waiting for queued replies to go out.
    room: Notify,
    /// Wakes publishers waiting for publishes to go out (`publish_room`).
    publish_room: Notify,
    max_bytes: usize,
    max_messages: usize,
}

pub(crate) fn frames_len(frames: &[OutFrame]) -> usize {
    frames.iter().map(OutFrame::len).sum()
}

impl Outbound {
    pub fn new(max_bytes: usize, max_messages: usize) -> Self {
        Outbound {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            closing: Notify::new(),
            room: Notify::new(),
            publish_room: Notify::new(),
            max_bytes,
            max_messages,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue half-updated
        // in a way that matters more than losing the connection would.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a reply: never dropped while the connection lives.
    pub fn push_reply(&self, frames: Vec<OutFrame>) -> bool {
        let mut q = self.lock();
        if q.dead || q.close.is_some() && !q.close.as_ref().is_some_and(|c| c.drain) {
            return false;
        }
        let bytes = frames_len(&frames);
        q.bytes += bytes;
        q.reply_bytes += bytes;
        q.replies += 1;
        q.items.push_back(Item {
            frames: frames.into(),
            bytes,
            latest_of: None,
            reply: true,
        });
        drop(q);
        self.notify.notify_one();
        true
    }

    /// Queues a publish under `policy`; under keep-latest it replaces the
    /// queued message of the same `topic` key (the topic, or a topic and
    /// slot, see `Publisher::publish_latest`).
    pub fn push_publish(
        &self,
        frames: &Arc<[OutFrame]>,
        topic: &Arc<str>,
        policy: TopicPolicy,
    ) -> Pushed {
        let bytes = frames_len(frames);
        let mut q = self.lock();
        if q.dead || q.close.is_some() {
            return Pushed::Closed;
        }
        let mut outcome = Pushed::Queued;
        if policy == TopicPolicy::KeepLatest {
            if let Some(pos) = q
                .items
                .iter()
                .position(|i| i.latest_of.as_deref() == Some(&**topic))
            {
                let old = q.items.remove(pos).expect("position is in range");
                q.bytes -= old.bytes;
                outcome = Pushed::Replaced;
            }
        }
        // Publishes only: replies have their own bound (see reply_room).
        let (queued_bytes, queued) = (q.bytes - q.reply_bytes, q.items.len() - q.replies);
        if queued_bytes + bytes > self.max_bytes || queued >= self.max_messages {
            q.close = Some(CloseRequest {
                code: 1008,
                reason: format!(
                    "client too slow: outbound queue over {} bytes or {} messages",
                    self.max_bytes, self.max_messages
                ),
                drain: false,
            });
            drop(q);
            self.notify.notify_one();
            self.closing.notify_waiters();
            return Pushed::Overflow;
        }
        q.bytes += bytes;
        q.items.push_back(Item {
            frames: frames.clone(),
            bytes,
            latest_of: (policy == TopicPolicy::KeepLatest).then(|| topic.clone()),
            reply: false,
        });
        drop(q);
        self.notify.notify_one();
        outcome
    }

    pub fn request_ping(&self) {
        self.lock().ping = true;
        self.notify.notify_one();
    }

    /// Asks the writer to close. The first request wins, except that an
    /// error close overrides a pending graceful one.
    pub fn close(&self, request: CloseRequest) {
        let mut q = self.lock();
        match &q.close {
            Some(existing) if !existing.drain || request.drain => {}
            _ => q.close = Some(request),
        }
        drop(q);
        self.notify.notify_one();
        self.closing.notify_waiters();
        self.room.notify_one();
        self.publish_room.notify_waiters();
    }

    /// Whether the queued replies are at the bound: the connection should
    /// not read more requests until [`Outbound::reply_room`].
    pub fn replies_over_bound(&self) -> bool {
        let q = self.lock();
        q.reply_bytes >= self.max_bytes || q.replies >= self.max_messages
    }

    /// Resolves once the queued replies are under the bound again, or the
    /// connection is closing.
    pub async fn reply_room(&self) {
        loop {
            let room = self.room.notified();
            {
                let q = self.lock();
                let over = q.reply_bytes >= self.max_bytes || q.replies >= self.max_messages;
                if !over || q.dead || q.close.is_some() {
                    return;
                }
            }
            room.await;
        }
    }

    /// Resolves once a publish of `bytes` fits under the publish bound (or
    /// the queue is empty: a message larger than the bound still goes
    /// alone), or the connection is closing, or the writer has taken
    /// nothing for `stall` (a client that stopped reading). A publisher
    /// that waits here runs at its reader's pace instead of overflowing
    /// the queue; a dead reader costs it `stall`, once.
    pub async fn publish_room(&self, bytes: usize, stall: std::time::Duration) {
        let began = std::time::Instant::now();
        loop {
            let room = self.publish_room.notified();
            tokio::pin!(room);
            // Registered before the check: a pop in between still wakes us.
            room.as_mut().enable();
            let left = {
                let q = self.lock();
                let (queued_bytes, queued) = (q.bytes - q.reply_bytes, q.items.len() - q.replies);
                let fits = queued == 0
                    || (queued_bytes + bytes <= self.max_bytes && queued < self.max_messages);
                if fits || q.dead || q.close.is_some() {
                    return;
                }
                // Progress counts from the later of the last pop and the
                // start of this wait: an idle client's old pop is no sign
                // that it stopped reading.
                let since = q.last_pop.map_or(began, |p| p.max(began)).elapsed();
                match stall.checked_sub(since) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            let _ = tokio::time::timeout(left, room).await;
        }
    }

    /// The pending close request, if any.
    pub fn close_requested(&self) -> Option<CloseRequest> {
        self.lock().close.clone()
    }

    /// Resolves once a close has been requested.
    pub async fn closing(&self) {
        loop {
            let notified = self.closing.notified();
            if self.lock().close.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// The socket is gone: drop everything, accept nothing more.
    pub fn mark_dead(&self) {
        let mut q = self.lock();
        q.dead = true;
        q.clear();
        drop(q);
        self.room.notify_one();
        self.publish_room.notify_waiters();
    }

    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The writer's next job, waiting for one if there is none.
    pub async fn next(&self) -> Next {
        loop {
            {
                let mut q = self.lock();
                if let Some(close) = &q.close {
                    if !close.drain || q.items.is_empty() {
                        let close = close.clone();
                        q.clear();
                        return Next::Close(close);
                    }
                }
                if q.ping {
                    q.ping = false;
                    return Next::Ping;
                }
                if let Some(item) = q.items.pop_front() {
                    q.bytes -= item.bytes;
                    if item.reply {
                        q.replies -= 1;
                        q.reply_bytes -= item.bytes;
                        drop(q);
                        self.room.notify_one();
                    } else {
                        q.last_pop = Some(std::time::Instant::now());
                        drop(q);
                        self.publish_room.notify_waiters();
                    }
                    return Next::Frames(item.frames);
                }
            }
            // notify_one keeps a permit when nobody waits, so a push between
            // the check above and this await is not lost.
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(n: usize) -> OutFrame {
        OutFrame::from(wslink_core::Frame::Binary(Bytes::from(vec![0; n])))
    }

    fn frames(n: usize) -> Arc<[OutFrame]> {
        vec![frame(n)].into()
    }

    #[test]
    fn keep_latest_replaces_only_its_own_topic() {
        let out = Outbound::new(1000, 100);
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        assert_eq!(
            out.push_publish(&frames(10), &a, TopicPolicy::KeepLatest),
            Pushed::Queued
        );
        assert_eq!(
            out.push_publish(&frames(10), &b, TopicPolicy::Queue),
            Pushed::Queued
        );
        assert_eq!(
            out.push_publish(&frames(20), &a, TopicPolicy::KeepLatest),
            Pushed::Replaced
        );
        assert_eq!(out.queued_bytes(), 30);
    }

    #[test]
    fn the_publish_bound_is_exact() {
        let t: Arc<str> = "t".into();
        // Bytes: exactly the bound is queued, one byte more overflows.
        let out = Outbound::new(100, 10);
        assert_eq!(
            out.push_publish(&frames(60), &t, TopicPolicy::Queue),
            Pushed::Queued
        );
        assert_eq!(
            out.push_publish(&frames(40), &t, TopicPolicy::Queue),
            Pushed::Queued
        );
        assert_eq!(
            out.push_publish(&frames(1), &t, TopicPolicy::Queue),
            Pushed::Overflow
        );
        // Messages: the bound's worth is queued, one more overflows.
        let out = Outbound::new(100, 3);
        for _ in 0..3 {
            assert_eq!(
                out.push_publish(&frames(1), &t, TopicPolicy::Queue),
                Pushed::Queued
            );
        }
        assert_eq!(
            out.push_publish(&frames(1), &t, TopicPolicy::Queue),
            Pushed::Overflow
        );
    }

    #[test]
    fn replies_have_their_own_bound_and_do_not_close_for_publishes() {
        let out = Outbound::new(25, 3);
        let t: Arc<str> = "t".into();
        // Replies up to the bound in bytes: reading should pause at it.
        assert!(out.push_reply(vec![frame(24)]));
        assert!(!out.replies_over_bound());
        assert!(out.push_reply(vec![frame(1)]));
        assert!(out.replies_over_bound());
        assert!(futures_util::FutureExt::now_or_never(out.reply_room()).is_none());
        // Publishes are judged on their own: 25 bytes of replies queued do
        // not make a 20-byte publish overflow.
        assert_eq!(
            out.push_publish(&frames(20), &t, TopicPolicy::Queue),
            Pushed::Queued
        );
        // The writer takes a reply: room again.
        assert!(matches!(
            futures_util::FutureExt::now_or_never(out.next()),
            Some(Next::Frames(_))
        ));
        assert!(!out.replies_over_bound());
        assert!(futures_util::FutureExt::now_or_never(out.reply_room()).is_some());
        // And the count bound: 3 replies.
        out.push_reply(vec![]);
        out.push_reply(vec![]);
        assert!(out.replies_over_bound());
        // A close frees a waiting reader.
        out.close(CloseRequest {
            code: 1008,
            reason: String::new(),
            drain: false,
        });
        assert!(futures_util::FutureExt::now_or_never(out.reply_room()).is_some());
    }

    #[test]
    fn overflow_closes_without_draining_but_replies_still_queue_before() {
        let out = Outbound::new(25, 100);
        let t: Arc<str> = "t".into();
        assert!(out.push_reply(vec![frame(5)]));
        assert_eq!(
            out.push_publish(&frames(10), &t, TopicPolicy::Queue),
            Pushed::Queued
        );
        assert_eq!(
            out.push_publish(&frames(20), &t, TopicPolicy::Queue),
            Pushed::Overflow
        );
        assert_eq!(
            out.push_publish(&frames(1), &t, TopicPolicy::Queue),
            Pushed::Closed
        );
        let next = futures_util::FutureExt::now_or_never(out.next()).unwrap();
        assert!(matches!(
            next,
            Next::Close(CloseRequest {
                code: 1008,
                drain: false,
                ..
            })
        ));
    }
}
