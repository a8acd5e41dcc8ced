//! What carries the bytes under the WebSocket: TLS termination here.

#[cfg(feature = "tls")]
pub mod tls;
