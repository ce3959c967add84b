//! `DeliveryConfig::threads`: viewers' connections served by threads of their own, each
//! with a single-threaded runtime; one thread means the caller's runtime. Dropping the
//! server's future (an aborted task) closes its connections at once, without a drain.

mod delivery_support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use delivery_support::*;
use http::StatusCode;
use skyrelay_common::delivery::{Access, BoxFuture, DeliveryConfig, Denied};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Lets every request through and notes the name of the thread that checked it.
#[derive(Default)]
struct ThreadNames(Mutex<BTreeSet<String>>);

impl Access for ThreadNames {
    fn check<'a>(
        &'a self,
        _channel: &'a str,
        _token: Option<&'a str>,
        _client: IpAddr,
    ) -> BoxFuture<'a, Result<Option<String>, Denied>> {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.0.lock().unwrap().insert(name);
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// Serves with `threads`, opens `n` connections at once, each asking for the playlist, and
/// returns the names of the threads that checked the requests.
async fn threads_serving(threads: usize, n: usize) -> BTreeSet<String> {
    let names = Arc::new(ThreadNames::default());
    let access = names.clone();
    let cfg = DeliveryConfig { threads, ..Default::default() };
    let srv = start_with(cfg, |d| d.with_access(access)).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 2);

    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let url = srv.url("/live/live1/source/index.m3u8");
        asks.spawn(async move { get(&client(), &url).await.status });
    }
    while let Some(status) = asks.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    srv.stop().await;
    let seen = names.0.lock().unwrap();
    seen.clone()
}

#[tokio::test]
async fn connections_are_served_by_the_configured_threads() {
    let seen = threads_serving(2, 64).await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|n| n == "http-0" || n == "http-1"),
        "requests checked only on the two HTTP threads: {seen:?}"
    );
}

#[tokio::test]
async fn one_thread_serves_on_the_callers_runtime() {
    let seen = threads_serving(1, 8).await;
    let test_thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
    assert_eq!(seen, BTreeSet::from([test_thread]), "served on the test's own runtime");
}

#[tokio::test]
async fn an_aborted_server_closes_its_connections_at_once() {
    // A long drain and a long hold: only an abort ends the held request quickly.
    let cfg = DeliveryConfig {
        threads: 2,
        hold_deadline_ms: 60_000,
        drain_timeout_ms: 60_000,
        ..Default::default()
    };
    let mut srv = start(cfg).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 2);
    let mut held = TcpStream::connect(srv.addr).await.unwrap();
    held.write_all(b"GET /live/live1/source/index.m3u8?_HLS_msn=2&_HLS_part=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    srv.wait_metric("http_active_requests", &[], 1.0).await;

    srv.task.take().unwrap().abort();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), held.read(&mut buf))
        .await
        .expect("the held connection is closed within 10 s of the abort, not held for a minute");
    assert!(matches!(read, Ok(0) | Err(_)), "closed without an answer: {read:?}");
    let addr = srv.addr;
    let refused = || async move { TcpStream::connect(addr).await.is_err().then_some(()) };
    skyrelay_testkit::poll_for(
        "the listener to close after the abort",
        Duration::from_secs(10),
        Duration::from_millis(10),
        refused,
    )
    .await;
}
