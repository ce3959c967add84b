//! The edge's typed configuration (`skyrelay edge --config edge.toml`); `config/edge.toml`
//! is the commented example. Environment overrides: `SKYRELAY_HTTP__LISTEN=…`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use skyrelay_common::config::{ConfigError, NodeControlPlaneConfig, Validate, check_range};
use skyrelay_common::delivery::DeliveryConfig;

/// Everything an edge needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    pub node_name: String,
    pub region: String,
    pub http: EdgeHttpConfig,
    pub admin: EdgeAdminConfig,
    /// The static upstream, used when no control plane is configured.
    pub upstream: UpstreamConfig,
    pub relay: EdgeRelayConfig,
    /// The control plane: where channels are live, playback-token keys, registration.
    pub control_plane: NodeControlPlaneConfig,
    /// Directory with this node's cluster identity: `ca.pem`, `node.pem`, `node.key`.
    pub cert_dir: PathBuf,
    /// Complete segments kept per rendition.
    pub window_segments: usize,
    /// How much media the edge holds (bytes).
    pub cache: EdgeCacheConfig,
    /// Most channels carried at once.
    pub max_channels: usize,
    /// Seconds without a viewer (or a downstream subscriber) before a channel is
    /// unsubscribed and dropped.
    pub idle_unsubscribe_seconds: u64,
    /// Seconds an upstream "not found" is remembered (requests meanwhile get 404 at once).
    pub negative_cache_seconds: u64,
    /// Seconds to let connections finish on shutdown.
    pub drain_seconds: u64,
    /// Recordings played back at `/vod/…` (needs a control plane).
    pub vod: EdgeVodConfig,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            node_name: "edge-1".into(),
            region: "local".into(),
            http: EdgeHttpConfig::default(),
            admin: EdgeAdminConfig::default(),
            upstream: UpstreamConfig::default(),
            relay: EdgeRelayConfig::default(),
            control_plane: NodeControlPlaneConfig::default(),
            cert_dir: PathBuf::from("cluster/edge-1"),
            window_segments: 6,
            cache: EdgeCacheConfig::default(),
            max_channels: 1000,
            idle_unsubscribe_seconds: 30,
            negative_cache_seconds: 1,
            drain_seconds: 5,
            vod: EdgeVodConfig::default(),
        }
    }
}

/// The edge's memory for media. Everything it holds of the channels it carries counts
/// against `capacity_bytes`: a quarter goes to the whole-segment cache (moka, weighed by
/// bytes, least recently used out first); the rest is shared by the live windows, each
/// bounded by `window_bytes` (its oldest segments leave first) and reserved when a channel
/// is subscribed, so at most `capacity_bytes × 3/4 ÷ window_bytes` channels are carried at
/// once (further channels get 503 until one is dropped).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeCacheConfig {
    /// Bytes of media held at most (live windows + whole-segment cache).
    pub capacity_bytes: u64,
    /// Bytes one channel's live window holds at most.
    pub window_bytes: u64,
}

impl Default for EdgeCacheConfig {
    fn default() -> Self {
        EdgeCacheConfig { capacity_bytes: 1 << 30, window_bytes: 32 << 20 }
    }
}

impl EdgeCacheConfig {
    /// The whole-segment cache's share of the capacity.
    pub fn objects_bytes(&self) -> u64 {
        self.capacity_bytes / 4
    }

    /// The live windows' share of the capacity.
    pub fn windows_bytes(&self) -> u64 {
        self.capacity_bytes - self.objects_bytes()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_range("cache.capacity_bytes", self.capacity_bytes, 16 << 20, 1 << 40)?;
        check_range("cache.window_bytes", self.window_bytes, 1 << 20, 4 << 30)?;
        if self.window_bytes > self.windows_bytes() {
            return Err(ConfigError::invalid(
                "cache.window_bytes",
                format!(
                    "{} exceeds the live windows' share of cache.capacity_bytes ({} of {})",
                    self.window_bytes,
                    self.windows_bytes(),
                    self.capacity_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// The viewer-facing HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeHttpConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both set enables HTTPS (HTTP/1.1 and HTTP/2).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub delivery: DeliveryConfig,
}

impl Default for EdgeHttpConfig {
    fn default() -> Self {
        EdgeHttpConfig {
            listen: "127.0.0.1:8081".parse().expect("static address"),
            tls_cert: None,
            tls_key: None,
            delivery: DeliveryConfig::default(),
        }
    }
}

/// Prometheus metrics and health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeAdminConfig {
    pub listen: SocketAddr,
}

impl Default for EdgeAdminConfig {
    fn default() -> Self {
        EdgeAdminConfig { listen: "127.0.0.1:9091".parse().expect("static address") }
    }
}

/// Where the edge pulls channels from (an origin's or a shield edge's relay listener).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub addr: SocketAddr,
    /// The name in the upstream's certificate (its node name).
    pub server_name: String,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            addr: "127.0.0.1:4433".parse().expect("static address"),
            server_name: "origin-1".into(),
        }
    }
}

/// The edge's own relay listener, for lower-tier edges.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeRelayConfig {
    /// UDP address; unset: no lower tier can use this edge.
    pub listen: Option<SocketAddr>,
}

/// VOD playback of recordings: a cache of recording files fetched from origins.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeVodConfig {
    /// Bytes of recording files (segments, init segments, playlists) kept in memory.
    pub cache_bytes: u64,
    /// Seconds a recording's catalog entry (and the origin list) is remembered; a deletion
    /// takes at most this long to reach the edge (a channel turned private: see
    /// [`crate::policy`]).
    pub catalog_cache_seconds: u64,
    /// Longest fetch of one file from an origin, in milliseconds.
    pub fetch_timeout_ms: u64,
}

impl Default for EdgeVodConfig {
    fn default() -> Self {
        EdgeVodConfig { cache_bytes: 256 << 20, catalog_cache_seconds: 5, fetch_timeout_ms: 10_000 }
    }
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("window_segments", self.window_segments, 3, 1000)?;
        check_range("max_channels", self.max_channels, 1, 1_000_000)?;
        check_range("idle_unsubscribe_seconds", self.idle_unsubscribe_seconds, 1, 86_400)?;
        check_range("negative_cache_seconds", self.negative_cache_seconds, 0, 600)?;
        check_range("drain_seconds", self.drain_seconds, 0, 600)?;
        self.cache.validate()?;
        check_range("vod.cache_bytes", self.vod.cache_bytes, 1 << 20, 1 << 40)?;
        check_range("vod.catalog_cache_seconds", self.vod.catalog_cache_seconds, 0, 3600)?;
        check_range("vod.fetch_timeout_ms", self.vod.fetch_timeout_ms, 100, 600_000)?;
        self.control_plane.resolve()?;
        if self.upstream.server_name.is_empty() {
            return Err(ConfigError::invalid(
                "upstream.server_name",
                "the upstream's certificate name is required",
            ));
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(ConfigError::invalid(
                "http.tls_cert",
                "set both http.tls_cert and http.tls_key, or neither",
            ));
        }
        self.http.delivery.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message } => {
                ConfigError::invalid(format!("http.delivery.{key}"), message)
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyrelay_common::config::from_toml;

    #[test]
    fn example_config_parses() {
        let cfg: EdgeConfig = from_toml(include_str!("../../config/edge.toml")).unwrap();
        assert_eq!(cfg.upstream.server_name, "origin-1");
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_toml::<EdgeConfig>("window_segments = 1").unwrap_err().to_string();
        assert!(err.contains("window_segments"), "{err}");
        let err = from_toml::<EdgeConfig>("[http.delivery]\nmax_connections = 0").unwrap_err().to_string();
        assert!(err.contains("http.delivery.max_connections"), "{err}");
        let err = from_toml::<EdgeConfig>("[vod]\ncache_bytes = 10").unwrap_err().to_string();
        assert!(err.contains("vod.cache_bytes"), "{err}");
        let err = from_toml::<EdgeConfig>("[cache]\ncapacity_bytes = 1000").unwrap_err().to_string();
        assert!(err.contains("cache.capacity_bytes"), "{err}");
        let toml = "[cache]\ncapacity_bytes = 67108864\nwindow_bytes = 67108864";
        let err = from_toml::<EdgeConfig>(toml).unwrap_err().to_string();
        assert!(err.contains("cache.window_bytes"), "{err}");
    }
}
