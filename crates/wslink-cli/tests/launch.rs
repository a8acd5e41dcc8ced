//! `wslink launch` as a process, starting `wslink serve --conformance`
//! sessions: the built-in proxy, streams side by side, failed hellos
//! counted per browser behind the proxy, the secret kept off
//! command lines and out of logs, and nothing left running once the
//! launcher is stopped by SIGTERM or SIGINT.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;
use wslink_client::{Client, Value};

const WSLINK: &str = env!("CARGO_BIN_EXE_wslink");

/// A running `wslink launch`.
struct Launched {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl Launched {
    /// Writes `config` (given the temporary directory) and starts the
    /// launcher on a free port, with GET and DELETE on.
    fn start(make: impl FnOnce(&Path) -> Json) -> Launched {
        let dir = tempfile::tempdir().unwrap();
        let config = make(dir.path());
        let path = dir.path().join("launcher.json");
        std::fs::write(
            &path,
            format!("// written by tests/launch.rs\n{config:#}\n"),
        )
        .unwrap();
        let mut child = Command::new(WSLINK)
            .args(["launch", path.to_str().unwrap(), "--port", "0"])
            .env("WSLINK_LAUNCHER_GET", "1")
            .env("WSLINK_LAUNCHER_DELETE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wslink launch");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .strip_prefix("wslink launcher on http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Launched {
            child,
            addr,
            stderr,
            dir,
        }
    }

    fn post(&self, body: Json) -> (u16, Json) {
        let (status, body) = http(self.addr, "POST", "/launch/", &body.to_string());
        (status, serde_json::from_str(&body).unwrap_or(Json::Null))
    }

    fn proxy_url(&self, id: &str) -> String {
        format!("ws://{}/proxy?sessionId={id}", self.addr)
    }

    /// Sends `signal` and waits for the launcher to exit.
    fn stop(&mut self, signal: &str) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the launcher did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A configuration whose apps run `wslink serve --conformance`: `file`
/// gets its secret from `${secretFile}`, `env` from `WSLINK_AUTH_KEY`,
/// `argv` on its command line as Kitware's sample configurations do.
fn config(dir: &Path, ports: &[u16], proxy: bool) -> Json {
    let resources: Vec<Json> = ports
        .iter()
        .map(|p| json!({"host": "127.0.0.1", "port_range": [p, p]}))
        .collect();
    let serve = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut cmd = vec![
            WSLINK,
            "serve",
            "--conformance",
            "--host",
            "${host}",
            "--port",
            "${port}",
            "--timeout",
            "60",
        ];
        cmd.extend_from_slice(extra);
        cmd
    };
    json!({
        "configuration": {
            "host": "127.0.0.1", "port": 0, "endpoint": "launch",
            "proxy_file": dir.join("proxy.txt"),
            "sessionURL": if proxy { "ws://USE_HOST/proxy?sessionId=${id}" } else { "ws://${host}:${port}/ws" },
            "timeout": 20, "log_dir": dir.join("logs"), "fields": ["port"],
            "proxy": proxy
        },
        "resources": resources,
        "properties": {},
        "apps": {
            "file": { "cmd": serve(&["--authKey-file", "${secretFile}"]), "ready_line": "wslink server on" },
            "env": { "cmd": serve(&[]), "env": { "WSLINK_AUTH_KEY": "${secret}" }, "ready_line": "wslink server on" },
            "argv": { "cmd": serve(&["--authKey", "${secret}"]), "ready_line": "wslink server on" },
            // Behind the proxy: with and without trusting its X-Forwarded-For.
            "trusting": { "cmd": serve(&["--authKey-file", "${secretFile}", "--auth-max-failures", "3",
                                         "--trusted-proxy", "127.0.0.1"]), "ready_line": "wslink server on" },
            "untrusting": { "cmd": serve(&["--authKey-file", "${secretFile}", "--auth-max-failures", "3"]),
                            "ready_line": "wslink server on" }
        }
    })
}

fn cmdline(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next());
        !matches!(state, Some('Z') | Some('X') | None)
    })
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(1))
                    .is_some_and(|ppid| ppid == pid.to_string())
            })
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

async fn add(client: &Client) -> Value {
    client
        .call(
            "conformance.add",
            vec![Value::from(2), Value::from(3)],
            vec![],
        )
        .await
        .expect("conformance.add")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_reach_their_process_through_the_built_in_proxy() {
    let ports = free_ports(2);
    let launched = Launched::start(|dir| config(dir, &ports, true));
    let (status, a) = launched.post(json!({"application": "file"}));
    assert_eq!(status, 200, "{a}");
    let (status, b) = launched.post(json!({"application": "env"}));
    assert_eq!(status, 200, "{b}");
    let id_a = a["id"].as_str().unwrap();
    assert_eq!(
        a["sessionURL"],
        format!("ws://USE_HOST/proxy?sessionId={id_a}"),
        "SmartConnect replaces USE_HOST with the page's host"
    );

    let mut clients = Vec::new();
    for session in [&a, &b] {
        let url = launched.proxy_url(session["id"].as_str().unwrap());
        let client = Client::builder(&url)
            .secret(session["secret"].as_str().unwrap())
            .connect()
            .await
            .expect("through the proxy");
        assert_eq!(add(&client).await, Value::from(5));
        let blob = client
            .call(
                "conformance.blob",
                vec![Value::from(3_000_000), Value::from(7)],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            blob.get("blob").and_then(Value::as_bytes).map(|b| b.len()),
            Some(3_000_000)
        );
        clients.push(client);
    }

    // The secret still guards the session behind the proxy.
    let wrong = Client::builder(launched.proxy_url(id_a))
        .secret("wrong")
        .connect()
        .await;
    assert!(
        matches!(wrong, Err(wslink_client::Error::Auth { .. })),
        "{wrong:?}"
    );

    // An unknown session is refused before any upgrade, with a reason.
    let (status, body) = http(launched.addr, "GET", "/proxy?sessionId=no-such-session", "");
    assert_eq!(status, 400, "not a WebSocket request: {body}");
    let refused = Client::builder(launched.proxy_url("no-such-session"))
        .connect()
        .await;
    let message = format!("{}", refused.err().unwrap_or_else(|| panic!("refused")));
    assert!(message.contains("404"), "{message}");

    // An ended session: its connection closes, and it is refused from then on.
    let (status, _) = http(launched.addr, "DELETE", &format!("/launch/{id_a}"), "");
    assert_eq!(status, 200);
    let after = clients[0]
        .call(
            "conformance.add",
            vec![Value::from(1), Value::from(1)],
            vec![],
        )
        .await;
    assert!(after.is_err(), "the session's process is gone: {after:?}");
    let refused = Client::builder(launched.proxy_url(id_a))
        .secret(a["secret"].as_str().unwrap())
        .connect()
        .await;
    assert!(format!("{}", refused.err().unwrap_or_else(|| panic!("refused"))).contains("404"));
    assert_eq!(
        add(&clients[1]).await,
        Value::from(5),
        "the other session is untouched"
    );

    let log = launched.log();
    assert!(log.contains("proxy: refused"), "{log}");
    assert!(log.contains(&format!("left session {id_a}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_slows_no_other_session_and_the_proxy_buffers_nothing() {
    let ports = free_ports(2);
    let launched = Launched::start(|dir| config(dir, &ports, true));
    let (_, a) = launched.post(json!({"application": "file"}));
    let (_, b) = launched.post(json!({"application": "file"}));
    let rss_before = rss_kib(launched.child.id());

    // Session A: a 1.x peer asks for 150 MB of publishes, then never reads.
    let stream = tokio::net::TcpStream::connect(launched.addr).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(launched.proxy_url(a["id"].as_str().unwrap()), stream)
            .await
            .expect("upgrade through the proxy");
    let hello = json!({"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello",
                       "args": [{"secret": a["secret"]}], "kwargs": {}});
    stalled
        .send(Message::text(hello.to_string()))
        .await
        .unwrap();
    let flood = json!({"wslink": "1.0", "id": "rpc:c0:1", "method": "conformance.publish",
                       "args": ["flood", 150, 1_000_000], "kwargs": {}});
    stalled
        .send(Message::text(flood.to_string()))
        .await
        .unwrap();
    // The flood flows (the hello reply, then publishes)... then A stops reading.
    let mut received = 0;
    while received < 2_000_000 {
        let message = tokio::time::timeout(Duration::from_secs(10), stalled.next())
            .await
            .expect("the flood flows")
            .expect("open")
            .unwrap();
        received += message.len();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Session B meanwhile: 30 MB of calls through the same launcher.
    let client = Client::builder(launched.proxy_url(b["id"].as_str().unwrap()))
        .secret(b["secret"].as_str().unwrap())
        .connect()
        .await
        .unwrap();
    let start = Instant::now();
    for seed in 0..30 {
        let blob = client
            .call(
                "conformance.blob",
                vec![Value::from(1_000_000), Value::from(seed)],
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            blob.get("blob").and_then(Value::as_bytes).map(|b| b.len()),
            Some(1_000_000)
        );
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "30 MB took {took:?} beside a stalled session"
    );
    let grown = rss_kib(launched.child.id()).saturating_sub(rss_before);
    assert!(
        grown < 32 * 1024,
        "the launcher grew by {grown} KiB: it buffers what a reader does not take"
    );
    assert!(
        !launched
            .log()
            .contains(&format!("left session {}", a["id"].as_str().unwrap())),
        "A's connection is still there, stalled"
    );
    drop(stalled);
}

/// A 1.x hello through the proxy from a chosen loopback address (each
/// is another browser to the launcher): `Ok(accepted)`, or the HTTP status
/// that refused the upgrade.
async fn hello_from(from: &str, url: &str, addr: SocketAddr, secret: &str) -> Result<bool, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut ws = match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, _)) => ws,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => return Err(r.status().as_u16()),
        Err(e) => panic!("{from}: {e}"),
    };
    let hello = json!({"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello",
                       "args": [{"secret": secret}], "kwargs": {}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a hello reply")
        .expect("open")
        .unwrap();
    let reply: Json = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    Ok(reply.get("result").is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_proxy_one_browsers_guesses_do_not_ban_another() {
    let ports = free_ports(2);
    let launched = Launched::start(|dir| config(dir, &ports, true));
    let (guesser, user) = ("127.0.0.2", "127.0.0.3");
    for (app, trusts) in [("trusting", true), ("untrusting", false)] {
        let (status, session) = launched.post(json!({"application": app}));
        assert_eq!(status, 200, "{session}");
        let url = launched.proxy_url(session["id"].as_str().unwrap());
        let secret = session["secret"].as_str().unwrap();

        for _ in 0..3 {
            assert_eq!(
                hello_from(guesser, &url, launched.addr, "guess").await,
                Ok(false)
            );
        }
        assert_eq!(
            hello_from(guesser, &url, launched.addr, secret).await,
            Err(429),
            "{app}: the guesser is banned, through the proxy"
        );
        let real_user = hello_from(user, &url, launched.addr, secret).await;
        if trusts {
            // The session counts the address the proxy forwards.
            assert_eq!(real_user, Ok(true), "{app}: another browser gets in");
        } else {
            // The problem --trusted-proxy solves: every browser is the
            // proxy's 127.0.0.1 to the session, so all share the ban.
            assert_eq!(real_user, Err(429), "{app}");
        }
    }
}

#[test]
fn stopping_the_launcher_leaves_no_process_behind() {
    for signal in ["TERM", "INT"] {
        let ports = free_ports(3);
        let mut launched = Launched::start(|dir| config(dir, &ports, false));
        for app in ["file", "env", "argv"] {
            let (status, body) = launched.post(json!({"application": app}));
            assert_eq!(status, 200, "{body}");
        }
        let pids = children(launched.child.id());
        assert_eq!(pids.len(), 3, "one process per session: {pids:?}");
        assert!(pids
            .iter()
            .all(|p| cmdline(*p).contains("serve --conformance")));
        let status = launched.stop(signal);
        assert!(status.success(), "SIG{signal}: exit {status:?}");
        let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
        assert!(left.is_empty(), "SIG{signal}: still running: {left:?}");
        let log = launched.log();
        assert!(log.contains(&format!("SIG{signal} received")), "{log}");
        assert_eq!(log.matches("is free").count(), 3, "{log}");
        let proxy = std::fs::read_to_string(launched.dir.path().join("proxy.txt")).unwrap();
        assert_eq!(
            proxy, "",
            "the proxy file lists no session once they are stopped"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_stays_off_command_lines_and_out_of_the_launchers_log() {
    let ports = free_ports(3);
    let mut launched = Launched::start(|dir| config(dir, &ports, false));
    let mut secrets = Vec::new();
    for app in ["file", "env", "argv"] {
        let (status, answer) = launched.post(json!({"application": app}));
        assert_eq!(status, 200, "{answer}");
        let secret = answer["secret"]
            .as_str()
            .expect("the client gets the secret")
            .to_owned();
        let url = format!("ws://127.0.0.1:{}/ws", answer["port"]);
        let pid = *children(launched.child.id())
            .iter()
            .find(|p| cmdline(**p).contains(&format!("--port {}", answer["port"])))
            .expect("the session's process");
        let argv = cmdline(pid);
        if app == "argv" {
            assert!(argv.contains(&secret), "Kitware's way shows it: {argv}");
        } else {
            assert!(!argv.contains(&secret), "{app}: ps shows {argv}");
        }
        // The process really has it: the right secret works, another fails.
        let client = Client::builder(&url)
            .secret(&secret)
            .connect()
            .await
            .expect("right secret");
        assert_eq!(add(&client).await, Value::from(5));
        client.close().await;
        let wrong = Client::builder(&url)
            .secret("wslink-secret")
            .connect()
            .await;
        assert!(
            matches!(wrong, Err(wslink_client::Error::Auth { .. })),
            "{app}: {wrong:?}"
        );
        secrets.push(secret);
    }
    let secret_file = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("wslink-launcher-{}-", launched.child.id()))
        })
        .map(|e| e.path());
    assert!(
        secret_file.is_some(),
        "the private directory exists while sessions run"
    );
    assert!(launched.stop("TERM").success());
    assert!(!secret_file.unwrap().exists(), "and goes with the launcher");

    let logs: PathBuf = launched.dir.path().join("logs");
    let launcher_log = std::fs::read_to_string(logs.join("launcherLog.log")).unwrap();
    let stderr = launched.log();
    assert!(launcher_log.contains("started file"), "{launcher_log}");
    assert!(launcher_log.contains("ready after"), "{launcher_log}");
    assert!(
        launcher_log.contains("<secret>"),
        "a secret on a command line is masked: {launcher_log}"
    );
    let mut everything = vec![launcher_log, stderr];
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        everything.push(std::fs::read_to_string(entry.path()).unwrap());
    }
    everything.push(std::fs::read_to_string(launched.dir.path().join("proxy.txt")).unwrap());
    for text in &everything {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into a log: {text}"
            );
        }
    }
}
