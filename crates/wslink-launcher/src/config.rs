//! The launcher's configuration file: Kitware's format, comments and all.
//!
//! The file is JSON with `//` and `/* */` comments. Its sections are
//! `configuration` (where the launcher listens and how it answers),
//! `sessionData`, `resources` (hosts and port ranges for sessions),
//! `properties` (values for the command lines) and `apps` (one command line
//! per application). Keys this crate adds are extensions Kitware's launcher
//! ignores: `configuration.proxy`, `configuration.max_concurrent_launches`,
//! `configuration.max_request_bytes`, `configuration.stop_grace`, and an
//! app's `env`.
//!
//! ```
//! use wslink_launcher::config::Config;
//!
//! let config = Config::parse(r#"{
//!     // Where the launcher listens.
//!     "configuration": {
//!         "host": "127.0.0.1", "port": 9000, "endpoint": "paraview",
//!         "sessionURL": "ws://${host}:${port}/ws", "timeout": 25,
//!         "fields": []
//!     },
//!     "resources": [ { "host": "127.0.0.1", "port_range": [9001, 9002] } ],
//!     "properties": { "python": "/usr/bin/python3" },
//!     "apps": {
//!         "cone": { "cmd": ["${python}", "cone.py", "--port", "${port}"],
//!                   "ready_line": "Starting factory" }
//!     }
//! }"#).unwrap();
//! assert_eq!(config.configuration.port, 9000);
//! assert_eq!(config.apps["cone"].ready_line.as_deref(), Some("Starting factory"));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::sanitize::{Rule, Sanitizer};
use crate::template;

/// What can be wrong with a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not JSON once its comments are removed.
    #[error("not valid JSON (after removing comments): {0}")]
    Json(#[from] serde_json::Error),
    /// A value is missing or unusable; the message names it.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

/// A whole configuration file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `configuration` section.
    pub configuration: Settings,
    /// `sessionData`: values (templates) added to each session; they reach
    /// the client only when their key is listed in `fields`, as in Kitware's.
    pub session_data: Map<String, Value>,
    /// `resources`: where sessions may run.
    pub resources: Vec<Resource>,
    /// `properties`: values for `${name}` in command lines.
    pub properties: Map<String, Value>,
    /// `apps`, by the name clients ask for in `application`.
    pub apps: BTreeMap<String, App>,
    /// Keys this crate does not know, for a warning at start (a typo in an
    /// extension key would otherwise go unnoticed).
    pub unknown_keys: Vec<String>,
}

/// The `configuration` section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The address the launcher listens on (`host`, default `localhost`).
    pub host: String,
    /// Its port (`port`, default 8080).
    pub port: u16,
    /// The path sessions are requested at (`endpoint`, default `paraview`,
    /// what npm wslink's `SmartConnect` uses when given no
    /// `sessionManagerURL`), without slashes around it.
    pub endpoint: String,
    /// A directory served over HTTP on the launcher's port (`content`).
    pub content: Option<PathBuf>,
    /// The proxy-mapping file for Apache (`proxy_file`): one
    /// `ID HOST:PORT` line per session.
    pub proxy_file: Option<PathBuf>,
    /// The template of the URL clients connect to (`sessionURL`).
    pub session_url: String,
    /// How long a process has to print its ready line (`timeout`).
    pub timeout: Duration,
    /// Where the session logs (`ID.txt`) and `launcherLog.log` go (`log_dir`).
    pub log_dir: Option<PathBuf>,
    /// Session keys returned to the client besides `id`, `sessionURL` and
    /// `sessionManagerURL` (`fields`).
    pub fields: Vec<String>,
    /// The rules client values must pass (`sanitize`).
    pub sanitize: Sanitizer,
    /// Extension: the built-in WebSocket proxy (`proxy`).
    pub proxy: Option<ProxySettings>,
    /// Extension: how many sessions may be starting at once
    /// (`max_concurrent_launches`, default 8); more are refused with 503.
    pub max_concurrent_launches: usize,
    /// Extension: the largest request body accepted (`max_request_bytes`,
    /// default 65536); larger ones get 413.
    pub max_request_bytes: usize,
    /// Extension: how long a process has between SIGTERM and SIGKILL when
    /// it is stopped (`stop_grace`, seconds, default 5).
    pub stop_grace: Duration,
}

/// The built-in WebSocket proxy (`configuration.proxy`, an extension).
///
/// `"proxy": true` turns it on with the defaults; an object sets them:
/// `{"path": "/proxy", "target_path": "/ws", "max_connections": 1000,
/// "connect_timeout": 10}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// The route on the launcher's port (`path`, default `/proxy`); a
    /// browser opens `PATH?sessionId=ID`.
    pub path: String,
    /// The path on the session's process it leads to (`target_path`,
    /// default `/ws`), unless the request names one with `&path=`.
    pub target_path: String,
    /// Proxied connections open at once, all sessions together
    /// (`max_connections`, default 1000).
    pub max_connections: usize,
    /// How long reaching the session's process may take
    /// (`connect_timeout`, seconds, default 10).
    pub connect_timeout: Duration,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            path: "/proxy".into(),
            target_path: "/ws".into(),
            max_connections: 1000,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// One entry of `resources`: a host and an inclusive range of ports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resource {
    /// The host sessions run on; `${host}` in templates.
    pub host: String,
    /// The first and last port, both included.
    pub port_range: [u16; 2],
}

/// One application of `apps`.
#[derive(Debug, Clone, Default)]
pub struct App {
    /// The command line: a program and its arguments, each a template.
    /// It runs without a shell.
    pub cmd: Vec<String>,
    /// Text the process prints (stdout or stderr) when it is ready. Without
    /// it, the session is ready once its port accepts connections.
    pub ready_line: Option<String>,
    /// Extension: environment variables to set, values being templates
    /// (`{"WSLINK_AUTH_KEY": "${secret}"}` hands the secret over without
    /// a command line showing it).
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Number {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Number::Int(n) => Some(*n as f64),
            Number::Float(f) => Some(*f),
            Number::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct RawApp {
    cmd: Vec<Value>,
    #[serde(default)]
    ready_line: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawProxy {
    On(bool),
    Settings {
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        target_path: Option<String>,
        #[serde(default)]
        max_connections: Option<usize>,
        #[serde(default)]
        connect_timeout: Option<Number>,
    },
}

const KNOWN_TOP: &[&str] = &[
    "configuration",
    "sessionData",
    "resources",
    "properties",
    "apps",
];
const KNOWN_SETTINGS: &[&str] = &[
    "host",
    "port",
    "endpoint",
    "content",
    "proxy_file",
    "sessionURL",
    "timeout",
    "log_dir",
    "fields",
    "sanitize",
    "proxy",
    "max_concurrent_launches",
    "max_request_bytes",
    "stop_grace",
];

/// Removes `//` and `/* */` comments outside of strings, as Kitware's
/// launcher does before parsing. Line ends are kept, so JSON errors point
/// at the right line.
///
/// ```
/// use wslink_launcher::config::strip_comments;
///
/// let text = "{\"url\": \"http://x\" // a comment\n /* more */ }";
/// assert_eq!(strip_comments(text), "{\"url\": \"http://x\" \n  }");
/// ```
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(s) = chars.next() {
                    out.push(s);
                    match s {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                out.push(escaped);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = '\0';
                for s in chars.by_ref() {
                    if s == '\n' {
                        out.push('\n');
                    }
                    if previous == '*' && s == '/' {
                        break;
                    }
                    previous = s;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn string_of(value: &Value, what: &str) -> Result<String, ConfigError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(invalid(format!("{what} must be a string, not {other}"))),
    }
}

fn optional_path(value: Option<&Value>, what: &str) -> Result<Option<PathBuf>, ConfigError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let s = string_of(v, what)?;
            Ok((!s.is_empty()).then(|| PathBuf::from(s)))
        }
    }
}

fn seconds(value: Option<&Value>, what: &str, default: f64) -> Result<Duration, ConfigError> {
    let secs = match value {
        None | Some(Value::Null) => default,
        Some(v) => serde_json::from_value::<Number>(v.clone())
            .ok()
            .and_then(|n| n.as_f64())
            .ok_or_else(|| invalid(format!("{what} must be a number of seconds, not {v}")))?,
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            invalid(format!(
                "{what} must be a positive number of seconds, not {secs}"
            ))
        })
}

fn count(value: Option<&Value>, what: &str, default: usize) -> Result<usize, ConfigError> {
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| invalid(format!("{what} must be a positive integer, not {v}"))),
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and checks the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let root: Map<String, Value> = serde_json::from_str(&strip_comments(text))?;
        Config::from_json(root)
    }

    /// Checks an already parsed configuration.
    pub fn from_json(mut root: Map<String, Value>) -> Result<Config, ConfigError> {
        let mut unknown_keys: Vec<String> = root
            .keys()
            .filter(|k| !KNOWN_TOP.contains(&k.as_str()))
            .cloned()
            .collect();
        let settings = match root.remove("configuration") {
            Some(Value::Object(map)) => map,
            None => Map::new(),
            Some(other) => {
                return Err(invalid(format!(
                    "configuration must be an object, not {other}"
                )))
            }
        };
        unknown_keys.extend(
            settings
                .keys()
                .filter(|k| !KNOWN_SETTINGS.contains(&k.as_str()))
                .map(|k| format!("configuration.{k}")),
        );
        let configuration = Settings::from_json(&settings)?;

        let object =
            |value: Option<Value>, what: &str| -> Result<Map<String, Value>, ConfigError> {
                match value {
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(Value::Object(map)) => Ok(map),
                    Some(other) => Err(invalid(format!("{what} must be an object, not {other}"))),
                }
            };
        let session_data = object(root.remove("sessionData"), "sessionData")?;
        let properties = object(root.remove("properties"), "properties")?;

        let resources: Vec<Resource> = match root.remove("resources") {
            Some(v) => serde_json::from_value(v).map_err(|e| {
                invalid(format!(
                    "resources must be a list of {{\"host\": ..., \"port_range\": [FIRST, LAST]}}: {e}"
                ))
            })?,
            None => return Err(invalid("the configuration has no resources (hosts and port ranges for sessions)")),
        };
        if resources.is_empty() {
            return Err(invalid(
                "resources is empty: sessions need at least one host and port range",
            ));
        }
        for r in &resources {
            let [first, last] = r.port_range;
            if first == 0 || first > last {
                return Err(invalid(format!(
                    "resources: port_range [{first}, {last}] of {} must be [FIRST, LAST] with 0 < FIRST <= LAST",
                    r.host
                )));
            }
        }

        let raw_apps = match root.remove("apps") {
            Some(Value::Object(map)) => map,
            None => return Err(invalid("the configuration has no apps")),
            Some(other) => return Err(invalid(format!("apps must be an object, not {other}"))),
        };
        let mut apps = BTreeMap::new();
        for (name, value) in raw_apps {
            let raw: RawApp = serde_json::from_value(value).map_err(|e| {
                invalid(format!(
                    "apps.{name}: {e} (expected {{\"cmd\": [...], \"ready_line\": \"...\"}})"
                ))
            })?;
            if raw.cmd.is_empty() {
                return Err(invalid(format!("apps.{name}.cmd is empty")));
            }
            let cmd = raw
                .cmd
                .iter()
                .map(|v| string_of(v, &format!("apps.{name}.cmd item")))
                .collect::<Result<Vec<_>, _>>()?;
            let env = raw
                .env
                .iter()
                .map(|(k, v)| Ok((k.clone(), string_of(v, &format!("apps.{name}.env.{k}"))?)))
                .collect::<Result<BTreeMap<_, _>, ConfigError>>()?;
            if env.keys().any(|k| k.is_empty() || k.contains(['=', '\0'])) {
                return Err(invalid(format!(
                    "apps.{name}.env: a variable name is empty or holds '=' or NUL"
                )));
            }
            apps.insert(
                name,
                App {
                    cmd,
                    ready_line: raw.ready_line.filter(|l| !l.is_empty()),
                    env,
                },
            );
        }
        if apps.is_empty() {
            return Err(invalid("apps is empty: nothing could be launched"));
        }

        Ok(Config {
            configuration,
            session_data,
            resources,
            properties,
            apps,
            unknown_keys,
        })
    }

    /// Warnings worth printing at start: unknown keys, and client values a
    /// command line expects but no `sanitize` rule admits (those stay
    /// unsubstituted, see [`crate::sessions`]).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown_keys
            .iter()
            .map(|k| format!("unknown key {k} (ignored)"))
            .collect();
        for (name, app) in &self.apps {
            let mut names = Vec::new();
            for t in app.cmd.iter().chain(app.env.values()) {
                names.extend(template::variables(t));
            }
            names.sort();
            names.dedup();
            for var in names {
                let known = crate::sessions::BUILT_IN_VARIABLES.contains(&var.as_str())
                    || self.properties.contains_key(&var)
                    || self.configuration.sanitize.has_rule(&var);
                if !known {
                    out.push(format!(
                        "apps.{name}: ${{{var}}} is no property, no built-in and has no sanitize rule: \
                         it stays as written (client values reach a command only through sanitize)"
                    ));
                }
            }
        }
        out
    }
}

impl Settings {
    fn from_json(s: &Map<String, Value>) -> Result<Settings, ConfigError> {
        let host = match s.get("host") {
            None | Some(Value::Null) => "localhost".to_owned(),
            Some(v) => string_of(v, "configuration.host")?,
        };
        let port = match s.get("port") {
            None | Some(Value::Null) => 8080,
            Some(v) => serde_json::from_value::<Number>(v.clone())
                .ok()
                .and_then(|n| n.as_f64())
                .filter(|p| p.fract() == 0.0 && (0.0..=65535.0).contains(p))
                .map(|p| p as u16)
                .ok_or_else(|| {
                    invalid(format!("configuration.port must be a port number, not {v}"))
                })?,
        };
        let endpoint = match s.get("endpoint") {
            None | Some(Value::Null) => "paraview".to_owned(),
            Some(v) => string_of(v, "configuration.endpoint")?,
        };
        let endpoint = endpoint.trim_matches('/').to_owned();
        if endpoint.is_empty() || endpoint.contains(['?', '#', ' ']) {
            return Err(invalid(format!(
                "configuration.endpoint {endpoint:?} must be a path such as \"paraview\""
            )));
        }
        let session_url = match s.get("sessionURL") {
            None | Some(Value::Null) => "ws://${host}:${port}/ws".to_owned(),
            Some(v) => string_of(v, "configuration.sessionURL")?,
        };
        let fields = match s.get("fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| string_of(v, "configuration.fields item"))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(invalid(format!(
                    "configuration.fields must be a list, not {other}"
                )))
            }
        };
        let mut rules = BTreeMap::new();
        match s.get("sanitize") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, spec) in map {
                    rules.insert(
                        key.clone(),
                        Rule::from_json(spec)
                            .map_err(|e| invalid(format!("configuration.sanitize.{key}: {e}")))?,
                    );
                }
            }
            Some(other) => {
                return Err(invalid(format!(
                    "configuration.sanitize must be an object, not {other}"
                )))
            }
        }
        let proxy = match s.get("proxy") {
            None | Some(Value::Null) => None,
            Some(v) => match serde_json::from_value::<RawProxy>(v.clone()) {
                Ok(RawProxy::On(false)) => None,
                Ok(RawProxy::On(true)) => Some(ProxySettings::default()),
                Ok(RawProxy::Settings {
                    path,
                    target_path,
                    max_connections,
                    connect_timeout,
                }) => {
                    let d = ProxySettings::default();
                    let path = path.unwrap_or(d.path);
                    let target_path = target_path.unwrap_or(d.target_path);
                    for (what, p) in [("path", &path), ("target_path", &target_path)] {
                        if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
                            return Err(invalid(format!(
                                "configuration.proxy.{what} {p:?} must be a path starting with '/'"
                            )));
                        }
                    }
                    let connect_timeout = match connect_timeout {
                        None => d.connect_timeout,
                        Some(n) => Duration::try_from_secs_f64(n.as_f64().unwrap_or(-1.0))
                            .ok()
                            .filter(|d| !d.is_zero())
                            .ok_or_else(|| invalid("configuration.proxy.connect_timeout must be a positive number of seconds"))?,
                    };
                    Some(ProxySettings {
                        path,
                        target_path,
                        max_connections: max_connections.filter(|n| *n > 0).unwrap_or(d.max_connections),
                        connect_timeout,
                    })
                }
                Err(_) => {
                    return Err(invalid(format!(
                        "configuration.proxy must be true, false or {{\"path\": \"/proxy\", ...}}, not {v}"
                    )))
                }
            },
        };
        if let Some(p) = &proxy {
            if p.path.trim_matches('/') == endpoint {
                return Err(invalid(
                    "configuration.proxy.path must differ from configuration.endpoint",
                ));
            }
        }
        Ok(Settings {
            host,
            port,
            endpoint,
            content: optional_path(s.get("content"), "configuration.content")?,
            proxy_file: optional_path(s.get("proxy_file"), "configuration.proxy_file")?,
            session_url,
            timeout: seconds(s.get("timeout"), "configuration.timeout", 25.0)?,
            log_dir: optional_path(s.get("log_dir"), "configuration.log_dir")?,
            fields,
            sanitize: Sanitizer::new(rules),
            proxy,
            max_concurrent_launches: count(
                s.get("max_concurrent_launches"),
                "configuration.max_concurrent_launches",
                8,
            )?,
            max_request_bytes: count(
                s.get("max_request_bytes"),
                "configuration.max_request_bytes",
                64 * 1024,
            )?,
            stop_grace: seconds(s.get("stop_grace"), "configuration.stop_grace", 5.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_strings_stay() {
        let text = r#"{
            "a": "// not a comment", // a comment
            "b": "/* nor this */", /* but
            this is */ "c": "quote \" // still string"
        }"#;
        let v: Value = serde_json::from_str(&strip_comments(text)).unwrap();
        assert_eq!(v["a"], "// not a comment");
        assert_eq!(v["b"], "/* nor this */");
        assert_eq!(v["c"], "quote \" // still string");
    }

    #[test]
    fn kitware_sample_shape_parses_with_defaults() {
        let c = Config::parse(
            r#"{
              "configuration": {
                "host": "localhost", "port": "8080", "endpoint": "/paraview/",
                "content": "", "proxy_file": "/tmp/proxy.txt",
                "sessionURL": "ws://${host}:${port}/ws", "timeout": "25",
                "log_dir": "/tmp/logs", "fields": ["file", "host", "port"],
                "sanitize": {
                  "file": { "type": "inList", "list": ["a", "b"], "default": "a" },
                  "cmd2": { "type": "regexp", "regexp": "^[^\"]*$", "default": "nothing" }
                }
              },
              "sessionData": { "key": "value" },
              "resources": [ { "host": "localhost", "port_range": [9001, 9003] } ],
              "properties": { "python": "/usr/bin/python3" },
              "apps": { "cone": { "cmd": ["${python}", "--port", "$port"], "ready_line": "Starting factory" } }
            }"#,
        )
        .unwrap();
        let s = &c.configuration;
        assert_eq!(s.port, 8080);
        assert_eq!(s.endpoint, "paraview");
        assert_eq!(s.content, None);
        assert_eq!(s.timeout, Duration::from_secs(25));
        assert!(s.sanitize.has_rule("file") && s.sanitize.has_rule("cmd2"));
        assert_eq!(s.proxy, None);
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn mistakes_are_named() {
        let base =
            r#""resources": [{"host": "h", "port_range": [2, 1]}], "apps": {"a": {"cmd": ["x"]}}"#;
        let err = Config::parse(&format!("{{{base}}}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("port_range [2, 1]"), "{err}");
        let err =
            Config::parse(r#"{"resources": [{"host": "h", "port_range": [1, 2]}], "apps": {}}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("apps is empty"), "{err}");
        let err = Config::parse(
            r#"{"configuration": {"sanitize": {"f": {"type": "regexp", "regexp": "(", "default": ""}}},
                "resources": [{"host": "h", "port_range": [1, 2]}], "apps": {"a": {"cmd": ["x"]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("configuration.sanitize.f"), "{err}");
    }

    #[test]
    fn proxy_settings() {
        let parse = |proxy: &str| {
            Config::parse(&format!(
                r#"{{"configuration": {{"proxy": {proxy}}},
                    "resources": [{{"host": "h", "port_range": [1, 2]}}], "apps": {{"a": {{"cmd": ["x"]}}}}}}"#
            ))
        };
        assert_eq!(
            parse("true").unwrap().configuration.proxy,
            Some(ProxySettings::default())
        );
        assert_eq!(parse("false").unwrap().configuration.proxy, None);
        let p = parse(r#"{"path": "/p", "max_connections": 3}"#)
            .unwrap()
            .configuration
            .proxy
            .unwrap();
        assert_eq!(
            (p.path.as_str(), p.max_connections, p.target_path.as_str()),
            ("/p", 3, "/ws")
        );
        assert!(parse(r#"{"path": "p"}"#).is_err());
        assert!(parse(r#"{"path": "/paraview"}"#).is_err());
    }
}
