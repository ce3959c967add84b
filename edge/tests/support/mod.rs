//! Test support: a cluster CA, an origin with its relay listener and edges subscribed to
//! it, all in process on loopback (the rest comes from `skyrelay-testkit`).
#![allow(dead_code)]

pub use skyrelay_testkit::*;

use std::path::Path;

use skyrelay_common::relay::tls;
use skyrelay_edge::config::EdgeConfig;
use skyrelay_edge::node::EdgeNode;
use skyrelay_origin::config::{OriginConfig, StreamKeyEntry};
use skyrelay_origin::node::OriginNode;

pub const KEY: &str = "edge-test-stream-key-1";

/// Issues a node certificate for `name` from the CA in `dir/ca` into `dir/name`.
pub fn issue(dir: &Path, name: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    tls::issue_node_cert(&dir.join("ca"), name, &out, &["127.0.0.1".to_string()]).expect("node certificate");
    out
}

/// An origin (relay on) and edges, each subscribed to the origin.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub origin: OriginNode,
    pub edges: Vec<EdgeNode>,
}

pub fn edge_config(
    dir: &Path,
    name: &str,
    upstream: std::net::SocketAddr,
    upstream_name: &str,
) -> EdgeConfig {
    let mut cfg = EdgeConfig { node_name: name.into(), ..EdgeConfig::default() };
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.relay.listen = Some("127.0.0.1:0".parse().unwrap());
    cfg.upstream.addr = upstream;
    cfg.upstream.server_name = upstream_name.into();
    cfg.cert_dir = issue(dir, name);
    cfg.drain_seconds = 2;
    cfg
}

async fn try_start_origin(
    rtmp: std::net::SocketAddr,
    http: std::net::SocketAddr,
    relay: std::net::SocketAddr,
    cert_dir: std::path::PathBuf,
) -> Result<OriginNode, skyrelay_origin::node::OriginError> {
    let mut cfg = OriginConfig { node_name: "origin-1".into(), ..OriginConfig::default() };
    cfg.rtmp.listen = rtmp;
    cfg.http.listen = http;
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.relay.listen = Some(relay);
    cfg.relay.cert_dir = Some(cert_dir);
    cfg.keys = vec![StreamKeyEntry { key: KEY.into(), channel: "demo".into() }];
    cfg.drain_seconds = 2;
    OriginNode::start(cfg, None).await
}

impl TestNet {
    /// Stops the origin and starts a new one on the same addresses (a process restart).
    pub async fn restart_origin(self) -> TestNet {
        let TestNet { dir, origin, edges } = self;
        let (rtmp, http, relay) = (origin.rtmp_addr, origin.http_addr, origin.relay_addr.expect("relay"));
        origin.stop().await;
        // The stopped node's QUIC endpoint releases its UDP socket from a background driver
        // task shortly after `stop` returns (a failed start leaves nothing bound), so retry
        // the start, bounded, as a supervisor would.
        let cert_dir = dir.path().join("origin-1");
        let origin = poll_for(
            "the origin to restart on its old addresses",
            std::time::Duration::from_secs(15),
            std::time::Duration::from_millis(100),
            || async {
                try_start_origin(rtmp, http, relay, cert_dir.clone())
                    .await
                    .map_err(|e| tracing::debug!(error = %e, "origin restart: addresses not free yet"))
                    .ok()
            },
        )
        .await;
        TestNet { dir, origin, edges }
    }

    pub async fn new(edges: &[&str]) -> TestNet {
        skyrelay_common::telemetry::init_logging("info,skyrelay=debug", false);
        skyrelay_testkit::report_panics_inline();
        let dir = tempfile::tempdir().unwrap();
        tls::create_ca(&dir.path().join("ca")).expect("cluster CA");
        let any = "127.0.0.1:0".parse().unwrap();
        let origin =
            try_start_origin(any, any, any, issue(dir.path(), "origin-1")).await.expect("origin starts");
        let relay = origin.relay_addr.expect("origin relay listener");
        let mut nodes = Vec::new();
        for name in edges {
            let cfg = edge_config(dir.path(), name, relay, "origin-1");
            nodes.push(EdgeNode::start(cfg).await.expect("edge starts"));
        }
        TestNet { dir, origin, edges: nodes }
    }

    pub fn edge(&self, i: usize) -> &EdgeNode {
        &self.edges[i]
    }

    pub fn publish_url(&self) -> String {
        format!("rtmp://{}/live/{KEY}", self.origin.rtmp_addr)
    }

    pub async fn stop(self) {
        for edge in self.edges {
            edge.stop().await;
        }
        self.origin.stop().await;
    }
}
