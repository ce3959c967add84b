//! Nodes: register, heartbeat (node credential), list and delete (admin).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use skyrelay_common::cpapi::{Heartbeat, HeartbeatAck, NodeRegistered, NodeStatus, RegisterNode};

use crate::auth::{AuthUser, NodeAuth, NodeOrUser};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, check_name};
use crate::state::AppState;
use crate::store::now_ms;

fn check_url(what: &str, url: &str, schemes: &[&str]) -> Result<(), ApiError> {
    let ok = url.len() <= 512 && schemes.iter().any(|s| url.starts_with(s) && url.len() > s.len());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!("invalid {what}: expected {}", schemes.join(" or "))))
    }
}

/// `POST /v1/nodes`.
pub async fn register(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiJson(body): ApiJson<RegisterNode>,
) -> Result<Json<NodeRegistered>, ApiError> {
    check_name("node name", &body.name)?;
    check_name("region", &body.region)?;
    check_url("public_url", &body.public_url, &["http://", "https://"])?;
    if let Some(u) = &body.rtmp_url {
        check_url("rtmp_url", u, &["rtmp://", "rtmps://"])?;
    }
    if let Some(a) = &body.relay_addr
        && (a.is_empty() || a.len() > 256)
    {
        return Err(ApiError::BadRequest("invalid relay_addr".into()));
    }
    if !state.regions.known(&body.region) {
        tracing::warn!(node = %body.name, region = %body.region, "node registered in an unconfigured region");
    }
    state.store.upsert_node(&body, now_ms()).await?;
    Ok(Json(NodeRegistered { name: body.name, heartbeat_interval_ms: state.cfg.heartbeat_interval_ms }))
}

/// `POST /v1/nodes/{name}/heartbeat`.
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    _node: NodeAuth,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    check_name("node name", &name)?;
    let known = state.store.heartbeat(&name, &body, now_ms()).await?;
    Ok(Json(HeartbeatAck { known }))
}

/// `GET /v1/nodes` (admin, or a node: edges find origins' HTTP addresses here).
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: NodeOrUser,
) -> Result<Json<Vec<NodeStatus>>, ApiError> {
    if let NodeOrUser::User(user) = caller {
        user.require_admin()?;
    }
    let now = now_ms();
    let timeout = state.node_timeout_ms();
    let nodes = state.store.nodes().await?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeStatus {
                healthy: n.healthy(now, timeout),
                name: n.name,
                role: n.role,
                region: n.region,
                public_url: n.public_url,
                rtmp_url: n.rtmp_url,
                relay_addr: n.relay_addr,
                last_heartbeat: n.last_heartbeat,
                viewers: n.viewers,
                egress_bps: n.egress_bps,
                cpu: n.cpu,
            })
            .collect(),
    ))
}

/// `DELETE /v1/nodes/{name}` (admin).
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    user.require_admin()?;
    check_name("node name", &name)?;
    if state.store.delete_node(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("node"))
    }
}
