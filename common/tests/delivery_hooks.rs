//! The edge hooks: a channel source that subscribes on the first request, and playback
//! access checks whose token is carried into every URI.

mod delivery_support;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use delivery_support::*;
use http::StatusCode;
use skyrelay_common::delivery::{Access, BoxFuture, ChannelSource, DeliveryConfig, Denied, SourceError};
use skyrelay_common::hub::Hub;

struct TokenCheck;

impl Access for TokenCheck {
    fn check<'a>(
        &'a self,
        _channel: &'a str,
        token: Option<&'a str>,
        client: IpAddr,
    ) -> BoxFuture<'a, Result<Option<String>, Denied>> {
        assert!(client.is_loopback());
        Box::pin(std::future::ready(match token {
            Some("good") => Ok(Some("good/sig".into())),
            _ => Err(Denied { status: StatusCode::FORBIDDEN, reason: "missing or invalid token".into() }),
        }))
    }
}

#[tokio::test]
async fn access_denies_and_carries_the_token() {
    let srv = start_with(DeliveryConfig::default(), |d| d.with_access(Arc::new(TokenCheck))).await;
    let r = srv.source();
    let id = init(&r);
    segments(&r, 0, 2);
    chunk(&r, 2, 0, 0);
    let c = client();

    let denied = get(&c, &srv.url("/live/live1/source/index.m3u8")).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.header("x-skyrelay-denied"), "missing or invalid token");
    assert!(denied.text().contains("invalid token"));
    let denied = get(&c, &srv.url(&format!("/live/live1/source/init-{id}.mp4?token=bad"))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    let pl = get(&c, &srv.url("/live/live1/source/index.m3u8?token=good")).await;
    assert_eq!(pl.status, StatusCode::OK);
    let text = pl.text();
    for line in text.lines().filter(|l| !l.starts_with('#') || l.contains("URI=")) {
        assert!(line.contains("?token=good%2Fsig"), "{line}");
    }
    let master = get(&c, &srv.url("/live/live1/master.m3u8?token=good")).await;
    assert!(master.text().contains("source/index.m3u8?token=good%2Fsig\n"), "{}", master.text());
    let seg = get(&c, &srv.url("/live/live1/source/seg-0.m4s?token=good")).await;
    assert_eq!(seg.status, StatusCode::OK);
    srv.stop().await;
}

/// Opens `live2` in the hub on demand (as an edge's subscription would) and feeds it.
struct FakeUpstream {
    hub: Arc<Hub>,
    calls: AtomicUsize,
}

impl ChannelSource for FakeUpstream {
    fn ensure<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), SourceError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match channel {
                "live2" => {
                    let r = self.hub.open("live2", "source").map_err(|_| SourceError::Overloaded)?;
                    let hub_feed = r.clone();
                    // Media arrives a little later, from another task.
                    tokio::spawn(async move {
                        tokio::task::yield_now().await;
                        init(&hub_feed);
                        segments(&hub_feed, 40, 42);
                    });
                    Ok(())
                }
                "down" => Err(SourceError::Unavailable("no route".into())),
                _ => Err(SourceError::NotFound),
            }
        })
    }
}

#[tokio::test]
async fn channel_source_is_asked_once_for_a_missing_channel() {
    let mut upstream = None;
    let srv = start_with(DeliveryConfig { hold_deadline_ms: 5000, ..Default::default() }, |d| {
        let source = Arc::new(FakeUpstream { hub: d.hub().clone(), calls: AtomicUsize::new(0) });
        upstream = Some(source.clone());
        d.with_source(source)
    })
    .await;
    let upstream = upstream.unwrap();
    let c = client();

    let pl = get(&c, &srv.url("/live/live2/source/index.m3u8")).await;
    assert_eq!(pl.status, StatusCode::OK, "{}", pl.text());
    let media = m3u8_rs::parse_media_playlist_res(&pl.body).unwrap();
    assert_eq!(media.media_sequence, 40);
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1);
    let master = get(&c, &srv.url("/live/live2/master.m3u8")).await;
    assert_eq!(master.status, StatusCode::OK);
    assert_eq!(upstream.calls.load(Ordering::SeqCst), 1, "present channels are not asked for again");

    assert_eq!(get(&c, &srv.url("/live/nowhere/source/index.m3u8")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&c, &srv.url("/live/down/master.m3u8")).await.status, StatusCode::BAD_GATEWAY);
    // Last access is tracked for idle unsubscribe.
    assert!(srv.hub.idle_channels(Duration::from_secs(3600)).is_empty());
    assert_eq!(srv.hub.idle_channels(Duration::ZERO), vec!["live2".to_string()]);
    srv.stop().await;
}
