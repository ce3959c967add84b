//! An edge node: HTTP delivery fed by on-demand upstream subscriptions, a relay listener
//! for lower-tier edges, the admin listener, and the idle reaper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use skyrelay_common::admin::{self, Admin};
use skyrelay_common::cpapi::{
    ControlPlaneClient, Heartbeat, NodeRole, RegisterNode, heartbeat_loop, spawn_key_refresher,
};
use skyrelay_common::delivery::{self, Access, Delivery};
use skyrelay_common::hub::{Hub, HubLimits, ObjectCache};
use skyrelay_common::relay::client::{RelayClient, RelayClientConfig};
use skyrelay_common::relay::metrics::{RelayClientMetrics, RelayServerMetrics};
use skyrelay_common::relay::server::{self as relay_server, RelayServerConfig, RenditionSource};
use skyrelay_common::relay::tls::NodeIdentity;
use skyrelay_common::window::WindowConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::access::TokenAccess;
use crate::config::EdgeConfig;
use crate::upstream::{Routed, Upstream, UpstreamMetrics, UpstreamSource, reap_idle};
use crate::vod::{EdgeVod, VodMetrics};

/// Why an edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A listener could not be bound; names the config key to change.
    #[error("cannot listen on {addr} (`{key}`): {message}")]
    Bind { key: &'static str, addr: SocketAddr, message: String },
    /// The cluster identity could not be loaded.
    #[error("cluster identity in `cert_dir` ({dir}): {message}")]
    Identity { dir: String, message: String },
    /// Other setup failures (metrics, TLS, delivery).
    #[error("{0}")]
    Setup(String),
}

/// A running edge.
pub struct EdgeNode {
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub relay_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    pub source: Arc<UpstreamSource>,
    drain: Duration,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> EdgeError {
    move |e| EdgeError::Setup(format!("{what}: {e}"))
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, EdgeError> {
    TcpListener::bind(addr).await.map_err(|e| EdgeError::Bind { key, addr, message: e.to_string() })
}

impl EdgeNode {
    pub async fn start(cfg: EdgeConfig) -> Result<EdgeNode, EdgeError> {
        let identity = NodeIdentity::load(&cfg.cert_dir).map_err(|e| EdgeError::Identity {
            dir: cfg.cert_dir.display().to_string(),
            message: format!("{e} (create it with `skyrelay cluster-ca issue`)"),
        })?;
        let registry = Registry::new();
        // Media memory: live windows within their share of the capacity, whole segments in
        // the byte-weighed object cache.
        let window = WindowConfig {
            max_segments: cfg.window_segments,
            max_bytes: cfg.cache.window_bytes,
            ..WindowConfig::default()
        };
        let limits = HubLimits {
            max_channels: cfg.max_channels,
            max_window_bytes: cfg.cache.windows_bytes(),
            ..HubLimits::default()
        };
        // Zero-copy sends only help plain HTTP: over TLS every byte is encrypted anyway.
        let zero_copy = cfg.http.delivery.zero_copy && cfg.http.tls_cert.is_none();
        let objects = ObjectCache::new(cfg.cache.objects_bytes(), &registry, "skyrelay_edge")
            .map_err(setup("metrics"))?
            .with_zero_copy(zero_copy);
        let hub = Arc::new(Hub::with_limits(window, limits).with_objects(objects));

        let http = bind("http.listen", cfg.http.listen).await?;
        let admin_listener = bind("admin.listen", cfg.admin.listen).await?;
        let local = |l: &TcpListener, key, addr| {
            l.local_addr().map_err(|e| EdgeError::Bind { key, addr, message: e.to_string() })
        };
        let http_addr = local(&http, "http.listen", cfg.http.listen)?;
        let admin_addr = local(&admin_listener, "admin.listen", cfg.admin.listen)?;

        let client_metrics = RelayClientMetrics::new(&registry, "skyrelay_edge").map_err(setup("metrics"))?;
        let control_plane = cfg
            .control_plane
            .resolve()
            .map_err(setup("control plane"))?
            .map(|(url, secret)| ControlPlaneClient::new(&url, &secret));
        let identity = Arc::new(identity);
        // A fresh subscription backfills the edge's whole window, so the edge's playlist
        // lists what the upstream's does.
        let history = cfg.window_segments as u64;
        let upstream = match &control_plane {
            Some(cp) => Upstream::ControlPlane(Box::new(Routed::new(
                cp.clone(),
                identity.clone(),
                client_metrics,
                history,
            ))),
            None => {
                let mut client_cfg =
                    RelayClientConfig::new(cfg.upstream.addr, cfg.upstream.server_name.clone());
                client_cfg.history_segments = history;
                let client = RelayClient::new(&identity, client_cfg, hub.clone(), client_metrics)
                    .map_err(setup("relay client"))?;
                Upstream::Static(client)
            }
        };
        let upstream_metrics = UpstreamMetrics::register(&registry).map_err(setup("metrics"))?;
        let source = Arc::new(UpstreamSource::new(
            upstream,
            hub.clone(),
            cfg.max_channels,
            Duration::from_secs(cfg.negative_cache_seconds),
            upstream_metrics,
        ));

        // Everything that can fail comes before any task starts, so a failed start leaves
        // nothing listening.
        let tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
            (Some(cert), Some(key)) => {
                Some(skyrelay_common::http_tls::server_config(cert, key).map_err(setup("http tls"))?)
            }
            _ => None,
        };
        let vod_metrics = VodMetrics::register(&registry).map_err(setup("metrics"))?;
        let relay = match cfg.relay.listen {
            Some(addr) => {
                let relay_cfg = RelayServerConfig::default();
                let endpoint = relay_server::server_endpoint(addr, &identity, &relay_cfg)
                    .map_err(|e| EdgeError::Bind { key: "relay.listen", addr, message: e.to_string() })?;
                let bound = endpoint.local_addr().map_err(|e| EdgeError::Bind {
                    key: "relay.listen",
                    addr,
                    message: e.to_string(),
                })?;
                let metrics =
                    RelayServerMetrics::new(&registry, "skyrelay_edge").map_err(setup("metrics"))?;
                Some((endpoint, bound, relay_cfg, metrics))
            }
            None => None,
        };

        let mut delivery_cfg = cfg.http.delivery.clone();
        if delivery_cfg.node_name.is_empty() {
            delivery_cfg.node_name = cfg.node_name.clone();
        }
        if delivery_cfg.region.is_empty() {
            delivery_cfg.region = cfg.region.clone();
        }
        let delivery = Delivery::new(hub.clone(), delivery_cfg, &registry, "skyrelay_edge")
            .map_err(setup("http delivery"))?
            .with_source(source.clone());

        // Every fallible step is done: from here on tasks start.
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let token = shutdown.clone();
        tasks.spawn(async move {
            token.cancelled().await;
            let _ = stop_tx.send(true);
        });

        let access: Option<Arc<dyn Access>> = match &control_plane {
            Some(cp) => {
                let (keys, refresher) = spawn_key_refresher(cp.clone(), stop_rx.clone());
                tasks.spawn(async move {
                    let _ = refresher.await;
                });
                Some(Arc::new(TokenAccess { source: source.clone(), keys, region: cfg.region.clone() }))
            }
            None => None,
        };
        let vod = EdgeVod::new(&cfg.vod, control_plane.clone(), access.clone(), vod_metrics);
        let delivery = delivery.with_vod(Arc::new(vod));
        let delivery = match access {
            Some(access) => delivery.with_access(access),
            None => delivery,
        };
        let token = shutdown.clone();
        tasks.spawn(delivery::serve(http, tls, Arc::new(delivery), async move { token.cancelled().await }));

        let relay_addr = relay.map(|(endpoint, bound, relay_cfg, metrics)| {
            let token = shutdown.clone();
            let source: Arc<dyn RenditionSource> = source.clone();
            tasks.spawn(relay_server::serve_source(endpoint, source, relay_cfg, metrics, async move {
                token.cancelled().await
            }));
            bound
        });

        tasks.spawn(reap_idle(
            source.clone(),
            Duration::from_secs(cfg.idle_unsubscribe_seconds),
            shutdown.clone(),
        ));

        if let Some(cp) = control_plane {
            let node = RegisterNode {
                name: cfg.node_name.clone(),
                role: NodeRole::Edge,
                region: cfg.region.clone(),
                public_url: cfg
                    .control_plane
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{http_addr}")),
                rtmp_url: None,
                relay_addr: cfg
                    .control_plane
                    .relay_addr
                    .clone()
                    .or_else(|| relay_addr.map(|a| a.to_string())),
            };
            tasks.spawn(heartbeat_loop(cp, node, Heartbeat::default, stop_rx));
        }

        let admin = Admin::new(registry.clone());
        admin.set_ready(true);
        let token = shutdown.clone();
        tasks.spawn(admin::serve(admin_listener, admin, async move { token.cancelled().await }));

        info!(http = %http_addr, admin = %admin_addr, relay = ?relay_addr, upstream = %cfg.upstream.addr,
              node = %cfg.node_name, "edge ready");
        Ok(EdgeNode {
            http_addr,
            admin_addr,
            relay_addr,
            hub,
            source,
            drain: Duration::from_secs(cfg.drain_seconds),
            shutdown,
            tasks,
        })
    }

    /// Stops every listener and task, waiting at most the drain time.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(self.drain, self.tasks.wait()).await.is_err() {
            warn!("edge did not drain in time");
        }
        info!("edge stopped");
    }
}

/// Runs an edge until `shutdown` completes.
pub async fn run(cfg: EdgeConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), EdgeError> {
    let node = EdgeNode::start(cfg).await?;
    shutdown.await;
    info!("shutting down");
    node.stop().await;
    Ok(())
}
