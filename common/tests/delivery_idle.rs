//! Connections without a request are closed (`header_read_timeout_ms`): one that never
//! completes its headers, one kept alive after its response; one with a request held
//! longer than the limit is answered, not closed.

mod delivery_support;

use std::time::Duration;

use delivery_support::*;
use skyrelay_common::delivery::DeliveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const LIMIT_MS: u64 = 300;

/// Reads until the server closes the connection (bounded); returns everything read and when
/// the close came.
async fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(deadline, s.read(&mut buf))
            .await
            .expect("the server closes the connection")
        {
            Ok(0) | Err(_) => return (all, Instant::now()),
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn connections_without_a_request_are_closed_and_held_requests_are_not() {
    let cfg =
        DeliveryConfig { header_read_timeout_ms: LIMIT_MS, hold_deadline_ms: 1500, ..Default::default() };
    let srv = start(cfg).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 2);
    let limit = Duration::from_millis(LIMIT_MS);

    // Headers that never complete.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    let opened = Instant::now();
    slow.write_all(b"GET /live/live1/source/index.m3u8 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A request answered, then nothing more on the kept-alive connection.
    let mut kept = TcpStream::connect(srv.addr).await.unwrap();
    kept.write_all(b"GET /live/live1/source/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // A blocking reload held for 1.5 s (five limits): answered when its deadline passes.
    let mut held = TcpStream::connect(srv.addr).await.unwrap();
    held.write_all(b"GET /live/live1/source/index.m3u8?_HLS_msn=2&_HLS_part=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();

    let (got, closed) = read_until_closed(&mut slow).await;
    assert!(got.is_empty(), "nothing answered to incomplete headers");
    assert!(closed - opened >= limit, "closed after {:?}, before the limit", closed - opened);

    let (got, _) = read_until_closed(&mut kept).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "the request was answered first: {text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "one response: {text}");

    let (got, closed) = read_until_closed(&mut held).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 503"),
        "the held request is answered at its deadline, its connection not closed as idle: {text:?}"
    );
    assert!(closed - opened >= Duration::from_millis(1500), "held until its deadline");
    srv.stop().await;
}
