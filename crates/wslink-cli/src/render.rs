//! Values as one line of JSON, with binary data summarised (or saved).
//!
//! - integers print exactly, over the whole `i64`/`u64` range;
//! - floats print in the shortest form that reads back the same (`f32`
//!   values as `f32`); NaN and infinities, which JSON lacks, print as `null`;
//! - binary prints as `{"$binary": {"len": N, "sha256": "<hex>"}}`, with a
//!   `"file"` entry when it was saved;
//! - msgpack extensions print as `{"$ext": {"type": T, "len": N, "sha256": "<hex>"}}`;
//! - map keys that are not strings print as the JSON text of the key.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wslink_core::Value;

/// Renders values, optionally writing binary data to files.
#[derive(Debug)]
pub struct Renderer {
    save_dir: Option<PathBuf>,
    saved: u64,
}

impl Renderer {
    /// A renderer; with `save_dir`, each binary value is written to a new
    /// file there (`binary-0.bin`, `binary-1.bin`, ... in output order).
    pub fn new(save_dir: Option<PathBuf>) -> Self {
        Renderer { save_dir, saved: 0 }
    }

    /// The value as one line of JSON.
    pub fn render(&mut self, value: &Value) -> io::Result<String> {
        let mut out = String::new();
        self.write(&mut out, value)?;
        Ok(out)
    }

    fn write(&mut self, out: &mut String, value: &Value) -> io::Result<()> {
        match value {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::F32(f) if f.is_finite() => out.push_str(&json(f)),
            Value::F64(f) if f.is_finite() => out.push_str(&json(f)),
            Value::F32(_) | Value::F64(_) => out.push_str("null"),
            Value::Str(s) => out.push_str(&json(s)),
            Value::Bin(data) => {
                let file = self.save(data)?;
                let _ = write!(
                    out,
                    r#"{{"$binary":{{"len":{},"sha256":"{}""#,
                    data.len(),
                    sha256_hex(data)
                );
                if let Some(file) = file {
                    let _ = write!(out, r#","file":{}"#, json(&file.display().to_string()));
                }
                out.push_str("}}");
            }
            Value::Ext(tag, data) => {
                let _ = write!(
                    out,
                    r#"{{"$ext":{{"type":{tag},"len":{},"sha256":"{}"}}}}"#,
                    data.len(),
                    sha256_hex(data)
                );
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write(out, item)?;
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        Value::Str(s) => out.push_str(&json(s)),
                        other => {
                            let key = self.render(other)?;
                            out.push_str(&json(&key));
                        }
                    }
                    out.push(':');
                    self.write(out, v)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    fn save(&mut self, data: &[u8]) -> io::Result<Option<PathBuf>> {
        let Some(dir) = &self.save_dir else {
            return Ok(None);
        };
        let path = unused_path(dir, &mut self.saved);
        std::fs::write(&path, data).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
        Ok(Some(path))
    }
}

/// The next `binary-N.bin` in `dir` that does not exist yet.
fn unused_path(dir: &Path, counter: &mut u64) -> PathBuf {
    loop {
        let path = dir.join(format!("binary-{counter}.bin"));
        *counter += 1;
        if !path.exists() {
            return path;
        }
    }
}

fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    // Strings and finite floats always serialize.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn integers_are_exact_and_binary_is_summarised() {
        let v = Value::map([
            ("big", Value::from(u64::MAX)),
            ("small", Value::from(i64::MIN)),
            ("f", Value::from(0.1f32)),
            ("g", Value::from(1e300)),
            ("nan", Value::from(f64::NAN)),
            ("b", Value::from(Bytes::from_static(b"abc"))),
        ]);
        let text = Renderer::new(None).render(&v).unwrap();
        assert_eq!(
            text,
            r#"{"big":18446744073709551615,"small":-9223372036854775808,"f":0.1,"g":1e+300,"nan":null,"b":{"$binary":{"len":3,"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}}"#
        );
    }

    #[test]
    fn non_string_keys_and_extensions() {
        let v = Value::Map(vec![(Value::from(1), Value::Ext(3, Bytes::new()))]);
        let text = Renderer::new(None).render(&v).unwrap();
        assert_eq!(
            text,
            r#"{"1":{"$ext":{"type":3,"len":0,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}"#
        );
    }
}
