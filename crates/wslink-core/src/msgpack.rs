//! msgpack, the 2.x payload format.
//!
//! Encoding goes through rmp-serde, so a user's own serde types (with
//! `Bytes` or `serde_bytes` fields for binary) are written straight to the
//! wire. Decoding into [`Value`] is hand-written instead, for three reasons
//! serde cannot give us: binary values become zero-copy slices of the
//! received buffer, nesting depth is bounded before the stack is, and no
//! container is pre-allocated from a length the peer merely claims.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::shared_bytes::{self, SHARE_THRESHOLD};
use crate::value::Value;

/// Nesting deeper than this is refused by default (arrays and maps count).
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// Why a msgpack buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ended inside a value.
    #[error("msgpack truncated at byte {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
        /// How many more bytes the value declared.
        needed: usize,
    },
    /// Bytes were left over after the one top-level value.
    #[error("{extra} trailing bytes after the msgpack value")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// A byte that msgpack does not define (0xc1).
    #[error("invalid msgpack marker 0x{marker:02x} at byte {offset}")]
    InvalidMarker {
        /// The marker byte.
        marker: u8,
        /// Its position.
        offset: usize,
    },
    /// A `str` value was not UTF-8.
    #[error("msgpack string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// Arrays and maps nested deeper than allowed.
    #[error("msgpack nesting deeper than {limit} levels")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
}

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message as msgpack: {0}")]
pub struct EncodeError(#[from] rmp_serde::encode::Error);

/// Decodes exactly one msgpack value that fills `input`, sharing binary data
/// with `input` instead of copying it.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::{msgpack, Value};
/// let wire = Bytes::from_static(&[0x92, 0x01, 0xc4, 0x02, 0xab, 0xcd]);
/// let v = msgpack::decode(&wire, msgpack::DEFAULT_MAX_DEPTH).unwrap();
/// assert_eq!(v.index(0), Some(&Value::from(1)));
/// assert_eq!(v.index(1).unwrap().as_bytes().unwrap().as_ref(), &[0xab, 0xcd]);
/// ```
pub fn decode(input: &Bytes, max_depth: usize) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        input,
        pos: 0,
        max_depth,
    };
    let value = reader.value(0)?;
    if reader.pos != input.len() {
        return Err(DecodeError::TrailingBytes {
            extra: input.len() - reader.pos,
        });
    }
    Ok(value)
}

/// What [`decode_fields`] found at the top level.
pub(crate) enum TopLevel {
    /// A map, whose entries went to the visitor.
    Map,
    /// Anything else, decoded as a whole.
    Other(Value),
}

/// Decodes `input` as [`decode`] does, with the same errors, but when it
/// is a map hands each entry whose key is a string that `wanted` accepts
/// to `visit` (in order, keys borrowed from the input) and builds nothing
/// else: other entries are checked and dropped, strings without a copy.
pub(crate) fn decode_fields(
    input: &Bytes,
    max_depth: usize,
    wanted: impl Fn(&str) -> bool,
    mut visit: impl FnMut(&str, Value),
) -> Result<TopLevel, DecodeError> {
    let mut reader = Reader {
        input,
        pos: 0,
        max_depth,
    };
    let len = match input.first() {
        Some(&marker @ 0x80..=0x8f) => {
            reader.pos = 1;
            (marker & 0x0f) as usize
        }
        Some(&marker @ (0xde | 0xdf)) => {
            reader.pos = 1;
            reader.len(if marker == 0xde { 2 } else { 4 })?
        }
        _ => return decode(input, max_depth).map(TopLevel::Other),
    };
    reader.check_depth(0)?;
    for _ in 0..len {
        match reader.str_in_place()? {
            Some(key) => {
                let key = &input[key];
                // Valid UTF-8: str_in_place checked it.
                let key = std::str::from_utf8(key).unwrap_or_default();
                if wanted(key) {
                    let value = reader.value(1)?;
                    visit(key, value);
                } else {
                    reader.skip(1)?;
                }
            }
            None => {
                // A key that is not a string: checked, then its value.
                reader.value(1)?;
                reader.skip(1)?;
            }
        }
    }
    if reader.pos != input.len() {
        return Err(DecodeError::TrailingBytes {
            extra: input.len() - reader.pos,
        });
    }
    Ok(TopLevel::Map)
}

/// Serializes `value` as msgpack (structs as maps, binary as `bin`) into a
/// fresh buffer whose first `reserve` bytes are left zeroed for a header.
pub fn encode_with_reserve<T: Serialize + ?Sized>(
    value: &T,
    reserve: usize,
    capacity_hint: usize,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::with_capacity(reserve + capacity_hint);
    buf.put_bytes(0, reserve);
    let mut writer = buf.writer();
    let mut ser = rmp_serde::Serializer::new(&mut writer).with_struct_map();
    value.serialize(&mut ser)?;
    Ok(writer.into_inner())
}

/// Serializes `value` as msgpack.
///
/// ```
/// use wslink_core::{msgpack, Value};
/// let bytes = msgpack::encode(&Value::from(vec![Value::from(1), Value::Nil])).unwrap();
/// assert_eq!(&bytes[..], &[0x92, 0x01, 0xc0]);
/// ```
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, EncodeError> {
    Ok(encode_with_reserve(value, 0, 64)?.freeze())
}

/// Serializes `value` as msgpack, sharing the large binary payloads that
/// opt in ([`Value::Bin`], [`SharedBytes`](crate::SharedBytes), see
/// [`shared_bytes`]) instead of copying them.
///
/// The result is the same message [`encode`] makes, byte for byte, held as
/// segments: what was copied, with each shared payload in its place.
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::{msgpack, Value};
/// let image = Bytes::from(vec![9u8; 1 << 20]);
/// let value = Value::map([("seq", Value::from(3)), ("image", Value::Bin(image.clone()))]);
/// let message = msgpack::encode_segmented(&value).unwrap();
/// assert_eq!(message.len(), msgpack::encode(&value).unwrap().len());
/// // The megabyte is the caller's buffer, not a copy of it.
/// assert_eq!(message.shared().next().unwrap().as_ptr(), image.as_ptr());
/// assert_eq!(message.to_bytes(), msgpack::encode(&value).unwrap());
/// ```
pub fn encode_segmented<T: Serialize + ?Sized>(value: &T) -> Result<Segmented, EncodeError> {
    encode_segmented_with(value, 0, SHARE_THRESHOLD)
}

/// [`encode_segmented`] with `reserve` zeroed bytes in front of the copied
/// part (room for a chunk header, see
/// [`chunk_segmented`](crate::chunking::chunk_segmented)) and payloads
/// shared from `threshold` bytes (at least 1) rather than from
/// [`SHARE_THRESHOLD`].
///
/// ```
/// use bytes::Bytes;
/// use wslink_core::{msgpack, Value};
/// let value = Value::from(vec![Value::Bin(Bytes::from_static(b"tiny")); 3]);
/// let message = msgpack::encode_segmented_with(&value, 0, 4).unwrap();
/// assert_eq!(message.shared().count(), 3);
/// assert_eq!(message.to_bytes(), msgpack::encode(&value).unwrap());
/// ```
pub fn encode_segmented_with<T: Serialize + ?Sized>(
    value: &T,
    reserve: usize,
    threshold: usize,
) -> Result<Segmented, EncodeError> {
    let threshold = threshold.max(1);
    let mut writer = SegmentWriter {
        buf: BytesMut::with_capacity(reserve + 256),
        shared: Vec::new(),
        threshold,
    };
    writer.buf.put_bytes(0, reserve);
    {
        // Ends the capture when serialization ends, however it ends.
        let _capture = shared_bytes::Capturing::start(threshold);
        let mut ser = rmp_serde::Serializer::new(&mut writer).with_struct_map();
        value.serialize(&mut ser)?;
    }
    Ok(Segmented {
        buf: writer.buf,
        reserve,
        shared: writer.shared,
    })
}

/// Copies what it is given, except slices that are exactly a payload
/// offered to the running encode: those become segments.
struct SegmentWriter {
    buf: BytesMut,
    shared: Vec<(usize, Bytes)>,
    threshold: usize,
}

impl SegmentWriter {
    /// Keeps `data` as a segment if it is an offered payload.
    #[cold]
    #[inline(never)]
    fn share(&mut self, data: &[u8]) -> bool {
        match shared_bytes::find(data) {
            Some(payload) => {
                self.shared.push((self.buf.len(), payload));
                true
            }
            None => false,
        }
    }
}

impl std::io::Write for SegmentWriter {
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    // Inlined into rmp's writers, as `BytesMut`'s own writer is: most
    // writes are a marker byte or a short string.
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.len() < self.threshold || !self.share(data) {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A msgpack message held as segments, from [`encode_segmented`]: the
/// copied bytes in one buffer, and shared payloads each at its place in
/// between. Concatenated, the segments are what [`encode`] makes.
pub struct Segmented {
    /// `reserve` leading bytes, then the copied bytes.
    buf: BytesMut,
    reserve: usize,
    /// Shared payloads, each going right before `buf[at..]`; `at` never
    /// decreases.
    shared: Vec<(usize, Bytes)>,
}

/// One segment of a [`Segmented`] message, as [`Segmented::pieces`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// Copied bytes: this range of the buffer (reserve included).
    Copied(std::ops::Range<usize>),
    /// A shared payload.
    Shared(&'a Bytes),
}

impl Segmented {
    /// The message's length in bytes (not counting the reserve).
    pub fn len(&self) -> usize {
        self.buf.len() - self.reserve + self.shared.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    /// `true` for an empty message (encoders never make one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared payloads, in message order.
    pub fn shared(&self) -> impl Iterator<Item = &Bytes> {
        self.shared.iter().map(|(_, b)| b)
    }

    /// How many bytes were copied into the message's own buffer.
    pub fn copied_len(&self) -> usize {
        self.buf.len() - self.reserve
    }

    /// The segments in message order, empty ones left out.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use wslink_core::{msgpack, Value};
    /// let value = Value::from(vec![Value::Bin(Bytes::from(vec![1u8; 100_000])), Value::from(7)]);
    /// let message = msgpack::encode_segmented(&value).unwrap();
    /// let lens: Vec<usize> = message.segments().map(<[u8]>::len).collect();
    /// assert_eq!(lens, [1 + 5, 100_000, 1]); // array and bin32 headers, payload, 7
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces().map(|piece| match piece {
            Piece::Copied(range) => &self.buf[range],
            Piece::Shared(bytes) => &bytes[..],
        })
    }

    /// The whole message in one buffer (a copy).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        for segment in self.segments() {
            out.extend_from_slice(segment);
        }
        out.freeze()
    }

    pub(crate) fn reserve(&self) -> usize {
        self.reserve
    }

    /// The buffer (reserve included) and the shared payloads with their
    /// places in it.
    pub(crate) fn into_parts(self) -> (BytesMut, Vec<(usize, Bytes)>) {
        (self.buf, self.shared)
    }

    pub(crate) fn pieces(&self) -> impl Iterator<Item = Piece<'_>> {
        pieces(self.reserve, self.buf.len(), &self.shared)
    }
}

/// The pieces of a message whose copied bytes are `start..end` of a buffer
/// and whose shared payloads go where `shared` says; empty ones left out.
pub(crate) fn pieces(
    start: usize,
    end: usize,
    shared: &[(usize, Bytes)],
) -> impl Iterator<Item = Piece<'_>> {
    let mut at = start;
    shared
        .iter()
        .flat_map(move |(place, bytes)| {
            let copied = Piece::Copied(at..*place);
            at = *place;
            [copied, Piece::Shared(bytes)]
        })
        .chain(std::iter::once_with(move || {
            Piece::Copied(shared.last().map_or(start, |(place, _)| *place)..end)
        }))
        .filter(|piece| match piece {
            Piece::Copied(range) => !range.is_empty(),
            Piece::Shared(bytes) => !bytes.is_empty(),
        })
}

impl std::fmt::Debug for Segmented {
    // The bytes themselves would drown the shape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmented")
            .field("len", &self.len())
            .field("copied", &self.copied_len())
            .field(
                "shared",
                &self.shared.iter().map(|(_, b)| b.len()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

struct Reader<'a> {
    input: &'a Bytes,
    pos: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        let available = self.input.len() - self.pos;
        if n > available {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - available,
            });
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let r = self.take(1)?;
        Ok(self.input[r.start])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let r = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.input[r]);
        Ok(out)
    }

    fn len(&mut self, width: usize) -> Result<usize, DecodeError> {
        Ok(match width {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    /// If a string comes next, checks it and steps over it, returning
    /// where its bytes are; anything else is left to be read.
    fn str_in_place(&mut self) -> Result<Option<std::ops::Range<usize>>, DecodeError> {
        let len = match self.input.get(self.pos) {
            Some(&marker @ 0xa0..=0xbf) => {
                self.pos += 1;
                (marker & 0x1f) as usize
            }
            Some(&marker @ 0xd9..=0xdb) => {
                self.pos += 1;
                self.len(1 << (marker - 0xd9))?
            }
            _ => return Ok(None),
        };
        // As `string` reports it: where the bytes start, after the length.
        let start = self.pos;
        let r = self.take(len)?;
        match std::str::from_utf8(&self.input[r.clone()]) {
            Ok(_) => Ok(Some(r)),
            Err(_) => Err(DecodeError::InvalidUtf8 { offset: start }),
        }
    }

    /// Checks the next value as [`value`](Self::value) would and steps
    /// over it, copying no string.
    fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        if self.str_in_place()?.is_none() {
            self.value(depth)?;
        }
        Ok(())
    }

    fn string(&mut self, len: usize) -> Result<Value, DecodeError> {
        let start = self.pos;
        let r = self.take(len)?;
        std::str::from_utf8(&self.input[r])
            .map(|s| Value::Str(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8 { offset: start })
    }

    fn binary(&mut self, len: usize) -> Result<Value, DecodeError> {
        let r = self.take(len)?;
        Ok(Value::Bin(self.input.slice(r)))
    }

    fn ext(&mut self, len: usize) -> Result<Value, DecodeError> {
        let tag = self.u8()? as i8;
        let r = self.take(len)?;
        Ok(Value::Ext(tag, self.input.slice(r)))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        self.check_depth(depth)?;
        // Every element takes at least one byte, so what is left bounds the
        // allocation whatever length the peer claims.
        let mut items = Vec::with_capacity(len.min(self.input.len() - self.pos));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        self.check_depth(depth)?;
        let mut entries = Vec::with_capacity(len.min((self.input.len() - self.pos) / 2));
        for _ in 0..len {
            let k = self.value(depth + 1)?;
            let v = self.value(depth + 1)?;
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }

    fn check_depth(&self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.max_depth {
            Err(DecodeError::TooDeep {
                limit: self.max_depth,
            })
        } else {
            Ok(())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let offset = self.pos;
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Value::from(marker),
            0x80..=0x8f => return self.map((marker & 0x0f) as usize, depth),
            0x90..=0x9f => return self.array((marker & 0x0f) as usize, depth),
            0xa0..=0xbf => return self.string((marker & 0x1f) as usize),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.len(1 << (marker - 0xc4))?;
                return self.binary(n);
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (marker - 0xc7))?;
                return self.ext(n);
            }
            0xca => Value::F32(f32::from_be_bytes(self.be()?)),
            0xcb => Value::F64(f64::from_be_bytes(self.be()?)),
            0xcc => Value::from(self.u8()?),
            0xcd => Value::from(u16::from_be_bytes(self.be()?)),
            0xce => Value::from(u32::from_be_bytes(self.be()?)),
            0xcf => Value::from(u64::from_be_bytes(self.be()?)),
            0xd0 => Value::from(self.u8()? as i8),
            0xd1 => Value::from(i16::from_be_bytes(self.be()?)),
            0xd2 => Value::from(i32::from_be_bytes(self.be()?)),
            0xd3 => Value::from(i64::from_be_bytes(self.be()?)),
            0xd4..=0xd8 => return self.ext(1 << (marker - 0xd4)),
            0xd9..=0xdb => {
                let n = self.len(1 << (marker - 0xd9))?;
                return self.string(n);
            }
            0xdc | 0xdd => {
                let n = self.len(if marker == 0xdc { 2 } else { 4 })?;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.len(if marker == 0xde { 2 } else { 4 })?;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::from(marker as i8),
            0xc1 => return Err(DecodeError::InvalidMarker { marker, offset }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let bytes = encode(v).unwrap();
        decode(&bytes, DEFAULT_MAX_DEPTH).unwrap()
    }

    #[test]
    fn integers_keep_their_full_range() {
        for v in [
            Value::from(0),
            Value::from(-1),
            Value::from(-33),
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            Value::from(1u64 << 53),
        ] {
            assert_eq!(round_trip(&v), v);
        }
    }

    #[test]
    fn f32_and_f64_stay_distinct() {
        assert_eq!(round_trip(&Value::F32(1.5)), Value::F32(1.5));
        assert_eq!(round_trip(&Value::F64(1.5)), Value::F64(1.5));
        assert_eq!(&encode(&Value::F32(1.5)).unwrap()[..1], &[0xca]);
    }

    #[test]
    fn binary_is_bin_and_shares_the_input() {
        let wire = encode(&Value::from(vec![7u8; 300])).unwrap();
        assert_eq!(wire[0], 0xc5, "bin16 marker");
        let v = decode(&wire, DEFAULT_MAX_DEPTH).unwrap();
        let b = v.as_bytes().unwrap();
        assert_eq!(b.as_ptr(), wire[3..].as_ptr(), "binary must not be copied");
    }

    #[test]
    fn ext_round_trips() {
        let v = Value::Ext(-1, Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(round_trip(&v), v);
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // array32 claiming 4 billion elements, with nothing behind it.
        let wire = Bytes::from_static(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode(&wire, DEFAULT_MAX_DEPTH),
            Err(DecodeError::Truncated { .. })
        ));
        let wire = Bytes::from_static(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]);
        assert!(matches!(
            decode(&wire, DEFAULT_MAX_DEPTH),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let wire = Bytes::from(vec![0x91u8; 100_000]);
        assert_eq!(
            decode(&wire, DEFAULT_MAX_DEPTH),
            Err(DecodeError::TooDeep {
                limit: DEFAULT_MAX_DEPTH
            })
        );
    }

    /// Offers a payload, then fails or panics half-way.
    struct Broken {
        panic: bool,
    }

    impl Serialize for Broken {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error as _, SerializeSeq as _};
            let mut seq = s.serialize_seq(Some(2))?;
            seq.serialize_element(&Value::Bin(Bytes::from(vec![1u8; 100])))?;
            assert!(shared_bytes::is_capturing());
            if self.panic {
                panic!("a user's Serialize panicked");
            }
            Err(S::Error::custom("and failed"))
        }
    }

    #[test]
    fn a_failed_or_panicking_encode_ends_its_capture() {
        assert!(encode_segmented_with(&Broken { panic: false }, 0, 1).is_err());
        assert!(!shared_bytes::is_capturing());
        let panicked = std::panic::catch_unwind(|| {
            let _ = encode_segmented_with(&Broken { panic: true }, 0, 1);
        });
        assert!(panicked.is_err());
        assert!(!shared_bytes::is_capturing());
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let wire = Bytes::from_static(&[0xc1]);
        assert!(matches!(
            decode(&wire, 8),
            Err(DecodeError::InvalidMarker { marker: 0xc1, .. })
        ));
        let wire = Bytes::from_static(&[0x01, 0x02]);
        assert_eq!(
            decode(&wire, 8),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        let wire = Bytes::from_static(&[0xa2, 0xff, 0xfe]);
        assert!(matches!(
            decode(&wire, 8),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
    }
}
