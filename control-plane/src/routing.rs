//! Choosing nodes: the nearest healthy origin for ingest, and for playback an edge of the
//! client's region by bounded-load consistent hashing of the channel, falling back to the
//! nearest region with a healthy edge.

use skyrelay_common::cpapi::NodeRole;

use crate::error::ApiError;
use crate::ring::{BoundedAssigner, HashRing};
use crate::state::AppState;
use crate::store::nodes::Node;
use crate::store::now_ms;

/// Most channels remembered per region before the assignment table starts afresh.
const MAX_ASSIGNED: usize = 200_000;

async fn healthy(state: &AppState, role: NodeRole) -> Result<Vec<Node>, ApiError> {
    let now = now_ms();
    let timeout = state.node_timeout_ms();
    Ok(state.store.nodes().await?.into_iter().filter(|n| n.role == role && n.healthy(now, timeout)).collect())
}

/// The edge for `channel` as seen from `region`.
pub async fn choose_edge(state: &AppState, region: &str, channel: &str) -> Result<Option<Node>, ApiError> {
    let edges = healthy(state, NodeRole::Edge).await?;
    for r in state.regions.by_distance(region) {
        let mut here: Vec<&Node> = edges.iter().filter(|n| n.region == r).collect();
        if here.is_empty() {
            continue;
        }
        here.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = here.iter().map(|n| n.name.as_str()).collect();
        let chosen = {
            let mut all = state.assigners.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = || {
                BoundedAssigner::new(HashRing::new(&names, HashRing::DEFAULT_VNODES), state.cfg.load_factor)
            };
            let a = all.entry(r.clone()).or_insert_with(fresh);
            if a.ring().members() != names.as_slice() || a.len() >= MAX_ASSIGNED {
                *a = fresh();
            }
            a.assign(channel).map(str::to_string)
        };
        if let Some(name) = chosen {
            return Ok(here.into_iter().find(|n| n.name == name).cloned());
        }
    }
    Ok(None)
}

/// Forgets `channel`'s edge assignments (it ended).
pub fn release_channel(state: &AppState, channel: &str) {
    let mut all = state.assigners.lock().unwrap_or_else(|p| p.into_inner());
    for a in all.values_mut() {
        a.release(channel);
    }
}

/// The ingest origin for a client in `region`: the least-loaded healthy origin with an RTMP
/// URL in the nearest region that has one.
pub async fn choose_origin(state: &AppState, region: &str) -> Result<Option<Node>, ApiError> {
    let origins: Vec<Node> =
        healthy(state, NodeRole::Origin).await?.into_iter().filter(|n| n.rtmp_url.is_some()).collect();
    for r in state.regions.by_distance(region) {
        let best = origins
            .iter()
            .filter(|n| n.region == r)
            .min_by(|a, b| a.cpu.total_cmp(&b.cpu).then_with(|| a.name.cmp(&b.name)));
        if let Some(n) = best {
            return Ok(Some(n.clone()));
        }
    }
    Ok(None)
}

/// The shield edge of `channel` in `region`: the first healthy edge of the region on the
/// channel's (unbounded) hash ring, so every edge of the region agrees on it.
pub async fn shield_edge(state: &AppState, region: &str, channel: &str) -> Result<Option<Node>, ApiError> {
    let edges: Vec<Node> =
        healthy(state, NodeRole::Edge).await?.into_iter().filter(|n| n.region == region).collect();
    let names: Vec<&str> = edges.iter().map(|n| n.name.as_str()).collect();
    let ring = HashRing::new(&names, HashRing::DEFAULT_VNODES);
    Ok(ring.first(channel).and_then(|name| edges.iter().find(|n| n.name == name).cloned()))
}
