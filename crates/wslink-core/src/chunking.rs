//! wslink 2.x chunking: how one msgpack message travels as binary frames.
//!
//! Every binary frame starts with a 12-byte little-endian header,
//! `[u32 message id][u32 offset of this chunk][u32 total message size]`,
//! followed by the chunk's bytes. A sender picks a fresh id per message and
//! cuts the message into chunks of `max(max_frame_size - 12, 1)` bytes (the
//! whole message in one frame when `max_frame_size` is 0). Chunks of
//! different messages may interleave, and a receiver accepts a message's
//! chunks in any order.
//!
//! ```
//! use bytes::Bytes;
//! use wslink_core::chunking::{chunk, UnchunkLimits, Unchunker};
//!
//! let message = Bytes::from(vec![7u8; 100]);
//! let mut unchunker = Unchunker::new(UnchunkLimits::default());
//! unchunker.set_authenticated(true);
//! let mut out = None;
//! for frame in chunk(message.clone(), 42, 32).unwrap() {
//!     assert!(frame.len() <= 32);
//!     out = unchunker.push(frame).unwrap();
//! }
//! assert_eq!(out, Some(message));
//! ```
//!
//! The reassembler differs from wslink's own on purpose: wslink allocates
//! the declared total at a message's first chunk (up to 4 GiB for a 12-byte
//! frame) and writes chunks wherever their offsets say. [`Unchunker`] only
//! holds bytes that arrived, within per-connection limits, and refuses
//! inconsistent chunks with a [`ChunkError`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::iter::FusedIterator;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::msgpack::{self, Piece, Segmented};

/// Length of the header at the start of every 2.x frame.
pub const HEADER_LEN: usize = 12;

/// Default [`UnchunkLimits::pre_auth_max_message_size`]: the largest message
/// accepted before the hello succeeded. wslink's Python server uses the same
/// 512 bytes, which is plenty for a hello.
pub const DEFAULT_PRE_AUTH_MAX_MESSAGE_SIZE: usize = 512;

/// Default [`UnchunkLimits::max_message_size`] (128 MiB): the largest
/// declared total accepted after the hello. wslink accepts anything a u32
/// can say (4 GiB); 128 MiB holds any realistic RPC payload or image.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;

/// Default [`UnchunkLimits::max_pending_messages`]: partial messages one
/// connection may have at once. Well-behaved peers send one message at a
/// time per sending task, so a handful is normal.
pub const DEFAULT_MAX_PENDING_MESSAGES: usize = 64;

/// Default [`UnchunkLimits::max_pending_bytes`] (128 MiB): memory one
/// connection's partial messages may hold, as counted by
/// [`Unchunker::pending_bytes`].
pub const DEFAULT_MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;

/// What [`Unchunker::pending_bytes`] charges for each stored run of
/// contiguous bytes on top of its buffer capacity.
///
/// Without it a peer sending one-byte chunks at scattered offsets would cost
/// the server a map entry and an allocation per byte while being charged one
/// byte; 128 bytes covers the tree node share, the buffer handle and the
/// allocator's minimum block.
pub const SEGMENT_OVERHEAD: usize = 128;

/// Why a message could not be cut into frames, or a frame could not be
/// taken in.
///
/// Every error from [`Unchunker::push`] means the peer does not follow the
/// protocol (or exceeds a limit); a server should close the connection on
/// any of them (see [`ChunkError::is_size_limit`] for picking the close
/// code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The frame cannot even hold a chunk header.
    #[error("frame of {len} bytes is shorter than the {HEADER_LEN}-byte chunk header")]
    FrameTooShort {
        /// The frame's length.
        len: usize,
    },
    /// The header declares an empty message, which no sender produces.
    #[error("message {id}: chunk at offset {offset} ({len} bytes) declares a total size of 0")]
    ZeroTotal {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Chunk content length.
        len: usize,
    },
    /// The frame is a header with no content.
    #[error("message {id}: chunk at offset {offset} of a {total}-byte message is empty")]
    EmptyChunk {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Declared total.
        total: u32,
    },
    /// The declared total is larger than the current limit.
    #[error(
        "message {id}: declared size of {total} bytes is over the limit of {limit}{}",
        if *authenticated { "" } else { " before authentication" }
    )]
    MessageTooLarge {
        /// Message id.
        id: u32,
        /// Declared total.
        total: u32,
        /// The limit in force.
        limit: usize,
        /// Whether the limit was the post-authentication one.
        authenticated: bool,
    },
    /// A chunk declares a total differing from an earlier chunk's.
    #[error(
        "message {id}: chunk at offset {offset} declares a total of {total} bytes, \
         an earlier chunk declared {expected}"
    )]
    TotalMismatch {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Total declared by this chunk.
        total: u32,
        /// Total declared by the message's first chunk.
        expected: u32,
    },
    /// The chunk's bytes would end past the declared total.
    #[error(
        "message {id}: chunk at offset {offset} ({len} bytes) runs past the declared total of {total}"
    )]
    PastEnd {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Chunk content length.
        len: usize,
        /// Declared total.
        total: u32,
    },
    /// Every byte of the chunk was already received.
    #[error("message {id}: chunk at offset {offset} ({len} bytes) was already received")]
    DuplicateChunk {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Chunk content length.
        len: usize,
    },
    /// Some bytes of the chunk were already received.
    #[error(
        "message {id}: chunk at offset {offset} ({len} bytes) overlaps the {held_len} bytes \
         already received at offset {held_offset}"
    )]
    OverlappingChunk {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Chunk content length.
        len: usize,
        /// Start of the received bytes it overlaps.
        held_offset: u32,
        /// Length of the received run it overlaps.
        held_len: usize,
    },
    /// A new message would exceed the number of partial messages allowed.
    #[error("message {id}: over the limit of {limit} partial messages")]
    TooManyPendingMessages {
        /// Message id.
        id: u32,
        /// The limit.
        limit: usize,
    },
    /// Storing the chunk would exceed the bytes partial messages may hold.
    #[error(
        "message {id}: chunk at offset {offset} ({len} bytes) would raise the bytes held \
         for partial messages to {needed}, over the limit of {limit}"
    )]
    TooManyPendingBytes {
        /// Message id.
        id: u32,
        /// Declared offset.
        offset: u32,
        /// Chunk content length.
        len: usize,
        /// What [`Unchunker::pending_bytes`] would have become.
        needed: usize,
        /// The limit.
        limit: usize,
    },
    /// [`chunk`] or [`chunk_reserved`] was given no bytes to send.
    #[error("cannot chunk an empty message")]
    EmptyMessage,
    /// The message is longer than a chunk header can declare.
    #[error(
        "message of {len} bytes is longer than the {} bytes a chunk header can declare",
        u32::MAX
    )]
    MessageTooLong {
        /// The message's length.
        len: usize,
    },
    /// [`chunk_reserved`] was given a buffer without its header reserve.
    #[error("buffer of {len} bytes lacks the {HEADER_LEN} reserved header bytes")]
    MissingReserve {
        /// The buffer's length.
        len: usize,
    },
}

impl ChunkError {
    /// `true` when the error means "too big" (WebSocket close code 1009)
    /// rather than "malformed" or "policy" (1002/1008).
    ///
    /// ```
    /// use wslink_core::chunking::ChunkError;
    /// assert!(ChunkError::MessageTooLong { len: 1 << 33 }.is_size_limit());
    /// assert!(!ChunkError::FrameTooShort { len: 3 }.is_size_limit());
    /// ```
    pub fn is_size_limit(&self) -> bool {
        matches!(
            self,
            ChunkError::MessageTooLarge { .. }
                | ChunkError::TooManyPendingBytes { .. }
                | ChunkError::MessageTooLong { .. }
        )
    }

    /// The message id the error is about, if it is about one message.
    ///
    /// ```
    /// use wslink_core::chunking::ChunkError;
    /// let e = ChunkError::EmptyChunk { id: 9, offset: 0, total: 10 };
    /// assert_eq!(e.message_id(), Some(9));
    /// ```
    pub fn message_id(&self) -> Option<u32> {
        match *self {
            ChunkError::ZeroTotal { id, .. }
            | ChunkError::EmptyChunk { id, .. }
            | ChunkError::MessageTooLarge { id, .. }
            | ChunkError::TotalMismatch { id, .. }
            | ChunkError::PastEnd { id, .. }
            | ChunkError::DuplicateChunk { id, .. }
            | ChunkError::OverlappingChunk { id, .. }
            | ChunkError::TooManyPendingMessages { id, .. }
            | ChunkError::TooManyPendingBytes { id, .. } => Some(id),
            ChunkError::FrameTooShort { .. }
            | ChunkError::EmptyMessage
            | ChunkError::MessageTooLong { .. }
            | ChunkError::MissingReserve { .. } => None,
        }
    }
}

/// The 12-byte header at the start of every 2.x frame.
///
/// ```
/// use wslink_core::chunking::ChunkHeader;
/// let header = ChunkHeader { id: 0x0403_0201, offset: 8, total: 40 };
/// let mut frame = header.encode().to_vec();
/// frame.extend_from_slice(b"content!");
/// assert_eq!(&frame[..12], &[1, 2, 3, 4, 8, 0, 0, 0, 40, 0, 0, 0]);
/// assert_eq!(ChunkHeader::parse(&frame).unwrap(), (header, &b"content!"[..]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkHeader {
    /// The sender's id for the message this chunk belongs to.
    pub id: u32,
    /// Where the chunk's bytes go in the message.
    pub offset: u32,
    /// The whole message's size.
    pub total: u32,
}

impl ChunkHeader {
    /// The header as it goes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.id.to_le_bytes());
        out[4..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.total.to_le_bytes());
        out
    }

    /// Splits a frame into its header and the chunk's bytes.
    ///
    /// Only the length is checked here; whether the header is consistent is
    /// for [`Unchunker::push`] to judge.
    pub fn parse(frame: &[u8]) -> Result<(ChunkHeader, &[u8]), ChunkError> {
        let Some((head, content)) = frame.split_first_chunk::<HEADER_LEN>() else {
            return Err(ChunkError::FrameTooShort { len: frame.len() });
        };
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let header = ChunkHeader {
            id: word(0),
            offset: word(4),
            total: word(8),
        };
        Ok((header, content))
    }
}

/// Content bytes per frame for a given frame size limit, as wslink computes
/// it: a limit too small for the header still carries one byte per frame
/// rather than none, and 0 means "no limit".
fn content_per_frame(max_frame_size: usize, message_len: usize) -> usize {
    if max_frame_size == 0 {
        message_len
    } else {
        max_frame_size.saturating_sub(HEADER_LEN).max(1)
    }
}

fn check_len(len: usize) -> Result<(), ChunkError> {
    if len == 0 {
        return Err(ChunkError::EmptyMessage);
    }
    if u32::try_from(len).is_err() {
        return Err(ChunkError::MessageTooLong { len });
    }
    Ok(())
}

/// Cuts `message` into frames of at most `max_frame_size` bytes (0: one
/// frame), each a header for message `id` followed by a chunk.
///
/// Frames are built lazily, one allocation and one copy of their chunk each;
/// when the message is already in a buffer with room for the header in
/// front, [`chunk_reserved`] avoids the copy for single-frame messages.
/// A `max_frame_size` between 1 and 12 gives 13-byte frames (one byte of
/// content), as wslink does.
///
/// Fails on an empty message and on one longer than `u32::MAX` bytes.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::chunking::{chunk, ChunkHeader};
/// let frames: Vec<Bytes> = chunk(Bytes::from_static(b"hello world"), 7, 20).unwrap().collect();
/// assert_eq!(frames.len(), 2); // 8 + 3 bytes of content
/// let (header, content) = ChunkHeader::parse(&frames[1]).unwrap();
/// assert_eq!(header, ChunkHeader { id: 7, offset: 8, total: 11 });
/// assert_eq!(content, b"rld");
/// ```
pub fn chunk(message: Bytes, id: u32, max_frame_size: usize) -> Result<Chunks, ChunkError> {
    check_len(message.len())?;
    let step = content_per_frame(max_frame_size, message.len());
    Ok(Chunks {
        inner: Inner::Split {
            message,
            id,
            next: 0,
            step,
        },
    })
}

/// Like [`chunk`], for a message encoded into `buf` after [`HEADER_LEN`]
/// reserved leading bytes; the message is `buf[HEADER_LEN..]`.
///
/// Copy counts: when the message fits one frame, the header is written into
/// the reserve and the buffer frozen, so the frame *is* the buffer (no
/// allocation, no copy). Otherwise each frame is a fresh allocation holding
/// one copy of its chunk, exactly as with [`chunk`]. The first chunk could
/// have kept the buffer too, but that frame would then pin the whole
/// message's allocation for as long as it sits in an outbound queue, while
/// queue limits only see the frame's length.
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use wslink_core::chunking::{chunk_reserved, HEADER_LEN};
///
/// let mut buf = BytesMut::with_capacity(HEADER_LEN + 64);
/// buf.resize(HEADER_LEN, 0);
/// buf.put_slice(b"an encoded msgpack message"); // e.g. rmp_serde into buf.writer()
/// let start = buf.as_ptr();
/// let mut frames = chunk_reserved(buf, 1, 4096).unwrap();
/// assert_eq!(frames.len(), 1);
/// let frame = frames.next().unwrap();
/// assert_eq!(frame.as_ptr(), start); // same memory: no copy
/// assert_eq!(&frame[HEADER_LEN..], b"an encoded msgpack message");
/// ```
pub fn chunk_reserved(
    mut buf: BytesMut,
    id: u32,
    max_frame_size: usize,
) -> Result<Chunks, ChunkError> {
    let Some(len) = buf.len().checked_sub(HEADER_LEN) else {
        return Err(ChunkError::MissingReserve { len: buf.len() });
    };
    check_len(len)?;
    let step = content_per_frame(max_frame_size, len);
    if len <= step {
        let header = ChunkHeader {
            id,
            offset: 0,
            total: len as u32,
        };
        buf[..HEADER_LEN].copy_from_slice(&header.encode());
        return Ok(Chunks {
            inner: Inner::Ready(Some(buf.freeze())),
        });
    }
    Ok(Chunks {
        inner: Inner::Split {
            message: buf.freeze().slice(HEADER_LEN..),
            id,
            next: 0,
            step,
        },
    })
}

/// The frames of one message, from [`chunk`] or [`chunk_reserved`], in
/// offset order.
#[derive(Debug, Clone)]
pub struct Chunks {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    /// A frame built in place; yielded once.
    Ready(Option<Bytes>),
    /// Frames still to be copied out of `message`, from offset `next`.
    Split {
        message: Bytes,
        id: u32,
        next: usize,
        step: usize,
    },
}

impl fmt::Debug for Inner {
    // The message bytes would drown the interesting fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inner::Ready(frame) => f
                .debug_struct("Ready")
                .field("frame_len", &frame.as_ref().map(Bytes::len))
                .finish(),
            Inner::Split {
                message,
                id,
                next,
                step,
            } => f
                .debug_struct("Split")
                .field("id", id)
                .field("message_len", &message.len())
                .field("next", next)
                .field("step", step)
                .finish(),
        }
    }
}

impl Iterator for Chunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        match &mut self.inner {
            Inner::Ready(frame) => frame.take(),
            Inner::Split {
                message,
                id,
                next,
                step,
            } => {
                let total = message.len();
                if *next >= total {
                    return None;
                }
                let end = total.min(*next + *step);
                let header = ChunkHeader {
                    id: *id,
                    // Both fit: the length was checked against u32::MAX.
                    offset: *next as u32,
                    total: total as u32,
                };
                let mut frame = BytesMut::with_capacity(HEADER_LEN + end - *next);
                frame.put_slice(&header.encode());
                frame.put_slice(&message[*next..end]);
                *next = end;
                Some(frame.freeze())
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            Inner::Ready(frame) => usize::from(frame.is_some()),
            Inner::Split {
                message,
                next,
                step,
                ..
            } => (message.len() - *next).div_ceil(*step),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Chunks {}
impl FusedIterator for Chunks {}

/// Slices of shared payloads shorter than this are copied into their
/// frame's own buffer by [`chunk_segmented`]: a frame is never a long list
/// of tiny slices.
pub const MIN_SHARED_PART: usize = 4096;

/// Cuts a message encoded by [`msgpack::encode_segmented`] into frames,
/// exactly the frames [`chunk`] makes of the same bytes, each held as a few
/// slices ([`SegmentedFrame`]) so that shared payloads are never copied.
///
/// Copy counts: a shared payload is sliced (a reference count per frame),
/// never copied, except slices under [`MIN_SHARED_PART`] where a chunk
/// boundary cuts one. The copied bytes are not copied again when the
/// message fits one frame and was encoded with [`HEADER_LEN`] bytes of
/// reserve (the header is written there, as [`chunk_reserved`] does);
/// otherwise each frame gets one allocation holding its header and its
/// share of them. Frames keep the shared payloads alive until they are
/// dropped.
///
/// Fails on an empty message and on one longer than `u32::MAX` bytes.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::chunking::{chunk, chunk_segmented, HEADER_LEN};
/// use wslink_core::{msgpack, Value};
///
/// let payload = Bytes::from(vec![5u8; 300_000]);
/// let value = Value::map([("blob", Value::Bin(payload.clone()))]);
/// let message = msgpack::encode_segmented_with(&value, HEADER_LEN, 64 * 1024).unwrap();
/// let frames: Vec<_> = chunk_segmented(message, 9, 128 * 1024).unwrap().collect();
/// // The same frames as the copying path...
/// let copied: Vec<Bytes> = chunk(msgpack::encode(&value).unwrap(), 9, 128 * 1024).unwrap().collect();
/// assert_eq!(frames.len(), copied.len());
/// for (frame, expected) in frames.iter().zip(&copied) {
///     assert_eq!(frame.clone().into_bytes(), expected);
/// }
/// // ...with the payload sliced, not copied: the second frame's content is
/// // all payload, right where the first frame's ends.
/// let second = frames[1].parts();
/// assert_eq!(second.len(), 2); // its header, then the slice
/// assert!(payload.as_ptr_range().contains(&second[1].as_ptr()));
/// ```
pub fn chunk_segmented(
    message: Segmented,
    id: u32,
    max_frame_size: usize,
) -> Result<SegmentedChunks, ChunkError> {
    let total = message.len();
    check_len(total)?;
    let step = content_per_frame(max_frame_size, total);
    let reserve = message.reserve();
    let (mut buf, shared) = message.into_parts();
    if total <= step
        && reserve >= HEADER_LEN
        && shared.iter().all(|(_, b)| b.len() >= MIN_SHARED_PART)
    {
        // One frame: its header goes in the reserve, and the frame is the
        // buffer with the shared payloads in between.
        let start = reserve - HEADER_LEN;
        let header = ChunkHeader {
            id,
            offset: 0,
            total: total as u32,
        };
        buf[start..reserve].copy_from_slice(&header.encode());
        let mut buf = buf.freeze();
        let frame = if shared.is_empty() {
            // Not `slice`: cloning a frozen buffer allocates its shared
            // header, which a small reply would pay for nothing.
            buf.advance(start);
            SegmentedFrame::from(buf)
        } else {
            let parts: Vec<Bytes> = msgpack::pieces(start, buf.len(), &shared)
                .map(|piece| match piece {
                    Piece::Copied(range) => buf.slice(range),
                    Piece::Shared(bytes) => bytes.clone(),
                })
                .collect();
            SegmentedFrame::from_parts(parts, HEADER_LEN + total)
        };
        return Ok(SegmentedChunks {
            inner: SegmentedInner::Ready(Some(frame)),
        });
    }
    Ok(SegmentedChunks {
        inner: SegmentedInner::Split(Box::new(Cutter {
            buf: buf.freeze(),
            shared,
            id,
            total,
            step,
            next: 0,
            pos: reserve,
            index: 0,
            within: 0,
        })),
    })
}

/// One 2.x frame held as slices, from [`chunk_segmented`]: its bytes are
/// the slices' concatenation, starting with the 12-byte chunk header. Made
/// for vectored writes; [`SegmentedFrame::into_bytes`] gives one buffer
/// for anything else.
#[derive(Clone)]
pub struct SegmentedFrame {
    parts: Parts,
    len: usize,
}

#[derive(Clone)]
enum Parts {
    /// No allocation for the list when the frame is one buffer (every
    /// message without large binary).
    One(Bytes),
    Many(Box<[Bytes]>),
}

impl SegmentedFrame {
    fn from_parts(parts: Vec<Bytes>, len: usize) -> Self {
        debug_assert_eq!(parts.iter().map(Bytes::len).sum::<usize>(), len);
        match <[Bytes; 1]>::try_from(parts) {
            Ok([one]) => SegmentedFrame::from(one),
            Err(parts) => SegmentedFrame {
                parts: Parts::Many(parts.into_boxed_slice()),
                len,
            },
        }
    }

    /// The frame's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty frame (never made by [`chunk_segmented`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slices, in order; none is empty.
    pub fn parts(&self) -> &[Bytes] {
        match &self.parts {
            Parts::One(bytes) => std::slice::from_ref(bytes),
            Parts::Many(parts) => parts,
        }
    }

    /// The frame as one buffer: no copy when it is one slice, a copy of the
    /// slices otherwise.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wslink_core::chunking::SegmentedFrame;
    /// let frame = SegmentedFrame::from(Bytes::from_static(b"frame"));
    /// assert_eq!(frame.parts().len(), 1);
    /// assert_eq!(frame.into_bytes(), Bytes::from_static(b"frame"));
    /// ```
    pub fn into_bytes(self) -> Bytes {
        match self.parts {
            Parts::One(bytes) => bytes,
            Parts::Many(parts) => {
                let mut out = BytesMut::with_capacity(self.len);
                for part in parts.iter() {
                    out.put_slice(part);
                }
                out.freeze()
            }
        }
    }
}

impl From<Bytes> for SegmentedFrame {
    /// A frame that is one buffer.
    fn from(bytes: Bytes) -> Self {
        SegmentedFrame {
            len: bytes.len(),
            parts: Parts::One(bytes),
        }
    }
}

impl fmt::Debug for SegmentedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentedFrame")
            .field("len", &self.len)
            .field(
                "parts",
                &self.parts().iter().map(Bytes::len).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The frames of one message, from [`chunk_segmented`], in offset order.
#[derive(Debug, Clone)]
pub struct SegmentedChunks {
    inner: SegmentedInner,
}

#[derive(Debug, Clone)]
enum SegmentedInner {
    /// A frame built in place; yielded once.
    Ready(Option<SegmentedFrame>),
    /// Frames still to be cut.
    Split(Box<Cutter>),
}

/// Cuts frames off a segmented message, front to back.
#[derive(Clone)]
struct Cutter {
    /// Reserve, then the copied bytes.
    buf: Bytes,
    /// Shared payloads, each going right before `buf[at..]`.
    shared: Vec<(usize, Bytes)>,
    id: u32,
    total: usize,
    step: usize,
    /// Message offset of the next frame's content.
    next: usize,
    /// Where the next content is: `buf[pos..]`, unless `shared[index]`
    /// goes at `pos`, in which case it is that payload from `within`.
    pos: usize,
    index: usize,
    within: usize,
}

/// A stretch of one frame's content.
enum Span {
    Copied(std::ops::Range<usize>),
    Shared(Bytes),
}

impl Cutter {
    /// The next `want` bytes of the message, advancing the cursor.
    fn take(&mut self, mut want: usize, spans: &mut Vec<Span>) {
        while want > 0 {
            match self.shared.get(self.index) {
                Some((at, bytes)) if *at == self.pos => {
                    let n = want.min(bytes.len() - self.within);
                    if n > 0 {
                        spans.push(Span::Shared(bytes.slice(self.within..self.within + n)));
                    }
                    self.within += n;
                    want -= n;
                    if self.within == bytes.len() {
                        self.index += 1;
                        self.within = 0;
                    }
                }
                next => {
                    let end = next.map_or(self.buf.len(), |(at, _)| *at);
                    let n = want.min(end - self.pos);
                    if n == 0 {
                        debug_assert!(false, "segmented message shorter than its length");
                        return;
                    }
                    spans.push(Span::Copied(self.pos..self.pos + n));
                    self.pos += n;
                    want -= n;
                }
            }
        }
    }

    fn next_frame(&mut self) -> Option<SegmentedFrame> {
        if self.next >= self.total {
            return None;
        }
        let end = self.total.min(self.next + self.step);
        let header = ChunkHeader {
            id: self.id,
            // Both fit: the length was checked against u32::MAX.
            offset: self.next as u32,
            total: self.total as u32,
        };
        let mut spans = Vec::new();
        self.take(end - self.next, &mut spans);
        let is_copied = |span: &Span| match span {
            Span::Copied(_) => true,
            Span::Shared(bytes) => bytes.len() < MIN_SHARED_PART,
        };
        let copied: usize = spans
            .iter()
            .filter(|s| is_copied(s))
            .map(|s| match s {
                Span::Copied(range) => range.len(),
                Span::Shared(bytes) => bytes.len(),
            })
            .sum();
        // The header and the copied stretches in one allocation; runs of
        // it between shared slices become parts.
        let mut own = BytesMut::with_capacity(HEADER_LEN + copied);
        own.put_slice(&header.encode());
        let mut layout: Vec<Span> = Vec::new();
        let mut run = 0;
        for span in spans {
            match span {
                Span::Copied(range) => own.put_slice(&self.buf[range]),
                Span::Shared(bytes) if bytes.len() < MIN_SHARED_PART => own.put_slice(&bytes),
                Span::Shared(bytes) => {
                    if own.len() > run {
                        layout.push(Span::Copied(run..own.len()));
                    }
                    run = own.len();
                    layout.push(Span::Shared(bytes));
                }
            }
        }
        if own.len() > run {
            layout.push(Span::Copied(run..own.len()));
        }
        // Now `Copied` ranges are of `own`, not of the message's buffer.
        let own = own.freeze();
        let parts = layout
            .into_iter()
            .map(|part| match part {
                Span::Copied(range) => own.slice(range),
                Span::Shared(bytes) => bytes,
            })
            .collect();
        let len = HEADER_LEN + end - self.next;
        self.next = end;
        Some(SegmentedFrame::from_parts(parts, len))
    }
}

impl fmt::Debug for Cutter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cutter")
            .field("id", &self.id)
            .field("total", &self.total)
            .field("next", &self.next)
            .field("step", &self.step)
            .field("shared", &self.shared.len())
            .finish()
    }
}

impl Iterator for SegmentedChunks {
    type Item = SegmentedFrame;

    fn next(&mut self) -> Option<SegmentedFrame> {
        match &mut self.inner {
            SegmentedInner::Ready(frame) => frame.take(),
            SegmentedInner::Split(cutter) => cutter.next_frame(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            SegmentedInner::Ready(frame) => usize::from(frame.is_some()),
            SegmentedInner::Split(cutter) => (cutter.total - cutter.next).div_ceil(cutter.step),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for SegmentedChunks {}
impl FusedIterator for SegmentedChunks {}

/// Limits an [`Unchunker`] enforces; see the `DEFAULT_*` constants for the
/// defaults and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnchunkLimits {
    /// Largest declared message size before [`Unchunker::set_authenticated`]
    /// (wslink: 512).
    pub pre_auth_max_message_size: usize,
    /// Largest declared message size after authentication.
    pub max_message_size: usize,
    /// Partial messages held at once.
    pub max_pending_messages: usize,
    /// Bytes partial messages may hold, as [`Unchunker::pending_bytes`]
    /// counts them. A message sent in order needs its size less its last
    /// chunk plus [`SEGMENT_OVERHEAD`] (the last chunk is let through
    /// whatever the budget, as it completes the message); chunks out of
    /// order cost [`SEGMENT_OVERHEAD`] more per run. So keep this at least
    /// `max_message_size` to let the largest messages through.
    pub max_pending_bytes: usize,
}

impl Default for UnchunkLimits {
    fn default() -> Self {
        UnchunkLimits {
            pre_auth_max_message_size: DEFAULT_PRE_AUTH_MAX_MESSAGE_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_pending_messages: DEFAULT_MAX_PENDING_MESSAGES,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

/// Reassembles messages from one connection's frames.
///
/// Memory follows what arrived, never what a header declares: chunks are
/// copied into runs of contiguous bytes as they come, and a chunk that
/// continues a run is appended to it (its buffer grows by doubling, capped
/// at what the run can still hold). So a message whose chunks arrive in
/// order, as every wslink sender sends them, costs one copy of each byte
/// and is handed out without another (plus the occasional reallocation
/// while the run grows); chunks that arrived out of order are copied once
/// more when the message is complete. A message that arrives as one frame
/// is returned as a slice of that frame, without any copy.
///
/// Chunks are copied rather than kept as slices of their frames because a
/// WebSocket library may hand out frames that share one large read buffer
/// (tungstenite does): a kept 13-byte frame would pin that whole buffer
/// while being counted as one byte, and limits would mean nothing.
///
/// Every error is final for the message it names: its partial state is
/// dropped (releasing its memory) and other messages are left as they
/// were. Errors mean the peer is broken or hostile, so a server should
/// close the connection on any of them rather than carry on.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::chunking::{ChunkHeader, UnchunkLimits, Unchunker};
///
/// fn frame(id: u32, offset: u32, total: u32, content: &[u8]) -> Bytes {
///     let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
///     f.extend_from_slice(content);
///     Bytes::from(f)
/// }
///
/// let mut unchunker = Unchunker::new(UnchunkLimits::default());
/// // Out of order, and interleaved with another message.
/// assert_eq!(unchunker.push(frame(1, 3, 6, b"def")).unwrap(), None);
/// assert_eq!(unchunker.push(frame(2, 0, 2, b"xy")).unwrap(), Some(Bytes::from_static(b"xy")));
/// assert_eq!(unchunker.pending_messages(), 1);
/// assert_eq!(unchunker.push(frame(1, 0, 6, b"abc")).unwrap(), Some(Bytes::from_static(b"abcdef")));
/// assert_eq!(unchunker.pending_bytes(), 0);
///
/// // Before authentication, the declared total is capped at 512 bytes.
/// assert!(unchunker.push(frame(3, 0, 100_000, b"abc")).unwrap_err().is_size_limit());
/// ```
#[derive(Debug)]
pub struct Unchunker {
    limits: UnchunkLimits,
    authenticated: bool,
    pending: HashMap<u32, Partial>,
    pending_bytes: usize,
}

/// One message's bytes received so far.
struct Partial {
    total: u32,
    /// Content bytes received; the message is complete when this reaches
    /// `total`, since chunks never overlap or run past the end.
    received: u64,
    /// What this message adds to [`Unchunker::pending_bytes`].
    held: usize,
    /// Runs of contiguous bytes, keyed by offset; runs never overlap, and
    /// adjacent runs are not merged (merging could copy the same bytes
    /// again and again when chunks arrive back to front).
    runs: BTreeMap<u32, Vec<u8>>,
}

impl fmt::Debug for Partial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Partial")
            .field("total", &self.total)
            .field("received", &self.received)
            .field("held", &self.held)
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl Partial {
    /// Concatenates the runs; they cover `0..total` exactly.
    fn assemble(self) -> Bytes {
        let total = self.total as usize;
        let mut runs = self.runs.into_values();
        let mut out = runs.next().unwrap_or_default();
        if out.len() < total {
            // Grows the run at offset 0 in place where the allocator can,
            // so only the out-of-order runs are copied again.
            out.reserve_exact(total - out.len());
            for run in runs {
                out.extend_from_slice(&run);
            }
        }
        debug_assert_eq!(out.len(), total);
        Bytes::from(out)
    }
}

impl Unchunker {
    /// An unchunker in the pre-authentication state.
    pub fn new(limits: UnchunkLimits) -> Self {
        Unchunker {
            limits,
            authenticated: false,
            pending: HashMap::new(),
            pending_bytes: 0,
        }
    }

    /// Switches between the pre-authentication size limit and
    /// [`UnchunkLimits::max_message_size`]. The limit applies to messages
    /// whose first chunk arrives afterwards.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// Whether the post-authentication limits apply.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The limits given to [`Unchunker::new`].
    pub fn limits(&self) -> &UnchunkLimits {
        &self.limits
    }

    /// Messages with some but not all chunks received.
    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }

    /// Memory held for partial messages: the capacity of the buffers that
    /// hold their bytes plus [`SEGMENT_OVERHEAD`] per run of contiguous
    /// bytes. Never more than [`UnchunkLimits::max_pending_bytes`].
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Drops every partial message.
    pub fn clear(&mut self) {
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// Takes in one binary frame; returns the message it completes, if any.
    ///
    /// On an error the message it names (see [`ChunkError::message_id`]) is
    /// dropped; the caller should close the connection.
    pub fn push(&mut self, frame: Bytes) -> Result<Option<Bytes>, ChunkError> {
        let result = self.accept(frame);
        if let Err(e) = &result {
            if let Some(id) = e.message_id() {
                self.discard(id);
            }
        }
        result
    }

    fn discard(&mut self, id: u32) {
        if let Some(partial) = self.pending.remove(&id) {
            self.pending_bytes -= partial.held;
        }
    }

    fn size_limit(&self) -> usize {
        if self.authenticated {
            self.limits.max_message_size
        } else {
            self.limits.pre_auth_max_message_size
        }
    }

    fn accept(&mut self, frame: Bytes) -> Result<Option<Bytes>, ChunkError> {
        let (ChunkHeader { id, offset, total }, content) = ChunkHeader::parse(&frame)?;
        let len = content.len();
        if total == 0 {
            return Err(ChunkError::ZeroTotal { id, offset, len });
        }
        if len == 0 {
            return Err(ChunkError::EmptyChunk { id, offset, total });
        }
        let known = match self.pending.get(&id) {
            Some(partial) if partial.total != total => {
                return Err(ChunkError::TotalMismatch {
                    id,
                    offset,
                    total,
                    expected: partial.total,
                });
            }
            Some(_) => true,
            None => {
                // Checked at the first chunk only: later ones must declare
                // the same total, and a limit lowered meanwhile should not
                // break a message already under way.
                let limit = self.size_limit();
                if u64::from(total) > limit as u64 {
                    return Err(ChunkError::MessageTooLarge {
                        id,
                        total,
                        limit,
                        authenticated: self.authenticated,
                    });
                }
                false
            }
        };
        // In u64 so that a huge offset cannot wrap around to look valid.
        if u64::from(offset) + len as u64 > u64::from(total) {
            return Err(ChunkError::PastEnd {
                id,
                offset,
                len,
                total,
            });
        }
        if !known {
            if offset == 0 && len == total as usize {
                return Ok(Some(frame.slice(HEADER_LEN..)));
            }
            if self.pending.len() >= self.limits.max_pending_messages {
                return Err(ChunkError::TooManyPendingMessages {
                    id,
                    limit: self.limits.max_pending_messages,
                });
            }
        }
        self.store(id, offset, total, content)
    }

    /// Files a validated chunk (non-empty, within `0..total`, `total`
    /// consistent) under its message.
    fn store(
        &mut self,
        id: u32,
        offset: u32,
        total: u32,
        content: &[u8],
    ) -> Result<Option<Bytes>, ChunkError> {
        let len = content.len();
        // No wrap: offset + len <= total was checked.
        let end = offset + len as u32;
        let partial = self.pending.entry(id).or_insert_with(|| Partial {
            total,
            received: 0,
            held: 0,
            runs: BTreeMap::new(),
        });
        let completes = partial.received + len as u64 == u64::from(total);

        // The run after the chunk; offset < u32::MAX since len >= 1.
        let next = partial
            .runs
            .range(offset + 1..)
            .next()
            .map(|(&start, run)| (start, run.len()));
        if let Some((start, held_len)) = next {
            if start < end {
                return Err(ChunkError::OverlappingChunk {
                    id,
                    offset,
                    len,
                    held_offset: start,
                    held_len,
                });
            }
        }
        // A run can never grow past the next run or the message's end.
        let bound = next.map_or(total, |(start, _)| start);

        // Appended to the run it continues, if any: the bytes it added.
        let prev = partial.runs.range_mut(..=offset).next_back();
        let appended = match prev {
            Some((&start, run)) => {
                let run_end = start as u64 + run.len() as u64;
                if u64::from(offset) < run_end {
                    return Err(if u64::from(end) <= run_end {
                        ChunkError::DuplicateChunk { id, offset, len }
                    } else {
                        ChunkError::OverlappingChunk {
                            id,
                            offset,
                            len,
                            held_offset: start,
                            held_len: run.len(),
                        }
                    });
                }
                if u64::from(offset) == run_end {
                    let need = run.len() + len;
                    let cap = run.capacity();
                    if need > cap {
                        let room = (bound - start) as usize;
                        // The last chunk is let through whatever the
                        // budget: the message leaves the pending set at
                        // once, and refusing it would make a message of
                        // exactly max_pending_bytes impossible.
                        let available = (!completes).then(|| {
                            self.limits
                                .max_pending_bytes
                                .saturating_sub(self.pending_bytes)
                        });
                        let new_cap = grow_to(cap, need, room, available).map_err(|least| {
                            ChunkError::TooManyPendingBytes {
                                id,
                                offset,
                                len,
                                needed: self.pending_bytes.saturating_add(least - cap),
                                limit: self.limits.max_pending_bytes,
                            }
                        })?;
                        run.reserve_exact(new_cap - run.len());
                    }
                    run.extend_from_slice(content);
                    Some(run.capacity() - cap)
                } else {
                    None
                }
            }
            None => None,
        };
        let extra = if let Some(extra) = appended {
            extra
        } else {
            let cost = len + SEGMENT_OVERHEAD;
            // As above, the last chunk passes whatever the budget.
            if !completes && self.pending_bytes.saturating_add(cost) > self.limits.max_pending_bytes
            {
                return Err(ChunkError::TooManyPendingBytes {
                    id,
                    offset,
                    len,
                    needed: self.pending_bytes.saturating_add(cost),
                    limit: self.limits.max_pending_bytes,
                });
            }
            partial.runs.insert(offset, content.to_vec());
            cost
        };
        partial.received += len as u64;
        partial.held += extra;
        self.pending_bytes += extra;

        if !completes {
            return Ok(None);
        }
        let partial = self
            .pending
            .remove(&id)
            .expect("the message was just stored");
        self.pending_bytes -= partial.held;
        Ok(Some(partial.assemble()))
    }
}

/// The capacity to give a run that holds `cap` bytes of buffer and must now
/// hold `need`, never more than `room` (all it can ever hold), within
/// `available` more bytes of budget (`None`: no budget applies). On refusal,
/// returns the least capacity that would have been acceptable.
fn grow_to(cap: usize, need: usize, room: usize, available: Option<usize>) -> Result<usize, usize> {
    // Doubling keeps reallocation copies linear in the message size.
    let want = need.max(cap.saturating_mul(2)).min(room);
    let Some(available) = available else {
        return Ok(want);
    };
    let afford = cap.saturating_add(available);
    // When the budget cannot pay for doubling, take all it allows, once.
    // Growing by slivers instead would reallocate (and maybe copy) a large
    // buffer for every small chunk, so a step under an eighth of the
    // buffer counts as out of budget.
    let least = need.max(want.min(cap + cap / 8));
    if afford < least {
        Err(least)
    } else {
        Ok(want.min(afford))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: u32, offset: u32, total: u32, content: &[u8]) -> Bytes {
        let mut f = ChunkHeader { id, offset, total }.encode().to_vec();
        f.extend_from_slice(content);
        Bytes::from(f)
    }

    fn authed(limits: UnchunkLimits) -> Unchunker {
        let mut u = Unchunker::new(limits);
        u.set_authenticated(true);
        u
    }

    fn message(len: usize) -> Bytes {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn reserved(message: &[u8]) -> BytesMut {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + message.len());
        buf.resize(HEADER_LEN, 0);
        buf.put_slice(message);
        buf
    }

    #[test]
    fn header_round_trip() {
        let h = ChunkHeader {
            id: 0xdead_beef,
            offset: 0x0102_0304,
            total: u32::MAX,
        };
        let bytes = h.encode();
        assert_eq!(
            bytes,
            [0xef, 0xbe, 0xad, 0xde, 4, 3, 2, 1, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(ChunkHeader::parse(&bytes).unwrap(), (h, &[][..]));
        assert_eq!(
            ChunkHeader::parse(&bytes[..11]),
            Err(ChunkError::FrameTooShort { len: 11 })
        );
    }

    #[test]
    fn chunk_sizes_follow_wslink() {
        let msg = message(100);
        // 0: one frame whatever the size.
        let frames: Vec<_> = chunk(msg.clone(), 1, 0).unwrap().collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].len(), 112);
        // Limits too small for the header still move one byte per frame.
        for max in [1, 12, 13] {
            let frames = chunk(msg.clone(), 1, max).unwrap();
            assert_eq!(frames.len(), 100);
            assert!(frames.into_iter().all(|f| f.len() == 13));
        }
        let mut frames = chunk(msg.clone(), 5, 50).unwrap();
        assert_eq!(frames.len(), 3); // 38 + 38 + 24
        let mut joined = Vec::new();
        let mut offsets = Vec::new();
        for f in frames.by_ref() {
            let (h, content) = ChunkHeader::parse(&f).unwrap();
            assert_eq!((h.id, h.total), (5, 100));
            offsets.push(h.offset);
            joined.extend_from_slice(content);
        }
        assert_eq!(offsets, [0, 38, 76]);
        assert_eq!(joined, msg);
        assert_eq!(frames.len(), 0);
        assert_eq!(frames.next(), None);
    }

    #[test]
    fn chunk_rejects_empty() {
        assert_eq!(
            chunk(Bytes::new(), 1, 0).unwrap_err(),
            ChunkError::EmptyMessage
        );
        assert_eq!(
            chunk_reserved(reserved(b""), 1, 0).unwrap_err(),
            ChunkError::EmptyMessage
        );
        assert_eq!(
            chunk_reserved(BytesMut::from(&b"short"[..]), 1, 0).unwrap_err(),
            ChunkError::MissingReserve { len: 5 }
        );
        // Too long for a u32 total: only the length is looked at, and
        // check_len is what both entry points use.
        assert_eq!(
            check_len(u32::MAX as usize + 1),
            Err(ChunkError::MessageTooLong {
                len: u32::MAX as usize + 1
            })
        );
        assert_eq!(check_len(u32::MAX as usize), Ok(()));
    }

    #[test]
    fn chunk_reserved_single_frame_is_zero_copy() {
        let buf = reserved(b"payload");
        let start = buf.as_ptr();
        let frames: Vec<_> = chunk_reserved(buf, 9, 19).unwrap().collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].as_ptr(), start);
        assert_eq!(
            ChunkHeader::parse(&frames[0]).unwrap(),
            (
                ChunkHeader {
                    id: 9,
                    offset: 0,
                    total: 7
                },
                &b"payload"[..]
            )
        );
    }

    #[test]
    fn chunk_reserved_matches_chunk_when_split() {
        let msg = message(1000);
        for max in [0, 1, 13, 100, 1011, 1012, 1013, 5000] {
            let a: Vec<_> = chunk(msg.clone(), 3, max).unwrap().collect();
            let b: Vec<_> = chunk_reserved(reserved(&msg), 3, max).unwrap().collect();
            assert_eq!(a, b, "max_frame_size {max}");
        }
    }

    #[test]
    fn single_chunk_message_is_a_slice_of_its_frame() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        let f = frame(1, 0, 5, b"hello");
        let out = u.push(f.clone()).unwrap().unwrap();
        assert_eq!(out, &b"hello"[..]);
        assert_eq!(out.as_ptr(), f[HEADER_LEN..].as_ptr());
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    #[test]
    fn in_order_chunks_assemble_without_a_second_copy() {
        let msg = message(10_000);
        let mut u = authed(UnchunkLimits::default());
        let frames: Vec<_> = chunk(msg.clone(), 4, 1000).unwrap().collect();
        let n = frames.len();
        for (i, f) in frames.into_iter().enumerate() {
            let out = u.push(f).unwrap();
            if i + 1 < n {
                assert_eq!(out, None);
                assert_eq!(u.pending(4).runs.len(), 1);
            } else {
                assert_eq!(out, Some(msg.clone()));
            }
        }
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    #[test]
    fn completed_run_is_handed_out_without_copy() {
        // Four 25-byte chunks: the run grows 25 -> 50 -> 100, so the last
        // chunk fits the buffer and the message is that very buffer.
        let msg = message(100);
        let mut u = Unchunker::new(UnchunkLimits::default());
        let mut frames = chunk(msg.clone(), 4, HEADER_LEN + 25).unwrap();
        for f in frames.by_ref().take(3) {
            assert_eq!(u.push(f).unwrap(), None);
        }
        let run = u.pending(4).runs[&0].as_ptr();
        let out = u.push(frames.next().unwrap()).unwrap().unwrap();
        assert_eq!(out, msg);
        assert_eq!(out.as_ptr(), run);
    }

    #[test]
    fn any_order_and_interleaving() {
        let a = message(100);
        let b = message(37);
        let mut fa: Vec<_> = chunk(a.clone(), 1, 23).unwrap().collect();
        let fb: Vec<_> = chunk(b.clone(), 2, 20).unwrap().collect();
        fa.reverse();
        let mut u = Unchunker::new(UnchunkLimits::default());
        let mut done = Vec::new();
        let mut ib = fb.into_iter();
        for f in fa {
            if let Some(m) = u.push(f).unwrap() {
                done.push(m);
            }
            if let Some(f) = ib.next() {
                if let Some(m) = u.push(f).unwrap() {
                    done.push(m);
                }
            }
        }
        assert_eq!(done, [b, a]);
        assert_eq!(u.pending_bytes(), 0);
    }

    #[test]
    fn gap_filled_between_two_runs() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        assert_eq!(u.push(frame(1, 0, 9, b"abc")).unwrap(), None);
        assert_eq!(u.push(frame(1, 6, 9, b"ghi")).unwrap(), None);
        assert_eq!(
            u.push(frame(1, 3, 9, b"def")).unwrap().unwrap(),
            &b"abcdefghi"[..]
        );
    }

    #[test]
    fn pending_bytes_counts_capacity_and_overhead() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 0, 100, &[1; 10])).unwrap();
        assert_eq!(u.pending_bytes(), 10 + SEGMENT_OVERHEAD);
        // Appending doubles the run's buffer.
        u.push(frame(1, 10, 100, &[1; 5])).unwrap();
        assert_eq!(u.pending_bytes(), 20 + SEGMENT_OVERHEAD);
        // A separate run pays its own overhead.
        u.push(frame(1, 50, 100, &[1; 5])).unwrap();
        assert_eq!(u.pending_bytes(), 25 + 2 * SEGMENT_OVERHEAD);
        // Growth never goes past the next run.
        u.push(frame(1, 15, 100, &[1; 20])).unwrap();
        assert_eq!(u.pending(1).runs[&0].capacity(), 40);
        u.push(frame(1, 35, 100, &[1; 10])).unwrap();
        assert_eq!(u.pending(1).runs[&0].capacity(), 50);
        assert_eq!(u.pending_bytes(), 55 + 2 * SEGMENT_OVERHEAD);
        u.push(frame(2, 0, 10, &[1; 5])).unwrap();
        assert_eq!(u.pending_messages(), 2);
        u.clear();
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    #[test]
    fn error_frame_too_short() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 0, 10, b"abc")).unwrap();
        let e = u.push(Bytes::from_static(&[0; 11])).unwrap_err();
        assert_eq!(e, ChunkError::FrameTooShort { len: 11 });
        assert_eq!(e.message_id(), None);
        // Not about a message: nothing dropped.
        assert_eq!(u.pending_messages(), 1);
    }

    #[test]
    fn error_zero_total() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        assert_eq!(
            u.push(frame(1, 0, 0, b"")).unwrap_err(),
            ChunkError::ZeroTotal {
                id: 1,
                offset: 0,
                len: 0
            }
        );
        assert_eq!(
            u.push(frame(1, 4, 0, b"ab")).unwrap_err(),
            ChunkError::ZeroTotal {
                id: 1,
                offset: 4,
                len: 2
            }
        );
    }

    #[test]
    fn error_empty_chunk() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 0, 10, b"abc")).unwrap();
        assert_eq!(
            u.push(frame(1, 3, 10, b"")).unwrap_err(),
            ChunkError::EmptyChunk {
                id: 1,
                offset: 3,
                total: 10
            }
        );
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    #[test]
    fn error_message_too_large_before_and_after_auth() {
        let limits = UnchunkLimits {
            pre_auth_max_message_size: 10,
            max_message_size: 20,
            ..Default::default()
        };
        let mut u = Unchunker::new(limits);
        assert_eq!(u.push(frame(1, 0, 10, b"a")).unwrap(), None);
        let e = u.push(frame(2, 0, 11, b"a")).unwrap_err();
        assert_eq!(
            e,
            ChunkError::MessageTooLarge {
                id: 2,
                total: 11,
                limit: 10,
                authenticated: false
            }
        );
        assert!(e.is_size_limit());
        assert!(e.to_string().contains("before authentication"));
        u.set_authenticated(true);
        assert!(u.is_authenticated());
        assert_eq!(u.push(frame(2, 0, 20, b"a")).unwrap(), None);
        assert_eq!(
            u.push(frame(3, 0, 21, b"a")).unwrap_err(),
            ChunkError::MessageTooLarge {
                id: 3,
                total: 21,
                limit: 20,
                authenticated: true
            }
        );
        // The limit is on the declared total, not on what arrived: even a
        // one-frame message is refused.
        assert!(u.push(frame(4, 0, 21, &[0; 21])).is_err());
        assert_eq!(u.pending_messages(), 2);
    }

    #[test]
    fn error_total_mismatch() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 0, 10, b"abc")).unwrap();
        u.push(frame(2, 0, 10, b"abc")).unwrap();
        assert_eq!(
            u.push(frame(1, 3, 11, b"def")).unwrap_err(),
            ChunkError::TotalMismatch {
                id: 1,
                offset: 3,
                total: 11,
                expected: 10
            }
        );
        // Message 1 is gone, message 2 untouched.
        assert_eq!(u.pending_messages(), 1);
        assert_eq!(u.pending_bytes(), 3 + SEGMENT_OVERHEAD);
        assert_eq!(
            u.push(frame(2, 3, 10, b"defghij")).unwrap().unwrap(),
            &b"abcdefghij"[..]
        );
    }

    #[test]
    fn error_past_end_without_wrapping() {
        let mut u = authed(UnchunkLimits::default());
        assert_eq!(
            u.push(frame(1, 8, 10, b"abc")).unwrap_err(),
            ChunkError::PastEnd {
                id: 1,
                offset: 8,
                len: 3,
                total: 10
            }
        );
        // offset + len wraps to 1 in u32 arithmetic.
        let e = u.push(frame(1, u32::MAX, 10, b"ab")).unwrap_err();
        assert_eq!(
            e,
            ChunkError::PastEnd {
                id: 1,
                offset: u32::MAX,
                len: 2,
                total: 10
            }
        );
        u.push(frame(2, 0, 10, b"abc")).unwrap();
        assert!(matches!(
            u.push(frame(2, 9, 10, b"jk")).unwrap_err(),
            ChunkError::PastEnd { id: 2, .. }
        ));
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
    }

    #[test]
    fn error_duplicate_chunk() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 0, 10, b"abc")).unwrap();
        u.push(frame(1, 3, 10, b"def")).unwrap();
        // Within what arrived (the two chunks were merged into one run).
        assert_eq!(
            u.push(frame(1, 2, 10, b"cd")).unwrap_err(),
            ChunkError::DuplicateChunk {
                id: 1,
                offset: 2,
                len: 2
            }
        );
        assert_eq!((u.pending_messages(), u.pending_bytes()), (0, 0));
        u.push(frame(1, 5, 10, b"fg")).unwrap();
        assert_eq!(
            u.push(frame(1, 5, 10, b"fg")).unwrap_err(),
            ChunkError::DuplicateChunk {
                id: 1,
                offset: 5,
                len: 2
            }
        );
    }

    #[test]
    fn error_overlapping_chunk() {
        let mut u = Unchunker::new(UnchunkLimits::default());
        u.push(frame(1, 4, 10, b"ef")).unwrap();
        // Runs into the run at 4 from before.
        assert_eq!(
            u.push(frame(1, 2, 10, b"cde")).unwrap_err(),
            ChunkError::OverlappingChunk {
                id: 1,
                offset: 2,
                len: 3,
                held_offset: 4,
                held_len: 2
            }
        );
        assert_eq!(u.pending_messages(), 0);
        u.push(frame(1, 4, 10, b"ef")).unwrap();
        // Starts inside it and runs beyond.
        assert_eq!(
            u.push(frame(1, 5, 10, b"fgh")).unwrap_err(),
            ChunkError::OverlappingChunk {
                id: 1,
                offset: 5,
                len: 3,
                held_offset: 4,
                held_len: 2
            }
        );
        // Covers a run entirely.
        u.push(frame(1, 4, 10, b"ef")).unwrap();
        assert!(matches!(
            u.push(frame(1, 0, 10, b"abcdefgh")).unwrap_err(),
            ChunkError::OverlappingChunk { held_offset: 4, .. }
        ));
        // A resent whole message on top of a partial one.
        u.push(frame(1, 4, 10, b"ef")).unwrap();
        assert!(matches!(
            u.push(frame(1, 0, 10, b"abcdefghij")).unwrap_err(),
            ChunkError::OverlappingChunk { .. }
        ));
    }

    #[test]
    fn error_too_many_pending_messages() {
        let limits = UnchunkLimits {
            max_pending_messages: 2,
            ..Default::default()
        };
        let mut u = Unchunker::new(limits);
        u.push(frame(1, 0, 10, b"a")).unwrap();
        u.push(frame(2, 0, 10, b"a")).unwrap();
        assert_eq!(
            u.push(frame(3, 0, 10, b"a")).unwrap_err(),
            ChunkError::TooManyPendingMessages { id: 3, limit: 2 }
        );
        // Chunks of known messages and one-frame messages still pass.
        assert_eq!(u.pending_messages(), 2);
        assert_eq!(u.push(frame(1, 1, 10, b"b")).unwrap(), None);
        assert!(u.push(frame(4, 0, 1, b"z")).unwrap().is_some());
    }

    #[test]
    fn error_too_many_pending_bytes() {
        let limits = UnchunkLimits {
            max_pending_bytes: 2 * SEGMENT_OVERHEAD + 20,
            ..Default::default()
        };
        let mut u = authed(limits);
        u.push(frame(1, 0, 100, &[0; 10])).unwrap();
        u.push(frame(2, 50, 100, &[0; 8])).unwrap();
        assert_eq!(u.pending_bytes(), 2 * SEGMENT_OVERHEAD + 18);
        // A new run would need its overhead too.
        let e = u.push(frame(1, 40, 100, &[0; 2])).unwrap_err();
        assert_eq!(
            e,
            ChunkError::TooManyPendingBytes {
                id: 1,
                offset: 40,
                len: 2,
                needed: 3 * SEGMENT_OVERHEAD + 20,
                limit: 2 * SEGMENT_OVERHEAD + 20
            }
        );
        assert!(e.is_size_limit());
        // Message 1 released its bytes; message 2 is intact.
        assert_eq!(u.pending_messages(), 1);
        assert_eq!(u.pending_bytes(), SEGMENT_OVERHEAD + 8);
        // Appending: doubling (8 -> 16) does not fit next to a second
        // message's run, exact growth (8 -> 10) does.
        u.push(frame(3, 0, 100, &[0; 10])).unwrap();
        assert_eq!(u.pending_bytes(), 2 * SEGMENT_OVERHEAD + 18);
        u.push(frame(2, 58, 100, &[0; 2])).unwrap();
        assert_eq!(u.pending_bytes(), 2 * SEGMENT_OVERHEAD + 20);
        assert!(matches!(
            u.push(frame(2, 60, 100, &[0; 1])).unwrap_err(),
            ChunkError::TooManyPendingBytes { id: 2, .. }
        ));
        assert_eq!(u.pending_bytes(), SEGMENT_OVERHEAD + 10);
    }

    #[test]
    fn growth_doubles_then_takes_the_rest_of_the_budget_once() {
        // Doubling, capped by what the run can ever hold.
        assert_eq!(grow_to(10, 15, 100, Some(1000)), Ok(20));
        assert_eq!(grow_to(10, 15, 17, Some(1000)), Ok(17));
        // Completing chunk: exact, no budget.
        assert_eq!(grow_to(64, 100, 100, None), Ok(100));
        // Budget short of doubling: all of it.
        assert_eq!(grow_to(800, 801, 10_000, Some(300)), Ok(1100));
        // Budget for the chunk but only a sliver of the buffer: refused,
        // asking for an eighth.
        assert_eq!(grow_to(800, 801, 10_000, Some(50)), Err(900));
        // Budget short of the chunk itself.
        assert_eq!(grow_to(8, 20, 100, Some(4)), Err(20));
    }

    #[test]
    fn appends_near_the_budget_reallocate_once() {
        let limits = UnchunkLimits {
            max_pending_bytes: SEGMENT_OVERHEAD + 1000,
            ..Default::default()
        };
        let mut u = authed(limits);
        u.push(frame(1, 0, 5000, &[0; 600])).unwrap();
        // 600 -> 1000 (not 1200): the whole budget.
        u.push(frame(1, 600, 5000, &[0; 1])).unwrap();
        assert_eq!(u.pending(1).runs[&0].capacity(), 1000);
        assert_eq!(u.pending_bytes(), limits.max_pending_bytes);
        let buf = u.pending(1).runs[&0].as_ptr();
        for i in 601..1000 {
            u.push(frame(1, i, 5000, &[0; 1])).unwrap();
        }
        assert_eq!(u.pending(1).runs[&0].as_ptr(), buf);
        assert!(matches!(
            u.push(frame(1, 1000, 5000, &[0; 1])).unwrap_err(),
            ChunkError::TooManyPendingBytes { needed, .. } if needed == limits.max_pending_bytes + 125
        ));
        assert_eq!(u.pending_bytes(), 0);
    }

    #[test]
    fn last_chunk_passes_a_full_budget() {
        let limits = UnchunkLimits {
            max_pending_bytes: SEGMENT_OVERHEAD + 60,
            ..Default::default()
        };
        let mut u = authed(limits);
        let msg = message(100);
        let mut frames: Vec<_> = chunk(msg.clone(), 1, HEADER_LEN + 50).unwrap().collect();
        let last = frames.pop().unwrap();
        assert_eq!(u.push(frames.pop().unwrap()).unwrap(), None);
        assert_eq!(u.push(last).unwrap(), Some(msg));
        assert_eq!(u.pending_bytes(), 0);
    }

    #[test]
    fn one_byte_chunks_backwards_is_linear_and_bounded() {
        let n = 20_000;
        let msg = message(n);
        let mut u = authed(UnchunkLimits::default());
        let mut frames: Vec<_> = chunk(msg.clone(), 1, 1).unwrap().collect();
        let last = frames.remove(0);
        for f in frames.into_iter().rev() {
            assert_eq!(u.push(f).unwrap(), None);
        }
        assert_eq!(u.pending_bytes(), (n - 1) * (1 + SEGMENT_OVERHEAD));
        assert_eq!(u.push(last).unwrap(), Some(msg));
    }

    #[test]
    fn errors_name_their_context() {
        let e = ChunkError::OverlappingChunk {
            id: 7,
            offset: 5,
            len: 3,
            held_offset: 4,
            held_len: 2,
        };
        assert_eq!(
            e.to_string(),
            "message 7: chunk at offset 5 (3 bytes) overlaps the 2 bytes already received at offset 4"
        );
        assert!(!e.is_size_limit());
    }

    impl Unchunker {
        fn pending(&self, id: u32) -> &Partial {
            &self.pending[&id]
        }
    }
}
