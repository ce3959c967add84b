//! Recordings played back through an edge, end to end: a control plane, an origin recording
//! to a real S3-compatible server (s3s-fs) and an edge, all on loopback. ffmpeg publishes
//! 30 s to a private channel; once the catalog says complete, the objects are in the bucket,
//! the edge refuses the VOD without a token, ffprobe plays it through the edge with a token
//! (duration within one segment of 30 s) and ffmpeg decodes it without errors; concurrent
//! requests for one segment make one origin fetch, a second fetch is a cache hit, served
//! byte-identical to the bucket's object; unknown ids and unsafe paths are 404. A channel
//! whose recording is off in the control plane, published at the same time, is not recorded.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skyrelay_common::relay::tls;
use skyrelay_control_plane::{App, ControlPlaneConfig};
use skyrelay_edge::config::EdgeConfig;
use skyrelay_edge::node::EdgeNode;
use skyrelay_origin::config::{OriginConfig, S3Settings, StorageSettings};
use skyrelay_origin::node::OriginNode;
use skyrelay_origin::recorder::{S3Storage, Storage};
use skyrelay_testkit::*;

const ACCESS_KEY: &str = "vod-test-access";
const SECRET_KEY: &str = "vod-test-secret-0123456789";
const RECORDED_SECONDS: f64 = 30.0;

/// s3s-fs serving `dir` on a free loopback port (killed when the guard drops).
async fn start_s3(dir: &Path) -> (ChildGuard, S3Settings) {
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let guard = skyrelay_testkit::s3::start_s3s_fs(port, dir, ACCESS_KEY, SECRET_KEY).await;
    let settings = S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        bucket: "recordings".into(),
        path_style: true,
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        request_timeout_seconds: 5,
    };
    S3Storage::new(&settings).await.ensure_bucket().await.expect("bucket created");
    (guard, settings)
}

/// A served control plane with an admin; returns its base URL, node secret and a session.
async fn start_control_plane(dir: &Path) -> (String, String, String) {
    let text = format!(
        "data_dir = \"{}\"\nnode_secret = \"vod-node-secret-for-tests-0001\"\nheartbeat_interval_ms = 500\n",
        dir.display()
    );
    let cfg: ControlPlaneConfig = skyrelay_common::config::from_toml(&text).unwrap();
    let app = App::new(cfg, &prometheus::Registry::new()).await.expect("control plane starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let secret = app.node_secret().to_string();
    let password = skyrelay_control_plane::create_admin(app.store(), "admin").await.expect("admin");
    tokio::spawn(async move {
        let _ = skyrelay_control_plane::serve(app, listener, std::future::pending()).await;
    });
    let (status, body) = http_json(
        "POST",
        &format!("{base}/v1/sessions"),
        None,
        Some(json!({"username": "admin", "password": password})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (base, secret, body["token"].as_str().expect("session token").to_string())
}

/// The value of `name{outcome="label"}` in a Prometheus text exposition.
fn metric(text: &str, name: &str, label: &str) -> f64 {
    let prefix = format!("{name}{{{label}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}{{{label}}} in the metrics"))
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let (status, text) = http_text(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    text
}

fn ffprobe_duration(url: &str) -> f64 {
    let (ok, out, err) = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "default=noprint_wrappers=1:nokey=1",
        url,
    ]));
    assert!(ok, "ffprobe failed: {err}");
    out.trim().parse().unwrap_or_else(|_| panic!("ffprobe duration: {out:?} {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_plays_through_the_edge_from_s3() {
    let dir = tempfile::tempdir().unwrap();
    let (_s3, s3) = start_s3(&dir.path().join("s3")).await;
    let (cp, node_secret, session) = start_control_plane(&dir.path().join("cp")).await;

    // A private channel with a stream key, made through the API.
    let (status, body) = http_json(
        "POST",
        &format!("{cp}/v1/channels"),
        Some(&session),
        Some(json!({"name": "secret", "private": true, "recording": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        http_json("POST", &format!("{cp}/v1/channels/secret/stream-key"), Some(&session), None).await;
    assert_eq!(status, 201, "{body}");
    let key = body["stream_key"].as_str().unwrap().to_string();
    // A channel with recording off: the origin records all channels, but the channel's own
    // setting from the control plane wins.
    let (status, body) = http_json(
        "POST",
        &format!("{cp}/v1/channels"),
        Some(&session),
        Some(json!({"name": "unrecorded", "private": false, "recording": false})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        http_json("POST", &format!("{cp}/v1/channels/unrecorded/stream-key"), Some(&session), None).await;
    assert_eq!(status, 201, "{body}");
    let unrecorded_key = body["stream_key"].as_str().unwrap().to_string();

    let mut ocfg = OriginConfig { node_name: "origin-1".into(), ..OriginConfig::default() };
    ocfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.http.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.control_plane.url = Some(cp.clone());
    ocfg.control_plane.node_secret = Some(node_secret.clone());
    ocfg.recording.enabled = true;
    ocfg.recording.spool_dir = dir.path().join("spool");
    ocfg.recording.reconnect_gap_seconds = 1;
    ocfg.recording.max_retry_backoff_seconds = 1;
    ocfg.recording.storage = StorageSettings::S3(s3.clone());
    ocfg.drain_seconds = 2;
    let origin = OriginNode::start(ocfg, None).await.expect("origin starts");

    tls::create_ca(&dir.path().join("ca")).unwrap();
    let cert_dir = dir.path().join("edge-1");
    tls::issue_node_cert(&dir.path().join("ca"), "edge-1", &cert_dir, &["127.0.0.1".to_string()]).unwrap();
    let mut ecfg = EdgeConfig { node_name: "edge-1".into(), ..EdgeConfig::default() };
    ecfg.http.listen = "127.0.0.1:0".parse().unwrap();
    ecfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    ecfg.cert_dir = cert_dir;
    ecfg.control_plane.url = Some(cp.clone());
    ecfg.control_plane.node_secret = Some(node_secret.clone());
    ecfg.vod.cache_bytes = 64 << 20;
    ecfg.drain_seconds = 2;
    let edge = EdgeNode::start(ecfg).await.expect("edge starts");

    // Record 30 s; the unrecorded channel is live for a few seconds meanwhile.
    let mut ffmpeg = ffmpeg_publish(&format!("rtmp://{}/live/{key}", origin.rtmp_addr), 30);
    let mut unrecorded = ffmpeg_publish(&format!("rtmp://{}/live/{unrecorded_key}", origin.rtmp_addr), 6);
    let unrecorded_playlist = format!("http://{}/live/unrecorded/source/index.m3u8", origin.http_addr);
    wait_for("the unrecorded channel live at the origin", Duration::from_secs(30), || async {
        let (status, text) = http_text(&unrecorded_playlist).await;
        (status == 200 && text.contains("#EXTINF")).then_some(())
    })
    .await;
    assert!(unrecorded.wait_exit(Duration::from_secs(60)).await.is_some(), "the short publish ends");
    let exit = ffmpeg.wait_exit(Duration::from_secs(90)).await.expect("ffmpeg finishes");
    assert!(exit.success(), "ffmpeg publish failed: {exit}");

    // The catalog says complete, and the objects are in the bucket.
    let list_url = format!("{cp}/v1/channels/secret/recordings");
    let rec = wait_for("the recording complete in the catalog", Duration::from_secs(60), || async {
        let (status, list) = http_json("GET", &list_url, Some(&session), None).await;
        assert_eq!(status, 200, "{list}");
        list.as_array()?.iter().find(|r| r["status"] == "complete").cloned()
    })
    .await;
    let id = rec["id"].as_str().unwrap().to_string();
    let recording = rec["recording"].as_str().unwrap().to_string();
    assert_eq!(id, format!("secret-{recording}"));
    let storage: Arc<dyn Storage> = Arc::new(S3Storage::new(&s3).await);
    let prefix = format!("recordings/secret/{recording}/");
    let keys = storage.list(&prefix).await.unwrap();
    assert!(keys.contains(&format!("{prefix}index.m3u8")), "{keys:?}");
    let segments = rec["segment_count"].as_u64().unwrap();
    assert!(segments >= 10, "{rec}");
    // Recording off: nothing in the catalog, nothing in the bucket.
    let (status, list) =
        http_json("GET", &format!("{cp}/v1/channels/unrecorded/recordings"), Some(&session), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(0), "a channel with recording off was recorded: {list}");
    assert!(
        storage.list("recordings/unrecorded/").await.unwrap().is_empty(),
        "objects of an unrecorded channel"
    );

    let vod = format!("http://{}/vod/{id}/index.m3u8", edge.http_addr);

    // Private: refused without a token (and with a forged one).
    let (status, body) = http_text(&vod).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = http_text(&format!("{vod}?token=not-a-token")).await;
    assert_eq!(status, 403);
    let (status, route) = http_json("GET", &format!("{cp}/v1/route/play/secret"), Some(&session), None).await;
    assert_eq!(status, 200, "{route}");
    let token = route["token"].as_str().expect("a token for a private channel").to_string();
    let vod_token = format!("{vod}?token={token}");

    // The playlist names every object with the token; the segments are the bucket's bytes.
    let (status, text) = http_text(&vod_token).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"), "{text}");
    let uris: Vec<&str> = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(uris.len() as u64, segments, "{text}");
    assert!(uris.iter().all(|u| u.ends_with(&format!("?token={token}"))), "{text}");
    let target: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("target duration");

    // Concurrent first requests for one segment: one origin fetch; all get the same bytes.
    let origin_fetches = || {
        let m = origin.registry.gather();
        m.iter()
            .filter(|f| f.name() == "skyrelay_origin_vod_requests_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == "ok"))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    let before_fetches = origin_fetches();
    let segment = uris[uris.len() / 2];
    let seg_url = format!("http://{}/vod/{id}/{segment}", edge.http_addr);
    let gets: Vec<_> = (0..8).map(|_| tokio::spawn(http_get_owned(seg_url.clone()))).collect();
    let mut bodies = Vec::new();
    for g in gets {
        let (status, body) = g.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    assert_eq!(origin_fetches() - before_fetches, 1.0, "concurrent misses must share one origin fetch");
    let name = segment.split('?').next().unwrap();
    let stored = storage.get(&format!("{prefix}{name}")).await.unwrap().expect("segment in the bucket");
    assert!(bodies.iter().all(|b| *b == stored), "the edge serves the bucket's bytes");
    let metrics = scrape(edge.admin_addr).await;
    let (hits, misses) = (
        metric(&metrics, "skyrelay_edge_vod_requests_total", "outcome=\"hit\""),
        metric(&metrics, "skyrelay_edge_vod_requests_total", "outcome=\"miss\""),
    );
    let coalesced = metric(&metrics, "skyrelay_edge_vod_requests_total", "outcome=\"coalesced\"");
    // The playlist was one miss; the segment one more; the 7 others hit or waited.
    assert_eq!(misses, 2.0, "{metrics}");
    assert_eq!(hits + coalesced, 7.0, "{metrics}");

    // A second fetch of that segment is a cache hit (no origin fetch), served immutable.
    let fetches = origin_fetches();
    let resp = http_head_cache_control(&seg_url).await;
    assert!(resp.contains("immutable"), "{resp}");
    let metrics = scrape(edge.admin_addr).await;
    assert_eq!(metric(&metrics, "skyrelay_edge_vod_requests_total", "outcome=\"hit\""), hits + 1.0);
    assert_eq!(origin_fetches(), fetches, "a hit must not reach the origin");
    assert!(metric(&metrics, "skyrelay_edge_vod_bytes_total", "outcome=\"hit\"") >= stored.len() as f64);

    // ffprobe plays it through the edge: within one segment of 30 s; ffmpeg decodes it cleanly.
    let duration = ffprobe_duration(&vod_token);
    assert!(
        (duration - RECORDED_SECONDS).abs() <= target,
        "duration {duration} s is not within one segment ({target} s) of {RECORDED_SECONDS} s"
    );
    eprintln!(
        "vod: {segments} segments, duration {duration:.3} s (target {target} s); concurrent requests: \
         {misses} misses (playlist + segment), {hits} hits, {coalesced} coalesced"
    );
    let (ok, _, err) = run(Command::new("ffmpeg").args(["-v", "error", "-i", &vod_token, "-f", "null", "-"]));
    assert!(ok && err.trim().is_empty(), "ffmpeg decode errors: {err}");

    // Unknown ids and unsafe paths are 404 with a message.
    for path in [
        "/vod/secret-20000101T000000Z/index.m3u8".to_string(),
        format!("/vod/{id}/recording.json"),
        format!("/vod/{id}/../../{id}/index.m3u8"),
        "/vod/..%2F..%2Fetc/index.m3u8".to_string(),
    ] {
        let (status, body) = http_text(&format!("http://{}{path}?token={token}", edge.http_addr)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.trim().is_empty(), "{path}: a 404 says why");
    }
    let (status, body) = http_text(&vod_token.replace(&id, "secret-20000101T000000Z")).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("unknown recording"), "{body}");

    edge.stop().await;
    origin.stop().await;
}

async fn http_get_owned(url: String) -> (u16, bytes::Bytes) {
    http_get(&url).await
}

/// The `Cache-Control` of a GET of `url` (status 200 asserted).
async fn http_head_cache_control(url: &str) -> String {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client.get(url.parse().unwrap()).await.expect("request succeeds");
    assert_eq!(resp.status(), 200);
    let cc =
        resp.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let _ = resp.into_body().collect().await.expect("body");
    cc
}
