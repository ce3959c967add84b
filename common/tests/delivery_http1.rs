//! Plain-TCP HTTP/1.1 at the byte level (the delivery's own connection handling, `h1`):
//! pipelining, HEAD, HTTP/1.0, chunked streaming, refused heads and bodies, and HTTP/2 with
//! prior knowledge handed to hyper.

mod delivery_support;

use std::time::Duration;

use bytes::Bytes;
use delivery_support::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use skyrelay_common::delivery::DeliveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One response read off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

type Conn = BufReader<TcpStream>;

async fn connect(srv: &Server) -> Conn {
    BufReader::new(TcpStream::connect(srv.addr).await.unwrap())
}

async fn line(conn: &mut Conn) -> String {
    let mut bytes = Vec::new();
    loop {
        let b = conn.read_u8().await.expect("connection open mid-response");
        bytes.push(b);
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
            return String::from_utf8(bytes).unwrap();
        }
    }
}

/// Reads one response; `head`: it answers a HEAD request (no body follows).
async fn response(conn: &mut Conn, head: bool) -> Wire {
    let read = async {
        let status_line = line(conn).await;
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let mut headers = Vec::new();
        loop {
            let l = line(conn).await;
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(": ").unwrap();
            headers.push((n.to_owned(), v.to_owned()));
        }
        let mut wire = Wire { status, headers, body: Vec::new() };
        if head || status == 204 {
            return wire;
        }
        if let Some(len) = wire.header("content-length") {
            let mut body = vec![0; len.parse().unwrap()];
            conn.read_exact(&mut body).await.unwrap();
            wire.body = body;
        } else if wire.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&line(conn).await, 16).unwrap();
                let mut data = vec![0; size + 2];
                conn.read_exact(&mut data).await.unwrap();
                assert!(data.ends_with(b"\r\n"));
                if size == 0 {
                    break;
                }
                wire.body.extend_from_slice(&data[..size]);
            }
        } else {
            conn.read_to_end(&mut wire.body).await.unwrap();
        }
        wire
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("response in time")
}

async fn closed(conn: &mut Conn) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut rest)).await, Ok(Ok(0)))
}

/// A server with the test channel's rendition open and its init segment applied.
async fn serving() -> (Server, std::sync::Arc<skyrelay_common::hub::Rendition>) {
    let srv = start(DeliveryConfig::default()).await;
    let r = srv.source();
    init(&r);
    (srv, r)
}

fn segment_bytes(msn: u64) -> Vec<u8> {
    (0..4).flat_map(|p| (0..2).flat_map(move |c| chunk_bytes(msn, p, c).to_vec())).collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (srv, r) = serving().await;
    segments(&r, 10, 13);
    let mut conn = connect(&srv).await;
    conn.get_mut()
        .write_all(
            b"GET /live/live1/source/seg-11.m4s HTTP/1.1\r\nHost: e\r\n\r\n\
              HEAD /live/live1/source/seg-12.m4s HTTP/1.1\r\nHost: e\r\n\r\n\
              GET /live/live1/source/index.m3u8 HTTP/1.1\r\nHost: e\r\n\r\n\
              GET /live/nope/source/seg-1.m4s HTTP/1.1\r\nHost: e\r\n\r\n",
        )
        .await
        .unwrap();
    let seg = response(&mut conn, false).await;
    assert_eq!(seg.status, 200);
    assert_eq!(seg.body, segment_bytes(11));
    assert_eq!(seg.header("content-type"), Some("video/iso.segment"));
    assert_eq!(seg.header("access-control-allow-origin"), Some("*"));
    assert!(seg.header("date").is_some_and(|d| d.ends_with(" GMT")), "{seg:?}");
    let head = response(&mut conn, true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(segment_bytes(12).len().to_string().as_str()));
    let pl = response(&mut conn, false).await;
    assert_eq!(pl.status, 200);
    assert!(String::from_utf8_lossy(&pl.body).contains("seg-12.m4s"));
    let missing = response(&mut conn, false).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("connection"), None, "kept alive after a 404");
    assert_eq!(srv.metric("http_requests_total", &[("kind", "segment"), ("status", "200")]), 2.0);
}

#[tokio::test]
async fn http10_closes_unless_asked_and_streams_until_close() {
    let (srv, r) = serving().await;
    segments(&r, 10, 12);
    part(&r, 12, 0, false);
    chunk(&r, 12, 1, 0);

    let mut conn = connect(&srv).await;
    conn.get_mut().write_all(b"GET /live/live1/source/seg-10.m4s HTTP/1.0\r\n\r\n").await.unwrap();
    let seg = response(&mut conn, false).await;
    assert_eq!((seg.status, seg.header("connection")), (200, Some("close")));
    assert_eq!(seg.body, segment_bytes(10));
    assert!(closed(&mut conn).await);

    let mut conn = connect(&srv).await;
    let req = b"GET /live/live1/source/seg-11.m4s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    conn.get_mut().write_all(req).await.unwrap();
    assert_eq!(response(&mut conn, false).await.header("connection"), Some("keep-alive"));
    // An open part has no length yet: to HTTP/1.0 it is sent until the connection closes.
    conn.get_mut()
        .write_all(b"GET /live/live1/source/part-12.1.m4s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let streamer = tokio::spawn(async move { response(&mut conn, false).await });
    // Counted once the handler has answered, before the body streams.
    srv.wait_metric("http_requests_total", &[("kind", "part"), ("status", "200")], 1.0).await;
    chunk(&r, 12, 1, 1);
    part_end(&r, 12, 1, false);
    let streamed = streamer.await.unwrap();
    assert_eq!((streamed.status, streamed.header("connection")), (200, Some("close")));
    assert_eq!(streamed.body, [chunk_bytes(12, 1, 0), chunk_bytes(12, 1, 1)].concat());
}

#[tokio::test]
async fn an_open_part_is_sent_in_chunks_and_the_connection_kept() {
    let (srv, r) = serving().await;
    segments(&r, 10, 12);
    chunk(&r, 12, 0, 0);
    let mut conn = connect(&srv).await;
    conn.get_mut().write_all(b"GET /live/live1/source/part-12.0.m4s HTTP/1.1\r\n\r\n").await.unwrap();
    // The head and the chunk written so far arrive before the part is complete.
    let status = tokio::time::timeout(Duration::from_secs(10), line(&mut conn)).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut head = Vec::new();
    loop {
        let l = line(&mut conn).await;
        if l.is_empty() {
            break;
        }
        head.push(l.to_ascii_lowercase());
    }
    assert!(head.contains(&"transfer-encoding: chunked".to_owned()), "{head:?}");
    let first = chunk_bytes(12, 0, 0);
    assert_eq!(line(&mut conn).await, format!("{:x}", first.len()));
    assert_eq!(line(&mut conn).await.as_bytes(), &first[..]);
    chunk(&r, 12, 0, 1);
    part_end(&r, 12, 0, false);
    let second = chunk_bytes(12, 0, 1);
    assert_eq!(line(&mut conn).await, format!("{:x}", second.len()));
    assert_eq!(line(&mut conn).await.as_bytes(), &second[..]);
    assert_eq!(line(&mut conn).await, "0");
    assert_eq!(line(&mut conn).await, "");
    conn.get_mut().write_all(b"GET /live/live1/source/seg-10.m4s HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut conn, false).await.body, segment_bytes(10));
}

#[tokio::test]
async fn bad_heads_and_bodies_close_only_their_connection() {
    let (srv, r) = serving().await;
    segments(&r, 10, 12);
    let mut bystander = connect(&srv).await;
    bystander.get_mut().write_all(b"GET /live/live1/source/seg-10.m4s HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut bystander, false).await.status, 200);

    let cases: [(&[u8], u16, &str); 4] = [
        (b"\x16\x03\x01\x02\x00 not http\r\n\r\n", 400, "malformed request"),
        (b"GET /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, "Content-Length"),
        (
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            413,
            "request bodies",
        ),
        (b"GET /x HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413, "request bodies"),
    ];
    for (raw, status, message) in cases {
        let mut conn = connect(&srv).await;
        conn.get_mut().write_all(raw).await.unwrap();
        let refused = response(&mut conn, false).await;
        assert_eq!(refused.status, status, "{raw:?}");
        assert_eq!(refused.header("connection"), Some("close"));
        assert!(String::from_utf8_lossy(&refused.body).contains(message), "{refused:?}");
        assert!(closed(&mut conn).await);
    }
    let mut big = b"GET /x HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 40 * 1024));
    let mut conn = connect(&srv).await;
    conn.get_mut().write_all(&big).await.unwrap();
    assert_eq!(response(&mut conn, false).await.status, 431);

    // A small body is skipped; the next request on the connection is answered.
    bystander
        .get_mut()
        .write_all(b"POST /live/live1/source/seg-10.m4s HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /live/live1/source/seg-11.m4s HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut bystander, false).await.status, 405);
    assert_eq!(response(&mut bystander, false).await.body, segment_bytes(11));
}

#[tokio::test]
async fn http2_with_prior_knowledge_and_the_hyper_path_still_serve() {
    for native_http1 in [true, false] {
        let srv = start(DeliveryConfig { native_http1, ..Default::default() }).await;
        let r = srv.source();
        init(&r);
        segments(&r, 10, 12);
        let h2 = Client::builder(TokioExecutor::new()).http2_only(true).build_http::<Empty<Bytes>>();
        let req = Request::get(srv.url("/live/live1/source/seg-10.m4s")).body(Empty::new()).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), h2.request(req)).await.unwrap().unwrap();
        assert_eq!((resp.status(), resp.version()), (StatusCode::OK, http::Version::HTTP_2));
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), segment_bytes(10));
        let reply = get(&client(), &srv.url("/live/live1/source/seg-11.m4s")).await;
        assert_eq!(reply.body, segment_bytes(11), "native_http1 = {native_http1}");
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_drain_closes_idle_connections_and_finishes_the_response_in_progress() {
    let (srv, r) = serving().await;
    segments(&r, 10, 12);
    chunk(&r, 12, 0, 0);
    let mut idle = connect(&srv).await;
    idle.get_mut().write_all(b"GET /live/live1/source/seg-10.m4s HTTP/1.1\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut idle, false).await.status, 200);
    let mut busy = connect(&srv).await;
    busy.get_mut().write_all(b"GET /live/live1/source/part-12.0.m4s HTTP/1.1\r\n\r\n").await.unwrap();
    // Counted once the handler has answered, before the body streams.
    srv.wait_metric("http_requests_total", &[("kind", "part"), ("status", "200")], 1.0).await;
    let stopping = tokio::spawn(srv.stop());
    assert!(closed(&mut idle).await, "an idle kept-alive connection closes on drain");
    chunk(&r, 12, 0, 1);
    part_end(&r, 12, 0, false);
    let streamed = response(&mut busy, false).await;
    assert_eq!(streamed.body, [chunk_bytes(12, 0, 0), chunk_bytes(12, 0, 1)].concat());
    assert!(closed(&mut busy).await, "closed after the response in progress");
    tokio::time::timeout(Duration::from_secs(10), stopping).await.unwrap().unwrap();
}
