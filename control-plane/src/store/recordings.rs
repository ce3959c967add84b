//! The recordings catalog: origins upsert what they record; users list, read and delete.
//!
//! A deleted recording keeps its row (with `deleted_at`) until the origin that stored the
//! objects has removed them and calls [`Store::purge_recording`].

use skyrelay_common::cpapi::{Recording, RecordingReport, RecordingStatus};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

const COLS: &str = "id, channel, recording, node, started_ms, ended_ms, duration_ms, bytes, segment_count, \
                    status, reason, location, playlist, deleted_at, updated_at";

/// The catalog id of `recording` of `channel`.
pub fn recording_key(channel: &str, recording: &str) -> String {
    format!("{channel}-{recording}")
}

fn recording(row: &AnyRow) -> Result<Recording, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Recording {
        id: row.try_get("id")?,
        channel: row.try_get("channel")?,
        recording: row.try_get("recording")?,
        node: row.try_get("node")?,
        started_ms: row.try_get("started_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        bytes: row.try_get("bytes")?,
        segment_count: row.try_get("segment_count")?,
        status: RecordingStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown recording status `{status}`").into()))?,
        reason: row.try_get("reason")?,
        location: row.try_get("location")?,
        playlist: row.try_get("playlist")?,
        deleted_at: row.try_get("deleted_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates or updates the recording `r` describes. A deleted recording stays deleted
    /// (its figures still update, so the origin's late reports are harmless).
    pub async fn upsert_recording(&self, r: &RecordingReport, now: i64) -> Result<Recording, StoreError> {
        let id = recording_key(&r.channel, &r.recording);
        let row = sqlx::query(&format!(
            "INSERT INTO recordings (id, channel, recording, node, started_ms, ended_ms, duration_ms, bytes, \
             segment_count, status, reason, location, playlist, deleted_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14) \
             ON CONFLICT (id) DO UPDATE SET node = excluded.node, started_ms = excluded.started_ms, \
             ended_ms = excluded.ended_ms, duration_ms = excluded.duration_ms, bytes = excluded.bytes, \
             segment_count = excluded.segment_count, status = excluded.status, reason = excluded.reason, \
             location = excluded.location, playlist = excluded.playlist, updated_at = excluded.updated_at \
             RETURNING {COLS}"
        ))
        .bind(&id)
        .bind(&r.channel)
        .bind(&r.recording)
        .bind(&r.node)
        .bind(r.started_ms)
        .bind(r.ended_ms)
        .bind(r.duration_ms)
        .bind(r.bytes)
        .bind(r.segment_count)
        .bind(r.status.as_str())
        .bind(r.reason.clone())
        .bind(&r.location)
        .bind(&r.playlist)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        Ok(recording(&row)?)
    }

    /// The recording `id` (deleted ones included).
    pub async fn recording(&self, id: &str) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM recordings WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| recording(&r)).transpose()?)
    }

    /// The recordings of `channel` not deleted, newest first, at most `limit`.
    pub async fn channel_recordings(&self, channel: &str, limit: i64) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM recordings WHERE channel = $1 AND deleted_at IS NULL \
             ORDER BY started_ms DESC LIMIT $2"
        ))
        .bind(channel)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(recording).collect::<Result<_, _>>()?)
    }

    /// Marks `id` deleted; [`StoreError::NotFound`] if it does not exist.
    pub async fn mark_recording_deleted(&self, id: &str, now: i64) -> Result<Recording, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE recordings SET deleted_at = COALESCE(deleted_at, $1), updated_at = $1 WHERE id = $2 \
             RETURNING {COLS}"
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(recording(&row)?)
    }

    /// Recordings stored by `node` whose deletion was requested, oldest request first.
    pub async fn deleted_recordings(&self, node: &str, limit: i64) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM recordings WHERE node = $1 AND deleted_at IS NOT NULL \
             ORDER BY deleted_at LIMIT $2"
        ))
        .bind(node)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(recording).collect::<Result<_, _>>()?)
    }

    /// Drops a deleted recording's row once its objects are gone. Returns whether a row went.
    pub async fn purge_recording(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM recordings WHERE id = $1 AND deleted_at IS NOT NULL")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
