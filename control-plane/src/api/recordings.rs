//! The recordings catalog. Origins (node auth) report recordings and, after a user deleted
//! one, fetch the deletions, remove the objects and confirm. Users read a channel's
//! recordings (anyone for a public channel, owner or admin for a private one) and delete
//! them (owner or admin). Edges read an entry with node auth to serve it as VOD.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use skyrelay_common::cpapi::{NodeRole, Recording, RecordingReport};

use crate::auth::{self, AuthUser, NodeAuth};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, check_name};
use crate::state::AppState;
use crate::store::channels::Channel;
use crate::store::now_ms;

/// Longest free-text field (location, playlist key, reason).
const MAX_TEXT: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    limit: Option<u32>,
}

/// Checks a catalog id (`{channel}-{recording}`: plain name characters).
fn check_id(id: &str) -> Result<(), ApiError> {
    check_name("recording id", id)
}

fn check_report(r: &RecordingReport) -> Result<(), ApiError> {
    check_name("channel name", &r.channel)?;
    check_name("recording", &r.recording)?;
    check_name("node name", &r.node)?;
    let texts = [Some(&r.location), Some(&r.playlist), r.reason.as_ref()];
    if texts.iter().flatten().any(|t| t.len() > MAX_TEXT) {
        return Err(ApiError::BadRequest(format!("text fields are limited to {MAX_TEXT} bytes")));
    }
    let figures = [r.started_ms, r.duration_ms, r.bytes, r.segment_count, r.ended_ms.unwrap_or(0)];
    if figures.iter().any(|v| *v < 0) {
        return Err(ApiError::BadRequest("times and figures must not be negative".into()));
    }
    Ok(())
}

/// Whether the caller of `headers` may read recordings of `ch`.
async fn may_read(state: &AppState, headers: &HeaderMap, ch: &Channel) -> Result<(), ApiError> {
    if !ch.private {
        return Ok(());
    }
    let user = auth::session_user(state, headers).await?.ok_or(ApiError::Unauthorized)?;
    let user = AuthUser(user);
    if user.0.id == ch.owner_id || user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden("not your channel".into()))
    }
}

/// The recording `id` (not deleted) and its channel.
async fn find(state: &AppState, id: &str) -> Result<(Recording, Channel), ApiError> {
    check_id(id)?;
    let rec = state.store.recording(id).await?.filter(|r| r.deleted_at.is_none());
    let rec = rec.ok_or(ApiError::NotFound("recording"))?;
    let ch = state.store.channel(&rec.channel).await?.ok_or(ApiError::NotFound("recording"))?;
    Ok((rec, ch))
}

/// `PUT /v1/recordings` (node).
pub async fn report(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiJson(body): ApiJson<RecordingReport>,
) -> Result<Json<Recording>, ApiError> {
    check_report(&body)?;
    let node = state.store.node(&body.node).await?.ok_or(ApiError::NotFound("node (register first)"))?;
    if node.role != NodeRole::Origin {
        return Err(ApiError::Forbidden("only origins report recordings".into()));
    }
    if state.store.channel(&body.channel).await?.is_none() {
        return Err(ApiError::NotFound("channel"));
    }
    Ok(Json(state.store.upsert_recording(&body, now_ms()).await?))
}

/// `GET /v1/channels/{name}/recordings`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Recording>>, ApiError> {
    check_name("channel name", &name)?;
    let ch = state.store.channel(&name).await?.ok_or(ApiError::NotFound("channel"))?;
    may_read(&state, &headers, &ch).await?;
    let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
    Ok(Json(state.store.channel_recordings(&name, limit).await?))
}

/// `GET /v1/recordings/{id}`: users as for listing; nodes (edges serving VOD) read any
/// entry, and check playback tokens themselves.
pub async fn get(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Recording>, ApiError> {
    let (rec, ch) = find(&state, &id).await?;
    if !auth::is_node(&state, &headers) {
        may_read(&state, &headers, &ch).await?;
    }
    Ok(Json(rec))
}

/// `DELETE /v1/recordings/{id}`: removes the entry from listings and asks the storing
/// origin to remove the objects (202).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Recording>), ApiError> {
    let (_, ch) = find(&state, &id).await?;
    if ch.owner_id != user.0.id && !user.is_admin() {
        return Err(ApiError::Forbidden("not your channel".into()));
    }
    let rec = state.store.mark_recording_deleted(&id, now_ms()).await?;
    tracing::info!(recording = %rec.id, node = %rec.node, "recording deletion requested");
    Ok((StatusCode::ACCEPTED, Json(rec)))
}

/// `GET /v1/nodes/{name}/deleted-recordings` (node): deletions the origin has to carry out.
pub async fn pending_deletions(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Vec<Recording>>, ApiError> {
    check_name("node name", &name)?;
    Ok(Json(state.store.deleted_recordings(&name, 100).await?))
}

/// `POST /v1/recordings/{id}/purged` (node): the objects are gone; drops the entry (204).
pub async fn purged(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_id(&id)?;
    if state.store.purge_recording(&id).await? {
        tracing::info!(recording = %id, "recording purged");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("deleted recording"))
    }
}
