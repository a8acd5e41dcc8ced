//! The WebSocket engine: the one place that knows how frames look on the
//! socket. Upgrade negotiation is in `http.rs`; everything after it is here.
//!
//! - `reader.rs`: [`FrameReader`] parses the client's frames (RFC 6455),
//!   judges each frame's size against the limits in force before reading
//!   its payload, answers pings and closes, inflates compressed messages.
//! - `writer.rs`: [`FrameWriter`] writes the server's frames, large
//!   payloads by vectored write straight from their buffers, and forwards
//!   the reader's control replies ([`ControlPipe`]).
//! - `deflate.rs`: permessage-deflate (RFC 7692): the offer, bounded
//!   inflating, and which outgoing messages are worth compressing.
//! - `tls.rs` (feature `tls`): TLS termination under the WebSocket.

pub(crate) mod deflate;
pub(crate) mod reader;
#[cfg(feature = "tls")]
pub mod tls;
pub(crate) mod writer;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, ReadHalf};

pub(crate) use deflate::Negotiated;
pub(crate) use reader::{FrameLimits, FrameReader, Incoming, Kind, ReadError, Violation};
pub(crate) use writer::{ControlPipe, FrameWriter, OutFrame};

/// Splits an upgraded socket into its reader and its writer, which share
/// the control pipe (the reader's pongs and close replies).
pub(crate) fn split<S: AsyncRead + AsyncWrite>(
    io: S,
    limits: Arc<FrameLimits>,
    deflate: Option<Negotiated>,
) -> (FrameReader<ReadHalf<S>>, FrameWriter<S>) {
    let (read, write) = tokio::io::split(io);
    let control = Arc::new(ControlPipe::default());
    let reader = FrameReader::new(read, limits, control.clone(), deflate.is_some());
    let writer = FrameWriter::new(write, control, deflate.map(deflate::Deflate::new));
    (reader, writer)
}
