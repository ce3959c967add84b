//! Shared state of the API handlers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::ConnectInfo;
use http::request::Parts;
use tokio::sync::{Semaphore, watch};

use crate::config::ControlPlaneConfig;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::region::RegionMap;
use crate::ring::BoundedAssigner;
use crate::store::Store;

/// Everything a handler needs.
pub struct AppState {
    pub store: Store,
    pub cfg: ControlPlaneConfig,
    pub node_secret: String,
    pub regions: RegionMap,
    pub metrics: Metrics,
    pub login: Mutex<LoginLimiter>,
    /// Bumped on every live-registry change; wakes where-is long-polls.
    pub live_changes: watch::Sender<u64>,
    /// Per-region edge assignment (bounded-load ring over the region's healthy edges).
    pub assigners: Mutex<HashMap<String, BoundedAssigner>>,
    /// Bounds the where-is long-polls held at once; past it, answers come back at once.
    pub waiters: Arc<Semaphore>,
}

/// Most where-is long-polls held at the same time.
pub const MAX_WAITERS: usize = 10_000;

impl AppState {
    /// Builds the state.
    pub fn new(store: Store, cfg: ControlPlaneConfig, node_secret: String, metrics: Metrics) -> Self {
        let regions = RegionMap::from_config(&cfg);
        let login = LoginLimiter::new(
            cfg.login_max_failures,
            i64::try_from(cfg.login_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        AppState {
            store,
            regions,
            node_secret,
            metrics,
            login: Mutex::new(login),
            live_changes: watch::channel(0).0,
            assigners: Mutex::new(HashMap::new()),
            waiters: Arc::new(Semaphore::new(MAX_WAITERS)),
            cfg,
        }
    }

    /// The node timeout in ms.
    pub fn node_timeout_ms(&self) -> i64 {
        i64::try_from(self.cfg.node_timeout_ms).unwrap_or(i64::MAX)
    }

    /// The client's address (peer, or `X-Forwarded-For` behind a trusted proxy).
    pub fn client_ip(&self, parts: &Parts) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let xff = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        self.regions.client_ip(peer, xff)
    }

    /// Notes a live-registry change.
    pub fn live_changed(&self) {
        self.live_changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}
