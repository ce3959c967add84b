//! The live registry: which origin carries each channel, with a per-channel version that
//! bumps on every change (edges long-poll on it).

use sqlx::Row;

use super::{Store, StoreError};

/// A channel's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    pub channel: String,
    /// The origin node; `None` once ended.
    pub node: Option<String>,
    pub since: i64,
    pub version: i64,
}

impl Store {
    /// The live state of `channel` (`None`: never reported).
    pub async fn live(&self, channel: &str) -> Result<Option<LiveEntry>, StoreError> {
        let row = sqlx::query("SELECT channel, node, since, version FROM live WHERE channel = $1")
            .bind(channel)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(LiveEntry {
                channel: r.try_get("channel")?,
                node: r.try_get("node")?,
                since: r.try_get("since")?,
                version: r.try_get("version")?,
            })
        })
        .transpose()
    }

    /// Sets `channel` live on `node` (or ended with `None`), bumping the version when the
    /// state changes. Ending only applies if `node` is still the registered origin
    /// (`expect_node`), so a late "ended" from an old origin cannot end a moved stream.
    pub async fn set_live(
        &self,
        channel: &str,
        node: Option<&str>,
        expect_node: Option<&str>,
        now: i64,
    ) -> Result<LiveEntry, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("SELECT node, version FROM live WHERE channel = $1")
            .bind(channel)
            .fetch_optional(&mut *tx)
            .await?;
        let entry = match row {
            None => {
                sqlx::query("INSERT INTO live (channel, node, since, version) VALUES ($1, $2, $3, 1)")
                    .bind(channel)
                    .bind(node.map(str::to_string))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                LiveEntry { channel: channel.into(), node: node.map(Into::into), since: now, version: 1 }
            }
            Some(r) => {
                let current: Option<String> = r.try_get("node")?;
                let version: i64 = r.try_get("version")?;
                let applies = expect_node.is_none_or(|e| current.as_deref() == Some(e));
                if current.as_deref() == node || !applies {
                    tx.commit().await?;
                    return self.live(channel).await?.ok_or(StoreError::NotFound);
                }
                sqlx::query("UPDATE live SET node = $1, since = $2, version = $3 WHERE channel = $4")
                    .bind(node.map(str::to_string))
                    .bind(now)
                    .bind(version + 1)
                    .bind(channel)
                    .execute(&mut *tx)
                    .await?;
                LiveEntry {
                    channel: channel.into(),
                    node: node.map(Into::into),
                    since: now,
                    version: version + 1,
                }
            }
        };
        tx.commit().await?;
        Ok(entry)
    }

    /// Number of channels currently live.
    pub async fn live_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM live WHERE node IS NOT NULL")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}
