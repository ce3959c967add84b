//! Subscribing over the relay: parts arrive byte-identical, chunk by chunk before their
//! part completes; unknown channels get `not_found`; edge -> edge -> origin works.

mod relay_support;

use relay_support::*;
use skyrelay_common::relay::client::RelayError;
use skyrelay_common::relay::codec::ErrorCode;
use skyrelay_common::relay::server::RelayServerConfig;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_parts_arrive_identical_and_chunk_by_chunk() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "ch1");
    feed.segment(0, 3);
    feed.segment(1, 3);
    // Segment 2: one part open with one chunk.
    feed.chunk(2, 0, 0);
    let server = TestServer::start(origin.clone(), &pki.server, None);

    let edge = hub();
    let (client, metrics) = client(&pki, server.addr, edge.clone());
    let sub = client.subscribe("ch1", "source").await.unwrap();
    let local = sub.rendition().clone();

    // The open part's first chunk is at the edge while the part is still open.
    let first = wait_window(&local, "first chunk of open part 2.0", |w| {
        w.part(2, 0).filter(|p| !p.chunks.is_empty())
    })
    .await;
    assert!(!first.complete);
    assert_eq!(first.chunks, vec![chunk(2, 0, 0)]);

    feed.chunk(2, 0, 1);
    wait_window(&local, "second chunk", |w| w.part(2, 0).filter(|p| p.chunks.len() == 2)).await;
    assert!(!local.read(|w| w.part(2, 0)).unwrap().complete);
    feed.end_part(2, 0, false);
    feed.part(2, 1, 3, true);
    feed.segment(3, 2);
    wait_window(&local, "segment 3", |w| w.segment(3)).await;
    assert_same_parts(&origin.rendition("ch1", "source").unwrap(), &local, 0..=3);
    assert_eq!(local.read(|w| w.info().cloned()), Some(info()));
    assert_eq!(
        local.read(|w| w.current_init_id()),
        origin.rendition("ch1", "source").unwrap().read(|w| w.current_init_id())
    );
    assert!(metrics.upstream_objects.get() >= 10, "objects {}", metrics.upstream_objects.get());
    assert!(metrics.upstream_bytes.get() > 0);
    assert_eq!(metrics.subscriptions.get(), 1);
    assert!(metrics.part_delay.get_sample_count() > 0);

    // End of stream reaches the edge.
    feed.r.apply(skyrelay_common::media::MediaEvent::End, now_ms()).unwrap();
    wait_window(&local, "end", |w| w.ended().then_some(())).await;

    drop(sub);
    wait_until("unsubscribe at the server", || server.metrics.subscriptions.get() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_unknown_channel_is_not_found() {
    let pki = pki();
    let server = TestServer::start(hub(), &pki.server, None);
    let (client, _) = client(&pki, server.addr, hub());
    let err = client.subscribe("nope", "source").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_edge_to_edge_to_origin() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "chain");
    feed.segment(10, 2);
    let origin_server = TestServer::start(origin.clone(), &pki.server, None);

    // Shield edge: subscribes to the origin, re-serves its own hub.
    let shield = hub();
    let (shield_client, _) = client(&pki, origin_server.addr, shield.clone());
    let _s1 = shield_client.subscribe("chain", "source").await.unwrap();
    wait_window(&shield.rendition("chain", "source").unwrap(), "shield segment 10", |w| w.segment(10)).await;
    let shield_server = TestServer::start(shield.clone(), &pki.server, None);

    let edge = hub();
    let (edge_client, edge_metrics) = client(&pki, shield_server.addr, edge.clone());
    let s2 = edge_client.subscribe("chain", "source").await.unwrap();
    feed.segment(11, 3);
    feed.chunk(12, 0, 0);
    let local = s2.rendition().clone();
    wait_window(&local, "edge segment 11", |w| w.segment(11)).await;
    wait_window(&local, "edge open part 12.0", |w| w.part(12, 0)).await;
    assert_same_parts(&origin.rendition("chain", "source").unwrap(), &local, 10..=11);
    assert!(edge_metrics.upstream_objects.get() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_subscription_ends_when_upstream_removes_the_channel() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "gone");
    feed.segment(0, 1);
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let (client, metrics) = client(&pki, server.addr, hub());
    let sub = client.subscribe("gone", "source").await.unwrap();
    assert!(sub.is_active());
    origin.remove("gone");
    wait_until("subscription inactive", || !sub.is_active()).await;
    assert_eq!(metrics.subscriptions.get(), 0);
    // The connection stays up for other subscriptions.
    assert!(client.is_connected());
}

/// A shield edge that subscribes upstream when a lower-tier edge asks for a channel it does
/// not carry yet.
struct OnDemand {
    hub: std::sync::Arc<skyrelay_common::hub::Hub>,
    upstream: skyrelay_common::relay::client::RelayClient,
    subs: std::sync::Mutex<Vec<skyrelay_common::relay::client::Subscription>>,
}

impl skyrelay_common::relay::server::RenditionSource for OnDemand {
    fn find<'a>(
        &'a self,
        channel: &'a str,
        rendition: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<std::sync::Arc<skyrelay_common::hub::Rendition>, ErrorCode>>
    {
        Box::pin(async move {
            if let Some(r) = self.hub.rendition(channel, rendition) {
                return Ok(r);
            }
            let sub = self
                .upstream
                .subscribe(channel, rendition)
                .await
                .map_err(|e| e.code().unwrap_or(ErrorCode::Internal))?;
            let r = sub.rendition().clone();
            self.subs.lock().unwrap().push(sub);
            Ok(r)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_shield_subscribes_upstream_on_demand() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "live");
    feed.segment(0, 2);
    let origin_server = TestServer::start(origin.clone(), &pki.server, None);

    let shield_hub = hub();
    let (upstream, _) = client(&pki, origin_server.addr, shield_hub.clone());
    let source =
        std::sync::Arc::new(OnDemand { hub: shield_hub.clone(), upstream, subs: Default::default() });
    let cfg = skyrelay_common::relay::server::RelayServerConfig::default();
    let ep =
        skyrelay_common::relay::server::server_endpoint("127.0.0.1:0".parse().unwrap(), &pki.server, &cfg)
            .unwrap();
    let shield_addr = ep.local_addr().unwrap();
    let metrics = skyrelay_common::relay::metrics::RelayServerMetrics::unregistered();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shield =
        tokio::spawn(skyrelay_common::relay::server::serve_source(ep, source, cfg, metrics, async move {
            let _ = stopped.await;
        }));

    let edge = hub();
    let (edge_client, _) = client(&pki, shield_addr, edge.clone());
    let sub = edge_client.subscribe("live", "source").await.unwrap();
    assert!(
        edge_client.subscribe("missing", "source").await.unwrap_err().code() == Some(ErrorCode::NotFound)
    );
    feed.segment(1, 2);
    wait_window(sub.rendition(), "segment 1 through the shield", |w| w.segment(1)).await;
    assert_same_parts(&origin.rendition("live", "source").unwrap(), sub.rendition(), 1..=1);
    let _ = stop.send(());
    tokio::time::timeout(DEADLINE, shield).await.unwrap().unwrap();
}

/// A fresh subscription starts `history_segments` back and receives all of that history,
/// although it holds far more parts than the publisher keeps in flight (K = 8): complete
/// parts of the backfill wait for a free slot instead of being dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fresh_subscription_backfills_history() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "hist");
    for msn in 0..6 {
        feed.segment(msn, 6);
    }
    feed.chunk(6, 0, 0);
    let server = TestServer::start(origin.clone(), &pki.server, None);

    let edge = hub();
    let (client, _) = client(&pki, server.addr, edge.clone());
    let sub = client.subscribe("hist", "source").await.unwrap();
    let local = sub.rendition().clone();
    let history = client_config(server.addr).history_segments;
    let first = 6 - history;
    // Once caught up (the upstream's newest part at subscribe time is here), every history
    // segment is in the window already.
    assert!(sub.caught_up(DEADLINE).await, "caught up with the upstream");
    assert!(local.wait_filled(DEADLINE).await, "the rendition counts as filled");
    let held = local.read(|w| (w.oldest_msn(), w.last_complete_msn(), w.part(6, 0).is_some()));
    assert_eq!(held, (Some(first), Some(5), true), "history segments and the open part");
    assert_same_parts(&origin.rendition("hist", "source").unwrap(), &local, first..=5);
    assert_eq!(server.metrics.parts_dropped.get(), 0, "no backfill part dropped");
}

/// A detached fetch returns a complete segment as one buffer without touching the window;
/// a segment the upstream does not hold is `not_found`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fetch_segment_returns_the_whole_segment() {
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "fetch");
    for msn in 0..3 {
        feed.segment(msn, 4);
    }
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let edge = hub();
    let (client, _) = client(&pki, server.addr, edge.clone());
    let sub = client.subscribe("fetch", "source").await.unwrap();
    let upstream = origin.rendition("fetch", "source").unwrap();
    let want: Vec<u8> = upstream.read(|w| w.segment(1)).unwrap().chunks.concat();
    let got = sub.fetch_segment(1, DEADLINE).await.unwrap();
    assert_eq!(got.as_ref(), &want[..], "segment 1 bytes");
    let err = sub.fetch_segment(40, std::time::Duration::from_millis(200)).await.unwrap_err();
    assert!(
        err.code() == Some(ErrorCode::NotFound) || matches!(err, RelayError::Timeout),
        "a segment not held: {err}"
    );
    assert_eq!(
        sub.fetch_segment(0, DEADLINE).await.unwrap().len(),
        upstream.read(|w| w.segment(0)).unwrap().len()
    );
    // Read while it arrives: chunk by chunk (none joined here), the same bytes.
    use futures_util::StreamExt;
    let chunks = upstream.read(|w| w.segment(2)).unwrap().chunks;
    let arriving = sub.fetch_arriving(2, DEADLINE).await.unwrap();
    let pieces: Vec<bytes::Bytes> = arriving.stream(DEADLINE, 0).map(|c| c.unwrap()).collect().await;
    assert!(pieces.len() >= chunks.len(), "{} pieces for {} chunks", pieces.len(), chunks.len());
    assert_eq!(pieces.concat(), chunks.concat(), "segment 2 bytes");
}

/// A fetch sent with the subscribe (a cold edge asked for a segment) returns the segment
/// whole, without disturbing the history the fresh subscription asked for (held back by
/// the history gate until the fetch is queued). That the segment then arrives first is
/// timing, shown by the edge delivery benchmark's cold case, not asserted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_fetch_sent_with_the_subscribe_returns_the_segment_and_the_whole_history() {
    use skyrelay_common::media::MediaEvent;
    let pki = pki();
    let origin = hub();
    let feed = Feeder::new(&origin, "cold");
    // Segments of 4 parts of 2 chunks of 48 KiB (384 KiB each), then an open part.
    let big = |msn: u64, part: u32, index: usize| {
        let mut b = vec![0u8; 48 * 1024];
        b[..8].copy_from_slice(&(msn << 16 | u64::from(part) << 8 | index as u64).to_le_bytes());
        bytes::Bytes::from(b)
    };
    for msn in 0..6 {
        for part in 0..4 {
            for index in 0..2 {
                let ev =
                    MediaEvent::Chunk { msn, part, independent: part == 0, bytes: big(msn, part, index) };
                feed.r.apply(ev, now_ms()).unwrap();
            }
            feed.end_part(msn, part, part == 3);
        }
    }
    feed.chunk(6, 0, 0);
    let server = TestServer::start(origin.clone(), &pki.server, None);
    let edge = hub();
    let (client, _) = client(&pki, server.addr, edge.clone());
    let want: Vec<u8> =
        origin.rendition("cold", "source").unwrap().read(|w| w.segment(5)).unwrap().chunks.concat();

    let sub = client.subscribe_fetching("cold", "source", Some(5)).await.unwrap();
    let got = sub.fetch_segment(5, DEADLINE).await.unwrap();
    assert_eq!(got.as_ref(), &want[..], "segment 5 bytes");
    // The history still arrives whole.
    assert!(sub.caught_up(DEADLINE).await, "caught up with the upstream");
    assert_same_parts(&origin.rendition("cold", "source").unwrap(), sub.rendition(), 3..=5);
    assert_eq!(server.metrics.parts_dropped.get(), 0, "no history part dropped");
}

/// The history of a subscription that came with a fetch (a cold edge asked for a segment)
/// waits `history_after_fetch` after the fetched segment, while a subscription without one
/// gets its history at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_history_waits_after_a_fetch_that_came_with_the_subscribe() {
    let pki = pki();
    let origin = hub();
    for channel in ["fetched", "plain"] {
        let feed = Feeder::new(&origin, channel);
        for msn in 0..3 {
            feed.segment(msn, 2);
        }
        feed.chunk(3, 0, 0);
    }
    let history = |settle| {
        let cfg = RelayServerConfig { history_after_fetch: settle, ..test_server_config() };
        TestServer::start_with(origin.clone(), &pki.server, cfg)
    };

    // Held for an hour: the fetch is answered, a later subscription without a fetch on the
    // same connection has all its history, and the first still has none.
    let server = history(Duration::from_secs(3600));
    let (relay, _) = client(&pki, server.addr, hub());
    let fetched = relay.subscribe_fetching("fetched", "source", Some(2)).await.unwrap();
    let want = origin.rendition("fetched", "source").unwrap().read(|w| w.segment(2)).unwrap().chunks.concat();
    assert_eq!(fetched.fetch_segment(2, DEADLINE).await.unwrap().as_ref(), &want[..], "segment 2 bytes");
    let plain = relay.subscribe("plain", "source").await.unwrap();
    assert!(plain.caught_up(DEADLINE).await, "the subscription without a fetch has its history");
    assert_same_parts(&origin.rendition("plain", "source").unwrap(), plain.rendition(), 0..=2);
    assert!(!fetched.rendition().is_filled(), "history of the subscription with a fetch held back");
    assert_eq!(fetched.rendition().read(|w| w.oldest_msn()), None, "no history part yet");

    // Held briefly: the history follows.
    let server = history(Duration::from_millis(50));
    let (relay, _) = client(&pki, server.addr, hub());
    let fetched = relay.subscribe_fetching("fetched", "source", Some(2)).await.unwrap();
    assert_eq!(fetched.fetch_segment(2, DEADLINE).await.unwrap().as_ref(), &want[..], "segment 2 bytes");
    assert!(fetched.caught_up(DEADLINE).await, "the history arrives after the settle delay");
    assert_same_parts(&origin.rendition("fetched", "source").unwrap(), fetched.rendition(), 0..=2);
}
