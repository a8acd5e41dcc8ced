//! Which servers a wss:// connection trusts (feature `tls`).
//!
//! rustls with the ring provider; the roots are the webpki (Mozilla) set
//! built into the binary, so the client trusts the same public CAs on every
//! machine, plus whatever private CAs the application adds.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::Error;

/// The rustls this crate is built on, for [`ClientBuilder::tls_config`](crate::ClientBuilder::tls_config).
pub use rustls;

/// What the builder collected; turned into a rustls configuration only
/// when a wss:// URL is opened, so ws:// never pays for it.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub webpki_roots: bool,
    pub roots: Vec<CertificateDer<'static>>,
    pub ca_files: Vec<PathBuf>,
    pub config: Option<Arc<rustls::ClientConfig>>,
    pub accept_invalid_certs: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            webpki_roots: true,
            roots: Vec::new(),
            ca_files: Vec::new(),
            config: None,
            accept_invalid_certs: false,
        }
    }
}

impl TlsSettings {
    /// The rustls client configuration for a wss:// connection.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(config) = &self.config {
            return Ok(config.clone());
        }
        let mut store = rustls::RootCertStore::empty();
        if self.webpki_roots {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for cert in &self.roots {
            store
                .add(cert.clone())
                .map_err(|e| Error::BadRootCertificate {
                    reason: e.to_string(),
                })?;
        }
        for path in &self.ca_files {
            for cert in read_ca_file(path)? {
                store.add(cert).map_err(|e| Error::CaFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        // Explicit provider, not the process default: a program that also
        // links aws-lc-rs through another crate would otherwise panic.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3");
        let config = if self.accept_invalid_certs {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(store).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// Every certificate of a PEM file (a CA bundle may hold several).
fn read_ca_file(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = std::fs::read(path).map_err(|e| Error::CaFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::CaFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::CaFile {
            path: path.clone(),
            reason: "no \"BEGIN CERTIFICATE\" section found".into(),
        });
    }
    Ok(certs)
}

/// Takes any certificate for any name (the handshake's signatures are
/// still checked, so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
