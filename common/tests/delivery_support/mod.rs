//! Test harness for delivery: a server on 127.0.0.1:0 over a hub, a hyper client, feeding
//! helpers and metric readers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::Registry;
use skyrelay_common::delivery::{Delivery, DeliveryConfig, serve};
use skyrelay_common::hub::{Hub, ObjectCache, Rendition};
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::WindowConfig;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const CHANNEL: &str = "live1";
pub const PREFIX: &str = "skyrelay_test";

pub type HttpClient = Client<HttpConnector, Empty<Bytes>>;

pub struct Server {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub registry: Registry,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn source(&self) -> Arc<Rendition> {
        self.hub.open(CHANNEL, "source").unwrap()
    }

    /// Asks the server to stop and waits (bounded) for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("server stops").unwrap();
        }
    }

    /// Current value of a metric with the given labels (0 if absent).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let full = format!("{PREFIX}_{name}");
        for family in self.registry.gather() {
            if family.name() != full {
                continue;
            }
            for m in family.get_metric() {
                let matches = labels
                    .iter()
                    .all(|(k, v)| m.get_label().iter().any(|l| l.name() == *k && l.value() == *v));
                if matches {
                    if family.get_field_type() == prometheus::proto::MetricType::COUNTER {
                        return m.get_counter().get_value();
                    }
                    return m.get_gauge().get_value();
                }
            }
        }
        0.0
    }

    /// Waits (bounded) until `name` reaches at least `value`.
    pub async fn wait_metric(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.wait_metric_until(name, labels, value, |v| v >= value).await;
    }

    /// Waits (bounded) until `name` is exactly `value`.
    pub async fn wait_metric_eq(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.wait_metric_until(name, labels, value, |v| v == value).await;
    }

    async fn wait_metric_until(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        ok: impl Fn(f64) -> bool,
    ) {
        let what = format!("{name} to reach {value}");
        let holds = || ok(self.metric(name, labels));
        skyrelay_testkit::poll_until(&what, Duration::from_secs(10), Duration::from_millis(2), holds).await;
    }
}

pub fn window_config() -> WindowConfig {
    WindowConfig { max_segments: 6, part_target_ms: 500, segment_target_ms: 2000, ..Default::default() }
}

pub async fn start(cfg: DeliveryConfig) -> Server {
    start_with(cfg, |d| d).await
}

pub async fn start_with(cfg: DeliveryConfig, hooks: impl FnOnce(Delivery) -> Delivery) -> Server {
    start_on(Hub::new(window_config()), Registry::new(), cfg, hooks).await
}

/// A server whose hub keeps whole segments in an object cache of `capacity` bytes.
pub async fn start_with_objects(capacity: u64) -> Server {
    let registry = Registry::new();
    let objects = ObjectCache::new(capacity, &registry, PREFIX).unwrap();
    let hub = Hub::new(window_config()).with_objects(objects);
    start_on(hub, registry, DeliveryConfig::default(), |d| d).await
}

async fn start_on(
    hub: Hub,
    registry: Registry,
    cfg: DeliveryConfig,
    hooks: impl FnOnce(Delivery) -> Delivery,
) -> Server {
    let hub = Arc::new(hub);
    let delivery = Delivery::new(hub.clone(), cfg, &registry, PREFIX).unwrap();
    let delivery = Arc::new(hooks(delivery));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, None, delivery, async move {
        let _ = stopped.await;
    }));
    Server { addr, hub, registry, stop: Some(stop), task: Some(task) }
}

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

pub async fn request(client: &HttpClient, method: Method, url: &str) -> Reply {
    let req = Request::builder().method(method).uri(url).body(Empty::new()).unwrap();
    let fut = async {
        let resp = client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply { status: parts.status, headers: parts.headers, body }
    };
    tokio::time::timeout(Duration::from_secs(20), fut).await.expect("response in time")
}

pub async fn get(client: &HttpClient, url: &str) -> Reply {
    request(client, Method::GET, url).await
}

pub fn info() -> RenditionInfo {
    RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 2_000_000,
        resolution: Some((1280, 720)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    }
}

pub fn now_ms() -> u64 {
    1_795_000_000_000
}

pub fn init(r: &Rendition) -> u32 {
    r.apply(MediaEvent::Init { info: info(), bytes: Bytes::from_static(b"INIT") }, now_ms()).unwrap();
    r.read(|w| w.current_init_id()).unwrap()
}

/// Bytes of chunk `c` of part `msn.part`.
pub fn chunk_bytes(msn: u64, part: u32, c: u32) -> Bytes {
    Bytes::from(format!("[{msn}.{part}.{c}]"))
}

pub fn chunk(r: &Rendition, msn: u64, part: u32, c: u32) {
    let ev = MediaEvent::Chunk { msn, part, independent: part == 0, bytes: chunk_bytes(msn, part, c) };
    r.apply(ev, now_ms()).unwrap();
}

pub fn part_end(r: &Rendition, msn: u64, part: u32, last: bool) {
    r.apply(MediaEvent::PartEnd { msn, part, duration: 0.5, ends_segment: last }, now_ms()).unwrap();
}

/// A complete part of two chunks.
pub fn part(r: &Rendition, msn: u64, part: u32, last: bool) {
    chunk(r, msn, part, 0);
    chunk(r, msn, part, 1);
    part_end(r, msn, part, last);
}

/// Complete segments `from..to` of 4 parts each.
pub fn segments(r: &Rendition, from: u64, to: u64) {
    for msn in from..to {
        for p in 0..4 {
            part(r, msn, p, p == 3);
        }
    }
}
