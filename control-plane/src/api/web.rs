//! The management pages (`/` and `/manage`, assets under `/manage/`), a session-only live
//! flag for them (`/manage/live/{channel}`), and `GET /watch/{channel}`: a 302 to the watch
//! page of the edge `/v1/route/play` chooses (with the token for a private channel when the
//! request carries a valid session). The page files live in `web/src/manage.*`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;
use skyrelay_common::cpapi::TOKEN_QUERY_PARAM;

use super::route::{self, RouteQuery};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, Caller, check_name};
use crate::state::AppState;

const HTML: &str = include_str!("../../../web/src/manage.html");
const JS: &str = include_str!("../../../web/src/manage.js");
const CSS: &str = include_str!("../../../web/src/manage.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /` and `GET /manage`: the management page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

/// `GET /manage/manage.js`.
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// `GET /manage/manage.css`.
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

#[derive(Serialize)]
pub struct LiveFlag {
    channel: String,
    live: bool,
}

/// `GET /manage/live/{channel}`: whether the channel is live (owner or admin).
pub async fn live(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<LiveFlag>, ApiError> {
    check_name("channel name", &name)?;
    let ch = state.store.channel(&name).await?.ok_or(ApiError::NotFound("channel"))?;
    if ch.owner_id != user.0.id && !user.is_admin() {
        return Err(ApiError::Forbidden("not your channel".into()));
    }
    let live = state.store.live(&name).await?.is_some_and(|e| e.node.is_some());
    Ok(Json(LiveFlag { channel: ch.name, live }))
}

/// `GET /watch/{channel}`: a 302 (Found) to the chosen edge's watch page.
pub async fn watch(
    state: State<Arc<AppState>>,
    caller: Caller,
    ApiPath(channel): ApiPath<String>,
    query: ApiQuery<RouteQuery>,
) -> Result<Response, ApiError> {
    let Json(plan) = route::play(state, caller, ApiPath(channel), query).await?;
    let edge = plan.url.split("/live/").next().unwrap_or_default();
    let mut target = format!("{edge}/watch/{}", plan.channel);
    if let Some(token) = plan.token {
        target = format!("{target}?{TOKEN_QUERY_PARAM}={token}");
    }
    Ok((StatusCode::FOUND, [(header::LOCATION, target)]).into_response())
}
