//! Credentials: argon2id password hashes, random secrets (session tokens, stream keys),
//! SHA-256 at-rest hashes, constant-time comparison, and the request extractors for users
//! (`Authorization: Bearer <session>`) and nodes (`Authorization: Node <secret>`).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::FromRequestParts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::AUTHORIZATION;
use http::request::Parts;
use rand::RngCore;
use skyrelay_common::cpapi::NODE_AUTH_SCHEME;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::now_ms;
use crate::store::users::{Role, User};

fn argon2() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (PHC string). CPU-heavy: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::Internal(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Checks a password against a PHC hash. CPU-heavy: call from a blocking task.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A random secret of 32 bytes, base64url (43 characters).
pub fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// SHA-256 of `secret`, lowercase hex: how tokens and keys are stored.
pub fn hash_secret(secret: &str) -> String {
    digest(&SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two strings.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The credential of `scheme` in the `Authorization` header.
pub fn credential<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// A signed-in user (a valid, unexpired session).
pub struct AuthUser(pub User);

impl AuthUser {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
    /// Refuses non-admins.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::Forbidden("admin only".into())) }
    }
}

/// The session user of a request, if it carries a valid bearer token.
pub async fn session_user(state: &AppState, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
    let Some(token) = credential(headers, "Bearer") else { return Ok(None) };
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    Ok(state.store.session_user(&hash_secret(token), now_ms()).await?)
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        session_user(state, &parts.headers).await?.map(AuthUser).ok_or(ApiError::Unauthorized)
    }
}

/// A request authenticated with the cluster node secret.
pub struct NodeAuth;

/// Whether `headers` carry the cluster node secret.
pub fn is_node(state: &AppState, headers: &HeaderMap) -> bool {
    credential(headers, NODE_AUTH_SCHEME).is_some_and(|s| ct_eq(s, &state.node_secret))
}

/// A node (cluster node secret) or a signed-in user: for reads both need (edges read the
/// node list and recording entries that users manage).
pub enum NodeOrUser {
    Node,
    User(AuthUser),
}

impl FromRequestParts<Arc<AppState>> for NodeOrUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        if is_node(state, &parts.headers) {
            return Ok(NodeOrUser::Node);
        }
        session_user(state, &parts.headers)
            .await?
            .map(|u| NodeOrUser::User(AuthUser(u)))
            .ok_or(ApiError::Unauthorized)
    }
}

impl FromRequestParts<Arc<AppState>> for NodeAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        match credential(&parts.headers, NODE_AUTH_SCHEME) {
            Some(s) if ct_eq(s, &state.node_secret) => Ok(NodeAuth),
            _ => Err(ApiError::NodeOnly),
        }
    }
}
