//! The policies that decide who gets in, each a layer of its own in front
//! of the connection: which web pages may open a socket
//! ([`AllowedOrigins`], checked at the upgrade), and how often one address
//! may guess the secret ([`AuthThrottle`], checked at the upgrade and at
//! every failed hello). Resource limits live in [`Limits`](crate::Limits)
//! and the frame guard; the secret itself in the hello handler.

mod auth_throttle;
mod origin;

pub use auth_throttle::AuthThrottle;
pub(crate) use auth_throttle::{Throttle, Verdict};
pub use origin::{AllowedOrigins, OriginError};
