//! Who listens to which topic.
//!
//! wslink clients filter publishes themselves, so the server sends every
//! topic to every client. Ours tell the server what they subscribe to
//! (`wslink.subscribe` / `wslink.unsubscribe`, offered in the hello reply);
//! a client that has declared gets only its topics. A client that never
//! declares (every npm and Python-era client) listens to everything.
//!
//! Counts live here so a producer can ask `has_listeners(topic)` or wait
//! for the first listener instead of rendering for nobody.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

#[derive(Default)]
struct Inner {
    /// Authenticated clients that never declared: they take every topic.
    everything: usize,
    /// Declared subscriptions per topic, across clients.
    topics: HashMap<Arc<str>, usize>,
    /// Producers waiting on a topic's "anyone listening?".
    watchers: HashMap<Arc<str>, watch::Sender<bool>>,
}

impl Inner {
    fn has(&self, topic: &str) -> bool {
        self.everything > 0 || self.topics.get(topic).is_some_and(|n| *n > 0)
    }

    /// Brings every watcher up to date (all of them when a catch-all
    /// client came or went), and forgets those nobody holds any more.
    fn notify(&mut self, topic: Option<&str>) {
        let everything = self.everything;
        let topics = &self.topics;
        self.watchers.retain(|t, tx| {
            if topic.is_none_or(|only| only == &**t) {
                let now = everything > 0 || topics.get(t).is_some_and(|n| *n > 0);
                tx.send_if_modified(|v| std::mem::replace(v, now) != now);
            }
            tx.receiver_count() > 0
        });
    }
}

/// The server's listener counts.
#[derive(Default)]
pub(crate) struct Listeners {
    inner: Mutex<Inner>,
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A client authenticated: until it declares, it takes everything.
    pub fn joined(&self) {
        let mut inner = self.lock();
        inner.everything += 1;
        if inner.everything == 1 {
            inner.notify(None);
        }
    }

    /// A client's first declaration: it stops taking everything.
    pub fn started_declaring(&self) {
        let mut inner = self.lock();
        inner.everything = inner.everything.saturating_sub(1);
        if inner.everything == 0 {
            inner.notify(None);
        }
    }

    pub fn subscribed(&self, topic: &Arc<str>) {
        let mut inner = self.lock();
        let n = inner.topics.entry(topic.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            inner.notify(Some(topic));
        }
    }

    pub fn unsubscribed(&self, topic: &str) {
        let mut inner = self.lock();
        let gone = match inner.topics.get_mut(topic) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if gone {
            inner.topics.remove(topic);
            inner.notify(Some(topic));
        }
    }

    /// An authenticated client left, with its declarations if it made any.
    pub fn left(&self, declared: Option<HashSet<Arc<str>>>) {
        match declared {
            None => {
                let mut inner = self.lock();
                inner.everything = inner.everything.saturating_sub(1);
                if inner.everything == 0 {
                    inner.notify(None);
                }
            }
            Some(topics) => {
                for topic in topics {
                    self.unsubscribed(&topic);
                }
            }
        }
    }

    pub fn has(&self, topic: &str) -> bool {
        self.lock().has(topic)
    }

    pub fn watch(&self, topic: &str) -> watch::Receiver<bool> {
        let mut inner = self.lock();
        let now = inner.has(topic);
        if let Some(tx) = inner.watchers.get(topic) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(now);
        inner.watchers.insert(Arc::from(topic), tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_clients_listen_to_everything_declared_ones_to_their_topics() {
        let l = Listeners::default();
        let frames: Arc<str> = "frames".into();
        let mut w = l.watch("frames");
        assert!(!*w.borrow_and_update());
        l.joined();
        assert!(l.has("anything"));
        assert!(w.has_changed().unwrap() && *w.borrow_and_update());
        // It declares something else: nobody listens to frames any more.
        l.started_declaring();
        l.subscribed(&"log".into());
        assert!(!l.has("frames") && l.has("log"));
        assert!(!*w.borrow_and_update());
        l.subscribed(&frames);
        assert!(*w.borrow_and_update());
        l.left(Some(HashSet::from([frames.clone(), "log".into()])));
        assert!(!l.has("frames") && !l.has("log"));
        assert!(!*w.borrow_and_update());
    }

    #[test]
    fn watchers_nobody_holds_are_forgotten() {
        let l = Listeners::default();
        for i in 0..1000 {
            drop(l.watch(&format!("t{i}")));
        }
        l.joined();
        assert!(l.lock().watchers.is_empty());
    }
}
