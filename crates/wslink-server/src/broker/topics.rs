//! Shared topics: the envelope a publish travels in between processes.
//!
//! The NATS subject carries the topic (`<prefix>.topic.<topic>`); the
//! payload is a few header bytes and the message, msgpack-encoded once at
//! the origin:
//!
//! ```text
//! u8  version (1)
//! u8  flags: 1 keep-latest at the origin, 2 slot follows, 4 audience follows
//! [u16 BE length, UTF-8]              slot (publish_latest)
//! [u16 BE count, (u8 length, UTF-8)*] audience (client ids)
//! msgpack                             the message, to the end
//! ```
//!
//! A receiving process decodes the message once, its binary as slices of
//! the NATS message (no copy), and publishes it to its own clients.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use wslink_core::{msgpack, Value};

use super::link::{bump, Counters};
use crate::publisher::Publisher;
use crate::server::Shared;

const VERSION: u8 = 1;
const KEEP_LATEST: u8 = 1;
const HAS_SLOT: u8 = 2;
const HAS_AUDIENCE: u8 = 4;

/// A shared publish as received.
#[derive(Debug, PartialEq)]
pub(crate) struct Envelope {
    pub keep_latest: bool,
    pub slot: Option<String>,
    pub audience: Option<Vec<String>>,
    pub message: Value,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("envelope header truncated or of an unknown version")]
    Header,
    #[error("envelope message: {0}")]
    Message(#[from] msgpack::DecodeError),
    #[error("cannot encode the message: {0}")]
    Encode(#[from] msgpack::EncodeError),
}

/// Encodes a publish for the broker: the header, then `message` as msgpack
/// written straight after it (one buffer, one serialization).
pub(crate) fn encode<T: Serialize + ?Sized>(
    message: &T,
    keep_latest: bool,
    slot: Option<&str>,
    audience: Option<&[&str]>,
) -> Result<Bytes, EnvelopeError> {
    let mut header = Vec::with_capacity(16);
    let mut flags = 0;
    if keep_latest {
        flags |= KEEP_LATEST;
    }
    if slot.is_some() {
        flags |= HAS_SLOT;
    }
    if audience.is_some() {
        flags |= HAS_AUDIENCE;
    }
    header.extend_from_slice(&[VERSION, flags]);
    if let Some(slot) = slot {
        let len = u16::try_from(slot.len()).map_err(|_| EnvelopeError::Header)?;
        header.extend_from_slice(&len.to_be_bytes());
        header.extend_from_slice(slot.as_bytes());
    }
    if let Some(ids) = audience {
        let count = u16::try_from(ids.len()).map_err(|_| EnvelopeError::Header)?;
        header.extend_from_slice(&count.to_be_bytes());
        for id in ids {
            let len = u8::try_from(id.len()).map_err(|_| EnvelopeError::Header)?;
            header.push(len);
            header.extend_from_slice(id.as_bytes());
        }
    }
    let mut buf = msgpack::encode_with_reserve(message, header.len(), 256)?;
    buf[..header.len()].copy_from_slice(&header);
    Ok(buf.freeze())
}

pub(crate) fn decode(payload: Bytes, max_depth: usize) -> Result<Envelope, EnvelopeError> {
    let mut pos = 0;
    let mut take = |n: usize| -> Result<&[u8], EnvelopeError> {
        let bytes = payload.get(pos..pos + n).ok_or(EnvelopeError::Header)?;
        pos += n;
        Ok(bytes)
    };
    let head = take(2)?;
    let (version, flags) = (head[0], head[1]);
    if version != VERSION {
        return Err(EnvelopeError::Header);
    }
    let text = |bytes: &[u8]| {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| EnvelopeError::Header)
    };
    let slot = if flags & HAS_SLOT != 0 {
        let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| EnvelopeError::Header)?);
        Some(text(take(usize::from(len))?)?)
    } else {
        None
    };
    let audience = if flags & HAS_AUDIENCE != 0 {
        let count = u16::from_be_bytes(take(2)?.try_into().map_err(|_| EnvelopeError::Header)?);
        // Grown as ids arrive, not sized from the claimed count.
        let mut ids = Vec::new();
        for _ in 0..count {
            let len = take(1)?[0];
            ids.push(text(take(usize::from(len))?)?);
        }
        Some(ids)
    } else {
        None
    };
    let message = msgpack::decode(&payload.slice(pos..), max_depth)?;
    Ok(Envelope {
        keep_latest: flags & KEEP_LATEST != 0,
        slot,
        audience,
        message,
    })
}

/// Delivers a publish received from the broker to this process's clients.
pub(crate) fn deliver(shared: &Arc<Shared>, counters: &Counters, topic: &str, payload: Bytes) {
    let envelope = match decode(payload, shared.config.limits.max_depth) {
        Ok(envelope) => envelope,
        Err(e) => {
            bump(&counters.malformed);
            tracing::warn!(%topic, error = %e, "malformed shared publish from the broker; ignored");
            return;
        }
    };
    let publisher = Publisher {
        shared: shared.clone(),
    };
    match publisher.deliver_remote(topic, &envelope) {
        Ok(_) => bump(&counters.received),
        Err(e) => {
            bump(&counters.malformed);
            tracing::warn!(%topic, error = %e, "shared publish from the broker not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_keeps_slot_audience_and_binary_slices() {
        let image = Bytes::from(vec![7u8; 100_000]);
        let message = Value::map([("seq", Value::from(3)), ("image", Value::Bin(image))]);
        let wire = encode(&message, true, Some("view-2"), Some(&["c1", "c22"])).unwrap();
        let got = decode(wire.clone(), 32).unwrap();
        assert_eq!(
            got,
            Envelope {
                keep_latest: true,
                slot: Some("view-2".into()),
                audience: Some(vec!["c1".into(), "c22".into()]),
                message: message.clone(),
            }
        );
        // The image is a slice of the received buffer, not a copy.
        let bin = got.message.get("image").unwrap().as_bytes().unwrap();
        let range = wire.as_ptr() as usize..wire.as_ptr() as usize + wire.len();
        assert!(range.contains(&(bin.as_ptr() as usize)));
    }

    #[test]
    fn plain_publish_has_a_two_byte_header() {
        let wire = encode(&42u8, false, None, None).unwrap();
        assert_eq!(&wire[..], &[VERSION, 0, 42]);
    }

    #[test]
    fn truncated_or_foreign_envelopes_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[1][..],
            &[9, 0, 1][..],
            &[1, HAS_SLOT, 0xff, 0xff, b'a'][..],
            &[1, HAS_AUDIENCE, 0xff, 0xff, 3, b'a'][..],
            &[1, 0, 0xc1][..],
        ] {
            assert!(decode(Bytes::copy_from_slice(bad), 32).is_err(), "{bad:?}");
        }
    }
}
