//! Cluster PKI and mutual TLS: CA-signed peers connect; a peer without a client
//! certificate, or with one from another CA, is refused in the handshake.

mod relay_support;

use std::net::SocketAddr;
use std::sync::Arc;

use relay_support::*;
use skyrelay_common::relay::codec::{ALPN, ControlMessage, Start, encode_control};
use skyrelay_common::relay::tls::{self, NodeIdentity, TlsError};

fn endpoint() -> quinn::Endpoint {
    quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap()
}

/// Connects and tries to use the connection: `Ok` when the server took it.
async fn try_connect(cc: quinn::ClientConfig, addr: SocketAddr) -> Result<(), String> {
    let ep = endpoint();
    let conn = ep.connect_with(cc, addr, "relay.test").unwrap().await.map_err(|e| e.to_string())?;
    // In TLS 1.3 the server checks the client certificate after the client's handshake is
    // done: a refusal shows as the connection being closed.
    let used = tokio::time::timeout(DEADLINE, async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let msg = ControlMessage::Subscribe {
            id: 1,
            channel: "x".into(),
            rendition: "y".into(),
            start: Start::Live { back: 0 },
        };
        let mut buf = bytes::BytesMut::new();
        encode_control(&msg, &mut buf).unwrap();
        send.write_all(&buf).await.map_err(|e| e.to_string())?;
        recv.read_chunk(1024, true).await.map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    })
    .await
    .map_err(|_| "timeout".to_string())?;
    ep.close(0u32.into(), b"");
    used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_ca_signed_peers_connect() {
    let pki = pki();
    let server = TestServer::start(hub(), &pki.server, None);
    let cc = tls::client_config(&pki.client).unwrap();
    try_connect(cc, server.addr).await.unwrap();
    assert_eq!(server.metrics.protocol_errors.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_peer_without_client_certificate_is_refused() {
    let pki = pki();
    let server = TestServer::start(hub(), &pki.server, None);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.client.ca[0].clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let err = try_connect(quinn::ClientConfig::new(Arc::new(qc)), server.addr).await.unwrap_err();
    assert!(!err.contains("timeout"), "{err}");
    assert!(err.contains("handshake") || err.contains("lost"), "{err}");
    assert_eq!(server.metrics.connections.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_peer_with_certificate_from_another_ca_is_refused() {
    let pki = pki();
    let other = TempDir::new("other-ca");
    tls::create_ca(&other.path().join("ca")).unwrap();
    tls::issue_node_cert(&other.path().join("ca"), "edge.test", &other.path().join("edge"), &[]).unwrap();
    let rogue = NodeIdentity::load(&other.path().join("edge")).unwrap();
    // It trusts the real CA (so it would accept the server) but its own cert is foreign.
    let id =
        NodeIdentity { ca: pki.client.ca.clone(), chain: rogue.chain.clone(), key: rogue.key.clone_key() };
    let server = TestServer::start(hub(), &pki.server, None);
    let err = try_connect(tls::client_config(&id).unwrap(), server.addr).await.unwrap_err();
    assert!(!err.contains("timeout"), "{err}");
    assert!(err.contains("handshake") || err.contains("lost"), "{err}");
    assert_eq!(server.metrics.connections.get(), 0);

    // And a client of the real CA refuses a server whose certificate is foreign.
    let rogue_server_dir = other.path().join("relay");
    tls::issue_node_cert(&other.path().join("ca"), "relay.test", &rogue_server_dir, &[]).unwrap();
    let rogue_server = NodeIdentity::load(&rogue_server_dir).unwrap();
    let server2 = TestServer::start(hub(), &rogue_server, None);
    let err = try_connect(tls::client_config(&pki.client).unwrap(), server2.addr).await.unwrap_err();
    assert!(!err.contains("timeout"), "{err}");
    assert!(err.contains("handshake") || err.contains("lost"), "{err}");
}

#[test]
fn relay_pki_files_are_not_overwritten_and_keys_are_private() {
    let dir = TempDir::new("pki-files");
    let ca = dir.path().join("ca");
    tls::create_ca(&ca).unwrap();
    assert!(matches!(tls::create_ca(&ca), Err(TlsError::Exists(_))));
    let node = dir.path().join("n1");
    tls::issue_node_cert(&ca, "n1.test", &node, &["10.0.0.1".into()]).unwrap();
    assert!(matches!(tls::issue_node_cert(&ca, "n1.test", &node, &[]), Err(TlsError::Exists(_))));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [ca.join("ca.key"), node.join("node.key")] {
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    let id = NodeIdentity::load(&node).unwrap();
    assert_eq!(id.chain.len(), 1);
    assert!(tls::server_config(&id).is_ok());
    assert!(tls::client_config(&id).is_ok());
}
