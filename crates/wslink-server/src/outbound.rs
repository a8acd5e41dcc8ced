//! Each connection's bounded outbound queue.
//!
//! Frames for one client wait here until its socket takes them. The queue is
//! bounded in bytes and messages; what happens at the bound is the topic's
//! [`TopicPolicy`]. Replies to calls are never dropped: they are bounded by
//! the number of calls a connection may have in flight instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use wslink_core::Frame;

use crate::publisher::TopicPolicy;

/// Why a connection's writer stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub code: u16,
    pub reason: String,
    /// Send what is queued first (graceful) or drop it (error).
    pub drain: bool,
}

pub(crate) enum Next {
    Frames(Arc<[Frame]>),
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
    frames: Arc<[Frame]>,
    bytes: usize,
    latest_of: Option<Arc<str>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    ping: bool,
    close: Option<CloseRequest>,
    dead: bool,
}

pub(crate) struct Outbound {
    queue: Mutex<Queue>,
    notify: Notify,
    /// Wakes the connection's reader when a close is requested from
    /// elsewhere (a publisher finding the queue full), so it stops reading.
    closing: Notify,
    max_bytes: usize,
    max_messages: usize,
}

fn frames_len(frames: &[Frame]) -> usize {
    frames.iter().map(Frame::len).sum()
}

impl Outbound {
    pub fn new(max_bytes: usize, max_messages: usize) -> Self {
        Outbound {
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
            closing: Notify::new(),
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
    pub fn push_reply(&self, frames: Vec<Frame>) -> bool {
        let mut q = self.lock();
        if q.dead || q.close.is_some() && !q.close.as_ref().is_some_and(|c| c.drain) {
            return false;
        }
        let bytes = frames_len(&frames);
        q.bytes += bytes;
        q.items.push_back(Item {
            frames: frames.into(),
            bytes,
            latest_of: None,
        });
        drop(q);
        self.notify.notify_one();
        true
    }

    /// Queues a publish under `policy`.
    pub fn push_publish(
        &self,
        frames: &Arc<[Frame]>,
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
        if q.bytes + bytes > self.max_bytes || q.items.len() >= self.max_messages {
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
        q.items.clear();
        q.bytes = 0;
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
                        q.items.clear();
                        q.bytes = 0;
                        return Next::Close(close);
                    }
                }
                if q.ping {
                    q.ping = false;
                    return Next::Ping;
                }
                if let Some(item) = q.items.pop_front() {
                    q.bytes -= item.bytes;
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

    fn frames(n: usize) -> Arc<[Frame]> {
        vec![Frame::Binary(Bytes::from(vec![0; n]))].into()
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
    fn overflow_closes_without_draining_but_replies_still_queue_before() {
        let out = Outbound::new(25, 100);
        let t: Arc<str> = "t".into();
        assert!(out.push_reply(vec![Frame::Binary(Bytes::from(vec![0; 5]))]));
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
