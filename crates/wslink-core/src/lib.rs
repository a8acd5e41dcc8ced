//! # wslink-core
//!
//! The wslink protocol without sockets: values, envelopes, message ids, the
//! hello handshake, error codes, the 1.x attachment table, both wire codecs
//! and 2.x chunking. The server and client crates put I/O around it; anything
//! else that speaks WebSocket can too.
//!
//! ```
//! use wslink_core::codec::v2;
//! use wslink_core::{Message, Value};
//!
//! // What a server sends for a reply, and what a client makes of it.
//! let reply = Message::Result { id: "rpc:c1:0".into(), result: Value::from("pong") };
//! let mut decoder = v2::Decoder::new(Default::default());
//! decoder.set_authenticated(true);
//! let mut received = None;
//! for frame in v2::encode(&reply, wslink_core::protocol::DEFAULT_MAX_MSG_SIZE).unwrap() {
//!     received = decoder.push(frame).unwrap();
//! }
//! assert_eq!(received, Some(reply));
//! ```

#![warn(missing_docs)]

pub mod attachments;
pub mod chunking;
pub mod codec;
pub mod envelope;
pub mod ids;
pub mod msgpack;
pub mod params;
pub mod protocol;
pub mod shared_bytes;
pub mod value;

pub use chunking::{
    ChunkError, ChunkHeader, Chunks, SegmentedChunks, SegmentedFrame, UnchunkLimits, Unchunker,
};
pub use codec::{CodecError, Frame, Generation};
pub use envelope::{Message, Request, RpcError};
pub use shared_bytes::SharedBytes;
pub use value::{from_value, to_value, Integer, Map, Value, ValueError};
