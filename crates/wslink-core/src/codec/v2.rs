//! wslink 2.x: every message is msgpack, cut into binary frames that each
//! start with a 12-byte header (see [`crate::chunking`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use serde::Serialize;

use super::{CodecError, Frame};
use crate::chunking::{self, Chunks, SegmentedChunks, UnchunkLimits, Unchunker, HEADER_LEN};
use crate::envelope::Message;
use crate::msgpack;
use crate::shared_bytes::SHARE_THRESHOLD;

/// A fresh chunk id for an outgoing message.
///
/// Receivers key partial messages by this id, so ids in flight on one
/// connection must differ. A process-wide sequence with a random start does
/// that without a random-number dependency: an odd step visits all 2^32 ids
/// before repeating.
pub fn next_chunk_id() -> u32 {
    static SEQ: OnceLock<AtomicU32> = OnceLock::new();
    let seq = SEQ.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(0);
        AtomicU32::new(h.finish() as u32)
    });
    seq.fetch_add(0x9E37_79B9, Ordering::Relaxed)
}

/// Encodes any serializable envelope (a [`Message`], or a typed
/// [`ResultEnvelope`](crate::envelope::ResultEnvelope)) into frames no
/// larger than `max_frame_size` (0 means one frame whatever the size).
///
/// A message that fits one frame costs one copy of its binary payloads (into
/// the msgpack buffer); a chunked one costs two.
///
/// ```
/// use wslink_core::codec::{v2, Frame};
/// use wslink_core::{Message, Value};
/// let msg = Message::Result { id: "rpc:c1:0".into(), result: Value::from(vec![0u8; 100]) };
/// let frames: Vec<Frame> = v2::encode(&msg, 64).unwrap().map(Frame::Binary).collect();
/// assert!(frames.len() > 1 && frames.iter().all(|f| f.len() <= 64));
/// ```
pub fn encode<T: Serialize + ?Sized>(
    message: &T,
    max_frame_size: usize,
) -> Result<Chunks, CodecError> {
    let buf = msgpack::encode_with_reserve(message, HEADER_LEN, 256)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(chunking::chunk_reserved(
        buf,
        next_chunk_id(),
        max_frame_size,
    )?)
}

/// Like [`encode`], but large binary payloads that opt in ([`Value::Bin`],
/// [`SharedBytes`](crate::SharedBytes), see [`crate::shared_bytes`]) are
/// not copied: each frame is a few slices, the payloads' among them.
///
/// The frames are byte for byte those [`encode`] makes (with another chunk
/// id). Write them with a vectored write, or make one buffer of each with
/// [`SegmentedFrame::into_bytes`](crate::chunking::SegmentedFrame::into_bytes).
/// A message without such payloads costs what it costs with [`encode`].
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::codec::v2;
/// use wslink_core::{Message, SharedBytes, Value};
///
/// let image = Bytes::from(vec![0u8; 1 << 20]);
/// let msg = Message::Result { id: "publish:image:0".into(), result: Value::Bin(image.clone()) };
/// let frames: Vec<_> = v2::encode_segmented(&msg, 4 << 20).unwrap().collect();
/// assert_eq!(frames.len(), 1);
/// // Chunk header and envelope, then the image itself.
/// assert_eq!(frames[0].parts()[1].as_ptr(), image.as_ptr());
///
/// // A decoder sees the same message.
/// let mut decoder = v2::Decoder::new(Default::default());
/// decoder.set_authenticated(true);
/// let frame = frames[0].clone().into_bytes();
/// assert_eq!(decoder.push(frame).unwrap(), Some(msg));
/// ```
///
/// [`Value::Bin`]: crate::Value::Bin
pub fn encode_segmented<T: Serialize + ?Sized>(
    message: &T,
    max_frame_size: usize,
) -> Result<SegmentedChunks, CodecError> {
    let segmented = msgpack::encode_segmented_with(message, HEADER_LEN, SHARE_THRESHOLD)
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(chunking::chunk_segmented(
        segmented,
        next_chunk_id(),
        max_frame_size,
    )?)
}

/// Limits a 2.x decoder enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Reassembly limits.
    pub unchunk: UnchunkLimits,
    /// Maximum nesting of arrays and maps.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            unchunk: UnchunkLimits::default(),
            max_depth: msgpack::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Turns one connection's incoming binary frames into messages.
///
/// ```
/// use wslink_core::codec::v2;
/// use wslink_core::{Message, Value};
/// let msg = Message::Result { id: "rpc:c1:0".into(), result: Value::from(42) };
/// let mut decoder = v2::Decoder::new(v2::DecodeLimits::default());
/// decoder.set_authenticated(true);
/// let mut out = None;
/// for frame in v2::encode(&msg, 16).unwrap() {
///     out = decoder.push(frame).unwrap();
/// }
/// assert_eq!(out, Some(msg));
/// ```
#[derive(Debug)]
pub struct Decoder {
    unchunker: Unchunker,
    max_depth: usize,
}

impl Decoder {
    /// A decoder in the pre-authentication state.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder {
            unchunker: Unchunker::new(limits.unchunk),
            max_depth: limits.max_depth,
        }
    }

    /// Lifts the pre-authentication size limit once the hello succeeded.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.unchunker.set_authenticated(authenticated);
    }

    /// Feeds one binary frame; returns the message it completes, if any.
    pub fn push(&mut self, frame: Bytes) -> Result<Option<Message>, CodecError> {
        match self.unchunker.push(frame)? {
            None => Ok(None),
            Some(bytes) => decode_message(&bytes, self.max_depth).map(Some),
        }
    }

    /// Bytes held for messages not yet complete.
    pub fn pending_bytes(&self) -> usize {
        self.unchunker.pending_bytes()
    }
}

/// Decodes one complete (already reassembled) msgpack message.
pub fn decode_message(bytes: &Bytes, max_depth: usize) -> Result<Message, CodecError> {
    Message::from_msgpack(bytes, max_depth)
}

/// Encodes `message` into [`Frame`]s.
pub fn encode_frames<T: Serialize + ?Sized>(
    message: &T,
    max_frame_size: usize,
) -> Result<Vec<Frame>, CodecError> {
    Ok(encode(message, max_frame_size)?
        .map(Frame::Binary)
        .collect())
}
