//! Scale-out across processes through a NATS broker (feature `broker`).
//!
//! Several server processes ("edges"), each holding its own browser
//! connections, act as one:
//!
//! - **Shared topics.** A publish on any edge (or on a [`Worker`]) is
//!   delivered to its own clients at once and sent, encoded once, on the
//!   subject `<prefix>.topic.<topic>`; every other edge decodes it once and
//!   delivers it to its clients through the same publish path, so topic
//!   policies ([`TopicPolicy`](crate::TopicPolicy), `publish_latest` slots)
//!   apply at each edge. An edge ignores what it sent itself.
//! - **RPC workers.** A call for a method the edge does not serve is sent as
//!   a NATS request on `<prefix>.call.<method>`, answered by one [`Worker`]
//!   of the queue group `<prefix>.workers`, and the answer returns to the
//!   caller as an ordinary wslink reply. No worker: the client gets wslink's
//!   "Unregistered method called"; no answer in time (a worker died
//!   mid-call): an exception reply saying the call timed out.
//!
//! The prefix keeps deployments that share one NATS server apart.
//!
//! ```no_run
//! use wslink_server::broker::BrokerConfig;
//! use wslink_server::Server;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .broker(BrokerConfig::nats("nats://127.0.0.1:4222").prefix("viewer.prod"))
//!     .build();
//! server.broker_ready().await; // shared topics flow from here on
//! server.serve("0.0.0.0:8080").await?;
//! # Ok(()) }
//! ```
//!
//! A publish from another process is delivered like
//! [`publish`](crate::Publisher::publish), never like
//! [`publish_wait`](crate::Publisher::publish_wait): nothing waits for a
//! slow client at the receiving edge, so a fast producer on a queueing topic
//! can get such a client closed there, as it would locally. Use keep-latest
//! for frames. [`publish_skip_last_active`](crate::Publisher::publish_skip_last_active)
//! skips the last active client of the publishing process only; every other
//! process's clients all get it.
//!
//! While the broker is unreachable, local delivery goes on; shared
//! publishes made meanwhile are dropped at their origin and counted
//! ([`BrokerStats::dropped`]); calls forwarded meanwhile fail. The client
//! reconnects by itself and resubscribes.

mod link;
pub(crate) mod topics;
mod workers;

use std::time::Duration;

pub use link::BrokerStats;
pub(crate) use link::Link;
pub(crate) use workers::valid_subject_token;
pub use workers::{Worker, WorkerHandle};

/// How to reach the broker, and the bounds of what waits for it.
///
/// ```
/// use std::time::Duration;
/// use wslink_server::broker::BrokerConfig;
///
/// let config = BrokerConfig::nats("nats://10.0.0.5:4222")
///     .prefix("app.staging")
///     .call_timeout(Duration::from_secs(5));
/// assert_eq!(config.subject_prefix(), "app.staging");
/// ```
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) call_timeout: Duration,
    pub(crate) outbox_messages: usize,
    pub(crate) client_capacity: usize,
    pub(crate) subscription_capacity: usize,
    pub(crate) worker_in_flight: usize,
}

impl BrokerConfig {
    /// A NATS server (or several, comma separated: `nats://a:4222,nats://b:4222`),
    /// with the prefix `wslink`.
    ///
    /// ```
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222");
    /// assert_eq!(config.subject_prefix(), "wslink");
    /// ```
    pub fn nats(url: impl Into<String>) -> Self {
        BrokerConfig {
            url: url.into(),
            prefix: "wslink".into(),
            call_timeout: Duration::from_secs(30),
            outbox_messages: 1024,
            client_capacity: 2048,
            subscription_capacity: 4096,
            worker_in_flight: 64,
        }
    }

    /// The first tokens of every subject used: deployments with different
    /// prefixes share a NATS server without seeing each other's messages.
    /// Dot-separated words of letters, digits, `_` or `-`; checked when the
    /// broker is connected ([`BrokerError::InvalidPrefix`]).
    ///
    /// ```
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222").prefix("cluster-a");
    /// assert_eq!(config.subject_prefix(), "cluster-a");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefix in force.
    ///
    /// ```
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222");
    /// assert_eq!(config.subject_prefix(), "wslink");
    /// ```
    pub fn subject_prefix(&self) -> &str {
        &self.prefix
    }

    /// How long an edge waits for a worker's answer (default 30 s). Past
    /// it the client gets an exception reply: a worker that died mid-call
    /// costs its caller this long, never a hang.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222")
    ///     .call_timeout(Duration::from_secs(2));
    /// # drop(config);
    /// ```
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Bounds of what waits: `outbox` shared publishes queued for the broker
    /// (default 1024; past it new ones are dropped and counted), the NATS
    /// client's command queue (`client`, default 2048) and each
    /// subscription's queue (`subscription`, default 4096 messages; past it
    /// the NATS client drops incoming messages, a "slow consumer").
    ///
    /// ```
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222")
    ///     .capacities(256, 512, 1024);
    /// # drop(config);
    /// ```
    pub fn capacities(mut self, outbox: usize, client: usize, subscription: usize) -> Self {
        self.outbox_messages = outbox.max(1);
        self.client_capacity = client.max(1);
        self.subscription_capacity = subscription.max(1);
        self
    }

    /// How many calls one [`Worker`] runs at once (default 64). Past it the
    /// worker stops taking requests until one finishes; others in the
    /// queue group take them meanwhile.
    ///
    /// ```
    /// let config = wslink_server::broker::BrokerConfig::nats("nats://127.0.0.1:4222")
    ///     .worker_in_flight(8);
    /// # drop(config);
    /// ```
    pub fn worker_in_flight(mut self, calls: usize) -> Self {
        self.worker_in_flight = calls.max(1);
        self
    }

    pub(crate) fn topic_subject(&self, topic: &str) -> String {
        format!("{}.topic.{topic}", self.prefix)
    }

    pub(crate) fn call_subject(&self, method: &str) -> String {
        format!("{}.call.{method}", self.prefix)
    }

    /// Checks the prefix now rather than when the broker is connected (a
    /// command line's flag, refused before anything starts).
    ///
    /// ```
    /// use wslink_server::broker::{BrokerConfig, BrokerError};
    ///
    /// let config = BrokerConfig::nats("nats://127.0.0.1:4222");
    /// assert!(config.clone().prefix("app.staging").check_prefix().is_ok());
    /// let bad = config.prefix("app..*");
    /// assert!(matches!(bad.check_prefix(), Err(BrokerError::InvalidPrefix { .. })));
    /// ```
    pub fn check_prefix(&self) -> Result<(), BrokerError> {
        let ok = !self.prefix.is_empty()
            && self.prefix.split('.').all(|token| {
                !token.is_empty()
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        if ok {
            Ok(())
        } else {
            Err(BrokerError::InvalidPrefix {
                prefix: self.prefix.clone(),
            })
        }
    }
}

/// Why the broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The prefix is not a sequence of NATS subject tokens.
    #[error("invalid broker prefix {prefix:?}: dot-separated words of letters, digits, '_' or '-' expected")]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
    },
    /// The NATS client could not be set up (a malformed URL, mostly: an
    /// unreachable server is retried, not an error).
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL given.
        url: String,
        /// The cause.
        source: async_nats::ConnectError,
    },
    /// A subscription was refused.
    #[error("cannot subscribe to {subject} on NATS at {url}: {source}")]
    Subscribe {
        /// The URL given.
        url: String,
        /// The subject.
        subject: String,
        /// The cause.
        source: async_nats::SubscribeError,
    },
}
