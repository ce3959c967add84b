//! The origin's typed configuration (`skyrelay origin --config origin.toml`).
//!
//! Every field has a default that runs on one machine; `config/origin.toml` is the
//! commented example. Environment overrides use `SKYRELAY_` + the key path with `__`
//! between levels, e.g. `SKYRELAY_RTMP__LISTEN=0.0.0.0:1935`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use skyrelay_common::config::{ConfigError, NodeControlPlaneConfig, Validate, check_range};

/// Everything an origin needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Name of this node in logs and the cluster.
    pub node_name: String,
    /// Region this origin serves.
    pub region: String,
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub packager: PackagerSettings,
    pub relay: RelaySettings,
    /// Recording of live sessions (off by default).
    pub recording: RecordingSettings,
    /// The control plane that authorises publishes and learns where channels are live.
    pub control_plane: NodeControlPlaneConfig,
    /// Stream keys accepted until a control plane is configured.
    pub keys: Vec<StreamKeyEntry>,
    /// Seconds to wait for connections to finish on shutdown.
    pub drain_seconds: u64,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            node_name: "origin-1".into(),
            region: "local".into(),
            rtmp: RtmpConfig::default(),
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            packager: PackagerSettings::default(),
            relay: RelaySettings::default(),
            recording: RecordingSettings::default(),
            control_plane: NodeControlPlaneConfig::default(),
            keys: Vec::new(),
            drain_seconds: 5,
        }
    }
}

/// What happens when a second publisher arrives for a channel that is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// The newcomer gets `NetStream.Publish.BadName` and is disconnected.
    Refuse,
    /// The live publisher is disconnected and the newcomer takes over.
    Replace,
}

/// RTMP ingest listener and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    pub listen: SocketAddr,
    /// Concurrent RTMP connections (publishing or not).
    pub max_connections: usize,
    /// Concurrent live channels (publishers).
    pub max_publishers: usize,
    /// Largest chunk size a client may set.
    pub max_chunk_size: u32,
    /// Largest RTMP message accepted.
    pub max_message_size: u32,
    /// Seconds allowed from TCP accept to an accepted publish.
    pub handshake_timeout_seconds: u64,
    /// Seconds without any byte from a client before it is dropped.
    pub idle_timeout_seconds: u64,
    pub on_conflict: OnConflict,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: "127.0.0.1:1935".parse().expect("static address"),
            max_connections: 1024,
            max_publishers: 256,
            max_chunk_size: 65_536,
            max_message_size: 8 * 1024 * 1024,
            handshake_timeout_seconds: 10,
            idle_timeout_seconds: 30,
            on_conflict: OnConflict::Refuse,
        }
    }
}

/// The origin's own HLS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain and key; both set enables HTTPS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
        }
    }
}

/// Prometheus metrics and health checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: "127.0.0.1:9090".parse().expect("static address") }
    }
}

/// Packaging: part and segment durations, live window length.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagerSettings {
    pub part_target_ms: u32,
    pub segment_target_ms: u32,
    /// Complete segments kept per rendition.
    pub window_segments: usize,
}

impl Default for PackagerSettings {
    fn default() -> Self {
        PackagerSettings { part_target_ms: 333, segment_target_ms: 2000, window_segments: 6 }
    }
}

/// The relay server edges subscribe to (QUIC, mutual TLS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySettings {
    /// UDP address; unset disables the relay server.
    pub listen: Option<SocketAddr>,
    /// Directory holding `ca.pem`, `node.pem`, `node.key` (`skyrelay cluster-ca`).
    pub cert_dir: Option<PathBuf>,
}

/// `[recording]`: spool to local disk, upload to storage (see `crate::recorder`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSettings {
    pub enabled: bool,
    /// Channels to record; empty records every channel.
    pub channels: Vec<String>,
    /// Local spool (fsync'd segments waiting for upload; kept across restarts).
    pub spool_dir: PathBuf,
    /// Bound of the spool; past it new segments are dropped (and the recording is partial).
    pub max_spool_bytes: u64,
    /// A publisher back within this many seconds continues the same recording.
    pub reconnect_gap_seconds: u64,
    /// Longest wait between upload retries.
    pub max_retry_backoff_seconds: u64,
    pub storage: StorageSettings,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            enabled: false,
            channels: Vec::new(),
            spool_dir: "data/recording-spool".into(),
            max_spool_bytes: 10 * 1024 * 1024 * 1024,
            reconnect_gap_seconds: 30,
            max_retry_backoff_seconds: 10,
            storage: StorageSettings::default(),
        }
    }
}

/// `[recording.storage]`: `kind = "local"` (with `dir`) or `kind = "s3"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StorageSettings {
    /// Objects in a local directory.
    Local { dir: PathBuf },
    /// Objects in an S3 bucket (or an S3-compatible server).
    S3(S3Settings),
}

impl Default for StorageSettings {
    fn default() -> Self {
        StorageSettings::Local { dir: "data/recordings".into() }
    }
}

/// S3 (or S3-compatible) storage.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for an S3-compatible server; unset uses AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    /// Both set: static credentials; else the standard AWS chain (environment, profile,
    /// web identity, instance metadata).
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_request_timeout() -> u64 {
    30
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RecordingSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("recording.max_spool_bytes", self.max_spool_bytes, 16 * 1024 * 1024, u64::MAX)?;
        check_range("recording.reconnect_gap_seconds", self.reconnect_gap_seconds, 0, 3600)?;
        check_range("recording.max_retry_backoff_seconds", self.max_retry_backoff_seconds, 1, 600)?;
        if self.spool_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("recording.spool_dir", "must not be empty"));
        }
        for (i, c) in self.channels.iter().enumerate() {
            if !valid_channel_name(c) {
                return Err(ConfigError::invalid(
                    format!("recording.channels[{i}]"),
                    format!("{c:?} is not a channel name"),
                ));
            }
        }
        match &self.storage {
            StorageSettings::Local { dir } if dir.as_os_str().is_empty() => {
                Err(ConfigError::invalid("recording.storage.dir", "must not be empty"))
            }
            StorageSettings::Local { .. } => Ok(()),
            StorageSettings::S3(s3) => {
                if s3.bucket.is_empty() {
                    return Err(ConfigError::invalid("recording.storage.bucket", "must not be empty"));
                }
                if s3.access_key.is_some() != s3.secret_key.is_some() {
                    return Err(ConfigError::invalid(
                        "recording.storage.access_key",
                        "set both access_key and secret_key, or neither (the standard AWS chain)",
                    ));
                }
                if let Some(e) = &s3.endpoint
                    && !(e.starts_with("http://") || e.starts_with("https://"))
                {
                    return Err(ConfigError::invalid(
                        "recording.storage.endpoint",
                        "must be an http:// or https:// URL",
                    ));
                }
                check_range("recording.storage.request_timeout_seconds", s3.request_timeout_seconds, 1, 3600)
            }
        }
    }
}

/// A stream key and the channel it publishes to.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamKeyEntry {
    pub key: String,
    pub channel: String,
}

impl std::fmt::Debug for StreamKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamKeyEntry").field("key", &"<redacted>").field("channel", &self.channel).finish()
    }
}

/// Channel names are URL path segments: keep them boring.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Validate for OriginConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("rtmp.max_connections", self.rtmp.max_connections, 1, 1_000_000)?;
        check_range("rtmp.max_publishers", self.rtmp.max_publishers, 1, 100_000)?;
        check_range("rtmp.max_chunk_size", self.rtmp.max_chunk_size, 128, 16 * 1024 * 1024)?;
        check_range("rtmp.max_message_size", self.rtmp.max_message_size, 64 * 1024, 64 * 1024 * 1024)?;
        check_range("rtmp.handshake_timeout_seconds", self.rtmp.handshake_timeout_seconds, 1, 600)?;
        check_range("rtmp.idle_timeout_seconds", self.rtmp.idle_timeout_seconds, 1, 3600)?;
        check_range("http.max_connections", self.http.max_connections, 1, 1_000_000)?;
        check_range("packager.part_target_ms", self.packager.part_target_ms, 100, 1000)?;
        check_range("packager.segment_target_ms", self.packager.segment_target_ms, 500, 10_000)?;
        if self.packager.segment_target_ms < self.packager.part_target_ms {
            return Err(ConfigError::invalid(
                "packager.segment_target_ms",
                "must be at least packager.part_target_ms",
            ));
        }
        check_range("packager.window_segments", self.packager.window_segments, 3, 1000)?;
        check_range("drain_seconds", self.drain_seconds, 0, 600)?;
        self.recording.validate()?;
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(ConfigError::invalid(
                "http.tls_cert",
                "set both http.tls_cert and http.tls_key, or neither",
            ));
        }
        if self.relay.listen.is_some() && self.relay.cert_dir.is_none() {
            return Err(ConfigError::invalid(
                "relay.cert_dir",
                "the relay needs cluster certificates: run `skyrelay cluster-ca init` and `issue`",
            ));
        }
        self.control_plane.resolve()?;
        for (i, entry) in self.keys.iter().enumerate() {
            if entry.key.len() < 8 {
                return Err(ConfigError::invalid(
                    format!("keys[{i}].key"),
                    "a stream key needs at least 8 characters",
                ));
            }
            if !valid_channel_name(&entry.channel) {
                return Err(ConfigError::invalid(
                    format!("keys[{i}].channel"),
                    format!("{:?} is not a channel name (1-64 of A-Z a-z 0-9 - _)", entry.channel),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyrelay_common::config::from_toml;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../config/origin.toml");
        let cfg: OriginConfig = from_toml(text).unwrap();
        assert_eq!(cfg.keys.len(), 1);
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_toml::<OriginConfig>("[packager]\npart_target_ms = 50").unwrap_err().to_string();
        assert!(err.contains("packager.part_target_ms"), "{err}");
        let err = from_toml::<OriginConfig>("[[keys]]\nkey = \"abcdefgh\"\nchannel = \"a/b\"").unwrap_err();
        assert!(err.to_string().contains("keys[0].channel"), "{err}");
        let err = from_toml::<OriginConfig>("[rtmp]\nlisten = \"x\"").unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let err = from_toml::<OriginConfig>("[rtmp]\nlisen = \"127.0.0.1:1\"").unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }
}
