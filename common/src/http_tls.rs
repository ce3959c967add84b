//! TLS for the viewer-facing HTTP listeners: certificate chain and key from PEM files.

use std::path::Path;
use std::sync::Arc;

/// Why the TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HttpTlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key found")]
    NoKey { path: String },
    #[error("certificate and key do not form a TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration (aws-lc-rs provider, ALPN `h2` and `http/1.1`) from a PEM
/// certificate chain and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, HttpTlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| HttpTlsError::Read { path: p.display().to_string(), source })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| HttpTlsError::Read { path: cert.display().to_string(), source })?;
    if certs.is_empty() {
        return Err(HttpTlsError::NoCertificate { path: cert.display().to_string() });
    }
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| HttpTlsError::Read { path: key.display().to_string(), source })?
        .ok_or_else(|| HttpTlsError::NoKey { path: key.display().to_string() })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
