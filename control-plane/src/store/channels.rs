//! Channels and their stream keys (stored as SHA-256 hashes only).

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, flag};

/// A channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub private: bool,
    pub recording: bool,
    /// Unix seconds; playback tokens issued before are revoked (0: none).
    pub tokens_not_before: i64,
    pub created_at: i64,
}

const COLS: &str = "id, name, owner_id, private, recording, tokens_not_before, created_at";

fn channel(row: &AnyRow) -> Result<Channel, sqlx::Error> {
    Ok(Channel {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        private: row.try_get::<i64, _>("private")? != 0,
        recording: row.try_get::<i64, _>("recording")? != 0,
        tokens_not_before: row.try_get("tokens_not_before")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Fields of a channel update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelUpdate {
    pub private: Option<bool>,
    pub recording: Option<bool>,
}

impl Store {
    /// Creates a channel; [`StoreError::Conflict`] when the name is taken.
    pub async fn create_channel(
        &self,
        name: &str,
        owner_id: i64,
        private: bool,
        recording: bool,
        now: i64,
    ) -> Result<Channel, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO channels (name, owner_id, private, recording, tokens_not_before, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5) RETURNING {COLS}"
        ))
        .bind(name)
        .bind(owner_id)
        .bind(flag(private))
        .bind(flag(recording))
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(channel(&row)?)
    }

    /// The channel named `name`.
    pub async fn channel(&self, name: &str) -> Result<Option<Channel>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM channels WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| channel(&r)).transpose()?)
    }

    /// Channels owned by `owner` (all channels when `None`), by name, at most `limit`.
    pub async fn list_channels(&self, owner: Option<i64>, limit: i64) -> Result<Vec<Channel>, StoreError> {
        let rows = match owner {
            Some(o) => {
                let sql = format!("SELECT {COLS} FROM channels WHERE owner_id = $1 ORDER BY name LIMIT $2");
                sqlx::query(&sql).bind(o).bind(limit).fetch_all(self.pool()).await?
            }
            None => {
                let sql = format!("SELECT {COLS} FROM channels ORDER BY name LIMIT $1");
                sqlx::query(&sql).bind(limit).fetch_all(self.pool()).await?
            }
        };
        Ok(rows.iter().map(channel).collect::<Result<_, _>>()?)
    }

    /// Applies `update` to channel `id` and returns it.
    pub async fn update_channel(&self, id: i64, update: &ChannelUpdate) -> Result<Channel, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE channels SET private = COALESCE($1, private), recording = COALESCE($2, recording) \
             WHERE id = $3 RETURNING {COLS}"
        ))
        .bind(update.private.map(flag))
        .bind(update.recording.map(flag))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(channel(&row.ok_or(StoreError::NotFound)?)?)
    }

    /// Sets the channel's token revocation time (unix seconds).
    pub async fn revoke_channel_tokens(&self, id: i64, not_before_secs: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE channels SET tokens_not_before = $1 WHERE id = $2")
            .bind(not_before_secs)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every channel with a token revocation time: `(name, unix seconds)`.
    pub async fn token_revocations(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT name, tokens_not_before FROM channels WHERE tokens_not_before > 0")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("tokens_not_before")?))).collect()
    }

    /// Deletes a channel with its keys.
    pub async fn delete_channel(&self, id: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM stream_keys WHERE channel_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM channels WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes `key_hash` the channel's only valid key: earlier keys are revoked.
    pub async fn rotate_stream_key(
        &self,
        channel_id: i64,
        key_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE stream_keys SET revoked_at = $1 WHERE channel_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(channel_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO stream_keys (channel_id, key_hash, created_at) VALUES ($1, $2, $3)")
            .bind(channel_id)
            .bind(key_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes every key of the channel; returns how many were valid.
    pub async fn revoke_stream_keys(&self, channel_id: i64, now: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE stream_keys SET revoked_at = $1 WHERE channel_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(channel_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected())
    }

    /// The channel a valid (unrevoked) key hash belongs to, with the stored hash.
    pub async fn channel_by_key_hash(&self, key_hash: &str) -> Result<Option<(Channel, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT c.id, c.name, c.owner_id, c.private, c.recording, c.tokens_not_before, c.created_at, \
             k.key_hash FROM stream_keys k JOIN channels c ON c.id = k.channel_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok((channel(&r)?, r.try_get("key_hash")?))).transpose()
    }
}
