//! RPC workers: methods served by processes that hold no browser
//! connection, reached by NATS request-reply in a queue group.
//!
//! A call travels as msgpack `[args, kwargs, client_id]` on
//! `<prefix>.call.<method>`; the answer is one byte (0 result, 1 error)
//! followed by the result, or by the error as `{code, message, data}`, in
//! msgpack.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_nats::connection::State;
use async_nats::RequestErrorKind;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use hyper::http::{HeaderMap, Uri};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use wslink_core::{msgpack, Map, RpcError, Value};

use super::link::{bump, LinkState};
use super::{BrokerConfig, BrokerError};
use crate::context::{CallContext, ConnectionInfo};
use crate::handler::{ErasedHandler, Methods, Reply};
use crate::publisher::Publisher;
use crate::server::Server;

const ANSWER_OK: u8 = 0;
const ANSWER_ERR: u8 = 1;

/// Whether `method` can be one NATS subject's last tokens.
pub(crate) fn valid_subject_token(method: &str) -> bool {
    !method.is_empty()
        && method.split('.').all(|token| {
            !token.is_empty()
                && !token
                    .chars()
                    .any(|c| c.is_whitespace() || c == '*' || c == '>')
        })
}

/// The edge's side: a handler that sends the call to a worker and turns its
/// answer, or its absence, into the reply.
pub(crate) fn remote_handler(state: Arc<LinkState>) -> ErasedHandler {
    Arc::new(move |ctx: CallContext, args: Vec<Value>, kwargs: Map| {
        let state = state.clone();
        Box::pin(async move { call(&state, &ctx, &args, &kwargs).await })
    })
}

async fn call(
    state: &LinkState,
    ctx: &CallContext,
    args: &[Value],
    kwargs: &Map,
) -> Result<Box<dyn Reply>, RpcError> {
    let method = ctx.method();
    let counters = &state.counters;
    bump(&counters.calls_forwarded);
    let failed = |text: String| {
        bump(&counters.calls_failed);
        RpcError::exception(method, text, String::new())
    };
    let client = match state.client.get() {
        Some(client) if client.connection_state() == State::Connected => client,
        _ => {
            return Err(failed(format!(
                "{method} is served by workers, and the broker is unreachable"
            )))
        }
    };
    // Cloning values shares their binary (`Bytes`), it does not copy it.
    let call = Value::Array(vec![
        Value::Array(args.to_vec()),
        Value::Map(kwargs.clone()),
        Value::from(ctx.client_id()),
    ]);
    let payload = msgpack::encode(&call)
        .map_err(|e| failed(format!("cannot encode the call for a worker: {e}")))?;
    let timeout = state.config.call_timeout;
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(timeout));
    let subject = state.config.call_subject(method);
    // The request has its own timeout; this one also covers a send that
    // waits on a full client queue while the broker goes away.
    let sent = tokio::time::timeout(timeout, client.send_request(subject, request)).await;
    let answer = match sent {
        Ok(Ok(message)) => message.payload,
        Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => {
            // Nobody serves it anywhere: what a single server says.
            bump(&counters.calls_failed);
            return Err(RpcError::method_not_found(method));
        }
        Ok(Err(e)) if e.kind() == RequestErrorKind::TimedOut => {
            return Err(failed(format!(
                "no answer from a worker for {method} within {timeout:?}"
            )))
        }
        Err(_) => {
            return Err(failed(format!(
                "no answer from a worker for {method} within {timeout:?}"
            )))
        }
        Ok(Err(e)) => return Err(failed(format!("cannot reach a worker for {method}: {e}"))),
    };
    let max_depth = ctx.publisher.shared.config.limits.max_depth;
    decode_answer(&answer, max_depth).map_err(|text| {
        bump(&counters.calls_failed);
        tracing::warn!(%method, error = %text, "malformed answer from a worker");
        RpcError::exception(
            method,
            format!("malformed answer from a worker: {text}"),
            String::new(),
        )
    })?
}

/// The worker's answer as the edge's outcome; `Err` if it is malformed.
fn decode_answer(
    answer: &Bytes,
    max_depth: usize,
) -> Result<Result<Box<dyn Reply>, RpcError>, String> {
    let (&tag, _) = answer.split_first().ok_or("empty answer")?;
    let value = msgpack::decode(&answer.slice(1..), max_depth).map_err(|e| e.to_string())?;
    match tag {
        ANSWER_OK => Ok(Ok(Box::new(value))),
        ANSWER_ERR => {
            let code = value
                .get("code")
                .and_then(Value::as_i64)
                .ok_or("error without a code")?;
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut error = RpcError::new(code, message);
            error.data = value.get("data").cloned();
            Ok(Err(error))
        }
        other => Err(format!("unknown answer tag {other}")),
    }
}

/// A process that serves methods for the edges, holding no browser
/// connection. Its handlers are the same code as an edge's: a handler
/// written for [`Methods`] runs unchanged, and what it publishes through
/// its [`CallContext`] reaches the clients of every edge.
///
/// Workers of one prefix form a queue group: each call goes to one of them.
/// Start as many as the work needs, on any machine that reaches the broker.
///
/// ```no_run
/// use wslink_server::broker::{BrokerConfig, Worker};
/// use wslink_server::{CallContext, HandlerError, Methods};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut methods = Methods::new();
/// methods.add("sim.step", |ctx: CallContext, (n,): (u32,)| async move {
///     // Reaches the clients of every edge.
///     ctx.publisher().publish("sim.progress", &n).map_err(HandlerError::msg)?;
///     Ok::<_, HandlerError>(n + 1)
/// });
/// Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222"))
///     .methods(methods)
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Worker {
    methods: Methods,
    server: Server,
}

/// A running [`Worker`].
pub struct WorkerHandle {
    task: JoinHandle<()>,
    server: Server,
}

impl Worker {
    /// A worker on this broker, serving nothing yet.
    ///
    /// ```
    /// use wslink_server::broker::{BrokerConfig, Worker};
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222"));
    /// assert!(worker.method_names().is_empty());
    /// ```
    pub fn new(config: BrokerConfig) -> Worker {
        Worker {
            methods: Methods::new(),
            server: Server::builder().worker_link(config).build(),
        }
    }

    /// The methods it serves (they replace any given before).
    ///
    /// ```
    /// use wslink_server::broker::{BrokerConfig, Worker};
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// let mut methods = Methods::new();
    /// methods.add("math.add", |_ctx: CallContext, (a, b): (i64, i64)| async move {
    ///     Ok::<_, HandlerError>(a + b)
    /// });
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).methods(methods);
    /// assert_eq!(worker.method_names(), ["math.add"]);
    /// ```
    pub fn methods(mut self, methods: Methods) -> Worker {
        self.methods = methods;
        self
    }

    /// The names of the methods it serves, sorted.
    ///
    /// ```
    /// use wslink_server::broker::{BrokerConfig, Worker};
    /// assert!(Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).method_names().is_empty());
    /// ```
    pub fn method_names(&self) -> Vec<String> {
        self.methods
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// A publisher whose publishes reach the clients of every edge.
    ///
    /// ```
    /// use wslink_server::broker::{BrokerConfig, Worker};
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222"));
    /// let publisher = worker.publisher();
    /// # drop(publisher);
    /// ```
    pub fn publisher(&self) -> Publisher {
        self.server.publisher()
    }

    /// Connects (waiting for the broker as long as it is unreachable),
    /// subscribes each method in the queue group and serves in the
    /// background; the handle stops it.
    ///
    /// ```no_run
    /// # use wslink_server::broker::{BrokerConfig, Worker};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).start().await?;
    /// // ... calls are served ...
    /// worker.stop();
    /// # Ok(()) }
    /// ```
    pub async fn start(self) -> Result<WorkerHandle, BrokerError> {
        let shared = self.server.shared.clone();
        let Some(link) = shared.broker.as_ref() else {
            unreachable!("a worker's server always has a broker link")
        };
        let config = link.config().clone();
        config.check_prefix()?;
        self.server.broker_ready().await;
        let Some(client) = link.state.client.get().cloned() else {
            unreachable!("the link is ready only once it has a client")
        };
        let queue = format!("{}.workers", config.prefix);
        let mut subscriptions = Vec::new();
        for name in self.methods.names() {
            if !valid_subject_token(name) {
                tracing::warn!(
                    method = name,
                    "method name cannot be a NATS subject; not served by this worker"
                );
                continue;
            }
            let subject = config.call_subject(name);
            let subscription = client
                .queue_subscribe(subject.clone(), queue.clone())
                .await
                .map_err(|source| BrokerError::Subscribe {
                    url: config.url.clone(),
                    subject,
                    source,
                })?;
            subscriptions.push(subscription);
        }
        // Serving from the moment start() returns.
        super::link::barrier(&client, &config.prefix).await;
        let prefix_len = config.prefix.len() + ".call.".len();
        let methods = self.methods;
        let publisher = self.server.publisher();
        let in_flight = Arc::new(Semaphore::new(config.worker_in_flight));
        let task = tokio::spawn(async move {
            let mut calls = futures_util::stream::select_all(subscriptions);
            while let Some(message) = calls.next().await {
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    return;
                };
                let method: Arc<str> = Arc::from(message.subject.get(prefix_len..).unwrap_or(""));
                let handler = methods.get(&method).cloned();
                let (client, publisher) = (client.clone(), publisher.clone());
                tokio::spawn(async move {
                    let Some(reply_to) = message.reply else {
                        return;
                    };
                    let answer = serve(handler, method, publisher, message.payload).await;
                    if let Err(e) = client.publish(reply_to, answer).await {
                        tracing::warn!(error = %e, "worker answer not sent");
                    }
                    drop(permit);
                });
            }
        });
        Ok(WorkerHandle {
            task,
            server: self.server,
        })
    }

    /// [`start`](Self::start), then serves for as long as the process runs
    /// (through broker outages: the client reconnects by itself).
    ///
    /// ```no_run
    /// # use wslink_server::broker::{BrokerConfig, Worker};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).run().await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(self) -> Result<(), BrokerError> {
        let handle = self.start().await?;
        let _ = handle.task.await;
        Ok(())
    }
}

impl WorkerHandle {
    /// A publisher whose publishes reach the clients of every edge.
    ///
    /// ```no_run
    /// # use wslink_server::broker::{BrokerConfig, Worker};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).start().await?;
    /// worker.publisher().publish("sim.state", &"ready")?;
    /// # Ok(()) }
    /// ```
    pub fn publisher(&self) -> Publisher {
        self.server.publisher()
    }

    /// What its broker link has done.
    ///
    /// ```no_run
    /// # use wslink_server::broker::{BrokerConfig, Worker};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let worker = Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).start().await?;
    /// assert_eq!(worker.stats().calls_failed, 0);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> super::BrokerStats {
        self.server.broker_stats().unwrap_or_default()
    }

    /// Stops taking calls. Calls already running finish and answer.
    ///
    /// ```no_run
    /// # use wslink_server::broker::{BrokerConfig, Worker};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// Worker::new(BrokerConfig::nats("nats://127.0.0.1:4222")).start().await?.stop();
    /// # Ok(()) }
    /// ```
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Runs one call on the worker; always yields an answer.
async fn serve(
    handler: Option<ErasedHandler>,
    method: Arc<str>,
    publisher: Publisher,
    payload: Bytes,
) -> Bytes {
    let error = |error: RpcError| {
        let mut buf = BytesMut::from(&[ANSWER_ERR][..]);
        match msgpack::encode(&error.to_value()) {
            Ok(bytes) => buf.extend_from_slice(&bytes),
            Err(_) => buf.extend_from_slice(&[0x80]),
        }
        buf.freeze()
    };
    let Some(handler) = handler else {
        return error(RpcError::method_not_found(&method));
    };
    let max_depth = publisher.shared.config.limits.max_depth;
    let call = msgpack::decode(&payload, max_depth).ok().and_then(|v| {
        let args = v.index(0)?.as_array()?.to_vec();
        let kwargs = v.index(1)?.as_map()?.clone();
        let client_id = v.index(2)?.as_str()?.to_owned();
        Some((args, kwargs, client_id))
    });
    let Some((args, kwargs, client_id)) = call else {
        return error(RpcError::exception(
            &method,
            "malformed call from the broker",
            String::new(),
        ));
    };
    let ctx = CallContext {
        connection: Arc::new(ConnectionInfo {
            client_id: Arc::from(client_id),
            peer: None,
            client_ip: None,
            uri: Uri::default(),
            headers: HeaderMap::new(),
            relayed: false,
        }),
        method: method.clone(),
        publisher,
    };
    let outcome = AssertUnwindSafe(handler(ctx, args, kwargs))
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(reply)) => match reply.to_msgpack(1) {
            Ok(mut buf) => {
                buf[0] = ANSWER_OK;
                buf.freeze()
            }
            Err(e) => {
                tracing::warn!(%method, error = %e, "result cannot be serialized");
                error(RpcError::result_not_serializable(&method))
            }
        },
        Ok(Err(e)) => error(e),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(%method, panic = %text, "handler panicked");
            error(RpcError::exception(
                &method,
                format!("handler panicked: {text}"),
                String::new(),
            ))
        }
    }
}
