//! Checks message-id parsing and formatting, and name validation, against a
//! hand-written matcher for the grammar the npm client routes by,
//! `^(rpc|publish|system):(\w+(\.\w+)*):(\d+)$` with ASCII `\w`:
//! - nothing panics;
//! - `is_valid_name`, `validate_topic` and `validate_client_id` agree with
//!   `\w+(\.\w+)*`, and their errors name the input;
//! - an id parses exactly when it matches the grammar with a sequence number
//!   that fits a u64 written without leading zeros, into the same parts, and
//!   whatever parses formats back to the same string;
//! - `MessageId::rpc` / `publish` accept exactly the valid names, and what
//!   they build formats as `KIND:NAME:SEQ` and parses back equal.
//!
//! Input: the id (invalid UTF-8 replaced); the whole input is also tried as
//! a name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wslink_core::ids::{
    is_valid_name, validate_client_id, validate_topic, IdError, IdKind, MessageId,
};

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Matches `\w+(\.\w+)*` at the start of `s`; returns how many bytes it
/// took (greedy; `.` and `:` are not word bytes, so there is one way).
fn match_name(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let start = i;
        while i < s.len() && is_word(s[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        if s.get(i) == Some(&b'.') && s.get(i + 1).is_some_and(|&b| is_word(b)) {
            i += 1;
        } else {
            return Some(i);
        }
    }
}

fn reference_is_name(s: &str) -> bool {
    match_name(s.as_bytes()) == Some(s.len())
}

fn reference_parse(s: &str) -> Option<(IdKind, &str, u64)> {
    let (kind, rest) = [
        ("rpc:", IdKind::Rpc),
        ("publish:", IdKind::Publish),
        ("system:", IdKind::System),
    ]
    .into_iter()
    .find_map(|(prefix, kind)| s.strip_prefix(prefix).map(|rest| (kind, rest)))?;
    let n = match_name(rest.as_bytes())?;
    let digits = rest[n..].strip_prefix(':')?.as_bytes();
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut seq = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        seq = seq.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((kind, &rest[..n], seq))
}

fn kind_str(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Rpc => "rpc",
        IdKind::Publish => "publish",
        IdKind::System => "system",
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();

    // Names.
    let valid = reference_is_name(s);
    assert_eq!(is_valid_name(s), valid, "is_valid_name({s:?})");
    for (what, result) in [
        ("topic", validate_topic(s)),
        ("client id", validate_client_id(s)),
    ] {
        match result {
            Ok(()) => assert!(valid),
            Err(e) => {
                assert!(!valid);
                assert_eq!(
                    e,
                    IdError::InvalidName {
                        what,
                        name: s.to_owned()
                    }
                );
            }
        }
    }
    let seq = (data.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (kind, built) in [
        (IdKind::Rpc, MessageId::rpc(s, seq)),
        (IdKind::Publish, MessageId::publish(s, seq)),
    ] {
        match built {
            Ok(id) => {
                assert!(valid);
                assert_eq!((id.kind, id.name.as_str(), id.seq), (kind, s, seq));
                let text = id.to_string();
                assert_eq!(text, format!("{}:{s}:{seq}", kind_str(kind)));
                assert_eq!(text.parse::<MessageId>(), Ok(id));
            }
            Err(e) => {
                assert!(!valid);
                assert!(matches!(e, IdError::InvalidName { .. }));
            }
        }
    }

    // Ids.
    match (s.parse::<MessageId>(), reference_parse(s)) {
        (Ok(id), Some(parts)) => {
            assert_eq!((id.kind, id.name.as_str(), id.seq), parts);
            assert_eq!(id.to_string(), s, "formats back to the same string");
        }
        (Err(e), None) => assert_eq!(e, IdError::Malformed { id: s.to_owned() }),
        (got, expected) => panic!("{s:?} parsed as {got:?}, the grammar says {expected:?}"),
    }
});
