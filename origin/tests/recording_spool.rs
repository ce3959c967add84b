//! The spool bound, without RTMP: synthetic segments applied to a window and handed to a
//! recorder whose storage is down. The spool stops growing at `max_spool_bytes`, dropped
//! segments are counted, and the recording is stored as partial once storage is back.

mod recording_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use prometheus::Registry;
use recording_support::{metric, wait_manifest};
use skyrelay_common::hub::Rendition;
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::WindowConfig;
use skyrelay_origin::config::{RecordingSettings, StorageSettings};
use skyrelay_origin::recorder::storage::StorageFuture;
use skyrelay_origin::recorder::{LocalStorage, Recorder, Storage, StorageError};
use support::wait_for;

/// A local directory that refuses every request while `down` is set.
struct Switchable {
    inner: LocalStorage,
    down: AtomicBool,
}

impl Switchable {
    fn check(&self) -> Result<(), StorageError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StorageError::Unavailable("switched off by the test".into()));
        }
        Ok(())
    }
}

impl Storage for Switchable {
    fn put<'a>(&'a self, key: &'a str, body: Bytes, content_type: &'static str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.inner.put(key, body, content_type).await
        })
    }
    fn get<'a>(&'a self, key: &'a str) -> StorageFuture<'a, Option<Bytes>> {
        Box::pin(async move {
            self.check()?;
            self.inner.get(key).await
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> StorageFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.check()?;
            self.inner.list(prefix).await
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            self.check()?;
            self.inner.delete(key).await
        })
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f".into(),
        bandwidth: 800_000,
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_segments_and_the_recording_is_partial() {
    const SEGMENT_BYTES: usize = 100_000;
    const SEGMENTS: u64 = 15;
    let spool = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let cfg = RecordingSettings {
        enabled: true,
        spool_dir: spool.path().to_path_buf(),
        // Room for 8 segments (and the init); validation asks for more in production.
        max_spool_bytes: 8 * SEGMENT_BYTES as u64 + 1_000,
        reconnect_gap_seconds: 0,
        max_retry_backoff_seconds: 1,
        storage: StorageSettings::Local { dir: store.path().to_path_buf() },
        ..RecordingSettings::default()
    };
    let storage =
        Arc::new(Switchable { inner: LocalStorage::new(store.path()), down: AtomicBool::new(true) });
    let registry = Registry::new();
    let recorder = Recorder::start_with_storage(&cfg, storage.clone(), &registry).await.unwrap();
    let rendition = Rendition::standalone("demo", "source", WindowConfig::default());
    let apply = |ev: MediaEvent| {
        rendition.apply(ev.clone(), 1_700_000_000_000).unwrap();
        recorder.on_event(&rendition, &ev);
    };
    apply(MediaEvent::Init { info: info(), bytes: Bytes::from_static(b"init-bytes") });
    for msn in 0..SEGMENTS {
        let bytes = Bytes::from(vec![msn as u8; SEGMENT_BYTES]);
        apply(MediaEvent::Chunk { msn, part: 0, independent: true, bytes });
        apply(MediaEvent::PartEnd { msn, part: 0, duration: 2.0, ends_segment: true });
    }
    let reg = registry.clone();
    let (spooled, dropped) = wait_for("every segment spooled or dropped", Duration::from_secs(10), || {
        let spooled = metric(&reg, "skyrelay_origin_recording_segments_total", None);
        let dropped = metric(&reg, "skyrelay_origin_recording_failures_total", Some(("kind", "spool_full")));
        async move { (spooled + dropped == SEGMENTS as f64).then_some((spooled, dropped)) }
    })
    .await;
    let spool_bytes = metric(&registry, "skyrelay_origin_recording_spool_bytes", None);
    assert_eq!(spooled, 8.0);
    assert_eq!(dropped, 7.0);
    assert!(spool_bytes <= cfg.max_spool_bytes as f64, "{spool_bytes}");
    apply(MediaEvent::End);

    storage.down.store(false, Ordering::SeqCst);
    let dyn_storage: Arc<dyn Storage> = storage.clone();
    let (_, manifest) = wait_manifest(&dyn_storage, "demo", Duration::from_secs(20)).await;
    assert_eq!(manifest["status"], "partial", "{manifest:#}");
    assert!(manifest["reason"].as_str().unwrap().contains("spool was full"), "{manifest:#}");
    assert_eq!(manifest["segment_count"], 8);
    assert_eq!(metric(&registry, "skyrelay_origin_recording_spool_bytes", None), 0.0);
    recorder.stop(Duration::from_secs(2)).await;
}
