//! The browser-facing routes, served by origins and edges alike:
//!
//! - `/watch/{channel}`: the watch page, with its script `/web/watch.js` and style sheet
//!   `/web/watch.css`, all three embedded from `web/src/` at build time;
//! - `/web/hls.min.js`: the player library, read once from
//!   [`DeliveryConfig::web_assets_dir`](super::DeliveryConfig::web_assets_dir) (installed by
//!   `npm ci --prefix web`) and kept in memory; a 503 says how to install it when missing;
//! - `/web/info`: `{"node": …, "region": …}`, the node serving the request;
//! - `/healthz`.
//!
//! Every delivery response also names the node in `X-Skyrelay-Node` and `X-Skyrelay-Region`
//! when those are configured.

use std::path::PathBuf;

use bytes::Bytes;
use http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::OnceCell;

use super::body::DeliveryBody;
use super::handlers::{ok, text};
use super::routes::{Route, WebFile};
use super::{Delivery, DeliveryConfig};
use crate::config::ConfigError;

const PAGE: &str = include_str!("../../../web/src/watch.html");
const SCRIPT: &str = include_str!("../../../web/src/watch.js");
const STYLE: &str = include_str!("../../../web/src/watch.css");
/// The player library's file name inside the web assets directory.
pub const PLAYER_FILE: &str = "hls.min.js";
/// Largest player library accepted (hls.js is about 0.5 MB).
const MAX_PLAYER_BYTES: u64 = 8 << 20;
const NODE_HEADER: HeaderName = HeaderName::from_static("x-skyrelay-node");
const REGION_HEADER: HeaderName = HeaderName::from_static("x-skyrelay-region");
const NO_CACHE: &str = "no-cache";
/// Same-origin everything; `blob:` for Media Source Extensions and hls.js's worker.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'";
const MAX_LABEL_LEN: usize = 64;

/// Checks a node or region name: up to 64 characters from `A-Z a-z 0-9 - _ . :`, or empty.
pub(super) fn validate_label(key: &str, value: &str) -> Result<(), ConfigError> {
    let fine = value.len() <= MAX_LABEL_LEN
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if fine {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("{value:?}: use up to {MAX_LABEL_LEN} characters from A-Z a-z 0-9 - _ . :"),
        ))
    }
}

/// What the web routes need, built once per [`Delivery`].
pub(super) struct WebState {
    /// Where the player library is read from (absolute when the working directory is known,
    /// so that error messages name the real place).
    player_path: PathBuf,
    player: OnceCell<Bytes>,
    node: Option<HeaderValue>,
    region: Option<HeaderValue>,
    info: Bytes,
}

fn label(value: &str) -> Option<HeaderValue> {
    if value.is_empty() { None } else { super::lasting_value(value).ok() }
}

impl WebState {
    pub(super) fn new(cfg: &DeliveryConfig) -> Self {
        let dir = &cfg.web_assets_dir;
        let dir = if dir.is_relative() {
            std::env::current_dir().map(|cwd| cwd.join(dir)).unwrap_or_else(|_| dir.clone())
        } else {
            dir.clone()
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let info = serde_json::json!({ "node": opt(&cfg.node_name), "region": opt(&cfg.region) });
        WebState {
            player_path: dir.join(PLAYER_FILE),
            player: OnceCell::new(),
            node: label(&cfg.node_name),
            region: label(&cfg.region),
            info: Bytes::from(info.to_string()),
        }
    }

    /// Adds the node and region headers.
    pub(super) fn identify(&self, h: &mut HeaderMap) {
        if let Some(node) = &self.node {
            h.insert(NODE_HEADER, node.clone());
        }
        if let Some(region) = &self.region {
            h.insert(REGION_HEADER, region.clone());
        }
    }

    async fn player(&self) -> Result<Bytes, std::io::Error> {
        let path = &self.player_path;
        let bytes = self
            .player
            .get_or_try_init(|| async {
                let len = tokio::fs::metadata(path).await?.len();
                if len > MAX_PLAYER_BYTES {
                    return Err(std::io::Error::other(format!("larger than {MAX_PLAYER_BYTES} bytes")));
                }
                tokio::fs::read(path).await.map(Bytes::from)
            })
            .await?;
        Ok(bytes.clone())
    }
}

impl Delivery {
    /// Routes that serve no channel media and are not access-checked.
    pub(super) async fn public(&self, route: Route<'_>) -> http::Response<DeliveryBody> {
        let no_cache = || HeaderValue::from_static(NO_CACHE);
        match route {
            Route::Health => text(StatusCode::OK, "ok"),
            Route::Vod { .. } => text(StatusCode::NOT_FOUND, "not found"),
            Route::Watch { .. } => {
                let mut r = ok(DeliveryBody::full(PAGE), "text/html; charset=utf-8", no_cache());
                let h = r.headers_mut();
                h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
                h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                // The page URL may carry a playback token.
                h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                r
            }
            Route::Web(WebFile::Script) => {
                ok(DeliveryBody::full(SCRIPT), "text/javascript; charset=utf-8", no_cache())
            }
            Route::Web(WebFile::Style) => {
                ok(DeliveryBody::full(STYLE), "text/css; charset=utf-8", no_cache())
            }
            Route::Web(WebFile::Info) => {
                ok(DeliveryBody::full(self.web.info.clone()), "application/json", no_cache())
            }
            Route::Web(WebFile::Player) => match self.web.player().await {
                Ok(bytes) => ok(
                    DeliveryBody::full(bytes),
                    "text/javascript; charset=utf-8",
                    HeaderValue::from_static("public, max-age=3600"),
                ),
                Err(e) => {
                    tracing::debug!(path = %self.web.player_path.display(), error = %e, "player library missing");
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "The player library is not installed: cannot read {} ({e}).\n\
                             Install it with `npm ci --prefix web` in the Skyrelay checkout (Node.js and npm \
                             needed), or set the delivery setting `web_assets_dir` to the `dist` directory \
                             of the npm package hls.js.",
                            self.web.player_path.display()
                        ),
                    )
                }
            },
            Route::Master { .. }
            | Route::Playlist { .. }
            | Route::Init { .. }
            | Route::Segment { .. }
            | Route::Part { .. } => text(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use http::header::{CACHE_CONTROL, CONTENT_TYPE};
    use http::{Method, Request, Response};
    use http_body_util::BodyExt;

    use super::*;
    use crate::config::Validate;
    use crate::hub::Hub;
    use crate::window::WindowConfig;

    fn delivery(cfg: DeliveryConfig) -> Delivery {
        let hub = Arc::new(Hub::new(WindowConfig::default()));
        Delivery::new(hub, cfg, &prometheus::Registry::new(), "web_test").unwrap()
    }

    async fn get(d: &Delivery, method: Method, path: &str) -> (Response<()>, String) {
        let req = Request::builder().method(method).uri(path).body(()).unwrap();
        let (parts, body) = d.handle(req, IpAddr::V4(Ipv4Addr::LOCALHOST)).await.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (Response::from_parts(parts, ()), String::from_utf8_lossy(&body).into_owned())
    }

    fn header<'a>(r: &'a Response<()>, name: &str) -> &'a str {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// A unique, empty scratch directory under the system temp dir.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("skyrelay-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn watch_page_and_its_files() {
        let d = delivery(DeliveryConfig::default());
        let (r, body) = get(&d, Method::GET, "/watch/demo").await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, CONTENT_TYPE.as_str()), "text/html; charset=utf-8");
        assert!(header(&r, CONTENT_SECURITY_POLICY.as_str()).contains("media-src 'self' blob:"));
        assert!(body.contains("/web/hls.min.js") && body.contains("/web/watch.js"), "{body}");
        let (r, body) = get(&d, Method::GET, "/web/watch.js").await;
        assert_eq!(
            (r.status().as_u16(), header(&r, CONTENT_TYPE.as_str())),
            (200, "text/javascript; charset=utf-8")
        );
        assert!(body.contains("lowLatencyMode: true") && body.contains("skyrelayStats"));
        let (r, _) = get(&d, Method::GET, "/web/watch.css").await;
        assert_eq!(header(&r, CONTENT_TYPE.as_str()), "text/css; charset=utf-8");
        let (r, body) = get(&d, Method::HEAD, "/watch/demo").await;
        assert_eq!((r.status().as_u16(), body.as_str()), (200, ""));
        for bad in ["/watch/", "/watch/a/b", "/watch/.hidden", "/web/other.js"] {
            assert_eq!(get(&d, Method::GET, bad).await.0.status(), 404, "{bad}");
        }
    }

    #[tokio::test]
    async fn player_library_from_the_assets_dir_or_a_503_that_says_how() {
        let dir = scratch("player");
        let cfg = DeliveryConfig { web_assets_dir: dir.clone(), ..DeliveryConfig::default() };
        let d = delivery(cfg);
        let (r, body) = get(&d, Method::GET, "/web/hls.min.js").await;
        assert_eq!(r.status(), 503);
        assert!(body.contains("npm ci --prefix web") && body.contains(&dir.display().to_string()), "{body}");
        // Installed later: served without a restart, then kept.
        std::fs::write(dir.join(PLAYER_FILE), "var Hls = 1;").unwrap();
        let (r, body) = get(&d, Method::GET, "/web/hls.min.js").await;
        assert_eq!((r.status().as_u16(), body.as_str()), (200, "var Hls = 1;"));
        assert_eq!(header(&r, CACHE_CONTROL.as_str()), "public, max-age=3600");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(get(&d, Method::GET, "/web/hls.min.js").await.0.status(), 200);
    }

    #[tokio::test]
    async fn node_and_region_in_headers_and_info() {
        let d = delivery(DeliveryConfig::default());
        let (r, body) = get(&d, Method::GET, "/web/info").await;
        assert_eq!(body, r#"{"node":null,"region":null}"#);
        assert!(r.headers().get(NODE_HEADER).is_none());

        let cfg = DeliveryConfig {
            node_name: "edge-eu-1".into(),
            region: "eu".into(),
            ..DeliveryConfig::default()
        };
        let d = delivery(cfg);
        let (r, body) = get(&d, Method::GET, "/web/info").await;
        assert_eq!(
            (header(&r, CONTENT_TYPE.as_str()), body.as_str()),
            ("application/json", r#"{"node":"edge-eu-1","region":"eu"}"#)
        );
        let (r, _) = get(&d, Method::GET, "/live/nothing/master.m3u8").await;
        assert_eq!(r.status(), 404);
        assert_eq!(
            (header(&r, NODE_HEADER.as_str()), header(&r, REGION_HEADER.as_str())),
            ("edge-eu-1", "eu")
        );
        assert!(header(&r, "access-control-expose-headers").contains("X-Skyrelay-Node"));
    }

    #[test]
    fn labels_are_checked() {
        for bad in ["edge 1", "a\"b", "é", &"x".repeat(65)] {
            let cfg = DeliveryConfig { node_name: bad.into(), ..DeliveryConfig::default() };
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains("node_name"), "{err}");
        }
        let cfg = DeliveryConfig { region: "us-east:2".into(), ..DeliveryConfig::default() };
        cfg.validate().unwrap();
    }
}
