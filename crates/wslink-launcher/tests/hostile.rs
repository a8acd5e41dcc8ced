//! Hostile clients: shell metacharacters, path traversal, template
//! injection, values of the wrong type, oversize fields, and attempts to
//! set what only the launcher may set. Each case reads the started
//! process's real argument vector from /proc.

mod support;

use serde_json::{json, Value};
use support::*;
use wslink_launcher::ApiOptions;

fn hostile_config(dir: &std::path::Path, ports: &[u16]) -> Value {
    let mut c = config(
        dir,
        ports,
        json!({
            "app": {
                "cmd": ["sh", "-c", STAY, "app",
                        "--file", "${dataDir}/${file}",
                        "--mode", "${mode}",
                        "--free", "${free}",
                        "--raw", "$raw",
                        "--id", "${id}", "--host", "${host}", "--port", "${port}"],
                "ready_line": "ready"
            }
        }),
    );
    c["properties"] = json!({ "dataDir": "/data", "free": "from-properties" });
    c["configuration"]["sanitize"] = json!({
        "file": { "type": "regexp", "regexp": "^[A-Za-z0-9_-]{1,64}\\.vtk$", "default": "cone.vtk" },
        "mode": { "type": "inList", "list": ["fast", "slow"], "default": "fast" },
        // Admits anything: shows that even then no shell ever reads a value.
        "raw": { "type": "regexp", "regexp": "(?s).*", "default": "" }
    });
    c
}

/// Launches with `fields` and returns the process's argv after `sh -c
/// SCRIPT app`, plus the answer.
async fn argv(t: &TestLauncher, fields: Value) -> (Vec<String>, Value) {
    let mut request = json!({"application": "app"});
    request
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let a = t.post(&request).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let pid = t.pid(&a);
    let answer = a.json();
    let id = answer["id"].as_str().unwrap().to_owned();
    let args = cmdline(pid)[4..].to_vec();
    assert!(t.launcher.sessions().stop(&id).await.is_some());
    (args, answer)
}

fn arg<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    &args[i + 1]
}

#[tokio::test]
async fn client_values_reach_a_command_only_through_their_rules() {
    let ports = free_ports(1);
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("pwned");
    let t = TestLauncher::start(|dir| hostile_config(dir, &ports), ApiOptions::default()).await;

    let (args, _) = argv(&t, json!({"file": "head.vtk", "mode": "slow"})).await;
    assert_eq!(arg(&args, "--file"), "/data/head.vtk");
    assert_eq!(arg(&args, "--mode"), "slow");

    let touch = format!("$(touch {})", marker.display());
    let hostile_files = [
        json!("; rm -rf /"),
        json!(touch),
        json!(format!("`touch {}`", marker.display())),
        json!("a.vtk; touch x"),
        json!("../../etc/passwd"),
        json!("..%2f..%2fetc%2fpasswd"),
        json!("/etc/passwd"),
        json!("a.vtk\n--evil"),
        json!("${dataDir}"),
        json!("$HOME"),
        json!("head.vtk\u{0}x"),
        json!("x".repeat(50_000) + ".vtk"),
        json!(5),
        json!(["head.vtk"]),
        json!({"file": "head.vtk"}),
        json!(null),
    ];
    for file in hostile_files {
        let (args, answer) = argv(&t, json!({"file": file, "mode": "rm -rf /"})).await;
        let shown: String = file.to_string().chars().take(80).collect();
        assert_eq!(arg(&args, "--file"), "/data/cone.vtk", "{shown}");
        assert_eq!(arg(&args, "--mode"), "fast");
        assert_eq!(args.len(), 14, "one argument stays one argument: {args:?}");
        assert!(answer.get("file").is_none(), "not in fields, not echoed");
    }

    // A value the rule admits is one argument, read by no shell.
    for raw in [
        touch.clone(),
        "; touch x && echo".into(),
        "a b\nc".into(),
        "$free ${dataDir}".into(),
    ] {
        let (args, _) = argv(&t, json!({"raw": raw})).await;
        assert_eq!(
            arg(&args, "--raw"),
            raw,
            "verbatim and never substituted again"
        );
    }
    assert!(!marker.exists(), "no shell ran a client value");

    // Values without a rule never reach the command: `${free}` takes the
    // property, not the client's value.
    let (args, _) = argv(&t, json!({"free": "; rm -rf / #", "dataDir": "/etc"})).await;
    assert_eq!(arg(&args, "--free"), "from-properties");
    assert_eq!(
        arg(&args, "--file"),
        "/data/${file}",
        "no value and no default: left as written, as Kitware's"
    );

    // What the launcher sets, a client cannot.
    let (args, answer) = argv(
        &t,
        json!({"id": "../../x", "host": "evil.example", "port": 1, "secret": "chosen", "sessionURL": "ws://evil/", "cmd": ["rm"]}),
    )
    .await;
    assert_eq!(arg(&args, "--id"), answer["id"].as_str().unwrap());
    assert_ne!(arg(&args, "--id"), "../../x");
    assert_eq!(arg(&args, "--host"), "127.0.0.1");
    assert_eq!(arg(&args, "--port"), ports[0].to_string());
    assert_eq!(
        answer["sessionURL"],
        format!("ws://127.0.0.1:{}/ws", ports[0])
    );
    assert_eq!(answer["port"], ports[0]);
    t.stop().await;
}

#[tokio::test]
async fn an_application_name_is_a_key_not_a_path() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| hostile_config(dir, &ports), ApiOptions::default()).await;
    for name in ["../../bin/sh", "/bin/sh", "app ", "APP", "app\u{0}", ""] {
        let a = t.post(&json!({"application": name})).await;
        assert_eq!(a.status, 400, "{name:?}");
    }
    assert!(t.launcher.sessions().list().is_empty());
    t.stop().await;
}

#[tokio::test]
async fn oversize_and_odd_bodies_start_nothing() {
    let ports = free_ports(1);
    let t = TestLauncher::start(|dir| hostile_config(dir, &ports), ApiOptions::default()).await;
    // Over the default 64 KiB limit.
    let big = json!({"application": "app", "file": "x".repeat(70_000)});
    assert_eq!(t.post(&big).await.status, 413);
    // Many keys, deep nesting, invalid UTF-8, an empty body.
    let mut many = serde_json::Map::new();
    many.insert("application".into(), json!("nope"));
    for i in 0..5000 {
        many.insert(format!("k{i}"), json!(i));
    }
    assert_eq!(t.post(&Value::Object(many)).await.status, 400);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        http(t.addr, "POST", "/launch/", "", deep.as_bytes())
            .await
            .status,
        400
    );
    assert_eq!(
        http(
            t.addr,
            "POST",
            "/launch/",
            "",
            b"{\"application\": \"\xff\"}"
        )
        .await
        .status,
        400
    );
    assert_eq!(http(t.addr, "POST", "/launch/", "", b"").await.status, 400);
    assert!(t.launcher.sessions().list().is_empty());
    // And the launcher still works.
    let (args, _) = argv(&t, json!({})).await;
    assert_eq!(arg(&args, "--mode"), "${mode}");
    t.stop().await;
}
