//! Test support: an in-process origin on loopback ports (the rest comes from
//! `skyrelay-testkit`).
#![allow(dead_code)]

pub use skyrelay_testkit::*;

use skyrelay_origin::config::{OriginConfig, StreamKeyEntry};
use skyrelay_origin::node::OriginNode;
use std::net::SocketAddr;

pub const KEY: &str = "test-stream-key-0001";
pub const CHANNEL: &str = "demo";

/// An origin config on 127.0.0.1 port 0 everywhere, accepting [`KEY`] for [`CHANNEL`].
pub fn origin_config() -> OriginConfig {
    let mut cfg = OriginConfig::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.keys = vec![
        StreamKeyEntry { key: KEY.into(), channel: CHANNEL.into() },
        StreamKeyEntry { key: "second-stream-key-02".into(), channel: "other".into() },
    ];
    cfg.drain_seconds = 2;
    cfg
}

pub async fn start_origin(cfg: OriginConfig) -> OriginNode {
    skyrelay_common::telemetry::init_logging("info,skyrelay=debug", false);
    skyrelay_testkit::report_panics_inline();
    OriginNode::start(cfg, None).await.expect("origin starts")
}

pub fn publish_url(origin: &OriginNode, key: &str) -> String {
    format!("rtmp://{}/live/{}", origin.rtmp_addr, key)
}

pub fn http_url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}
