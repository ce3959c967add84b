//! Tokio helpers a node runs next to its work: the registration + heartbeat loop, the key
//! set refresher edges verify with, and the playback check itself.
//!
//! Both loops keep going through control-plane outages (the last good state stays in
//! effect) and end when their shutdown watch flips.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::client::ControlPlaneClient;
use super::token::{KeyRing, PlaybackClaims, Presented, TokenError};
use super::types::{Heartbeat, RegisterNode};

/// Delay before retrying after a failed call.
const RETRY: Duration = Duration::from_secs(2);

/// Registers `node`, then heartbeats at the interval the control plane names, with the
/// load `load()` reports. Registers again whenever the control plane does not know the
/// node (e.g. after its store was reset) and after failed calls.
pub async fn heartbeat_loop(
    client: ControlPlaneClient,
    node: RegisterNode,
    load: impl Fn() -> Heartbeat + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut registered: Option<Duration> = None;
    loop {
        let wait = match registered {
            None => match client.register(&node).await {
                Ok(r) => {
                    tracing::info!(node = %node.name, "registered with the control plane");
                    let every = Duration::from_millis(r.heartbeat_interval_ms.clamp(100, 60_000));
                    registered = Some(every);
                    every
                }
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "control-plane registration failed");
                    RETRY
                }
            },
            Some(every) => match client.heartbeat(&node.name, &load()).await {
                Ok(ack) if ack.known => every,
                Ok(_) => {
                    registered = None;
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(node = %node.name, error = %e, "heartbeat failed");
                    registered = None;
                    RETRY.min(every)
                }
            },
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

/// Fetches the key set now and then every `refresh_secs` it names, publishing each new
/// [`KeyRing`] on the returned watch. Until the first successful fetch the ring is empty
/// (private channels are refused); after that, a failed fetch keeps the last ring.
pub fn spawn_key_refresher(
    client: ControlPlaneClient,
    mut shutdown: watch::Receiver<bool>,
) -> (watch::Receiver<Arc<KeyRing>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(KeyRing::new(&Default::default())));
    let task = tokio::spawn(async move {
        loop {
            let wait = match client.keys().await {
                Ok(set) => {
                    let _ = tx.send(Arc::new(KeyRing::new(&set)));
                    Duration::from_secs(set.refresh_secs.clamp(1, 3600))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "key set refresh failed; keeping the last one");
                    RETRY
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    });
    (rx, task)
}

/// The playback decision of an edge: public channels pass; private channels need a token
/// that verifies for this channel, client and region at `now` (unix seconds).
pub fn check_playback(
    ring: &KeyRing,
    private: bool,
    token: Option<&str>,
    channel: &str,
    client_ip: Option<IpAddr>,
    region: Option<&str>,
    now: i64,
) -> Result<Option<PlaybackClaims>, TokenError> {
    if !private {
        return Ok(None);
    }
    let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
    ring.verify(token, Presented { channel, client_ip, region }, now).map(Some)
}
