//! Where an edge gets a recording from: its catalog entry and the origins' HTTP addresses
//! from the control plane (both cached briefly, lookups coalesced), and the bytes from an
//! origin's `/vod/{id}/{file}` over HTTP.
//!
//! The origin that stored the recording is asked first; when it fails (down, 5xx), the
//! other healthy origins are tried, which finds recordings in a shared store (S3) after
//! their origin is gone. A 404 from the storing origin is final.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use moka::future::Cache;
use skyrelay_common::cpapi::{
    ClientError, ControlPlaneClient, NodeRole, NodeStatus, Recording, RecordingStatus,
};
use skyrelay_common::delivery::VodError;
use tracing::debug;

/// Largest recording object fetched (segments are a few MB).
pub const MAX_OBJECT_BYTES: usize = 64 << 20;
/// Most origins tried for one object.
const MAX_ATTEMPTS: usize = 3;
/// Catalog entries remembered (including "not found").
const CATALOG_ENTRIES: u64 = 10_000;

/// Catalog and node lookups plus origin fetches.
pub struct Origins {
    cp: ControlPlaneClient,
    http: Client<HttpConnector, Empty<Bytes>>,
    fetch_timeout: Duration,
    catalog: Cache<String, Option<Arc<Recording>>>,
    nodes: Cache<(), Arc<Vec<NodeStatus>>>,
}

fn cp_error(what: &str, e: &ClientError) -> VodError {
    VodError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("cannot read the {what} from the control plane: {e}"),
        denied: false,
    }
}

impl Origins {
    /// Lookups through `cp`, remembered for `ttl`; each origin fetch ends after `fetch_timeout`.
    pub fn new(cp: ControlPlaneClient, ttl: Duration, fetch_timeout: Duration) -> Self {
        let ttl = ttl.max(Duration::from_millis(1));
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(3)));
        connector.set_nodelay(true);
        Origins {
            cp,
            http: Client::builder(TokioExecutor::new()).build(connector),
            fetch_timeout,
            catalog: Cache::builder().max_capacity(CATALOG_ENTRIES).time_to_live(ttl).build(),
            nodes: Cache::builder().max_capacity(1).time_to_live(ttl).build(),
        }
    }

    /// The catalog entry of `id`, if it can be played (complete or partial).
    pub async fn recording(&self, id: &str) -> Result<Arc<Recording>, VodError> {
        let entry = self
            .catalog
            .try_get_with_by_ref(id, async {
                match self.cp.recording(id).await {
                    Ok(r) => Ok(Some(Arc::new(r))),
                    Err(ClientError::Refused { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
                    Err(e) => Err(cp_error("recordings catalog", &e)),
                }
            })
            .await
            .map_err(|e| (*e).clone())?;
        let Some(rec) = entry else {
            return Err(VodError::not_found(format!("unknown recording {id:?}")));
        };
        match rec.status {
            RecordingStatus::Complete | RecordingStatus::Partial => Ok(rec),
            RecordingStatus::Recording | RecordingStatus::Uploading => Err(VodError::not_found(format!(
                "recording {id} is not finished yet ({})",
                rec.status.as_str()
            ))),
        }
    }

    /// Origins to ask for `rec`, best first.
    async fn candidates(&self, rec: &Recording) -> Result<Vec<NodeStatus>, VodError> {
        let nodes = self
            .nodes
            .try_get_with((), async {
                self.cp.nodes().await.map(Arc::new).map_err(|e| cp_error("node list", &e))
            })
            .await
            .map_err(|e| (*e).clone())?;
        let origins = nodes.iter().filter(|n| n.role == NodeRole::Origin);
        let mut out: Vec<NodeStatus> = origins.clone().filter(|n| n.name == rec.node).cloned().collect();
        out.extend(origins.filter(|n| n.name != rec.node && n.healthy).cloned());
        out.truncate(MAX_ATTEMPTS);
        Ok(out)
    }

    /// `file` of recording `rec` from the first origin that has it.
    pub async fn fetch(&self, rec: &Recording, file: &str) -> Result<Bytes, VodError> {
        let candidates = self.candidates(rec).await?;
        if candidates.is_empty() {
            return Err(VodError::unavailable(format!("no origin can serve recording {}", rec.id)));
        }
        let mut last = None;
        for node in &candidates {
            let url = format!("{}/vod/{}/{file}", node.public_url.trim_end_matches('/'), rec.id);
            match self.get(&url).await {
                Ok(body) => return Ok(body),
                Err(e) if e.status == StatusCode::NOT_FOUND && node.name == rec.node => return Err(e),
                Err(e) => {
                    debug!(%url, error = %e, "recording fetch failed; trying the next origin");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| VodError::unavailable("no origin answered")))
    }

    async fn get(&self, url: &str) -> Result<Bytes, VodError> {
        if !url.starts_with("http://") {
            return Err(VodError::unavailable(format!("origin URL {url} is not plain http")));
        }
        let req = Request::get(url)
            .body(Empty::new())
            .map_err(|e| VodError::unavailable(format!("bad origin URL {url}: {e}")))?;
        let fetch = async {
            let resp =
                self.http.request(req).await.map_err(|e| VodError::unavailable(format!("{url}: {e}")))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_OBJECT_BYTES)
                .collect()
                .await
                .map_err(|e| VodError::unavailable(format!("{url}: {e}")))?
                .to_bytes();
            match status {
                StatusCode::OK => Ok(body),
                StatusCode::NOT_FOUND => {
                    let msg = String::from_utf8_lossy(&body).trim().chars().take(200).collect::<String>();
                    Err(VodError::not_found(if msg.is_empty() { "not found".into() } else { msg }))
                }
                other => Err(VodError::unavailable(format!("origin answered {other} for {url}"))),
            }
        };
        tokio::time::timeout(self.fetch_timeout, fetch)
            .await
            .map_err(|_| VodError::unavailable(format!("{url}: timed out")))?
    }
}
