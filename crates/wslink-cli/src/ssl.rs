//! `wslink serve --ssl`: Kitware's `CERT,KEY` / `adhoc` value, made into
//! the server's TLS configuration.

use std::path::{Path, PathBuf};

use wslink_server::tls::TlsConfig;

/// The value of `--ssl`, as Kitware's server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SslArg {
    /// A self-signed certificate made at start.
    Adhoc,
    /// PEM certificate chain and private key files.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
}

impl std::str::FromStr for SslArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "adhoc" {
            return Ok(SslArg::Adhoc);
        }
        match s.split(',').collect::<Vec<_>>()[..] {
            [cert, key] if !cert.is_empty() && !key.is_empty() => Ok(SslArg::Files {
                cert: cert.into(),
                key: key.into(),
            }),
            _ => Err("expected \"adhoc\" or two files \"CERT,KEY\"".into()),
        }
    }
}

/// The TLS configuration `--ssl` asks for; adhoc certificates cover the
/// listening host and this machine's loopback names.
pub fn tls_config(ssl: &SslArg, host: &str, save_cert: Option<&Path>) -> Result<TlsConfig, String> {
    match ssl {
        SslArg::Files { cert, key } => {
            TlsConfig::from_pem_files(cert, key).map_err(|e| format!("--ssl: {e}"))
        }
        SslArg::Adhoc => {
            let mut hosts = vec![host.to_owned()];
            for local in ["localhost", "127.0.0.1", "::1"] {
                if !hosts.iter().any(|h| h == local) {
                    hosts.push(local.to_owned());
                }
            }
            // A wildcard address is no name a client connects to.
            hosts.retain(|h| !matches!(h.as_str(), "" | "0.0.0.0" | "::" | "[::]"));
            let tls = TlsConfig::self_signed(&hosts).map_err(|e| format!("--ssl adhoc: {e}"))?;
            let hex = |bytes: [u8; 32]| {
                bytes
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            };
            let pem = tls.certificate_pem().unwrap_or_default();
            eprintln!(
                "wslink: ad-hoc TLS certificate for {}\n  SHA-256 fingerprint: {}\n  SPKI SHA-256 (base64, for chromium --ignore-certificate-errors-spki-list): {}",
                hosts.join(", "),
                tls.certificate_sha256().map(hex).unwrap_or_default(),
                tls.spki_sha256().map(|d| base64(&d)).unwrap_or_default(),
            );
            if let Some(path) = save_cert {
                std::fs::write(path, pem)
                    .map_err(|e| format!("--ssl-adhoc-cert {}: {e}", path.display()))?;
            }
            Ok(tls)
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
