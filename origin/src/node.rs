//! An origin node: binds its listeners, wires ingest → hub → HTTP delivery and relay, and
//! shuts down in order (stop accepting, end publishing, drain, close).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use skyrelay_common::admin::{self, Admin};
use skyrelay_common::cpapi::{ControlPlaneClient, Heartbeat, NodeRole, RegisterNode, heartbeat_loop};
use skyrelay_common::delivery::{self, Delivery, DeliveryConfig};
use skyrelay_common::hub::Hub;
use skyrelay_common::relay::metrics::RelayServerMetrics;
use skyrelay_common::relay::server::{self as relay_server, RelayServerConfig};
use skyrelay_common::relay::tls::NodeIdentity;
use skyrelay_common::window::WindowConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::OriginConfig;
use crate::ingest::{self, IngestContext, LiveReports};
use crate::keys::{ControlPlaneKeys, PublishAuthority, StaticKeys};
use crate::metrics::OriginMetrics;
use crate::packager::PackagerConfig;
use crate::publishers::Publishers;
use crate::recorder::playback::StorageVod;
use crate::recorder::{self, Recorder, RecorderError};

/// Why an origin could not start.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// A listener could not be bound; names the config key to change.
    #[error("cannot listen on {addr} (`{key}`): {source}")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error },
    /// Metrics could not be registered (a name clash: a bug).
    #[error("metrics registration: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The HTTP delivery could not be set up.
    #[error("http delivery: {0}")]
    Delivery(String),
    /// The control-plane settings are unusable.
    #[error("control plane: {0}")]
    ControlPlane(String),
    /// TLS material could not be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The recorder could not start (`[recording]`).
    #[error("recording: {0}")]
    Recorder(#[from] RecorderError),
}

/// A running origin.
pub struct OriginNode {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The relay listener (UDP), when `relay.listen` is set.
    pub relay_addr: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    pub registry: Registry,
    /// The recorder, when `recording.enabled`.
    pub recorder: Option<Arc<Recorder>>,
    drain: Duration,
    ingest_shutdown: CancellationToken,
    shutdown: CancellationToken,
    ingest_tasks: TaskTracker,
    tasks: TaskTracker,
}

async fn bind(key: &'static str, addr: SocketAddr) -> Result<TcpListener, OriginError> {
    TcpListener::bind(addr).await.map_err(|source| OriginError::Bind { key, addr, source })
}

impl OriginNode {
    /// Starts an origin. `auth` decides publishes; `None` uses the config's `[[keys]]`.
    pub async fn start(
        cfg: OriginConfig,
        auth: Option<Arc<dyn PublishAuthority>>,
    ) -> Result<OriginNode, OriginError> {
        let cfg = Arc::new(cfg);
        let registry = Registry::new();
        let metrics = OriginMetrics::register(&registry)?;
        let rtmp = bind("rtmp.listen", cfg.rtmp.listen).await?;
        let http = bind("http.listen", cfg.http.listen).await?;
        let admin_listener = bind("admin.listen", cfg.admin.listen).await?;
        let addr = |l: &TcpListener, key, want| {
            l.local_addr().map_err(|source| OriginError::Bind { key, addr: want, source })
        };
        let rtmp_addr = addr(&rtmp, "rtmp.listen", cfg.rtmp.listen)?;
        let http_addr = addr(&http, "http.listen", cfg.http.listen)?;
        let admin_addr = addr(&admin_listener, "admin.listen", cfg.admin.listen)?;

        let window = WindowConfig {
            max_segments: cfg.packager.window_segments,
            part_target_ms: cfg.packager.part_target_ms.into(),
            segment_target_ms: cfg.packager.segment_target_ms.into(),
            ..WindowConfig::default()
        };
        let hub = Arc::new(Hub::new(window));
        let packager = PackagerConfig {
            part_target_ms: cfg.packager.part_target_ms,
            segment_target_ms: cfg.packager.segment_target_ms,
            ..PackagerConfig::default()
        };
        let publishers = Arc::new(Publishers::new(packager, cfg.rtmp.max_publishers, cfg.rtmp.on_conflict));
        let control_plane = cfg
            .control_plane
            .resolve()
            .map_err(|e| OriginError::ControlPlane(e.to_string()))?
            .map(|(url, secret)| ControlPlaneClient::new(&url, &secret));
        let auth = auth.unwrap_or_else(|| match &control_plane {
            Some(client) => Arc::new(ControlPlaneKeys::new(client.clone(), cfg.node_name.clone())),
            None => Arc::new(StaticKeys::new(cfg.keys.clone())),
        });
        let live_reports =
            control_plane.clone().map(|client| LiveReports::new(client, cfg.node_name.clone()));
        // Everything that can fail comes before any task starts, so a failed start leaves
        // nothing listening.
        let tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
            (Some(cert), Some(key)) => Some(
                skyrelay_common::http_tls::server_config(cert, key)
                    .map_err(|e| OriginError::Tls(e.to_string()))?,
            ),
            _ => None,
        };
        let delivery_cfg =
            DeliveryConfig { max_connections: cfg.http.max_connections, ..DeliveryConfig::default() };
        let mut delivery = Delivery::new(hub.clone(), delivery_cfg, &registry, "skyrelay_origin")
            .map_err(|e| OriginError::Delivery(e.to_string()))?;
        let relay = match (&cfg.relay.listen, &cfg.relay.cert_dir) {
            (Some(addr), Some(dir)) => {
                let identity = NodeIdentity::load(dir).map_err(|e| {
                    OriginError::Tls(format!(
                        "relay.cert_dir {}: {e} (create it with `skyrelay cluster-ca issue`)",
                        dir.display()
                    ))
                })?;
                let relay_cfg = RelayServerConfig::default();
                let endpoint = relay_server::server_endpoint(*addr, &identity, &relay_cfg).map_err(|e| {
                    OriginError::Bind {
                        key: "relay.listen",
                        addr: *addr,
                        source: std::io::Error::other(e.to_string()),
                    }
                })?;
                let bound = endpoint.local_addr().map_err(|source| OriginError::Bind {
                    key: "relay.listen",
                    addr: *addr,
                    source,
                })?;
                let metrics = RelayServerMetrics::new(&registry, "skyrelay_origin")?;
                Some((endpoint, bound, relay_cfg, metrics))
            }
            _ => None,
        };
        let recorder = if cfg.recording.enabled {
            let recorder = Recorder::start(&cfg.recording, &registry).await?;
            // Recordings are read back from storage for edges to serve as VOD.
            match StorageVod::new(recorder.storage(), &registry) {
                Ok(vod) => delivery = delivery.with_vod(Arc::new(vod)),
                Err(e) => {
                    recorder.stop(Duration::from_secs(cfg.drain_seconds)).await;
                    return Err(e.into());
                }
            }
            Some(recorder)
        } else {
            None
        };
        let ctx = Arc::new(IngestContext {
            cfg: cfg.clone(),
            hub: hub.clone(),
            auth,
            publishers,
            metrics,
            recorder: recorder.clone(),
            live_reports,
        });

        let shutdown = CancellationToken::new();
        let ingest_shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let ingest_tasks = TaskTracker::new();
        ingest_tasks.spawn(ingest::serve(rtmp, ctx, ingest_shutdown.clone()));
        let delivery = Arc::new(delivery);
        let token = shutdown.clone();
        tasks.spawn(delivery::serve(http, tls, delivery, async move { token.cancelled().await }));
        let relay_addr = relay.map(|(endpoint, bound, relay_cfg, metrics)| {
            let token = shutdown.clone();
            tasks.spawn(relay_server::serve(endpoint, hub.clone(), relay_cfg, metrics, async move {
                token.cancelled().await
            }));
            bound
        });

        if let Some(client) = control_plane {
            let cp = &cfg.control_plane;
            let node = RegisterNode {
                name: cfg.node_name.clone(),
                role: NodeRole::Origin,
                region: cfg.region.clone(),
                public_url: cp.public_url.clone().unwrap_or_else(|| format!("http://{http_addr}")),
                rtmp_url: Some(cp.rtmp_url.clone().unwrap_or_else(|| format!("rtmp://{rtmp_addr}/live"))),
                relay_addr: cp.relay_addr.clone().or_else(|| relay_addr.map(|a| a.to_string())),
            };
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let token = shutdown.clone();
            tasks.spawn(async move {
                token.cancelled().await;
                let _ = stop_tx.send(true);
            });
            if let Some(recorder) = &recorder {
                let (rec, name, stop) =
                    (recorder.clone(), cfg.node_name.clone(), shutdown.clone().cancelled_owned());
                tasks.spawn(recorder::catalog::run(rec, client.clone(), name, stop));
            }
            tasks.spawn(heartbeat_loop(client, node, Heartbeat::default, stop_rx));
        }

        let admin = Admin::new(registry.clone());
        admin.set_ready(true);
        let token = shutdown.clone();
        tasks.spawn(admin::serve(admin_listener, admin, async move { token.cancelled().await }));

        info!(rtmp = %rtmp_addr, http = %http_addr, admin = %admin_addr, relay = ?relay_addr, node = %cfg.node_name,
              "origin ready");
        Ok(OriginNode {
            rtmp_addr,
            http_addr,
            admin_addr,
            relay_addr,
            hub,
            registry,
            recorder,
            drain: Duration::from_secs(cfg.drain_seconds),
            ingest_shutdown,
            shutdown,
            ingest_tasks,
            tasks,
        })
    }

    /// Stops ingest (publishers see their streams end), then the listeners, waiting at most
    /// the configured drain time.
    pub async fn stop(self) {
        self.ingest_shutdown.cancel();
        self.ingest_tasks.close();
        if tokio::time::timeout(self.drain, self.ingest_tasks.wait()).await.is_err() {
            warn!("ingest did not drain in time");
        }
        if let Some(recorder) = &self.recorder {
            recorder.stop(self.drain).await;
        }
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(self.drain, self.tasks.wait()).await.is_err() {
            warn!("listeners did not drain in time");
        }
        info!("origin stopped");
    }
}

/// Runs an origin until `shutdown` completes.
pub async fn run(
    cfg: OriginConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), OriginError> {
    let node = OriginNode::start(cfg, None).await?;
    shutdown.await;
    info!("shutting down");
    node.stop().await;
    Ok(())
}
