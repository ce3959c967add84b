//! Playback-token signing keys: PKCS#8 private keys and their public halves.

use sqlx::Row;

use super::{Store, StoreError};

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    /// PKCS#8 v2 document, base64url.
    pub private_pkcs8: String,
    /// 32-byte public key, base64url.
    pub public_key: String,
    pub created_at: i64,
    /// Unix ms when the key was rotated out; `None` while current.
    pub retired_at: Option<i64>,
}

impl Store {
    /// Every signing key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, private_pkcs8, public_key, created_at, retired_at FROM signing_keys \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    private_pkcs8: r.try_get("private_pkcs8")?,
                    public_key: r.try_get("public_key")?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Adds `key` as the current key, retiring every other current key at `now`.
    pub async fn add_signing_key(&self, key: &SigningKeyRow, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pkcs8, public_key, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(&key.kid)
        .bind(&key.private_pkcs8)
        .bind(&key.public_key)
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes keys retired before `before` (unix ms); returns how many.
    pub async fn purge_signing_keys(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected())
    }
}
