//! Channels: create, list, get, update, delete; stream key rotate/revoke; token revocation.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, check_name};
use crate::state::AppState;
use crate::store::channels::{Channel, ChannelUpdate};
use crate::store::{StoreError, now_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    recording: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    recording: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Admins: `all=true` lists every channel.
    #[serde(default)]
    all: bool,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct StreamKeyView {
    channel: String,
    /// Shown once; only its hash is stored.
    stream_key: String,
}

#[derive(Serialize)]
pub struct Revoked {
    revoked: u64,
}

#[derive(Serialize)]
pub struct TokensRevoked {
    channel: String,
    not_before: i64,
}

/// The channel `name` if `user` may manage it.
async fn owned(state: &AppState, user: &AuthUser, name: &str) -> Result<Channel, ApiError> {
    check_name("channel name", name)?;
    let ch = state.store.channel(name).await?.ok_or(ApiError::NotFound("channel"))?;
    if ch.owner_id != user.0.id && !user.is_admin() {
        return Err(ApiError::Forbidden("not your channel".into()));
    }
    Ok(ch)
}

/// `POST /v1/channels`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateChannel>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    check_name("channel name", &body.name)?;
    let ch = state
        .store
        .create_channel(&body.name, user.0.id, body.private, body.recording, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict("channel"),
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(ch)))
}

/// `GET /v1/channels`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Channel>>, ApiError> {
    let owner = if q.all && user.is_admin() { None } else { Some(user.0.id) };
    let limit = i64::from(q.limit.unwrap_or(1000).clamp(1, 10_000));
    Ok(Json(state.store.list_channels(owner, limit).await?))
}

/// `GET /v1/channels/{name}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Channel>, ApiError> {
    Ok(Json(owned(&state, &user, &name).await?))
}

/// `PATCH /v1/channels/{name}`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateChannel>,
) -> Result<Json<Channel>, ApiError> {
    let ch = owned(&state, &user, &name).await?;
    let upd = ChannelUpdate { private: body.private, recording: body.recording };
    Ok(Json(state.store.update_channel(ch.id, &upd).await?))
}

/// `DELETE /v1/channels/{name}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ch = owned(&state, &user, &name).await?;
    state.store.delete_channel(ch.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/channels/{name}/stream-key`: a new key (shown once); earlier keys stop working.
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, Json<StreamKeyView>), ApiError> {
    let ch = owned(&state, &user, &name).await?;
    let key = auth::random_secret();
    state.store.rotate_stream_key(ch.id, &auth::hash_secret(&key), now_ms()).await?;
    Ok((StatusCode::CREATED, Json(StreamKeyView { channel: ch.name, stream_key: key })))
}

/// `DELETE /v1/channels/{name}/stream-key`: revoke every key of the channel.
pub async fn revoke_keys(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Revoked>, ApiError> {
    let ch = owned(&state, &user, &name).await?;
    Ok(Json(Revoked { revoked: state.store.revoke_stream_keys(ch.id, now_ms()).await? }))
}

/// `POST /v1/channels/{name}/revoke-tokens`: every playback token issued so far stops
/// working once edges refresh the key set.
pub async fn revoke_tokens(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TokensRevoked>, ApiError> {
    let ch = owned(&state, &user, &name).await?;
    // Tokens carry whole seconds; revoking "up to and including now" needs now + 1.
    let not_before = now_ms() / 1000 + 1;
    state.store.revoke_channel_tokens(ch.id, not_before).await?;
    Ok(Json(TokensRevoked { channel: ch.name, not_before }))
}
