//! TLS termination on the server's own port: wss:// and https://.
//!
//! rustls with its ring provider, chosen over aws-lc-rs because ring builds
//! from a little C and assembly with `cc` alone, where aws-lc needs cmake
//! and takes several times longer to compile; both are as fast at run time
//! for what a wslink server does. The handshake runs in the connection's
//! own task under [`TlsConfig::with_handshake_timeout`], so a client that opens
//! TCP and says nothing neither blocks the accept loop nor holds its socket
//! forever.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

/// The rustls this module is built on, for [`TlsConfig::from_rustls`].
pub use rustls;

/// How long a client has to finish the TLS handshake by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS configuration could not be made. Each variant names the file
/// it is about, so a start-up failure says which file to fix.
///
/// ```
/// use wslink_server::tls::{TlsConfig, TlsError};
///
/// let err = TlsConfig::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
/// assert!(matches!(err, TlsError::ReadCert { .. }));
/// assert!(err.to_string().contains("/nonexistent/cert.pem"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The certificate file could not be read.
    #[error("cannot read the TLS certificate {}: {source}", path.display())]
    ReadCert {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The private key file could not be read.
    #[error("cannot read the TLS private key {}: {source}", path.display())]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate file holds no usable PEM certificate.
    #[error("{} is not a PEM certificate: {reason}", path.display())]
    BadCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("{} is not a PEM private key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key and the certificate do not go together (the key is not the
    /// certificate's, or rustls cannot use this kind of key).
    #[error(
        "the TLS private key {} does not fit the certificate {}: {source}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls reported.
        source: rustls::Error,
    },
    /// A self-signed certificate could not be made (e.g. a host name that
    /// is not a valid DNS name).
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS side of a server: a rustls configuration plus how long a client
/// gets to finish its handshake. Give it to
/// [`ServerBuilder::tls`](crate::ServerBuilder::tls); the server then
/// speaks only TLS on its port (wss:// for the WebSocket, https:// for
/// static content), as Kitware's server does with `--ssl`.
///
/// From PEM files, as `--ssl cert.pem,key.pem`:
///
/// ```no_run
/// use wslink_server::{tls::TlsConfig, Server};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = TlsConfig::from_pem_files("/etc/wslink/cert.pem", "/etc/wslink/key.pem")?;
/// Server::builder().tls(tls).build().serve("0.0.0.0:8443").await?;
/// # Ok(()) }
/// ```
///
/// A throw-away self-signed certificate, as `--ssl adhoc` (clients must be
/// told to trust it, see [`TlsConfig::certificate_pem`]):
///
/// ```
/// use wslink_server::tls::TlsConfig;
///
/// let tls = TlsConfig::self_signed(["localhost", "127.0.0.1"])?;
/// assert!(tls.certificate_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert_eq!(tls.certificate_sha256().unwrap().len(), 32);
/// # Ok::<(), wslink_server::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    acceptor: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    /// The leaf certificate and its public key, when this module loaded or
    /// made them (not for a caller's own `rustls::ServerConfig`).
    leaf: Option<Arc<Leaf>>,
}

struct Leaf {
    cert: CertificateDer<'static>,
    spki: Vec<u8>,
}

impl Leaf {
    fn new(cert: &CertificateDer<'static>) -> Result<Leaf, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
        Ok(Leaf {
            cert: cert.clone(),
            spki: parsed.subject_public_key_info().as_ref().to_vec(),
        })
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("own_certificate", &self.leaf.is_some())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    // Explicit, not the process default: a binary that also links
    // aws-lc-rs through another crate would otherwise panic on ambiguity.
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsConfig {
    /// Loads a PEM certificate chain (leaf first, as Python's
    /// `load_cert_chain`) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// Fails with an error naming the file when a file is missing or
    /// unreadable ([`TlsError::ReadCert`], [`TlsError::ReadKey`]), holds no
    /// certificate or key ([`TlsError::BadCert`], [`TlsError::BadKey`]), or
    /// the key is not the certificate's ([`TlsError::KeyMismatch`]).
    ///
    /// ```
    /// use wslink_server::tls::{TlsConfig, TlsError};
    ///
    /// let dir = std::env::temp_dir().join(format!("wslink-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let cert = dir.join("cert.pem");
    /// std::fs::write(&cert, "not a certificate").unwrap();
    /// let err = TlsConfig::from_pem_files(&cert, dir.join("key.pem")).unwrap_err();
    /// assert!(matches!(err, TlsError::BadCert { ref path, .. } if *path == cert));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let cert_pem = std::fs::read(cert).map_err(|source| TlsError::ReadCert {
            path: cert.to_owned(),
            source,
        })?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::BadCert {
                path: cert.to_owned(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::BadCert {
                path: cert.to_owned(),
                reason: "no \"BEGIN CERTIFICATE\" section found".into(),
            });
        }
        let key_pem = std::fs::read(key).map_err(|source| TlsError::ReadKey {
            path: key.to_owned(),
            source,
        })?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
            path: key.to_owned(),
            reason: match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no \"BEGIN PRIVATE KEY\" (or RSA / EC PRIVATE KEY) section found".into()
                }
                other => other.to_string(),
            },
        })?;
        let leaf = Leaf::new(&chain[0]).map_err(|e| TlsError::BadCert {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
        let config = single_cert(chain, private).map_err(|source| match source {
            // The certificate parsed, so a general failure is the key's.
            rustls::Error::General(reason) => TlsError::BadKey {
                path: key.to_owned(),
                reason,
            },
            source => TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
                source,
            },
        })?;
        Ok(Self::with_leaf(config, leaf))
    }

    /// Makes a self-signed certificate (ECDSA P-256) for `hosts`, which
    /// may be DNS names or IP addresses, valid from yesterday for a year.
    /// Nothing is written to disk: the key lives only in memory, and
    /// [`certificate_pem`](Self::certificate_pem) gives the certificate for
    /// clients to trust.
    ///
    /// Kitware's `--ssl adhoc` does the same with an RSA key and files in
    /// the temporary directory.
    ///
    /// ```
    /// let tls = wslink_server::tls::TlsConfig::self_signed(["localhost", "::1"])?;
    /// assert!(tls.spki_sha256().is_some());
    /// # Ok::<(), wslink_server::tls::TlsError>(())
    /// ```
    pub fn self_signed<S: AsRef<str>>(
        hosts: impl IntoIterator<Item = S>,
    ) -> Result<Self, TlsError> {
        let hosts: Vec<String> = hosts.into_iter().map(|h| h.as_ref().to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(hosts.clone())?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(
            rcgen::DnType::OrganizationName,
            "wslink-rs ad-hoc certificate",
        );
        if let Some(first) = hosts.first() {
            name.push(rcgen::DnType::CommonName, first.as_str());
        }
        params.distinguished_name = name;
        let now = time::OffsetDateTime::now_utc();
        // A year, as Kitware's: Apple platforms refuse server certificates
        // valid for more than 825 days even when trusted by hand.
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(365);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        let leaf = Leaf::new(cert.der())?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = single_cert(vec![cert.der().clone()], private)?;
        Ok(Self::with_leaf(config, leaf))
    }

    /// Uses a rustls configuration as it is, for full control (client
    /// certificates, several certificates by SNI, other cipher suites...).
    /// ALPN is the caller's business: the server speaks HTTP/1.1 only, so
    /// advertise `http/1.1` or nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use wslink_server::tls::TlsConfig;
    ///
    /// # use wslink_server::tls::rustls;
    /// # fn demo(chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// #         key: rustls::pki_types::PrivateKeyDer<'static>) -> Result<(), rustls::Error> {
    /// let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_protocol_versions(&[&rustls::version::TLS13])?
    /// .with_no_client_auth()
    /// .with_single_cert(chain, key)?;
    /// config.alpn_protocols = vec![b"http/1.1".to_vec()];
    /// let tls = TlsConfig::from_rustls(Arc::new(config));
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn from_rustls(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            leaf: None,
        }
    }

    fn with_leaf(mut config: rustls::ServerConfig, leaf: Leaf) -> Self {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut this = Self::from_rustls(Arc::new(config));
        this.leaf = Some(Arc::new(leaf));
        this
    }

    /// How long a client has, from its TCP connection, to finish the TLS
    /// handshake before it is dropped (10 s by default).
    ///
    /// ```
    /// use std::time::Duration;
    /// let tls = wslink_server::tls::TlsConfig::self_signed(["localhost"])?
    ///     .with_handshake_timeout(Duration::from_secs(3));
    /// assert_eq!(tls.handshake_timeout(), Duration::from_secs(3));
    /// # Ok::<(), wslink_server::tls::TlsError>(())
    /// ```
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The handshake timeout in force.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The server's certificate (the chain's first) in DER, when this
    /// configuration was loaded or made here (not [`from_rustls`](Self::from_rustls)).
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.leaf.as_ref().map(|l| l.cert.as_ref())
    }

    /// The server's certificate as PEM, e.g. to save for clients to trust
    /// (`wslink call --ca FILE`, `NODE_EXTRA_CA_CERTS`).
    pub fn certificate_pem(&self) -> Option<String> {
        let der = self.certificate_der()?;
        Some(pem_encode("CERTIFICATE", der))
    }

    /// SHA-256 of the certificate's DER: the fingerprint browsers show.
    pub fn certificate_sha256(&self) -> Option<[u8; 32]> {
        self.certificate_der().map(sha256)
    }

    /// SHA-256 of the certificate's public key (SubjectPublicKeyInfo), as
    /// Chromium's `--ignore-certificate-errors-spki-list` takes it (in
    /// base64), and as HTTP public key pinning used to.
    pub fn spki_sha256(&self) -> Option<[u8; 32]> {
        self.leaf.as_ref().map(|l| sha256(&l.spki))
    }

    /// Runs the handshake on an accepted connection, within the timeout.
    pub(crate) async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(io)).await {
            Ok(done) => done,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake not finished within {:?}",
                    self.handshake_timeout
                ),
            )),
        }
    }
}

fn single_cert(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_through_the_parser() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 300] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), der.as_slice(), "length {len}");
        }
    }
}
