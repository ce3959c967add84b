//! The HTTP API: routes under `/v1` (plus the `/play/{channel}` redirect), JSON errors for
//! every failure, request metrics.
//!
//! Layout: [`users`] (register, login, logout, me), [`channels`] (CRUD, stream keys, token
//! revocation), [`nodes`] (register, heartbeat, list), [`live`] (publish authorisation,
//! live/ended reports, where-is long-poll), [`route`] (ingest and playback routing),
//! [`recordings`] (the recordings catalog), [`keys`] (key set, rotation), [`web`]
//! (management pages, `/watch/{channel}` redirect).

pub mod channels;
pub mod keys;
pub mod live;
pub mod nodes;
pub mod recordings;
pub mod route;
pub mod users;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header;

use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI document (docs/openapi.json), served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The API router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/users", post(users::register))
        .route("/sessions", post(users::login).delete(users::logout))
        .route("/me", get(users::me))
        .route("/channels", post(channels::create).get(channels::list))
        .route("/channels/{name}", get(channels::get).patch(channels::update).delete(channels::delete))
        .route("/channels/{name}/stream-key", post(channels::rotate_key).delete(channels::revoke_keys))
        .route("/channels/{name}/revoke-tokens", post(channels::revoke_tokens))
        .route("/channels/{name}/where", get(live::where_is))
        .route("/nodes", post(nodes::register).get(nodes::list))
        .route("/nodes/{name}", axum::routing::delete(nodes::delete))
        .route("/nodes/{name}/heartbeat", post(nodes::heartbeat))
        .route("/publish/authorize", post(live::authorize))
        .route("/live", post(live::report_live))
        .route("/live/ended", post(live::report_ended))
        .route("/recordings", axum::routing::put(recordings::report))
        .route("/recordings/{id}", get(recordings::get).delete(recordings::delete))
        .route("/recordings/{id}/purged", post(recordings::purged))
        .route("/channels/{name}/recordings", get(recordings::list))
        .route("/nodes/{name}/deleted-recordings", get(recordings::pending_deletions))
        .route("/route/ingest", get(route::ingest))
        .route("/route/play/{channel}", get(route::play))
        .route("/keys", get(keys::key_set))
        .route("/keys/rotate", post(keys::rotate))
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/v1", v1)
        .route("/play/{channel}", get(route::redirect))
        .route("/", get(web::page))
        .route("/manage", get(web::page))
        .route("/manage/manage.js", get(web::script))
        .route("/manage/manage.css", get(web::style))
        .route("/manage/live/{channel}", get(web::live))
        .route("/watch/{channel}", get(web::watch))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_string();
    let resp = next.run(req).await;
    state.metrics.http_requests.with_label_values(&[route.as_str(), resp.status().as_str()]).inc();
    resp
}
