//! HTTP delivery of LL-HLS from a [`Hub`], shared by origins and edges.
//!
//! Layout:
//! - this file: [`Delivery`] (what serves requests), [`DeliveryConfig`], and the hooks an
//!   edge plugs in: [`ChannelSource`] (subscribe upstream on the first request) and
//!   [`Access`] (playback tokens).
//! - `routes`: the URL scheme and query parsing.
//! - `handlers`: one function per route: blocking playlist reload, streamed open parts,
//!   segments served as their parts' chunks.
//! - `body`: [`DeliveryBody`].
//! - `metrics`: request, byte and blocking-reload counters.
//! - `server`: [`serve`]: the accept loops (HTTP/1.1 and HTTP/2, optional TLS, bounded
//!   connections, graceful drain), one per HTTP thread (`DeliveryConfig::threads`).
//! - `h1`: plain-TCP HTTP/1.1 connections served without hyper's general path
//!   (`DeliveryConfig::native_http1`); HTTP/2 and TLS connections go through hyper.
//! - `idle`: closing connections that carry no request (never sent one, went quiet, or send
//!   their headers too slowly).
//! - `web`: the browser-facing routes: the watch page `/watch/{channel}`, its script and
//!   style, the player library from the web assets directory, and `/web/info`.
//! - `vod`: `/vod/{recording}/...`, answered by a [`VodSource`] (an origin reads its
//!   recordings' storage, an edge fetches from origins and caches).

mod body;
mod h1;
mod handlers;
mod idle;
mod metrics;
mod routes;
mod server;
mod vod;
mod web;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;

pub use body::{BodyError, DeliveryBody};
pub use metrics::ReloadOutcome;
pub use routes::{Kind, Query, QueryError, Route, WebFile, encode_query_value, parse_path, parse_query};
pub use server::serve;
pub use vod::{VodError, VodObject, VodRequest, VodSource, content_type as vod_content_type};

use crate::config::{ConfigError, Validate, check_range};
use crate::hub::Hub;

/// A header value for `text` that is shared without reference counting: every response
/// carries a few values from configuration (CORS origin, cache lifetime, node and region),
/// and a shared `HeaderValue` costs two atomic operations on one cache line, fought over by
/// every worker thread, per response. Each distinct text is kept once for the life of the
/// process (a handful, all from configuration).
pub(crate) fn lasting_value(text: &str) -> Result<http::HeaderValue, http::header::InvalidHeaderValue> {
    static KEPT: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::LazyLock::new(Default::default);
    http::HeaderValue::from_str(text)?;
    let mut kept = KEPT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let text: &'static str = match kept.get(text) {
        Some(t) => t,
        None => {
            let t: &'static str = Box::leak(text.to_owned().into_boxed_str());
            kept.insert(t);
            t
        }
    };
    Ok(http::HeaderValue::from_static(text))
}

/// A boxed, sendable future (the hooks below are called through `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// HTTP delivery settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Longest hold of a blocking playlist reload or of a wait for a part that has not
    /// opened yet, in milliseconds. 0: three target durations (RFC 8216bis).
    pub hold_deadline_ms: u64,
    /// `Access-Control-Allow-Origin` value.
    pub cors_allow_origin: String,
    /// Most concurrent connections; further connections wait to be accepted.
    pub max_connections: usize,
    /// `max-age` of parts, segments and init segments (served `immutable`), in seconds.
    pub immutable_max_age_secs: u64,
    /// Longest a connection may carry no request, in milliseconds: before its first, between
    /// two on a kept-alive connection, or while a request's headers arrive (HTTP/1.1 and
    /// HTTP/2). Such a connection is closed after between this and 1.5 × this; one with a
    /// request in progress (a held reload, a part being streamed) is not.
    pub header_read_timeout_ms: u64,
    /// Longest TLS handshake, in milliseconds.
    pub tls_handshake_timeout_ms: u64,
    /// On shutdown, how long open connections may finish, in milliseconds.
    pub drain_timeout_ms: u64,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_http2_streams: u32,
    /// On plain-HTTP/1.1 connections, send cached whole segments with `sendfile(2)` from a
    /// shared-memory copy instead of copying them into the socket for every response
    /// (`crate::zero_copy`). The copy doubles those segments' weight in the cache.
    pub zero_copy: bool,
    /// Directory holding the player library `hls.min.js` (the `dist` directory of the npm
    /// package `hls.js`), served at `/web/hls.min.js`. A relative path is resolved against
    /// the working directory.
    pub web_assets_dir: PathBuf,
    /// Name of this node, sent in the `X-Skyrelay-Node` header and by `/web/info`; empty:
    /// not sent.
    pub node_name: String,
    /// Region of this node, sent in the `X-Skyrelay-Region` header and by `/web/info`;
    /// empty: not sent.
    pub region: String,
    /// Threads that accept and serve viewers' connections, each with a single-threaded
    /// runtime of its own; 0: one per CPU; 1: the node's own runtime serves them.
    pub threads: usize,
    /// Serve plain-TCP HTTP/1.1 connections with Skyrelay's own connection handling (`h1`),
    /// lighter per request than hyper's; false: hyper serves them too. TLS connections and
    /// HTTP/2 are always served by hyper.
    pub native_http1: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            hold_deadline_ms: 0,
            cors_allow_origin: "*".into(),
            max_connections: 10_000,
            immutable_max_age_secs: 300,
            header_read_timeout_ms: 10_000,
            tls_handshake_timeout_ms: 10_000,
            drain_timeout_ms: 10_000,
            max_http2_streams: 256,
            zero_copy: true,
            web_assets_dir: PathBuf::from("web/node_modules/hls.js/dist"),
            node_name: String::new(),
            region: String::new(),
            threads: 0,
            native_http1: true,
        }
    }
}

impl Validate for DeliveryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("hold_deadline_ms", self.hold_deadline_ms, 0, 120_000)?;
        check_range("max_connections", self.max_connections, 1, 1_000_000)?;
        check_range("immutable_max_age_secs", self.immutable_max_age_secs, 0, 31_536_000)?;
        check_range("header_read_timeout_ms", self.header_read_timeout_ms, 100, 600_000)?;
        check_range("tls_handshake_timeout_ms", self.tls_handshake_timeout_ms, 100, 600_000)?;
        check_range("drain_timeout_ms", self.drain_timeout_ms, 0, 600_000)?;
        check_range("max_http2_streams", self.max_http2_streams, 1, 100_000)?;
        check_range("threads", self.threads, 0, 1024)?;
        let origin = &self.cors_allow_origin;
        if origin.is_empty() || http::HeaderValue::from_str(origin).is_err() {
            return Err(ConfigError::invalid(
                "cors_allow_origin",
                format!("{origin:?} is not a header value"),
            ));
        }
        web::validate_label("node_name", &self.node_name)?;
        web::validate_label("region", &self.region)?;
        Ok(())
    }
}

/// Why a channel could not be made available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No such channel anywhere (404).
    #[error("channel not found")]
    NotFound,
    /// The channel exists but cannot be reached now (502).
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// Too many channels or subscriptions already (503).
    #[error("over capacity")]
    Overloaded,
}

/// Makes a channel present in the hub on demand (an edge subscribes upstream). Called when
/// a request names a channel or rendition the hub does not hold; `Ok` means the channel's
/// renditions are now open in the hub (they may still be empty).
pub trait ChannelSource: Send + Sync + 'static {
    fn ensure<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), SourceError>>;

    /// [`ensure`](Self::ensure) for a request of segment `msn` of `rendition`: a source
    /// that subscribes may ask for the segment in the same flight, so that it arrives ahead
    /// of the channel's history (then taken with [`fetch_segment`](Self::fetch_segment)).
    fn ensure_for_segment<'a>(
        &'a self,
        channel: &'a str,
        _rendition: &'a str,
        _msn: u64,
    ) -> BoxFuture<'a, Result<(), SourceError>> {
        self.ensure(channel)
    }

    /// Complete segment `msn` of a channel the source carries, fetched upstream without
    /// waiting for the window (an edge backfilling a fresh subscription, or a segment older
    /// than its window): returned once its first bytes are on their way, readable as they
    /// arrive. `NotFound` when the upstream does not hold it.
    fn fetch_segment<'a>(
        &'a self,
        _channel: &'a str,
        _rendition: &'a str,
        _msn: u64,
    ) -> BoxFuture<'a, Result<crate::hub::Arriving, SourceError>> {
        Box::pin(std::future::ready(Err(SourceError::NotFound)))
    }
}

/// A refused request: the status (usually 403) and a short reason, sent in the
/// `X-Skyrelay-Denied` header and the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Denied {
    pub status: http::StatusCode,
    pub reason: String,
}

/// Checks a request against the channel's access policy (playback tokens). `Ok(Some(t))`
/// lets it through and carries `token=t` into every URI of the playlists served.
/// It may wait (bounded) to learn the channel's policy.
pub trait Access: Send + Sync + 'static {
    fn check<'a>(
        &'a self,
        channel: &'a str,
        query_token: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<Option<String>, Denied>>;
}

/// Why a [`Delivery`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The metrics could not be registered (e.g. the prefix is already used).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Serves LL-HLS requests from a hub. Cheap to share (`Arc`); see [`serve`].
pub struct Delivery {
    hub: Arc<Hub>,
    cfg: DeliveryConfig,
    cors_origin: http::HeaderValue,
    immutable: http::HeaderValue,
    /// Headers of every part and segment response (see `handlers::media`).
    media_headers: http::HeaderMap,
    /// `media_headers` as HTTP/1.1 header lines (see `h1`).
    media_fields: Box<[u8]>,
    source: Option<Arc<dyn ChannelSource>>,
    access: Option<Arc<dyn Access>>,
    vod: Option<Arc<dyn VodSource>>,
    metrics: metrics::Metrics,
    web: web::WebState,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Delivery from `hub`, with metrics named `{metrics_prefix}_http_…` in `registry`.
    pub fn new(
        hub: Arc<Hub>,
        cfg: DeliveryConfig,
        registry: &prometheus::Registry,
        metrics_prefix: &str,
    ) -> Result<Self, DeliveryError> {
        cfg.validate()?;
        let cors_origin = lasting_value(&cfg.cors_allow_origin)
            .map_err(|_| ConfigError::invalid("cors_allow_origin", "not a header value"))?;
        let immutable = lasting_value(&format!("public, max-age={}, immutable", cfg.immutable_max_age_secs))
            .map_err(|_| ConfigError::invalid("immutable_max_age_secs", "not a header value"))?;
        let metrics = metrics::Metrics::register(registry, metrics_prefix)?;
        let web = web::WebState::new(&cfg);
        let media_headers = handlers::media_headers(&immutable, &cors_origin, &web);
        let media_fields = h1::field_lines(&media_headers).into();
        Ok(Delivery {
            hub,
            cfg,
            cors_origin,
            immutable,
            media_headers,
            media_fields,
            source: None,
            access: None,
            vod: None,
            metrics,
            web,
        })
    }

    /// Channels missing from the hub are requested from `source` (edges).
    pub fn with_source(mut self, source: Arc<dyn ChannelSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Every request is checked by `access`.
    pub fn with_access(mut self, access: Arc<dyn Access>) -> Self {
        self.access = Some(access);
        self
    }

    /// Recordings (`/vod/...`) are answered by `vod`; without one they are 404.
    pub fn with_vod(mut self, vod: Arc<dyn VodSource>) -> Self {
        self.vod = Some(vod);
        self
    }

    /// The hub served.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The configuration.
    pub fn config(&self) -> &DeliveryConfig {
        &self.cfg
    }
}
