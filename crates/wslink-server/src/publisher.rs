//! Publishing: one message, serialized once, to many clients.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;
use wslink_core::codec::{v1, v2, CodecError};
use wslink_core::envelope::ResultEnvelope;
use wslink_core::ids::{self, IdError};
use wslink_core::{to_value, Generation};

use crate::metrics::inc;
use crate::outbound::Pushed;
use crate::server::{ClientSlot, Shared};
use crate::transport::OutFrame;

/// What a client's queue does with a topic's messages when the client reads
/// more slowly than they are published.
///
/// ```
/// use wslink_server::{Server, TopicPolicy};
///
/// let server = Server::builder()
///     .topic_policy("viewport.image", TopicPolicy::KeepLatest)
///     .build();
/// // Any other topic queues every message (the default).
/// server.publisher().set_topic_policy("log.lines", TopicPolicy::Queue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicPolicy {
    /// Queue every message, in order; a client whose queue reaches the bound
    /// is disconnected with close code 1008 and a reason. Nothing is dropped
    /// silently: replies still queued for it go with the connection, and
    /// its calls in flight fail on its side as closed. The default.
    #[default]
    Queue,
    /// Keep only the newest queued message of the topic: an older one not yet
    /// sent is replaced. Right for image frames and other state snapshots;
    /// replacements are counted in `frames_dropped`.
    KeepLatest,
}

/// Why a publish did not go out.
///
/// ```
/// use wslink_server::{PublishError, Server};
///
/// let publisher = Server::builder().build().publisher();
/// // npm wslink clients route publishes by `\w+(\.\w+)*`: a topic with a
/// // space would be dropped on their side, so it is refused here.
/// let err = publisher.publish("bad topic", &1).unwrap_err();
/// assert!(matches!(err, PublishError::InvalidTopic(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The topic would be dropped by wslink clients (see [`ids`]).
    #[error(transparent)]
    InvalidTopic(#[from] IdError),
    /// The message could not be serialized.
    #[error("cannot serialize message for topic {topic:?}: {source}")]
    Encode {
        /// The topic.
        topic: String,
        /// The cause.
        source: CodecError,
    },
}

/// Sends messages on topics to authenticated clients. Cheap to clone,
/// `Send + Sync`, usable from any task or thread; publishing never waits
/// on a slow client.
///
/// Binary of 64 KiB or more given as [`Value::Bin`](crate::Value::Bin) or
/// [`SharedBytes`](crate::SharedBytes) (see
/// [`shared_bytes`](crate::core::shared_bytes)) goes to 2.x clients without
/// being copied: the queued frames hold that buffer, sliced, and the
/// socket writes take it from there. So it stays allocated until every
/// client has been sent it; queue bounds count it in full for each client.
/// Other binary (plain `Bytes`, `Vec<u8>`) is copied into the message once.
///
/// ```
/// use wslink_server::{Server, TopicPolicy};
///
/// let server = Server::builder().build();
/// let publisher = server.publisher();
/// publisher.set_topic_policy("viewport.image", TopicPolicy::KeepLatest);
/// // A render thread outside the runtime publishes straight away: no
/// // handle to the runtime and no await needed.
/// let renderer = std::thread::spawn(move || {
///     // SharedBytes (or Value::Bin): sent to every 2.x client without a copy.
///     let frame = wslink_server::SharedBytes::from(vec![0u8; 1 << 20]);
///     publisher.publish("viewport.image", &frame)
/// });
/// assert_eq!(renderer.join().unwrap().unwrap(), 0);
/// ```
#[derive(Clone)]
pub struct Publisher {
    pub(crate) shared: Arc<Shared>,
}

/// A message encoded for its recipients, not yet queued.
struct Prepared {
    topic: Arc<str>,
    latest_key: Arc<str>,
    policy: TopicPolicy,
    deliveries: Vec<(Arc<ClientSlot>, Arc<[OutFrame]>)>,
}

#[derive(Clone, Copy)]
enum Audience<'a> {
    All,
    One(&'a str),
    Some(&'a [&'a str]),
    AllButLastActive,
}

impl Publisher {
    /// Publishes `message` on `topic` to every authenticated client;
    /// returns how many clients it was queued for.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Progress { done: u32, total: u32 }
    ///
    /// let publisher = Server::builder().build().publisher();
    /// let queued = publisher.publish("job.progress", &Progress { done: 3, total: 10 }).unwrap();
    /// assert_eq!(queued, 0); // nobody connected in this example
    /// ```
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        self.send(topic, message, Audience::All, None)
    }

    /// [`publish`](Self::publish), but first waits until each recipient's
    /// queue has room for the message, so a producer runs at the pace of
    /// its readers instead of overflowing their queues: a loop publishing a
    /// time series of large arrays delivers every one to a client that
    /// keeps up. A client whose queue makes no progress for
    /// [`Limits::publish_wait`](crate::Limits::publish_wait) (it stopped
    /// reading) gets the topic's policy: disconnected, under
    /// [`TopicPolicy::Queue`]; so a dead client costs the producer that
    /// long once, and the others are served meanwhile by their writers.
    /// Keep-latest topics never wait (a newer message replaces).
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("sim.run", |ctx: CallContext, (steps,): (u32,)| async move {
    ///         for step in 0..steps {
    ///             let field = wslink_server::SharedBytes::from(vec![step as u8; 1 << 20]);
    ///             ctx.publisher().publish_wait("sim.field", &(step, field)).await?;
    ///         }
    ///         Ok::<_, HandlerError>(steps)
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub async fn publish_wait<T: Serialize + Sync + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        let prepared = self.prepare(topic, message, Audience::All, None)?;
        #[cfg(feature = "broker")]
        self.share(topic, message, Audience::All, None, prepared.policy);
        let stall = self.shared.config.limits.publish_wait;
        let mut sent = 0;
        for (client, frames) in &prepared.deliveries {
            if prepared.policy == TopicPolicy::Queue {
                let bytes = crate::outbound::frames_len(frames);
                client.outbound.publish_room(bytes, stall).await;
            }
            sent += usize::from(self.push(client, frames, &prepared));
        }
        inc(&self.shared.metrics.publishes);
        Ok(sent)
    }

    /// Publishes `message` on `topic` to every authenticated client, keeping
    /// only the newest queued message per `(topic, slot)` for a client that
    /// reads slowly, whatever the topic's policy.
    ///
    /// [`TopicPolicy::KeepLatest`] keeps one message per topic, which is
    /// wrong when one topic carries several independent streams: vtk.js
    /// receives every view's frames on `viewport.image.push.subscription`,
    /// and a frame of view 2 must not replace a queued frame of view 1.
    /// Give each stream its own `slot` (the view id) and each keeps its
    /// newest frame.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let publisher = Server::builder().build().publisher();
    /// for view in ["1", "2"] {
    ///     let frame = wslink_server::SharedBytes::from(vec![0u8; 1024]);
    ///     publisher
    ///         .publish_latest("viewport.image.push.subscription", view, &frame)
    ///         .unwrap();
    /// }
    /// ```
    pub fn publish_latest<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        slot: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        self.send(topic, message, Audience::All, Some(slot))
    }

    /// [`publish_latest`](Self::publish_latest) to the listed clients only
    /// (those connected, authenticated and listening to `topic`), the
    /// message serialized once for all of them.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let publisher = Server::builder().build().publisher();
    /// // The clients watching view 2, and nobody else.
    /// let watchers = ["c1f0", "c2aa"];
    /// let queued = publisher
    ///     .publish_latest_to(&watchers, "viewport.image.push.subscription", "2", &"frame")
    ///     .unwrap();
    /// assert_eq!(queued, 0); // neither is connected here
    /// ```
    pub fn publish_latest_to<T: Serialize + ?Sized>(
        &self,
        clients: &[&str],
        topic: &str,
        slot: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        self.send(topic, message, Audience::Some(clients), Some(slot))
    }

    /// Whether a publish on `topic` would reach anyone now: an
    /// authenticated client that declared `topic`, or one that never
    /// declared anything (wslink clients take every topic).
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// let publisher = Server::builder().build().publisher();
    /// // Render only for somebody.
    /// if publisher.has_listeners("sim.state") {
    ///     publisher.publish("sim.state", &42).unwrap();
    /// }
    /// # assert!(!publisher.has_listeners("sim.state"));
    /// ```
    pub fn has_listeners(&self, topic: &str) -> bool {
        self.shared.listeners.has(topic)
    }

    /// Follows [`has_listeners`](Self::has_listeners) for `topic`: the
    /// value flips when the first listener arrives and when the last one
    /// leaves, so a producer can sleep until somebody listens.
    ///
    /// ```
    /// use wslink_server::Server;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let publisher = Server::builder().build().publisher();
    /// let mut listening = publisher.listeners("sim.state");
    /// tokio::spawn(async move {
    ///     loop {
    ///         // Wait until someone listens, then produce while they do.
    ///         if listening.wait_for(|on| *on).await.is_err() {
    ///             return; // the server is gone
    ///         }
    ///         // ... render and publish ...
    ///         # return;
    ///     }
    /// });
    /// # }
    /// ```
    pub fn listeners(&self, topic: &str) -> tokio::sync::watch::Receiver<bool> {
        self.shared.listeners.watch(topic)
    }

    /// Publishes to one client only (if it is connected and authenticated).
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// // Answer now, then tell only the caller when the work is done.
    /// let server = Server::builder()
    ///     .method("job.start", |ctx: CallContext, (): ()| async move {
    ///         let (publisher, me) = (ctx.publisher().clone(), ctx.client_id().to_owned());
    ///         tokio::spawn(async move {
    ///             let _ = publisher.publish_to(&me, "job.done", &true);
    ///         });
    ///         Ok::<_, HandlerError>("started")
    ///     })
    ///     .build();
    ///
    /// // A client that has gone meanwhile is not an error: nobody is sent it.
    /// let queued = server.publisher().publish_to("c-long-gone", "job.done", &true).unwrap();
    /// assert_eq!(queued, 0);
    /// ```
    pub fn publish_to<T: Serialize + ?Sized>(
        &self,
        client_id: &str,
        topic: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        self.send(topic, message, Audience::One(client_id), None)
    }

    /// Publishes to every authenticated client except the one that made the
    /// most recent call (wslink's `skip_last_active_client`): the caller
    /// already has the change it caused.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("camera.move", |ctx: CallContext, (x, y): (f64, f64)| async move {
    ///         // Every other viewer follows; the one that moved the camera knows.
    ///         ctx.publisher()
    ///             .publish_skip_last_active("camera.changed", &(x, y))
    ///             .map_err(HandlerError::msg)?;
    ///         Ok::<_, HandlerError>(())
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn publish_skip_last_active<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
    ) -> Result<usize, PublishError> {
        self.send(topic, message, Audience::AllButLastActive, None)
    }

    /// Sets what slow clients' queues do with `topic` (default:
    /// [`TopicPolicy::Queue`]).
    ///
    /// ```
    /// use wslink_server::{Server, TopicPolicy};
    ///
    /// let publisher = Server::builder().build().publisher();
    /// publisher.set_topic_policy("viewport.image", TopicPolicy::KeepLatest);
    /// ```
    pub fn set_topic_policy(&self, topic: &str, policy: TopicPolicy) {
        self.shared
            .topic_policies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned(), policy);
    }

    fn send<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
        audience: Audience<'_>,
        latest_slot: Option<&str>,
    ) -> Result<usize, PublishError> {
        let prepared = self.prepare(topic, message, audience, latest_slot)?;
        #[cfg(feature = "broker")]
        self.share(topic, message, audience, latest_slot, prepared.policy);
        let mut sent = 0;
        for (client, frames) in &prepared.deliveries {
            sent += usize::from(self.push(client, frames, &prepared));
        }
        inc(&self.shared.metrics.publishes);
        Ok(sent)
    }

    /// Sends a publish to the other processes on the broker, if there is one:
    /// encoded once here, whatever their number. Targeted publishes go
    /// only for the clients that are not of this process.
    #[cfg(feature = "broker")]
    fn share<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
        audience: Audience<'_>,
        latest_slot: Option<&str>,
        policy: TopicPolicy,
    ) {
        let Some(link) = &self.shared.broker else {
            return;
        };
        let elsewhere = |ids: &[&str]| -> Vec<String> {
            let clients = self
                .shared
                .clients
                .read()
                .unwrap_or_else(|e| e.into_inner());
            ids.iter()
                .filter(|id| !clients.contains_key(**id))
                .map(|id| (*id).to_owned())
                .collect()
        };
        let remote: Option<Vec<String>> = match audience {
            // The last active client is one of ours: everyone elsewhere follows.
            Audience::All | Audience::AllButLastActive => None,
            Audience::One(id) => Some(elsewhere(&[id])),
            Audience::Some(ids) => Some(elsewhere(ids)),
        };
        if remote.as_ref().is_some_and(Vec::is_empty) {
            return;
        }
        let ids: Option<Vec<&str>> = remote
            .as_ref()
            .map(|ids| ids.iter().map(String::as_str).collect());
        let keep_latest = policy == TopicPolicy::KeepLatest;
        match crate::broker::topics::encode(message, keep_latest, latest_slot, ids.as_deref()) {
            Ok(payload) => link.send(link.config().topic_subject(topic), payload),
            Err(e) => {
                link.count_dropped();
                tracing::warn!(%topic, error = %e, "publish not shared on the broker");
            }
        }
    }

    /// Delivers a publish that came from another process through the
    /// broker, to this process's clients only.
    #[cfg(feature = "broker")]
    pub(crate) fn deliver_remote(
        &self,
        topic: &str,
        envelope: &crate::broker::topics::Envelope,
    ) -> Result<usize, PublishError> {
        let ids: Option<Vec<&str>> = envelope
            .audience
            .as_ref()
            .map(|ids| ids.iter().map(String::as_str).collect());
        let audience = match &ids {
            Some(ids) => Audience::Some(ids),
            None => Audience::All,
        };
        let mut prepared =
            self.prepare(topic, &envelope.message, audience, envelope.slot.as_deref())?;
        if envelope.keep_latest {
            prepared.policy = TopicPolicy::KeepLatest;
        }
        let mut sent = 0;
        for (client, frames) in &prepared.deliveries {
            sent += usize::from(self.push(client, frames, &prepared));
        }
        inc(&self.shared.metrics.publishes);
        Ok(sent)
    }

    /// Encodes `message` (once per wire generation) and pairs each recipient
    /// with its frames; nothing is queued yet.
    fn prepare<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        message: &T,
        audience: Audience<'_>,
        latest_slot: Option<&str>,
    ) -> Result<Prepared, PublishError> {
        ids::validate_topic(topic)?;
        let shared = &self.shared;
        let seq = shared.publish_seq.fetch_add(1, Ordering::Relaxed);
        let id = format!("publish:{topic}:{seq}");
        let recipients: Vec<Arc<ClientSlot>> = {
            let skip = match audience {
                Audience::AllButLastActive => shared.last_active(),
                _ => None,
            };
            let clients = shared.clients.read().unwrap_or_else(|e| e.into_inner());
            match audience {
                Audience::One(client_id) => clients.get(client_id).into_iter().cloned().collect(),
                Audience::Some(ids) => ids
                    .iter()
                    .filter_map(|id| clients.get(*id))
                    .cloned()
                    .collect(),
                _ => clients
                    .values()
                    .filter(|c| skip.as_deref() != Some(&*c.client_id))
                    .cloned()
                    .collect(),
            }
        };
        // The queue replaces by this key; a slot gets a key of its own, which
        // no topic can collide with (topics cannot hold a NUL).
        let (policy, latest_key): (TopicPolicy, Arc<str>) = match latest_slot {
            Some(slot) => (TopicPolicy::KeepLatest, format!("{topic}\0{slot}").into()),
            None => (
                shared
                    .topic_policies
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(topic)
                    .copied()
                    .unwrap_or_default(),
                Arc::from(topic),
            ),
        };
        let encode_err = |source| PublishError::Encode {
            topic: topic.to_owned(),
            source,
        };
        // Serialized at most once per wire generation, whatever the audience.
        // 2.x frames hold large binary (`Value::Bin`, `SharedBytes`) as the
        // caller's own buffer, not a copy.
        let mut v2_frames: Option<Arc<[OutFrame]>> = None;
        let mut v1_frames: Option<Arc<[OutFrame]>> = None;
        let mut v1_value = None;
        let mut deliveries = Vec::with_capacity(recipients.len());
        // A client that declared its subscriptions gets only those topics;
        // one that never declared (every npm client) gets them all.
        for client in recipients
            .into_iter()
            .filter(|c| c.is_authenticated() && c.wants(topic))
        {
            let frames = match client.generation() {
                Some(Generation::V2) => match &v2_frames {
                    Some(f) => f.clone(),
                    None => {
                        let f: Arc<[OutFrame]> = v2::encode_segmented(
                            &ResultEnvelope {
                                id: &id,
                                result: message,
                            },
                            shared.config.limits.max_frame_size,
                        )
                        .map_err(encode_err)?
                        .map(OutFrame::from)
                        .collect();
                        v2_frames = Some(f.clone());
                        f
                    }
                },
                Some(Generation::V1) => match &v1_frames {
                    Some(f) => f.clone(),
                    None => {
                        if v1_value.is_none() {
                            v1_value = Some(
                                to_value(message)
                                    .map_err(|e| encode_err(CodecError::Encode(e.to_string())))?,
                            );
                        }
                        let result = v1_value.clone().unwrap_or_default();
                        let f: Arc<[OutFrame]> = v1::encode(
                            &wslink_core::Message::Result {
                                id: id.clone(),
                                result,
                            },
                            &shared.keys,
                        )
                        .map_err(encode_err)?
                        .into_iter()
                        .map(OutFrame::from)
                        .collect();
                        v1_frames = Some(f.clone());
                        f
                    }
                },
                None => continue,
            };
            deliveries.push((client, frames));
        }
        Ok(Prepared {
            topic: Arc::from(topic),
            latest_key,
            policy,
            deliveries,
        })
    }

    /// Queues one recipient's frames; whether it was queued.
    fn push(&self, client: &ClientSlot, frames: &Arc<[OutFrame]>, p: &Prepared) -> bool {
        let shared = &self.shared;
        match client
            .outbound
            .push_publish(frames, &p.latest_key, p.policy)
        {
            Pushed::Queued => true,
            Pushed::Replaced => {
                inc(&shared.metrics.frames_dropped);
                true
            }
            Pushed::Overflow => {
                inc(&shared.metrics.slow_clients_closed);
                tracing::warn!(client = %client.client_id, topic = %p.topic, "outbound queue full; disconnecting slow client");
                false
            }
            Pushed::Closed => false,
        }
    }
}
