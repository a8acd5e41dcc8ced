//! Registering methods: async functions with typed parameters and results.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::codec::{v1, v2, CodecError};
use wslink_core::envelope::ResultEnvelope;
use wslink_core::params::from_args;
use wslink_core::{Generation, Map, RpcError, Value};

use crate::context::{CallContext, ConnectionInfo};
use crate::transport::OutFrame;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a handler failed with. Sent to the client as wslink's `-32001
/// Exception raised` (with the message in `data.exception`), unless built
/// with [`HandlerError::rpc`] to send a code of its own.
///
/// Any `std::error::Error` converts into it, so `?` works in handlers:
///
/// ```
/// use wslink_server::HandlerError;
/// fn parse(s: &str) -> Result<i64, HandlerError> {
///     Ok(s.parse::<i64>()?)
/// }
/// assert!(parse("x").unwrap_err().to_string().contains("invalid digit"));
/// ```
pub struct HandlerError {
    kind: Kind,
}

enum Kind {
    Exception { message: String, trace: String },
    Rpc(RpcError),
}

impl HandlerError {
    /// An exception with this message.
    ///
    /// The client gets wslink's exception reply: code -32001, message
    /// `Exception raised`, and this text in `data.exception`.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::builder()
    ///     .method("file.open", |_ctx: CallContext, (path,): (String,)| async move {
    ///         if path.is_empty() {
    ///             return Err(HandlerError::msg("no path given"));
    ///         }
    ///         Ok(path.len())
    ///     })
    ///     .build();
    /// # drop(server);
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        HandlerError {
            kind: Kind::Exception {
                message: message.to_string(),
                trace: String::new(),
            },
        }
    }

    /// An error reply with an application-defined code, message and data.
    ///
    /// ```
    /// use wslink_server::{HandlerError, Value};
    ///
    /// // A code of the application's own, with details the client can act on.
    /// let busy = HandlerError::rpc(
    ///     -31000,
    ///     "renderer busy",
    ///     Some(Value::map([("retry_ms", Value::from(250))])),
    /// );
    /// assert!(busy.to_string().contains("renderer busy"));
    /// ```
    pub fn rpc(code: i64, message: impl Into<String>, data: Option<Value>) -> Self {
        let mut error = RpcError::new(code, message);
        error.data = data;
        HandlerError {
            kind: Kind::Rpc(error),
        }
    }

    pub(crate) fn into_rpc(self, method: &str) -> RpcError {
        match self.kind {
            Kind::Exception { message, trace } => RpcError::exception(method, message, trace),
            Kind::Rpc(e) => e,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        // The source chain stands in for Python's traceback.
        let mut trace = String::new();
        let mut source = e.source();
        while let Some(s) = source {
            trace.push_str("caused by: ");
            trace.push_str(&s.to_string());
            trace.push('\n');
            source = s.source();
        }
        HandlerError {
            kind: Kind::Exception {
                message: e.to_string(),
                trace,
            },
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Exception { message, .. } => f.write_str(message),
            Kind::Rpc(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A handler's result, ready to be encoded for either wire generation.
pub(crate) trait Reply: Send + Sync {
    fn encode(
        &self,
        id: &str,
        generation: Generation,
        max_frame_size: usize,
        keys: &AttachmentKeys,
    ) -> Result<Vec<OutFrame>, CodecError>;

    /// The result as msgpack after `reserve` zeroed bytes, for a worker's
    /// answer through the broker.
    #[cfg(feature = "broker")]
    fn to_msgpack(
        &self,
        reserve: usize,
    ) -> Result<bytes::BytesMut, wslink_core::msgpack::EncodeError>;
}

impl<T: Serialize + Send + Sync> Reply for T {
    fn encode(
        &self,
        id: &str,
        generation: Generation,
        max_frame_size: usize,
        keys: &AttachmentKeys,
    ) -> Result<Vec<OutFrame>, CodecError> {
        Ok(match generation {
            // Straight from the user's type to msgpack: no detour via Value,
            // and large binary (`Value::Bin`, `SharedBytes`) not copied.
            Generation::V2 => {
                v2::encode_segmented(&ResultEnvelope { id, result: self }, max_frame_size)?
                    .map(OutFrame::from)
                    .collect()
            }
            Generation::V1 => v1::encode_result(id, self, keys)?
                .into_iter()
                .map(OutFrame::from)
                .collect(),
        })
    }

    #[cfg(feature = "broker")]
    fn to_msgpack(
        &self,
        reserve: usize,
    ) -> Result<bytes::BytesMut, wslink_core::msgpack::EncodeError> {
        wslink_core::msgpack::encode_with_reserve(self, reserve, 256)
    }
}

pub(crate) type ErasedHandler = Arc<
    dyn Fn(CallContext, Vec<Value>, Map) -> BoxFuture<Result<Box<dyn Reply>, RpcError>>
        + Send
        + Sync,
>;

/// A set of named methods. Build one directly, or let
/// [`ServerBuilder::method`](crate::ServerBuilder::method) do it.
///
/// A handler is an async function of a [`CallContext`] and its parameters,
/// which are bound from the call's `args` and `kwargs` as
/// [`wslink_core::params`] describes: a tuple for positional parameters, a
/// struct for named ones, [`RawArgs`](wslink_core::params::RawArgs) for both
/// lists untouched.
///
/// ```
/// use wslink_server::{CallContext, HandlerError, Methods};
/// let mut methods = Methods::new();
/// methods.add("math.add", |_ctx: CallContext, (a, b): (f64, f64)| async move {
///     Ok::<_, HandlerError>(a + b)
/// });
/// assert!(methods.contains("math.add"));
/// ```
#[derive(Clone, Default)]
pub struct Methods {
    map: HashMap<String, ErasedHandler>,
}

impl Methods {
    /// An empty set.
    ///
    /// ```
    /// let methods = wslink_server::Methods::new();
    /// assert!(methods.names().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` under `name`.
    ///
    /// The connection polls a handler's future once itself, so a call that
    /// completes without waiting costs no task spawn; a future that returns
    /// `Pending` then runs in its own task, concurrently with the
    /// connection's other calls. Long CPU work done before the first
    /// `.await` therefore holds up the reading of that client's next
    /// messages: put it in `tokio::task::spawn_blocking` and await that.
    ///
    /// # Panics
    /// If `name` is already registered: two handlers for one name is a
    /// programming error best caught at start-up.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// let mut methods = Methods::new();
    /// methods
    ///     .add("math.neg", |_ctx: CallContext, (x,): (f64,)| async move {
    ///         Ok::<_, HandlerError>(-x)
    ///     })
    ///     .add("math.pi", |_ctx: CallContext, (): ()| async {
    ///         Ok::<_, HandlerError>(std::f64::consts::PI)
    ///     });
    /// assert_eq!(methods.names(), ["math.neg", "math.pi"]);
    /// ```
    pub fn add<P, R, E, F, Fut>(&mut self, name: &str, handler: F) -> &mut Self
    where
        F: Fn(CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        let method: Arc<str> = Arc::from(name);
        let erased: ErasedHandler =
            Arc::new(move |ctx: CallContext, args: Vec<Value>, kwargs: Map| {
                let params = from_args::<P>(args, kwargs).map_err(|e| {
                    RpcError::exception(
                        &method,
                        format!("invalid arguments for {method}: {e}"),
                        String::new(),
                    )
                });
                let method = method.clone();
                let fut = params.map(|p| handler(ctx, p));
                Box::pin(async move {
                    match fut?.await {
                        Ok(reply) => Ok(Box::new(reply) as Box<dyn Reply>),
                        Err(e) => Err(e.into().into_rpc(&method)),
                    }
                })
            });
        if self.map.insert(name.to_owned(), erased).is_some() {
            panic!("wslink method {name:?} is registered twice");
        }
        self
    }

    /// Registers a handler that gets a shared `state` as its first argument,
    /// which saves cloning an `Arc` into every closure by hand.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    /// use wslink_server::{CallContext, HandlerError, Methods};
    /// let counter = Arc::new(AtomicU64::new(0));
    /// let mut methods = Methods::new();
    /// methods.add_with(counter, "counter.next", |c, _ctx, (): ()| async move {
    ///     Ok::<_, HandlerError>(c.fetch_add(1, Ordering::Relaxed))
    /// });
    /// ```
    pub fn add_with<S, P, R, E, F, Fut>(
        &mut self,
        state: Arc<S>,
        name: &str,
        handler: F,
    ) -> &mut Self
    where
        S: Send + Sync + 'static + ?Sized,
        F: Fn(Arc<S>, CallContext, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + Sync + 'static,
        E: Into<HandlerError> + 'static,
    {
        self.add(name, move |ctx, params| handler(state.clone(), ctx, params))
    }

    /// Adds every method of `other`.
    ///
    /// # Panics
    /// If a name is in both sets.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// // Each module of an app exports its own set; main puts them together.
    /// fn scene() -> Methods {
    ///     let mut m = Methods::new();
    ///     m.add("scene.reset", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(()) });
    ///     m
    /// }
    /// fn camera() -> Methods {
    ///     let mut m = Methods::new();
    ///     m.add("camera.home", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(()) });
    ///     m
    /// }
    ///
    /// let mut all = scene();
    /// all.merge(camera());
    /// assert_eq!(all.names(), ["camera.home", "scene.reset"]);
    /// ```
    pub fn merge(&mut self, other: Methods) -> &mut Self {
        for (name, h) in other.map {
            if self.map.insert(name.clone(), h).is_some() {
                panic!("wslink method {name:?} is registered twice");
            }
        }
        self
    }

    /// `true` if `name` has a handler.
    ///
    /// [`Methods::add`] panics on a name taken twice; checking first lets
    /// optional methods give way to ones already there:
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// let mut methods = Methods::new();
    /// methods.add("app.version", |_ctx: CallContext, (): ()| async {
    ///     Ok::<_, HandlerError>("2.1.0")
    /// });
    /// if !methods.contains("app.version") {
    ///     methods.add("app.version", |_ctx: CallContext, (): ()| async {
    ///         Ok::<_, HandlerError>("unknown")
    ///     });
    /// }
    /// assert_eq!(methods.names(), ["app.version"]);
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The registered names, sorted.
    ///
    /// ```
    /// use wslink_server::{CallContext, HandlerError, Methods};
    ///
    /// let mut methods = Methods::new();
    /// methods
    ///     .add("z.last", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(()) })
    ///     .add("a.first", |_ctx: CallContext, (): ()| async { Ok::<_, HandlerError>(()) });
    /// // Sorted whatever the order of registration, so output is reproducible.
    /// assert_eq!(methods.names(), ["a.first", "z.last"]);
    /// ```
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<&ErasedHandler> {
        self.map.get(name)
    }
}

/// A group of related methods with connection hooks, like wslink's
/// `LinkProtocol`: a struct that holds its state and registers its methods.
///
/// ```
/// use std::sync::Arc;
/// use wslink_server::{CallContext, HandlerError, LinkProtocol, Methods, Server};
///
/// struct Greeter { greeting: String }
///
/// impl LinkProtocol for Greeter {
///     fn register(self: Arc<Self>, methods: &mut Methods) {
///         methods.add_with(self, "greeter.greet", |me, _ctx: CallContext, (name,): (String,)| async move {
///             Ok::<_, HandlerError>(format!("{}, {name}", me.greeting))
///         });
///     }
/// }
///
/// let server = Server::builder().protocol(Greeter { greeting: "Hello".into() }).build();
/// assert!(server.method_names().contains(&"greeter.greet".to_string()));
/// ```
pub trait LinkProtocol: Send + Sync + 'static {
    /// Adds this protocol's methods.
    ///
    /// Called once, by [`ServerBuilder::protocol`](crate::ServerBuilder::protocol).
    /// `self` comes as an `Arc` so that handlers can keep the protocol's
    /// state alive; the example on [`LinkProtocol`] hands it to
    /// [`Methods::add_with`].
    fn register(self: Arc<Self>, methods: &mut Methods);

    /// A client connected (before its hello).
    ///
    /// Both hooks do nothing unless overridden. Together they let a
    /// protocol keep state per client, next to the methods that use it:
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::sync::{Arc, Mutex};
    /// use wslink_server::{CallContext, ConnectionInfo, HandlerError, LinkProtocol, Methods, Server};
    ///
    /// #[derive(Default)]
    /// struct Presence { online: Mutex<HashSet<String>> }
    ///
    /// impl LinkProtocol for Presence {
    ///     fn register(self: Arc<Self>, methods: &mut Methods) {
    ///         methods.add_with(self, "presence.count", |me, _ctx: CallContext, (): ()| async move {
    ///             Ok::<_, HandlerError>(me.online.lock().unwrap().len())
    ///         });
    ///     }
    ///     fn on_connect(&self, connection: &ConnectionInfo) {
    ///         self.online.lock().unwrap().insert(connection.client_id().to_owned());
    ///     }
    ///     fn on_close(&self, client_id: &str) {
    ///         self.online.lock().unwrap().remove(client_id);
    ///     }
    /// }
    ///
    /// let server = Server::builder().protocol(Presence::default()).build();
    /// assert_eq!(server.method_names(), ["presence.count"]);
    /// ```
    fn on_connect(&self, _connection: &ConnectionInfo) {}

    /// A client's connection ended (whether or not it completed its hello).
    ///
    /// See [`LinkProtocol::on_connect`] for an example of both hooks.
    fn on_close(&self, _client_id: &str) {}
}
