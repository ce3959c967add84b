//! A small RTMP publishing client.
//!
//! - [`amf0`]: AMF0 command encoding/decoding (sans-IO).
//! - [`chunk`]: chunk stream encoder and decoder (sans-IO).
//! - [`client`]: the tokio client: handshake, `connect`, `createStream`, `publish`, then
//!   audio/video messages, with a task that drains (and answers pings from) the server.

pub mod amf0;
pub mod chunk;
pub mod client;

pub use client::RtmpPublisher;

/// Why an RTMP publish failed.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The URL is not `rtmp://host[:port]/app/key`.
    #[error("bad RTMP URL `{0}` (expected rtmp://host[:port]/app/key)")]
    BadUrl(String),
    /// A socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not answer in time.
    #[error("timed out during {0}")]
    Timeout(&'static str),
    /// The server sent something this client cannot follow.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// A command body could not be decoded.
    #[error("amf0: {0}")]
    Amf0(#[from] amf0::Amf0Error),
    /// The server refused a command (its status code or error description).
    #[error("server refused {command}: {reason}")]
    Refused {
        /// The command.
        command: &'static str,
        /// The server's code/description.
        reason: String,
    },
    /// The connection was closed.
    #[error("connection closed")]
    Closed,
}

/// A parsed `rtmp://host[:port]/app/key` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port (1935 when absent).
    pub port: u16,
    /// Application name.
    pub app: String,
    /// Stream key (publishing name).
    pub key: String,
}

impl RtmpUrl {
    /// Parses a URL; the key is everything after the application.
    pub fn parse(url: &str) -> Result<Self, RtmpError> {
        let bad = || RtmpError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').ok_or_else(bad)?;
        let (app, key) = path.split_once('/').ok_or_else(bad)?;
        if app.is_empty() || key.is_empty() || authority.is_empty() {
            return Err(bad());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h.to_owned(), p.parse().map_err(|_| bad())?)
            }
            _ => (authority.to_owned(), 1935),
        };
        Ok(Self {
            host: host.trim_matches(|c| c == '[' || c == ']').to_owned(),
            port,
            app: app.to_owned(),
            key: key.to_owned(),
        })
    }

    /// The `tcUrl` sent in `connect`.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host, self.port, self.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:19350/live/bench0").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.app.as_str()), ("127.0.0.1", 19350, "live"));
        assert_eq!(u.key, "bench0");
        assert_eq!(u.tc_url(), "rtmp://127.0.0.1:19350/live");
        assert_eq!(RtmpUrl::parse("rtmp://host/app/a/b").unwrap().key, "a/b");
        assert_eq!(RtmpUrl::parse("rtmp://host/app/k").unwrap().port, 1935);
        for bad in ["http://h/a/k", "rtmp://h/app", "rtmp://h:x/a/k", "rtmp:///a/k"] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
