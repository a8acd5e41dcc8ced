//! Golden vectors: wire bytes produced by Kitware's own packages (Python
//! wslink 2.6.0 and 1.12.4, npm wslink 2.5.0 and 1.12.4), captured by
//! `tests/golden/capture/regenerate.sh` and committed under
//! `tests/golden/vectors/`. Each must decode with our core to exactly the
//! message the capture recorded.
//!
//! Expected messages are "tagged JSON": `{"$bin": hex}` is binary,
//! `{"$int": "digits"}` an integer beyond ±2^53, `{"$float": n}` a float
//! with an integral value; other numbers are integers if integral.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value as Json;
use wslink_core::codec::{v1, v2};
use wslink_core::{Integer, Message, Value};

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/vectors")
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn tagged(j: &Json) -> Value {
    match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(Integer::from(i))
            } else if let Some(u) = n.as_u64() {
                Value::Int(Integer::from(u))
            } else {
                Value::F64(n.as_f64().expect("number"))
            }
        }
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(tagged).collect()),
        Json::Object(map) => {
            if map.len() == 1 {
                if let Some(Json::String(h)) = map.get("$bin") {
                    return Value::Bin(Bytes::from(unhex(h)));
                }
                if let Some(Json::String(d)) = map.get("$int") {
                    // Beyond the u64 range a number can only have been a
                    // double on the wire (JSON from JavaScript, say).
                    return match (d.parse::<i64>(), d.parse::<u64>()) {
                        (Ok(i), _) => Value::from(i),
                        (_, Ok(u)) => Value::from(u),
                        _ => Value::F64(d.parse::<f64>().expect("$int is a number")),
                    };
                }
                if let Some(f) = map.get("$float") {
                    return Value::F64(f.as_f64().expect("$float"));
                }
            }
            Value::Map(
                map.iter()
                    .map(|(k, v)| (Value::Str(k.clone()), tagged(v)))
                    .collect(),
            )
        }
    }
}

/// Map entries compared as sets: JSON objects do not keep wire order.
fn normalize(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Map(entries) => {
            let mut entries: Vec<(Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect();
            entries.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
            Value::Map(entries)
        }
        other => other,
    }
}

fn decode_vector(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: Json = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let generation = doc["generation"].as_u64().ok_or("no generation")?;
    let frames = doc["frames"].as_array().ok_or("no frames")?;
    let mut decoded = Vec::new();
    let mut d2 = v2::Decoder::new(Default::default());
    d2.set_authenticated(true);
    let mut d1 = v1::Decoder::new(Default::default());
    for frame in frames {
        if let Some(hex) = frame.get("binary").and_then(Json::as_str) {
            let bytes = Bytes::from(unhex(hex));
            if generation == 2 {
                if let Some(m) = d2.push(bytes).map_err(|e| e.to_string())? {
                    decoded.push(m);
                }
            } else {
                d1.push_binary(bytes).map_err(|e| e.to_string())?;
            }
        } else if let Some(t) = frame.get("text").and_then(Json::as_str) {
            if let Some(m) = d1.push_text(t).map_err(|e| e.to_string())? {
                decoded.push(m);
            }
        }
    }
    let expected: Vec<Value> = doc["messages"]
        .as_array()
        .ok_or("no messages")?
        .iter()
        .map(tagged)
        .collect();
    if decoded.len() != expected.len() {
        return Err(format!(
            "decoded {} messages, expected {}",
            decoded.len(),
            expected.len()
        ));
    }
    for (got, want) in decoded.iter().zip(expected) {
        // The expectation is the whole envelope; ours parsed it, so compare
        // the envelope rebuilt from the parsed message as well as the parse.
        let want_msg =
            Message::from_value(want.clone()).map_err(|e| format!("expected message: {e}"))?;
        if normalize(got.to_value()) != normalize(want_msg.to_value()) {
            return Err(format!("decoded {got:?}\nexpected {want_msg:?}"));
        }
    }
    Ok(())
}

#[test]
fn official_packages_bytes_decode_to_what_they_meant() {
    let dir = vectors_dir();
    let producers = [
        "python-wslink-2.6.0",
        "python-wslink-1.12.4",
        "npm-wslink-2.5.0",
        "npm-wslink-1.12.4",
    ];
    let mut failures = Vec::new();
    let mut count = 0;
    for producer in producers {
        let pdir = dir.join(producer);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&pdir)
            .unwrap_or_else(|e| panic!("{}: {e}", pdir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no vectors from {producer}");
        for f in files {
            count += 1;
            if let Err(e) = decode_vector(&f) {
                failures.push(format!("{}: {e}", f.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("{count} golden vectors decoded");
}
