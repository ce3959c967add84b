//! `/vod/{recording}/{file}`: recordings played back as HLS VOD. Delivery only routes and
//! shapes responses; a [`VodSource`] finds the bytes (an origin reads its storage, an edge
//! fetches from an origin and caches) and checks access.
//!
//! Objects (`init-{id}.mp4`, `seg-{msn}.m4s`) never change once the playlist exists, so they
//! are served `immutable`; the playlist is `no-cache` (it may carry a playback token and
//! disappears when the recording is deleted).

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};

use super::BoxFuture;
use super::body::DeliveryBody;
use super::handlers::{DENIED_HEADER, ok, text};
use super::routes::parse_query;
use super::{Delivery, Denied};

/// One request for a recording's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VodRequest<'a> {
    /// The catalog id (`{channel}-{recording}`), a plain name.
    pub id: &'a str,
    /// `index.m3u8`, `init-{id}.mp4` or `seg-{msn}.m4s` (already validated).
    pub file: &'a str,
    /// The `token=` query parameter.
    pub token: Option<&'a str>,
    /// The viewer's address (token claims may bind it).
    pub client: IpAddr,
}

impl VodRequest<'_> {
    /// Whether the playlist is asked for (else an immutable object).
    pub fn is_playlist(&self) -> bool {
        self.file == "index.m3u8"
    }
}

/// A file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodObject {
    pub body: Bytes,
    pub content_type: &'static str,
}

/// Why a file cannot be served: the status and a message for the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct VodError {
    pub status: StatusCode,
    pub message: String,
    /// Set when access was refused (sent in the `X-Skyrelay-Denied` header too).
    pub denied: bool,
}

impl VodError {
    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        VodError { status: StatusCode::NOT_FOUND, message: message.into(), denied: false }
    }

    /// 502: the place the bytes come from failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        VodError { status: StatusCode::BAD_GATEWAY, message: message.into(), denied: false }
    }
}

impl From<Denied> for VodError {
    fn from(d: Denied) -> Self {
        VodError { status: d.status, message: d.reason, denied: true }
    }
}

/// Finds a recording's files (see the module docs).
pub trait VodSource: Send + Sync + 'static {
    fn get<'a>(&'a self, req: VodRequest<'a>) -> BoxFuture<'a, Result<VodObject, VodError>>;
}

/// The content type of a recording file.
pub fn content_type(file: &str) -> &'static str {
    if file.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl"
    } else if file.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/iso.segment"
    }
}

impl Delivery {
    /// Answers `/vod/{id}/{file}`.
    pub(super) async fn vod(
        &self,
        id: &str,
        file: &str,
        query: Option<&str>,
        client: IpAddr,
    ) -> http::Response<DeliveryBody> {
        let Some(source) = &self.vod else {
            return text(StatusCode::NOT_FOUND, "recordings are not served by this node");
        };
        let token = match parse_query(query) {
            Ok(q) => q.token,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let req = VodRequest { id, file, token, client };
        match source.get(req).await {
            Ok(obj) => {
                let cache = if req.is_playlist() {
                    HeaderValue::from_static("no-cache")
                } else {
                    self.immutable.clone()
                };
                ok(DeliveryBody::full(obj.body), obj.content_type, cache)
            }
            Err(e) if e.denied => {
                let mut r = text(e.status, format!("access denied: {}", e.message));
                let reason: String =
                    e.message.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect();
                if let Ok(v) = HeaderValue::from_str(&reason) {
                    r.headers_mut().insert(DENIED_HEADER, v);
                }
                r
            }
            Err(e) => text(e.status, e.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("init-1.mp4"), "video/mp4");
        assert_eq!(content_type("seg-3.m4s"), "video/iso.segment");
    }
}
