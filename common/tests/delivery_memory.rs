//! A flood of requests for a missing channel does not grow the process. Alone in its test
//! binary so that the RSS measured is this test's.

mod delivery_support;

use delivery_support::*;
use http::StatusCode;
use skyrelay_common::delivery::DeliveryConfig;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_channel_requests_hold_no_memory() {
    let srv = start(DeliveryConfig::default()).await;
    let c = client();
    let flood = |n: usize| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let c = c.clone();
                let url = srv.url(&format!("/live/missing{w}/source/index.m3u8"));
                tokio::spawn(async move {
                    for _ in 0..n / 8 {
                        assert_eq!(get(&c, &url).await.status, StatusCode::NOT_FOUND);
                    }
                })
            })
            .collect();
        async move {
            for w in workers {
                w.await.unwrap();
            }
        }
    };
    flood(1000).await; // warm up connections and allocator
    let before = rss_bytes();
    flood(10_000).await;
    let grown = rss_bytes().saturating_sub(before);
    eprintln!("RSS growth over 10,000 requests for a missing playlist: {grown} bytes");
    assert!(grown < 8 << 20, "RSS grew by {grown} bytes over 10,000 requests");
    assert!(srv.hub.channels().is_empty());
    assert_eq!(srv.metric("http_requests_total", &[("kind", "playlist"), ("status", "404")]), 11_000.0);
    srv.stop().await;
}
