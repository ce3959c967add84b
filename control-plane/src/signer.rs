//! Playback-token signing: Ed25519 keys (aws-lc-rs) created and rotated by the control plane,
//! kept in the store, and the JWKS-style [`KeySet`] edges verify with.
//!
//! The current key is the newest unretired one. Rotation adds a new key and retires the
//! others; a retired key stays in the published set (with `not_after` = retirement + grace)
//! until its grace period ends, then it is purged.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use skyrelay_common::cpapi::token::{assemble, signing_input};
use skyrelay_common::cpapi::{KeySet, PlaybackClaims, PublicKey, Revocation};

use crate::store::signing::SigningKeyRow;
use crate::store::{Store, StoreError};

/// A signing failure.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Key generation or a stored key's decoding failed.
    #[error("signing key: {0}")]
    Key(String),
    /// There is no current key (should not happen after [`ensure_key`]).
    #[error("no current signing key")]
    NoKey,
}

/// Creates a new key and makes it current (retiring the others at `now_ms`).
pub async fn rotate(store: &Store, now_ms: i64) -> Result<String, SignerError> {
    let rng = SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| SignerError::Key(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| SignerError::Key(e.to_string()))?;
    let public = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    // Key id: a time-ordered prefix plus a piece of the public key, unique in practice.
    let kid = format!("k{now_ms:x}-{}", &public[..8]);
    let row = SigningKeyRow {
        kid: kid.clone(),
        private_pkcs8: URL_SAFE_NO_PAD.encode(doc.as_ref()),
        public_key: public,
        created_at: now_ms,
        retired_at: None,
    };
    store.add_signing_key(&row, now_ms).await?;
    tracing::info!(kid = %kid, "playback signing key created");
    Ok(kid)
}

/// Makes sure a current key exists; rotates when none does or when the current one is
/// older than `rotate_every_ms` (0: never).
pub async fn ensure_key(store: &Store, now_ms: i64, rotate_every_ms: i64) -> Result<(), SignerError> {
    let keys = store.signing_keys().await?;
    match keys.iter().find(|k| k.retired_at.is_none()) {
        None => {
            rotate(store, now_ms).await?;
        }
        Some(k) if rotate_every_ms > 0 && now_ms - k.created_at >= rotate_every_ms => {
            rotate(store, now_ms).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// Signs `claims` (their `kid` is set to the current key's).
pub async fn mint(store: &Store, mut claims: PlaybackClaims) -> Result<String, SignerError> {
    let keys = store.signing_keys().await?;
    let key = keys.iter().find(|k| k.retired_at.is_none()).ok_or(SignerError::NoKey)?;
    let doc = URL_SAFE_NO_PAD.decode(&key.private_pkcs8).map_err(|e| SignerError::Key(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(&doc).map_err(|e| SignerError::Key(e.to_string()))?;
    claims.kid = key.kid.clone();
    let input = signing_input(&claims);
    let sig = pair.sign(input.as_bytes());
    Ok(assemble(&input, sig.as_ref()))
}

/// The published key set at `now_ms`: current keys and retired keys still in their grace
/// period, plus per-channel revocations. Keys past their grace are purged from the store.
pub async fn key_set(
    store: &Store,
    now_ms: i64,
    grace_ms: i64,
    refresh_secs: u64,
) -> Result<KeySet, SignerError> {
    store.purge_signing_keys(now_ms.saturating_sub(grace_ms)).await?;
    let keys = store
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| PublicKey {
            kid: k.kid,
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            x: k.public_key,
            not_after: k.retired_at.map(|r| (r + grace_ms) / 1000),
        })
        .collect();
    let revocations = store
        .token_revocations()
        .await?
        .into_iter()
        .map(|(channel, not_before)| Revocation { channel, not_before })
        .collect();
    Ok(KeySet { keys, revocations, refresh_secs })
}
