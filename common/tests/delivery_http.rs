//! HTTP delivery over a real socket: routes, headers, blocking reload, streamed parts.

mod delivery_support;

use std::time::Duration;

use bytes::Bytes;
use delivery_support::*;
use http::{Method, StatusCode};
use skyrelay_common::delivery::DeliveryConfig;

#[tokio::test]
async fn serves_playlists_and_objects_with_headers() {
    let srv = start(DeliveryConfig::default()).await;
    let r = srv.source();
    let init_id = init(&r);
    segments(&r, 10, 13);
    part(&r, 13, 0, false);
    chunk(&r, 13, 1, 0);
    let c = client();

    let master = get(&c, &srv.url("/live/live1/master.m3u8")).await;
    assert_eq!(master.status, StatusCode::OK);
    assert_eq!(master.header("content-type"), "application/vnd.apple.mpegurl");
    assert_eq!(master.header("cache-control"), "no-cache");
    let mp = m3u8_rs::parse_master_playlist_res(&master.body).unwrap();
    assert_eq!(mp.variants[0].uri, "source/index.m3u8");
    assert_eq!(mp.variants[0].bandwidth, 2_000_000);

    let pl = get(&c, &srv.url("/live/live1/source/index.m3u8")).await;
    assert_eq!(pl.status, StatusCode::OK);
    assert_eq!(pl.header("cache-control"), "no-cache");
    assert_eq!(pl.header("access-control-allow-origin"), "*");
    let media = m3u8_rs::parse_media_playlist_res(&pl.body).unwrap();
    assert_eq!(media.media_sequence, 10);
    assert_eq!(media.segments.len(), 3);
    assert!(pl.text().contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-13.1.m4s\""), "{}", pl.text());

    let init = get(&c, &srv.url(&format!("/live/live1/source/init-{init_id}.mp4"))).await;
    assert_eq!(init.status, StatusCode::OK);
    assert_eq!(init.body, Bytes::from_static(b"INIT"));
    assert_eq!(init.header("content-type"), "video/mp4");
    assert_eq!(init.header("cache-control"), "public, max-age=300, immutable");

    let seg = get(&c, &srv.url("/live/live1/source/seg-11.m4s")).await;
    assert_eq!(seg.status, StatusCode::OK);
    assert_eq!(seg.header("content-type"), "video/iso.segment");
    assert_eq!(seg.header("cache-control"), "public, max-age=300, immutable");
    let expected: Vec<u8> =
        (0..4).flat_map(|p| (0..2).flat_map(move |c| chunk_bytes(11, p, c).to_vec())).collect();
    assert_eq!(seg.body, expected);
    assert_eq!(seg.header("content-length"), expected.len().to_string());

    let p = get(&c, &srv.url("/live/live1/source/part-13.0.m4s")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.body, [chunk_bytes(13, 0, 0), chunk_bytes(13, 0, 1)].concat());
    assert_eq!(p.header("cache-control"), "public, max-age=300, immutable");

    let head = request(&c, Method::HEAD, &srv.url("/live/live1/source/seg-11.m4s")).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), expected.len().to_string());

    let pre = request(&c, Method::OPTIONS, &srv.url("/live/live1/source/index.m3u8")).await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.header("access-control-allow-origin"), "*");
    assert!(pre.header("access-control-allow-methods").contains("GET"));

    for (path, status) in [
        ("/live/nope/master.m3u8", StatusCode::NOT_FOUND),
        ("/live/nope/source/index.m3u8", StatusCode::NOT_FOUND),
        ("/live/live1/other/index.m3u8", StatusCode::NOT_FOUND),
        ("/live/live1/source/seg-1.m4s", StatusCode::NOT_FOUND),
        ("/live/live1/source/part-1.0.m4s", StatusCode::NOT_FOUND),
        ("/live/live1/source/init-1.mp4", StatusCode::NOT_FOUND),
        ("/nothing", StatusCode::NOT_FOUND),
        ("/healthz", StatusCode::OK),
    ] {
        let reply = get(&c, &srv.url(path)).await;
        assert_eq!(reply.status, status, "{path}");
        assert!(!reply.body.is_empty(), "{path}: errors say what is wrong");
        assert_eq!(reply.header("access-control-allow-origin"), "*");
    }
    let post = request(&c, Method::POST, &srv.url("/live/live1/master.m3u8")).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);

    assert_eq!(srv.metric("http_requests_total", &[("kind", "segment"), ("status", "200")]), 2.0);
    assert_eq!(srv.metric("http_requests_total", &[("kind", "playlist"), ("status", "404")]), 2.0);
    assert!(srv.metric("http_response_bytes_total", &[("kind", "segment")]) >= expected.len() as f64);
    srv.wait_metric_eq("http_active_requests", &[], 0.0).await;
    srv.stop().await;
}

#[tokio::test]
async fn blocking_reload_returns_when_the_part_appears() {
    let srv = start(DeliveryConfig { hold_deadline_ms: 10_000, ..Default::default() }).await;
    let r = srv.source();
    init(&r);
    segments(&r, 5, 7);
    part(&r, 7, 0, false);
    chunk(&r, 7, 1, 0);
    let c = client();

    // Already there: immediate.
    let now = get(&c, &srv.url("/live/live1/source/index.m3u8?_HLS_msn=7&_HLS_part=0")).await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(srv.metric("http_blocking_reloads_total", &[("outcome", "immediate")]), 1.0);

    // Part 7.1 is open, not complete: held until it completes.
    let url = srv.url("/live/live1/source/index.m3u8?_HLS_msn=7&_HLS_part=1");
    let held = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    srv.wait_metric("http_active_requests", &[], 1.0).await;
    assert!(!held.is_finished());
    part_end(&r, 7, 1, false);
    let reply = tokio::time::timeout(Duration::from_secs(2), held).await.expect("released at once").unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().contains("URI=\"part-7.1.m4s\""), "{}", reply.text());
    assert_eq!(srv.metric("http_blocking_reloads_total", &[("outcome", "held")]), 1.0);

    // A whole segment (no _HLS_part): held until segment 7 completes.
    let url = srv.url("/live/live1/source/index.m3u8?_HLS_msn=7");
    let held = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    srv.wait_metric("http_active_requests", &[], 1.0).await;
    part(&r, 7, 2, false);
    assert!(!held.is_finished());
    part(&r, 7, 3, true);
    let reply = tokio::time::timeout(Duration::from_secs(2), held).await.unwrap().unwrap();
    assert!(reply.text().contains("\nseg-7.m4s\n"), "{}", reply.text());
    srv.stop().await;
}

#[tokio::test]
async fn blocking_reload_deadline_and_bad_requests() {
    let srv = start(DeliveryConfig { hold_deadline_ms: 200, ..Default::default() }).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 2);
    let c = client();

    let started = tokio::time::Instant::now();
    let reply = get(&c, &srv.url("/live/live1/source/index.m3u8?_HLS_msn=2&_HLS_part=1")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(srv.metric("http_blocking_reloads_total", &[("outcome", "timeout")]), 1.0);

    for q in ["_HLS_msn=4", "_HLS_part=1", "_HLS_msn=x", "_HLS_msn=2&_HLS_part=100000"] {
        let reply = get(&c, &srv.url(&format!("/live/live1/source/index.m3u8?{q}"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}");
    }
    // Two segments ahead is still allowed (held, then times out here).
    let reply = get(&c, &srv.url("/live/live1/source/index.m3u8?_HLS_msn=3")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(srv.metric("http_blocking_reloads_total", &[("outcome", "rejected")]), 4.0);
    srv.stop().await;
}

#[tokio::test]
async fn open_part_is_streamed_as_chunks_arrive() {
    let srv = start(DeliveryConfig { hold_deadline_ms: 10_000, ..Default::default() }).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 1);
    chunk(&r, 1, 0, 0);
    let c = client();

    let mut body = streamed_part(&c, &srv.url("/live/live1/source/part-1.0.m4s")).await;
    let first = next_data(&mut body).await;
    assert_eq!(first, chunk_bytes(1, 0, 0), "first chunk before the part completes");
    chunk(&r, 1, 0, 1);
    assert_eq!(next_data(&mut body).await, chunk_bytes(1, 0, 1));
    chunk(&r, 1, 0, 2);
    part_end(&r, 1, 0, false);
    let rest = tokio::time::timeout(Duration::from_secs(2), http_body_util::BodyExt::collect(body))
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, chunk_bytes(1, 0, 2));

    // The part after the open one waits for it to open, then streams.
    chunk(&r, 1, 1, 0);
    let url = srv.url("/live/live1/source/part-1.2.m4s");
    let next = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    srv.wait_metric("http_active_requests", &[], 1.0).await;
    part_end(&r, 1, 1, false);
    assert!(!next.is_finished());
    chunk(&r, 1, 2, 0);
    chunk(&r, 1, 2, 1);
    part_end(&r, 1, 2, false);
    let reply = tokio::time::timeout(Duration::from_secs(2), next).await.unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, [chunk_bytes(1, 2, 0), chunk_bytes(1, 2, 1)].concat());

    // Far ahead: not waited for.
    let far = get(&c, &srv.url("/live/live1/source/part-1.9.m4s")).await;
    assert_eq!(far.status, StatusCode::NOT_FOUND);
    srv.stop().await;
}

/// The body of a part request answered 200 as a media segment, to read frame by frame.
async fn streamed_part(c: &HttpClient, url: &str) -> hyper::body::Incoming {
    let req = http::Request::get(url).body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(2), c.request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "video/iso.segment");
    resp.into_body()
}

async fn next_data(body: &mut hyper::body::Incoming) -> Bytes {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(2), http_body_util::BodyExt::frame(body))
            .await
            .expect("a frame in time")
            .expect("body not finished")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            return data;
        }
    }
}

#[tokio::test]
async fn shutdown_drains_and_returns() {
    let srv = start(DeliveryConfig::default()).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 1);
    let c = client();
    assert_eq!(get(&c, &srv.url("/live/live1/source/index.m3u8")).await.status, StatusCode::OK);
    srv.stop().await;
}

#[tokio::test]
async fn a_segment_about_to_be_written_is_waited_for() {
    let srv = start(DeliveryConfig { hold_deadline_ms: 10_000, ..Default::default() }).await;
    let r = srv.source();
    let c = client();
    // An empty window (an edge that has just subscribed): held, not 404.
    let url = srv.url("/live/live1/source/seg-7.m4s");
    let held = tokio::spawn({
        let c = c.clone();
        async move { get(&c, &url).await }
    });
    srv.wait_metric("http_active_requests", &[], 1.0).await;
    init(&r);
    segments(&r, 5, 7);
    part(&r, 7, 0, false);
    assert!(!held.is_finished());
    part(&r, 7, 1, true);
    let reply = tokio::time::timeout(Duration::from_secs(2), held).await.expect("released").unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    // Far behind the window: 404 at once.
    let gone = get(&c, &srv.url("/live/live1/source/seg-1.m4s")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    srv.stop().await;
}

/// A part streamed while it is written: chunks that keep coming, for longer than the stall
/// limit in all, are all delivered; once they stop, the body fails (the client sees the
/// response cut off), not before the limit.
#[tokio::test]
async fn a_streamed_part_fails_only_once_its_chunks_stop() {
    const STALL: Duration = Duration::from_millis(300);
    let srv =
        start(DeliveryConfig { hold_deadline_ms: STALL.as_millis() as u64, ..Default::default() }).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 1);
    chunk(&r, 1, 0, 0);
    let c = client();
    let mut body = streamed_part(&c, &srv.url("/live/live1/source/part-1.0.m4s")).await;
    assert_eq!(next_data(&mut body).await, chunk_bytes(1, 0, 0));

    // A chunk every 100 ms for 1 s: more than three stall limits in all, never one without a chunk.
    for c in 1..=10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chunk(&r, 1, 0, c);
        assert_eq!(next_data(&mut body).await, chunk_bytes(1, 0, c), "chunk {c} while chunks keep coming");
    }

    // Then nothing: the body ends with an error, after at least one stall limit.
    let quiet = tokio::time::Instant::now();
    let end = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), http_body_util::BodyExt::frame(&mut body))
            .await
            .expect("the stalled body ends in time");
        match frame {
            Some(Ok(f)) => assert!(f.into_data().is_err(), "no data after the chunks stopped"),
            other => break other,
        }
    };
    assert!(matches!(end, Some(Err(_))), "a stalled part is cut off, not ended cleanly: {end:?}");
    assert!(quiet.elapsed() >= STALL, "cut off after {:?}, before the stall limit", quiet.elapsed());
    srv.stop().await;
}
