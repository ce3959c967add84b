//! Test support shared by Skyrelay's integration tests: real publishers (ffmpeg,
//! GStreamer) as child processes stopped on drop, HTTP fetches, condition waits with
//! deadlines, and a reading of LL-HLS media playlists.

pub mod browser;
pub mod s3;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Makes a panic in a test show where the logs are, as it happens.
///
/// The test harness prints a failing test's panic message in its summary at the end of the
/// binary's run, far from the node logs (written straight to stdout, so not captured) that
/// explain it; a CI excerpt around the `FAILED` line then shows the logs but not the reason.
/// This hook also writes the message, with the test's name, to stdout at once. Idempotent.
pub fn report_panics_inline() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            use std::io::Write;
            let thread = std::thread::current();
            let line = format!("PANIC in {}: {info}\n", thread.name().unwrap_or("an unnamed thread"));
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
            previous(info);
        }));
    });
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ChildGuard {
    /// Waits for the process to exit by itself, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// ffmpeg publishing a 640x360 30 fps test pattern with a 1 s GOP and AAC audio, in real time.
pub fn ffmpeg_publish(url: &str, seconds: u32) -> ChildGuard {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-keyint_min",
            "30",
        ])
        .args(["-b:v", "800k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ar", "48000"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs (the test command installs it)");
    ChildGuard(child)
}

/// GStreamer's rtmp2sink publishing a test pattern with AAC audio.
pub fn gstreamer_publish(url: &str, frames: u32) -> ChildGuard {
    // Both sources must end for the muxer to finish: 1024 samples at 48 kHz per buffer.
    let audio_buffers = frames as u64 * 48_000 / 30 / 1024;
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={frames} ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 bitrate=800 speed-preset=veryfast ! h264parse ! queue ! mux. \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! queue ! mux. \
         flvmux name=mux streamable=true ! rtmp2sink location={url}"
    );
    let child = Command::new("gst-launch-1.0")
        .args(["-q", "-e"])
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 runs (the test command installs it)");
    ChildGuard(child)
}

/// GET `url`, returning status and body.
pub async fn http_get(url: &str) -> (u16, Bytes) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(15), client.get(url.parse().unwrap()))
        .await
        .expect("response within 15 s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, body)
}

/// Sends `method` to `url` with an optional bearer token and JSON body; returns the
/// status and the parsed JSON answer (`Null` when the body is empty or not JSON).
pub async fn http_json(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client: Client<_, http_body_util::Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let payload = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(http_body_util::Full::new(payload)).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(15), client.request(req))
        .await
        .expect("response within 15 s")
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

pub async fn http_text(url: &str) -> (u16, String) {
    let (status, body) = http_get(url).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_for(what, timeout, Duration::from_millis(100), check).await
}

/// [`wait_for`] with a chosen poll interval (in-process conditions can be polled often).
pub async fn poll_for<T, F, Fut>(what: &str, timeout: Duration, interval: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(interval).await;
    }
}

/// Polls a synchronous condition every `interval` until it holds, panicking after `timeout`.
pub async fn poll_until(what: &str, timeout: Duration, interval: Duration, mut holds: impl FnMut() -> bool) {
    poll_for(what, timeout, interval, || std::future::ready(holds().then_some(()))).await
}

/// The parsed parts of a media playlist the tests check.
#[derive(Debug, Default)]
pub struct MediaPlaylist {
    pub target_duration: f64,
    pub part_target: f64,
    pub media_sequence: u64,
    pub segments: Vec<(f64, String)>,
    pub parts: Vec<(f64, String, bool)>,
    pub discontinuities: usize,
    pub maps: Vec<String>,
    pub preload_hint: Option<String>,
    pub ended: bool,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    if let Some(quoted) = rest.strip_prefix('"') { quoted.split('"').next() } else { rest.split(',').next() }
}

/// A line-oriented reading of an LL-HLS media playlist (m3u8-rs checks the syntax in
/// common's tests; this reads the LL-HLS tags too).
pub fn parse_media_playlist(text: &str) -> MediaPlaylist {
    let mut p = MediaPlaylist::default();
    if !text.starts_with("#EXTM3U") {
        // Not a playlist (an error page): nothing in it, which every check treats as such.
        return p;
    }
    let mut pending_duration = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.trim().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attr(v, "PART-TARGET").unwrap().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.trim().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            pending_duration = Some(v.split(',').next().unwrap().parse::<f64>().unwrap());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let d = attr(v, "DURATION").unwrap().parse().unwrap();
            let uri = attr(v, "URI").unwrap().to_string();
            p.parts.push((d, uri, attr(v, "INDEPENDENT") == Some("YES")));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = attr(v, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            p.maps.push(attr(v, "URI").unwrap().to_string());
        } else if line == "#EXT-X-DISCONTINUITY" {
            p.discontinuities += 1;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some(d) = pending_duration.take()
        {
            p.segments.push((d, line.trim().to_string()));
        }
    }
    p
}

/// Runs a command, returning (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("command runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
