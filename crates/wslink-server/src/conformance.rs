//! The conformance service every server in the cross-language tests exposes
//! (`shared/conformance-service.md` in the project): echo, arithmetic,
//! keyword arguments, errors, binary blobs both ways, publishing, sleeping.
//!
//! ```
//! let server = wslink_server::conformance::builder().secret("wslink-secret").build();
//! assert!(server.method_names().contains(&"conformance.blob".to_string()));
//! ```

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wslink_core::params::RawArgs;
use wslink_core::{Integer, SharedBytes, Value};

use crate::{CallContext, HandlerError, Methods, ServerBuilder};

/// The largest blob or publish payload the service will make, so that a
/// client cannot ask it to allocate without bound.
pub const MAX_GENERATED_BYTES: u64 = 256 * 1024 * 1024;

/// The most one `conformance.publish` call sends in all.
pub const MAX_PUBLISHED_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Publishes at least this large give the other tasks a turn after each.
const YIELD_AFTER_BYTES: usize = 64 * 1024;

/// The pattern repeats every 251 bytes.
const PERIOD: usize = 251;

/// `bytes(size, seed)`: byte `i` is `(i * 31 + seed) mod 251`.
///
/// One period is computed, then copied out (memcpy speed: the benchmarks
/// publish through this, and a byte-by-byte loop would be what they measure).
pub fn pattern(size: usize, seed: u64) -> Bytes {
    let seed = (seed % PERIOD as u64) as usize;
    let period: Vec<u8> = (0..PERIOD)
        .map(|i| ((i * 31 + seed) % PERIOD) as u8)
        .collect();
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        let n = (size - out.len()).min(PERIOD);
        out.extend_from_slice(&period[..n]);
    }
    out.into()
}

/// `bytes(size, seed)` for many seeds, each a zero-copy slice of one
/// buffer: `bytes(size, seed)` is `bytes(size + 251, 0)` from offset
/// `seed * 81 mod 251`, 81 being the inverse of 31 mod 251.
struct Patterns {
    base: Bytes,
    size: usize,
}

impl Patterns {
    fn new(size: usize) -> Self {
        Patterns {
            base: pattern(size + PERIOD, 0),
            size,
        }
    }

    fn get(&self, seed: u64) -> Bytes {
        let start = (seed % PERIOD as u64) as usize * 81 % PERIOD;
        self.base.slice(start..start + self.size)
    }
}

#[derive(Deserialize)]
struct BlobParams {
    size: u64,
    #[serde(default)]
    seed: u64,
}

/// `SharedBytes`: a 2.x reply carries the blob itself, not a copy.
#[derive(Serialize)]
struct Blob {
    size: u64,
    blob: SharedBytes,
}

#[derive(Serialize)]
struct Digest {
    len: u64,
    sum: u64,
}

/// `SharedBytes`: every 2.x subscriber's frame is a slice of the one
/// pattern buffer, never a copy of it.
#[derive(Serialize)]
struct Published {
    seq: u64,
    blob: SharedBytes,
}

fn check_size(size: u64) -> Result<usize, HandlerError> {
    if size > MAX_GENERATED_BYTES {
        return Err(HandlerError::msg(format!(
            "size {size} is over the service's limit of {MAX_GENERATED_BYTES} bytes"
        )));
    }
    Ok(size as usize)
}

fn add(a: &Value, b: &Value) -> Result<Value, HandlerError> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        let sum = i128::from(*x) + i128::from(*y);
        if let Ok(n) = i64::try_from(sum) {
            return Ok(Value::Int(Integer::from(n)));
        }
        if let Ok(n) = u64::try_from(sum) {
            return Ok(Value::Int(Integer::from(n)));
        }
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => Ok(Value::F64(x + y)),
        _ => Err(HandlerError::msg(format!(
            "add needs two numbers, got {} and {}",
            a.kind(),
            b.kind()
        ))),
    }
}

/// The service's methods.
pub fn methods() -> Methods {
    let mut m = Methods::new();
    m.add(
        "conformance.echo",
        |_: CallContext, (value,): (Value,)| async move { Ok::<_, HandlerError>(value) },
    );
    m.add(
        "conformance.add",
        |_: CallContext, (a, b): (Value, Value)| async move { add(&a, &b) },
    );
    m.add(
        "conformance.kwargs",
        |_: CallContext, raw: RawArgs| async move {
            Ok::<_, HandlerError>(Value::map([
                ("args", Value::Array(raw.args)),
                ("kwargs", Value::Map(raw.kwargs)),
            ]))
        },
    );
    m.add("conformance.fail", |_: CallContext, (message,): (String,)| async move {
        Err::<(), _>(HandlerError::msg(message))
    });
    m.add(
        "conformance.blob",
        |_: CallContext, p: BlobParams| async move {
            let size = check_size(p.size)?;
            Ok::<_, HandlerError>(Blob {
                size: p.size,
                blob: pattern(size, p.seed).into(),
            })
        },
    );
    m.add(
        "conformance.digest",
        |_: CallContext, (blob,): (Bytes,)| async move {
            let sum = blob
                .iter()
                .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b)));
            Ok::<_, HandlerError>(Digest {
                len: blob.len() as u64,
                sum: u64::from(sum),
            })
        },
    );
    m.add(
        "conformance.publish",
        |ctx: CallContext, (topic, count, size): (String, u64, u64)| async move {
            let size = check_size(size)?;
            // Published one at a time at the readers' pace, so the total
            // costs time, not memory; it is still bounded.
            if count.saturating_mul(size as u64) > MAX_PUBLISHED_BYTES {
                return Err(HandlerError::msg(format!(
                    "count x size is over the service's limit of {MAX_PUBLISHED_BYTES} bytes"
                )));
            }
            let patterns = Patterns::new(size);
            for seq in 0..count {
                let message = Published {
                    seq,
                    blob: patterns.get(seq).into(),
                };
                // At the readers' pace: a burst larger than a client's
                // queue reaches a client that keeps up, whole and in order.
                ctx.publisher().publish_wait(&topic, &message).await?;
                if size >= YIELD_AFTER_BYTES {
                    // Let the connections' writers send this one while the
                    // next is made, instead of after the whole batch.
                    tokio::task::yield_now().await;
                }
            }
            Ok::<_, HandlerError>(count)
        },
    );
    m.add(
        "conformance.sleep",
        |_: CallContext, (ms,): (u64,)| async move {
            if ms > 60_000 {
                return Err(HandlerError::msg("sleep is limited to 60000 ms"));
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        },
    );
    m
}

/// A server builder with the conformance service registered.
pub fn builder() -> ServerBuilder {
    crate::Server::builder().methods(methods())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_matches_the_spec() {
        let p = pattern(600, 7);
        for (i, b) in p.iter().enumerate() {
            assert_eq!(*b as usize, (i * 31 + 7) % 251);
        }
    }

    #[test]
    fn pattern_slices_match_the_spec() {
        let p = Patterns::new(1000);
        for seed in [0u64, 1, 30, 250, 251, 1234] {
            assert_eq!(p.get(seed), pattern(1000, seed));
        }
    }

    #[test]
    fn add_keeps_integers_exact() {
        assert_eq!(
            add(&Value::from(2), &Value::from(3)).unwrap(),
            Value::from(5)
        );
        assert_eq!(
            add(&Value::from(i64::MAX), &Value::from(1)).unwrap(),
            Value::from(i64::MAX as u64 + 1)
        );
        assert_eq!(
            add(&Value::from(0.5), &Value::from(0.25)).unwrap(),
            Value::F64(0.75)
        );
        assert!(add(&Value::from("x"), &Value::from(1)).is_err());
    }
}
