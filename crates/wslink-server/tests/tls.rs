//! wss:// and https:// on the server's port (feature `tls`): the Rust
//! client trusting a private CA, static files over https, clients that do
//! not speak TLS, handshakes that never finish, and bad certificate files.
//! Every certificate is made here at run time with rcgen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wslink_client::Client;
use wslink_server::conformance;
use wslink_server::tls::{rustls, TlsConfig, TlsError};
use wslink_server::{Server, Value};

/// A private CA and a server certificate it signed for localhost and
/// 127.0.0.1, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        Pki::for_names(&["localhost", "127.0.0.1"])
    }

    fn for_names(names: &[&str]) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wslink test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Pki {
            dir,
            ca_pem: ca_cert.pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls(&self) -> TlsConfig {
        TlsConfig::from_pem_files(self.path("cert.pem"), self.path("key.pem")).unwrap()
    }
}

/// Starts the conformance service with TLS; returns its port.
async fn start(server: &Server) -> u16 {
    let listener = server.bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().port();
    tokio::spawn(listener.run());
    port
}

async fn add(client: &Client, a: i64, b: i64) -> Value {
    client
        .call(
            "conformance.add",
            vec![Value::from(a), Value::from(b)],
            Default::default(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn the_rust_client_calls_over_wss_trusting_a_private_ca() {
    let pki = Pki::new();
    let server = conformance::builder().tls(pki.tls()).build();
    assert!(server.is_tls());
    let port = start(&server).await;

    // By file, with the public roots left on (the CA is added to them).
    let url = format!("wss://localhost:{port}/ws");
    let client = Client::builder(&url)
        .ca_file(pki.path("ca.pem"))
        .connect()
        .await
        .unwrap();
    assert_eq!(add(&client, 2, 3).await, Value::from(5));
    client.close().await;

    // In memory, trusting nothing else, by IP address.
    let ca = rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let client = Client::builder(format!("wss://127.0.0.1:{port}/ws"))
        .webpki_roots(false)
        .root_certificates(ca)
        .connect()
        .await
        .unwrap();
    assert_eq!(add(&client, 40, 2).await, Value::from(42));
    client.close().await;

    server.shutdown();
}

use rustls::pki_types::pem::PemObject;

#[tokio::test]
async fn an_untrusted_or_misnamed_server_is_refused() {
    let pki = Pki::new();
    let server = conformance::builder().tls(pki.tls()).build();
    let port = start(&server).await;

    // Not signed by any public CA.
    let err = Client::builder(format!("wss://localhost:{port}/ws"))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, wslink_client::Error::Connect { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("certificate"), "{err}");

    // Trusted CA, but the certificate is for another name.
    let elsewhere = Pki::for_names(&["viz.example.org"]);
    let other = conformance::builder().tls(elsewhere.tls()).build();
    let other_port = start(&other).await;
    let err = Client::builder(format!("wss://localhost:{other_port}/ws"))
        .ca_file(elsewhere.path("ca.pem"))
        .connect()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate not valid for name"),
        "{err}"
    );
    other.shutdown();

    // A CA file that is not there fails before any connection, naming it.
    let err = Client::builder(format!("wss://localhost:{port}/ws"))
        .ca_file(pki.path("missing-ca.pem"))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, wslink_client::Error::CaFile { path, .. } if path.ends_with("missing-ca.pem")),
        "{err:?}"
    );

    // A plain ws:// client reaches a TLS port: it fails, it does not hang.
    let err = Client::builder(format!("ws://127.0.0.1:{port}/ws"))
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap_err();
    assert!(
        !matches!(err, wslink_client::Error::Timeout { .. }),
        "{err:?}"
    );
    server.shutdown();
}

/// GET over https with a rustls client trusting `ca_pem`.
async fn https_get(port: u16, path: &str, ca_pem: &str) -> String {
    let config = client_config(ca_pem, rustls::DEFAULT_VERSIONS);
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // A peer that closes without close_notify is an error for rustls;
    // what was read before it is still the answer.
    let _ = tls.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn static_content_is_served_over_https() {
    let pki = Pki::new();
    let content = tempfile::tempdir().unwrap();
    std::fs::write(content.path().join("index.html"), "<p>served over TLS</p>").unwrap();
    let server = Server::builder()
        .tls(pki.tls())
        .content(content.path())
        .build();
    let port = start(&server).await;

    let response = https_get(port, "/index.html", &pki.ca_pem).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("<p>served over TLS</p>"), "{response}");
    let response = https_get(port, "/nope.html", &pki.ca_pem).await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    server.shutdown();
}

/// Reads until the server closes; fails if it has not within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server should have closed the connection");
    got
}

#[tokio::test]
async fn plaintext_and_garbage_on_the_tls_port_are_closed_without_harm() {
    let pki = Pki::new();
    let server = conformance::builder().tls(pki.tls()).build();
    let port = start(&server).await;
    let client = Client::builder(format!("wss://localhost:{port}/ws"))
        .ca_file(pki.path("ca.pem"))
        .connect()
        .await
        .unwrap();

    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut plain, Duration::from_secs(5)).await;
    // Whatever rustls said (an alert at most), it is no HTTP answer.
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    let mut garbage = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let noise: Vec<u8> = (0..4096u32).map(|i| (i * 193 + 7) as u8).collect();
    let _ = garbage.write_all(&noise).await;
    closed_within(&mut garbage, Duration::from_secs(5)).await;

    // The TLS client was not disturbed, and new ones still get in.
    assert_eq!(add(&client, 1, 1).await, Value::from(2));
    let second = Client::builder(format!("wss://localhost:{port}/ws"))
        .ca_file(pki.path("ca.pem"))
        .connect()
        .await
        .unwrap();
    assert_eq!(add(&second, 2, 2).await, Value::from(4));
    client.close().await;
    second.close().await;
    server.shutdown();
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout_and_blocks_nobody() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(600);
    let server = conformance::builder()
        .tls(pki.tls().with_handshake_timeout(timeout))
        .build();
    let port = start(&server).await;

    // Opens TCP and says nothing; a second one sends half a ClientHello.
    let started = Instant::now();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut half = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();

    // Meanwhile the accept loop goes on: a real client connects at once.
    let client = Client::builder(format!("wss://localhost:{port}/ws"))
        .ca_file(pki.path("ca.pem"))
        .connect()
        .await
        .unwrap();
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    assert_eq!(add(&client, 3, 4).await, Value::from(7));

    closed_within(&mut silent, Duration::from_secs(5)).await;
    closed_within(&mut half, Duration::from_secs(5)).await;
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(add(&client, 5, 5).await, Value::from(10));
    client.close().await;
    server.shutdown();
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .unwrap()
}

fn assert_names(err: &TlsError, file: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&file.display().to_string()),
        "{text:?} should name {}",
        file.display()
    );
}

#[test]
fn bad_certificate_and_key_files_are_errors_that_name_the_file() {
    let pki = Pki::new();
    let cert = pki.path("cert.pem");
    let key = pki.path("key.pem");

    let missing = pki.path("missing.pem");
    let err = TlsConfig::from_pem_files(&missing, &key).unwrap_err();
    assert!(
        matches!(&err, TlsError::ReadCert { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_names(&err, &missing);
    let err = TlsConfig::from_pem_files(&cert, &missing).unwrap_err();
    assert!(
        matches!(&err, TlsError::ReadKey { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_names(&err, &missing);

    // A directory cannot be read as a file either.
    let err = TlsConfig::from_pem_files(pki.dir.path(), &key).unwrap_err();
    assert!(matches!(err, TlsError::ReadCert { .. }), "{err:?}");

    let junk = pki.path("junk.pem");
    std::fs::write(&junk, "hello, I am not PEM\n").unwrap();
    let err = TlsConfig::from_pem_files(&junk, &key).unwrap_err();
    assert!(
        matches!(&err, TlsError::BadCert { path, .. } if *path == junk),
        "{err:?}"
    );
    assert_names(&err, &junk);
    let err = TlsConfig::from_pem_files(&cert, &junk).unwrap_err();
    assert!(
        matches!(&err, TlsError::BadKey { path, .. } if *path == junk),
        "{err:?}"
    );
    assert_names(&err, &junk);

    // The halves swapped: a key where the certificate goes and vice versa.
    let err = TlsConfig::from_pem_files(&key, &cert).unwrap_err();
    assert!(matches!(err, TlsError::BadCert { .. }), "{err:?}");

    // A PEM section whose base64 is broken.
    let broken = pki.path("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = TlsConfig::from_pem_files(&broken, &key).unwrap_err();
    assert!(matches!(err, TlsError::BadCert { .. }), "{err:?}");
    assert_names(&err, &broken);

    // Valid PEM and base64, but no certificate inside.
    let hollow = pki.path("hollow.pem");
    std::fs::write(
        &hollow,
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = TlsConfig::from_pem_files(&hollow, &key).unwrap_err();
    assert!(matches!(err, TlsError::BadCert { .. }), "{err:?}");
    assert_names(&err, &hollow);

    // A well-formed key that belongs to another certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    let other_key = pki.path("other-key.pem");
    std::fs::write(&other_key, other.serialize_pem()).unwrap();
    let err = TlsConfig::from_pem_files(&cert, &other_key).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    assert_names(&err, &other_key);
    assert_names(&err, &cert);

    // The good pair loads and knows its certificate and public key.
    let tls = TlsConfig::from_pem_files(&cert, &key).unwrap();
    use rcgen::PublicKeyData;
    let spki = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap())
        .unwrap()
        .subject_public_key_info();
    let digest = sha256(&spki);
    assert_eq!(tls.spki_sha256(), Some(digest));
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert_eq!(
        tls.certificate_pem().unwrap().replace('\r', ""),
        pem.replace('\r', "")
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_trusted_by_its_own_pem() {
    let tls = TlsConfig::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("adhoc.pem");
    std::fs::write(&cert, tls.certificate_pem().unwrap()).unwrap();
    let server = conformance::builder().tls(tls).build();
    let port = start(&server).await;
    for host in ["localhost", "127.0.0.1"] {
        let client = Client::builder(format!("wss://{host}:{port}/ws"))
            .webpki_roots(false)
            .ca_file(&cert)
            .connect()
            .await
            .unwrap();
        assert_eq!(add(&client, 20, 22).await, Value::from(42));
        client.close().await;
    }
    server.shutdown();
}

/// A rustls client configuration trusting `ca_pem`, limited to `versions`.
fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

#[tokio::test]
async fn a_rustls_server_config_of_ones_own_is_used_as_given() {
    let pki = Pki::new();
    let chain =
        vec![rustls::pki_types::CertificateDer::from_pem_file(pki.path("cert.pem")).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(pki.path("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let tls = TlsConfig::from_rustls(Arc::new(config));
    assert!(tls.certificate_der().is_none());
    let server = conformance::builder().tls(tls).build();
    let port = start(&server).await;
    let url = format!("wss://localhost:{port}/ws");

    let client = Client::builder(&url)
        .tls_config(client_config(&pki.ca_pem, &[&rustls::version::TLS13]))
        .connect()
        .await
        .unwrap();
    assert_eq!(add(&client, 6, 7).await, Value::from(13));
    client.close().await;

    // This server only speaks TLS 1.3: a TLS 1.2-only client is refused.
    let err = Client::builder(&url)
        .tls_config(client_config(&pki.ca_pem, &[&rustls::version::TLS12]))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, wslink_client::Error::Connect { .. }),
        "{err:?}"
    );
    server.shutdown();
}
