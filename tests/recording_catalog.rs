//! The recorder and the control plane's recordings catalog together, in one process: an
//! origin recorder (local storage, synthetic segments) with its catalog sync against a
//! served control plane. The recording shows up while live, ends complete with its figures,
//! and a deletion in the catalog removes the objects and then the entry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus::Registry;
use skyrelay_common::cpapi::{ControlPlaneClient, NodeRole, RecordingStatus, RegisterNode};
use skyrelay_common::hub::Rendition;
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::WindowConfig;
use skyrelay_control_plane::store::users::Role;
use skyrelay_control_plane::{App, ControlPlaneConfig, serve};
use skyrelay_origin::config::{RecordingSettings, StorageSettings};
use skyrelay_origin::recorder::{LocalStorage, Recorder, catalog};
use skyrelay_testkit::wait_for;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SECRET: &str = "catalog-test-node-secret-0123456789";

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
async fn recordings_reach_the_catalog_and_deletion_removes_the_objects() {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("cp.db");
    let text = format!("database_url = \"sqlite://{}?mode=rwc\"\nnode_secret = \"{SECRET}\"", db.display());
    let cfg: ControlPlaneConfig = skyrelay_common::config::from_toml(&text).unwrap();
    let app = App::new(cfg, &Registry::new()).await.unwrap();
    let store = app.store().clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_cp, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(serve(app, listener, async move {
        let _ = stopped.await;
    }));

    let user = store.create_user("alice", "not-a-hash", Role::Streamer, 0).await.unwrap();
    store.create_channel("demo", user.id, false, true, 0).await.unwrap();
    let client = ControlPlaneClient::new(&base, SECRET);
    client
        .register(&RegisterNode {
            name: "o1".into(),
            role: NodeRole::Origin,
            region: "local".into(),
            public_url: "http://o1.test:8080".into(),
            rtmp_url: Some("rtmp://o1.test:1935/live".into()),
            relay_addr: None,
        })
        .await
        .unwrap();

    let spool = tempfile::tempdir().unwrap();
    let objects = tempfile::tempdir().unwrap();
    let rec_cfg = RecordingSettings {
        enabled: true,
        spool_dir: spool.path().to_path_buf(),
        reconnect_gap_seconds: 0,
        max_retry_backoff_seconds: 1,
        storage: StorageSettings::Local { dir: objects.path().to_path_buf() },
        ..RecordingSettings::default()
    };
    let storage = Arc::new(LocalStorage::new(objects.path()));
    let recorder = Recorder::start_with_storage(&rec_cfg, storage.clone(), &Registry::new()).await.unwrap();
    let (stop_sync, sync_stopped) = oneshot::channel::<()>();
    let stop = async move {
        let _ = sync_stopped.await;
    };
    let sync = tokio::spawn(catalog::run(recorder.clone(), client.clone(), "o1".into(), stop));

    let rendition = Rendition::standalone("demo", "source", WindowConfig::default());
    let apply = |ev: MediaEvent| {
        rendition.apply(ev.clone(), 1_700_000_000_000).unwrap();
        recorder.on_event(&rendition, &ev);
    };
    apply(MediaEvent::Init { info: info(), bytes: Bytes::from_static(b"init-bytes") });
    for msn in 0..5u64 {
        let bytes = Bytes::from(vec![msn as u8; 10_000]);
        apply(MediaEvent::Chunk { msn, part: 0, independent: true, bytes });
        apply(MediaEvent::PartEnd { msn, part: 0, duration: 2.0, ends_segment: true });
    }
    // Live: the catalog lists it as recording.
    let live = wait_for("the recording in the catalog", Duration::from_secs(20), || async {
        let list = store.channel_recordings("demo", 10).await.unwrap();
        list.into_iter().find(|r| r.status == RecordingStatus::Recording && r.segment_count == 5)
    })
    .await;
    assert_eq!(live.node, "o1");
    assert!(live.ended_ms.is_none());

    apply(MediaEvent::End);
    let done = wait_for("the recording complete in the catalog", Duration::from_secs(20), || async {
        store.recording(&live.id).await.unwrap().filter(|r| r.status == RecordingStatus::Complete)
    })
    .await;
    assert_eq!((done.segment_count, done.duration_ms), (5, 10_000));
    assert!(done.bytes >= 50_000, "{done:?}");
    assert!(done.ended_ms.is_some());
    assert_eq!(done.location, storage_location(&storage));
    let playlist = objects.path().join(&done.playlist);
    assert!(playlist.is_file(), "{}", playlist.display());

    // Delete in the catalog: the origin removes the objects, then the entry goes.
    store.mark_recording_deleted(&done.id, 1).await.unwrap();
    wait_for("the deleted recording purged", Duration::from_secs(20), || async {
        store.recording(&done.id).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(!playlist.exists(), "objects left after the purge");
    let dir = objects.path().join("recordings/demo").join(&done.recording);
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "objects left in {}", dir.display());

    recorder.stop(Duration::from_secs(2)).await;
    let _ = stop_sync.send(());
    tokio::time::timeout(Duration::from_secs(10), sync).await.unwrap().unwrap();
    let _ = stop_cp.send(());
    tokio::time::timeout(Duration::from_secs(10), served).await.unwrap().unwrap().unwrap();
}

fn storage_location(storage: &LocalStorage) -> String {
    use skyrelay_origin::recorder::Storage;
    storage.location()
}
