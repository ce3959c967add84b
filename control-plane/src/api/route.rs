//! Routing for clients: ingest (nearest healthy origin) and playback (edge by bounded-load
//! consistent hashing, with a token for private channels), and the `/play` redirect.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;
use skyrelay_common::cpapi::Cidr;
use skyrelay_common::cpapi::{IngestRoute, PlayRoute, PlaybackClaims, TOKEN_QUERY_PARAM};

use crate::auth;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller, check_name};
use crate::routing;
use crate::signer;
use crate::state::AppState;
use crate::store::now_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteQuery {
    /// Explicit region hint (ignored when not a configured region).
    #[serde(default)]
    region: Option<String>,
}

/// `GET /v1/route/ingest`.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Json<IngestRoute>, ApiError> {
    let region = state.regions.region_of(q.region.as_deref(), caller.ip);
    let origin = routing::choose_origin(&state, &region)
        .await?
        .ok_or_else(|| ApiError::Unavailable("no healthy origin".into()))?;
    Ok(Json(IngestRoute {
        url: origin.rtmp_url.unwrap_or_default(),
        node: origin.name,
        region: origin.region,
    }))
}

fn network_of(ip: std::net::IpAddr) -> Option<Cidr> {
    Cidr::new(ip, if ip.is_ipv4() { 24 } else { 64 })
}

async fn plan(
    state: &AppState,
    caller: &Caller,
    channel: &str,
    hint: Option<&str>,
) -> Result<PlayRoute, ApiError> {
    check_name("channel name", channel)?;
    let ch = state.store.channel(channel).await?.ok_or(ApiError::NotFound("channel"))?;
    let region = state.regions.region_of(hint, caller.ip);
    let edge = routing::choose_edge(state, &region, channel)
        .await?
        .ok_or_else(|| ApiError::Unavailable("no healthy edge".into()))?;
    let base = format!("{}/live/{}/master.m3u8", edge.public_url.trim_end_matches('/'), ch.name);
    let (url, token, expires_at) = if ch.private {
        // Private channels: tokens go to signed-in users only.
        if auth::session_user(state, &caller.headers).await?.is_none() {
            return Err(ApiError::Unauthorized);
        }
        let now = now_ms() / 1000;
        let exp = now.saturating_add(i64::try_from(state.cfg.tokens.ttl_secs).unwrap_or(i64::MAX));
        let t = &state.cfg.tokens;
        let claims = PlaybackClaims {
            kid: String::new(),
            ch: ch.name.clone(),
            iat: now,
            nbf: now,
            exp,
            net: if t.bind_client_network { network_of(caller.ip).map(|c| c.to_string()) } else { None },
            reg: if t.bind_region { Some(edge.region.clone()) } else { None },
        };
        let token =
            signer::mint(&state.store, claims).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        (format!("{base}?{TOKEN_QUERY_PARAM}={token}"), Some(token), Some(exp))
    } else {
        (base, None, None)
    };
    Ok(PlayRoute { channel: ch.name, url, edge: edge.name, region: edge.region, token, expires_at })
}

/// `GET /v1/route/play/{channel}`.
pub async fn play(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(channel): ApiPath<String>,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Json<PlayRoute>, ApiError> {
    Ok(Json(plan(&state, &caller, &channel, q.region.as_deref()).await?))
}

/// `GET /play/{channel}`: a 302 (Found) to the playback URL.
pub async fn redirect(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiPath(channel): ApiPath<String>,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Response, ApiError> {
    let route = plan(&state, &caller, &channel, q.region.as_deref()).await?;
    Ok((StatusCode::FOUND, [(header::LOCATION, route.url)]).into_response())
}
