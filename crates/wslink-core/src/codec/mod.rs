//! The two wire generations, as frame encoders and per-connection decoders.
//!
//! - [`v2`]: wslink 2.x — msgpack, chunked binary frames.
//! - [`v1`]: wslink 1.x — JSON text frames, binary as attachments.
//!
//! Both turn a message into [`Frame`]s and frames back into
//! [`Message`](crate::Message)s; neither touches a socket.

pub mod v1;
pub mod v2;

use bytes::Bytes;

use crate::attachments::AttachmentError;
use crate::chunking::ChunkError;
use crate::envelope::EnvelopeError;
use crate::msgpack;

/// One WebSocket frame's payload, ready for any WebSocket library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame; the bytes are always valid UTF-8.
    Text(Bytes),
    /// A binary frame.
    Binary(Bytes),
}

impl Frame {
    /// A text frame from a string (no copy).
    pub fn text(s: String) -> Frame {
        Frame::Text(Bytes::from(s))
    }

    /// The payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(b) | Frame::Binary(b) => b.len(),
        }
    }

    /// `true` for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which wire generation a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// wslink 1.x: JSON text frames plus binary attachments.
    V1,
    /// wslink 2.x: msgpack in chunked binary frames.
    V2,
}

impl Generation {
    /// Guesses the generation from a connection's first frame: 2.x peers only
    /// ever send binary frames, and a 1.x peer's first frame is its JSON hello.
    pub fn from_first_frame(is_binary: bool) -> Generation {
        if is_binary {
            Generation::V2
        } else {
            Generation::V1
        }
    }
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Generation::V1 => "1.x",
            Generation::V2 => "2.x",
        })
    }
}

/// Why frames could not be turned into a message, or a message into frames.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A 2.x chunk was inconsistent or over a limit.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    /// A reassembled 2.x message was not valid msgpack.
    #[error("invalid msgpack message: {0}")]
    Msgpack(#[from] msgpack::DecodeError),
    /// A 1.x text frame was not valid JSON.
    #[error("invalid JSON message: {0}")]
    Json(#[source] serde_json::Error),
    /// A 1.x text frame was larger than allowed.
    #[error("text frame of {len} bytes is over the limit of {limit}")]
    TextTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The message decoded but is not a wslink envelope.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// A 1.x attachment could not be paired.
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
    /// A frame of the other generation's kind arrived.
    #[error("{kind} frame on a wslink {generation} connection")]
    WrongFrameKind {
        /// "text" or "binary".
        kind: &'static str,
        /// The connection's generation.
        generation: Generation,
    },
    /// The message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

impl CodecError {
    /// `true` when the error means "too big" (WebSocket close code 1009)
    /// rather than "malformed" (1002/1007/1008).
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            CodecError::TextTooLarge { .. }
                | CodecError::Attachment(AttachmentError::TooManyBytes { .. })
        ) || matches!(self, CodecError::Chunk(e) if e.is_size_limit())
    }
}
