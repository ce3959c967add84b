//! Helpers shared by the relay integration tests: a throwaway cluster PKI, synthetic media,
//! servers on loopback port 0, and waiting on conditions with deadlines.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use skyrelay_common::hub::{Hub, Rendition};
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::relay::client::{RelayClient, RelayClientConfig};
use skyrelay_common::relay::metrics::{RelayClientMetrics, RelayServerMetrics};
use skyrelay_common::relay::server::{self, RelayServerConfig};
use skyrelay_common::relay::tls::{self, NodeIdentity};
use skyrelay_common::window::WindowConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!(
            "skyrelay-{tag}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cluster CA with a certificate for `relay.test` (server) and `edge.test` (client).
pub struct Pki {
    pub dir: TempDir,
    pub server: NodeIdentity,
    pub client: NodeIdentity,
}

pub fn pki() -> Pki {
    let dir = TempDir::new("pki");
    let ca = dir.path().join("ca");
    tls::create_ca(&ca).unwrap();
    tls::issue_node_cert(&ca, "relay.test", &dir.path().join("relay"), &["127.0.0.1".into()]).unwrap();
    tls::issue_node_cert(&ca, "edge.test", &dir.path().join("edge"), &[]).unwrap();
    let server = NodeIdentity::load(&dir.path().join("relay")).unwrap();
    let client = NodeIdentity::load(&dir.path().join("edge")).unwrap();
    Pki { dir, server, client }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 1_200_000,
        resolution: Some((640, 360)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    }
}

/// Deterministic synthetic chunk bytes for (msn, part, index).
pub fn chunk(msn: u64, part: u32, index: usize) -> Bytes {
    let len = 200 + (msn as usize * 31 + part as usize * 7 + index * 13) % 900;
    Bytes::from(
        (0..len).map(|i| (i as u64 ^ msn ^ u64::from(part) << 3 ^ index as u64) as u8).collect::<Vec<u8>>(),
    )
}

pub fn hub() -> Arc<Hub> {
    Arc::new(Hub::new(WindowConfig::default()))
}

/// Feeds the origin side of a test.
pub struct Feeder {
    pub r: Arc<Rendition>,
}

impl Feeder {
    pub fn new(hub: &Hub, channel: &str) -> Self {
        let r = hub.open(channel, "source").unwrap();
        r.apply(MediaEvent::Init { info: info(), bytes: Bytes::from_static(b"ftyp....moov....") }, now_ms())
            .unwrap();
        Feeder { r }
    }

    pub fn chunk(&self, msn: u64, part: u32, index: usize) {
        let ev = MediaEvent::Chunk { msn, part, independent: part == 0, bytes: chunk(msn, part, index) };
        self.r.apply(ev, now_ms()).unwrap();
    }

    pub fn end_part(&self, msn: u64, part: u32, ends_segment: bool) {
        let ev = MediaEvent::PartEnd { msn, part, duration: 0.25 + f64::from(part) * 0.001, ends_segment };
        self.r.apply(ev, now_ms()).unwrap();
    }

    /// A complete part of `chunks` chunks.
    pub fn part(&self, msn: u64, part: u32, chunks: usize, ends_segment: bool) {
        for i in 0..chunks {
            self.chunk(msn, part, i);
        }
        self.end_part(msn, part, ends_segment);
    }

    /// A complete segment of `parts` parts of 2 chunks.
    pub fn segment(&self, msn: u64, parts: u32) {
        for p in 0..parts {
            self.part(msn, p, 2, p + 1 == parts);
        }
    }
}

/// The tests' relay server configuration: the defaults with a short drain.
pub fn test_server_config() -> RelayServerConfig {
    RelayServerConfig { drain_timeout: Duration::from_millis(200), ..Default::default() }
}

/// A relay server on 127.0.0.1 (port 0 unless `addr` is given), stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: RelayServerMetrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(hub: Arc<Hub>, id: &NodeIdentity, addr: Option<SocketAddr>) -> Self {
        Self::try_start(hub, id, addr).unwrap()
    }

    pub fn try_start(
        hub: Arc<Hub>,
        id: &NodeIdentity,
        addr: Option<SocketAddr>,
    ) -> Result<Self, server::ServerError> {
        Self::try_start_with(hub, id, addr, test_server_config())
    }

    /// A server with `cfg` (see [`test_server_config`]) on 127.0.0.1, any port.
    pub fn start_with(hub: Arc<Hub>, id: &NodeIdentity, cfg: RelayServerConfig) -> Self {
        Self::try_start_with(hub, id, None, cfg).unwrap()
    }

    fn try_start_with(
        hub: Arc<Hub>,
        id: &NodeIdentity,
        addr: Option<SocketAddr>,
        cfg: RelayServerConfig,
    ) -> Result<Self, server::ServerError> {
        let bind = addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let endpoint = server::server_endpoint(bind, id, &cfg)?;
        let addr = endpoint.local_addr().unwrap();
        let metrics = RelayServerMetrics::unregistered();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(endpoint, hub, cfg, metrics.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(TestServer { addr, metrics, stop: Some(stop), task: Some(task) })
    }

    /// Stops the server and waits until its socket is released.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(DEADLINE, t).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn client_config(addr: SocketAddr) -> RelayClientConfig {
    let mut c = RelayClientConfig::new(addr, "relay.test");
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.request_timeout = Duration::from_secs(5);
    c
}

pub fn client(pki: &Pki, addr: SocketAddr, hub: Arc<Hub>) -> (RelayClient, RelayClientMetrics) {
    let metrics = RelayClientMetrics::unregistered();
    let c = RelayClient::new(&pki.client, client_config(addr), hub, metrics.clone()).unwrap();
    (c, metrics)
}

/// Waits until `f` holds on the rendition's window, or panics at the deadline.
pub async fn wait_window<R>(
    r: &Rendition,
    what: &str,
    f: impl FnMut(&skyrelay_common::window::LiveWindow) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    match r.wait_for(deadline, f).await {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// Polls a condition that has no change notification, up to the deadline.
pub async fn wait_until(what: &str, f: impl FnMut() -> bool) {
    skyrelay_testkit::poll_until(what, DEADLINE, Duration::from_millis(5), f).await
}

/// Asserts that two windows hold byte-identical parts for every complete part of `msns`.
pub fn assert_same_parts(a: &Rendition, b: &Rendition, msns: std::ops::RangeInclusive<u64>) {
    for msn in msns {
        let sa = a.read(|w| w.segment(msn)).unwrap_or_else(|| panic!("segment {msn} missing upstream"));
        let sb = b.read(|w| w.segment(msn)).unwrap_or_else(|| panic!("segment {msn} missing downstream"));
        assert_eq!(sa.chunks, sb.chunks, "segment {msn} bytes");
        assert_eq!(sa.part_count, sb.part_count);
        assert_eq!(sa.init_id, sb.init_id);
        for p in 0..sa.part_count {
            let pa = a.read(|w| w.part(msn, p)).unwrap();
            let pb = b.read(|w| w.part(msn, p)).unwrap();
            assert_eq!(pa.chunks, pb.chunks, "part {msn}.{p} chunks");
            assert_eq!(pa.duration, pb.duration);
            assert_eq!(pa.independent, pb.independent);
            assert_eq!(pa.opened_unix_ms, pb.opened_unix_ms, "origin timestamp carried");
        }
    }
}
