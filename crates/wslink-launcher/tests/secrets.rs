//! Handing a session its secret without a command line that shows it:
//! `${secretFile}` and an app's `env`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::json;
use support::*;
use wslink_launcher::ApiOptions;

const DELETE: ApiOptions = ApiOptions {
    enable_get: true,
    enable_delete: true,
};

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn argv_and_env_of(pid: u32) -> String {
    format!("{:?} {:?}", cmdline(pid), environ(pid))
}

#[tokio::test]
async fn a_secret_file_is_private_holds_the_secret_and_goes_with_the_session() {
    let ports = free_ports(2);
    let t = TestLauncher::start(
        |dir| {
            config(
                dir,
                &ports,
                json!({ "app": {
                    "cmd": ["sh", "-c", "read -r s < \"$1\"; [ -n \"$s\" ] && echo ready; while :; do sleep 1; done",
                            "app", "${secretFile}"],
                    "ready_line": "ready" } }),
            )
        },
        DELETE,
    )
    .await;
    let a = t.post(&json!({"application": "app"})).await;
    assert_eq!(a.status, 200, "the process read its secret file");
    let answer = a.json();
    let secret = answer["secret"]
        .as_str()
        .expect("the client gets the secret")
        .to_owned();
    let pid = t.pid(&a);
    let args = cmdline(pid);
    assert!(!args.iter().any(|s| s.contains(&secret)), "{args:?}");
    assert!(!argv_and_env_of(pid).contains(&secret));

    let file = PathBuf::from(&args[4]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{secret}\n")
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let dir = file.parent().unwrap().to_path_buf();
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let b = t.post(&json!({"application": "app"})).await;
    let other = b.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(other, secret, "a secret per session");

    let id = answer["id"].as_str().unwrap();
    assert_eq!(
        http(t.addr, "DELETE", &format!("/launch/{id}"), "", b"")
            .await
            .status,
        200
    );
    assert!(!file.exists(), "removed with its session");
    let got = http(
        t.addr,
        "GET",
        &format!("/launch/{}", b.json()["id"].as_str().unwrap()),
        "",
        b"",
    )
    .await;
    assert!(
        got.json().get("secret").is_none(),
        "GET does not give the secret out"
    );
    t.stop().await;
    assert!(!dir.exists(), "the directory goes when the launcher stops");
}

#[tokio::test]
async fn an_env_map_hands_the_secret_over_out_of_sight() {
    let ports = free_ports(1);
    let t = TestLauncher::start(
        |dir| {
            config(
                dir,
                &ports,
                json!({ "app": {
                    "cmd": ["sh", "-c", "[ -n \"$WSLINK_AUTH_KEY\" ] && echo ready; while :; do sleep 1; done", "app"],
                    "env": { "WSLINK_AUTH_KEY": "${secret}", "SESSION_PORT": "${port}" },
                    "ready_line": "ready" } }),
            )
        },
        ApiOptions::default(),
    )
    .await;
    let a = t
        .post(&json!({"application": "app", "secret": "chosen-by-the-client"}))
        .await;
    assert_eq!(a.status, 200);
    let secret = a.json()["secret"].as_str().unwrap().to_owned();
    assert_ne!(
        secret, "chosen-by-the-client",
        "no sanitize rule for secret: the launcher picks it"
    );
    let pid = t.pid(&a);
    assert!(!cmdline(pid).iter().any(|s| s.contains(&secret)));
    let env = environ(pid);
    assert!(env.contains(&format!("WSLINK_AUTH_KEY={secret}")));
    assert!(env.contains(&format!("SESSION_PORT={}", ports[0])));
    assert!(
        env.iter().any(|v| v.starts_with("PATH=")),
        "the launcher's environment is inherited"
    );
    t.stop().await;
}
