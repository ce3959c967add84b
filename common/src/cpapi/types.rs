//! Request and response bodies of the control-plane API (JSON). The control plane and the
//! nodes both use these, so the two sides cannot drift apart.

use serde::{Deserialize, Serialize};

/// The body of every error response: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}

/// What a node is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Origin,
    Edge,
}

impl NodeRole {
    /// The lowercase name used on the wire, in the store and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Origin => "origin",
            NodeRole::Edge => "edge",
        }
    }
}

/// `POST /v1/nodes`: a node announces itself (again after every restart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegisterNode {
    /// Unique, stable node name (`[a-z0-9._-]`, 1–64 characters).
    pub name: String,
    pub role: NodeRole,
    pub region: String,
    /// Base URL viewers (edges) or edges (origins) fetch HLS from, e.g. `http://10.0.0.5:8080`.
    pub public_url: String,
    /// Origins: the RTMP ingest base URL streamers publish to, e.g. `rtmp://10.0.0.5:1935/live`.
    #[serde(default)]
    pub rtmp_url: Option<String>,
    /// The QUIC relay address (`host:port`) other nodes subscribe to.
    #[serde(default)]
    pub relay_addr: Option<String>,
}

/// Answer to [`RegisterNode`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeRegistered {
    pub name: String,
    /// How often the node should heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// `POST /v1/nodes/{name}/heartbeat`: the node's current load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    #[serde(default)]
    pub viewers: u64,
    #[serde(default)]
    pub egress_bps: u64,
    /// CPU use, 0.0–1.0 per core summed (so up to the number of cores).
    #[serde(default)]
    pub cpu: f64,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// False when the control plane does not know the node (e.g. its store was reset):
    /// the node should register again.
    pub known: bool,
}

/// `POST /v1/publish/authorize`: an origin asks who owns a stream key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizePublish {
    pub stream_key: String,
    /// The asking origin's node name.
    pub node: String,
}

/// Answer to [`AuthorizePublish`]: the channel and its policy. The origin caches it for the
/// whole publishing session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishGrant {
    pub channel: String,
    pub private: bool,
    pub recording: bool,
}

/// `POST /v1/live` and `POST /v1/live/ended`: an origin reports a channel's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LiveReport {
    pub channel: String,
    pub node: String,
}

/// A node as other nodes need to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeAddress {
    pub name: String,
    pub region: String,
    pub public_url: String,
    pub relay_addr: Option<String>,
    pub healthy: bool,
}

/// `GET /v1/nodes` (admin or node): a registered node and its last heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    pub role: NodeRole,
    pub region: String,
    pub public_url: String,
    pub rtmp_url: Option<String>,
    pub relay_addr: Option<String>,
    /// Heartbeats arrive in time.
    pub healthy: bool,
    /// Unix milliseconds.
    pub last_heartbeat: i64,
    pub viewers: i64,
    pub egress_bps: i64,
    pub cpu: f64,
}

/// `GET /v1/channels/{name}/where?version=V&wait=MS`: where a channel is live. With `wait`,
/// the answer is held until the version differs from `version` or the wait ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhereIsChannel {
    pub channel: String,
    /// The origin carrying the channel; `None` while it is not live.
    pub origin: Option<NodeAddress>,
    /// Bumps on every change of this channel's live state.
    pub version: u64,
    /// Whether playback needs a token (edges refuse requests without one).
    #[serde(default)]
    pub private: bool,
    /// With `?region=R`: the channel's shield edge in R (the first healthy edge of R on the
    /// channel's hash ring), which the region's other edges pull through.
    #[serde(default)]
    pub shield: Option<NodeAddress>,
}

/// One public key of the playback-token key set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Always `OKP` (JWK key type of Ed25519).
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// Always `EdDSA`.
    pub alg: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// Unix seconds after which tokens signed by this key are refused (a rotated-out key's
    /// grace period end); `None` for current keys.
    pub not_after: Option<i64>,
}

/// A per-channel revocation: tokens of `channel` issued before `not_before` are refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Revocation {
    pub channel: String,
    /// Unix seconds.
    pub not_before: i64,
}

/// `GET /v1/keys`: the JWKS-style key set edges verify playback tokens with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<PublicKey>,
    pub revocations: Vec<Revocation>,
    /// How often edges should fetch the set again.
    pub refresh_secs: u64,
}

/// `GET /v1/route/ingest`: where a streamer should publish.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IngestRoute {
    /// The RTMP base URL; publish to `{url}/{stream key}`.
    pub url: String,
    pub node: String,
    pub region: String,
}

/// `GET /v1/route/play/{channel}`: where a viewer should play a channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlayRoute {
    pub channel: String,
    /// The master playlist URL on the chosen edge, with `?token=` for private channels.
    pub url: String,
    pub edge: String,
    pub region: String,
    /// The playback token (private channels only).
    pub token: Option<String>,
    /// Unix seconds; the token's expiry.
    pub expires_at: Option<i64>,
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// The channel is live and being recorded.
    Recording,
    /// The stream ended; objects are still being uploaded.
    Uploading,
    /// Every captured segment is stored with its playlist.
    Complete,
    /// Stored with gaps or nothing at all; `reason` says why.
    Partial,
}

impl RecordingStatus {
    /// The lowercase name used in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Uploading => "uploading",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Partial => "partial",
        }
    }

    /// Parses [`RecordingStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "recording" => RecordingStatus::Recording,
            "uploading" => RecordingStatus::Uploading,
            "complete" => RecordingStatus::Complete,
            "partial" => RecordingStatus::Partial,
            _ => return None,
        })
    }
}

/// `PUT /v1/recordings`: an origin reports a recording's state (created or updated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordingReport {
    pub channel: String,
    /// The recording id within the channel (`YYYYMMDDTHHMMSSZ`, its start time).
    pub recording: String,
    /// The reporting origin.
    pub node: String,
    /// Unix milliseconds.
    pub started_ms: i64,
    /// Unix milliseconds; `None` while recording.
    #[serde(default)]
    pub ended_ms: Option<i64>,
    pub duration_ms: i64,
    /// Bytes of media (segments and init segments).
    pub bytes: i64,
    pub segment_count: i64,
    pub status: RecordingStatus,
    /// Why a recording is partial.
    #[serde(default)]
    pub reason: Option<String>,
    /// Where the objects are (e.g. `s3://bucket/prefix` or a directory).
    pub location: String,
    /// The VOD playlist's object key, relative to `location`.
    pub playlist: String,
}

/// A recording in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recording {
    /// Catalog id: `{channel}-{recording}`; also the VOD path (`/vod/{id}/index.m3u8`).
    pub id: String,
    pub channel: String,
    pub recording: String,
    pub node: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: i64,
    pub bytes: i64,
    pub segment_count: i64,
    pub status: RecordingStatus,
    pub reason: Option<String>,
    pub location: String,
    pub playlist: String,
    /// Unix milliseconds when deletion was requested; the objects are removed by the origin
    /// that stored them, which then drops the entry.
    pub deleted_at: Option<i64>,
    pub updated_at: i64,
}
