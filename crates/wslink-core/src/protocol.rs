//! The handshake and the error vocabulary shared by every wslink peer.

use crate::envelope::{Request, RpcError};
use crate::ids::HELLO_ID;
use crate::value::Value;

/// The `wslink` field of every envelope.
pub const WSLINK_VERSION: &str = "1.0";
/// The handshake method.
pub const HELLO_METHOD: &str = "wslink.hello";
/// A client declares a subscription (our extension, see
/// [`CAPABILITY_SUBSCRIPTIONS`]): `args: [topic]`.
pub const SUBSCRIBE_METHOD: &str = "wslink.subscribe";
/// A client withdraws a declared subscription: `args: [topic]`.
pub const UNSUBSCRIBE_METHOD: &str = "wslink.unsubscribe";
/// The capability, listed in a hello reply's `capabilities`, of a server
/// that sends a declaring client only the topics it subscribed to.
/// Kitware's servers do not list it, and its clients never declare.
pub const CAPABILITY_SUBSCRIPTIONS: &str = "subscriptions";
/// The method of a 1.x attachment header.
pub const ATTACHMENT_METHOD: &str = "wslink.binary.attachment";
/// The secret a wslink client sends when it is given none.
pub const DEFAULT_SECRET: &str = "wslink-secret";
/// The largest frame a Python wslink server accepts by default, and so what
/// it announces as `maxMsgSize`; clients chunk their messages to fit it.
pub const DEFAULT_MAX_MSG_SIZE: usize = 4 * 1024 * 1024;
/// The frame size a 2.x client chunks to before the hello reply tells it the
/// server's limit (the npm client's default).
pub const PRE_HELLO_MAX_MSG_SIZE: usize = 512 * 1024;

/// Error codes, as wslink numbers them (JSON-RPC style).
pub mod codes {
    /// No handler is registered under the called name.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The hello failed, or a call came before a successful hello.
    pub const AUTHENTICATION_ERROR: i64 = -32000;
    /// The handler failed.
    pub const EXCEPTION_ERROR: i64 = -32001;
    /// The handler's result could not be serialized.
    pub const RESULT_SERIALIZE_ERROR: i64 = -32002;
    /// Raised on the client side (connection not open, and so on).
    pub const CLIENT_ERROR: i64 = -32099;
}

/// The error messages wslink servers send, word for word.
pub mod messages {
    /// Hello with a missing or wrong secret.
    pub const AUTHENTICATION_FAILED: &str = "Authentication failed";
    /// A call before a successful hello.
    pub const UNAUTHORIZED: &str = "Unauthorized: Skip message processing";
    /// A call to a name with no handler.
    pub const UNREGISTERED_METHOD: &str = "Unregistered method called";
    /// A `system:` id with a method other than hello.
    pub const UNKNOWN_SYSTEM_METHOD: &str = "Unknown system method called";
    /// A handler failed.
    pub const EXCEPTION_RAISED: &str = "Exception raised";
    /// A result that could not be serialized.
    pub const RESULT_NOT_SERIALIZABLE: &str = "Method result cannot be serialized";
}

impl RpcError {
    /// `-32601`, with the method name as `data`, as wslink sends it.
    pub fn method_not_found(method: &str) -> Self {
        RpcError::new(codes::METHOD_NOT_FOUND, messages::UNREGISTERED_METHOD)
            .with_data(Value::from(method))
    }

    /// `-32000` for a failed hello.
    pub fn authentication_failed() -> Self {
        RpcError::new(codes::AUTHENTICATION_ERROR, messages::AUTHENTICATION_FAILED)
    }

    /// `-32000` for a call before hello.
    pub fn unauthorized() -> Self {
        RpcError::new(codes::AUTHENTICATION_ERROR, messages::UNAUTHORIZED)
    }

    /// `-32001` with wslink's `data`: `{method, exception, trace}`.
    pub fn exception(method: &str, exception: impl Into<String>, trace: impl Into<String>) -> Self {
        RpcError::new(codes::EXCEPTION_ERROR, messages::EXCEPTION_RAISED).with_data(Value::map([
            ("method", Value::from(method)),
            ("exception", Value::from(exception.into())),
            ("trace", Value::from(trace.into())),
        ]))
    }

    /// `-32002`, with the method name as `data`.
    pub fn result_not_serializable(method: &str) -> Self {
        RpcError::new(
            codes::RESULT_SERIALIZE_ERROR,
            messages::RESULT_NOT_SERIALIZABLE,
        )
        .with_data(Value::from(method))
    }
}

/// The hello request a client sends.
///
/// ```
/// use wslink_core::protocol::hello_request;
/// let hello = hello_request("wslink-secret");
/// assert_eq!(hello.id, "system:c0:0");
/// assert_eq!(hello.args[0].get("secret").unwrap().as_str(), Some("wslink-secret"));
/// ```
pub fn hello_request(secret: &str) -> Request {
    Request {
        id: HELLO_ID.to_owned(),
        method: HELLO_METHOD.to_owned(),
        args: vec![Value::map([("secret", Value::from(secret))])],
        kwargs: Vec::new(),
    }
}

/// The secret in a hello request (`args[0].secret`), if there is one.
///
/// Anything else in the request is ignored, as wslink does.
pub fn hello_secret(request: &Request) -> Option<&str> {
    request.args.first()?.get("secret")?.as_str()
}

/// What the server answers to a successful hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// The id the client uses in its `rpc:` ids.
    pub client_id: String,
    /// The largest frame the server accepts (2.x only; 1.x servers omit it).
    pub max_msg_size: Option<u64>,
    /// Extensions the server offers (`capabilities`, ours only; empty and
    /// left out of the reply for a plain wslink server).
    pub capabilities: Vec<String>,
}

impl HelloReply {
    /// The reply's `result` value: `{clientID, maxMsgSize, capabilities}`.
    pub fn to_value(&self) -> Value {
        let mut entries = vec![("clientID", Value::from(self.client_id.as_str()))];
        if let Some(size) = self.max_msg_size {
            entries.push(("maxMsgSize", Value::from(size)));
        }
        if !self.capabilities.is_empty() {
            let list = self.capabilities.iter().map(|c| Value::from(c.as_str()));
            entries.push(("capabilities", Value::Array(list.collect())));
        }
        Value::map(entries)
    }

    /// Whether the server offers `capability`.
    pub fn offers(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Reads a hello reply's `result`; `None` if it has no string `clientID`.
    pub fn from_value(result: &Value) -> Option<Self> {
        Some(HelloReply {
            client_id: result.get("clientID")?.as_str()?.to_owned(),
            max_msg_size: result.get("maxMsgSize").and_then(Value::as_u64),
            // Anything but a list of strings reads as no capability: a
            // client must never act on an offer it cannot read.
            capabilities: result
                .get("capabilities")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
