//! The cold-miss burst measures what it claims: the object is chosen at the reference (the
//! newest complete segment, or the media playlist reached through the master playlist), every
//! client asks the target for that same path, and the time to first byte covers an injected
//! delay of the target (at least the delay, within a few frames of it). No timing goal is
//! asserted, only the measurement.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use skyrelay_loadtest::burst::{self, BurstObject, BurstOptions};
use tokio_util::sync::CancellationToken;

const DELAY: Duration = Duration::from_millis(300);
const CLIENTS: usize = 32;

const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nsource/index.m3u8\n";
const MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:4\n\
#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.0,\nseg-4.m4s\n#EXTINF:1.0,\nseg-5.m4s\n\
#EXT-X-PART:DURATION=0.2,URI=\"part-6.0.m4s\",INDEPENDENT=YES\n\
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-6.1.m4s\"\n";

/// Serves the playlists and `seg-5.m4s`, after `delay`; records every path asked for.
async fn serve(delay: Duration, seen: Arc<Mutex<Vec<String>>>, stop: CancellationToken) -> SocketAddr {
    serve_with(delay, seen, stop, true).await
}

async fn serve_with(
    delay: Duration,
    seen: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    has_segment: bool,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                _ = stop.cancelled() => return,
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        seen.lock().unwrap().push(path.clone());
                        tokio::time::sleep(delay).await;
                        let body = match path.as_str() {
                            "/live/c/master.m3u8" => Some(Bytes::from_static(MASTER.as_bytes())),
                            "/live/c/source/index.m3u8" => Some(Bytes::from_static(MEDIA.as_bytes())),
                            "/live/c/source/seg-5.m4s" if has_segment => {
                                Some(Bytes::from(vec![7u8; 100_000]))
                            }
                            _ => None,
                        };
                        let resp = match body {
                            Some(b) => Response::new(Full::new(b)),
                            None => {
                                let mut r = Response::new(Full::new(Bytes::new()));
                                *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_requests_the_reference_object_and_measures_ttfb() {
    let stop = CancellationToken::new();
    let ref_seen = Arc::new(Mutex::new(Vec::new()));
    let target_seen = Arc::new(Mutex::new(Vec::new()));
    let reference = serve(Duration::ZERO, ref_seen.clone(), stop.clone()).await;
    let target = serve(DELAY, target_seen.clone(), stop.clone()).await;
    let opts = BurstOptions { clients: CLIENTS, timeout: Duration::from_secs(10) };
    let master = format!("http://{reference}/live/c/master.m3u8");

    let r = burst::run(&format!("http://{target}"), &master, BurstObject::Segment, &opts, stop.clone())
        .await
        .unwrap();
    assert_eq!(r.url, format!("http://{target}/live/c/source/seg-5.m4s"));
    assert_eq!(r.ok, CLIENTS, "{:?}", r.outcomes);
    assert_eq!(r.outcomes.get("200"), Some(&(CLIENTS as u64)));
    {
        let seen = target_seen.lock().unwrap();
        assert_eq!(seen.len(), CLIENTS);
        assert!(seen.iter().all(|p| p == "/live/c/source/seg-5.m4s"), "{seen:?}");
    }
    let delay_ms = DELAY.as_secs_f64() * 1000.0;
    assert_eq!(r.ttfb_ms.count, CLIENTS as u64);
    assert!(r.ttfb_ms.p50 >= delay_ms && r.ttfb_ms.max >= r.ttfb_ms.p50, "{:?}", r.ttfb_ms);
    assert!(r.ttfb_ms.p50 < delay_ms + 100.0, "median {} ms for a {delay_ms} ms delay", r.ttfb_ms.p50);
    assert!(r.ttlb_ms.p50 >= r.ttfb_ms.p50);
    assert!(r.bytes_min > 100_000 && r.bytes_min == r.bytes_max, "{} {}", r.bytes_min, r.bytes_max);
    // The reference (no delay) answered its own fetch faster than the delayed target.
    assert!(r.reference_ttfb_ms.is_some_and(|t| t < delay_ms), "{:?}", r.reference_ttfb_ms);

    target_seen.lock().unwrap().clear();
    let r = burst::run(&format!("http://{target}"), &master, BurstObject::Playlist, &opts, stop.clone())
        .await
        .unwrap();
    assert_eq!(r.url, format!("http://{target}/live/c/source/index.m3u8"));
    assert_eq!(r.ok, CLIENTS);
    assert_eq!(target_seen.lock().unwrap().len(), CLIENTS);

    // A target without the object: every client gets the 404, none counts as ok.
    let empty = serve_with(Duration::ZERO, Arc::new(Mutex::new(Vec::new())), stop.clone(), false).await;
    let opts = BurstOptions { clients: 4, timeout: Duration::from_secs(10) };
    let r = burst::run(&format!("http://{empty}"), &master, BurstObject::Segment, &opts, stop.clone())
        .await
        .unwrap();
    assert_eq!(r.ok, 0);
    assert_eq!(r.outcomes.get("404"), Some(&4), "{:?}", r.outcomes);
    assert_eq!(r.ttfb_ms.count, 4);
    stop.cancel();
}

#[tokio::test]
async fn missing_objects_and_bad_arguments_are_reported() {
    let stop = CancellationToken::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = serve(Duration::ZERO, seen, stop.clone()).await;
    let opts = BurstOptions { clients: 0, timeout: Duration::from_secs(5) };
    let media = format!("http://{server}/live/c/source/index.m3u8");
    assert!(matches!(
        burst::run(&format!("http://{server}"), &media, BurstObject::Segment, &opts, stop.clone()).await,
        Err(burst::BurstError::Clients(0))
    ));
    let opts = BurstOptions { clients: 3, timeout: Duration::from_secs(5) };
    let missing = format!("http://{server}/live/nope/index.m3u8");
    assert!(matches!(
        burst::run(&format!("http://{server}"), &missing, BurstObject::Segment, &opts, stop.clone()).await,
        Err(burst::BurstError::Reference(_))
    ));
    stop.cancel();
}
