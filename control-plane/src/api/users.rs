//! Users: register, login (argon2id, rate-limited), logout, whoami; and the first admin.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{self, AuthUser};
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, check_name};
use crate::state::AppState;
use crate::store::users::{Role, User};
use crate::store::{Store, now_ms};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
    /// Only admins may create admins.
    #[serde(default)]
    role: Option<Role>,
}

#[derive(Serialize)]
pub struct SessionView {
    token: String,
    expires_at: i64,
    user: User,
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if (8..=256).contains(&p.len()) {
        Ok(())
    } else {
        Err(ApiError::BadRequest("password must be 8-256 bytes".into()))
    }
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
}

/// `POST /v1/users`.
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    check_name("username", &body.username)?;
    check_password(&body.password)?;
    let caller = auth::session_user(&state, &caller.headers).await?;
    let caller_admin = caller.as_ref().is_some_and(|u| u.role == Role::Admin);
    if !state.cfg.open_registration && !caller_admin {
        return Err(ApiError::Forbidden("registration is closed; ask an admin".into()));
    }
    let role = body.role.unwrap_or(Role::Streamer);
    if role == Role::Admin && !caller_admin {
        return Err(ApiError::Forbidden("only admins create admins".into()));
    }
    let phc = hash(body.password).await?;
    let user = state.store.create_user(&body.username, &phc, role, now_ms()).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => ApiError::Conflict("user"),
        e => e.into(),
    })?;
    Ok((StatusCode::CREATED, Json(user)))
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| auth::hash_password("not-a-real-password").unwrap_or_default())
}

/// `POST /v1/sessions`: log in.
pub async fn login(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    if body.role.is_some() {
        return Err(ApiError::BadRequest("`role` is not a login field".into()));
    }
    let now = now_ms();
    let user_key = format!("u:{}", body.username.to_ascii_lowercase());
    let ip_key = format!("ip:{}", caller.ip);
    {
        let limiter = state.login.lock().unwrap_or_else(|p| p.into_inner());
        if !limiter.allowed(&user_key, now) || !limiter.allowed(&ip_key, now) {
            return Err(ApiError::TooManyRequests);
        }
    }
    let found =
        if body.username.len() <= 64 { state.store.user_credentials(&body.username).await? } else { None };
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, dummy_hash().to_string()),
    };
    let password = body.password;
    let ok =
        tokio::task::spawn_blocking(move || password.len() <= 256 && auth::verify_password(&password, &phc))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => {
            let mut limiter = state.login.lock().unwrap_or_else(|p| p.into_inner());
            limiter.failed(&user_key, now);
            limiter.failed(&ip_key, now);
            return Err(ApiError::BadCredentials);
        }
    };
    state.login.lock().unwrap_or_else(|p| p.into_inner()).succeeded(&user_key);
    let token = auth::random_secret();
    let ttl = i64::try_from(state.cfg.session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl);
    state.store.create_session(&auth::hash_secret(&token), user.id, expires_at).await?;
    Ok((StatusCode::CREATED, Json(SessionView { token, expires_at, user })))
}

/// `DELETE /v1/sessions`: log out (the presented session).
pub async fn logout(State(state): State<Arc<AppState>>, caller: Caller) -> Result<StatusCode, ApiError> {
    let token = auth::credential(&caller.headers, "Bearer").ok_or(ApiError::Unauthorized)?;
    state.store.delete_session(&auth::hash_secret(token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/me`.
pub async fn me(user: AuthUser) -> Json<User> {
    Json(user.0)
}

/// Creates an admin named `username` with a random password, which is returned (to be
/// shown once). Fails with a conflict when the name is taken.
pub async fn create_admin(store: &Store, username: &str) -> Result<String, ApiError> {
    check_name("username", username)?;
    let password = auth::random_secret();
    let phc = hash(password.clone()).await?;
    store.create_user(username, &phc, Role::Admin, now_ms()).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => ApiError::Conflict("user"),
        e => e.into(),
    })?;
    Ok(password)
}
