//! Large binary payloads that are sent without being copied.
//!
//! serde hands a serializer nothing but `&[u8]` for binary data, so an
//! encoder cannot tell a `Bytes` it could share from a borrowed slice it
//! must copy. Binary that opts in says so itself: while a segmenting encode
//! ([`msgpack::encode_segmented`](crate::msgpack::encode_segmented), which
//! the 2.x codec and the server use) runs on this thread,
//! [`Value::Bin`](crate::Value::Bin) and the types below hand the encoder a
//! clone of their `Bytes` (a reference count, not a copy) when they are at
//! least [`SHARE_THRESHOLD`] long. The encoder recognises the slice when it is
//! written and keeps the `Bytes` as a segment of the message instead of
//! copying it; the bytes of the message are the same either way.
//!
//! Two ways to opt a type of your own in:
//!
//! - a [`SharedBytes`] field (a newtype around [`Bytes`]);
//! - `#[serde(with = "wslink_core::shared_bytes")]` on a `Bytes` field.
//!
//! ```
//! use bytes::Bytes;
//! use wslink_core::{msgpack, SharedBytes};
//!
//! #[derive(serde::Serialize)]
//! struct Image {
//!     width: u32,
//!     pixels: SharedBytes,
//!     #[serde(with = "wslink_core::shared_bytes")]
//!     thumbnail: Bytes,
//! }
//!
//! let pixels = Bytes::from(vec![7u8; 1 << 20]);
//! let thumbnail = Bytes::from(vec![1u8; 100 << 10]);
//! let image = Image { width: 512, pixels: pixels.clone().into(), thumbnail: thumbnail.clone() };
//! let message = msgpack::encode_segmented(&image).unwrap();
//! // Both payloads are in the message as they are, not copied...
//! let shared: Vec<&Bytes> = message.shared().collect();
//! assert_eq!(shared[0].as_ptr(), pixels.as_ptr());
//! assert_eq!(shared[1].as_ptr(), thumbnail.as_ptr());
//! // ...and the message is byte for byte what the copying encoder makes.
//! assert_eq!(message.to_bytes(), msgpack::encode(&image).unwrap());
//! ```
//!
//! Everything else (plain `Bytes` or `Vec<u8>` fields, `serde_bytes`,
//! payloads under the threshold) is copied into the message as before.
//! Outside a segmenting encode, these types serialize exactly like `Bytes`.

use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Binary payloads at least this long (64 KiB) are shared rather than
/// copied when they opt in. Below it, a copy costs less than the segment
/// bookkeeping and the extra slice in the socket write.
pub const SHARE_THRESHOLD: usize = 64 * 1024;

/// A [`Bytes`] that a segmenting encode sends without copying (see the
/// [module docs](self)). It serializes as binary, like `Bytes`, and
/// derefs to it.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::{msgpack, SharedBytes};
///
/// #[derive(serde::Serialize)]
/// struct Frame { seq: u64, data: SharedBytes }
///
/// let data = Bytes::from(vec![0u8; 1 << 20]);
/// let frame = Frame { seq: 1, data: SharedBytes::from(data.clone()) };
/// let message = msgpack::encode_segmented(&frame).unwrap();
/// assert_eq!(message.shared().next().unwrap().as_ptr(), data.as_ptr());
/// assert_eq!(frame.data.len(), 1 << 20);
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedBytes(pub Bytes);

impl SharedBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Bytes) -> Self {
        SharedBytes(bytes)
    }

    /// The wrapped `Bytes`.
    pub fn into_inner(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Deref for SharedBytes {
    type Target = Bytes;
    fn deref(&self) -> &Bytes {
        &self.0
    }
}

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for SharedBytes {
    fn from(bytes: Bytes) -> Self {
        SharedBytes(bytes)
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SharedBytes(bytes.into())
    }
}

impl From<SharedBytes> for Bytes {
    fn from(shared: SharedBytes) -> Self {
        shared.0
    }
}

impl Serialize for SharedBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for SharedBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Bytes::deserialize(d).map(SharedBytes)
    }
}

/// Serializes a `Bytes` field as binary, shared rather than copied by a
/// segmenting encode: `#[serde(with = "wslink_core::shared_bytes")]`.
///
/// ```
/// use bytes::Bytes;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Tile {
///     #[serde(with = "wslink_core::shared_bytes")]
///     png: Bytes,
/// }
/// let tile = Tile { png: Bytes::from(vec![1u8; 200_000]) };
/// let message = wslink_core::msgpack::encode_segmented(&tile).unwrap();
/// assert_eq!(message.shared().count(), 1);
/// ```
pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    offer(bytes);
    s.serialize_bytes(bytes)
}

/// Deserializes a `Bytes` field (the other half of
/// `#[serde(with = "wslink_core::shared_bytes")]`); same as `Bytes`'s own.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    Bytes::deserialize(d)
}

/// The payloads offered during the encode running on this thread.
struct Capture {
    threshold: usize,
    offered: Vec<Bytes>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Offers `bytes` to the encode running on this thread, if any: it is kept
/// (a reference count) when at least the encode's threshold long, so that
/// the encoder can find it by [`find`] when its slice is written.
pub(crate) fn offer(bytes: &Bytes) {
    // `try_with`: a serialize running in a thread-local destructor just
    // copies, as it would outside an encode.
    let _ = CAPTURE.try_with(|capture| {
        if let Some(capture) = capture.borrow_mut().as_mut() {
            if bytes.len() >= capture.threshold {
                capture.offered.push(bytes.clone());
            }
        }
    });
}

/// The offered `Bytes` whose memory is exactly `data`, if any.
///
/// Pointer and length equal means the same bytes: the offered clone keeps
/// that memory alive and unchanged for the whole encode.
pub(crate) fn find(data: &[u8]) -> Option<Bytes> {
    CAPTURE
        .try_with(|capture| {
            let capture = capture.borrow();
            let capture = capture.as_ref()?;
            if data.is_empty() || data.len() < capture.threshold {
                return None;
            }
            // The payload just offered is the one being written, save for
            // serializers that offer and then do not write.
            capture
                .offered
                .iter()
                .rev()
                .find(|b| b.as_ptr() == data.as_ptr() && b.len() == data.len())
                .cloned()
        })
        .ok()
        .flatten()
}

/// Collects offers on this thread while it lives; dropping it (at the end
/// of the encode, or while unwinding from a panic in a user's `Serialize`)
/// releases them and restores any encode it interrupted.
pub(crate) struct Capturing {
    outer: Option<Capture>,
}

impl Capturing {
    /// Starts collecting payloads at least `threshold` (minimum 1) long.
    pub(crate) fn start(threshold: usize) -> Capturing {
        let inner = Capture {
            threshold: threshold.max(1),
            offered: Vec::new(),
        };
        let outer = CAPTURE
            .try_with(|capture| capture.replace(Some(inner)))
            .ok()
            .flatten();
        Capturing { outer }
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        let outer = self.outer.take();
        let _ = CAPTURE.try_with(|capture| capture.replace(outer));
    }
}

#[cfg(test)]
pub(crate) fn is_capturing() -> bool {
    CAPTURE.with(|capture| capture.borrow().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_outside_an_encode() {
        let b = Bytes::from(vec![1u8; 10]);
        offer(&b);
        assert!(find(&b).is_none());
        assert!(!is_capturing());
    }

    #[test]
    fn only_payloads_over_the_threshold_are_found() {
        let _capture = Capturing::start(8);
        let small = Bytes::from(vec![1u8; 7]);
        let large = Bytes::from(vec![2u8; 8]);
        offer(&small);
        offer(&large);
        assert!(find(&small).is_none());
        assert_eq!(find(&large).unwrap().as_ptr(), large.as_ptr());
        // Same start, other length: not the same bytes.
        assert!(find(&large[..7]).is_none());
        // Same contents elsewhere: not offered.
        let elsewhere = large.to_vec();
        assert!(find(&elsewhere).is_none());
    }

    #[test]
    fn nested_encodes_restore_the_outer_one() {
        let outer_bytes = Bytes::from(vec![1u8; 16]);
        let outer = Capturing::start(1);
        offer(&outer_bytes);
        {
            let _inner = Capturing::start(1);
            assert!(find(&outer_bytes).is_none());
        }
        assert!(find(&outer_bytes).is_some());
        drop(outer);
        assert!(!is_capturing());
    }

    #[test]
    fn a_panic_ends_the_capture() {
        let result = std::panic::catch_unwind(|| {
            let _capture = Capturing::start(1);
            panic!("in a user's Serialize");
        });
        assert!(result.is_err());
        assert!(!is_capturing());
    }
}
