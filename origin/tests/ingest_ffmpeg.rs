//! End to end with real clients: ffmpeg and GStreamer publish RTMP to an in-process origin;
//! ffprobe/ffmpeg read and decode the LL-HLS the origin serves.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// Downloads init + every segment of the playlist into one file (a fragmented MP4 a
/// decoder can read start to end).
async fn download_window(base: &str, playlist: &MediaPlaylist, out: &Path) -> Vec<Vec<u8>> {
    let mut file = Vec::new();
    let map = playlist.maps.first().expect("playlist has an EXT-X-MAP");
    let (status, init) = http_get(&format!("{base}/{map}")).await;
    assert_eq!(status, 200, "init {map}");
    file.extend_from_slice(&init);
    let mut segments = Vec::new();
    for (_, uri) in &playlist.segments {
        let (status, seg) = http_get(&format!("{base}/{uri}")).await;
        assert_eq!(status, 200, "segment {uri}");
        file.extend_from_slice(&seg);
        let mut one = init.to_vec();
        one.extend_from_slice(&seg);
        segments.push(one);
    }
    std::fs::write(out, &file).unwrap();
    segments
}

fn first_video_frame_is_key(path: &Path) -> bool {
    let (ok, out, err) = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=key_frame", "-read_intervals", "%+#1", "-of", "csv=p=0"])
        .arg(path));
    assert!(ok, "ffprobe failed: {err}");
    out.lines().next().map(|l| l.trim() == "1").unwrap_or(false)
}

/// First and last (pts + duration) of each stream, in seconds: (video, audio).
fn stream_spans(path: &Path) -> ((f64, f64), (f64, f64)) {
    let span = |sel: &str| {
        let (ok, out, err) = run(Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", sel, "-show_entries", "packet=pts_time,duration_time"])
            .args(["-of", "csv=p=0"])
            .arg(path));
        assert!(ok, "ffprobe failed: {err}");
        let packets: Vec<(f64, f64)> = out
            .lines()
            .filter_map(|l| {
                let mut it = l.split(',');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect();
        assert!(!packets.is_empty(), "no packets in {sel}");
        let start = packets.iter().map(|p| p.0).fold(f64::MAX, f64::min);
        let end = packets.iter().map(|p| p.0 + p.1).fold(f64::MIN, f64::max);
        (start, end)
    };
    (span("v:0"), span("a:0"))
}

fn decode_errors(input: &str) -> String {
    let (ok, _, err) = run(Command::new("ffmpeg").args([
        "-hide_banner",
        "-v",
        "error",
        "-i",
        input,
        // Keep the source timestamps: live encoders (GStreamer under load) are not
        // constant-rate, and a frame-rate time base would make the null muxer complain.
        "-fps_mode",
        "passthrough",
        "-enc_time_base",
        "-1",
        "-f",
        "null",
        "-",
    ]));
    assert!(ok, "ffmpeg decode of {input} failed: {err}");
    err
}

/// Checks every rule of the issue on a finished window; returns the playlist.
async fn check_window(origin_http: std::net::SocketAddr, dir: &Path) -> MediaPlaylist {
    let base = http_url(origin_http, &format!("/live/{CHANNEL}/source"));
    let (status, text) = http_text(&format!("{base}/index.m3u8")).await;
    assert_eq!(status, 200, "{text}");
    let playlist = parse_media_playlist(&text);
    assert!(playlist.segments.len() >= 3, "window too short: {text}");
    assert_eq!(playlist.discontinuities, 0, "one clean publish must not produce a discontinuity:\n{text}");
    assert_eq!(playlist.maps.len(), 1, "one clean publish has one init segment:\n{text}");
    for (d, uri) in &playlist.segments {
        assert!(*d <= playlist.target_duration, "segment {uri} lasts {d} > TARGETDURATION\n{text}");
    }
    assert!(!playlist.parts.is_empty(), "no EXT-X-PART in\n{text}");
    for (d, uri, _) in &playlist.parts {
        assert!(*d <= playlist.part_target + 0.0005, "part {uri} lasts {d} > PART-TARGET\n{text}");
    }
    let whole = dir.join("window.mp4");
    let segments = download_window(&base, &playlist, &whole).await;
    for (i, seg) in segments.iter().enumerate() {
        let p = dir.join(format!("seg{i}.mp4"));
        std::fs::write(&p, seg).unwrap();
        assert!(
            first_video_frame_is_key(&p),
            "segment {} does not start on a keyframe",
            playlist.segments[i].1
        );
    }
    let errors = decode_errors(whole.to_str().unwrap());
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let ((v0, v1), (a0, a1)) = stream_spans(&whole);
    let drift = ((v1 - a1) - (v0 - a0)).abs();
    assert!(drift < 1.0 / 30.0, "A/V drift {drift:.4}s over the window (video {v0}..{v1}, audio {a0}..{a1})");
    playlist
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_plays_as_ll_hls() {
    let origin = start_origin(origin_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut ffmpeg = ffmpeg_publish(&publish_url(&origin, KEY), 22);
    let playlist_url = http_url(origin.http_addr, &format!("/live/{CHANNEL}/source/index.m3u8"));

    // Live: the window fills and the media sequence advances.
    let first = wait_for("a playlist with 2 segments", Duration::from_secs(20), || async {
        let (status, text) = http_text(&playlist_url).await;
        (status == 200 && parse_media_playlist(&text).segments.len() >= 2)
            .then(|| parse_media_playlist(&text))
    })
    .await;
    let master = http_url(origin.http_addr, &format!("/live/{CHANNEL}/master.m3u8"));
    let (ok, out, err) = run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name,width,height", "-of", "csv=p=0"])
        .arg(&master));
    assert!(ok, "ffprobe of the live master playlist failed: {err}");
    assert!(out.contains("video,h264") || out.contains("h264,video"), "{out}");
    assert!(out.contains("aac"), "{out}");
    let later = wait_for("the media sequence to advance", Duration::from_secs(20), || async {
        let (_, text) = http_text(&playlist_url).await;
        let p = parse_media_playlist(&text);
        (p.media_sequence > first.media_sequence).then_some(p)
    })
    .await;
    assert!(later.media_sequence > first.media_sequence);

    let status = ffmpeg.wait_exit(Duration::from_secs(40)).await.expect("ffmpeg finishes its 22 s");
    assert!(status.success(), "ffmpeg exited with {status}");
    wait_for("ENDLIST after the publisher left", Duration::from_secs(10), || async {
        let (_, text) = http_text(&playlist_url).await;
        parse_media_playlist(&text).ended.then_some(())
    })
    .await;
    check_window(origin.http_addr, dir.path()).await;

    let (_, metrics) = http_text(&http_url(origin.admin_addr, "/metrics")).await;
    assert!(metrics.contains("skyrelay_origin_segments_total{channel=\"demo\"}"), "{metrics}");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publish_plays() {
    let origin = start_origin(origin_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut gst = gstreamer_publish(&publish_url(&origin, KEY), 20 * 30);
    let status = gst.wait_exit(Duration::from_secs(45)).await.expect("gst-launch finishes its 600 frames");
    assert!(status.success(), "gst-launch exited with {status}");
    let playlist_url = http_url(origin.http_addr, &format!("/live/{CHANNEL}/source/index.m3u8"));
    wait_for("ENDLIST after the publisher left", Duration::from_secs(10), || async {
        let (_, text) = http_text(&playlist_url).await;
        parse_media_playlist(&text).ended.then_some(())
    })
    .await;
    check_window(origin.http_addr, dir.path()).await;
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_publisher_continues_the_playlist() {
    let origin = start_origin(origin_config()).await;
    let playlist_url = http_url(origin.http_addr, &format!("/live/{CHANNEL}/source/index.m3u8"));
    let mut first = ffmpeg_publish(&publish_url(&origin, KEY), 7);
    assert!(first.wait_exit(Duration::from_secs(30)).await.expect("first publish ends").success());
    let before = wait_for("ENDLIST after the first publisher", Duration::from_secs(10), || async {
        let (_, text) = http_text(&playlist_url).await;
        let p = parse_media_playlist(&text);
        p.ended.then_some(p)
    })
    .await;
    let last_before = before.media_sequence + before.segments.len() as u64 - 1;

    let mut second = ffmpeg_publish(&publish_url(&origin, KEY), 7);
    let after = wait_for("new segments after the reconnect", Duration::from_secs(20), || async {
        let (_, text) = http_text(&playlist_url).await;
        let p = parse_media_playlist(&text);
        (!p.ended && p.discontinuities >= 1 && p.media_sequence + p.segments.len() as u64 > last_before + 1)
            .then_some(p)
    })
    .await;
    assert!(after.media_sequence >= before.media_sequence, "media sequence went backwards");
    assert!(second.wait_exit(Duration::from_secs(30)).await.expect("second publish ends").success());
    wait_for("ENDLIST after the second publisher", Duration::from_secs(10), || async {
        let (_, text) = http_text(&playlist_url).await;
        parse_media_playlist(&text).ended.then_some(())
    })
    .await;
    let errors = decode_errors(&playlist_url);
    assert!(errors.trim().is_empty(), "decode errors across the discontinuity: {errors}");
    origin.stop().await;
}
