//! Typed configuration: a TOML file plus `SKYRELAY_` environment overrides.
//!
//! Each role has its own struct (`#[serde(deny_unknown_fields)]`, defaults that run on one
//! machine) implementing [`Validate`]. Environment variables override the file:
//! `SKYRELAY_RTMP__LISTEN=0.0.0.0:1935` sets `rtmp.listen` (double underscore separates
//! levels).

use std::path::Path;

use serde::de::DeserializeOwned;

/// A configuration that could not be loaded or is invalid. Always names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or the environment could not be read or parsed into the typed struct.
    #[error("configuration: {0}")]
    Load(String),
    /// A value parsed but is out of range or inconsistent.
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// An invalid value at `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
}

/// Checks a loaded configuration; errors name the offending key.
pub trait Validate {
    fn validate(&self) -> Result<(), ConfigError>;
}

/// Loads `T` from the optional TOML file at `path`, then the `SKYRELAY_` environment,
/// then validates it.
pub fn load<T: DeserializeOwned + Validate>(path: Option<&Path>) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError::Load(format!("file {} does not exist", path.display())));
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix("SKYRELAY").prefix_separator("_").separator("__").try_parsing(true),
    );
    let built = builder.build().map_err(|e| ConfigError::Load(e.to_string()))?;
    let value: T = built.try_deserialize().map_err(|e| ConfigError::Load(e.to_string()))?;
    value.validate()?;
    Ok(value)
}

/// Loads `T` from TOML text (no environment), then validates it. For tests and embedding.
pub fn from_toml<T: DeserializeOwned + Validate>(text: &str) -> Result<T, ConfigError> {
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    let value: T = built.try_deserialize().map_err(|e| ConfigError::Load(e.to_string()))?;
    value.validate()?;
    Ok(value)
}

/// Checks that `value` lies in `min..=max`, naming `key` otherwise.
pub fn check_range<V: PartialOrd + std::fmt::Display>(
    key: &str,
    value: V,
    min: V,
    max: V,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(key, format!("{value} is outside {min}..={max}")));
    }
    Ok(())
}

/// How a node reaches the control plane (`[control_plane]` in origin and edge configs).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeControlPlaneConfig {
    /// Base URL of the control-plane API, e.g. `http://10.0.0.2:8900`. Unset: the node
    /// runs stand-alone (static keys on origins, a static upstream on edges).
    pub url: Option<String>,
    /// The cluster node secret (or `node_secret_file`).
    pub node_secret: Option<String>,
    /// A file holding the node secret (the control plane writes `data_dir/node-secret`).
    pub node_secret_file: Option<std::path::PathBuf>,
    /// URL viewers (edges) or edges (origins) reach this node's HTTP at; default: from
    /// the listen address.
    pub public_url: Option<String>,
    /// Origins: the RTMP base URL streamers publish to; default: from the listen address.
    pub rtmp_url: Option<String>,
    /// The relay address other nodes subscribe to; default: the relay listen address.
    pub relay_addr: Option<String>,
}

impl std::fmt::Debug for NodeControlPlaneConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeControlPlaneConfig")
            .field("url", &self.url)
            .field("node_secret", &self.node_secret.as_ref().map(|_| "<redacted>"))
            .field("node_secret_file", &self.node_secret_file)
            .field("public_url", &self.public_url)
            .field("rtmp_url", &self.rtmp_url)
            .field("relay_addr", &self.relay_addr)
            .finish()
    }
}

impl NodeControlPlaneConfig {
    /// The URL and node secret when a control plane is configured; errors name the key.
    pub fn resolve(&self) -> Result<Option<(String, String)>, ConfigError> {
        let Some(url) = &self.url else { return Ok(None) };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid("control_plane.url", format!("{url:?} is not an http(s) URL")));
        }
        let secret = match (&self.node_secret, &self.node_secret_file) {
            (Some(s), _) => s.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    ConfigError::invalid("control_plane.node_secret_file", format!("{}: {e}", path.display()))
                })?
                .trim()
                .to_string(),
            (None, None) => {
                return Err(ConfigError::invalid(
                    "control_plane.node_secret",
                    "set node_secret or node_secret_file to talk to the control plane",
                ));
            }
        };
        if secret.is_empty() {
            return Err(ConfigError::invalid("control_plane.node_secret", "is empty"));
        }
        Ok(Some((url.clone(), secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default = "default_n")]
        n: u32,
    }
    fn default_n() -> u32 {
        5
    }
    impl Validate for Sample {
        fn validate(&self) -> Result<(), ConfigError> {
            check_range("n", self.n, 1, 10)
        }
    }

    #[test]
    fn defaults_apply_and_validation_names_key() {
        let s: Sample = from_toml("").unwrap();
        assert_eq!(s.n, 5);
        let err = from_toml::<Sample>("n = 50").unwrap_err().to_string();
        assert!(err.contains("`n`"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let err = from_toml::<Sample>("m = 1").unwrap_err().to_string();
        assert!(err.contains('m'), "{err}");
    }
}
