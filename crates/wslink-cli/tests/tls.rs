//! `wslink serve --ssl` (PEM files or adhoc) and `wslink call --ca`, with
//! certificates made at run time; and our client against Kitware's Python
//! servers started with `--ssl CERT,KEY`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};

fn wslink(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args(args)
        .output()
        .expect("running wslink")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `wslink serve`, killed on drop; its stderr lines so far.
struct Served {
    child: Child,
    url: String,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn stderr_until(&self, wanted: &str) -> String {
        let mut seen = String::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(10)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(wanted) {
                return seen;
            }
        }
        panic!("no {wanted:?} on stderr; saw:\n{seen}");
    }
}

/// `wslink serve --conformance --port 0` with `extra`, in `cwd`; waits for
/// the line that gives its wss:// URL.
fn serve(extra: &[&str], cwd: &Path, tmp: &Path) -> Served {
    let mut args = vec![
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--conformance",
        "--timeout",
        "0",
    ];
    args.extend_from_slice(extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_wslink"))
        .args(&args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting wslink serve");
    let (err_tx, stderr) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if err_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut url = None;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(20)
        .map_while(Result::ok)
    {
        if let Some(at) = line.find("wss://") {
            url = Some(line[at..].split_whitespace().next().unwrap().to_owned());
            break;
        }
    }
    let url = url.expect("wslink serve --ssl should print its wss:// URL");
    // Connect by name: the certificates are for localhost.
    let url = url.replace("127.0.0.1", "localhost");
    Served { child, url, stderr }
}

fn call_add(url: &str, ca: Option<&Path>) -> Output {
    let mut args = vec![
        "call",
        url,
        "conformance.add",
        "20",
        "22",
        "--timeout",
        "10",
    ];
    let ca = ca.map(|p| p.display().to_string());
    if let Some(ca) = &ca {
        args.extend_from_slice(&["--ca", ca]);
    }
    wslink(&args)
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// A private CA (ca.pem) and a certificate it signed for localhost and
/// 127.0.0.1 (cert.pem, key.pem) in `dir`.
fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let (cert_file, key_file, ca_file) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    (cert_file, key_file, ca_file)
}

#[test]
fn serve_ssl_with_pem_files_answers_wss_calls_from_a_client_given_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file, ca_file) = make_pki(dir.path());

    let pair = format!("{},{}", cert_file.display(), key_file.display());
    let server = serve(&["--ssl", &pair], dir.path(), dir.path());
    assert!(server.url.starts_with("wss://localhost:"), "{}", server.url);

    let out = call_add(&server.url, Some(&ca_file));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    // Without the CA the certificate is refused, and the message says how
    // to trust it.
    let out = call_add(&server.url, None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca"), "{}", stderr(&out));

    // A --ca file that is not there is a usage error naming it.
    let out = call_add(&server.url, Some(&dir.path().join("nope.pem")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.pem"), "{}", stderr(&out));
}

#[test]
fn serve_ssl_adhoc_prints_its_fingerprint_and_writes_nothing_unless_asked() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&["--ssl", "adhoc"], cwd.path(), tmp.path());
    let said = server.stderr_until("SPKI SHA-256");
    assert!(said.contains("SHA-256 fingerprint: "), "{said}");
    let out = call_add(&server.url, None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // --insecure takes it, with a warning.
    let out = wslink(&[
        "call",
        &server.url,
        "conformance.add",
        "1",
        "2",
        "--insecure",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert!(stderr(&out).contains("not checked"), "{}", stderr(&out));
    drop(server);
    assert!(empty(cwd.path()) && empty(tmp.path()), "adhoc wrote files");

    // Asked to save the certificate: a client trusting that file gets in,
    // and the printed fingerprint is the file's.
    let saved = cwd.path().join("adhoc-cert.pem");
    let server = serve(
        &[
            "--ssl",
            "adhoc",
            "--ssl-adhoc-cert",
            saved.to_str().unwrap(),
        ],
        cwd.path(),
        tmp.path(),
    );
    let said = server.stderr_until("SPKI SHA-256");
    let out = call_add(&server.url, Some(&saved));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    let der = CertificateDer::from_pem_file(&saved).unwrap();
    let fingerprint = Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        said.contains(&fingerprint),
        "{said}\nexpected {fingerprint}"
    );
    // The key never reaches the disk.
    let names: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["adhoc-cert.pem"]);
    assert!(empty(tmp.path()));
}

#[test]
fn serve_ssl_with_a_bad_file_exits_non_zero_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, "not a key").unwrap();
    let pair = format!("{},{}", missing.display(), key.display());
    let out = wslink(&["serve", "--port", "0", "--ssl", &pair]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing-cert.pem"),
        "{}",
        stderr(&out)
    );

    let cert = dir.path().join("cert.pem");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(&cert, made.cert.pem()).unwrap();
    let pair = format!("{},{}", cert.display(), key.display());
    let out = wslink(&["serve", "--port", "0", "--ssl", &pair]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("key.pem"), "{}", stderr(&out));

    // Kitware's syntax: "adhoc" or exactly two files.
    let out = wslink(&["serve", "--port", "0", "--ssl", "only-one.pem"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("CERT,KEY"), "{}", stderr(&out));
}

/// The drop-in check the other way round: Kitware's servers (2.6.0 and
/// 1.12.4) with `--ssl CERT,KEY`, and our client verifying them against the
/// private CA. (Their `--ssl adhoc` needs the `cryptography` package, which
/// the reference venvs do not carry; it builds the same SSL context from
/// files it writes, so the files case covers the transport.)
#[test]
fn our_client_calls_kitwares_python_servers_over_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file, ca_file) = make_pki(dir.path());
    let pair = format!("{},{}", cert_file.display(), key_file.display());
    for generation in [wslink_core::Generation::V2, wslink_core::Generation::V1] {
        let server = support::peers::start_with(generation, &["--ssl", &pair], "wss");
        let ca = ca_file.display().to_string();
        let call = |trust: bool| {
            let mut args = vec![
                "call",
                &server.url,
                "conformance.add",
                "20",
                "22",
                "--secret",
                support::peers::SECRET,
            ];
            if generation == wslink_core::Generation::V1 {
                args.push("--legacy");
            }
            if trust {
                args.extend(["--ca", &ca]);
            }
            wslink(&args)
        };
        let out = call(true);
        assert!(out.status.success(), "{generation}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

        // The same server, not trusted: refused by our client.
        let out = call(false);
        assert_eq!(out.status.code(), Some(3), "{generation}: {}", stderr(&out));
    }
}
