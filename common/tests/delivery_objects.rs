//! Whole segments come from the hub's object cache: one contiguous body with its length,
//! byte-identical to the window's chunks, built once for concurrent requests, kept within
//! the cache's byte capacity, and still served after the window has dropped the segment.

mod delivery_support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use delivery_support::*;

/// Segment `msn` as the window holds it: every chunk of every part, in order.
fn expected(r: &skyrelay_common::hub::Rendition, msn: u64) -> Bytes {
    let seg = r.read(|w| w.segment(msn)).expect("segment in the window");
    let mut all = BytesMut::new();
    for c in &seg.chunks {
        all.extend_from_slice(c);
    }
    all.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_built_once_and_served_whole() {
    let server = start_with_objects(1 << 20).await;
    let r = server.source();
    init(&r);
    segments(&r, 0, 3);
    let want = expected(&r, 1);
    let client = client();
    let url = server.url(&format!("/live/{CHANNEL}/source/seg-1.m4s"));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    for t in tasks {
        let reply = t.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), want.len().to_string());
        assert_eq!(reply.body, want, "segment bytes");
    }
    let outcome = |o| server.metric("object_cache_requests_total", &[("outcome", o)]);
    assert_eq!(outcome("miss"), 1.0, "built once");
    assert_eq!(outcome("hit") + outcome("coalesced"), 49.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_segments_outlive_the_window_within_the_byte_capacity() {
    // Segments here are 4 parts × 2 chunks of 7 bytes (56 bytes); room for 4 of them.
    let capacity = 4 * 56;
    let server = start_with_objects(capacity).await;
    let r = server.source();
    init(&r);
    segments(&r, 0, 2);
    let first = expected(&r, 0);
    assert_eq!(first.len(), 56);
    let client = client();
    let seg = |msn: u64| server.url(&format!("/live/{CHANNEL}/source/seg-{msn}.m4s"));
    assert_eq!(get(&client, &seg(0)).await.body, first);

    // The window (6 segments) moves past segment 0; the cache still answers for it.
    segments(&r, 2, 10);
    assert!(r.read(|w| w.segment(0)).is_none(), "segment 0 left the window");
    let again = get(&client, &seg(0)).await;
    assert_eq!((again.status, again.body), (http::StatusCode::OK, first));
    assert_eq!(server.metric("object_cache_requests_total", &[("outcome", "hit")]), 1.0);

    // Many more segments than fit: the cache stays within its capacity.
    for msn in 4..10 {
        assert_eq!(get(&client, &seg(msn)).await.status, 200);
    }
    let objects = server.hub.objects().expect("object cache").clone();
    objects.run_pending_tasks().await;
    assert!(objects.weighted_size() <= capacity, "{} bytes cached", objects.weighted_size());
    assert!(objects.weighted_size() >= 56, "the newest segments stay cached");
    let gauge = server.metric("object_cache_bytes", &[]);
    assert!(gauge > 0.0 && gauge <= capacity as f64, "gauge {gauge}");
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.unwrap();
}
