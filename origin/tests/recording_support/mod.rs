//! Support for the recording tests: a real S3-compatible server (s3s-fs) as a child
//! process, recording configs, reading recordings back from storage, metrics.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::Registry;
use skyrelay_common::hub::Hub;
use skyrelay_origin::config::{OriginConfig, S3Settings, StorageSettings};
use skyrelay_origin::recorder::{S3Storage, Storage};
use std::collections::BTreeMap;
use tempfile::TempDir;

use crate::support::{ChildGuard, origin_config, run, wait_for};
use skyrelay_testkit::s3::start_s3s_fs;

pub const ACCESS_KEY: &str = "recording-test-access";
pub const SECRET_KEY: &str = "recording-test-secret-0123456789";
pub const BUCKET: &str = "recordings";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// s3s-fs on a loopback port, serving a temporary directory; killed on drop.
pub struct S3Server {
    pub port: u16,
    pub dir: TempDir,
    child: Option<ChildGuard>,
}

impl S3Server {
    /// Starts the server and creates the bucket.
    pub async fn start() -> S3Server {
        let mut server = S3Server { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        server.restart().await;
        S3Storage::new(&server.settings()).await.ensure_bucket().await.expect("bucket created");
        server
    }

    /// Kills the server (an outage).
    pub fn kill(&mut self) {
        self.child = None;
    }

    /// Starts it again on the same port and directory; returns once it accepts connections.
    pub async fn restart(&mut self) {
        self.child = None;
        let guard = start_s3s_fs(self.port, self.dir.path(), ACCESS_KEY, SECRET_KEY).await;
        self.child = Some(guard);
    }

    pub fn settings(&self) -> S3Settings {
        s3_settings(self.port)
    }

    pub async fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(S3Storage::new(&self.settings()).await)
    }
}

/// Settings for the s3s-fs server on `port`.
pub fn s3_settings(port: u16) -> S3Settings {
    S3Settings {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        bucket: BUCKET.into(),
        path_style: true,
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        request_timeout_seconds: 5,
    }
}

/// An origin config recording every channel to `storage` through the spool in `spool`,
/// with a 1 s reconnect gap and 1 s retry cap (short tests).
pub fn recording_config(spool: &Path, storage: StorageSettings) -> OriginConfig {
    let mut cfg = origin_config();
    cfg.recording.enabled = true;
    cfg.recording.spool_dir = spool.to_path_buf();
    cfg.recording.reconnect_gap_seconds = 1;
    cfg.recording.max_retry_backoff_seconds = 1;
    cfg.recording.storage = storage;
    cfg
}

/// The value of a metric (summed over series matching `label`, when given).
pub fn metric(registry: &Registry, name: &str, label: Option<(&str, &str)>) -> f64 {
    let mut total = 0.0;
    for family in registry.gather().iter().filter(|f| f.name() == name) {
        for m in family.get_metric() {
            let matches =
                label.is_none_or(|(k, v)| m.get_label().iter().any(|l| l.name() == k && l.value() == v));
            if !matches {
                continue;
            }
            // Only one of the two is set for a given family.
            total += m.get_counter().get_value() + m.get_gauge().get_value();
        }
    }
    total
}

/// Waits for a `recording.json` under `recordings/{channel}/`; returns the recording's
/// prefix and the manifest.
pub async fn wait_manifest(
    storage: &Arc<dyn Storage>,
    channel: &str,
    timeout: Duration,
) -> (String, serde_json::Value) {
    let prefix = format!("recordings/{channel}/");
    wait_for("a recording manifest in storage", timeout, || {
        let storage = storage.clone();
        let prefix = prefix.clone();
        async move {
            let keys = storage.list(&prefix).await.ok()?;
            let key = keys.iter().find(|k| k.ends_with("/recording.json"))?;
            let body = storage.get(key).await.ok()??;
            let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest is JSON");
            Some((key.trim_end_matches("recording.json").to_string(), manifest))
        }
    })
    .await
}

/// Downloads every object under `prefix` into `dir` (flat); returns name → bytes.
pub async fn download(storage: &Arc<dyn Storage>, prefix: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for key in storage.list(prefix).await.expect("list") {
        let body = storage.get(&key).await.expect("get").expect("listed object exists");
        let name = key.trim_start_matches(prefix).to_string();
        std::fs::write(dir.join(&name), &body).unwrap();
        out.insert(name, body.to_vec());
    }
    out
}

/// The segment and init URIs a VOD playlist names, in order.
pub fn playlist_uris(text: &str) -> (Vec<String>, Vec<String>) {
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"), "{text}");
    let segments =
        text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).map(str::to_string).collect();
    let maps = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|l| l.trim_end_matches('"').to_string())
        .collect();
    (segments, maps)
}

/// ffprobe's duration of a local playlist, and ffmpeg's decode errors (empty when clean).
pub fn probe_and_decode(playlist: &Path) -> (f64, String) {
    let p = playlist.to_str().unwrap();
    let (ok, out, err) = run(Command::new("ffprobe").args([
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "default=noprint_wrappers=1:nokey=1",
        p,
    ]));
    assert!(ok, "ffprobe failed: {err}");
    let duration = out.trim().parse().unwrap_or_else(|_| panic!("ffprobe duration: {out:?} {err}"));
    let (ok, _, err) = run(Command::new("ffmpeg").args(["-v", "error", "-i", p, "-f", "null", "-"]));
    assert!(ok, "ffmpeg decode failed: {err}");
    (duration, err)
}

/// Segments as the origin packaged them: msn → bytes.
pub type Packaged = Arc<Mutex<BTreeMap<u64, Vec<u8>>>>;

/// Copies every complete segment the origin's window holds for `channel`/source, as the
/// origin packaged it, until the task is aborted: msn → bytes.
pub fn capture_segments(hub: Arc<Hub>, channel: &'static str) -> (tokio::task::JoinHandle<()>, Packaged) {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let rendition = wait_for("the channel to be published", Duration::from_secs(30), || {
            let r = hub.rendition(channel, "source");
            async move { r }
        })
        .await;
        let mut rx = rendition.subscribe();
        loop {
            let segments = rendition.read(|w| {
                let (Some(first), Some(last)) = (w.oldest_msn(), w.last_complete_msn()) else {
                    return Vec::new();
                };
                (first..=last).filter_map(|m| w.segment(m)).collect::<Vec<_>>()
            });
            {
                let mut seen = seen.lock().unwrap();
                for s in segments {
                    seen.entry(s.msn)
                        .or_insert_with(|| s.chunks.iter().flat_map(|c| c.iter().copied()).collect());
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
    (task, out)
}
