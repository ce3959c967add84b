//! Many clients at once: identical bytes for the newest part and for blocking reloads.

mod delivery_support;

use std::time::Duration;

use delivery_support::*;
use http::StatusCode;
use skyrelay_common::delivery::DeliveryConfig;

const CLIENTS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients_on_the_newest_part_get_identical_bytes() {
    let srv = start(DeliveryConfig { hold_deadline_ms: 20_000, ..Default::default() }).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 2);
    chunk(&r, 2, 0, 0);
    let c = client();

    let mut tasks = Vec::with_capacity(2 * CLIENTS);
    for i in 0..2 * CLIENTS {
        let url = if i % 2 == 0 {
            srv.url("/live/live1/source/part-2.0.m4s")
        } else {
            srv.url("/live/live1/source/index.m3u8?_HLS_msn=2&_HLS_part=0")
        };
        let c = c.clone();
        tasks.push(tokio::spawn(async move { get(&c, &url).await }));
    }
    // Every request is in: the part streams are open, the reloads are held.
    srv.wait_metric("http_active_requests", &[], (2 * CLIENTS) as f64).await;
    chunk(&r, 2, 0, 1);
    chunk(&r, 2, 0, 2);
    part_end(&r, 2, 0, false);

    let expected_part = [chunk_bytes(2, 0, 0), chunk_bytes(2, 0, 1), chunk_bytes(2, 0, 2)].concat();
    let mut playlist = None;
    for (i, t) in tasks.into_iter().enumerate() {
        let reply = tokio::time::timeout(Duration::from_secs(30), t).await.unwrap().unwrap();
        assert_eq!(reply.status, StatusCode::OK, "client {i}");
        if i % 2 == 0 {
            assert_eq!(reply.body, expected_part, "client {i}");
        } else {
            let first = playlist.get_or_insert_with(|| reply.body.clone());
            assert_eq!(&reply.body, first, "client {i}");
        }
    }
    let text = String::from_utf8(playlist.unwrap().to_vec()).unwrap();
    assert!(text.contains("URI=\"part-2.0.m4s\""), "{text}");
    assert_eq!(srv.metric("http_blocking_reloads_total", &[("outcome", "held")]), CLIENTS as f64);
    assert_eq!(srv.metric("http_requests_total", &[("kind", "part"), ("status", "200")]), CLIENTS as f64);
    srv.stop().await;
}
