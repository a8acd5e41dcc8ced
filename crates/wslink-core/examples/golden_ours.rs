//! Our encodings, for the official decoders to read.
//!
//! ```text
//! cargo run -p wslink-core --example golden_ours -- OUT_DIR
//! ```
//!
//! Reads every official golden vector (`tests/golden/vectors/<producer>/*.json`,
//! bytes captured from Kitware's wslink packages), takes its `messages`, and
//! re-encodes them with OUR encoder of the same generation:
//!
//! - 2.x: `codec::v2::encode`. A message the official code sent in several
//!   frames is chunked to the size of its largest original frame, so the
//!   chunked vectors stay chunked; any other message uses the frame size our
//!   own peers use (the server's `maxMsgSize`, or a client's size before the
//!   hello reply).
//! - 1.x: `codec::v1::encode` (attachments as a header text frame plus a
//!   binary frame), with one set of attachment keys per file, as on one
//!   connection.
//!
//! Each result is written to `OUT_DIR/<producer>/<name>.json` in the vector
//! format of `tests/golden/README.md`: producer `wslink-rs`, the same
//! generation, direction, description and messages, our frames, and (1.x)
//! `raw_messages`: the messages with each binary replaced by the key our
//! encoder is documented to give it (`wslink_bin0`, `wslink_bin1`, … in wire
//! order), worked out here independently of the encoder.
//! `tests/golden/check/run.sh OUT_DIR` then runs the official decoders on them.
//!
//! A vector whose meaning our encoder deliberately cannot produce is skipped
//! with the reason (an integer outside `i64::MIN..=u64::MAX`, which our
//! `Value` does not hold). Any other problem is an error: exit status 1.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use wslink_core::attachments::AttachmentKeys;
use wslink_core::chunking::HEADER_LEN;
use wslink_core::codec::{v1, v2, Frame};
use wslink_core::protocol::{DEFAULT_MAX_MSG_SIZE, PRE_HELLO_MAX_MSG_SIZE};
use wslink_core::{Message, Value};

/// Why a vector was not written.
enum Problem {
    /// Its meaning is outside what our encoder produces, by design.
    Skip(String),
    /// Something that should have worked did not.
    Error(String),
}

fn error(s: impl Into<String>) -> Problem {
    Problem::Error(s.into())
}

// ---------------------------------------------------------------------------
// hex

fn unhex(s: &str) -> Result<Vec<u8>, Problem> {
    let s: String = s.split_whitespace().collect();
    if !s.len().is_multiple_of(2) {
        return Err(error(format!(
            "odd-length hex string of {} digits",
            s.len()
        )));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| error(format!("bad hex: {e}"))))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").unwrap();
    }
    s
}

// ---------------------------------------------------------------------------
// tagged JSON (tests/golden/README.md), read into our Value so that map keys
// keep their order in the file, which is the wire order

fn single_entry<'a>(entries: &'a [(Value, Value)], tag: &str) -> Option<&'a Value> {
    match entries {
        [(Value::Str(k), v)] if k == tag => Some(v),
        _ => None,
    }
}

/// Tagged JSON (as parsed by serde_json into a `Value`) to the value it means.
fn untag(j: Value) -> Result<Value, Problem> {
    match j {
        Value::Array(items) => Ok(Value::Array(
            items.into_iter().map(untag).collect::<Result<_, _>>()?,
        )),
        Value::Map(entries) => {
            if let Some(Value::Str(h)) = single_entry(&entries, "$bin") {
                return Ok(Value::Bin(Bytes::from(unhex(h)?)));
            }
            if let Some(Value::Str(d)) = single_entry(&entries, "$int") {
                if let Ok(i) = d.parse::<i64>() {
                    return Ok(Value::from(i));
                }
                if let Ok(u) = d.parse::<u64>() {
                    return Ok(Value::from(u));
                }
                let digits = d.strip_prefix('-').unwrap_or(d);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(error(format!("$int {d:?} is not an integer")));
                }
                return Err(Problem::Skip(format!(
                    "the integer {d} is outside i64::MIN..=u64::MAX: our Value holds what \
                     msgpack can carry, so our encoders never write it (JavaScript wrote a \
                     double as an integer literal)"
                )));
            }
            if let Some(f) = single_entry(&entries, "$float") {
                return match f {
                    Value::F64(x) => Ok(Value::F64(*x)),
                    Value::Int(i) => Ok(Value::F64(i.as_f64())),
                    other => Err(error(format!("$float holds a {}", other.kind()))),
                };
            }
            Ok(Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((k, untag(v)?)))
                    .collect::<Result<_, Problem>>()?,
            ))
        }
        other => Ok(other),
    }
}

const SAFE: u64 = 1 << 53;

/// A value to tagged JSON (a `Value` that serde_json writes as such).
fn tag(v: &Value) -> Value {
    match v {
        Value::Bin(b) => Value::map([("$bin", Value::from(hex(b)))]),
        Value::Int(i) => {
            let small = match (i.as_i64(), i.as_u64()) {
                (Some(n), _) => n.unsigned_abs() <= SAFE,
                (None, Some(u)) => u <= SAFE,
                (None, None) => false,
            };
            if small {
                v.clone()
            } else {
                Value::map([("$int", Value::from(i.to_string()))])
            }
        }
        Value::F64(x) if x.fract() == 0.0 => Value::map([("$float", Value::F64(*x))]),
        Value::F32(x) if x.fract() == 0.0 => Value::map([("$float", Value::F64(f64::from(*x)))]),
        Value::F32(x) => Value::F64(f64::from(*x)),
        Value::Array(items) => Value::Array(items.iter().map(tag).collect()),
        Value::Map(entries) => {
            Value::Map(entries.iter().map(|(k, v)| (k.clone(), tag(v))).collect())
        }
        other => other.clone(),
    }
}

fn frame_json(frame: &Frame) -> Value {
    match frame {
        Frame::Binary(b) => Value::map([("binary", Value::from(hex(b)))]),
        Frame::Text(t) => Value::map([(
            "text",
            Value::from(std::str::from_utf8(t).expect("text frames are UTF-8")),
        )]),
    }
}

/// 1.x: the message as its JSON text says it, each binary replaced by the
/// next key (our keys count from `wslink_bin0`, in wire order).
fn with_keys(v: &Value, next: &mut u64) -> Value {
    match v {
        Value::Bin(_) => {
            let key = format!("wslink_bin{next}");
            *next += 1;
            Value::from(key)
        }
        Value::Array(items) => Value::Array(items.iter().map(|x| with_keys(x, next)).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, x)| (k.clone(), with_keys(x, next)))
                .collect(),
        ),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------

fn field<'a>(doc: &'a Value, key: &str) -> Result<&'a Value, Problem> {
    doc.get(key).ok_or_else(|| error(format!("no {key:?}")))
}

/// 2.x: for each message of the original frames (in completion order), the
/// number of frames it took and the largest of them.
fn original_chunking(frames: &[Value]) -> Result<Vec<(usize, usize)>, Problem> {
    let mut pending: Vec<(u32, u64, usize, usize)> = Vec::new(); // id, got, frames, largest
    let mut out = Vec::new();
    for f in frames {
        let Some(h) = f.get("binary").and_then(Value::as_str) else {
            return Err(error("a 2.x vector with a text frame"));
        };
        let b = unhex(h)?;
        if b.len() < HEADER_LEN {
            return Err(error("a 2.x frame shorter than its header"));
        }
        let word = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let (id, total) = (word(0), u64::from(word(8)));
        let at = match pending.iter().position(|p| p.0 == id) {
            Some(at) => at,
            None => {
                pending.push((id, 0, 0, 0));
                pending.len() - 1
            }
        };
        let p = &mut pending[at];
        p.1 += (b.len() - HEADER_LEN) as u64;
        p.2 += 1;
        p.3 = p.3.max(b.len());
        if p.1 >= total {
            out.push((p.2, p.3));
            pending.remove(at);
        }
    }
    if !pending.is_empty() {
        return Err(error("the original frames leave a message incomplete"));
    }
    Ok(out)
}

struct Written {
    frames: usize,
    /// Our frames equal the official ones byte for byte (2.x: but for the
    /// random chunk ids).
    identical: bool,
}

fn same_frames(ours: &[Frame], theirs: &[Value], generation: u64) -> bool {
    ours.len() == theirs.len()
        && ours.iter().zip(theirs).all(|(o, t)| match o {
            Frame::Text(s) => t.get("text").and_then(Value::as_str).map(str::as_bytes) == Some(s),
            Frame::Binary(b) => {
                let Some(Ok(t)) = t.get("binary").and_then(Value::as_str).map(unhex) else {
                    return false;
                };
                let skip = if generation == 2 { 4 } else { 0 };
                t.len() == b.len() && t.len() >= skip && t[skip..] == b[skip..]
            }
        })
}

fn convert(src: &Path, rel: &Path, dst: &Path) -> Result<Written, Problem> {
    let text = std::fs::read_to_string(src).map_err(|e| error(e.to_string()))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    let generation = field(&doc, "generation")?
        .as_u64()
        .filter(|g| *g == 1 || *g == 2)
        .ok_or_else(|| error("generation is not 1 or 2"))?;
    let direction = field(&doc, "direction")?
        .as_str()
        .ok_or_else(|| error("direction is not a string"))?;
    let client = match direction {
        "client-to-server" => true,
        "server-to-client" => false,
        other => return Err(error(format!("unknown direction {other:?}"))),
    };
    let frames = field(&doc, "frames")?
        .as_array()
        .ok_or_else(|| error("frames is not an array"))?;
    let tagged = field(&doc, "messages")?
        .as_array()
        .ok_or_else(|| error("messages is not an array"))?;

    let mut values = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in tagged.iter().enumerate() {
        let value = untag(m.clone())?;
        let msg = Message::from_value(value.clone())
            .map_err(|e| error(format!("message {i} is not an envelope: {e}")))?;
        // What we encode must be what the vector means, field for field.
        if msg.to_value() != value {
            return Err(error(format!(
                "message {i}: our envelope would say {:?}, the vector says {value:?}",
                msg.to_value()
            )));
        }
        values.push(value);
        messages.push(msg);
    }

    let mut ours: Vec<Frame> = Vec::new();
    let mut raw = Vec::new();
    if generation == 2 {
        let chunking = original_chunking(frames)?;
        if chunking.len() != messages.len() {
            return Err(error(format!(
                "the original frames carry {} messages, the vector lists {}",
                chunking.len(),
                messages.len()
            )));
        }
        for (i, (msg, (count, largest))) in messages.iter().zip(chunking).enumerate() {
            let size = match (count > 1, client) {
                (true, _) => largest,
                (false, true) => PRE_HELLO_MAX_MSG_SIZE,
                (false, false) => DEFAULT_MAX_MSG_SIZE,
            };
            let before = ours.len();
            ours.extend(
                v2::encode(msg, size)
                    .map_err(|e| error(format!("message {i}: {e}")))?
                    .map(Frame::Binary),
            );
            if count > 1 && ours.len() - before < 2 {
                return Err(error(format!(
                    "message {i} was chunked in {count} frames of at most {largest} bytes; \
                     ours at that size is one frame"
                )));
            }
        }
    } else {
        let keys = AttachmentKeys::new();
        let mut next = 0;
        for (i, (msg, value)) in messages.iter().zip(&values).enumerate() {
            ours.extend(v1::encode(msg, &keys).map_err(|e| error(format!("message {i}: {e}")))?);
            raw.push(tag(&with_keys(value, &mut next)));
        }
    }

    let mut out = vec![
        ("producer", Value::from("wslink-rs")),
        ("generation", Value::from(generation)),
        ("direction", Value::from(direction)),
        ("description", field(&doc, "description")?.clone()),
        (
            "notes",
            Value::from(format!(
                "re-encoded by wslink-rs (crates/wslink-core/examples/golden_ours.rs) \
                 from the messages of tests/golden/vectors/{}",
                rel.display()
            )),
        ),
        (
            "frames",
            Value::Array(ours.iter().map(frame_json).collect()),
        ),
        ("messages", Value::Array(values.iter().map(tag).collect())),
    ];
    if generation == 1 {
        out.push(("raw_messages", Value::Array(raw)));
    }
    let json = serde_json::to_string_pretty(&Value::map(out)).map_err(|e| error(e.to_string()))?;
    if let Some(dir) = dst.parent() {
        std::fs::create_dir_all(dir).map_err(|e| error(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(dst, json + "\n").map_err(|e| error(format!("{}: {e}", dst.display())))?;
    Ok(Written {
        frames: ours.len(),
        identical: same_frames(&ours, frames, generation),
    })
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out_dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: golden_ours OUT_DIR");
        std::process::exit(2);
    };
    let out_dir = PathBuf::from(out_dir);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/vectors");

    let mut files = Vec::new();
    let producers =
        std::fs::read_dir(&vectors).unwrap_or_else(|e| panic!("{}: {e}", vectors.display()));
    for producer in producers {
        let producer = producer.expect("read_dir").path();
        if !producer.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&producer).expect("read_dir") {
            let f = f.expect("read_dir").path();
            if f.extension().is_some_and(|x| x == "json") {
                files.push(f);
            }
        }
    }
    files.sort();

    let (mut written, mut identical, mut skipped, mut failed) = (0, 0, 0, 0);
    for src in &files {
        let rel = src.strip_prefix(&vectors).unwrap_or(src);
        let dst = out_dir.join(rel);
        match convert(src, rel, &dst) {
            Ok(w) => {
                written += 1;
                identical += usize::from(w.identical);
                let same = if w.identical {
                    ", byte-identical to the official frames"
                } else {
                    ""
                };
                println!("wrote {} ({} frames{same})", dst.display(), w.frames);
            }
            Err(Problem::Skip(why)) => {
                skipped += 1;
                println!("skip {}: {why}", rel.display());
            }
            Err(Problem::Error(why)) => {
                failed += 1;
                println!("error {}: {why}", rel.display());
            }
        }
    }
    println!(
        "golden_ours: {written} written ({identical} byte-identical to the official frames), \
         {skipped} skipped, {failed} errors, of {} official vectors",
        files.len()
    );
    if failed > 0 || written == 0 {
        std::process::exit(1);
    }
}
