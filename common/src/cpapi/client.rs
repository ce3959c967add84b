//! A small HTTP/1.1 client for the node-facing control-plane calls.
//!
//! Every call has a timeout; the long-poll adds its wait to it. Errors say whether the
//! control plane answered (and refused) or could not be reached, so callers can keep a
//! cached answer through an outage.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::NODE_AUTH_SCHEME;
use super::types::*;

/// Largest response body accepted.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A failed control-plane call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The control plane answered with an error status (e.g. 403 for an unknown key).
    #[error("control plane refused ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    /// It could not be reached or did not answer in time.
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    /// It answered something that is not the expected JSON.
    #[error("bad control-plane response: {0}")]
    BadResponse(String),
    /// The base URL or a path parameter does not form a valid URL.
    #[error("invalid request URL: {0}")]
    InvalidUrl(String),
}

impl ClientError {
    /// Whether the control plane itself refused (as opposed to being unreachable).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. })
    }
}

/// The node side of the control-plane API.
#[derive(Clone)]
pub struct ControlPlaneClient {
    base: String,
    auth: String,
    timeout: Duration,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl ControlPlaneClient {
    /// A client for the control plane at `base_url` (e.g. `http://127.0.0.1:8900`),
    /// authenticating with the cluster node secret.
    pub fn new(base_url: &str, node_secret: &str) -> Self {
        ControlPlaneClient {
            base: base_url.trim_end_matches('/').to_string(),
            auth: format!("{NODE_AUTH_SCHEME} {node_secret}"),
            timeout: Duration::from_secs(5),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sets the per-call timeout (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Registers (or re-registers) this node.
    pub async fn register(&self, node: &RegisterNode) -> Result<NodeRegistered, ClientError> {
        self.call(Method::POST, "/v1/nodes".into(), Some(node), self.timeout).await
    }

    /// Sends a heartbeat with the node's load.
    pub async fn heartbeat(&self, node: &str, load: &Heartbeat) -> Result<HeartbeatAck, ClientError> {
        let path = format!("/v1/nodes/{}/heartbeat", segment(node)?);
        self.call(Method::POST, path, Some(load), self.timeout).await
    }

    /// Asks which channel a stream key publishes to, and its policy.
    pub async fn authorize_publish(&self, stream_key: &str, node: &str) -> Result<PublishGrant, ClientError> {
        let body = AuthorizePublish { stream_key: stream_key.into(), node: node.into() };
        self.call(Method::POST, "/v1/publish/authorize".into(), Some(&body), self.timeout).await
    }

    /// Reports `channel` live on origin `node`.
    pub async fn report_live(&self, channel: &str, node: &str) -> Result<WhereIsChannel, ClientError> {
        let body = LiveReport { channel: channel.into(), node: node.into() };
        self.call(Method::POST, "/v1/live".into(), Some(&body), self.timeout).await
    }

    /// Reports that `channel` ended on origin `node`.
    pub async fn report_ended(&self, channel: &str, node: &str) -> Result<WhereIsChannel, ClientError> {
        let body = LiveReport { channel: channel.into(), node: node.into() };
        self.call(Method::POST, "/v1/live/ended".into(), Some(&body), self.timeout).await
    }

    /// Where `channel` is live. With `known_version` and `wait`, the control plane holds the
    /// answer until the version changes or `wait` passes (long-poll).
    pub async fn where_is(
        &self,
        channel: &str,
        known_version: Option<u64>,
        wait: Duration,
    ) -> Result<WhereIsChannel, ClientError> {
        let mut path = format!("/v1/channels/{}/where?wait={}", segment(channel)?, wait.as_millis());
        if let Some(v) = known_version {
            path.push_str(&format!("&version={v}"));
        }
        self.call::<(), _>(Method::GET, path, None, self.timeout + wait).await
    }

    /// Fetches the playback-token key set.
    pub async fn keys(&self) -> Result<KeySet, ClientError> {
        self.call::<(), _>(Method::GET, "/v1/keys".into(), None, self.timeout).await
    }

    /// Reports (creates or updates) a recording in the catalog.
    pub async fn report_recording(&self, report: &RecordingReport) -> Result<Recording, ClientError> {
        self.call(Method::PUT, "/v1/recordings".into(), Some(report), self.timeout).await
    }

    /// Recordings stored by origin `node` that users deleted: remove their objects, then
    /// call [`ControlPlaneClient::recording_purged`].
    pub async fn deleted_recordings(&self, node: &str) -> Result<Vec<Recording>, ClientError> {
        let path = format!("/v1/nodes/{}/deleted-recordings", segment(node)?);
        self.call::<(), _>(Method::GET, path, None, self.timeout).await
    }

    /// Confirms that the objects of deleted recording `id` are gone (drops its entry).
    pub async fn recording_purged(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/recordings/{}/purged", segment(id)?);
        self.call_empty(Method::POST, path).await
    }

    /// The catalog entry of recording `id` (`{channel}-{recording}`); deleted recordings
    /// are 404.
    pub async fn recording(&self, id: &str) -> Result<Recording, ClientError> {
        let path = format!("/v1/recordings/{}", segment(id)?);
        self.call::<(), _>(Method::GET, path, None, self.timeout).await
    }

    /// Every registered node with its health (edges find origins' HTTP addresses here).
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, ClientError> {
        self.call::<(), _>(Method::GET, "/v1/nodes".into(), None, self.timeout).await
    }

    /// A call whose success answer has no body (204).
    async fn call_empty(&self, method: Method, path: String) -> Result<(), ClientError> {
        match self.call::<(), serde::de::IgnoredAny>(method, path, None, self.timeout).await {
            Ok(_) => Ok(()),
            Err(ClientError::BadResponse(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<R, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::InvalidUrl(e.to_string()))?,
            None => Vec::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))?;
        let fut = async {
            let resp = self.http.request(req).await.map_err(|e| ClientError::Unreachable(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok::<_, ClientError>((status, body))
        };
        let (status, body) = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Unreachable("timed out".into()))??;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(ClientError::Refused { status, message });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }
}

/// Checks a path segment: names are plain (`[A-Za-z0-9._-]`), so no escaping is needed.
fn segment(s: &str) -> Result<&str, ClientError> {
    let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(s).ok_or_else(|| ClientError::InvalidUrl(format!("invalid name `{s}`")))
}
