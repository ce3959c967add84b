//! Request heads: parsed from the bytes read so far (sans-IO, `httparse`), with the framing
//! and persistence rules of RFC 9112 and only the header fields the handlers read.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

/// Longest request head (request line and header fields) accepted.
pub(crate) const MAX_HEAD: usize = 32 * 1024;
/// Most header fields in one request.
pub(crate) const MAX_HEADERS: usize = 64;

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBody {
    None,
    Length(u64),
    /// `Transfer-Encoding`: not decoded here (delivery takes no request bodies).
    Encoded,
}

/// The request target.
#[derive(Debug)]
pub(crate) enum RequestTarget {
    /// Origin form (`/path?query`), the most common by far: where it lies in the buffer the
    /// head was parsed from (not parsed further: routing reads it as it is).
    Origin(std::ops::Range<usize>),
    /// Absolute form (`http://host/path`) or `*`.
    Other(Uri),
}

impl RequestTarget {
    /// The path and query, from `buf` (the buffer the head was parsed from).
    pub(crate) fn path_and_query<'a>(&'a self, buf: &'a [u8]) -> &'a str {
        match self {
            RequestTarget::Origin(range) => {
                buf.get(range.clone()).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("/")
            }
            RequestTarget::Other(uri) => uri.path_and_query().map_or("*", |pq| pq.as_str()),
        }
    }
}

/// A complete request head.
#[derive(Debug)]
pub(crate) struct RequestHead {
    pub method: Method,
    pub target: RequestTarget,
    /// HTTP/1.0 (else HTTP/1.1).
    pub http10: bool,
    /// The client wants the connection kept after this response.
    pub keep_alive: bool,
    pub body: RequestBody,
    /// The fields named in `wanted`, nothing else.
    pub headers: HeaderMap,
    /// Length of the head in the buffer it was parsed from.
    pub len: usize,
}

/// Why a request head was refused; each is answered with [`status`](Self::status) and the
/// connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("HTTP version not supported")]
    Version,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
}

impl HeadError {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::Version => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The request head at the start of `buf`: `Ok(None)` while it is incomplete (read more).
/// Of the header fields only those in `wanted` are kept.
pub(crate) fn parse(buf: &[u8], wanted: &[HeaderName]) -> Result<Option<RequestHead>, HeadError> {
    // Slots the parser fills itself: initialising 64 of them would cost more than the parse.
    let mut fields = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut fields) {
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(_) => return Err(HeadError::Malformed("not an HTTP/1.x request head")),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed("method"))?;
    let target = if target.starts_with('/') {
        let start = target.as_ptr() as usize - buf.as_ptr() as usize;
        RequestTarget::Origin(start..start + target.len())
    } else {
        RequestTarget::Other(target.parse().map_err(|_| HeadError::Malformed("request target"))?)
    };
    let http10 = version == 0;
    let (mut close, mut keep) = (false, false);
    let mut length: Option<u64> = None;
    let mut encoded = false;
    let mut headers = HeaderMap::new();
    for field in req.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case(CONNECTION.as_str()) {
            for token in field.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(CONTENT_LENGTH.as_str()) {
            let n = std::str::from_utf8(field.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(HeadError::Malformed("Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed("conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(TRANSFER_ENCODING.as_str()) {
            encoded = true;
        } else if let Some(w) = wanted.iter().find(|w| name.eq_ignore_ascii_case(w.as_str())) {
            let value =
                HeaderValue::from_bytes(field.value).map_err(|_| HeadError::Malformed("header value"))?;
            headers.append(w.clone(), value);
        }
    }
    let body = match (encoded, length) {
        (true, _) => RequestBody::Encoded,
        (false, Some(0) | None) => RequestBody::None,
        (false, Some(n)) => RequestBody::Length(n),
    };
    let keep_alive = !close && (!http10 || keep);
    Ok(Some(RequestHead { method, target, http10, keep_alive, body, headers, len }))
}

#[cfg(test)]
mod tests {
    use http::header::ACCESS_CONTROL_REQUEST_HEADERS;

    use super::*;

    fn one(text: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(text.as_bytes(), &[ACCESS_CONTROL_REQUEST_HEADERS])
    }

    #[test]
    fn a_plain_get_keeps_the_connection_and_nothing_unwanted() {
        let raw = "GET /live/a/source/seg-3.m4s?token=x HTTP/1.1\r\nHost: e\r\nUser-Agent: t\r\n\r\n";
        let h = one(raw).unwrap().unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.target.path_and_query(raw.as_bytes()), "/live/a/source/seg-3.m4s?token=x");
        assert!(h.keep_alive && !h.http10);
        assert_eq!(h.body, RequestBody::None);
        assert!(h.headers.is_empty());
        assert_eq!(h.len, raw.len());
    }

    #[test]
    fn an_incomplete_head_asks_for_more_until_it_is_too_large() {
        assert!(one("GET / HTTP/1.1\r\nHost: e\r\n").unwrap().is_none());
        let mut big = String::from("GET / HTTP/1.1\r\nX-Pad: ");
        big.push_str(&"a".repeat(MAX_HEAD));
        assert_eq!(one(&big).unwrap_err(), HeadError::TooLarge);
        big.push_str("\r\n\r\n");
        assert_eq!(one(&big).unwrap_err().status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn persistence_follows_the_version_and_connection_options() {
        let h = one("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.http10 && !h.keep_alive);
        let h = one("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap().unwrap();
        assert!(h.keep_alive);
        let h = one("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn bodies_are_framed_and_bad_lengths_refused() {
        let h = one("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
        assert_eq!(h.body, RequestBody::Length(5));
        let h = one("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, RequestBody::Encoded);
        for bad in ["-1", "5x", "", "99999999999999999999999"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(one(&raw).unwrap_err().status(), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let raw = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(one(raw), Err(HeadError::Malformed(_))));
    }

    #[test]
    fn wanted_fields_are_kept_whatever_their_case() {
        let h = one("OPTIONS /x HTTP/1.1\r\naccess-control-REQUEST-headers: Range\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.headers.get(ACCESS_CONTROL_REQUEST_HEADERS).unwrap(), "Range");
    }

    #[test]
    fn garbage_and_other_versions_are_refused() {
        assert_eq!(one("\x16\x03\x01 hello\r\n\r\n").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert!(one("GET / HTTP/2.0\r\n\r\n").is_err());
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(one(&many).unwrap_err(), HeadError::TooManyHeaders);
    }

    #[test]
    fn pipelined_requests_are_read_one_at_a_time() {
        let raw = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let first = one(raw).unwrap().unwrap();
        assert_eq!(first.target.path_and_query(raw.as_bytes()), "/a");
        let rest = &raw[first.len..];
        let second = one(rest).unwrap().unwrap();
        assert_eq!(second.target.path_and_query(rest.as_bytes()), "/b");
    }

    #[test]
    fn absolute_and_asterisk_targets_are_parsed_to_their_path() {
        let raw = "GET http://edge.example/live/a/index.m3u8?x=1 HTTP/1.1\r\n\r\n";
        let h = one(raw).unwrap().unwrap();
        assert_eq!(h.target.path_and_query(raw.as_bytes()), "/live/a/index.m3u8?x=1");
        let raw = "OPTIONS * HTTP/1.1\r\n\r\n";
        assert_eq!(one(raw).unwrap().unwrap().target.path_and_query(raw.as_bytes()), "*");
        assert!(one("GET http://[bad/ HTTP/1.1\r\n\r\n").is_err(), "a target that is no URI is refused");
    }
}
