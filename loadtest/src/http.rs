//! HTTP for viewers: one pooled hyper-util client per target, URL resolution that keeps
//! every request on the address the run was given, and streaming GETs that hand each body
//! chunk to a callback and keep nothing.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The pooled client type.
pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Largest playlist accepted.
pub const MAX_PLAYLIST: usize = 1 << 20;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL could not be parsed or resolved.
    #[error("bad URL `{0}`")]
    BadUrl(String),
    /// A playlist pointed outside the address the run was given.
    #[error("URL `{0}` leaves the target address")]
    OutOfScope(String),
    /// Non-2xx status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The request did not complete in time.
    #[error("timed out")]
    Timeout,
    /// Connection or protocol error.
    #[error("http: {0}")]
    Http(String),
    /// A playlist exceeded [`MAX_PLAYLIST`].
    #[error("body too large")]
    TooLarge,
    /// A playlist could not be parsed.
    #[error("bad playlist from `{0}`")]
    BadPlaylist(String),
}

impl FetchError {
    /// Short label for error counts.
    pub fn kind(&self) -> String {
        match self {
            FetchError::BadUrl(_) => "bad_url".into(),
            FetchError::OutOfScope(_) => "out_of_scope".into(),
            FetchError::Status(s) => format!("http_{s}"),
            FetchError::Timeout => "timeout".into(),
            FetchError::Http(_) => "connection".into(),
            FetchError::TooLarge => "too_large".into(),
            FetchError::BadPlaylist(_) => "bad_playlist".into(),
        }
    }
}

/// Builds a pooled client (HTTP/1.1, or HTTP/2 with prior knowledge when `http2`).
pub fn client(http2: bool) -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(5)));
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(Duration::from_secs(30)).pool_max_idle_per_host(usize::MAX).http2_only(http2);
    b.build(conn)
}

/// Resolves `reference` against `base` (absolute URL, absolute path or relative path);
/// the result must keep the scheme and authority of `base`.
pub fn resolve(base: &str, reference: &str) -> Result<String, FetchError> {
    let base_uri: Uri = base.parse().map_err(|_| FetchError::BadUrl(base.to_owned()))?;
    let (Some(scheme), Some(auth)) = (base_uri.scheme_str(), base_uri.authority()) else {
        return Err(FetchError::BadUrl(base.to_owned()));
    };
    let origin = format!("{scheme}://{auth}");
    let out = if reference.contains("://") {
        reference.to_owned()
    } else if reference.starts_with('/') {
        format!("{origin}{reference}")
    } else {
        let path = base_uri.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{origin}{dir}{reference}")
    };
    let uri: Uri = out.parse().map_err(|_| FetchError::BadUrl(out.clone()))?;
    if uri.scheme_str() != Some(scheme) || uri.authority() != Some(auth) {
        return Err(FetchError::OutOfScope(out));
    }
    Ok(out)
}

/// Resolves references against one base URL, with the common case (a plain relative
/// path such as `part-3.4.m4s`) costing one string: the base's directory is kept.
#[derive(Debug, Clone)]
pub struct Resolver {
    base: String,
    dir_len: usize,
}

impl Resolver {
    /// A resolver for `base` (`scheme://authority/path`).
    pub fn new(base: String) -> Result<Self, FetchError> {
        let uri: Uri = base.parse().map_err(|_| FetchError::BadUrl(base.clone()))?;
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(FetchError::BadUrl(base));
        }
        let path_end = base.find('?').unwrap_or(base.len());
        let dir_len = base[..path_end].rfind('/').map_or(path_end, |i| i + 1);
        Ok(Self { base, dir_len })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Same as [`resolve`] against the base.
    pub fn resolve(&self, reference: &str) -> Result<String, FetchError> {
        let plain = !reference.is_empty()
            && !reference.starts_with('/')
            && !reference.contains("://")
            && !reference.contains("..")
            && reference.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if plain {
            let mut out = String::with_capacity(self.dir_len + reference.len());
            out.push_str(&self.base[..self.dir_len]);
            out.push_str(reference);
            return Ok(out);
        }
        resolve(&self.base, reference)
    }
}

/// Appends query parameters to a URL.
pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// GETs `url` and passes each body chunk to `on_chunk`; returns the body length.
/// `timeout` bounds the whole exchange.
pub async fn get_stream(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
    mut on_chunk: impl FnMut(&[u8]) -> Result<(), FetchError>,
) -> Result<usize, FetchError> {
    let uri: Uri = url.parse().map_err(|_| FetchError::BadUrl(url.to_owned()))?;
    let fut = async {
        let resp = client.get(uri).await.map_err(|e| FetchError::Http(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let mut body = resp.into_body();
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| FetchError::Http(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                on_chunk(&data)?;
            }
        }
        Ok(total)
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| FetchError::Timeout)?
}

/// GETs a body of at most [`MAX_PLAYLIST`] bytes.
pub async fn get_small(client: &HttpClient, url: &str, timeout: Duration) -> Result<Vec<u8>, FetchError> {
    let mut buf = Vec::new();
    get_stream(client, url, timeout, |c| {
        if buf.len() + c.len() > MAX_PLAYLIST {
            return Err(FetchError::TooLarge);
        }
        buf.extend_from_slice(c);
        Ok(())
    })
    .await?;
    Ok(buf)
}

/// GETs a text body of at most [`MAX_PLAYLIST`] bytes.
pub async fn get_text(client: &HttpClient, url: &str, timeout: Duration) -> Result<String, FetchError> {
    let buf = get_small(client, url, timeout).await?;
    Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_stays_on_target() {
        let base = "http://127.0.0.1:8080/live/a/master.m3u8";
        assert_eq!(
            resolve(base, "source/index.m3u8").unwrap(),
            "http://127.0.0.1:8080/live/a/source/index.m3u8"
        );
        assert_eq!(resolve(base, "/x/y.ts").unwrap(), "http://127.0.0.1:8080/x/y.ts");
        assert_eq!(resolve(base, "http://127.0.0.1:8080/z").unwrap(), "http://127.0.0.1:8080/z");
        assert!(matches!(resolve(base, "http://10.0.0.1/z"), Err(FetchError::OutOfScope(_))));
        assert!(resolve("nope", "x").is_err());
        let r = Resolver::new(base.to_owned()).unwrap();
        for reference in ["source/index.m3u8", "part-1.2.m4s?x=1", "/x/y.ts", "../up.ts", "http://10.0.0.1/z"]
        {
            assert_eq!(r.resolve(reference).ok(), resolve(base, reference).ok(), "{reference}");
        }
        assert!(Resolver::new("nope".into()).is_err());
        assert_eq!(with_query("a?x=1", "y=2"), "a?x=1&y=2");
        assert_eq!(with_query("a", "y=2"), "a?y=2");
        assert_eq!(FetchError::Status(404).kind(), "http_404");
    }
}
