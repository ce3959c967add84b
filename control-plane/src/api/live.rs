//! The live registry as nodes use it: publish authorisation, live/ended reports, and the
//! where-is long-poll. All node-authenticated; stream keys are never logged.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use skyrelay_common::cpapi::{
    AuthorizePublish, LiveReport, NodeAddress, NodeRole, PublishGrant, WhereIsChannel,
};

use crate::auth::{self, NodeAuth};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, check_name};
use crate::routing;
use crate::state::AppState;
use crate::store::live::LiveEntry;
use crate::store::nodes::Node;
use crate::store::now_ms;

/// How often a waiting long-poll re-reads the store (changes made by another control
/// plane on the same database do not wake it otherwise).
const REPOLL: Duration = Duration::from_secs(1);

/// `POST /v1/publish/authorize`.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiJson(body): ApiJson<AuthorizePublish>,
) -> Result<Json<PublishGrant>, ApiError> {
    check_name("node name", &body.node)?;
    if body.stream_key.is_empty() || body.stream_key.len() > 256 {
        return Err(ApiError::Forbidden("unknown or revoked stream key".into()));
    }
    let hash = auth::hash_secret(&body.stream_key);
    match state.store.channel_by_key_hash(&hash).await? {
        Some((ch, stored)) if auth::ct_eq(&stored, &hash) => {
            tracing::info!(channel = %ch.name, node = %body.node, "publish authorised");
            Ok(Json(PublishGrant { channel: ch.name, private: ch.private, recording: ch.recording }))
        }
        _ => {
            tracing::info!(node = %body.node, "publish refused: unknown or revoked stream key");
            Err(ApiError::Forbidden("unknown or revoked stream key".into()))
        }
    }
}

fn address(n: Node, state: &AppState) -> NodeAddress {
    NodeAddress {
        healthy: n.healthy(now_ms(), state.node_timeout_ms()),
        name: n.name,
        region: n.region,
        public_url: n.public_url,
        relay_addr: n.relay_addr,
    }
}

async fn answer(
    state: &AppState,
    channel: &str,
    entry: Option<LiveEntry>,
) -> Result<WhereIsChannel, ApiError> {
    let version = entry.as_ref().map_or(0, |e| u64::try_from(e.version).unwrap_or(0));
    let origin = match entry.and_then(|e| e.node) {
        Some(name) => state.store.node(&name).await?.map(|n| address(n, state)),
        None => None,
    };
    let private = state.store.channel(channel).await?.is_some_and(|c| c.private);
    Ok(WhereIsChannel { channel: channel.to_string(), origin, version, private, shield: None })
}

async fn report(state: &AppState, body: &LiveReport, live: bool) -> Result<WhereIsChannel, ApiError> {
    check_name("channel name", &body.channel)?;
    check_name("node name", &body.node)?;
    let node = state.store.node(&body.node).await?.ok_or(ApiError::NotFound("node (register first)"))?;
    if node.role != NodeRole::Origin {
        return Err(ApiError::Forbidden("only origins report live channels".into()));
    }
    if state.store.channel(&body.channel).await?.is_none() {
        return Err(ApiError::NotFound("channel"));
    }
    let entry = if live {
        state.store.set_live(&body.channel, Some(&body.node), None, now_ms()).await?
    } else {
        let e = state.store.set_live(&body.channel, None, Some(&body.node), now_ms()).await?;
        if e.node.is_none() {
            routing::release_channel(state, &body.channel);
        }
        e
    };
    state.live_changed();
    answer(state, &body.channel, Some(entry)).await
}

/// `POST /v1/live`.
pub async fn report_live(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiJson(body): ApiJson<LiveReport>,
) -> Result<Json<WhereIsChannel>, ApiError> {
    Ok(Json(report(&state, &body, true).await?))
}

/// `POST /v1/live/ended`.
pub async fn report_ended(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiJson(body): ApiJson<LiveReport>,
) -> Result<Json<WhereIsChannel>, ApiError> {
    Ok(Json(report(&state, &body, false).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhereQuery {
    /// The version the caller knows; with `wait`, hold the answer until it differs.
    #[serde(default)]
    version: Option<u64>,
    /// Longest hold in ms (capped by `max_wait_ms`).
    #[serde(default)]
    wait: Option<u64>,
    /// The asking edge's region: the answer then names the channel's shield edge there.
    #[serde(default)]
    region: Option<String>,
}

/// `GET /v1/channels/{name}/where`.
pub async fn where_is(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<WhereQuery>,
) -> Result<Json<WhereIsChannel>, ApiError> {
    check_name("channel name", &name)?;
    let mut wait = Duration::from_millis(q.wait.unwrap_or(0).min(state.cfg.max_wait_ms));
    let _permit = match state.waiters.clone().try_acquire_owned() {
        Ok(p) => Some(p),
        Err(_) => {
            wait = Duration::ZERO;
            None
        }
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.live_changes.subscribe();
    loop {
        changes.borrow_and_update();
        let entry = state.store.live(&name).await?;
        let version = entry.as_ref().map_or(0, |e| u64::try_from(e.version).unwrap_or(0));
        let now = tokio::time::Instant::now();
        if q.version.is_none_or(|v| v != version) || now >= deadline {
            let mut a = answer(&state, &name, entry).await?;
            if let Some(region) = q.region.as_deref() {
                check_name("region", region)?;
                a.shield = routing::shield_edge(&state, region, &name).await?.map(|n| address(n, &state));
            }
            return Ok(Json(a));
        }
        let until = deadline.min(now + REPOLL);
        tokio::select! {
            r = changes.changed() => {
                if r.is_err() {
                    tokio::time::sleep_until(until).await;
                }
            }
            () = tokio::time::sleep_until(until) => {}
        }
    }
}
