//! # wslink-server
//!
//! A wslink server on tokio, with its own WebSocket frame layer (and
//! permessage-deflate). An app written against
//! Kitware's npm `wslink` client (2.x or 1.x) works unchanged when the
//! Python server behind it is replaced by this one.
//!
//! ```no_run
//! use wslink_server::{CallContext, HandlerError, Server, TopicPolicy};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let server = Server::builder()
//!         .secret("wslink-secret")
//!         .method("app.echo", |_ctx: CallContext, (text,): (String,)| async move {
//!             Ok::<_, HandlerError>(text)
//!         })
//!         .topic_policy("app.frames", TopicPolicy::KeepLatest)
//!         .build();
//!     let publisher = server.publisher();
//!     tokio::spawn(async move {
//!         loop {
//!             tokio::time::sleep(std::time::Duration::from_millis(16)).await;
//!             let _ = publisher.publish("app.frames", &bytes::Bytes::from_static(b"frame"));
//!         }
//!     });
//!     server.serve("127.0.0.1:8080").await?;
//!     Ok(())
//! }
//! ```
//!
//! What it adds over the Python server: calls from one connection run
//! concurrently; every limit is bounded and configurable ([`Limits`]); a
//! client that stops reading neither stalls others nor grows memory
//! ([`TopicPolicy`]); published messages are serialized once per wire
//! generation and their bytes shared by all recipients; large binary given
//! as [`Value::Bin`] or [`SharedBytes`] is written to 2.x clients' sockets
//! from its own buffer, never copied into a msgpack message.

#![warn(missing_docs)]

mod config;
mod connection;
mod context;
mod env;
mod handler;
mod http;
mod listeners;
mod metrics;
mod outbound;
mod policy;
mod publisher;
mod reverse;
mod server;
mod transport;

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(feature = "tls")]
pub use transport::tls;

pub use config::{Limits, ServerConfig};
pub use context::{CallContext, ConnectionInfo};
pub use env::EnvError;
pub use handler::{HandlerError, LinkProtocol, Methods};
pub use http::HttpResponse;
/// Header types of [`ServerBuilder::http_headers`] (the `http` crate's, through hyper).
pub use hyper::http::{HeaderMap, HeaderName, HeaderValue};
pub use metrics::MetricsSnapshot;
pub use policy::{AllowedOrigins, AuthThrottle, OriginError, TrustedProxies, TrustedProxyError};
pub use publisher::{PublishError, Publisher, TopicPolicy};
pub use reverse::{ReverseConnection, ReverseError};
pub use server::{Listener, Server, ServerBuilder, ServerError, Validator};
pub use wslink_core::{self as core, Generation, Map, SharedBytes, Value};
