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
        config::Environment::with_prefix("SKYRELAY")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true),
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
