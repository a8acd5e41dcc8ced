//! What can go wrong, as one enum.

use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite;
use wslink_core::ids::IdError;
use wslink_core::protocol::codes;
use wslink_core::{CodecError, Value, ValueError};

/// Everything a [`Client`](crate::Client) call, connect or subscribe can fail with.
///
/// Each variant carries what is needed to say what failed and where: the URL
/// for connection problems, the method for call problems.
///
/// ```
/// use wslink_client::Error;
/// use wslink_core::protocol::codes;
///
/// fn explain(err: &Error) -> String {
///     match err {
///         Error::Rpc { code, .. } if *code == codes::METHOD_NOT_FOUND => "no such method".into(),
///         Error::Rpc { .. } => format!("the server said no: {err}"),
///         Error::Connect { url, .. } => format!("is a server running at {url}?"),
///         Error::Auth { .. } => "wrong secret".into(),
///         Error::Timeout { after, .. } => format!("no answer within {after:?}"),
///         other => other.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a `ws://` URL the client can use.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },

    /// The TCP connection or the WebSocket upgrade failed (refused, DNS,
    /// an HTTP answer that is not an upgrade, ...).
    #[error("cannot connect to {url}: {}", describe_ws_error(source))]
    Connect {
        /// The URL.
        url: String,
        /// What the WebSocket library reported.
        #[source]
        source: Box<tungstenite::Error>,
    },

    /// A CA file given to `ClientBuilder::ca_file` (feature `tls`) could
    /// not be read or holds no usable PEM certificate.
    #[error("cannot use the CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A certificate given to `ClientBuilder::root_certificates` (feature
    /// `tls`) cannot be a trust anchor.
    #[error("unusable root certificate: {reason}")]
    BadRootCertificate {
        /// What is wrong.
        reason: String,
    },

    /// The server refused the hello (wrong secret), or answered it with
    /// something that is not a hello reply.
    #[error("authentication failed at {url}: error {code}: {message}")]
    Auth {
        /// The URL.
        url: String,
        /// The error code (`-32000` for a wrong secret).
        code: i64,
        /// The server's message, e.g. `Authentication failed`.
        message: String,
    },

    /// The server answered the call with an error reply.
    #[error("{method}: error {code}: {message}{}", rpc_detail(*code, data.as_ref()))]
    Rpc {
        /// The method called.
        method: String,
        /// The error code, see [`wslink_core::protocol::codes`].
        code: i64,
        /// The server's message, e.g. `Exception raised`.
        message: String,
        /// Details: `{method, exception, trace}` for exceptions, the method
        /// name for unknown methods.
        data: Option<Value>,
    },

    /// The connection is closed or was lost; calls in flight fail with this.
    #[error("connection closed: {detail}")]
    Closed {
        /// Who closed it and how.
        detail: String,
    },

    /// The server sent something that is not valid wslink; the client
    /// closed the connection.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What was wrong.
        detail: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<Arc<CodecError>>,
    },

    /// No reply in time.
    #[error("{method}: no reply within {after:?}")]
    Timeout {
        /// The method called (`wslink.hello` while connecting).
        method: String,
        /// The time limit.
        after: Duration,
    },

    /// The arguments cannot be sent (a typed argument list that is not a
    /// sequence, a msgpack extension in wslink 1.x JSON, ...).
    #[error("{method}: cannot encode the arguments: {reason}")]
    InvalidArgs {
        /// The method called.
        method: String,
        /// Why.
        reason: String,
    },

    /// The result came back but does not fit the requested type.
    #[error("{method}: the result does not fit the requested type: {source}")]
    Decode {
        /// The method called.
        method: String,
        /// What did not fit.
        #[source]
        source: ValueError,
    },

    /// A topic outside wslink's id grammar (`\w+(\.\w+)*`).
    #[error(transparent)]
    InvalidTopic(#[from] IdError),

    /// The server refused a subscription's declaration (for instance past
    /// its limit of topics per connection); the subscription has ended.
    #[error("the server refused the subscription to {topic:?}: {reason}")]
    SubscriptionRefused {
        /// The topic.
        topic: String,
        /// The server's error message.
        reason: String,
    },
}

impl Error {
    /// The error code of an [`Error::Rpc`] or [`Error::Auth`].
    pub fn code(&self) -> Option<i64> {
        match self {
            Error::Rpc { code, .. } | Error::Auth { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// `true` for a "method not found" error reply (`-32601`).
    pub fn is_method_not_found(&self) -> bool {
        self.code() == Some(codes::METHOD_NOT_FOUND) && matches!(self, Error::Rpc { .. })
    }

    /// The server's exception text (`data.exception`) of a `-32001` reply.
    pub fn exception(&self) -> Option<&str> {
        match self {
            Error::Rpc { data: Some(d), .. } => d.get("exception").and_then(Value::as_str),
            _ => None,
        }
    }

    /// `true` when the server refused the TCP connection.
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, Error::Connect { source, .. }
            if matches!(source.as_ref(), tungstenite::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused))
    }
}

fn describe_ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => io.to_string(),
        tungstenite::Error::Http(resp) => format!(
            "the server answered HTTP {} instead of switching to WebSocket (is the path right?)",
            resp.status()
        ),
        other => other.to_string(),
    }
}

fn rpc_detail(code: i64, data: Option<&Value>) -> String {
    match (code, data) {
        (_, Some(d)) if d.get("exception").and_then(Value::as_str).is_some() => {
            format!(
                ": {}",
                d.get("exception")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        }
        (codes::METHOD_NOT_FOUND, Some(Value::Str(name))) => format!(" ({name})"),
        _ => String::new(),
    }
}

/// Why a connection ended, kept so that every later call can report it.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    Closed(String),
    Protocol(String, Option<Arc<CodecError>>),
}

impl Ended {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Ended::Closed(detail) => Error::Closed {
                detail: detail.clone(),
            },
            Ended::Protocol(detail, source) => Error::Protocol {
                detail: detail.clone(),
                source: source.clone(),
            },
        }
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Closed(d) => write!(f, "closed: {d}"),
            Ended::Protocol(d, _) => write!(f, "protocol error: {d}"),
        }
    }
}
