//! Cluster identity for the relay: a cluster CA, node certificates signed by it, and quinn
//! configurations with mutual TLS (both sides present a certificate that chains to the CA).
//!
//! Files: a CA directory holds `ca.pem` and `ca.key`; a node directory holds `node.pem`,
//! `node.key` and a copy of `ca.pem`. Keys are written with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::codec::ALPN;

/// CA certificate file name.
pub const CA_CERT: &str = "ca.pem";
/// CA private key file name.
pub const CA_KEY: &str = "ca.key";
/// Node certificate file name.
pub const NODE_CERT: &str = "node.pem";
/// Node private key file name.
pub const NODE_KEY: &str = "node.key";

const CA_COMMON_NAME: &str = "Skyrelay cluster CA";

/// Why a cluster CA, a node certificate or a TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that would be overwritten exists already.
    #[error("{0} exists already; refusing to overwrite it")]
    Exists(PathBuf),
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: &'static str },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the certificates or keys.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The TLS configuration has no cipher suite QUIC can use.
    #[error("quic crypto: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_owned(), source }
}

fn write_file(path: &Path, data: &str, secret: bool) -> Result<(), TlsError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => TlsError::Exists(path.to_owned()),
        _ => TlsError::Io { path: path.to_owned(), source: e },
    })?;
    f.write_all(data.as_bytes()).map_err(io_err(path))
}

fn read_file(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The CA's parameters. Deterministic, so that the CA certificate object needed to sign a
/// node certificate can be rebuilt from the CA key alone (same subject, same key id).
fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

/// Creates a new cluster CA in `dir` (created if missing): `ca.pem` and `ca.key`.
/// Refuses to overwrite an existing CA.
pub fn create_ca(dir: &Path) -> Result<(), TlsError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    write_file(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write_file(&dir.join(CA_CERT), &cert.pem(), false)
}

/// Issues a certificate for node `node_name` signed by the CA in `ca_dir`, and writes
/// `node.pem`, `node.key` and a copy of `ca.pem` to `out_dir` (created if missing).
/// `sans` are DNS names or IP addresses; `node_name` is always one of the DNS names, so
/// clients can use it as the server name.
pub fn issue_node_cert(
    ca_dir: &Path,
    node_name: &str,
    out_dir: &Path,
    sans: &[String],
) -> Result<(), TlsError> {
    let ca_key_path = ca_dir.join(CA_KEY);
    let ca_key = KeyPair::from_pem(&read_file(&ca_key_path)?)?;
    let ca_pem = read_file(&ca_dir.join(CA_CERT))?;
    let ca_cert = ca_params()?.self_signed(&ca_key)?;

    let mut names = vec![node_name.to_owned()];
    names.extend(sans.iter().filter(|s| s.as_str() != node_name).cloned());
    let mut p = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &ca_cert, &ca_key)?;

    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    write_file(&out_dir.join(NODE_KEY), &key.serialize_pem(), true)?;
    write_file(&out_dir.join(NODE_CERT), &cert.pem(), false)?;
    let ca_copy = out_dir.join(CA_CERT);
    if ca_copy != ca_dir.join(CA_CERT) {
        match write_file(&ca_copy, &ca_pem, false) {
            Err(TlsError::Exists(_)) if read_file(&ca_copy)? == ca_pem => {}
            other => other?,
        }
    }
    Ok(())
}

/// A node's TLS identity: the cluster CA, its certificate chain and its key.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The cluster CA certificate(s) trusted as roots.
    pub ca: Vec<CertificateDer<'static>>,
    /// The node certificate (first) and any intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// The node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self { ca: self.ca.clone(), chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let certs = rustls_pemfile::certs(&mut &pem[..]).collect::<Result<Vec<_>, _>>().map_err(io_err(path))?;
    if certs.is_empty() {
        return Err(TlsError::Pem { path: path.to_owned(), what: "no certificate" });
    }
    Ok(certs)
}

impl NodeIdentity {
    /// Loads `ca.pem`, `node.pem` and `node.key` from a node directory.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        Self::load_files(&dir.join(CA_CERT), &dir.join(NODE_CERT), &dir.join(NODE_KEY))
    }

    /// Loads an identity from explicit file paths.
    pub fn load_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let key_pem = std::fs::read(key).map_err(io_err(key))?;
        let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(io_err(key))?
            .ok_or_else(|| TlsError::Pem { path: key.to_owned(), what: "no private key" })?;
        Ok(Self { ca: load_certs(ca)?, chain: load_certs(cert)?, key: key_der })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in &self.ca {
            roots.add(c.clone())?;
        }
        Ok(Arc::new(roots))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A quinn server configuration: TLS 1.3, the relay ALPN, and a required client
/// certificate that chains to the cluster CA.
pub fn server_config(id: &NodeIdentity) -> Result<quinn::ServerConfig, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(id.roots()?, provider()).build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?)))
}

/// A quinn client configuration: TLS 1.3, the relay ALPN, the server verified against the
/// cluster CA, and this node's certificate presented as the client certificate.
pub fn client_config(id: &NodeIdentity) -> Result<quinn::ClientConfig, TlsError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(id.roots()?)
        .with_client_auth_cert(id.chain.clone(), id.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    Ok(quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?)))
}
