//! Recordings played back through the edge: `/vod/{recording}/index.m3u8` and the objects
//! it names (decision 0007).
//!
//! A request looks the recording up in the control plane's catalog (cached briefly), checks
//! the viewer's playback token for a private channel with the same [`Access`] check as live
//! playback, and serves the file from a byte-bounded cache filled from the recording's
//! origin ([`crate::vod_origin`]). Concurrent misses for one file share one origin fetch.
//! Recording files never change once the playlist exists, so cached files need no
//! revalidation; only the catalog entry (deletion, access) is looked up again.
//!
//! Metrics: `skyrelay_edge_vod_requests_total{outcome}` (hit, miss, coalesced, not_found,
//! denied, error), `skyrelay_edge_vod_bytes_total{outcome}` (hit, miss, coalesced) and
//! `skyrelay_edge_vod_cache_bytes`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use moka::future::Cache;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use skyrelay_common::cpapi::ControlPlaneClient;
use skyrelay_common::delivery::{
    Access, BoxFuture, VodError, VodObject, VodRequest, VodSource, vod_content_type,
};

use crate::config::EdgeVodConfig;
use crate::outcome::CacheOutcome;
use crate::vod_origin::Origins;
use crate::vod_playlist::with_token;

/// The edge's VOD metrics.
#[derive(Clone)]
pub struct VodMetrics {
    pub requests: IntCounterVec,
    pub bytes: IntCounterVec,
    pub cache_bytes: IntGauge,
}

impl VodMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "skyrelay_edge_vod_requests_total",
                "Recording (VOD) requests by outcome: hit, miss, coalesced (waited for another \
                 request's origin fetch), not_found, denied, error.",
            ),
            &["outcome"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new("skyrelay_edge_vod_bytes_total", "Recording bytes served, by cache outcome."),
            &["outcome"],
        )?;
        let cache_bytes = IntGauge::new(
            "skyrelay_edge_vod_cache_bytes",
            "Bytes of recording files held in the VOD cache.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        for o in ["hit", "miss", "coalesced", "not_found", "denied", "error"] {
            requests.with_label_values(&[o]);
        }
        for o in ["hit", "miss", "coalesced"] {
            bytes.with_label_values(&[o]);
        }
        Ok(VodMetrics { requests, bytes, cache_bytes })
    }
}

/// The edge's [`VodSource`].
pub struct EdgeVod {
    /// `None` without a control plane: there is no catalog to find recordings in.
    origins: Option<Origins>,
    access: Option<Arc<dyn Access>>,
    /// `{id}/{file}` → bytes, weighed by bytes.
    objects: Cache<String, Bytes>,
    metrics: VodMetrics,
}

impl EdgeVod {
    /// Serves recordings found through `cp`, checking `access` (the live playback check).
    pub fn new(
        cfg: &EdgeVodConfig,
        cp: Option<ControlPlaneClient>,
        access: Option<Arc<dyn Access>>,
        metrics: VodMetrics,
    ) -> Self {
        let ttl = Duration::from_secs(cfg.catalog_cache_seconds);
        let fetch_timeout = Duration::from_millis(cfg.fetch_timeout_ms);
        let objects = Cache::builder()
            .max_capacity(cfg.cache_bytes)
            .weigher(|k: &String, v: &Bytes| u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX))
            .build();
        EdgeVod { origins: cp.map(|cp| Origins::new(cp, ttl, fetch_timeout)), access, objects, metrics }
    }

    async fn serve(&self, req: VodRequest<'_>) -> Result<VodObject, VodError> {
        let Some(origins) = &self.origins else {
            return Err(VodError::not_found(
                "this edge has no control plane, so no recordings catalog: recordings (VOD) are not served here",
            ));
        };
        let rec = origins.recording(req.id).await?;
        let token = match &self.access {
            Some(access) => access.check(&rec.channel, req.token, req.client).await?,
            None => None,
        };
        let key = format!("{}/{}", req.id, req.file);
        let (outcome, body) = match self.objects.get(&key).await {
            Some(body) => (CacheOutcome::Hit, body),
            None => {
                let entry = self
                    .objects
                    .entry_by_ref(&key)
                    .or_try_insert_with(origins.fetch(&rec, req.file))
                    .await
                    .map_err(|e| (*e).clone())?;
                let outcome = if entry.is_fresh() { CacheOutcome::Miss } else { CacheOutcome::Coalesced };
                if outcome == CacheOutcome::Miss {
                    self.objects.run_pending_tasks().await;
                    self.metrics
                        .cache_bytes
                        .set(i64::try_from(self.objects.weighted_size()).unwrap_or(i64::MAX));
                }
                (outcome, entry.into_value())
            }
        };
        let body = match token {
            Some(token) if req.is_playlist() => {
                Bytes::from(with_token(&String::from_utf8_lossy(&body), &token))
            }
            _ => body,
        };
        self.metrics.bytes.with_label_values(&[outcome.as_str()]).inc_by(body.len() as u64);
        self.metrics.requests.with_label_values(&[outcome.as_str()]).inc();
        Ok(VodObject { body, content_type: vod_content_type(req.file) })
    }
}

impl VodSource for EdgeVod {
    fn get<'a>(&'a self, req: VodRequest<'a>) -> BoxFuture<'a, Result<VodObject, VodError>> {
        Box::pin(async move {
            self.serve(req).await.inspect_err(|e| {
                let outcome = if e.denied {
                    "denied"
                } else if e.status == StatusCode::NOT_FOUND {
                    "not_found"
                } else {
                    "error"
                };
                self.metrics.requests.with_label_values(&[outcome]).inc();
            })
        })
    }
}
