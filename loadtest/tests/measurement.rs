//! The viewers' measurements are right: an in-test LL-HLS server serves parts and
//! segments whose SEI stamps are set to (serve time - 400 ms); the measured median frame
//! latency must be within one frame (34 ms) of that injected delay, for LL-HLS and classic
//! HLS players alike. No timing goal is asserted, only the measurement.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use skyrelay_loadtest::scenario::{self, RunOptions, Scenario, ViewerGroup};
use skyrelay_loadtest::sei::{sei_nal, unix_now_us};
use skyrelay_loadtest::viewer::Mode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const DELAY_US: u64 = 400_000;
const PART_MS: u64 = 200;
const PARTS: u64 = 5;
const FRAMES_PER_PART: u64 = 6;
const WINDOW_SEGMENTS: u64 = 4;
const VIEWERS: usize = 10;

struct Synth {
    start: Instant,
}

impl Synth {
    /// Parts available now.
    fn available(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 / PART_MS
    }

    /// Waits (as a blocking LL-HLS server would) until part `index` exists, at most 5 s.
    async fn wait_for(&self, index: u64) -> bool {
        let at = self.start + Duration::from_millis((index + 1) * PART_MS);
        if at > Instant::now() + Duration::from_secs(5) {
            return false;
        }
        tokio::time::sleep_until(at).await;
        true
    }

    fn playlist(&self) -> String {
        let n = self.available();
        let complete = n / PARTS;
        let first = complete.saturating_sub(WINDOW_SEGMENTS);
        let mut s = String::from(
            "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n\
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6\n#EXT-X-PART-INF:PART-TARGET=0.2\n",
        );
        s += &format!("#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"init-0.mp4\"\n");
        let part_line = |msn: u64, p: u64| {
            let ind = if p == 0 { ",INDEPENDENT=YES" } else { "" };
            format!("#EXT-X-PART:DURATION=0.2,URI=\"part-{msn}.{p}.m4s\"{ind}\n")
        };
        for msn in first..complete {
            if msn + 2 >= complete {
                for p in 0..PARTS {
                    s += &part_line(msn, p);
                }
            }
            s += &format!("#EXTINF:1.0,\nseg-{msn}.m4s\n");
        }
        for p in 0..n % PARTS {
            s += &part_line(complete, p);
        }
        s += &format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part-{complete}.{}.m4s\"\n", n % PARTS);
        s
    }
}

/// A fake CMAF chunk: a `moof` box, then an `mdat` of AVCC samples, each an SEI stamped
/// `now - DELAY` followed by a slice NAL unit.
fn media(frames: u64) -> Vec<u8> {
    let base = unix_now_us() - DELAY_US;
    let mut mdat = Vec::new();
    for k in 0..frames {
        let sei = sei_nal(base + k);
        mdat.extend_from_slice(&(sei.len() as u32).to_be_bytes());
        mdat.extend_from_slice(&sei);
        let slice = [&[0x65u8, 0x88][..], &[0x11; 400][..]].concat();
        mdat.extend_from_slice(&(slice.len() as u32).to_be_bytes());
        mdat.extend_from_slice(&slice);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&16u32.to_be_bytes());
    out.extend_from_slice(b"moof");
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(mdat.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(b"mdat");
    out.extend_from_slice(&mdat);
    out
}

fn query(q: &str, key: &str) -> Option<u64> {
    q.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

async fn handle(synth: Arc<Synth>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let file = path.rsplit('/').next().unwrap_or("");
    let reply = |status: u16, body: Vec<u8>| {
        Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap()
    };
    if file == "master.m3u8" {
        return reply(200, b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\nsource/index.m3u8\n".to_vec());
    }
    if file == "index.m3u8" {
        let q = req.uri().query().unwrap_or("");
        if let Some(msn) = query(q, "_HLS_msn") {
            let part = query(q, "_HLS_part").unwrap_or(0).min(PARTS);
            if !synth.wait_for(msn * PARTS + part).await {
                return reply(400, Vec::new());
            }
        }
        return reply(200, synth.playlist().into_bytes());
    }
    if file == "init-0.mp4" {
        return reply(200, vec![0, 0, 0, 8, b'f', b't', b'y', b'p']);
    }
    if let Some(rest) = file.strip_prefix("part-").and_then(|r| r.strip_suffix(".m4s")) {
        let Some((m, p)) = rest.split_once('.') else {
            return reply(404, Vec::new());
        };
        let (Ok(m), Ok(p)) = (m.parse::<u64>(), p.parse::<u64>()) else {
            return reply(404, Vec::new());
        };
        if p >= PARTS || !synth.wait_for(m * PARTS + p).await {
            return reply(404, Vec::new());
        }
        return reply(200, media(FRAMES_PER_PART));
    }
    if let Some(m) =
        file.strip_prefix("seg-").and_then(|r| r.strip_suffix(".m4s")).and_then(|m| m.parse::<u64>().ok())
    {
        if m * PARTS + PARTS > synth.available() {
            return reply(404, Vec::new());
        }
        return reply(200, media(FRAMES_PER_PART * PARTS));
    }
    reply(404, Vec::new())
}

async fn serve() -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let synth = Arc::new(Synth {
        // Start with a few segments in the window.
        start: Instant::now() - Duration::from_millis(PART_MS * PARTS * 3 + 50),
    });
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                _ = token.cancelled() => return,
            };
            // As the edge and the origin do: without it, a reply written while the client's
            // next request is on its way waits for a delayed ACK (40 ms here).
            let _ = sock.set_nodelay(true);
            let synth = synth.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let synth = synth.clone();
                    async move { Ok::<_, Infallible>(handle(synth, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (addr, stop)
}

/// One measurement at a time: parallel runs on a small machine would measure each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn measure(mode: Mode, http2: bool) -> skyrelay_loadtest::stats::GroupSummary {
    let _serial = SERIAL.lock().await;
    let (addr, stop) = serve().await;
    let s = Scenario {
        duration_s: 3,
        warmup_s: Some(0),
        ramp_up_s: 0,
        http2,
        http2_viewers_per_connection: 5,
        publishers: Vec::new(),
        viewers: vec![ViewerGroup {
            name: Some("synthetic".into()),
            url: format!("http://{addr}/live/x/master.m3u8"),
            count: VIEWERS,
            mode,
            region: None,
        }],
        metrics: Vec::new(),
    };
    let report = scenario::run(&s, RunOptions::default(), CancellationToken::new()).await.unwrap();
    stop.cancel();
    assert_eq!(report.groups.len(), 1);
    report.groups[0].clone()
}

fn check(g: &skyrelay_loadtest::stats::GroupSummary) {
    eprintln!(
        "{}: p50 {:.1} ms p99 {:.1} ms over {} frames ({} backlog), requests {:?}",
        g.mode, g.latency_ms.p50, g.latency_ms.p99, g.latency_ms.count, g.backlog_frames, g.requests
    );
    assert_eq!(g.started, VIEWERS as u64, "every viewer received media: {g:?}");
    assert!(g.latency_ms.count >= VIEWERS as u64 * 30, "frames measured: {}", g.latency_ms.count);
    let injected = DELAY_US as f64 / 1000.0;
    assert!(
        (g.latency_ms.p50 - injected).abs() <= 34.0,
        "p50 {} ms vs injected {injected} ms",
        g.latency_ms.p50
    );
    assert!(g.latency_ms.p50 >= injected - 1.0, "latency cannot be below the injected delay");
    assert_eq!(g.negative_latency, 0);
    assert!(g.errors.is_empty(), "errors: {:?}", g.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_latency_matches_injected_delay() {
    let g = measure(Mode::LlHls, false).await;
    check(&g);
    // Played like hls.js: blocking reloads, parts and preload hints, never whole segments.
    assert!(g.requests.get("playlist_blocking").copied().unwrap_or(0) > 0, "{:?}", g.requests);
    assert!(g.requests.get("hint").copied().unwrap_or(0) > 0, "{:?}", g.requests);
    assert!(!g.requests.contains_key("segment"));
    assert_eq!(g.requests.get("init"), Some(&(VIEWERS as u64)));
    // Past the start (the parts from the last independent one, at most a segment's), every
    // part is streamed from its preload hint; none is fetched whole after it completed.
    let (hints, parts) = (g.requests["hint"], g.requests.get("part").copied().unwrap_or(0));
    assert!(parts <= VIEWERS as u64 * PARTS, "whole parts fetched: {:?}", g.requests);
    assert!(hints > parts, "{:?}", g.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ll_hls_over_http2_measures_the_same() {
    check(&measure(Mode::LlHls, true).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_hls_latency_matches_injected_delay() {
    let g = measure(Mode::Hls, false).await;
    check(&g);
    assert!(g.requests.get("segment").copied().unwrap_or(0) > 0, "{:?}", g.requests);
    assert!(!g.requests.contains_key("part"));
    assert!(!g.requests.contains_key("playlist_blocking"));
}
