//! Sessions: one process per session, from request to exit.
//!
//! [`SessionManager::launch`] takes a client's request, takes a port from
//! the pool, builds the app's command line and environment, starts the
//! process and waits for its ready line. Whatever ends a session (its
//! process exits, a DELETE, the launch timing out, the launcher stopping),
//! the same path runs: the process group is killed, the port goes back to
//! the pool, the proxy-mapping file is rewritten, the secret file removed,
//! and a log line says how the process ended.
//!
//! # What a command line can use
//!
//! `${name}` or `$name`, resolved in this order:
//!
//! 1. built-ins: `id`, `host`, `port`, `secret`, `application`,
//!    `sessionURL` (not inside `sessionURL` itself) and `secretFile` (the
//!    path of a file, mode 0600 in a private 0700 directory, whose first
//!    line is the secret; written only when used, removed with the session);
//! 2. values the client sent, **only for keys a `sanitize` rule covers**,
//!    after the rule (a failing value takes the rule's default);
//! 3. `properties`.
//!
//! Anything else stays as written. Kitware's launcher also substitutes
//! client values no rule covers, and substitutes the text of values again;
//! this one does neither. The client's `secret` is used only when a
//! `sanitize` rule covers `secret`; otherwise each session gets a fresh
//! one (122 random bits).
//!
//! # What the client gets back
//!
//! As in Kitware's launcher: the session's keys listed in `fields`, plus
//! `id`, `sessionURL` and `sessionManagerURL`, plus `secret` when the
//! process was handed it (through `${secret}` or `${secretFile}` in its
//! command line or environment).

use std::collections::{BTreeMap, HashMap};
use std::fs::DirBuilder;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{watch, Semaphore};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error::LaunchError;
use crate::pool::ResourcePool;
use crate::process;
use crate::sanitize::Verdict;
use crate::template::{self, text_of};

/// The names a command line can use whatever the configuration.
pub const BUILT_IN_VARIABLES: &[&str] = &[
    "id",
    "host",
    "port",
    "secret",
    "secretFile",
    "application",
    "sessionURL",
];

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Started; its ready line has not come yet.
    Starting,
    /// Ready for clients.
    Ready,
    /// Its process has ended (and the port is free again).
    Exited(Exit),
}

/// How a session's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal, if one killed it.
    pub signal: Option<i32>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "killed by signal {signal}"),
            (None, None) => f.write_str("ended"),
        }
    }
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

/// A snapshot of one session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// The app it runs.
    pub application: String,
    /// The resource host.
    pub host: String,
    /// The port from the pool.
    pub port: u16,
    /// The process id (also its process group id), once started.
    pub pid: Option<u32>,
    /// Where it is in its life.
    pub phase: Phase,
}

/// Why the proxy cannot reach a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// No such session (it ended, or never existed).
    Unknown,
    /// It exists but is not ready yet.
    Starting,
}

struct Entry {
    seq: u64,
    application: String,
    host: String,
    port: u16,
    pid: Option<u32>,
    /// The whole session as Kitware's launcher keeps it: the client's
    /// (sanitized) values, `id`, `host`, `port`, `secret`, `sessionURL`,
    /// `cmd` and `sessionData`. Answers are filtered from it.
    record: Map<String, Value>,
    phase: watch::Receiver<Phase>,
    stop: Arc<watch::Sender<bool>>,
}

struct Inner {
    pool: ResourcePool,
    sessions: HashMap<String, Entry>,
    next_seq: u64,
    closing: bool,
}

struct Shared {
    config: Arc<Config>,
    inner: Mutex<Inner>,
    launches: Arc<Semaphore>,
    secrets: SecretDir,
    live: watch::Sender<usize>,
}

/// The sessions of one launcher. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use wslink_launcher::{config::Config, SessionManager};
///
/// let config = Arc::new(Config::from_file("launcher.json")?);
/// let sessions = SessionManager::new(config)?;
/// let answer = sessions.launch(serde_json::json!({"application": "cone"})).await?;
/// println!("connect to {}", answer["sessionURL"]);
/// sessions.shutdown().await; // stops every process it started
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("sessions", &self.lock().sessions.len())
            .finish()
    }
}

/// A fresh secret: 32 hex digits, 122 random bits.
fn new_secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `text` with every occurrence of `secret` hidden, for logs.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "<secret>")
    }
}

/// A client value, shortened and escaped for a log line.
fn loggable(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let mut end = 80;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &text[..end], text.len())
    } else {
        text
    }
}

fn filter(record: &Map<String, Value>, fields: &[String], with_secret: bool) -> Map<String, Value> {
    record
        .iter()
        .filter(|(k, _)| {
            fields.iter().any(|f| f == *k)
                || matches!(k.as_str(), "id" | "sessionURL" | "sessionManagerURL")
                || (with_secret && k.as_str() == "secret")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl SessionManager {
    /// The sessions of a configuration. Creates `log_dir` if needed.
    pub fn new(config: Arc<Config>) -> std::io::Result<Self> {
        let settings = &config.configuration;
        if let Some(dir) = &settings.log_dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                std::io::Error::new(e.kind(), format!("log_dir {}: {e}", dir.display()))
            })?;
        }
        let shared = Shared {
            inner: Mutex::new(Inner {
                pool: ResourcePool::new(&config.resources),
                sessions: HashMap::new(),
                next_seq: 0,
                closing: false,
            }),
            launches: Arc::new(Semaphore::new(settings.max_concurrent_launches)),
            secrets: SecretDir::default(),
            live: watch::Sender::new(0),
            config,
        };
        let manager = SessionManager {
            shared: Arc::new(shared),
        };
        manager.write_proxy_file(&manager.lock());
        Ok(manager)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Starts a session for a client's request (the JSON body of the POST)
    /// and waits until it is ready; answers with the public fields.
    pub async fn launch(&self, request: Value) -> Result<Map<String, Value>, LaunchError> {
        let config = Arc::clone(&self.shared.config);
        let settings = &config.configuration;
        let Value::Object(request) = request else {
            return Err(LaunchError::Malformed(format!("got {}", kind(&request))));
        };
        let application = match request.get("application") {
            None => return Err(LaunchError::MissingApplication),
            Some(Value::String(name)) => name.clone(),
            Some(other) => return Err(LaunchError::UnknownApplication(loggable(other))),
        };
        let Some(app) = config.apps.get(&application) else {
            return Err(LaunchError::UnknownApplication(application));
        };
        let _permit = Arc::clone(&self.shared.launches)
            .try_acquire_owned()
            .map_err(|_| LaunchError::TooManyLaunches)?;

        let (mut record, admitted) = sanitize_request(&config, request);
        let secret = match admitted.get("secret") {
            Some(s) if !s.is_empty() && !s.contains(['\n', '\r', '\0']) => s.clone(),
            _ => new_secret(),
        };

        // A port, and a place in the table (no await from here until the
        // supervisor owns the process, so a dropped request leaks nothing).
        let (id, host, port, stop_rx, phase_tx) = {
            let mut inner = self.lock();
            if inner.closing {
                return Err(LaunchError::ShuttingDown);
            }
            let Some((host, port)) = inner.pool.take() else {
                return Err(LaunchError::NoResources);
            };
            let id = uuid::Uuid::new_v4().to_string();
            let (stop_tx, stop_rx) = watch::channel(false);
            let (phase_tx, phase_rx) = watch::channel(Phase::Starting);
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.sessions.insert(
                id.clone(),
                Entry {
                    seq,
                    application: application.clone(),
                    host: host.clone(),
                    port,
                    pid: None,
                    record: Map::new(),
                    phase: phase_rx,
                    stop: Arc::new(stop_tx),
                },
            );
            self.shared.live.send_replace(inner.sessions.len());
            self.write_proxy_file(&inner);
            (id, host, port, stop_rx, phase_tx)
        };

        let uses = |name: &str| {
            app.cmd
                .iter()
                .chain(app.env.values())
                .any(|t| template::variables(t).iter().any(|v| v == name))
        };
        let secret_file = if uses("secretFile") {
            match self.shared.secrets.write(&id, &secret) {
                Ok(path) => Some(path),
                Err(e) => {
                    error!("session {id}: cannot write its secret file: {e}");
                    self.finish(&id, None, None, &phase_tx);
                    return Err(LaunchError::Spawn(format!(
                        "cannot write the secret file: {e}"
                    )));
                }
            }
        } else {
            None
        };

        let mut builtins: HashMap<&'static str, String> = HashMap::from([
            ("id", id.clone()),
            ("host", host.clone()),
            ("port", port.to_string()),
            ("secret", secret.clone()),
            ("application", application.clone()),
        ]);
        if let Some(path) = &secret_file {
            builtins.insert("secretFile", path.display().to_string());
        }
        let Prepared {
            session_url,
            argv,
            env,
            session_data,
            receives_secret,
        } = prepare(&config, app, builtins, &admitted, &id);

        for key in ["id", "host", "port", "secret", "sessionURL", "cmd"] {
            record.remove(key);
        }
        record.insert("id".into(), Value::from(id.clone()));
        record.insert("host".into(), Value::from(host.clone()));
        record.insert("port".into(), Value::from(port));
        record.insert("secret".into(), Value::from(secret.clone()));
        record.insert("sessionURL".into(), Value::from(session_url));
        record.insert("cmd".into(), Value::from(argv.clone()));
        record.extend(session_data);

        let log_path = settings
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{id}.txt")));
        let shown = redact(&format!("{argv:?}"), &secret);
        let mut child = match process::spawn(&argv, &env) {
            Ok(child) => child,
            Err(e) => {
                error!("session {id}: cannot start {application}: {e}; command {shown}");
                if let Some(path) = &log_path {
                    let _ =
                        append_line(path, &format!("wslink launcher: cannot start {shown}: {e}"));
                }
                self.finish(&id, secret_file.as_deref(), None, &phase_tx);
                return Err(LaunchError::Spawn(e.to_string()));
            }
        };
        let pid = child.id().unwrap_or(0);
        let mut phase_rx = {
            let mut inner = self.lock();
            let entry = inner
                .sessions
                .get_mut(&id)
                .expect("only the supervisor removes a started session");
            entry.pid = Some(pid);
            entry.record = record.clone();
            entry.phase.clone()
        };
        info!(
            "session {id}: started {application} (pid {pid}) on {host}:{port}: {shown}{}",
            log_path
                .as_ref()
                .map(|p| format!(", output in {}", p.display()))
                .unwrap_or_default()
        );
        let supervisor = Supervisor {
            manager: self.clone(),
            id: id.clone(),
            pid,
            host: host.clone(),
            port,
            ready_line: app.ready_line.clone(),
            log_path,
            secret_file,
            phase: Arc::new(phase_tx),
            stop: stop_rx,
            started: Instant::now(),
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        tokio::spawn(supervisor.run(child, stdout, stderr));

        let waited = tokio::time::timeout(
            settings.timeout,
            phase_rx.wait_for(|p| *p != Phase::Starting),
        )
        .await
        .map(|phase| phase.map(|p| p.clone()));
        match waited {
            Ok(Ok(Phase::Ready)) => Ok(filter(&record, &settings.fields, receives_secret)),
            Ok(Ok(Phase::Exited(exit))) => Err(LaunchError::ExitedEarly(exit.to_string())),
            Ok(Ok(Phase::Starting)) | Ok(Err(_)) => Err(LaunchError::ExitedEarly("ended".into())),
            Err(_) => {
                warn!(
                    "session {id}: not ready after {:.1} s (timeout): stopping it",
                    settings.timeout.as_secs_f64()
                );
                if let Some(entry) = self.lock().sessions.get(&id) {
                    entry.stop.send_replace(true);
                }
                let grace = settings.stop_grace + Duration::from_secs(5);
                let _ = tokio::time::timeout(
                    grace,
                    phase_rx.wait_for(|p| matches!(p, Phase::Exited(_))),
                )
                .await;
                Err(LaunchError::Timeout)
            }
        }
    }

    /// One session, if it exists.
    pub fn get(&self, id: &str) -> Option<SessionInfo> {
        self.lock().sessions.get(id).map(|e| info_of(id, e))
    }

    /// Every session, oldest first.
    pub fn list(&self) -> Vec<SessionInfo> {
        let inner = self.lock();
        let mut entries: Vec<_> = inner.sessions.iter().collect();
        entries.sort_by_key(|(_, e)| e.seq);
        entries.into_iter().map(|(id, e)| info_of(id, e)).collect()
    }

    /// The answer to `GET /ENDPOINT/ID`: the public fields (no secret, as
    /// in Kitware's launcher).
    pub fn public_fields(&self, id: &str) -> Option<Map<String, Value>> {
        let inner = self.lock();
        let entry = inner.sessions.get(id)?;
        Some(filter(
            &entry.record,
            &self.shared.config.configuration.fields,
            false,
        ))
    }

    /// Stops a session and waits (at most `stop_grace` plus 5 s) until its
    /// process has exited and its port is free; returns its public fields,
    /// or `None` if there is no such session.
    pub async fn stop(&self, id: &str) -> Option<Map<String, Value>> {
        let (stop, mut phase, fields) = {
            let inner = self.lock();
            let entry = inner.sessions.get(id)?;
            (
                Arc::clone(&entry.stop),
                entry.phase.clone(),
                filter(
                    &entry.record,
                    &self.shared.config.configuration.fields,
                    false,
                ),
            )
        };
        info!("session {id}: stop requested");
        stop.send_replace(true);
        let grace = self.shared.config.configuration.stop_grace + Duration::from_secs(5);
        let _ =
            tokio::time::timeout(grace, phase.wait_for(|p| matches!(p, Phase::Exited(_)))).await;
        Some(fields)
    }

    /// Stops every session and refuses new ones; returns once every
    /// process has exited (after SIGTERM, then SIGKILL past `stop_grace`).
    pub async fn shutdown(&self) {
        let stops: Vec<_> = {
            let mut inner = self.lock();
            inner.closing = true;
            inner
                .sessions
                .values()
                .map(|e| Arc::clone(&e.stop))
                .collect()
        };
        if !stops.is_empty() {
            info!("stopping {} session(s)", stops.len());
        }
        for stop in &stops {
            stop.send_replace(true);
        }
        let mut live = self.shared.live.subscribe();
        let grace = self.shared.config.configuration.stop_grace + Duration::from_secs(5);
        if tokio::time::timeout(grace, live.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            let inner = self.lock();
            for entry in inner.sessions.values() {
                if let Some(pid) = entry.pid {
                    error!("session process group {pid} still there after SIGKILL; trying again");
                    process::signal_group(pid, libc::SIGKILL);
                }
            }
        }
        self.shared.secrets.remove_dir();
    }

    /// Where the proxy should connect for session `id`.
    pub(crate) fn proxy_target(&self, id: &str) -> Result<(String, u16), Unreachable> {
        let inner = self.lock();
        let entry = inner.sessions.get(id).ok_or(Unreachable::Unknown)?;
        let phase = entry.phase.borrow().clone();
        match phase {
            Phase::Ready => Ok((entry.host.clone(), entry.port)),
            Phase::Starting => Err(Unreachable::Starting),
            Phase::Exited(_) => Err(Unreachable::Unknown),
        }
    }

    /// The end of every session: the port back in the pool, the table and
    /// the proxy file updated, the secret file removed, the phase set.
    fn finish(
        &self,
        id: &str,
        secret_file: Option<&Path>,
        exit: Option<Exit>,
        phase: &watch::Sender<Phase>,
    ) {
        if let Some(path) = secret_file {
            self.shared.secrets.remove(path);
        }
        {
            let mut inner = self.lock();
            if let Some(entry) = inner.sessions.remove(id) {
                inner.pool.give_back(&entry.host, entry.port);
            }
            self.shared.live.send_replace(inner.sessions.len());
            self.write_proxy_file(&inner);
        }
        phase.send_replace(Phase::Exited(exit.unwrap_or(Exit {
            code: None,
            signal: None,
        })));
    }

    /// Rewrites the proxy-mapping file (`ID HOST:PORT` per line, the format
    /// of Kitware's launcher), through a temporary file and a rename so
    /// that a reader never sees half of it.
    fn write_proxy_file(&self, inner: &Inner) {
        let Some(path) = &self.shared.config.configuration.proxy_file else {
            return;
        };
        let mut entries: Vec<_> = inner.sessions.iter().collect();
        entries.sort_by_key(|(_, e)| e.seq);
        let text: String = entries
            .into_iter()
            .map(|(id, e)| format!("{id} {}:{}\n", e.host, e.port))
            .collect();
        // A fresh name, created exclusively: no symbolic link planted at a
        // predictable name can redirect the write.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".{}.tmp",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let tmp = PathBuf::from(tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        if let Err(e) = written {
            error!("cannot write the proxy file {}: {e}", path.display());
        }
    }
}

/// The client's request through the `sanitize` rules: the values kept for
/// the session's record (echoed back when listed in `fields`), and the
/// texts templates may use (only keys a rule covers).
fn sanitize_request(
    config: &Config,
    request: Map<String, Value>,
) -> (Map<String, Value>, HashMap<String, String>) {
    let mut record = Map::new();
    let mut admitted = HashMap::new();
    for (key, value) in request {
        let value = match config.configuration.sanitize.check(&key, &value) {
            Verdict::Accepted => {
                admitted.insert(key.clone(), text_of(&value));
                value
            }
            Verdict::Replaced(default) => {
                warn!("key {key}: sanitize {} with default", loggable(&value));
                admitted.insert(key.clone(), text_of(&default));
                default
            }
            Verdict::NoRule => value,
        };
        record.insert(key, value);
    }
    (record, admitted)
}

/// What an app's templates become for one session.
struct Prepared {
    session_url: String,
    argv: Vec<String>,
    env: BTreeMap<String, String>,
    session_data: Map<String, Value>,
    /// Whether the process is handed the secret (so the client gets it).
    receives_secret: bool,
}

/// Expands the app's templates: built-ins first, then the values a
/// `sanitize` rule admitted, then `properties`; logs what stayed unresolved.
fn prepare(
    config: &Config,
    app: &crate::config::App,
    mut builtins: HashMap<&'static str, String>,
    admitted: &HashMap<String, String>,
    id: &str,
) -> Prepared {
    let mut unresolved: Vec<String> = Vec::new();
    let mut receives_secret = false;
    let mut expand = |t: &str, builtins: &HashMap<&str, String>, to_process: bool| {
        let out = template::substitute(t, |name| {
            builtins
                .get(name)
                .cloned()
                .or_else(|| admitted.get(name).cloned())
                .or_else(|| config.properties.get(name).map(text_of))
        });
        if to_process && out.used.iter().any(|n| n == "secret" || n == "secretFile") {
            receives_secret = true;
        }
        unresolved.extend(out.unresolved);
        out.text
    };
    let session_url = expand(&config.configuration.session_url, &builtins, false);
    builtins.insert("sessionURL", session_url.clone());
    let argv: Vec<String> = app.cmd.iter().map(|t| expand(t, &builtins, true)).collect();
    let env: BTreeMap<String, String> = app
        .env
        .iter()
        .map(|(k, t)| (k.clone(), expand(t, &builtins, true)))
        .collect();
    let mut session_data = Map::new();
    for (key, value) in &config.session_data {
        let value = match value {
            Value::String(t) => Value::String(expand(t, &builtins, false)),
            other => other.clone(),
        };
        session_data.insert(key.clone(), value);
    }
    // Kitware's rule: the secret as one argument of the command line.
    let receives_secret = receives_secret || argv.contains(&builtins["secret"]);
    unresolved.sort();
    unresolved.dedup();
    if !unresolved.is_empty() {
        warn!(
            "session {id}: left unresolved (no value, or a client value without a sanitize rule): {}",
            unresolved
                .iter()
                .map(|n| format!("${{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Prepared {
        session_url,
        argv,
        env,
        session_data,
        receives_secret,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn info_of(id: &str, e: &Entry) -> SessionInfo {
    SessionInfo {
        id: id.to_owned(),
        application: e.application.clone(),
        host: e.host.clone(),
        port: e.port,
        pid: e.pid,
        phase: e.phase.borrow().clone(),
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{line}")
}

/// Owns one session's process until it has exited.
struct Supervisor {
    manager: SessionManager,
    id: String,
    pid: u32,
    host: String,
    port: u16,
    ready_line: Option<String>,
    log_path: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    phase: Arc<watch::Sender<Phase>>,
    stop: watch::Receiver<bool>,
    started: Instant,
}

impl Supervisor {
    fn mark_ready(phase: &watch::Sender<Phase>, id: &str, started: Instant) {
        let changed = phase.send_if_modified(|p| {
            if *p == Phase::Starting {
                *p = Phase::Ready;
                true
            } else {
                false
            }
        });
        if changed {
            info!(
                "session {id}: ready after {:.2} s",
                started.elapsed().as_secs_f64()
            );
        }
    }

    async fn run(
        self,
        mut child: tokio::process::Child,
        stdout: Option<tokio::process::ChildStdout>,
        stderr: Option<tokio::process::ChildStderr>,
    ) {
        let mut pumps = Vec::new();
        for reader in [
            stdout.map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            stderr.map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let (phase, id, started) = (Arc::clone(&self.phase), self.id.clone(), self.started);
            let log = self.log_path.clone();
            let line = self.ready_line.clone();
            pumps.push(tokio::spawn(async move {
                process::pump(reader, log.as_deref(), line.as_deref(), || {
                    Supervisor::mark_ready(&phase, &id, started)
                })
                .await
            }));
        }
        // Without a ready line, ready is when the port accepts connections.
        let probe = self.ready_line.is_none().then(|| {
            let (phase, id, started) = (Arc::clone(&self.phase), self.id.clone(), self.started);
            let (host, port) = (self.host.clone(), self.port);
            tokio::spawn(async move {
                loop {
                    if tokio::net::TcpStream::connect((host.as_str(), port))
                        .await
                        .is_ok()
                    {
                        Supervisor::mark_ready(&phase, &id, started);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        });

        let grace = self.manager.config().configuration.stop_grace;
        let mut stop = self.stop.clone();
        let status = tokio::select! {
            status = child.wait() => status,
            () = crate::until_true(&mut stop) => {
                process::signal_group(self.pid, libc::SIGTERM);
                match tokio::time::timeout(grace, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        warn!("session {}: still running {:.1} s after SIGTERM: SIGKILL", self.id, grace.as_secs_f64());
                        process::signal_group(self.pid, libc::SIGKILL);
                        child.wait().await
                    }
                }
            }
        };
        // Whatever the leader did, nothing of its group outlives it.
        process::signal_group(self.pid, libc::SIGKILL);
        if let Some(probe) = probe {
            probe.abort();
        }
        for pump in pumps {
            let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
        }
        let exit = status.ok().map(Exit::from);
        let how = exit.map_or_else(|| "ended (status unknown)".to_owned(), |e| e.to_string());
        let lived = self.started.elapsed().as_secs_f64();
        let was_ready = *self.phase.borrow() == Phase::Ready;
        info!(
            "session {}: process {} {how} after {lived:.1} s{}; port {} is free",
            self.id,
            self.pid,
            if was_ready {
                ""
            } else {
                " (before it was ready)"
            },
            self.port
        );
        self.manager
            .finish(&self.id, self.secret_file.as_deref(), exit, &self.phase);
    }
}

/// The private directory secret files live in: created on first use, mode
/// 0700, under the system's temporary directory; removed at shutdown.
#[derive(Default)]
struct SecretDir {
    dir: Mutex<Option<PathBuf>>,
}

impl SecretDir {
    fn write(&self, id: &str, secret: &str) -> std::io::Result<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        if dir.is_none() {
            let name = format!(
                "wslink-launcher-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            let path = std::env::temp_dir().join(name);
            DirBuilder::new().mode(0o700).create(&path)?;
            *dir = Some(path);
        }
        let path = dir
            .as_ref()
            .expect("created above")
            .join(format!("{id}.secret"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(secret.as_bytes())?;
        file.write_all(b"\n")?;
        Ok(path)
    }

    fn remove(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    fn remove_dir(&self) {
        if let Some(dir) = self.dir.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden_in_logs() {
        assert_eq!(
            redact("[\"a\", \"--authKey\", \"s3\"]", "s3"),
            "[\"a\", \"--authKey\", \"<secret>\"]"
        );
        let long = Value::from("é".repeat(100));
        assert!(loggable(&long).ends_with("(202 bytes)"));
        assert_eq!(loggable(&Value::from("a\nb")), "\"a\\nb\"");
    }
}
