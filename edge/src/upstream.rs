//! On-demand upstream subscriptions: the [`ChannelSource`] the edge's delivery calls when
//! a viewer asks for a channel the edge does not carry.
//!
//! - Concurrent first requests for a channel share one upstream subscription (moka's
//!   `try_get_with` coalesces the misses), so the upstream sends each part once per edge.
//! - An upstream "not found" is remembered for a short time in a bounded cache, so a flood
//!   of requests for a missing channel neither reaches the upstream nor grows the edge.
//! - [`reap_idle`] drops channels nobody requested for a while: the subscription is
//!   dropped (which unsubscribes) and the channel leaves the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moka::future::Cache;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use skyrelay_common::delivery::{BoxFuture, ChannelSource, SourceError};
use skyrelay_common::hub::{Hub, Rendition};
use skyrelay_common::relay::client::{RelayClient, RelayError, Subscription};
use skyrelay_common::relay::codec::ErrorCode;
use skyrelay_common::relay::server::RenditionSource;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::outcome::CacheOutcome;

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

/// Subscribes channels upstream on demand.
pub struct UpstreamSource {
    client: RelayClient,
    hub: Arc<Hub>,
    subscriptions: Cache<String, Arc<Subscription>>,
    missing: Cache<String, ()>,
    metrics: UpstreamMetrics,
}

impl UpstreamSource {
    /// `max_channels` bounds both the subscriptions and the remembered misses.
    pub fn new(
        client: RelayClient,
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
        UpstreamSource { client, hub, subscriptions, missing, metrics }
    }

    /// Whether the relay connection to the upstream is up.
    pub fn connected(&self) -> bool {
        self.client.is_connected()
    }

    async fn lookup(&self, channel: &str) -> (CacheOutcome, Result<(), SourceError>) {
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
                let sub = self.client.subscribe(channel, SOURCE_RENDITION).await?;
                self.metrics.subscriptions.inc();
                info!(%channel, "subscribed upstream");
                Ok::<_, RelayError>(Arc::new(sub))
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
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                self.missing.insert(channel.to_owned(), ()).await;
                (outcome, Err(SourceError::NotFound))
            }
            Err(e) if e.code() == Some(ErrorCode::Overloaded) => {
                (CacheOutcome::Error, Err(SourceError::Overloaded))
            }
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

impl ChannelSource for UpstreamSource {
    fn ensure<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            let (outcome, result) = self.lookup(channel).await;
            self.metrics.count(outcome);
            debug!(%channel, outcome = outcome.as_str(), "channel lookup");
            result
        })
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
                return Ok(r);
            }
            match self.ensure(channel).await {
                Ok(()) => self.hub.rendition(channel, rendition).ok_or(ErrorCode::NotFound),
                Err(SourceError::NotFound) => Err(ErrorCode::NotFound),
                Err(SourceError::Overloaded) => Err(ErrorCode::Overloaded),
                Err(SourceError::Unavailable(_)) => Err(ErrorCode::Internal),
            }
        })
    }
}

/// Every `period`, drops channels not requested for `idle` (no viewer, no downstream
/// subscriber) until `shutdown`.
pub async fn reap_idle(source: Arc<UpstreamSource>, idle: Duration, shutdown: CancellationToken) {
    let period = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for channel in source.hub.idle_channels(idle) {
            info!(%channel, idle_seconds = idle.as_secs(), "no viewers: unsubscribing");
            source.drop_channel(&channel).await;
        }
    }
}
