//! A launcher in the test process, a bare HTTP client, and /proc helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wslink_launcher::{ApiOptions, Config, Launcher, SessionInfo};

/// A shell script as an app: prints `ready`, then stays until stopped.
/// Its arguments follow as `$1`, `$2`...: never evaluated by the shell.
pub const STAY: &str = "echo ready; while :; do sleep 1; done";

/// An answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection; `extra` is raw header lines.
pub async fn http(addr: SocketAddr, method: &str, path: &str, extra: &str, body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = if extra.to_ascii_lowercase().contains("content-length")
        || extra.to_ascii_lowercase().contains("transfer-encoding")
    {
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n")
    } else {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
    };
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("answer within 30 s");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Ports nobody listens on right now.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A configuration listening on 127.0.0.1 with each of `ports` as a
/// resource, its logs and proxy file in `dir`, and `apps`.
pub fn config(dir: &Path, ports: &[u16], apps: Value) -> Value {
    let resources: Vec<Value> = ports
        .iter()
        .map(|p| json!({"host": "127.0.0.1", "port_range": [p, p]}))
        .collect();
    json!({
        "configuration": {
            "host": "127.0.0.1",
            "port": 0,
            "endpoint": "launch",
            "proxy_file": dir.join("proxy.txt"),
            "sessionURL": "ws://${host}:${port}/ws",
            "timeout": 5,
            "log_dir": dir.join("logs"),
            "fields": ["host", "port"],
            "stop_grace": 1
        },
        "resources": resources,
        "properties": {},
        "apps": apps
    })
}

/// A launcher serving in this process.
pub struct TestLauncher {
    pub addr: SocketAddr,
    pub launcher: Launcher,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestLauncher {
    /// Starts one; `make` gets the temporary directory and returns the
    /// configuration.
    pub async fn start(make: impl FnOnce(&Path) -> Value, options: ApiOptions) -> TestLauncher {
        let dir = tempfile::tempdir().unwrap();
        let value = make(dir.path());
        let Value::Object(map) = value else {
            panic!("config must be an object")
        };
        let config = Config::from_json(map).expect("valid config");
        let launcher = Launcher::new(config, options).expect("launcher");
        let bound = launcher.bind("127.0.0.1:0").await.expect("bind");
        let addr = bound.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(bound.run_until(async move {
            let _ = stopped.await;
        }));
        TestLauncher {
            addr,
            launcher,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn post(&self, body: &Value) -> Answer {
        http(
            self.addr,
            "POST",
            "/launch/",
            "",
            body.to_string().as_bytes(),
        )
        .await
    }

    pub fn session(&self, id: &str) -> Option<SessionInfo> {
        self.launcher.sessions().get(id)
    }

    pub fn pid(&self, answer: &Answer) -> u32 {
        let id = answer.json()["id"].as_str().expect("an id").to_owned();
        self.session(&id).and_then(|s| s.pid).expect("a pid")
    }

    pub fn proxy_file(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.txt")).unwrap_or_default()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Stops it as SIGTERM would, and waits until it has returned.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("stopped within 20 s")
                .unwrap();
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// The children of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(p);
            }
        }
    }
    out
}

/// The argument vector of a running process.
pub fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Polls `check` every 20 ms for up to `within`.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Live processes whose command line has `marker` as an argument.
pub fn processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| alive(*p) && cmdline(*p).iter().any(|a| a == marker))
        .collect()
}
