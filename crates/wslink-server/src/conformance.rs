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
use wslink_core::{Integer, Value};

use crate::{CallContext, HandlerError, Methods, ServerBuilder};

/// The largest blob or publish payload the service will make, so that a
/// client cannot ask it to allocate without bound.
pub const MAX_GENERATED_BYTES: u64 = 256 * 1024 * 1024;

/// `bytes(size, seed)`: byte `i` is `(i * 31 + seed) mod 251`.
pub fn pattern(size: usize, seed: u64) -> Bytes {
    let seed = (seed % 251) as usize;
    (0..size)
        .map(|i| ((i % 251 * 31 + seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[derive(Deserialize)]
struct BlobParams {
    size: u64,
    #[serde(default)]
    seed: u64,
}

#[derive(Serialize)]
struct Blob {
    size: u64,
    blob: Bytes,
}

#[derive(Serialize)]
struct Digest {
    len: u64,
    sum: u64,
}

#[derive(Serialize)]
struct Published {
    seq: u64,
    blob: Bytes,
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
                blob: pattern(size, p.seed),
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
            check_size(count.saturating_mul(size as u64))?;
            for seq in 0..count {
                let message = Published {
                    seq,
                    blob: pattern(size, seq),
                };
                ctx.publisher().publish(&topic, &message)?;
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
