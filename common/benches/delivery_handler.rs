//! CPU time of `Delivery::handle` per request, without HTTP or sockets: the handler's share
//! of serving a cached object (routing, lookup, the response and its headers, metrics).
//!
//! `cargo bench -p skyrelay-common --bench delivery_handler` (optionally `ROUNDS`, `REQUESTS`).
//! A hub with one rendition of 1 s segments of 5 parts × 6 chunks × 11,300 bytes (339,000
//! bytes, as `edge_delivery` uses) and an object cache; per kind of request, `REQUESTS`
//! requests a round on one thread, the first round discarded, and the median and minimum of
//! the rest in nanoseconds per request. Machines here are shared: compare builds by
//! alternating runs, not by one figure.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use prometheus::Registry;
use skyrelay_common::delivery::{Delivery, DeliveryConfig};
use skyrelay_common::hub::{Hub, ObjectCache, Rendition};
use skyrelay_common::media::{MediaEvent, RenditionInfo};
use skyrelay_common::window::WindowConfig;

const PARTS: u32 = 5;
const CHUNKS: u32 = 6;
const CHUNK_BYTES: usize = 11_300;
const NOW_MS: u64 = 1_795_000_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn apply(r: &Rendition, ev: MediaEvent) {
    r.apply(ev, NOW_MS).expect("media event applies");
}

fn publish(r: &Rendition, segments: u64) {
    let info = RenditionInfo {
        name: "source".into(),
        codecs: "avc1.64001f,mp4a.40.2".into(),
        bandwidth: 2_000_000,
        resolution: Some((1280, 720)),
        frame_rate: Some(30.0),
        has_video: true,
        has_audio: true,
    };
    apply(r, MediaEvent::Init { info, bytes: Bytes::from_static(b"init") });
    for msn in 0..segments {
        for part in 0..PARTS {
            for c in 0..CHUNKS {
                let fill = (msn as u8) ^ (part as u8) ^ (c as u8);
                let bytes = Bytes::from(vec![fill; CHUNK_BYTES]);
                apply(r, MediaEvent::Chunk { msn, part, independent: part == 0 && c == 0, bytes });
            }
            let ends_segment = part + 1 == PARTS;
            apply(r, MediaEvent::PartEnd { msn, part, duration: 0.2, ends_segment });
        }
    }
}

/// Nanoseconds per request of `path`, one figure per round after the first, sorted.
async fn measure(d: &Delivery, path: &str, rounds: usize, requests: usize) -> Vec<f64> {
    let client = IpAddr::from([127, 0, 0, 1]);
    let mut figures = Vec::with_capacity(rounds);
    for round in 0..=rounds {
        let start = Instant::now();
        for _ in 0..requests {
            let req = http::Request::get(path).header(http::header::HOST, "edge").body(()).expect("request");
            let resp = d.handle(req, client).await;
            assert_eq!(resp.status(), 200, "{path}");
            let mut body = resp.into_body();
            std::hint::black_box(body.frame().await);
        }
        if round > 0 {
            figures.push(start.elapsed().as_nanos() as f64 / requests as f64);
        }
    }
    figures.sort_by(f64::total_cmp);
    figures
}

fn main() {
    let rounds = env("ROUNDS", 7).max(1);
    let requests = env("REQUESTS", 100_000).max(1);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let registry = Registry::new();
        let objects = ObjectCache::new(64 << 20, &registry, "bench").expect("object cache");
        let window = WindowConfig { part_target_ms: 200, segment_target_ms: 1000, ..Default::default() };
        let hub = Arc::new(Hub::new(window).with_objects(objects));
        let cfg = DeliveryConfig { node_name: "edge-1".into(), region: "eu".into(), ..Default::default() };
        let delivery = Delivery::new(hub.clone(), cfg, &registry, "bench").expect("delivery");
        let rendition = hub.open("bench", "source").expect("rendition");
        publish(&rendition, 4);
        println!("kind       ns/request median   min   ({rounds} rounds of {requests})");
        for (kind, path) in [
            ("segment", "/live/bench/source/seg-2.m4s"),
            ("part", "/live/bench/source/part-2.3.m4s"),
            ("playlist", "/live/bench/source/index.m3u8"),
        ] {
            let figures = measure(&delivery, path, rounds, requests).await;
            println!("{kind:<10} {:>17.0} {:>5.0}", figures[figures.len() / 2], figures[0]);
        }
    });
}
