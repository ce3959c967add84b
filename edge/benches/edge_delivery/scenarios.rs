//! The three measurements, each against the Skyrelay edge and against nginx in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skyrelay_common::hub::Hub;
use tokio::sync::{Barrier, oneshot};

use crate::client::{self, Fetch, quantile};
use crate::feed::{self, Stamps};
use crate::procs::{self, Ports, WrkResult};

/// Latency of frames, in ms: p50, p99, max, frames seen, frames expected.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub seen: usize,
    pub expected: usize,
}

/// (1) A live channel at the origin; an LL-HLS-style client at each target always has a
/// request out for the next part (the preload hint) and timestamps every frame's marker.
/// Targets: the edge (relay), nginx proxying the origin unbuffered, and the origin itself.
pub async fn latency(hub: &Hub, channel: &str, ports: Ports, seconds: u64) -> Result<[Latency; 3], String> {
    let r = feed::open(hub, channel)?;
    let stamps = Arc::new(Stamps::default());
    let latest = Arc::new(AtomicU64::new(0));
    let warmup = Duration::from_millis(1500);
    let measure_end = Instant::now() + warmup + Duration::from_secs(seconds);
    let feeder =
        tokio::spawn(feed::live(r, stamps.clone(), latest.clone(), measure_end + Duration::from_secs(2)));
    // The edge subscribes on the first request.
    let pl = format!("/live/{channel}/source/index.m3u8");
    let f = client::fetch(procs::local(ports.edge_http), &pl, false, None).await;
    if f.status != 200 {
        return Err(format!("edge playlist for {channel}: status {}", f.status));
    }
    tokio::time::sleep(warmup).await;
    let start = feed::next_part(feed::next_part(feed::part_of(latest.load(Ordering::Acquire))));
    let targets = [ports.edge_http, ports.nginx_proxy, ports.origin_http];
    let mut chains = Vec::new();
    for port in targets {
        chains.push(tokio::spawn(chain(procs::local(port), channel.to_owned(), start, measure_end)));
    }
    let mut out = Vec::new();
    for c in chains {
        let fetches = c.await.map_err(|e| format!("chain: {e}"))?;
        let mut ms: Vec<f64> = fetches
            .iter()
            .flat_map(|f| f.frames.iter())
            .filter_map(|(id, at)| Some(at.saturating_duration_since(stamps.get(*id)?).as_secs_f64() * 1e3))
            .collect();
        ms.sort_by(f64::total_cmp);
        let expected = fetches.len() * feed::FRAMES_PER_PART as usize;
        out.push(Latency {
            p50: quantile(&ms, 0.5),
            p99: quantile(&ms, 0.99),
            max: ms.last().copied().unwrap_or(f64::NAN),
            seen: ms.len(),
            expected,
        });
    }
    feeder.abort();
    Ok([out[0], out[1], out[2]])
}

/// Requests part after part, each as soon as the previous one's first byte arrived (so one
/// request always waits for a part that has not opened yet), until `end`.
async fn chain(addr: SocketAddr, channel: String, start: (u64, u32), end: Instant) -> Vec<Fetch> {
    let mut tasks = Vec::new();
    let mut at = start;
    while Instant::now() < end {
        let (tx, rx) = oneshot::channel();
        let path = format!("/live/{channel}/source/part-{}.{}.m4s", at.0, at.1);
        tasks.push(tokio::spawn(async move { client::fetch(addr, &path, true, Some(tx)).await }));
        if tokio::time::timeout(Duration::from_secs(5), rx).await.is_err() {
            break;
        }
        at = feed::next_part(at);
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(f) = t.await {
            out.push(f);
        }
    }
    out
}

/// (2) wrk against the edge and nginx (static files holding the same bytes).
pub struct Throughput {
    pub edge_segment: WrkResult,
    pub nginx_segment: WrkResult,
    pub edge_playlist: WrkResult,
    pub nginx_playlist: WrkResult,
}

pub fn throughput(
    seg_path: &str,
    pl_path: &str,
    ports: Ports,
    (seconds, warmup): (u64, u64),
    edge_pid: u32,
    nginx_pid: u32,
    nginx_first: bool,
) -> Result<Throughput, String> {
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");
    // Each measurement follows a discarded wrk of `warmup` seconds on the same URL, so that
    // neither server is measured straight after a quiet phase of the bench.
    let measure = |port: u16, path: &str, pid: u32| -> Result<WrkResult, String> {
        if warmup > 0 {
            procs::wrk(&url(port, path), warmup, pid)?;
        }
        procs::wrk(&url(port, path), seconds, pid)
    };
    // One server right after the other on the same path; which goes first alternates between
    // runs, so a drift of the machine within a pair does not always favour the same server.
    let pair = |path: &str| -> Result<(WrkResult, WrkResult), String> {
        let edge = || measure(ports.edge_http, path, edge_pid);
        let nginx = || measure(ports.nginx_static, path, nginx_pid);
        if nginx_first {
            let n = nginx()?;
            Ok((edge()?, n))
        } else {
            let e = edge()?;
            Ok((e, nginx()?))
        }
    };
    let (edge_segment, nginx_segment) = pair(seg_path)?;
    let (edge_playlist, nginx_playlist) = pair(pl_path)?;
    Ok(Throughput { edge_segment, nginx_segment, edge_playlist, nginx_playlist })
}

/// Time to first byte of many clients asking at once, in ms.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// Responses that were not 200 or whose body (chunk framing removed) differed from the
    /// first one's.
    pub bad: usize,
}

/// The pause before the first single cold request to each server. On some virtual
/// machines memory that sat untouched for a second or more costs far more on its next
/// touch (see `machine::idle_touch_cost`), so the first request after a pause measures
/// that as much as the server; both servers get the same pause.
pub const SINGLE_IDLE: Duration = Duration::from_secs(2);

/// (3) Cold object: per run, fresh channels at the origin; `clients` clients connected in
/// advance send their request at the same instant.
pub struct Cold {
    /// One client, the origin's own HTTP: the origin fetch time (median of 5).
    pub origin_ttfb: f64,
    pub edge: ServerCold,
    pub nginx: ServerCold,
}

/// (3) on one server (see [`sequence`]).
pub struct ServerCold {
    /// One client, right after another cold request to the same server.
    pub single: f64,
    /// One client, the first request after [`SINGLE_IDLE`] without any.
    pub single_idle: f64,
    pub segment: Burst,
    /// The same with the segment's last part (`part-3.4.m4s`, complete, ~68 KB).
    pub part: Burst,
    /// The segment's burst once more, now that the server holds it: what the same number of
    /// clients costs without any fetch (the floor for the cold figures).
    pub cached: Burst,
}

/// The cold objects of (3): a static channel's last segment and that segment's last part.
fn seg(channel: &str) -> String {
    format!("/live/{channel}/source/seg-3.m4s")
}

fn part(channel: &str) -> String {
    format!("/live/{channel}/source/part-3.4.m4s")
}

pub async fn cold(hub: &Hub, run: usize, ports: Ports, clients: usize) -> Result<Cold, String> {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"].map(|s| format!("cold{run}{s}"));
    for n in &names {
        feed::static_channel(hub, n, 4)?;
    }
    let mut origin = Vec::new();
    for _ in 0..5 {
        let f = client::fetch(procs::local(ports.origin_http), &seg(&names[0]), false, None).await;
        origin.push(ttfb_ms(&f)?);
    }
    // The same sequence on each server; which one goes first alternates between runs.
    let (edge_http, nginx_cache) = (ports.edge_http, ports.nginx_cache);
    let (edge, nginx) = if run.is_multiple_of(2) {
        let edge = sequence(edge_http, &names[1..5], clients).await?;
        (edge, sequence(nginx_cache, &names[5..9], clients).await?)
    } else {
        let nginx = sequence(nginx_cache, &names[5..9], clients).await?;
        (sequence(edge_http, &names[1..5], clients).await?, nginx)
    };
    Ok(Cold { origin_ttfb: client::median(&origin), edge, nginx })
}

/// (3) on one server, four fresh channels: after a pause of [`SINGLE_IDLE`], one cold request
/// (the first use of a path that sat idle), one more right behind it on the next channel,
/// then the bursts (segment, part) and the segment's burst again once cached.
async fn sequence(port: u16, channels: &[String], clients: usize) -> Result<ServerCold, String> {
    let addr = procs::local(port);
    tokio::time::sleep(SINGLE_IDLE).await;
    let single_idle = ttfb_ms(&client::fetch(addr, &seg(&channels[0]), false, None).await)?;
    let single = ttfb_ms(&client::fetch(addr, &seg(&channels[1]), false, None).await)?;
    let segment = burst(addr, &seg(&channels[2]), clients).await?;
    let part = burst(addr, &part(&channels[3]), clients).await?;
    let cached = burst(addr, &seg(&channels[2]), clients).await?;
    Ok(ServerCold { single, single_idle, segment, part, cached })
}

/// TTFB in ms of a 200 response; NaN (shown as "-", the status is logged) otherwise.
fn ttfb_ms(f: &Fetch) -> Result<f64, String> {
    match (f.status, f.ttfb) {
        (200, Some(t)) => Ok(t.as_secs_f64() * 1e3),
        (s, _) => {
            eprintln!("cold request: status {s}");
            Ok(f64::NAN)
        }
    }
}

async fn burst(addr: SocketAddr, path: &str, clients: usize) -> Result<Burst, String> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(client::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?);
    }
    let barrier = Arc::new(Barrier::new(clients + 1));
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for s in conns {
        let (barrier, start, path) = (barrier.clone(), start.clone(), path.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let t0 = *start.get_or_init(Instant::now);
            client::fetch_on(s, &path, t0, false, None).await
        }));
    }
    start.get_or_init(Instant::now);
    barrier.wait().await;
    let mut ms = Vec::new();
    let mut bad = 0;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut size = None;
    for t in tasks {
        let f = t.await.map_err(|e| format!("client: {e}"))?;
        *statuses.entry(f.status).or_default() += 1;
        let same = f.status != 200 || *size.get_or_insert_with(|| f.body.clone()) == f.body;
        match f.ttfb {
            Some(t) if f.status == 200 && same => ms.push(t.as_secs_f64() * 1e3),
            _ => bad += 1,
        }
    }
    ms.sort_by(f64::total_cmp);
    eprintln!("{clients} clients on {addr}{path}: statuses {statuses:?}, failed or differing {bad}");
    if bad > 0 {
        ms.clear(); // a burst with failures has no TTFB figures (shown as "-")
    }
    Ok(Burst {
        p50: quantile(&ms, 0.5),
        p99: quantile(&ms, 0.99),
        max: ms.last().copied().unwrap_or(f64::NAN),
        bad,
    })
}
