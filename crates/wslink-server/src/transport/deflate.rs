//! permessage-deflate (RFC 7692): the offer in the upgrade, inflating what
//! clients compress, and compressing what is worth it on the way out.
//!
//! Memory comes first: a server holds thousands of mostly idle connections,
//! and a deflate context with its 32 KiB window and tables costs far more
//! than the connection itself. So the server always answers with
//! `server_no_context_takeover; client_no_context_takeover` (RFC 7692
//! §7.1.1: a server may ask both even when the client did not offer them).
//! Each message is then a deflate stream of its own: no per-connection
//! state at all, idle or not. The (de)compressor is one per worker thread,
//! reset between messages. What this gives up is the dictionary carried
//! from one message to the next, which matters for streams of tiny similar
//! messages; the messages compressed here are large ones (see [`Deflate`]).
//!
//! Inflating is bounded by the message limit in force: a small frame that
//! would inflate to gigabytes stops at the limit and is refused like an
//! oversized message, with memory held to the limit.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const NAME: &str = "permessage-deflate";

/// Messages smaller than this are sent as they are: the few bytes saved do
/// not pay for the work, and small JSON barely shrinks.
const MIN_COMPRESS: usize = 256;
/// Larger messages are sent as they are: Node's WebSocket (undici) refuses
/// a compressed message that inflates past 4 MiB, which it would accept
/// uncompressed. A 2.x client's chunks (`maxMsgSize`, 4 MiB) stay below it.
const MAX_COMPRESS: usize = 4 << 20;
/// Input compressed before deciding whether the rest is worth it.
const SAMPLE: usize = 16 * 1024;
/// The sample must shrink to this fraction (in 1/16) to go on.
const SAMPLE_RATIO_16THS: usize = 14;
/// A slice this large starting with the signature of a compressed format
/// (JPEG, PNG...) marks the message as not worth compressing.
const MAGIC_MIN_SLICE: usize = 1024;
/// zlib level. Measured on 3 MB of JSON records (zlib-rs, release): level 1
/// gives 25 % of the size in 8 ms, 2 gives 18 % in 13 ms, 3 gives 17.7 % in
/// 19 ms, 6 (zlib's default, Python's) 16.3 % in 43 ms.
const LEVEL: u32 = 2;

/// What the server agreed to in the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The window the client allowed us (`server_max_window_bits`), 9 to 15.
    pub server_max_window_bits: u8,
    /// The client asked for it: answered as such.
    server_window_asked: bool,
}

impl Negotiated {
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub fn response(&self) -> String {
        let mut r = format!("{NAME}; server_no_context_takeover; client_no_context_takeover");
        if self.server_window_asked {
            r.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        r
    }
}

/// Picks the first acceptable permessage-deflate offer among the client's
/// `Sec-WebSocket-Extensions` header values. A malformed offer is simply not
/// accepted (the next one may be).
pub(crate) fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Negotiated> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .find_map(parse_offer)
}

/// One offer: `permessage-deflate; param[=value]; ...`.
fn parse_offer(offer: &str) -> Option<Negotiated> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(NAME) {
        return None;
    }
    let mut seen = [false; 4];
    let mut negotiated = Negotiated {
        server_max_window_bits: 15,
        server_window_asked: false,
    };
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (n.trim(), Some(v))
            }
            None => (param, None),
        };
        let index = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => 0,
            "client_no_context_takeover" if value.is_none() => 1,
            "server_max_window_bits" => {
                // zlib cannot compress with a 256-byte window: an offer
                // that demands one is declined.
                let bits = window_bits(value?).filter(|b| *b >= 9)?;
                negotiated.server_max_window_bits = bits;
                negotiated.server_window_asked = true;
                2
            }
            "client_max_window_bits" => {
                // Any window the client picks inflates with ours (15).
                if let Some(v) = value {
                    window_bits(v)?;
                }
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[index], true) {
            return None; // a parameter given twice
        }
    }
    Some(negotiated)
}

/// `8` to `15`, digits only, no leading zero (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|b| (8..=15).contains(b))
}

thread_local! {
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
    static DEFLATER: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// The outcome of inflating one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inflated {
    Done(Vec<u8>),
    /// Inflating went past the limit; this many bytes came out when it
    /// stopped.
    TooLarge(u64),
    Corrupt,
}

/// Inflates one message's payload (the `00 00 ff ff` that ends each
/// message was stripped by the sender and is put back here), producing at
/// most `limit` bytes.
pub(crate) fn inflate(compressed: &[u8], limit: usize) -> Inflated {
    INFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let inflater = cell.get_or_insert_with(|| Decompress::new(false));
        inflater.reset(false);
        let outcome = inflate_with(inflater, compressed, limit);
        inflater.reset(false);
        outcome
    })
}

fn inflate_with(d: &mut Decompress, compressed: &[u8], limit: usize) -> Inflated {
    const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).clamp(64, cap));
    for input in [compressed, &TAIL[..]] {
        let mut input = input;
        loop {
            if out.len() > limit {
                return Inflated::TooLarge(out.len() as u64);
            }
            if out.len() == out.capacity() {
                let step = out.len().clamp(16 * 1024, 1 << 20);
                out.reserve_exact(step.min(cap - out.len()));
            }
            let (before_in, before_out) = (d.total_in(), d.total_out());
            let status = match d.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(s) => s,
                Err(_) => return Inflated::Corrupt,
            };
            let consumed = (d.total_in() - before_in) as usize;
            let produced = d.total_out() - before_out;
            input = &input[consumed..];
            match status {
                // A final block ends the message (what follows is ignored).
                Status::StreamEnd => {
                    return if out.len() > limit {
                        Inflated::TooLarge(out.len() as u64)
                    } else {
                        Inflated::Done(out)
                    }
                }
                _ if out.len() > limit => return Inflated::TooLarge(out.len() as u64),
                // Everything in and nothing more to come out.
                _ if input.is_empty() && out.len() < out.capacity() => break,
                _ if consumed == 0 && produced == 0 && out.len() < out.capacity() => {
                    return Inflated::Corrupt
                }
                _ => {}
            }
        }
    }
    Inflated::Done(out)
}

/// The sending half of a negotiated permessage-deflate.
#[derive(Debug)]
pub(crate) struct Deflate {
    window_bits: u8,
}

impl Deflate {
    pub fn new(negotiated: Negotiated) -> Self {
        Deflate {
            window_bits: negotiated.server_max_window_bits,
        }
    }

    /// Whether what [`compress`](Self::compress) makes is the same for every
    /// connection that took the default window, so one connection's result
    /// may be sent by the others.
    pub fn is_shareable(&self) -> bool {
        self.window_bits == 15
    }

    /// The message's compressed payload (trailing `00 00 ff ff` removed),
    /// or `None` when it is not worth it and goes out as it is: small
    /// messages, messages over 4 MiB, payloads in a compressed format, and
    /// anything whose first 16 KiB do not shrink by an eighth.
    pub fn compress(&self, parts: &[Bytes]) -> Option<Bytes> {
        let total: usize = parts.iter().map(Bytes::len).sum();
        if !(MIN_COMPRESS..=MAX_COMPRESS).contains(&total)
            || parts
                .iter()
                .any(|p| p.len() >= MAGIC_MIN_SLICE && is_compressed_format(p))
        {
            return None;
        }
        if self.window_bits == 15 {
            DEFLATER
                .with(|cell| {
                    let mut cell = cell.borrow_mut();
                    let c =
                        cell.get_or_insert_with(|| Compress::new(Compression::new(LEVEL), false));
                    let out = compress_with(c, parts, total);
                    c.reset();
                    out
                })
                .map(Bytes::from)
        } else {
            let mut c =
                Compress::new_with_window_bits(Compression::new(LEVEL), false, self.window_bits);
            compress_with(&mut c, parts, total).map(Bytes::from)
        }
    }
}

#[cfg(test)]
impl Deflate {
    /// Compresses whatever it is, as a client might (tests).
    pub fn compress_always(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::new(LEVEL), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        run(&mut c, data, &mut out, FlushCompress::Sync).expect("compresses");
        out.truncate(out.len() - 4);
        out
    }
}

fn compress_with(c: &mut Compress, parts: &[Bytes], total: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity((total / 4).max(256));
    let mut fed = 0usize;
    let mut judged = total <= SAMPLE;
    for part in parts {
        let mut part: &[u8] = part;
        while !part.is_empty() {
            // Feed up to the sample's end, then judge what it came to.
            let take = if judged {
                part.len()
            } else {
                part.len().min(SAMPLE - fed)
            };
            run(c, &part[..take], &mut out, FlushCompress::None)?;
            fed += take;
            part = &part[take..];
            if !judged && fed == SAMPLE {
                run(c, &[], &mut out, FlushCompress::Sync)?;
                if out.len() * 16 > SAMPLE * SAMPLE_RATIO_16THS {
                    return None;
                }
                judged = true;
            }
        }
    }
    run(c, &[], &mut out, FlushCompress::Sync)?;
    // A sync flush ends with an empty stored block, 00 00 ff ff, which the
    // receiver puts back (RFC 7692 §7.2.1).
    if !out.ends_with(&[0, 0, 0xff, 0xff]) {
        return None;
    }
    out.truncate(out.len() - 4);
    (out.len() < total).then_some(out)
}

/// Compresses all of `input`, and with `Sync` everything pending.
fn run(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) -> Option<()> {
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.len().max(4096));
        }
        let before_in = c.total_in();
        c.compress_vec(input, out, flush).ok()?;
        input = &input[(c.total_in() - before_in) as usize..];
        // Done once all input is in and the output was not filled (zlib
        // stops a flush only when it has room left).
        if input.is_empty() && (matches!(flush, FlushCompress::None) || out.len() < out.capacity())
        {
            return Some(());
        }
    }
}

/// Signatures of formats that are compressed already.
fn is_compressed_format(bytes: &[u8]) -> bool {
    const SIGNATURES: [&[u8]; 7] = [
        &[0xff, 0xd8, 0xff],                               // JPEG
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a], // PNG
        b"GIF8",                                           // GIF
        &[0x1f, 0x8b],                                     // gzip
        b"PK\x03\x04",                                     // zip
        &[0x28, 0xb5, 0x2f, 0xfd],                         // zstd
        b"\x00\x00\x00\x0cjP  ",                           // JPEG 2000
    ];
    SIGNATURES.iter().any(|s| bytes.starts_with(s))
        || (bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(v: &str) -> Option<Negotiated> {
        negotiate([v])
    }

    #[test]
    fn offers_are_parsed_per_rfc_7692() {
        let plain = Negotiated {
            server_max_window_bits: 15,
            server_window_asked: false,
        };
        // What browsers and Node send.
        assert_eq!(
            offer("permessage-deflate; client_max_window_bits"),
            Some(plain)
        );
        assert_eq!(offer("permessage-deflate"), Some(plain));
        assert_eq!(
            offer("permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"),
            Some(plain)
        );
        let asked = offer("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(asked.server_max_window_bits, 10);
        assert_eq!(
            asked.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(
            plain.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // Quoted values are values.
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=\"12\"")
                .map(|n| n.server_max_window_bits),
            Some(12)
        );
        // Malformed offers are not accepted...
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; unknown_param",
            "x-webkit-deflate-frame",
            "",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
        }
        // ...but the next offer may be, in the same header or another.
        assert_eq!(
            offer("permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits"),
            Some(plain)
        );
        assert_eq!(
            negotiate(["foo", "permessage-deflate; server_max_window_bits=9"])
                .map(|n| n.server_max_window_bits),
            Some(9)
        );
    }

    fn json_like(len: usize) -> Vec<u8> {
        let mut s = String::from("[");
        let mut i = 0u64;
        while s.len() < len {
            s.push_str(&format!(
                "{{\"id\":{i},\"name\":\"point-{i}\",\"x\":{:.3},\"y\":{:.3}}},",
                i as f64 * 0.37,
                (i * i % 1000) as f64 / 7.0
            ));
            i += 1;
        }
        s.push(']');
        s.into_bytes()
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def0u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn compressed_messages_inflate_back_whatever_their_slices() {
        let json = json_like(300_000);
        let parts: Vec<Bytes> = json.chunks(70_001).map(Bytes::copy_from_slice).collect();
        for bits in [15, 9, 12] {
            let d = Deflate { window_bits: bits };
            let compressed = d.compress(&parts).expect("JSON compresses");
            assert!(
                compressed.len() * 4 < json.len(),
                "{} bytes",
                compressed.len()
            );
            assert_eq!(
                inflate(&compressed, json.len()),
                Inflated::Done(json.clone())
            );
            // One byte under the message's size is over the limit.
            assert!(matches!(
                inflate(&compressed, json.len() - 1),
                Inflated::TooLarge(_)
            ));
        }
    }

    #[test]
    fn what_does_not_pay_is_not_compressed() {
        let d = Deflate { window_bits: 15 };
        // Small.
        assert_eq!(d.compress(&[Bytes::from_static(b"{\"id\":1}")]), None);
        // Over 4 MiB (what Node's client inflates at most), however
        // compressible.
        let zeros = Bytes::from(vec![0u8; MAX_COMPRESS]);
        assert!(d.compress(std::slice::from_ref(&zeros)).is_some());
        assert_eq!(d.compress(&[zeros, Bytes::from_static(b"1")]), None);
        // A JPEG, or a PNG, as the slice of a message.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
        jpeg.extend(std::iter::repeat_n(0u8, 100_000));
        let head = Bytes::from(json_like(300));
        assert_eq!(d.compress(&[head.clone(), Bytes::from(jpeg)]), None);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(std::iter::repeat_n(0u8, 5_000));
        assert_eq!(d.compress(&[Bytes::from(png)]), None);
        // Noise: the sample does not shrink, the rest is not tried.
        assert_eq!(d.compress(&[head, Bytes::from(noise(1 << 20))]), None);
        // Small noise that does not shrink at all.
        assert_eq!(d.compress(&[Bytes::from(noise(2000))]), None);
    }

    #[test]
    fn an_inflate_bomb_stops_at_the_limit() {
        // Deflate shrinks zeros about a thousandfold: 64 MiB in 64 KiB.
        let mut c = Compress::new(Compression::best(), false);
        let zeros = vec![0u8; 1 << 20];
        let mut bomb = Vec::with_capacity(1 << 20);
        for _ in 0..64 {
            run(&mut c, &zeros, &mut bomb, FlushCompress::None).unwrap();
        }
        run(&mut c, &[], &mut bomb, FlushCompress::Sync).unwrap();
        bomb.truncate(bomb.len() - 4);
        assert!(bomb.len() < 100 * 1024, "{}", bomb.len());
        let limit = 4 << 20;
        match inflate(&bomb, limit) {
            Inflated::TooLarge(n) => assert!(n as usize <= limit + (1 << 20), "{n}"),
            other => panic!("{:?}", matches!(other, Inflated::Done(_))),
        }
        // Garbage is refused, not looped on.
        assert_eq!(inflate(&[0xff; 64], limit), Inflated::Corrupt);
    }

    #[test]
    fn a_final_block_ends_the_message() {
        // A client that finishes its stream (BFINAL) instead of flushing.
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(1024);
        c.compress_vec(b"hello hello hello", &mut out, FlushCompress::Finish)
            .unwrap();
        assert_eq!(
            inflate(&out, 1000),
            Inflated::Done(b"hello hello hello".to_vec())
        );
    }
}
