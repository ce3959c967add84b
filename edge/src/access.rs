//! Playback access at the edge: public channels pass; private channels need a playback
//! token that verifies locally against the control plane's published keys (the edge can
//! verify but never mint, and keeps verifying while the control plane is down).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use skyrelay_common::cpapi::{KeyRing, check_playback};
use skyrelay_common::delivery::{Access, BoxFuture, Denied};
use tokio::sync::watch;

use crate::upstream::UpstreamSource;

/// The edge's [`Access`] hook.
pub struct TokenAccess {
    pub source: Arc<UpstreamSource>,
    pub keys: watch::Receiver<Arc<KeyRing>>,
    pub region: String,
}

impl Access for TokenAccess {
    fn check<'a>(
        &'a self,
        channel: &'a str,
        query_token: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<Option<String>, Denied>> {
        Box::pin(async move {
            let private = self.source.is_private(channel).await.map_err(|e| Denied {
                status: StatusCode::SERVICE_UNAVAILABLE,
                reason: format!("cannot learn the channel's access policy: {e}"),
            })?;
            if !private {
                return Ok(None);
            }
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
            let ring = self.keys.borrow().clone();
            match check_playback(&ring, true, query_token, channel, Some(client), Some(&self.region), now) {
                Ok(_) => Ok(query_token.map(str::to_owned)),
                Err(e) => Err(Denied { status: StatusCode::FORBIDDEN, reason: e.reason().to_string() }),
            }
        })
    }
}
