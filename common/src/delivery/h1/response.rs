//! Response heads and chunked framing, written into buffers (sans-IO): the status line, the
//! response's header fields, `Date` (given by the caller), and the framing and persistence
//! fields of RFC 9112.

use http::header::CONTENT_LENGTH;
use http::{HeaderMap, StatusCode};

/// How the response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body follows (HEAD, 204, 304): any `Content-Length` in the fields stays as it is.
    NoBody,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1, length unknown).
    Chunked,
    /// The body ends when the connection closes (HTTP/1.0, length unknown).
    UntilClose,
}

impl Framing {
    /// The framing of a response of `status` to a `head` request (or not), with a body of
    /// `len` bytes when known, for an HTTP/1.0 client or not.
    pub(crate) fn of(status: StatusCode, head: bool, len: Option<u64>, http10: bool) -> Framing {
        if head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Framing::NoBody;
        }
        match (len, http10) {
            (Some(n), _) => Framing::Length(n),
            (None, false) => Framing::Chunked,
            (None, true) => Framing::UntilClose,
        }
    }
}

/// `headers` as header lines (`name: value` and CRLF each), to be given to [`write_head`]
/// as fields written before the response's own.
pub(crate) fn field_lines(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        push_field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    out
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the head of a response to `out`: its status, `fields` (lines made by
/// [`field_lines`], written as they are), then `headers`. `keep_alive`: the connection
/// stays open after it (sent as `Connection: close` when not, and as `keep-alive` to an
/// HTTP/1.0 client that asked for it). `date` is the `Date` value (IMF-fixdate).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    fields: &[u8],
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
    http10: bool,
    date: &[u8],
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(fields);
    let own_length = matches!(framing, Framing::Length(_));
    for (name, value) in headers {
        if own_length && name == CONTENT_LENGTH {
            continue;
        }
        push_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::NoBody | Framing::UntilClose => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends the decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The line before a chunk of `len` bytes (`{len:x}\r\n`): the bytes and how many are used.
pub(crate) fn chunk_size_line(len: usize) -> ([u8; 18], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = [0u8; 18];
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for (i, slot) in line[..digits].iter_mut().enumerate() {
        *slot = HEX[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

/// What ends a chunk's data.
pub(crate) const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk and the end of an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE};

    use super::*;

    const DATE: &[u8] = b"Sun, 06 Dec 2026 05:00:00 GMT";

    fn head(status: StatusCode, h: &HeaderMap, framing: Framing, keep: bool, http10: bool) -> String {
        let mut out = Vec::new();
        write_head(&mut out, status, &[], h, framing, keep, http10, DATE);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_sized_response_carries_its_fields_length_and_date() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("video/iso.segment"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300, immutable"));
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("7"));
        assert_eq!(
            head(StatusCode::OK, &h, Framing::Length(340_123), true, false),
            "HTTP/1.1 200 OK\r\ncontent-type: video/iso.segment\r\ncache-control: public, max-age=300, \
             immutable\r\ncontent-length: 340123\r\ndate: Sun, 06 Dec 2026 05:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn template_fields_come_first_and_the_response_s_own_after() {
        let mut template = HeaderMap::new();
        template.insert(CONTENT_TYPE, HeaderValue::from_static("video/iso.segment"));
        template.insert(CACHE_CONTROL, HeaderValue::from_static("immutable"));
        let fields = field_lines(&template);
        assert_eq!(fields, b"content-type: video/iso.segment\r\ncache-control: immutable\r\n");
        let mut own = HeaderMap::new();
        own.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let mut out = Vec::new();
        write_head(&mut out, StatusCode::OK, &fields, &own, Framing::NoBody, true, false, DATE);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: video/iso.segment\r\ncache-control: immutable\r\n\
             content-length: 5\r\ndate: Sun, 06 Dec 2026 05:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn a_head_answer_keeps_the_length_it_was_given() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        let text = head(StatusCode::OK, &h, Framing::of(StatusCode::OK, true, Some(0), false), true, false);
        assert!(text.contains("content-length: 99\r\n"), "{text}");
        assert_eq!(text.matches("content-length").count(), 1);
    }

    #[test]
    fn framing_follows_status_method_and_version() {
        assert_eq!(Framing::of(StatusCode::NO_CONTENT, false, Some(0), false), Framing::NoBody);
        assert_eq!(Framing::of(StatusCode::OK, false, None, false), Framing::Chunked);
        assert_eq!(Framing::of(StatusCode::OK, false, None, true), Framing::UntilClose);
        assert_eq!(Framing::of(StatusCode::NOT_FOUND, false, Some(0), true), Framing::Length(0));
        let text = head(StatusCode::OK, &HeaderMap::new(), Framing::Chunked, true, false);
        assert!(text.contains("transfer-encoding: chunked\r\n"));
    }

    #[test]
    fn persistence_is_stated_when_it_differs_from_the_default() {
        let closing = head(StatusCode::BAD_REQUEST, &HeaderMap::new(), Framing::Length(0), false, false);
        assert!(closing.contains("connection: close\r\n"));
        let kept10 = head(StatusCode::OK, &HeaderMap::new(), Framing::Length(0), true, true);
        assert!(kept10.contains("connection: keep-alive\r\n"));
        let kept11 = head(StatusCode::OK, &HeaderMap::new(), Framing::Length(0), true, false);
        assert!(!kept11.contains("connection"));
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        for (len, text) in [(0, "0\r\n"), (1, "1\r\n"), (15, "f\r\n"), (16, "10\r\n"), (0xabc12, "abc12\r\n")]
        {
            let (line, n) = chunk_size_line(len);
            assert_eq!(std::str::from_utf8(&line[..n]).unwrap(), text);
        }
        let (_, n) = chunk_size_line(usize::MAX);
        assert_eq!(n, usize::BITS as usize / 4 + 2);
    }
}
