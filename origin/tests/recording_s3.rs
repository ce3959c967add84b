//! Recordings against a real S3-compatible server (s3s-fs on loopback) and the local
//! directory storage: a 30 s recording that plays back, a 20 s S3 outage that loses
//! nothing, an origin killed with SIGKILL and restarted on its spool, a publisher that
//! reconnects within the gap, and deletion. The tests run in parallel (each has its own
//! origin, server and directories).

mod recording_support;
mod support;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use recording_support::*;
use skyrelay_common::config::from_toml;
use skyrelay_origin::config::{OriginConfig, StorageSettings};
use skyrelay_origin::recorder::{LocalStorage, Storage, delete_recording};
use support::*;
use tokio::time::Instant;

/// The packager's segment target (the origin default).
const SEGMENT_SECS: f64 = 2.0;

fn recording_id(prefix: &str) -> &str {
    prefix.trim_end_matches('/').rsplit('/').next().unwrap()
}

fn spool_segments(spool: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rec in std::fs::read_dir(spool.join(CHANNEL)).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(rec.path()).into_iter().flatten().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with("seg-") && name.ends_with(".m4s") {
                out.insert(name);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_30s_to_s3_plays_back_and_deletes() {
    let s3 = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let origin = start_origin(recording_config(spool.path(), StorageSettings::S3(s3.settings()))).await;
    let mut ffmpeg = ffmpeg_publish(&publish_url(&origin, KEY), 30);
    let status = ffmpeg.wait_exit(Duration::from_secs(60)).await.expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed: {status}");

    let storage = s3.storage().await;
    let (prefix, manifest) = wait_manifest(&storage, CHANNEL, Duration::from_secs(30)).await;
    assert_eq!(manifest["status"], "complete", "{manifest:#}");
    let dir = tempfile::tempdir().unwrap();
    let objects = download(&storage, &prefix, dir.path()).await;
    let playlist = String::from_utf8(objects["index.m3u8"].clone()).unwrap();
    let (segments, maps) = playlist_uris(&playlist);
    assert_eq!(segments.len() as u64, manifest["segment_count"].as_u64().unwrap());
    for uri in segments.iter().chain(&maps) {
        assert!(objects.contains_key(uri), "{uri} named by the playlist is not in the bucket");
    }
    assert_eq!(
        objects.len(),
        segments.len() + maps.len() + 2,
        "only media, playlist, manifest: {:?}",
        objects.keys()
    );
    let (duration, _) = probe_and_decode(&dir.path().join("index.m3u8"));
    let manifest_duration = manifest["duration_seconds"].as_f64().unwrap();
    eprintln!(
        "recorded: {} segments, ffprobe duration {duration:.3} s, manifest {manifest_duration:.3} s, {} bytes",
        segments.len(),
        manifest["bytes"]
    );
    assert!((duration - 30.0).abs() <= SEGMENT_SECS, "ffprobe duration {duration}");
    assert!((manifest_duration - 30.0).abs() <= SEGMENT_SECS, "manifest duration {manifest_duration}");

    let reg = &origin.registry;
    let uploaded = metric(reg, "skyrelay_origin_recording_uploads_total", Some(("kind", "segment")));
    assert_eq!(uploaded, segments.len() as f64);
    assert_eq!(metric(reg, "skyrelay_origin_recording_uploads_total", Some(("kind", "playlist"))), 1.0);
    assert_eq!(metric(reg, "skyrelay_origin_recording_spool_bytes", None), 0.0);
    assert!(spool_segments(spool.path()).is_empty(), "spool emptied after upload");

    let removed = delete_recording(storage.as_ref(), CHANNEL, recording_id(&prefix)).await.unwrap();
    assert_eq!(removed, objects.len());
    assert!(storage.list(&prefix).await.unwrap().is_empty(), "delete left objects behind");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_for_20s_loses_and_duplicates_nothing() {
    let mut s3 = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let origin = start_origin(recording_config(spool.path(), StorageSettings::S3(s3.settings()))).await;
    let (capture, packaged) = capture_segments(origin.hub.clone(), CHANNEL);
    let mut ffmpeg = ffmpeg_publish(&publish_url(&origin, KEY), 32);
    let reg = origin.registry.clone();
    let uploads = move || metric(&reg, "skyrelay_origin_recording_uploads_total", Some(("kind", "segment")));
    let up = uploads.clone();
    wait_for("two segments uploaded", Duration::from_secs(20), || {
        let n = up();
        async move { (n >= 2.0).then_some(()) }
    })
    .await;

    s3.kill();
    let down = Instant::now();
    let uploads_before = uploads();
    let reg = origin.registry.clone();
    let max_spool = wait_for("a 20 s outage while the spool grows", Duration::from_secs(30), || {
        let spool_bytes = metric(&reg, "skyrelay_origin_recording_spool_bytes", None);
        async move { (down.elapsed() >= Duration::from_secs(20) && spool_bytes > 0.0).then_some(spool_bytes) }
    })
    .await;
    let failures =
        metric(&origin.registry, "skyrelay_origin_recording_failures_total", Some(("kind", "unavailable")));
    let lag = metric(&origin.registry, "skyrelay_origin_recording_upload_lag_seconds", None);
    let spooled = spool_segments(spool.path()).len();
    let uploads_at_end_of_outage = uploads();
    s3.restart().await;

    let status = ffmpeg.wait_exit(Duration::from_secs(60)).await.expect("ffmpeg ends");
    assert!(status.success(), "ffmpeg failed: {status}");
    let storage = s3.storage().await;
    let (prefix, manifest) = wait_manifest(&storage, CHANNEL, Duration::from_secs(40)).await;
    capture.abort();
    eprintln!(
        "outage: {spooled} segments ({max_spool} bytes) spooled while S3 was down, {failures} failed attempts, \
         upload lag {lag:.1} s; uploads before the outage {uploads_before}, after {}",
        uploads()
    );
    assert_eq!(uploads_at_end_of_outage, uploads_before, "no upload succeeds while the server is down");
    assert!(spooled >= 7, "about 20 s of segments spooled during the outage, got {spooled}");
    assert!(failures > 0.0);
    assert!(lag >= 15.0, "upload lag during the outage: {lag}");
    assert_eq!(manifest["status"], "complete", "{manifest:#}");

    let dir = tempfile::tempdir().unwrap();
    let objects = download(&storage, &prefix, dir.path()).await;
    let playlist = String::from_utf8(objects["index.m3u8"].clone()).unwrap();
    let (segments, _) = playlist_uris(&playlist);
    let unique: BTreeSet<_> = segments.iter().collect();
    assert_eq!(unique.len(), segments.len(), "a segment is listed twice:\n{playlist}");
    let packaged = packaged.lock().unwrap().clone();
    let expected: Vec<String> = packaged.keys().map(|msn| format!("seg-{msn}.m4s")).collect();
    assert_eq!(segments, expected, "the playlist lists exactly what the origin packaged, in order");
    for (msn, bytes) in &packaged {
        let stored = &objects[&format!("seg-{msn}.m4s")];
        assert!(stored == bytes, "seg-{msn}.m4s differs from what the origin packaged");
    }
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY").count(), 0, "{playlist}");
    eprintln!("outage: all {} packaged segments stored byte-identical", packaged.len());
    probe_and_decode(&dir.path().join("index.m3u8"));
    origin.stop().await;
}

const CHILD_ENV: &str = "SKYRELAY_RECORDING_TEST_CHILD";

/// Not a test on its own: the origin process `sigkill_mid_stream_then_restart` starts
/// (this test binary, filtered to this test) and kills. Returns at once otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_origin() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (spool, port) = spec.split_once('|').expect("spool|port");
    let cfg = recording_config(Path::new(spool), StorageSettings::S3(s3_settings(port.parse().unwrap())));
    let origin = start_origin(cfg).await;
    println!("CHILD_RTMP={}", origin.rtmp_addr);
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_uploads_the_spool() {
    let mut s3 = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_origin", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{}", spool.path().display(), s3.port))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = ChildGuard(child);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        // Keeps reading so the child never blocks on a full pipe.
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints `test crash_child_origin ... ` before the line.
            if let Some((_, addr)) = line.split_once("CHILD_RTMP=")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let rtmp = tokio::time::timeout(Duration::from_secs(30), rx).await.expect("child origin starts").unwrap();
    let ffmpeg = ffmpeg_publish(&format!("rtmp://{rtmp}/live/{KEY}"), 60);

    let storage = s3.storage().await;
    let listed = wait_for("three segments in the bucket", Duration::from_secs(30), || {
        let storage = storage.clone();
        async move {
            let keys = storage.list(&format!("recordings/{CHANNEL}/")).await.ok()?;
            let segs: BTreeSet<String> = keys
                .iter()
                .filter(|k| k.ends_with(".m4s"))
                .map(|k| k.rsplit('/').next().unwrap().to_string())
                .collect();
            (segs.len() >= 3).then_some(segs)
        }
    })
    .await;
    s3.kill();
    let path = spool.path().to_path_buf();
    wait_for("three segments waiting in the spool", Duration::from_secs(30), || {
        let n = spool_segments(&path).len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    drop(child); // SIGKILL, mid-stream and mid-outage
    drop(ffmpeg);
    let spooled = spool_segments(spool.path());

    s3.restart().await;
    let origin = start_origin(recording_config(spool.path(), StorageSettings::S3(s3.settings()))).await;
    let (prefix, manifest) = wait_manifest(&storage, CHANNEL, Duration::from_secs(30)).await;
    assert_eq!(manifest["status"], "partial", "{manifest:#}");
    let reason = manifest["reason"].as_str().unwrap();
    assert!(reason.contains("origin stopped while recording"), "{reason}");
    let dir = tempfile::tempdir().unwrap();
    let objects = download(&storage, &prefix, dir.path()).await;
    let playlist = String::from_utf8(objects["index.m3u8"].clone()).unwrap();
    let (segments, maps) = playlist_uris(&playlist);
    for uri in segments.iter().chain(&maps) {
        assert!(objects.contains_key(uri), "{uri} named by the playlist is not in the bucket");
    }
    let named: BTreeSet<String> = segments.iter().cloned().collect();
    let captured: BTreeSet<String> = listed.union(&spooled).cloned().collect();
    assert!(captured.is_subset(&named), "captured {captured:?} but the playlist names {named:?}");
    assert_eq!(segments.len() as u64, manifest["segment_count"].as_u64().unwrap());
    let (duration, _) = probe_and_decode(&dir.path().join("index.m3u8"));
    eprintln!(
        "crash: {} segments in the bucket before the kill, {} in the spool; after restart the playlist names {} \
         ({duration:.1} s, decodes cleanly); reason: {reason}",
        listed.len(),
        spooled.len(),
        segments.len()
    );
    assert!(spool_segments(spool.path()).is_empty(), "spool uploaded and emptied");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_within_the_gap_continues_one_recording_on_local_storage() {
    let spool = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut cfg = recording_config(spool.path(), StorageSettings::Local { dir: store.path().to_path_buf() });
    cfg.recording.reconnect_gap_seconds = 8;
    let origin = start_origin(cfg).await;
    for _ in 0..2 {
        let mut ffmpeg = ffmpeg_publish(&publish_url(&origin, KEY), 6);
        let status = ffmpeg.wait_exit(Duration::from_secs(30)).await.expect("ffmpeg ends");
        assert!(status.success(), "ffmpeg failed: {status}");
    }
    let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(LocalStorage::new(store.path()));
    let (prefix, manifest) = wait_manifest(&storage, CHANNEL, Duration::from_secs(30)).await;
    assert_eq!(manifest["status"], "complete", "{manifest:#}");
    let all = storage.list(&format!("recordings/{CHANNEL}/")).await.unwrap();
    assert!(all.iter().all(|k| k.starts_with(&prefix)), "one recording only: {all:?}");
    let dir = tempfile::tempdir().unwrap();
    let objects = download(&storage, &prefix, dir.path()).await;
    let playlist = String::from_utf8(objects["index.m3u8"].clone()).unwrap();
    assert_eq!(playlist.matches("#EXT-X-DISCONTINUITY").count(), 1, "{playlist}");
    let (duration, _) = probe_and_decode(&dir.path().join("index.m3u8"));
    eprintln!("reconnect: one recording of {duration:.1} s with one discontinuity");
    assert!((duration - 12.0).abs() <= 2.0 * SEGMENT_SECS, "{duration}");

    let removed = delete_recording(storage.as_ref(), CHANNEL, recording_id(&prefix)).await.unwrap();
    assert_eq!(removed, objects.len());
    assert!(storage.list("recordings/").await.unwrap().is_empty());
    origin.stop().await;
}

#[test]
fn recording_config_errors_name_the_key() {
    let cfg: OriginConfig = from_toml(
        "[recording]\nenabled = true\nspool_dir = \"/tmp/x\"\n[recording.storage]\nkind = \"s3\"\n\
         endpoint = \"http://127.0.0.1:9000\"\nbucket = \"rec\"\npath_style = true\n",
    )
    .unwrap();
    let StorageSettings::S3(s3) = &cfg.recording.storage else { panic!("s3 storage") };
    assert!(s3.path_style && s3.access_key.is_none() && s3.region == "us-east-1");
    let err = |text: &str| from_toml::<OriginConfig>(text).unwrap_err().to_string();
    let e = err("[recording.storage]\nkind = \"s3\"\nbucket = \"b\"\naccess_key = \"a\"\n");
    assert!(e.contains("recording.storage.access_key"), "{e}");
    let e = err("[recording]\nmax_spool_bytes = 10\n");
    assert!(e.contains("recording.max_spool_bytes"), "{e}");
    let e = err("[recording.storage]\nkind = \"s3\"\nbucket = \"b\"\nendpont = \"http://x\"\n");
    assert!(e.contains("endpont"), "{e}");
    let e = err("[recording.storage]\nkind = \"s3\"\nbucket = \"\"\n");
    assert!(e.contains("recording.storage.bucket"), "{e}");
}
