//! Playback-token verification (common::cpapi::token) against tokens the control plane's
//! signer mints: every way a token can be refused.

mod support;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use skyrelay_common::cpapi::token::{Presented, assemble, signing_input};
use skyrelay_common::cpapi::{KeyRing, KeySet, PlaybackClaims, PublicKey, Revocation, TokenError};
use skyrelay_control_plane::signer;
use skyrelay_control_plane::store::Store;

const NOW: i64 = 1_800_000_000;
const GRACE_MS: i64 = 3_600_000;

fn claims(ch: &str) -> PlaybackClaims {
    PlaybackClaims {
        kid: String::new(),
        ch: ch.into(),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 600,
        net: None,
        reg: None,
    }
}

fn at(channel: &str) -> Presented<'_> {
    Presented { channel, client_ip: None, region: None }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&support::sqlite_url(dir.path())).await.unwrap();
    signer::ensure_key(&store, NOW * 1000, 0).await.unwrap();
    (dir, store)
}

async fn ring(store: &Store, now_ms: i64) -> KeyRing {
    KeyRing::new(&signer::key_set(store, now_ms, GRACE_MS, 60).await.unwrap())
}

#[tokio::test]
async fn valid_token_verifies() {
    let (_d, s) = store().await;
    let t = signer::mint(&s, claims("news")).await.unwrap();
    let c = ring(&s, NOW * 1000).await.verify(&t, at("news"), NOW + 1).unwrap();
    assert_eq!(c.ch, "news");
}

#[tokio::test]
async fn time_channel_and_tampering() {
    let (_d, s) = store().await;
    let r = ring(&s, NOW * 1000).await;
    let t = signer::mint(&s, claims("news")).await.unwrap();
    assert_eq!(r.verify(&t, at("news"), NOW + 600 + 60), Err(TokenError::Expired));
    assert_eq!(r.verify(&t, at("news"), NOW - 60), Err(TokenError::NotYetValid));
    assert_eq!(r.verify(&t, at("sports"), NOW), Err(TokenError::WrongChannel));
    // Tampered claims (channel swapped, signature kept).
    let (_, sig) = t.split_once('.').unwrap();
    let mut forged = claims("sports");
    forged.kid = skyrelay_common::cpapi::token::peek_claims(&t).unwrap().kid;
    let tampered = format!("{}.{sig}", signing_input(&forged));
    assert_eq!(r.verify(&tampered, at("sports"), NOW), Err(TokenError::BadSignature));
    // Flipped signature byte.
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[0] ^= 1;
    let flipped = assemble(t.split_once('.').unwrap().0, &bytes);
    assert_eq!(r.verify(&flipped, at("news"), NOW), Err(TokenError::BadSignature));
    for junk in ["", ".", "abc", "a.b.c", "!!!.???", &"a".repeat(5000)] {
        assert_eq!(r.verify(junk, at("news"), NOW), Err(TokenError::Malformed), "{junk:.20}");
    }
}

#[tokio::test]
async fn unknown_kid_and_foreign_key() {
    let (_d, s) = store().await;
    let r = ring(&s, NOW * 1000).await;
    // Signed by a key the control plane never published.
    let rng = SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
    let mut c = claims("news");
    c.kid = "k-unknown".into();
    let input = signing_input(&c);
    let t = assemble(&input, pair.sign(input.as_bytes()).as_ref());
    assert_eq!(r.verify(&t, at("news"), NOW), Err(TokenError::UnknownKey));
    // Same kid as a published key, wrong private key.
    c.kid = signer::key_set(&s, NOW * 1000, GRACE_MS, 60).await.unwrap().keys[0].kid.clone();
    let input = signing_input(&c);
    let t = assemble(&input, pair.sign(input.as_bytes()).as_ref());
    assert_eq!(r.verify(&t, at("news"), NOW), Err(TokenError::BadSignature));
    // A ring built from the foreign public key accepts it (the verifier is not the issue).
    let set = KeySet {
        keys: vec![PublicKey {
            kid: c.kid.clone(),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            alg: "EdDSA".into(),
            x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            not_after: None,
        }],
        revocations: vec![],
        refresh_secs: 60,
    };
    assert!(KeyRing::new(&set).verify(&t, at("news"), NOW).is_ok());
}

#[tokio::test]
async fn rotated_key_inside_and_outside_grace() {
    let (_d, s) = store().await;
    let old = signer::mint(&s, claims("news")).await.unwrap();
    let rotated_at = NOW * 1000 + 1000;
    signer::rotate(&s, rotated_at).await.unwrap();
    let new = signer::mint(&s, claims("news")).await.unwrap();
    let inside = ring(&s, rotated_at + GRACE_MS / 2).await;
    assert!(inside.verify(&old, at("news"), NOW + 100).is_ok(), "inside grace");
    assert!(inside.verify(&new, at("news"), NOW + 100).is_ok());
    // Edges still holding a set with the retired key refuse it after the grace period...
    let after = (rotated_at + GRACE_MS) / 1000 + 60;
    let mut long = claims("news");
    long.exp = NOW + 10 * 3600;
    let old_long = {
        // A long-lived token from the old key: mint before rotation on a second store.
        let (_d2, s2) = store().await;
        let t = signer::mint(&s2, long.clone()).await.unwrap();
        signer::rotate(&s2, rotated_at).await.unwrap();
        let held = ring(&s2, rotated_at + 1).await;
        assert_eq!(held.verify(&t, at("news"), after), Err(TokenError::KeyRetired));
        t
    };
    assert!(!old_long.is_empty());
    // ...and a set fetched after the grace period no longer lists it at all.
    let fresh = ring(&s, rotated_at + GRACE_MS + 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh.verify(&old, at("news"), NOW + 100), Err(TokenError::UnknownKey));
}

#[tokio::test]
async fn revoked_wrong_network_wrong_region() {
    let (_d, s) = store().await;
    let t = signer::mint(&s, claims("news")).await.unwrap();
    let mut set = signer::key_set(&s, NOW * 1000, GRACE_MS, 60).await.unwrap();
    set.revocations.push(Revocation { channel: "news".into(), not_before: NOW + 1 });
    assert_eq!(KeyRing::new(&set).verify(&t, at("news"), NOW + 2), Err(TokenError::Revoked));
    set.revocations[0].not_before = NOW;
    assert!(
        KeyRing::new(&set).verify(&t, at("news"), NOW + 2).is_ok(),
        "issued at the revocation second: valid"
    );

    let r = ring(&s, NOW * 1000).await;
    let mut c = claims("news");
    c.net = Some("10.1.2.0/24".into());
    c.reg = Some("eu".into());
    let bound = signer::mint(&s, c).await.unwrap();
    let req = |ip: &str, reg: &'static str| Presented {
        channel: "news",
        client_ip: Some(ip.parse().unwrap()),
        region: Some(reg),
    };
    assert!(r.verify(&bound, req("10.1.2.77", "eu"), NOW).is_ok());
    assert_eq!(r.verify(&bound, req("10.1.3.1", "eu"), NOW), Err(TokenError::WrongNetwork));
    assert_eq!(r.verify(&bound, at("news"), NOW), Err(TokenError::WrongNetwork), "unknown client address");
    assert_eq!(r.verify(&bound, req("10.1.2.77", "us"), NOW), Err(TokenError::WrongRegion));
    assert_eq!(TokenError::WrongNetwork.reason(), "wrong-network");
}
