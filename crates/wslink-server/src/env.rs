//! The `WSLINK_*` environment variables of Kitware's Python server, read the
//! way it reads them, so a deployment's environment carries over unchanged.
//!
//! Python turns each into an `int` at import and crashes with a traceback on
//! a bad value; here a bad value is an [`EnvError`] that names the variable
//! and says what it should hold.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::ServerConfig;
use wslink_core::chunking::HEADER_LEN;

/// A `WSLINK_*` variable whose value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The value is not what the variable takes.
    #[error("{variable}={value:?}: {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value, as set (lossily decoded if it is not UTF-8).
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// `WSLINK_HTTP_HEADERS` names a file that cannot be used.
    #[error("WSLINK_HTTP_HEADERS={}: {reason}", path.display())]
    HeadersFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Looks a variable up (the process environment, or a test's map).
type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn text(lookup: Lookup<'_>, variable: &'static str) -> Option<String> {
    lookup(variable).map(|v| v.to_string_lossy().into_owned())
}

/// An integer as Python's `int()` reads one (surrounding blanks allowed).
fn integer(lookup: Lookup<'_>, variable: &'static str) -> Result<Option<i64>, EnvError> {
    let Some(value) = text(lookup, variable) else {
        return Ok(None);
    };
    match value.trim().parse::<i64>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(EnvError::Invalid {
            variable,
            value,
            expected: "expected an integer",
        }),
    }
}

fn size(
    lookup: Lookup<'_>,
    variable: &'static str,
    min: i64,
    expected: &'static str,
) -> Result<Option<usize>, EnvError> {
    match integer(lookup, variable)? {
        None => Ok(None),
        Some(n) if n >= min => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        Some(_) => Err(EnvError::Invalid {
            variable,
            value: text(lookup, variable).unwrap_or_default(),
            expected,
        }),
    }
}

/// Applies every variable that is set to `config`. Variables that are not
/// set leave its values alone.
pub(crate) fn apply(config: &mut ServerConfig, lookup: Lookup<'_>) -> Result<(), EnvError> {
    let limits = &mut config.limits;
    if let Some(n) = size(
        lookup,
        "WSLINK_MAX_MSG_SIZE",
        HEADER_LEN as i64 + 1,
        "expected the largest frame in bytes, over the 12-byte chunk header",
    )? {
        limits.max_frame_size = n;
    }
    if let Some(n) = size(
        lookup,
        "WSLINK_MSG_OVERHEAD",
        0,
        "expected a number of bytes (0 or more)",
    )? {
        limits.frame_overhead = n;
    }
    if let Some(n) = size(
        lookup,
        "WSLINK_AUTH_MSG_SIZE",
        0,
        "expected a number of bytes (0 or more)",
    )? {
        limits.pre_auth_max_message_size = n;
    }
    if let Some(secs) = integer(lookup, "WSLINK_HEART_BEAT")? {
        // As Python: below 1 turns the heartbeat off.
        config.keepalive = (secs >= 1).then(|| Duration::from_secs(secs as u64));
    }
    if let Some(n) = integer(lookup, "WSLINK_WS_COMPRESS")? {
        config.compression = n != 0;
    }
    if let Some(n) = integer(lookup, "WSLINK_FOLLOW_SYMLINKS")? {
        // Python ORs it with the server's own setting: it can only turn on.
        config.follow_symlinks |= n != 0;
    }
    match lookup("WSLINK_HTTP_HEADERS") {
        // Python takes an empty value as unset.
        Some(path) if !path.is_empty() => {
            config.http_headers = read_headers(Path::new(&path))?;
        }
        _ => {}
    }
    Ok(())
}

/// A JSON object of header names to string values.
fn read_headers(path: &Path) -> Result<HeaderMap, EnvError> {
    let fail = |reason: String| EnvError::HeadersFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let serde_json::Value::Object(object) = json else {
        return Err(fail(
            "expected a JSON object of header names to values".into(),
        ));
    };
    let mut headers = HeaderMap::new();
    for (name, value) in object {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| fail(format!("{name:?} is not a valid header name")))?;
        let serde_json::Value::String(value) = value else {
            return Err(fail(format!("the value of {name:?} is not a string")));
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| fail(format!("the value of {name:?} is not a valid header value")))?;
        headers.insert(header, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn applied(vars: &[(&str, &str)]) -> Result<ServerConfig, EnvError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        let mut config = ServerConfig::default();
        apply(&mut config, &|name| map.get(name).cloned())?;
        Ok(config)
    }

    #[test]
    fn nothing_set_changes_nothing() {
        let config = applied(&[]).unwrap();
        let default = ServerConfig::default();
        assert_eq!(config.limits, default.limits);
        assert_eq!(config.keepalive, default.keepalive);
        assert!(config.compression && !config.follow_symlinks && config.http_headers.is_empty());
    }

    #[test]
    fn each_variable_lands_on_its_setting() {
        let config = applied(&[
            ("WSLINK_MAX_MSG_SIZE", "1000"),
            ("WSLINK_MSG_OVERHEAD", " 100 "),
            ("WSLINK_AUTH_MSG_SIZE", "2048"),
            ("WSLINK_HEART_BEAT", "7"),
            ("WSLINK_WS_COMPRESS", "0"),
            ("WSLINK_FOLLOW_SYMLINKS", "1"),
        ])
        .unwrap();
        assert_eq!(config.limits.max_frame_size, 1000);
        assert_eq!(config.limits.frame_overhead, 100);
        assert_eq!(config.limits.v2_frame_limit(), 1100);
        assert_eq!(config.limits.pre_auth_max_message_size, 2048);
        assert_eq!(config.keepalive, Some(Duration::from_secs(7)));
        assert!(!config.compression);
        assert!(config.follow_symlinks);
    }

    #[test]
    fn a_heart_beat_below_one_turns_keepalive_off() {
        for v in ["0", "-5"] {
            assert_eq!(
                applied(&[("WSLINK_HEART_BEAT", v)]).unwrap().keepalive,
                None
            );
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("WSLINK_MAX_MSG_SIZE", "4MB"),
            ("WSLINK_MAX_MSG_SIZE", "12"),
            ("WSLINK_MSG_OVERHEAD", "-1"),
            ("WSLINK_AUTH_MSG_SIZE", ""),
            ("WSLINK_HEART_BEAT", "thirty"),
            ("WSLINK_WS_COMPRESS", "yes"),
            ("WSLINK_FOLLOW_SYMLINKS", "true"),
        ] {
            let e = applied(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(&format!("{var}=")), "{e}");
        }
    }

    #[test]
    fn http_headers_come_from_a_json_file() {
        let dir = std::env::temp_dir().join(format!("wslink-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"Cross-Origin-Opener-Policy": "same-origin", "X-A": "1"}"#,
        )
        .unwrap();
        let config = applied(&[("WSLINK_HTTP_HEADERS", good.to_str().unwrap())]).unwrap();
        assert_eq!(
            config.http_headers["cross-origin-opener-policy"],
            "same-origin"
        );
        assert_eq!(config.http_headers["x-a"], "1");

        for (name, body, says) in [
            ("list.json", "[1]", "JSON object"),
            ("num.json", r#"{"X-A": 1}"#, "not a string"),
            ("name.json", r#"{"bad name": "x"}"#, "header name"),
            ("broken.json", "{", "not JSON"),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, body).unwrap();
            let e = applied(&[("WSLINK_HTTP_HEADERS", path.to_str().unwrap())])
                .unwrap_err()
                .to_string();
            assert!(e.contains(name) && e.contains(says), "{e}");
        }
        let missing = dir.join("missing.json");
        let e = applied(&[("WSLINK_HTTP_HEADERS", missing.to_str().unwrap())]).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert!(applied(&[("WSLINK_HTTP_HEADERS", "")])
            .unwrap()
            .http_headers
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
