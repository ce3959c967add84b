//! Publish authorisation: which stream key publishes to which channel.
//!
//! Until a control plane is configured, keys come from the config file. Keys are compared
//! in constant time and never logged.

use std::future::Future;
use std::pin::Pin;

use skyrelay_common::cpapi::client::ControlPlaneClient;
use subtle::ConstantTimeEq;

use crate::config::StreamKeyEntry;

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishAuthError {
    /// No channel has this key (or it was revoked).
    #[error("unknown or revoked stream key")]
    UnknownKey,
    /// The authority could not be asked.
    #[error("publish authority unavailable: {0}")]
    Unavailable(String),
}

impl PublishAuthError {
    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PublishAuthError::UnknownKey => "unknown_key",
            PublishAuthError::Unavailable(_) => "auth_unavailable",
        }
    }
}

/// What an accepted key publishes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant {
    pub channel: String,
    /// The channel's own recording setting, when the authority knows it (the control plane
    /// does; config-file keys leave it to `recording.channels`).
    pub record: Option<bool>,
}

/// Decides whether a stream key may publish, and to which channel.
pub trait PublishAuthority: Send + Sync + 'static {
    fn authorize<'a>(
        &'a self,
        stream_key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<PublishGrant, PublishAuthError>> + Send + 'a>>;
}

/// Keys from the configuration file.
pub struct StaticKeys {
    entries: Vec<StreamKeyEntry>,
}

impl StaticKeys {
    pub fn new(entries: Vec<StreamKeyEntry>) -> Self {
        StaticKeys { entries }
    }

    /// Looks `key` up, comparing against every entry in constant time.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        let mut found = None;
        for entry in &self.entries {
            let equal: bool = entry.key.as_bytes().ct_eq(key.as_bytes()).into();
            if equal && found.is_none() {
                found = Some(entry.channel.as_str());
            }
        }
        found
    }
}

impl PublishAuthority for StaticKeys {
    fn authorize<'a>(
        &'a self,
        stream_key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<PublishGrant, PublishAuthError>> + Send + 'a>> {
        let result = self
            .lookup(stream_key)
            .map(|channel| PublishGrant { channel: channel.to_owned(), record: None })
            .ok_or(PublishAuthError::UnknownKey);
        Box::pin(std::future::ready(result))
    }
}

/// Keys decided by the control plane (`POST /v1/publish/authorize`). The answer holds for
/// the whole publishing session, so a control-plane outage does not cut a live stream.
pub struct ControlPlaneKeys {
    client: ControlPlaneClient,
    node: String,
}

impl ControlPlaneKeys {
    pub fn new(client: ControlPlaneClient, node: String) -> Self {
        ControlPlaneKeys { client, node }
    }
}

impl PublishAuthority for ControlPlaneKeys {
    fn authorize<'a>(
        &'a self,
        stream_key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<PublishGrant, PublishAuthError>> + Send + 'a>> {
        Box::pin(async move {
            match self.client.authorize_publish(stream_key, &self.node).await {
                Ok(grant) => Ok(PublishGrant { channel: grant.channel, record: Some(grant.recording) }),
                Err(e) if e.is_refusal() => Err(PublishAuthError::UnknownKey),
                Err(e) => Err(PublishAuthError::Unavailable(e.to_string())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_matches_exact_keys_only() {
        let keys = StaticKeys::new(vec![
            StreamKeyEntry { key: "secret-one".into(), channel: "a".into() },
            StreamKeyEntry { key: "secret-two".into(), channel: "b".into() },
        ]);
        assert_eq!(keys.lookup("secret-two"), Some("b"));
        assert_eq!(keys.lookup("secret-tw"), None);
        assert_eq!(keys.lookup("secret-one2"), None);
        assert_eq!(keys.lookup(""), None);
    }
}
