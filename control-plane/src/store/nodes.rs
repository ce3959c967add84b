//! Registered nodes (origins and edges) with their last heartbeat and load.

use skyrelay_common::cpapi::{Heartbeat, NodeRole, RegisterNode};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// A node as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub role: NodeRole,
    pub region: String,
    pub public_url: String,
    pub rtmp_url: Option<String>,
    pub relay_addr: Option<String>,
    pub registered_at: i64,
    /// Unix ms of the last heartbeat (or registration).
    pub last_heartbeat: i64,
    pub viewers: i64,
    pub egress_bps: i64,
    pub cpu: f64,
}

impl Node {
    /// Whether heartbeats arrived within `timeout_ms` of `now`.
    pub fn healthy(&self, now: i64, timeout_ms: i64) -> bool {
        now.saturating_sub(self.last_heartbeat) <= timeout_ms
    }
}

const COLS: &str = "name, role, region, public_url, rtmp_url, relay_addr, registered_at, last_heartbeat, \
                    viewers, egress_bps, cpu";

fn node(row: &AnyRow) -> Result<Node, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(Node {
        name: row.try_get("name")?,
        role: if role == "origin" { NodeRole::Origin } else { NodeRole::Edge },
        region: row.try_get("region")?,
        public_url: row.try_get("public_url")?,
        rtmp_url: row.try_get("rtmp_url")?,
        relay_addr: row.try_get("relay_addr")?,
        registered_at: row.try_get("registered_at")?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        viewers: row.try_get("viewers")?,
        egress_bps: row.try_get("egress_bps")?,
        cpu: row.try_get("cpu")?,
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Registers a node or replaces its registration; counts as a heartbeat.
    pub async fn upsert_node(&self, n: &RegisterNode, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (name, role, region, public_url, rtmp_url, relay_addr, registered_at, \
             last_heartbeat, viewers, egress_bps, cpu) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, 0, 0.0) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, region = excluded.region, \
             public_url = excluded.public_url, rtmp_url = excluded.rtmp_url, relay_addr = excluded.relay_addr, \
             registered_at = excluded.registered_at, last_heartbeat = excluded.last_heartbeat",
        )
        .bind(&n.name)
        .bind(n.role.as_str())
        .bind(&n.region)
        .bind(&n.public_url)
        .bind(n.rtmp_url.clone())
        .bind(n.relay_addr.clone())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a heartbeat; false when the node is unknown.
    pub async fn heartbeat(&self, name: &str, hb: &Heartbeat, now: i64) -> Result<bool, StoreError> {
        let cpu = if hb.cpu.is_finite() { hb.cpu.max(0.0) } else { 0.0 };
        let r = sqlx::query(
            "UPDATE nodes SET last_heartbeat = $1, viewers = $2, egress_bps = $3, cpu = $4 WHERE name = $5",
        )
        .bind(now)
        .bind(clamp(hb.viewers))
        .bind(clamp(hb.egress_bps))
        .bind(cpu)
        .bind(name)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// One node.
    pub async fn node(&self, name: &str) -> Result<Option<Node>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM nodes WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| node(&r)).transpose()?)
    }

    /// Every node, by name.
    pub async fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLS} FROM nodes ORDER BY name")).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(node).collect::<Result<_, _>>()?)
    }

    /// Deletes a node.
    pub async fn delete_node(&self, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM nodes WHERE name = $1").bind(name).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
