//! Sessions from start to end: ports back in the pool whatever ends a
//! session, timeouts that kill, shutdown that leaves nothing behind.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use wslink_launcher::ApiOptions;

const BOTH: ApiOptions = ApiOptions {
    enable_get: true,
    enable_delete: true,
};

fn apps() -> Value {
    json!({
        "stay": { "cmd": ["sh", "-c", STAY], "ready_line": "ready" },
        // Ready, then exits on its own after a second.
        "brief": { "cmd": ["sh", "-c", "echo ready; sleep 1; exit 7"], "ready_line": "ready" },
        // Never prints its ready line.
        "mute": { "cmd": ["sh", "-c", "echo starting; while :; do sleep 1; done"], "ready_line": "ready" },
        "crash": { "cmd": ["sh", "-c", "echo oops >&2; exit 3"], "ready_line": "ready" },
        "missing": { "cmd": ["/nonexistent/program"], "ready_line": "ready" },
        // A child in the background, and deaf to SIGTERM.
        "family": { "cmd": ["sh", "-c", "trap '' TERM; sleep 300 & echo ready; while :; do sleep 1; done"], "ready_line": "ready" },
        // No ready line: ready once its port listens.
        "listen": { "cmd": ["python3", "-c",
            "import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); time.sleep(0.3); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(300)",
            "${port}"] }
    })
}

fn port_of(a: &Answer) -> u16 {
    a.json()["port"].as_u64().expect("a port") as u16
}

#[tokio::test]
async fn ports_return_to_the_pool_after_delete_and_after_exit() {
    let ports = free_ports(2);
    let t = TestLauncher::start(|dir| config(dir, &ports, apps()), BOTH).await;
    let a = t.post(&json!({"application": "stay"})).await;
    let b = t.post(&json!({"application": "brief"})).await;
    assert_eq!((a.status, b.status), (200, 200));
    assert_ne!(port_of(&a), port_of(&b), "two sessions, two ports");
    let c = t.post(&json!({"application": "stay"})).await;
    assert_eq!(c.status, 503, "a third is refused");

    // `brief` exits by itself: its port comes back without any request.
    let b_id = b.json()["id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(5), || t.session(&b_id).is_none()).await);
    let d = t.post(&json!({"application": "stay"})).await;
    assert_eq!(d.status, 200);
    assert_eq!(
        port_of(&d),
        port_of(&b),
        "the exited session's port is reused"
    );
    let exit_line = std::fs::read_to_string(t.log_dir().join(format!("{b_id}.txt"))).unwrap();
    assert_eq!(exit_line, "ready\n");

    // DELETE frees the port before it answers.
    let a_id = a.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        http(t.addr, "DELETE", &format!("/launch/{a_id}"), "", b"")
            .await
            .status,
        200
    );
    let e = t.post(&json!({"application": "stay"})).await;
    assert_eq!(e.status, 200);
    assert_eq!(
        port_of(&e),
        port_of(&a),
        "the deleted session's port is reused"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_session_never_ready_is_killed_at_the_timeout_and_its_port_freed() {
    let ports = free_ports(1);
    let marker = format!("mute-{}", std::process::id());
    let t = TestLauncher::start(
        |dir| {
            let mut c = config(dir, &ports, apps());
            c["configuration"]["timeout"] = json!(1);
            c["apps"]["mute"]["cmd"] = json!([
                "sh",
                "-c",
                "echo starting; while :; do sleep 1; done",
                &marker
            ]);
            c
        },
        ApiOptions::default(),
    )
    .await;
    let start = Instant::now();
    let during = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        processes_with(&marker)
    };
    let mute = json!({"application": "mute"});
    let (a, during) = tokio::join!(t.post(&mute), during);
    assert_eq!(during.len(), 1, "the process runs until the timeout");
    let took = start.elapsed();
    assert_eq!(a.status, 503);
    assert_eq!(
        a.json()["error"],
        "Session did not start before timeout expired. Check session logs."
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(t.launcher.sessions().list().is_empty());
    assert_eq!(t.proxy_file(), "");
    let logs: Vec<_> = std::fs::read_dir(t.log_dir()).unwrap().flatten().collect();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        std::fs::read_to_string(logs[0].path()).unwrap(),
        "starting\n"
    );
    // The only port is free again, and its process is gone: the pool would
    // otherwise have nothing to give.
    let b = t.post(&json!({"application": "stay"})).await;
    assert_eq!(b.status, 200);
    assert!(!alive(during[0]));
    assert_eq!(processes_with(&marker), Vec::<u32>::new());
    t.stop().await;
}

#[tokio::test]
async fn a_process_that_dies_before_ready_is_reported_at_once() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| config(dir, &ports, apps()), ApiOptions::default()).await;
    let start = Instant::now();
    let a = t.post(&json!({"application": "crash"})).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        a.json()["error"],
        "The process exited (exit code 3) before it was ready. Check session logs."
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "no wait for the 5 s timeout"
    );
    let a = t.post(&json!({"application": "missing"})).await;
    assert_eq!(a.status, 503);
    let message = a.json()["error"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("The process did not properly start"),
        "{message}"
    );
    assert_eq!(
        t.post(&json!({"application": "stay"})).await.status,
        200,
        "no port leaked"
    );
    t.stop().await;
}

#[tokio::test]
async fn without_a_ready_line_a_session_is_ready_when_its_port_listens() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| config(dir, &ports, apps()), ApiOptions::default()).await;
    let a = t.post(&json!({"application": "listen"})).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", ports[0]))
        .await
        .is_ok());
    t.stop().await;
}

#[tokio::test]
async fn stopping_the_launcher_stops_every_process_and_their_children() {
    let ports = free_ports(3);
    let t = TestLauncher::start(
        |dir| {
            let mut c = config(dir, &ports, apps());
            c["configuration"]["stop_grace"] = json!(0.5);
            c
        },
        ApiOptions::default(),
    )
    .await;
    let mut pids = Vec::new();
    for app in ["stay", "family", "family"] {
        let a = t.post(&json!({"application": app})).await;
        assert_eq!(a.status, 200);
        let pid = t.pid(&a);
        pids.push(pid);
        pids.extend(children(pid));
    }
    assert!(
        pids.len() >= 5,
        "the sessions and their background children: {pids:?}"
    );
    assert!(pids.iter().all(|p| alive(*p)));
    let start = Instant::now();
    t.stop().await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "SIGKILL after the 0.5 s grace"
    );
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(
        left.is_empty(),
        "still running after the launcher stopped: {left:?}"
    );
}

#[tokio::test]
async fn concurrent_launches_are_limited() {
    let ports = free_ports(3);
    let t = TestLauncher::start(
        |dir| {
            let mut c = config(dir, &ports, apps());
            c["configuration"]["max_concurrent_launches"] = json!(1);
            c["configuration"]["timeout"] = json!(1);
            c
        },
        ApiOptions::default(),
    )
    .await;
    let mute = json!({"application": "mute"});
    let slow = t.post(&mute);
    let quick = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        t.post(&json!({"application": "stay"})).await
    };
    let (slow, quick) = tokio::join!(slow, quick);
    assert_eq!(slow.status, 503);
    assert_eq!(quick.status, 503);
    assert_eq!(
        quick.json()["error"],
        "Too many sessions are starting at once; try again"
    );
    assert_eq!(
        t.post(&json!({"application": "stay"})).await.status,
        200,
        "free again"
    );
    t.stop().await;
}
