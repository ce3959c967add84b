//! Skyrelay control plane: users, channels, stream keys, nodes, the live registry, routing
//! and playback-token signing, over an HTTP JSON API.
//!
//! Layout:
//! - [`config`] holds [`ControlPlaneConfig`].
//! - [`store`]: SQLite/PostgreSQL persistence behind one [`store::Store`].
//! - [`api`]: the axum router (handlers per resource); [`error`] maps every failure to a
//!   JSON 4xx/5xx; [`extract`] turns malformed input into JSON 400s; [`auth`] holds
//!   password hashing, secrets and the user/node extractors.
//! - [`ring`] (bounded-load consistent hashing), [`region`] (client region), [`routing`]
//!   (node choice), [`signer`] (Ed25519 playback-token keys), [`ratelimit`] (login
//!   attempts) — the first three and the last are pure.
//! - [`metrics`], [`state`].
//!
//! Entry points: [`run`] (the CLI), [`App::new`] + [`App::router`] (tests), [`serve`],
//! [`create_admin`].

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod ratelimit;
pub mod region;
pub mod ring;
pub mod routing;
pub mod signer;
pub mod state;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use skyrelay_common::cpapi::NodeRole;
use tokio::net::TcpListener;

pub use api::users::create_admin;
pub use config::ControlPlaneConfig;
pub use error::ApiError;

use crate::state::AppState;
use crate::store::{Store, StoreError, now_ms};

/// Why the control plane could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The signing key could not be created.
    #[error("signing key: {0}")]
    Signer(#[from] signer::SignerError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Binding the listener, the data dir or the node-secret file failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// Creating the admin failed.
    #[error("create admin: {0}")]
    Admin(ApiError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let context = context.into();
    move |source| RunError::Io { context, source }
}

/// A built control plane: state over an open, migrated store.
#[derive(Clone)]
pub struct App {
    state: Arc<AppState>,
}

impl App {
    /// Opens the store (creating the data dir for the default SQLite file), migrates it,
    /// loads or creates the node secret and the signing key, and registers metrics.
    pub async fn new(cfg: ControlPlaneConfig, registry: &Registry) -> Result<App, RunError> {
        if cfg.database_url.is_none() || cfg.node_secret.is_none() {
            tokio::fs::create_dir_all(&cfg.data_dir)
                .await
                .map_err(io(format!("data dir {}", cfg.data_dir.display())))?;
        }
        let store = Store::open(&cfg.database_url()).await?;
        let node_secret = match &cfg.node_secret {
            Some(s) => s.clone(),
            None => load_or_create_secret(&cfg).await?,
        };
        signer::ensure_key(&store, now_ms(), rotate_every_ms(&cfg)).await?;
        let metrics = metrics::Metrics::new(registry)?;
        Ok(App { state: Arc::new(AppState::new(store, cfg, node_secret, metrics)) })
    }

    /// The HTTP router.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The node secret in effect (from the config or the generated file).
    pub fn node_secret(&self) -> &str {
        &self.state.node_secret
    }

    /// One maintenance pass: gauges, expired sessions, scheduled key rotation.
    pub async fn maintain(&self) -> Result<(), RunError> {
        let s = &self.state;
        let now = now_ms();
        let nodes = s.store.nodes().await?;
        s.metrics.nodes_healthy.reset();
        for n in nodes.iter().filter(|n| n.healthy(now, s.node_timeout_ms())) {
            s.metrics.nodes_healthy.with_label_values(&[n.role.as_str(), n.region.as_str()]).inc();
        }
        for role in [NodeRole::Origin, NodeRole::Edge] {
            // Keep a zero series for the default region so dashboards show absence.
            s.metrics.nodes_healthy.with_label_values(&[role.as_str(), s.cfg.default_region.as_str()]).add(0);
        }
        s.metrics.live_channels.set(s.store.live_count().await?);
        s.store.purge_sessions(now).await?;
        signer::ensure_key(&s.store, now, rotate_every_ms(&s.cfg)).await?;
        Ok(())
    }
}

fn rotate_every_ms(cfg: &ControlPlaneConfig) -> i64 {
    i64::try_from(cfg.tokens.rotate_every_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

async fn load_or_create_secret(cfg: &ControlPlaneConfig) -> Result<String, RunError> {
    let path = cfg.data_dir.join("node-secret");
    match tokio::fs::read_to_string(&path).await {
        Ok(s) if s.trim().len() >= 16 => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    }
    let secret = auth::random_secret();
    tokio::fs::write(&path, format!("{secret}\n"))
        .await
        .map_err(io(format!("writing {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = std::fs::Permissions::from_mode(0o600);
        tokio::fs::set_permissions(&path, perms).await.map_err(io(format!("chmod {}", path.display())))?;
    }
    tracing::info!(path = %path.display(), "generated the cluster node secret");
    Ok(secret)
}

/// Serves `app` on `listener` until `shutdown` completes, running maintenance every
/// heartbeat interval.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let maint = app.clone();
    let period = Duration::from_millis(app.state.cfg.heartbeat_interval_ms);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = maint.maintain().await {
                        tracing::warn!(error = %e, "control-plane maintenance failed");
                    }
                }
                _ = stop_rx.changed() => break,
            }
        }
    });
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "control plane listening");
    let service = app.router().into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(true);
    let _ = task.await;
    app.state.store.close().await;
    result.map_err(io("serving the API"))
}

/// Runs the control plane from `cfg` until `shutdown` completes (the CLI's entry point).
pub async fn run(
    cfg: ControlPlaneConfig,
    registry: &Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let listen = cfg.listen;
    let app = App::new(cfg, registry).await?;
    let listener = TcpListener::bind(listen).await.map_err(io(format!("binding {listen}")))?;
    serve(app, listener, shutdown).await
}

/// Opens the configured store and creates the first admin; returns the password, to be
/// printed once (the CLI's `create-admin`).
pub async fn create_admin_from_config(cfg: &ControlPlaneConfig, username: &str) -> Result<String, RunError> {
    if cfg.database_url.is_none() {
        tokio::fs::create_dir_all(&cfg.data_dir)
            .await
            .map_err(io(format!("data dir {}", cfg.data_dir.display())))?;
    }
    let store = Store::open(&cfg.database_url()).await?;
    let result = create_admin(&store, username).await.map_err(RunError::Admin);
    store.close().await;
    result
}
