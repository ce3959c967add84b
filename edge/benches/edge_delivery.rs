//! Edge delivery benchmark, each figure next to nginx measured in the same run (not a test):
//!
//! 1. frame applied at the origin → its bytes read by an HTTP client at the edge (LL-HLS
//!    part requests issued ahead, streamed), vs nginx proxying the origin unbuffered;
//! 2. wrk (2 threads, 256 connections) on a cached ~340 KB segment and on a playlist, vs
//!    nginx serving the same bytes from files: requests/s and requests per server CPU-second;
//! 3. an object the edge does not hold yet, vs nginx proxy_cache with proxy_cache_lock in
//!    front of the same origin: time to first byte of one request after a pause and of one
//!    right behind it, of 256 clients asking at once (a segment, a part), and of the same
//!    burst once cached; with the machine's cost of touching memory that sat idle
//!    (`machine`).
//!
//! The origin runs in this process on a runtime of its own (synthetic media pushed into its
//! hub, see `feed`; the clients have the other runtime); the
//! edge runs as a child process (this binary with `--edge-child`), so its CPU time can be
//! read from `/proc`. Layout: `feed` (synthetic stream), `client` (raw HTTP/1.1 client),
//! `procs` (edge, nginx, wrk, CPU time), `scenarios` (the measurements), `machine` (the idle
//! memory probe), `report` (table).
//!
//! Run with `scripts/bench-edge.sh`. Environment: RUNS (3), BASE_PORT (29500; uses
//! BASE_PORT..+22 on 127.0.0.1), WRK_SECONDS (10), WRK_WARMUP_SECONDS (3, a discarded wrk
//! before each measured one), LATENCY_SECONDS (10), CLIENTS (256),
//! OUT (target/bench-edge). `ONLY=cold` runs only (3) and prints its figures; with RUST_LOG
//! set, the origin (this process) and the edge child log to stderr.

#[path = "edge_delivery/client.rs"]
mod client;
#[path = "edge_delivery/feed.rs"]
mod feed;
#[path = "edge_delivery/machine.rs"]
mod machine;
#[path = "edge_delivery/procs.rs"]
mod procs;
#[path = "edge_delivery/report.rs"]
mod report;
#[path = "edge_delivery/scenarios.rs"]
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use skyrelay_common::relay::tls;
use skyrelay_edge::config::EdgeConfig;
use skyrelay_edge::node::EdgeNode;
use skyrelay_origin::config::{OriginConfig, StreamKeyEntry};
use skyrelay_origin::node::OriginNode;

use crate::procs::Ports;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("--edge-child") {
        edge_child(&args[2..])
    } else {
        if std::env::var_os("RUST_LOG").is_some() {
            skyrelay_common::telemetry::init_logging("info", false);
        }
        // The origin gets a runtime of its own: a real origin does not share a scheduler
        // with the clients measuring the edge (hundreds of burst clients queued ahead of the
        // origin's relay and HTTP tasks would be charged to both servers' cold figures).
        let runtime =
            |name: &str| tokio::runtime::Builder::new_multi_thread().thread_name(name).enable_all().build();
        match (runtime("bench-origin"), runtime("bench-clients")) {
            (Ok(origin_rt), Ok(rt)) => rt.block_on(bench(origin_rt.handle().clone())),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        }
    };
    if let Err(e) = result {
        eprintln!("edge_delivery: {e}");
        std::process::exit(1);
    }
}

/// The edge as its own process, like `skyrelay edge`; stops when stdin closes.
#[allow(clippy::field_reassign_with_default)] // nested sections: set field by field
fn edge_child(args: &[String]) -> Result<(), String> {
    let [cert_dir, http, admin, relay] = args else {
        return Err("usage: --edge-child <cert dir> <http port> <admin port> <upstream relay port>".into());
    };
    let port = |s: &String| s.parse::<u16>().map_err(|e| format!("port {s}: {e}"));
    let mut cfg = EdgeConfig::default();
    cfg.node_name = "edge-1".into();
    cfg.cert_dir = PathBuf::from(cert_dir);
    cfg.http.listen = procs::local(port(http)?);
    cfg.admin.listen = procs::local(port(admin)?);
    cfg.upstream.addr = procs::local(port(relay)?);
    cfg.upstream.server_name = "origin-1".into();
    cfg.idle_unsubscribe_seconds = 600;
    // Every run subscribes fresh channels and none is dropped while the bench lasts; with the
    // default 32 MiB per live window a 1 GiB edge carries 24, which six runs exceed (further
    // channels get 503 "over capacity"). This stream's windows hold a few MB.
    cfg.cache.window_bytes = 8 << 20;
    if let Ok(w) = std::env::var("WINDOW") {
        cfg.window_segments = w.parse().unwrap();
    }
    if let Ok(t) = std::env::var("HTTP_THREADS") {
        cfg.http.delivery.threads = t.parse().map_err(|e| format!("HTTP_THREADS {t}: {e}"))?;
    }
    if let Ok(n) = std::env::var("NATIVE_HTTP1") {
        cfg.http.delivery.native_http1 = n != "0";
    }
    cfg.drain_seconds = 1;
    if std::env::var_os("RUST_LOG").is_some() {
        skyrelay_common::telemetry::init_logging("info", false);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Ok(n) = std::env::var("NODE_THREADS") {
        builder.worker_threads(n.parse().map_err(|e| format!("NODE_THREADS {n}: {e}"))?);
    }
    let rt = builder.enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let node = EdgeNode::start(cfg).await.map_err(|e| e.to_string())?;
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
        node.stop().await;
        Ok(())
    })
}

#[allow(clippy::field_reassign_with_default)] // nested sections: set field by field
async fn start_origin(dir: PathBuf, ports: Ports) -> Result<OriginNode, String> {
    let ca = dir.join("ca");
    tls::create_ca(&ca).map_err(|e| format!("cluster CA: {e}"))?;
    for name in ["origin-1", "edge-1"] {
        tls::issue_node_cert(&ca, name, &dir.join(name), &["127.0.0.1".to_string()])
            .map_err(|e| format!("certificate {name}: {e}"))?;
    }
    let mut cfg = OriginConfig::default();
    cfg.node_name = "origin-1".into();
    cfg.rtmp.listen = procs::local(ports.origin_rtmp);
    cfg.http.listen = procs::local(ports.origin_http);
    cfg.admin.listen = procs::local(ports.origin_admin);
    cfg.relay.listen = Some(procs::local(ports.origin_relay));
    cfg.relay.cert_dir = Some(dir.join("origin-1"));
    cfg.packager.part_target_ms = 200;
    cfg.packager.segment_target_ms = 1000;
    cfg.keys = vec![StreamKeyEntry { key: "bench-unused-stream-key".into(), channel: "unused".into() }];
    cfg.drain_seconds = 1;
    OriginNode::start(cfg, None).await.map_err(|e| format!("origin: {e}"))
}

async fn bench(origin_rt: tokio::runtime::Handle) -> Result<(), String> {
    let runs: usize = env("RUNS", 3);
    let ports = Ports::new(env("BASE_PORT", 29500));
    let wrk_s: u64 = env("WRK_SECONDS", 10);
    let warm_s: u64 = env("WRK_WARMUP_SECONDS", 3);
    let lat_s: u64 = env("LATENCY_SECONDS", 10);
    let clients: usize = env("CLIENTS", 256);
    let out = PathBuf::from(env("OUT", "target/bench-edge".to_string()));
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let dir = tmp.path();
    for sub in ["www/live/static/source", "cache"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| format!("mkdir: {e}"))?;
    }
    let origin = origin_rt.spawn(start_origin(dir.to_owned(), ports)).await.map_err(|e| e.to_string())??;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let edge = procs::spawn_edge(&dir.join("edge-1"), ports)?;
    let nginx = procs::spawn_nginx(dir, ports, workers)?;
    for p in [ports.edge_http, ports.nginx_static, ports.nginx_proxy, ports.nginx_cache] {
        procs::wait_port(p, Duration::from_secs(10)).await?;
    }

    // The cached object of (2): a static channel, warmed at the edge, copied for nginx.
    feed::static_channel(&origin.hub, "static", 4)?;
    let (seg_path, pl_path) = ("/live/static/source/seg-3.m4s", "/live/static/source/index.m3u8");
    let mut bodies = Vec::new();
    for path in [pl_path, seg_path] {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let (status, body) = loop {
            let (status, body) = get_body(ports.edge_http, path).await;
            if status == 200 || std::time::Instant::now() > end {
                break (status, body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if status != 200 {
            let (_, pl) = get_body(ports.edge_http, pl_path).await;
            let pl = String::from_utf8_lossy(&pl).into_owned();
            return Err(format!("edge {path}: status {status}; edge playlist:\n{pl}"));
        }
        std::fs::write(dir.join("www").join(&path[1..]), &body).map_err(|e| format!("write: {e}"))?;
        bodies.push(body.len());
    }
    eprintln!("segment {} bytes, playlist {} bytes", bodies[1], bodies[0]);

    let mut results = Vec::new();
    let only = std::env::var("ONLY").unwrap_or_default();
    if only == "serve" {
        // For profiling by hand: both servers stay up, warmed, until stdin closes.
        eprintln!(
            "serving: edge pid {} http://127.0.0.1:{}{seg_path} | nginx pid {} http://127.0.0.1:{}{seg_path} \
             (playlist {pl_path}); close stdin (Ctrl-D) to stop",
            edge.pid(),
            ports.edge_http,
            nginx.pid(),
            ports.nginx_static
        );
        let _ = tokio::task::spawn_blocking(|| {
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())
        })
        .await;
        return Ok(());
    }
    if only == "cold" {
        for run in 0..runs {
            let c = scenarios::cold(&origin.hub, run, ports, clients).await?;
            eprintln!(
                "cold: origin {:.2} ms, edge single {:.2} ms (after idle {:.2}; nginx {:.2}, {:.2}), \
                 burst p50 {:.1} p99 {:.1}; part burst p50 {:.1} p99 {:.1}; \
                 cached burst p50 {:.1} p99 {:.1} (nginx {:.1} {:.1})",
                c.origin_ttfb,
                c.edge.single,
                c.edge.single_idle,
                c.nginx.single,
                c.nginx.single_idle,
                c.edge.segment.p50,
                c.edge.segment.p99,
                c.edge.part.p50,
                c.edge.part.p99,
                c.edge.cached.p50,
                c.edge.cached.p99,
                c.nginx.cached.p50,
                c.nginx.cached.p99
            );
        }
        eprintln!("{}", machine::report_line(scenarios::SINGLE_IDLE).await?);
        return Ok(());
    }
    for run in 0..runs {
        eprintln!("run {}/{runs}: latency ({lat_s} s)", run + 1);
        let lat = scenarios::latency(&origin.hub, &format!("live{run}"), ports, lat_s).await?;
        eprintln!("run {}/{runs}: wrk (4 × {warm_s} s warm-up + {wrk_s} s)", run + 1);
        let (e, n) = (edge.pid(), nginx.pid());
        let nginx_first = run % 2 == 1;
        let tp = tokio::task::spawn_blocking(move || {
            scenarios::throughput(seg_path, pl_path, ports, (wrk_s, warm_s), e, n, nginx_first)
        })
        .await
        .map_err(|e| e.to_string())??;
        eprintln!("run {}/{runs}: {clients} clients on a cold segment", run + 1);
        let cold = scenarios::cold(&origin.hub, run, ports, clients).await?;
        results.push(report::Run { lat, tp, cold });
    }
    let mut table = report::table(&results, bodies[1], bodies[0], clients);
    table.push_str(&format!("\n{}\n", machine::report_line(scenarios::SINGLE_IDLE).await?));
    println!("{table}");
    std::fs::create_dir_all(&out).map_err(|e| format!("mkdir {}: {e}", out.display()))?;
    let file = out.join("edge-delivery.md");
    std::fs::write(&file, &table).map_err(|e| format!("write {}: {e}", file.display()))?;
    eprintln!("written to {}", file.display());
    drop(nginx);
    drop(edge);
    let _ = origin_rt.spawn(origin.stop()).await;
    Ok(())
}

async fn get_body(port: u16, path: &str) -> (u16, Vec<u8>) {
    // The raw client counts wire bytes only; this one keeps the body (no chunk framing
    // expected for complete objects, which have a length).
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = client::connect(procs::local(port)).await else { return (0, Vec::new()) };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut all = Vec::new();
    if s.write_all(req.as_bytes()).await.is_err() || s.read_to_end(&mut all).await.is_err() {
        return (0, Vec::new());
    }
    let Some(end) = all.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, Vec::new()) };
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    if head.contains("transfer-encoding: chunked") {
        return (0, Vec::new());
    }
    (status, all[end + 4..].to_vec())
}
