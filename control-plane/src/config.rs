//! The control plane's configuration (`control-plane.toml`; see `config/control-plane.toml`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use skyrelay_common::config::{ConfigError, Validate, check_range};
use skyrelay_common::cpapi::Cidr;

/// Everything the control plane is configured with. Defaults run on one machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    /// HTTP API listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the SQLite file and the generated node secret.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `sqlite://{data_dir}/control-plane.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Region of clients that no hint or CIDR places.
    #[serde(default = "default_region")]
    pub default_region: String,
    /// Regions with their client networks and distances to other regions.
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Shared secret nodes authenticate with; generated into `data_dir/node-secret` if unset.
    #[serde(default)]
    pub node_secret: Option<String>,
    /// Whether anyone may register a streamer account.
    #[serde(default = "yes")]
    pub open_registration: bool,
    /// Lifetime of a login session.
    #[serde(default = "default_session_ttl")]
    pub session_ttl_secs: u64,
    /// Failed logins allowed per user name and per client address within the window.
    #[serde(default = "default_login_failures")]
    pub login_max_failures: u32,
    #[serde(default = "default_login_window")]
    pub login_window_secs: u64,
    /// Heartbeat interval told to nodes.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_interval_ms: u64,
    /// A node is healthy while its last heartbeat is younger than this.
    #[serde(default = "default_node_timeout")]
    pub node_timeout_ms: u64,
    /// Longest `?wait=` of the where-is long-poll.
    #[serde(default = "default_max_wait")]
    pub max_wait_ms: u64,
    /// Bounded-load factor c of the edge choice.
    #[serde(default = "default_load_factor")]
    pub load_factor: f64,
    /// Playback tokens.
    #[serde(default)]
    pub tokens: TokenConfig,
}

/// One region.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    /// Client networks placed in this region.
    #[serde(default)]
    pub cidrs: Vec<String>,
    /// Distance (any unit, e.g. ms RTT) to other regions; the nearest serves as fallback.
    #[serde(default)]
    pub distances: BTreeMap<String, u32>,
}

/// Playback token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Lifetime of a playback token.
    #[serde(default = "default_token_ttl")]
    pub ttl_secs: u64,
    /// How long a rotated-out signing key keeps verifying.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
    /// Rotate the signing key this often (0: only on request).
    #[serde(default)]
    pub rotate_every_secs: u64,
    /// Bind tokens to the viewer's region.
    #[serde(default)]
    pub bind_region: bool,
    /// Bind tokens to the viewer's network (/24 for IPv4, /64 for IPv6).
    #[serde(default)]
    pub bind_client_network: bool,
    /// How often edges should refresh the key set.
    #[serde(default = "default_refresh")]
    pub refresh_secs: u64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            ttl_secs: default_token_ttl(),
            grace_secs: default_grace(),
            rotate_every_secs: 0,
            bind_region: false,
            bind_client_network: false,
            refresh_secs: default_refresh(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8900))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("data/control-plane")
}
fn default_region() -> String {
    "local".into()
}
fn yes() -> bool {
    true
}
fn default_session_ttl() -> u64 {
    7 * 24 * 3600
}
fn default_login_failures() -> u32 {
    5
}
fn default_login_window() -> u64 {
    300
}
fn default_heartbeat() -> u64 {
    2000
}
fn default_node_timeout() -> u64 {
    10_000
}
fn default_max_wait() -> u64 {
    30_000
}
fn default_load_factor() -> f64 {
    1.25
}
fn default_token_ttl() -> u64 {
    6 * 3600
}
fn default_grace() -> u64 {
    24 * 3600
}
fn default_refresh() -> u64 {
    60
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        // An empty document takes every default.
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("all fields have defaults"))
    }
}

impl ControlPlaneConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("control-plane.db").display()),
        }
    }

    /// The configured region names.
    pub fn region_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_region.as_str()).chain(self.regions.iter().map(|r| r.name.as_str()))
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Validate for ControlPlaneConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !valid_name(&self.default_region) {
            return Err(ConfigError::invalid("default_region", "must be 1-64 of [A-Za-z0-9._-]"));
        }
        if let Some(u) = &self.database_url
            && !(u.starts_with("sqlite:") || u.starts_with("postgres:") || u.starts_with("postgresql:"))
        {
            return Err(ConfigError::invalid("database_url", "must start with sqlite: or postgres:"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.regions.iter().enumerate() {
            if !valid_name(&r.name) || !seen.insert(r.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("regions[{i}].name"),
                    format!("`{}` is invalid or repeated", r.name),
                ));
            }
            for c in &r.cidrs {
                c.parse::<Cidr>()
                    .map_err(|e| ConfigError::invalid(format!("regions[{i}].cidrs"), e.to_string()))?;
            }
        }
        for (i, r) in self.regions.iter().enumerate() {
            for other in r.distances.keys() {
                if !self.region_names().any(|n| n == other) {
                    return Err(ConfigError::invalid(
                        format!("regions[{i}].distances"),
                        format!("unknown region `{other}`"),
                    ));
                }
            }
        }
        for c in &self.trusted_proxies {
            c.parse::<Cidr>().map_err(|e| ConfigError::invalid("trusted_proxies", e.to_string()))?;
        }
        if let Some(s) = &self.node_secret
            && s.len() < 16
        {
            return Err(ConfigError::invalid("node_secret", "must be at least 16 characters"));
        }
        check_range("session_ttl_secs", self.session_ttl_secs, 60, 365 * 24 * 3600)?;
        check_range("login_max_failures", self.login_max_failures, 1, 1000)?;
        check_range("login_window_secs", self.login_window_secs, 1, 24 * 3600)?;
        check_range("heartbeat_interval_ms", self.heartbeat_interval_ms, 100, 60_000)?;
        check_range("node_timeout_ms", self.node_timeout_ms, self.heartbeat_interval_ms, 600_000)?;
        check_range("max_wait_ms", self.max_wait_ms, 0, 120_000)?;
        check_range("load_factor", self.load_factor, 1.0, 10.0)?;
        check_range("tokens.ttl_secs", self.tokens.ttl_secs, 10, 30 * 24 * 3600)?;
        check_range("tokens.grace_secs", self.tokens.grace_secs, 0, 30 * 24 * 3600)?;
        check_range("tokens.refresh_secs", self.tokens.refresh_secs, 1, 3600)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyrelay_common::config::from_toml;

    #[test]
    fn defaults_validate_and_example_parses() {
        let d: ControlPlaneConfig = from_toml("").unwrap();
        assert!(d.database_url().starts_with("sqlite://"));
        let example = include_str!("../../config/control-plane.toml");
        let cfg: ControlPlaneConfig = from_toml(example).unwrap();
        assert!(!cfg.regions.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_toml::<ControlPlaneConfig>("[[regions]]\nname = \"eu\"\ncidrs = [\"10.0.0.0/99\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("regions[0].cidrs"), "{err}");
        let err = from_toml::<ControlPlaneConfig>("load_factor = 0.5").unwrap_err().to_string();
        assert!(err.contains("load_factor"), "{err}");
        assert!(from_toml::<ControlPlaneConfig>("bogus = 1").is_err());
    }
}
