//! The playback-token key set (public) and key rotation (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use skyrelay_common::cpapi::KeySet;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::signer;
use crate::state::AppState;
use crate::store::now_ms;

#[derive(Serialize)]
pub struct Rotated {
    kid: String,
}

fn grace_ms(state: &AppState) -> i64 {
    i64::try_from(state.cfg.tokens.grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// `GET /v1/keys`: public keys (with grace-period ends) and channel revocations.
pub async fn key_set(State(state): State<Arc<AppState>>) -> Result<Json<KeySet>, ApiError> {
    let set = signer::key_set(&state.store, now_ms(), grace_ms(&state), state.cfg.tokens.refresh_secs)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(set))
}

/// `POST /v1/keys/rotate` (admin): a new signing key; the old one verifies for the grace
/// period.
pub async fn rotate(State(state): State<Arc<AppState>>, user: AuthUser) -> Result<Json<Rotated>, ApiError> {
    user.require_admin()?;
    let kid = signer::rotate(&state.store, now_ms()).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(Rotated { kid }))
}
