//! Hub and Rendition: get-or-create, limits, change notification, removal, last access.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skyrelay_common::hub::{Hub, HubError, HubLimits};
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::WindowConfig;
use tokio::time::Instant;

fn init_event() -> MediaEvent {
    let info = RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f".into(),
        bandwidth: 1,
        resolution: None,
        frame_rate: None,
        has_video: true,
        has_audio: false,
    };
    MediaEvent::Init { info, bytes: Bytes::from_static(b"i") }
}

#[test]
fn open_is_get_or_create_and_bounded() {
    let hub = Hub::with_limits(
        WindowConfig::default(),
        HubLimits { max_channels: 2, max_renditions_per_channel: 2, ..HubLimits::default() },
    );
    let a = hub.open("a", "source").unwrap();
    assert!(Arc::ptr_eq(&a, &hub.open("a", "source").unwrap()));
    assert!(Arc::ptr_eq(&a, &hub.rendition("a", "source").unwrap()));
    hub.open("a", "low").unwrap();
    assert_eq!(hub.open("a", "mid").unwrap_err(), HubError::TooManyRenditions(2));
    hub.open("b", "source").unwrap();
    assert_eq!(hub.open("c", "source").unwrap_err(), HubError::TooManyChannels(2));
    assert!(matches!(hub.open("../x", "source"), Err(HubError::InvalidName(_))));
    assert!(matches!(hub.open("a", ""), Err(HubError::InvalidName(_))));
    let names: Vec<_> = hub.renditions("a").iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(names, ["source", "low"]);
    let mut channels = hub.channels();
    channels.sort();
    assert_eq!(channels, ["a", "b"]);
    hub.remove_rendition("b", "source");
    assert!(!hub.contains("b"));
    hub.open("c", "source").unwrap();
}

#[tokio::test]
async fn wait_for_wakes_on_change_and_times_out() {
    let hub = Hub::new(WindowConfig::default());
    let r = hub.open("a", "source").unwrap();
    let mut versions = r.subscribe();
    let waiter = tokio::spawn({
        let r = r.clone();
        async move { r.wait_for(Instant::now() + Duration::from_secs(10), |w| w.current_init_id()).await }
    });
    r.apply(init_event(), 0).unwrap();
    let id = tokio::time::timeout(Duration::from_secs(2), waiter).await.unwrap().unwrap();
    assert_eq!(id, r.read(|w| w.current_init_id()));
    versions.changed().await.unwrap();
    assert_eq!(*versions.borrow(), 1);

    // Rejected events change nothing and notify nobody.
    assert!(r.apply(MediaEvent::PartEnd { msn: 0, part: 0, duration: 1.0, ends_segment: true }, 0).is_err());
    assert!(!versions.has_changed().unwrap());

    let started = Instant::now();
    let none = r.wait_for(Instant::now() + Duration::from_millis(50), |w| w.latest_msn()).await;
    assert_eq!(none, None);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// A waiter on parts is woken when a part opens or completes, not by the chunks appended to
/// an open part in between (a blocking playlist reload sleeps through them).
#[tokio::test]
async fn wait_for_parts_sleeps_through_appended_chunks() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hub = Hub::new(WindowConfig::default());
    let r = hub.open("a", "source").unwrap();
    r.apply(init_event(), 0).unwrap();
    let chunk =
        |i: u8| MediaEvent::Chunk { msn: 0, part: 0, independent: true, bytes: Bytes::from(vec![i; 10]) };
    r.apply(chunk(0), 0).unwrap();
    // A waiter for the part's end that counts how often it checks; on parts or on every change.
    let waiter = |on_parts: bool| {
        let (r, checks) = (r.clone(), Arc::new(AtomicUsize::new(0)));
        let n = checks.clone();
        let task = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let complete = |w: &skyrelay_common::window::LiveWindow| {
                n.fetch_add(1, Ordering::SeqCst);
                w.last_complete_part().map(|_| ())
            };
            if on_parts {
                r.wait_for_parts(deadline, complete).await
            } else {
                r.wait_for(deadline, complete).await
            }
        });
        (checks, task)
    };
    let (parts_checks, parts_waiter) = waiter(true);
    let (all_checks, all_waiter) = waiter(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while parts_checks.load(Ordering::SeqCst) == 0 || all_checks.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "waiters never checked");
        tokio::task::yield_now().await;
    }
    for i in 1..=5 {
        r.apply(chunk(i), 0).unwrap();
        // Let a woken waiter run before the next change.
        let seen = all_checks.load(Ordering::SeqCst);
        while all_checks.load(Ordering::SeqCst) == seen {
            assert!(Instant::now() < deadline, "the chunk-level waiter was not woken");
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(parts_checks.load(Ordering::SeqCst), 1, "woken by an appended chunk");
    r.apply(MediaEvent::PartEnd { msn: 0, part: 0, duration: 0.2, ends_segment: false }, 0).unwrap();
    let timeout = Duration::from_secs(2);
    assert_eq!(tokio::time::timeout(timeout, parts_waiter).await.unwrap().unwrap(), Some(()));
    assert_eq!(tokio::time::timeout(timeout, all_waiter).await.unwrap().unwrap(), Some(()));
    assert_eq!(parts_checks.load(Ordering::SeqCst), 2, "once at the start, once at the part's end");
    assert_eq!(all_checks.load(Ordering::SeqCst), 7, "the chunk-level waiter saw every change");
}

#[tokio::test]
async fn remove_releases_waiters() {
    let hub = Arc::new(Hub::new(WindowConfig::default()));
    let r = hub.open("a", "source").unwrap();
    let waiter = tokio::spawn({
        let r = r.clone();
        async move { r.wait_for(Instant::now() + Duration::from_secs(30), |w| w.latest_msn()).await }
    });
    tokio::task::yield_now().await;
    hub.remove("a");
    let got = tokio::time::timeout(Duration::from_secs(2), waiter).await.expect("released").unwrap();
    assert_eq!(got, None);
    assert!(r.is_closed());
    assert!(hub.rendition("a", "source").is_none());
}

#[test]
fn playlist_is_cached_per_version() {
    let r = skyrelay_common::hub::Rendition::standalone("a", "source", WindowConfig::default());
    assert!(r.media_playlist(None).is_none());
    r.apply(init_event(), 0).unwrap();
    r.apply(MediaEvent::Chunk { msn: 0, part: 0, independent: true, bytes: Bytes::from_static(b"x") }, 0)
        .unwrap();
    let a = r.media_playlist(None).unwrap();
    let b = r.media_playlist(None).unwrap();
    assert_eq!(a.as_ptr(), b.as_ptr(), "same version shares one text");
    r.apply(MediaEvent::PartEnd { msn: 0, part: 0, duration: 0.3, ends_segment: false }, 0).unwrap();
    let c = r.media_playlist(None).unwrap();
    assert_ne!(a, c);
    assert!(r.media_playlist(Some("token=x")).unwrap().len() > c.len());
}

#[tokio::test]
async fn idle_channels_follow_touches() {
    let hub = Hub::new(WindowConfig::default());
    let r = hub.open("a", "source").unwrap();
    hub.open("b", "source").unwrap();
    let idle_since = hub.last_access("a").unwrap();
    assert!(hub.idle_channels(Duration::from_secs(60)).is_empty());
    let mut all = hub.idle_channels(Duration::ZERO);
    all.sort();
    assert_eq!(all, ["a", "b"]);
    // Wait until the clock has moved on by a millisecond, then touch.
    while idle_since.elapsed() < Duration::from_millis(2) {
        tokio::task::yield_now().await;
    }
    r.touch();
    assert!(hub.last_access("a").unwrap() > idle_since);
}

#[test]
fn windows_reserve_their_bytes_from_the_hub_budget() {
    // Each window may hold 1 MiB; the hub's windows 2.5 MiB together: two fit, not three.
    let cfg = WindowConfig { max_bytes: 1 << 20, ..WindowConfig::default() };
    let limits = HubLimits { max_window_bytes: (5 << 20) / 2, ..HubLimits::default() };
    let hub = Hub::with_limits(cfg, limits);
    hub.open("a", "source").unwrap();
    hub.open("b", "source").unwrap();
    assert_eq!(hub.open("c", "source").unwrap_err(), HubError::OverBudget((5 << 20) / 2));
    assert!(!hub.contains("c"), "a refused channel leaves nothing behind");
    // Dropping a channel gives its reservation back.
    hub.remove("a");
    hub.open("c", "source").unwrap();
}

#[tokio::test]
async fn a_rendition_not_filled_counts_as_filled_after_the_backfill_limit() {
    let r = skyrelay_common::hub::Rendition::standalone("c", "source", WindowConfig::default());
    assert!(r.is_filled(), "filled unless a writer says otherwise");
    r.set_filled(false);
    assert!(!r.is_filled());
    assert!(!r.wait_filled(Duration::from_millis(50)).await);
    // Nothing marks it filled: past the limit it counts as filled anyway.
    let limit = skyrelay_common::hub::BACKFILL_LIMIT + Duration::from_secs(5);
    skyrelay_testkit::poll_until("filled past the backfill limit", limit, Duration::from_millis(50), || {
        r.is_filled()
    })
    .await;
    r.set_filled(false);
    r.set_filled(true);
    assert!(r.is_filled());
}
