//! End to end through a real (in-process) Skyrelay origin: the load tester's publisher
//! sends an ffmpeg-encoded recording over RTMP, the origin packages it into CMAF parts and
//! segments, and LL-HLS and classic HLS viewers find the SEI stamps in what they receive.
//! Checks that the stamps survive packaging and that every viewer measures frames; no timing
//! goal is asserted. Needs `ffmpeg` (installed by scripts/test.sh).

use std::process::Command;

use skyrelay_loadtest::scenario::{self, MetricsTarget, PublisherGroup, RunOptions, Scenario, ViewerGroup};
use skyrelay_loadtest::viewer::Mode;
use skyrelay_origin::config::{OriginConfig, StreamKeyEntry};
use skyrelay_origin::node::OriginNode;
use tokio_util::sync::CancellationToken;

const KEY: &str = "loadtest-e2e-key-0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_survive_the_origin_and_every_viewer_measures_frames() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("src.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=48000", "-t", "2", "-c:v", "libx264"])
        .args(["-preset", "veryfast", "-g", "30", "-keyint_min", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv"])
        .arg(&file)
        .status()
        .expect("ffmpeg runs (scripts/test.sh installs it)");
    assert!(status.success());

    let mut cfg = OriginConfig::default();
    cfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    cfg.http.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.packager.part_target_ms = 200;
    cfg.packager.segment_target_ms = 1000;
    cfg.keys = vec![StreamKeyEntry { key: KEY.into(), channel: "e2e".into() }];
    cfg.drain_seconds = 1;
    let origin = OriginNode::start(cfg, None).await.expect("origin starts");

    let url = format!("http://{}/live/e2e/master.m3u8", origin.http_addr);
    let group = |name: &str, mode, count| ViewerGroup {
        name: Some(name.into()),
        url: url.clone(),
        count,
        mode,
        region: None,
    };
    let s = Scenario {
        duration_s: 5,
        warmup_s: Some(3),
        ramp_up_s: 0,
        http2: false,
        http2_viewers_per_connection: 50,
        publishers: vec![PublisherGroup {
            url: format!("rtmp://{}/live/{KEY}", origin.rtmp_addr),
            count: 1,
            file,
        }],
        viewers: vec![group("ll", Mode::LlHls, 4), group("hls", Mode::Hls, 2)],
        metrics: vec![MetricsTarget {
            name: "origin".into(),
            url: format!("http://{}/metrics", origin.admin_addr),
            counters: vec!["skyrelay_origin_http_response_bytes_total".into()],
            upstream_bytes: None,
            region: None,
        }],
    };
    let report = scenario::run(&s, RunOptions::default(), CancellationToken::new()).await.unwrap();
    origin.stop().await;
    eprintln!("{}", report.table());

    assert_eq!(report.publishers.sessions, 1);
    assert_eq!(report.publishers.errors, 0);
    assert_eq!(report.groups.len(), 3, "total, ll, hls");
    for g in &report.groups[1..] {
        assert_eq!(g.started as usize, g.viewers, "{}: every viewer got media", g.name);
        assert!(g.latency_ms.count > 0, "{}: stamps found in the origin's media", g.name);
        assert_eq!(g.negative_latency, 0, "{}: no stamp from the future", g.name);
        assert!(g.latency_ms.max < 8_000.0, "{}: stamps are this run's send times", g.name);
    }
    let ll = &report.groups[1];
    assert!(
        ll.requests.get("part").copied().unwrap_or(0) + ll.requests.get("hint").copied().unwrap_or(0) > 0
    );
    let served = report.counters.first().and_then(|c| c.delta).unwrap_or(0.0);
    let received: u64 = report.groups[1..].iter().map(|g| g.bytes).sum();
    assert!(served >= received as f64 * 0.5, "origin counted what viewers received: {served} vs {received}");
}
