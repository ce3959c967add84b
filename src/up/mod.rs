//! `skyrelay up`: a whole multi-region network in one process on loopback.
//!
//! A control plane (SQLite in the data directory) and, per region, one origin and two
//! edges with the relay between them. The first run creates an admin, a `demo` channel
//! and its stream key, and a cluster CA; later runs reuse them. Once every listener is
//! ready, `<data-dir>/up.json` describes the network for scripts and tests.
//!
//! - [`ports`]: which port each listener gets.
//! - [`setup`]: first-run state (admin, demo channel, certificates).

mod ports;
mod setup;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::json;
use skyrelay_edge::config::EdgeConfig;
use skyrelay_edge::node::EdgeNode;
use skyrelay_origin::config::{OriginConfig, StorageSettings};
use skyrelay_origin::node::OriginNode;

use ports::Ports;

/// Options of `skyrelay up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Comma-separated region names; each gets an origin and two edges.
    #[arg(long, default_value = "eu,us", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Where state is kept across runs (database, certificates, credentials, up.json).
    #[arg(long, default_value = "./skyrelay-data")]
    pub data_dir: PathBuf,
    /// First HTTP port: the control plane gets it, region N's origin and edges
    /// base+100·(N+1), +1, +2 (admin listeners +50). 0 picks free ports.
    #[arg(long, default_value_t = 8000)]
    pub port_base: u16,
    /// RTMP port of the first region's origin (the next regions count up). 0 picks free ports.
    #[arg(long, default_value_t = 1935)]
    pub rtmp_port: u16,
    /// Also publish an ffmpeg test pattern into the demo channel.
    #[arg(long)]
    pub demo: bool,
}

/// Runs the network until `shutdown` completes.
pub async fn run(args: UpArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    if args.regions.is_empty() || args.regions.iter().any(|r| !skyrelay_common::hub::valid_name(r)) {
        bail!("--regions needs one or more names of [A-Za-z0-9._-], e.g. --regions eu,us");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize().context("resolving --data-dir")?;
    let ports = Ports::new(args.port_base, args.rtmp_port);

    let cp = setup::start_control_plane(&data_dir, &args.regions, &ports).await?;
    let creds = setup::first_run(&data_dir, &cp).await?;
    let ca = setup::cluster_ca(&data_dir)?;

    let mut origins = Vec::new();
    let mut edges: Vec<Vec<EdgeNode>> = Vec::new();
    for (i, region) in args.regions.iter().enumerate() {
        let name = format!("origin-{region}");
        let mut cfg =
            OriginConfig { node_name: name.clone(), region: region.clone(), ..OriginConfig::default() };
        cfg.rtmp.listen = ports.rtmp(i);
        cfg.http.listen = ports.node_http(i, 0);
        cfg.admin.listen = ports.node_admin(i, 0);
        cfg.relay.listen = Some(ports.node_relay(i, 0));
        cfg.relay.cert_dir = Some(setup::node_cert(&ca, &data_dir, &name)?);
        cfg.control_plane.url = Some(cp.url.clone());
        cfg.control_plane.node_secret = Some(cp.node_secret.clone());
        cfg.drain_seconds = 2;
        // Channels with recording on (the demo channel is) are recorded to the data
        // directory, so the network has recordings to list and play back (`/vod/…` on the edges).
        cfg.recording.enabled = true;
        cfg.recording.spool_dir = data_dir.join("recording-spool").join(region);
        cfg.recording.storage = StorageSettings::Local { dir: recordings_dir(&data_dir) };
        // A stream that stopped shows up as a finished recording a few seconds later (a
        // publisher back within this gap continues the same recording).
        cfg.recording.reconnect_gap_seconds = 5;
        let origin = OriginNode::start(cfg, None).await.map_err(|e| port_hint(e.to_string()))?;
        origins.push(origin);
        let mut region_edges = Vec::new();
        for j in 1..=2 {
            let name = format!("edge-{region}-{j}");
            let mut cfg =
                EdgeConfig { node_name: name.clone(), region: region.clone(), ..EdgeConfig::default() };
            cfg.http.listen = ports.node_http(i, j);
            cfg.admin.listen = ports.node_admin(i, j);
            cfg.relay.listen = Some(ports.node_relay(i, j));
            cfg.cert_dir = setup::node_cert(&ca, &data_dir, &name)?;
            cfg.control_plane.url = Some(cp.url.clone());
            cfg.control_plane.node_secret = Some(cp.node_secret.clone());
            cfg.http.delivery.web_assets_dir = web_assets_dir();
            cfg.drain_seconds = 2;
            region_edges.push(EdgeNode::start(cfg).await.map_err(|e| port_hint(e.to_string()))?);
        }
        edges.push(region_edges);
    }

    let watch_url = format!("http://{}/watch/{}", edges[0][0].http_addr, creds.channel);
    let publish_url = format!("rtmp://{}/live/{}", origins[0].rtmp_addr, creds.stream_key);
    let regions: Vec<_> = args
        .regions
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut metrics = vec![format!("http://{}/metrics", origins[i].admin_addr)];
            metrics.extend(edges[i].iter().map(|e| format!("http://{}/metrics", e.admin_addr)));
            json!({
                "name": name,
                "ingest": format!("rtmp://{}/live", origins[i].rtmp_addr),
                "origin_http": format!("http://{}", origins[i].http_addr),
                "edges": edges[i].iter().map(|e| format!("http://{}", e.http_addr)).collect::<Vec<_>>(),
                "metrics": metrics,
            })
        })
        .collect();
    let up = json!({
        "control_plane": cp.url,
        "admin_token": creds.admin_token,
        "recordings_dir": recordings_dir(&data_dir),
        "regions": regions,
        "demo": {
            "channel": creds.channel,
            "stream_key": creds.stream_key,
            "publish_url": publish_url,
            "watch_url": watch_url,
        },
    });
    let up_path = data_dir.join("up.json");
    std::fs::write(&up_path, serde_json::to_string_pretty(&up)?)
        .with_context(|| format!("writing {}", up_path.display()))?;
    print_summary(&up, &creds, &up_path);

    let mut demo = if args.demo { start_demo_publisher(&publish_url) } else { None };
    shutdown.await;
    println!("stopping…");
    if let Some(child) = demo.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_file(&up_path);
    for region_edges in edges {
        for edge in region_edges {
            edge.stop().await;
        }
    }
    for origin in origins {
        origin.stop().await;
    }
    cp.stop().await;
    Ok(())
}

/// Where every origin stores its recordings (`recordings/{channel}/{recording}/…`).
fn recordings_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// The hls.js build the watch page loads, next to the binary's source tree when run from
/// a checkout (`npm ci --prefix web`), else relative to the working directory.
fn web_assets_dir() -> PathBuf {
    let from_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/node_modules/hls.js/dist");
    if from_checkout.exists() { from_checkout } else { PathBuf::from("web/node_modules/hls.js/dist") }
}

fn port_hint(message: String) -> anyhow::Error {
    if message.contains("in use") || message.contains("Address already") {
        anyhow::anyhow!(
            "{message}\nA port is taken: pick other ports with --port-base (HTTP) or --rtmp-port (RTMP)."
        )
    } else {
        anyhow::anyhow!(message)
    }
}

fn print_summary(up: &serde_json::Value, creds: &setup::Credentials, path: &Path) {
    println!();
    println!("Skyrelay is up.");
    println!("  control plane   {}", up["control_plane"].as_str().unwrap_or_default());
    if let Some(password) = &creds.new_admin_password {
        println!("  admin           user `admin`, password `{password}` (shown once; also in the data dir)");
    }
    for region in up["regions"].as_array().into_iter().flatten() {
        println!("  region {}", region["name"].as_str().unwrap_or_default());
        println!("    publish       {}/{}", region["ingest"].as_str().unwrap_or_default(), creds.stream_key);
        for edge in region["edges"].as_array().into_iter().flatten() {
            println!("    watch         {}/watch/{}", edge.as_str().unwrap_or_default(), creds.channel);
        }
        let metrics: Vec<_> =
            region["metrics"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
        println!("    metrics       {}", metrics.join(" "));
    }
    println!();
    println!(
        "OBS: Settings → Stream → Custom, Server {}, Stream Key {}",
        up["regions"][0]["ingest"].as_str().unwrap_or_default(),
        creds.stream_key
    );
    println!(
        "ffmpeg: ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 \
              -preset veryfast -tune zerolatency -g 30 -c:a aac -f flv {}",
        up["demo"]["publish_url"].as_str().unwrap_or_default()
    );
    println!("Watch: {}", up["demo"]["watch_url"].as_str().unwrap_or_default());
    println!(
        "Recordings: channels with recording on (demo is) are recorded to {} (listed on the \
         management page, played at <edge>/vod/<recording>/index.m3u8)",
        up["recordings_dir"].as_str().unwrap_or_default()
    );
    println!("Details for scripts: {}", path.display());
    println!("Ctrl-C stops everything.");
}

fn start_demo_publisher(url: &str) -> Option<Child> {
    let spawned = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30"])
        .args(["-b:v", "2500k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", url])
        .stdin(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => {
            println!("--demo: ffmpeg publishes a test pattern into the demo channel");
            Some(child)
        }
        Err(e) => {
            println!(
                "--demo: cannot run ffmpeg ({e}); install it (e.g. `apt-get install ffmpeg`) or publish yourself"
            );
            None
        }
    }
}
