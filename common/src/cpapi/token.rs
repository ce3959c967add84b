//! Playback tokens: `base64url(claims JSON) "." base64url(Ed25519 signature)`.
//!
//! The signature covers the first part exactly as sent (its ASCII bytes). The claims carry
//! the key id (`kid`), so an edge picks the public key from its [`KeyRing`] without a
//! separate header. Only the control plane holds private keys; this module only verifies
//! (plus [`signing_input`] / [`assemble`], the pure halves of signing).
//!
//! Verification is pure: time is an argument (`now`, unix seconds).

use std::collections::HashMap;
use std::net::IpAddr;

use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::net::Cidr;
use super::types::KeySet;

/// Longest token accepted; anything longer is malformed without further parsing.
pub const MAX_TOKEN_LEN: usize = 2048;

/// The claims of a playback token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PlaybackClaims {
    /// Id of the signing key.
    pub kid: String,
    /// The channel the token opens.
    pub ch: String,
    /// Issued at (unix seconds); compared with the channel's revocation time.
    pub iat: i64,
    /// Not valid before (unix seconds).
    pub nbf: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Client network the token is bound to (CIDR), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<String>,
    /// Region the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg: Option<String>,
}

/// Why a token was refused. [`TokenError::reason`] is what edges put in the reason header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was presented for a private channel.
    #[error("a token is required")]
    Missing,
    /// Not two base64url parts, bad JSON, or too long.
    #[error("malformed token")]
    Malformed,
    /// The key id is not in the key set.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify (tampered or forged).
    #[error("bad signature")]
    BadSignature,
    /// The signing key was rotated out and its grace period is over.
    #[error("signing key retired")]
    KeyRetired,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// Issued for another channel.
    #[error("token is for another channel")]
    WrongChannel,
    /// Issued before the channel's revocation time.
    #[error("token revoked")]
    Revoked,
    /// The client address is outside the token's network.
    #[error("client network not allowed")]
    WrongNetwork,
    /// Presented in another region than the token's.
    #[error("region not allowed")]
    WrongRegion,
}

impl TokenError {
    /// A short machine-readable reason (for the reason header and metric labels).
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Missing => "missing",
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown-key",
            TokenError::BadSignature => "bad-signature",
            TokenError::KeyRetired => "key-retired",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not-yet-valid",
            TokenError::WrongChannel => "wrong-channel",
            TokenError::Revoked => "revoked",
            TokenError::WrongNetwork => "wrong-network",
            TokenError::WrongRegion => "wrong-region",
        }
    }
}

/// The first half of a token: the part that gets signed.
pub fn signing_input(claims: &PlaybackClaims) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Joins a signing input and its signature into a token.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Decodes the claims without verifying anything (for diagnostics only).
pub fn peek_claims(token: &str) -> Result<PlaybackClaims, TokenError> {
    split(token).map(|(claims, _, _)| claims)
}

fn split(token: &str) -> Result<(PlaybackClaims, &str, Vec<u8>), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    let claims: PlaybackClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    Ok((claims, payload, sig))
}

struct Key {
    public: Vec<u8>,
    not_after: Option<i64>,
}

/// What a request for a channel looks like to the verifier.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The channel being requested.
    pub channel: &'a str,
    /// The viewer's address, when known.
    pub client_ip: Option<IpAddr>,
    /// The verifying edge's region.
    pub region: Option<&'a str>,
}

/// The public keys and revocations an edge verifies with (built from a fetched [`KeySet`]).
pub struct KeyRing {
    keys: HashMap<String, Key>,
    revoked_before: HashMap<String, i64>,
    leeway_secs: i64,
}

impl KeyRing {
    /// Default tolerance for clock differences between control plane and edges.
    pub const DEFAULT_LEEWAY_SECS: i64 = 5;

    /// A ring from a key set. Keys that are not Ed25519 or not 32 bytes are skipped.
    pub fn new(set: &KeySet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter(|k| k.crv == "Ed25519")
            .filter_map(|k| {
                let public = URL_SAFE_NO_PAD.decode(&k.x).ok().filter(|p| p.len() == 32)?;
                Some((k.kid.clone(), Key { public, not_after: k.not_after }))
            })
            .collect();
        let revoked_before = set.revocations.iter().map(|r| (r.channel.clone(), r.not_before)).collect();
        KeyRing { keys, revoked_before, leeway_secs: Self::DEFAULT_LEEWAY_SECS }
    }

    /// Sets the clock tolerance.
    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.leeway_secs = secs.max(0);
        self
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies `token` for a request at `now` (unix seconds).
    pub fn verify(&self, token: &str, req: Presented<'_>, now: i64) -> Result<PlaybackClaims, TokenError> {
        let (claims, payload, sig) = split(token)?;
        let key = self.keys.get(&claims.kid).ok_or(TokenError::UnknownKey)?;
        UnparsedPublicKey::new(&ED25519, &key.public)
            .verify(payload.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature)?;
        let leeway = self.leeway_secs;
        if key.not_after.is_some_and(|t| now > t.saturating_add(leeway)) {
            return Err(TokenError::KeyRetired);
        }
        if now > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now < claims.nbf.saturating_sub(leeway) {
            return Err(TokenError::NotYetValid);
        }
        if claims.ch != req.channel {
            return Err(TokenError::WrongChannel);
        }
        if self.revoked_before.get(&claims.ch).is_some_and(|&t| claims.iat < t) {
            return Err(TokenError::Revoked);
        }
        if let Some(net) = &claims.net {
            let net: Cidr = net.parse().map_err(|_| TokenError::Malformed)?;
            if !req.client_ip.is_some_and(|ip| net.contains(ip)) {
                return Err(TokenError::WrongNetwork);
            }
        }
        if let Some(reg) = &claims.reg
            && req.region != Some(reg.as_str())
        {
            return Err(TokenError::WrongRegion);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpapi::types::PublicKey;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use proptest::prelude::*;

    fn ring_and_pair() -> (KeyRing, Ed25519KeyPair) {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap();
        let set = KeySet {
            keys: vec![PublicKey {
                kid: "k1".into(),
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                alg: "EdDSA".into(),
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                not_after: None,
            }],
            revocations: vec![],
            refresh_secs: 60,
        };
        (KeyRing::new(&set), pair)
    }

    fn sign(pair: &Ed25519KeyPair, c: &PlaybackClaims) -> String {
        let input = signing_input(c);
        assemble(&input, pair.sign(input.as_bytes()).as_ref())
    }

    #[test]
    fn round_trip() {
        let (ring, pair) = ring_and_pair();
        let c = PlaybackClaims {
            kid: "k1".into(),
            ch: "c".into(),
            iat: 10,
            nbf: 10,
            exp: 100,
            net: None,
            reg: None,
        };
        let t = sign(&pair, &c);
        let at = Presented { channel: "c", client_ip: None, region: None };
        assert_eq!(ring.verify(&t, at, 50), Ok(c));
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "URL-safe");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(s in ".{0,300}", cut in 0usize..200) {
            let (ring, pair) = ring_and_pair();
            let at = Presented { channel: "c", client_ip: None, region: None };
            prop_assert!(ring.verify(&s, at, 0).is_err());
            // A valid token cut short or with garbage appended is refused, not accepted.
            let c = PlaybackClaims { kid: "k1".into(), ch: "c".into(), iat: 0, nbf: 0, exp: 100, net: None, reg: None };
            let t = sign(&pair, &c);
            let cut = cut.min(t.len() - 1);
            prop_assert!(ring.verify(&t[..cut], at, 1).is_err());
            let longer = format!("{t}{s}");
            prop_assert!(s.is_empty() || ring.verify(&longer, at, 1).is_err());
        }
    }
}
