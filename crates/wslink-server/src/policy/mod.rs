//! The policies that decide who gets in, each a layer of its own in front
//! of the connection: which web pages may open a socket
//! ([`AllowedOrigins`], checked at the upgrade), and how often one address
//! may guess the secret ([`AuthThrottle`], checked at the upgrade and at
//! every failed hello), and which proxies may name the client
//! ([`TrustedProxies`], whose `X-Forwarded-For` gives the address the
//! throttle counts). Resource limits live in [`Limits`](crate::Limits)
//! and the frame guard; the secret itself in the hello handler.

mod auth_throttle;
mod origin;
mod trusted_proxy;

pub use auth_throttle::AuthThrottle;
pub(crate) use auth_throttle::{Throttle, Verdict};
pub use origin::{AllowedOrigins, OriginError};
pub use trusted_proxy::{TrustedProxies, TrustedProxyError};
