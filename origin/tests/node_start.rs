//! A start that fails part-way (here: a relay certificate directory that does not exist)
//! returns an error naming the key and leaves nothing listening, so the addresses can be
//! used again at once (a supervisor's retry, or a corrected config).

use std::net::{SocketAddr, TcpListener};

use skyrelay_origin::config::OriginConfig;
use skyrelay_origin::node::OriginNode;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_releases_its_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = OriginConfig { node_name: "origin-1".into(), ..OriginConfig::default() };
    let (rtmp, http, admin) = (free_addr(), free_addr(), free_addr());
    cfg.rtmp.listen = rtmp;
    cfg.http.listen = http;
    cfg.admin.listen = admin;
    cfg.relay.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.relay.cert_dir = Some(dir.path().join("no-such-certificates"));
    let err = OriginNode::start(cfg, None).await.err().expect("the start fails");
    assert!(err.to_string().contains("relay.cert_dir"), "{err}");
    for addr in [rtmp, http, admin] {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still held after the failed start: {e}"));
    }
}
