//! On-demand upstream subscriptions: the [`ChannelSource`] the edge's delivery calls when
//! a viewer asks for a channel the edge does not carry.
//!
//! - Concurrent first requests for a channel share one upstream subscription (moka's
//!   `try_get_with` coalesces the misses), so the upstream sends each part once per edge.
//! - An upstream "not found" is remembered for a short time in a bounded cache, so a flood
//!   of requests for a missing channel neither reaches the upstream nor grows the edge.
//! - [`reap_idle`] drops channels nobody requested for a while: the subscription is
//!   dropped (which unsubscribes) and the channel leaves the hub.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use skyrelay_common::cpapi::ControlPlaneClient;
use skyrelay_common::delivery::{BoxFuture, ChannelSource, SourceError};
use skyrelay_common::hub::{Arriving, Hub, HubError, Rendition};
use skyrelay_common::relay::client::{RelayClient, RelayClientConfig, RelayError, Subscription};
use skyrelay_common::relay::codec::ErrorCode;
use skyrelay_common::relay::metrics::RelayClientMetrics;
use skyrelay_common::relay::server::RenditionSource;
use skyrelay_common::relay::tls::NodeIdentity;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::outcome::CacheOutcome;
use crate::policy::{ChannelPolicies, POLICY_TTL};

/// The rendition an edge subscribes to for a channel.
pub const SOURCE_RENDITION: &str = "source";

/// Metrics of upstream lookups.
#[derive(Clone)]
pub struct UpstreamMetrics {
    /// Channel lookups by outcome.
    pub cache_requests: IntCounterVec,
    /// Channels subscribed upstream now.
    pub subscriptions: IntGauge,
}

impl UpstreamMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = UpstreamMetrics {
            cache_requests: IntCounterVec::new(
                Opts::new(
                    "skyrelay_edge_cache_requests_total",
                    "Channel lookups at the edge, by cache outcome",
                ),
                &["outcome"],
            )?,
            subscriptions: IntGauge::new("skyrelay_edge_subscriptions", "Channels subscribed upstream")?,
        };
        registry.register(Box::new(m.cache_requests.clone()))?;
        registry.register(Box::new(m.subscriptions.clone()))?;
        Ok(m)
    }

    fn count(&self, outcome: CacheOutcome) {
        self.cache_requests.with_label_values(&[outcome.as_str()]).inc();
    }
}

/// Where subscriptions go: one fixed upstream, or wherever the control plane says a
/// channel is live (one relay client per upstream node, made on first use).
pub enum Upstream {
    Static(RelayClient),
    ControlPlane(Box<Routed>),
}

/// Control-plane routing of subscriptions.
pub struct Routed {
    pub cp: ControlPlaneClient,
    pub identity: Arc<NodeIdentity>,
    pub client_metrics: RelayClientMetrics,
    /// Complete segments a fresh subscription starts with (the edge's window).
    pub history_segments: u64,
    /// Relay clients by upstream relay address (bounded: one per origin).
    clients: std::sync::Mutex<HashMap<String, Arc<RelayClient>>>,
    /// The node's runtime: relay clients and followers run there, not on the viewers'
    /// HTTP thread whose request made them.
    runtime: tokio::runtime::Handle,
}

/// Most upstream relay clients an edge keeps.
const MAX_UPSTREAMS: usize = 64;

/// Longest wait of a lower-tier subscriber for the history of a channel this edge has just
/// subscribed to (so that it receives the whole window too).
const BACKFILL_WAIT: Duration = Duration::from_secs(2);

impl Routed {
    /// Call from within the node's runtime (it is kept for relay clients and followers).
    pub fn new(
        cp: ControlPlaneClient,
        identity: Arc<NodeIdentity>,
        client_metrics: RelayClientMetrics,
        history_segments: u64,
    ) -> Self {
        Routed {
            cp,
            identity,
            client_metrics,
            history_segments,
            clients: std::sync::Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn client(
        &self,
        relay_addr: &str,
        server_name: &str,
        hub: &Arc<Hub>,
    ) -> Result<Arc<RelayClient>, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(relay_addr) {
            return Ok(c.clone());
        }
        if clients.len() >= MAX_UPSTREAMS {
            // Subscriptions hold their own handle; dropping the map's entries only stops
            // clients nobody uses any more.
            clients.clear();
        }
        let addr = relay_addr
            .parse()
            .map_err(|_| format!("upstream relay address {relay_addr:?} is not ip:port"))?;
        let mut cfg = RelayClientConfig::new(addr, server_name);
        cfg.history_segments = self.history_segments;
        let client = {
            let _node_runtime = self.runtime.enter();
            RelayClient::new(&self.identity, cfg, hub.clone(), self.client_metrics.clone())
                .map_err(|e| e.to_string())?
        };
        let client = Arc::new(client);
        clients.insert(relay_addr.to_owned(), client.clone());
        Ok(client)
    }
}

/// A live upstream subscription, the client carrying it, and the task following the
/// channel's origin.
pub struct Carried {
    subscription: Subscription,
    _client: Option<Arc<RelayClient>>,
    follower: Option<tokio::task::AbortHandle>,
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some(f) = &self.follower {
            f.abort();
        }
    }
}

/// Subscribes channels upstream on demand.
pub struct UpstreamSource {
    upstream: Upstream,
    hub: Arc<Hub>,
    subscriptions: Cache<String, Arc<Carried>>,
    missing: Cache<String, ()>,
    /// Whether a channel is private, as the control plane last said.
    private: ChannelPolicies,
    metrics: UpstreamMetrics,
}

impl UpstreamSource {
    /// `max_channels` bounds both the subscriptions and the remembered misses.
    pub fn new(
        upstream: Upstream,
        hub: Arc<Hub>,
        max_channels: usize,
        negative_ttl: Duration,
        metrics: UpstreamMetrics,
    ) -> Self {
        let gauge = metrics.subscriptions.clone();
        let evict_hub = hub.clone();
        let subscriptions = Cache::builder()
            .max_capacity(max_channels as u64)
            .eviction_listener(move |channel: Arc<String>, _sub, cause| {
                gauge.dec();
                debug!(%channel, ?cause, "upstream subscription dropped");
                evict_hub.remove(&channel);
            })
            .build();
        let missing = Cache::builder()
            .max_capacity(max_channels.max(1024) as u64)
            .time_to_live(negative_ttl.max(Duration::from_millis(1)))
            .build();
        let private = ChannelPolicies::new(max_channels.max(1024) as u64, POLICY_TTL);
        UpstreamSource { upstream, hub, subscriptions, missing, private, metrics }
    }

    /// Whether the control plane says `channel` is private; asks it when not known yet.
    pub async fn is_private(&self, channel: &str) -> Result<bool, String> {
        let Upstream::ControlPlane(routed) = &self.upstream else { return Ok(false) };
        let ask = || async {
            let here = routed.cp.where_is(channel, None, Duration::ZERO).await.map_err(|e| e.to_string())?;
            Ok(here.private)
        };
        self.private.private(channel, ask).await
    }

    /// Subscribes to `channel` wherever it lives.
    async fn subscribe(&self, channel: &str, fetch: Option<u64>) -> Result<Carried, SubscribeError> {
        match &self.upstream {
            Upstream::Static(client) => {
                let sub = client.subscribe_fetching(channel, SOURCE_RENDITION, fetch).await?;
                Ok(Carried { subscription: sub, _client: None, follower: None })
            }
            Upstream::ControlPlane(routed) => {
                let here = routed
                    .cp
                    .where_is(channel, None, Duration::ZERO)
                    .await
                    .map_err(|e| SubscribeError::ControlPlane(e.to_string()))?;
                self.private.set(channel, here.private).await;
                let origin = here.origin.ok_or(SubscribeError::NotLive)?;
                let relay = origin.relay_addr.clone().ok_or(SubscribeError::NotLive)?;
                let client =
                    routed.client(&relay, &origin.name, &self.hub).map_err(SubscribeError::ControlPlane)?;
                let sub = client.subscribe_fetching(channel, SOURCE_RENDITION, fetch).await?;
                let follower = routed
                    .runtime
                    .spawn(follow_origin(
                        routed.cp.clone(),
                        channel.to_owned(),
                        origin.name,
                        here.version,
                        self.subscriptions.clone(),
                        self.private.clone(),
                        self.hub.clone(),
                    ))
                    .abort_handle();
                Ok(Carried { subscription: sub, _client: Some(client), follower: Some(follower) })
            }
        }
    }

    /// Makes `channel` carried here; `fetch`: a segment of the source rendition to ask for
    /// with the subscription, when this lookup is the one that subscribes.
    async fn lookup(&self, channel: &str, fetch: Option<u64>) -> (CacheOutcome, Result<(), SourceError>) {
        if self.missing.contains_key(channel) {
            return (CacheOutcome::NegativeHit, Err(SourceError::NotFound));
        }
        if self.subscriptions.contains_key(channel) {
            if self.hub.contains(channel) {
                return (CacheOutcome::Hit, Ok(()));
            }
            // The hub dropped the channel (its window closed): subscribe afresh.
            self.subscriptions.invalidate(channel).await;
        }
        let initiated = AtomicBool::new(false);
        let result = self
            .subscriptions
            .try_get_with(channel.to_owned(), async {
                initiated.store(true, Ordering::Relaxed);
                let carried = self.subscribe(channel, fetch).await?;
                self.metrics.subscriptions.inc();
                info!(%channel, "subscribed upstream");
                Ok::<_, SubscribeError>(Arc::new(carried))
            })
            .await;
        let outcome =
            if initiated.load(Ordering::Relaxed) { CacheOutcome::Miss } else { CacheOutcome::Coalesced };
        if result.is_err() {
            // The relay client opened the rendition for the subscription; without one,
            // the channel must not linger (the next request has to ask again).
            self.hub.remove(channel);
        }
        match result {
            Ok(_) => (outcome, Ok(())),
            Err(e) if e.not_found() => {
                self.missing.insert(channel.to_owned(), ()).await;
                (outcome, Err(SourceError::NotFound))
            }
            Err(e) if e.overloaded() => (CacheOutcome::Error, Err(SourceError::Overloaded)),
            Err(e) => {
                warn!(%channel, error = %e, "upstream subscription failed");
                (CacheOutcome::Error, Err(SourceError::Unavailable(e.to_string())))
            }
        }
    }

    /// Drops `channel`: unsubscribes upstream and removes it from the hub.
    pub async fn drop_channel(&self, channel: &str) {
        self.subscriptions.invalidate(channel).await;
        self.subscriptions.run_pending_tasks().await;
        self.hub.remove(channel);
    }
}

/// Why a subscription could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The relay refused or failed.
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// The control plane knows no origin carrying the channel.
    #[error("channel is not live")]
    NotLive,
    /// The control plane could not be asked.
    #[error("control plane: {0}")]
    ControlPlane(String),
}

impl SubscribeError {
    fn not_found(&self) -> bool {
        matches!(self, SubscribeError::NotLive)
            || matches!(self, SubscribeError::Relay(e) if e.code() == Some(ErrorCode::NotFound))
    }

    fn overloaded(&self) -> bool {
        matches!(self, SubscribeError::Relay(e) if e.code() == Some(ErrorCode::Overloaded))
            || matches!(
                self,
                SubscribeError::Relay(RelayError::Hub(
                    HubError::TooManyChannels(_) | HubError::OverBudget(_)
                ))
            )
    }
}

/// Long-polls where `channel` is live; when another origin takes it over, drops the
/// channel here so the next request subscribes there.
async fn follow_origin(
    cp: ControlPlaneClient,
    channel: String,
    origin: String,
    mut version: u64,
    subscriptions: Cache<String, Arc<Carried>>,
    private: ChannelPolicies,
    hub: Arc<Hub>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match cp.where_is(&channel, Some(version), Duration::from_secs(20)).await {
            Ok(here) => {
                backoff = Duration::from_millis(500);
                version = here.version;
                private.set(&channel, here.private).await;
                if let Some(now) = here.origin
                    && now.name != origin
                {
                    info!(%channel, from = %origin, to = %now.name, "channel moved to another origin: following");
                    hub.remove(&channel);
                    subscriptions.invalidate(&channel).await;
                    return;
                }
            }
            Err(e) => {
                debug!(%channel, error = %e, "where-is poll failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

impl ChannelSource for UpstreamSource {
    fn ensure<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(self.ensure_fetching(channel, None))
    }

    fn ensure_for_segment<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
        msn: u64,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        let fetch = (rendition == SOURCE_RENDITION).then_some(msn);
        Box::pin(self.ensure_fetching(channel, fetch))
    }

    fn fetch_segment<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
        msn: u64,
    ) -> BoxFuture<'a, Result<Arriving, SourceError>> {
        Box::pin(self.fetch(channel, rendition, msn))
    }
}

/// Longest wait for a segment fetched upstream (the upstream itself waits up to its fetch
/// deadline for a segment it is still writing).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

impl UpstreamSource {
    async fn ensure_fetching(&self, channel: &str, fetch: Option<u64>) -> Result<(), SourceError> {
        let (outcome, result) = self.lookup(channel, fetch).await;
        self.metrics.count(outcome);
        debug!(%channel, outcome = outcome.as_str(), "channel lookup");
        result
    }

    async fn fetch(&self, channel: &str, rendition: &str, msn: u64) -> Result<Arriving, SourceError> {
        if rendition != SOURCE_RENDITION {
            return Err(SourceError::NotFound);
        }
        let carried = match self.subscriptions.get(channel).await {
            Some(c) => c,
            // The relay client opens the rendition in the hub before the upstream accepts,
            // so a request can get here while the subscription is still being made: join it.
            None => {
                self.ensure_fetching(channel, None).await?;
                self.subscriptions.get(channel).await.ok_or(SourceError::NotFound)?
            }
        };
        match carried.subscription.fetch_arriving(msn, FETCH_TIMEOUT).await {
            Ok(arriving) => Ok(arriving),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(SourceError::NotFound),
            Err(e) => Err(SourceError::Unavailable(e.to_string())),
        }
    }
}

impl RenditionSource for UpstreamSource {
    /// Lower-tier edges subscribing to this edge pull the channel upstream on demand too.
    fn find<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Rendition>, ErrorCode>> {
        Box::pin(async move {
            if let Some(r) = self.hub.rendition(channel, rendition) {
                r.touch();
                r.wait_filled(BACKFILL_WAIT).await;
                return Ok(r);
            }
            match self.ensure(channel).await {
                Ok(()) => {
                    let r = self.hub.rendition(channel, rendition).ok_or(ErrorCode::NotFound)?;
                    r.wait_filled(BACKFILL_WAIT).await;
                    Ok(r)
                }
                Err(SourceError::NotFound) => Err(ErrorCode::NotFound),
                Err(SourceError::Overloaded) => Err(ErrorCode::Overloaded),
                Err(SourceError::Unavailable(_)) => Err(ErrorCode::Internal),
            }
        })
    }
}

/// Drops channels not requested for `idle` (no viewer, no downstream subscriber), and
/// channels whose upstream subscription ended (the upstream restarted without the channel,
/// or removed it), so the next request subscribes afresh; until `shutdown`.
pub async fn reap_idle(source: Arc<UpstreamSource>, idle: Duration, shutdown: CancellationToken) {
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ended: Vec<String> = source
            .subscriptions
            .iter()
            .filter(|(_, carried)| !carried.subscription.is_active())
            .map(|(channel, _)| channel.as_ref().clone())
            .collect();
        for channel in ended {
            info!(%channel, "upstream subscription ended: will subscribe again on the next request");
            source.drop_channel(&channel).await;
        }
        for channel in source.hub.idle_channels(idle) {
            info!(%channel, idle_seconds = idle.as_secs(), "no viewers: unsubscribing");
            source.drop_channel(&channel).await;
        }
    }
}
