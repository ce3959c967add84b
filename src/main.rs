//! `skyrelay`: one binary for every role of the network.

use std::path::PathBuf;

mod up;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skyrelay", version, about = "Skyrelay: a multi-region live-streaming relay network")]
struct Cli {
    /// Log lines as JSON objects.
    #[arg(long, global = true, env = "SKYRELAY_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an origin: RTMP ingest, LL-HLS packaging and serving.
    Origin {
        /// TOML configuration (see config/origin.toml); SKYRELAY_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run an edge: pull channels over the relay, serve viewers LL-HLS.
    Edge {
        /// TOML configuration (see config/edge.toml); SKYRELAY_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the control plane: users, channels, stream keys, nodes, routing, playback tokens.
    ControlPlane {
        /// TOML configuration (see config/control-plane.toml); SKYRELAY_* variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<ControlPlaneAction>,
    },
    /// Run a whole network on this machine: control plane, and an origin and two edges per region.
    Up(up::UpArgs),
    /// Load tester: stamped RTMP publishers, LL-HLS/HLS viewers, cold-miss bursts, reports.
    Loadtest(skyrelay_loadtest::cli::LoadtestArgs),
    /// Manage the cluster CA that authenticates nodes to each other on the relay.
    #[command(subcommand)]
    ClusterCa(ClusterCa),
}

#[derive(Subcommand)]
enum ControlPlaneAction {
    /// Create an admin account and print its password once.
    CreateAdmin {
        /// User name of the admin.
        name: String,
    },
}

#[derive(Subcommand)]
enum ClusterCa {
    /// Create a new cluster CA (ca.pem, ca.key) in a directory.
    Init {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Issue a node certificate (node.pem, node.key, ca.pem) signed by the cluster CA.
    Issue {
        /// Directory of the CA (from `cluster-ca init`).
        #[arg(long)]
        ca: PathBuf,
        /// Node name: also the name other nodes use to reach it (`upstream.server_name`).
        #[arg(long)]
        name: String,
        /// Output directory (the node's `cert_dir`).
        #[arg(long)]
        out: PathBuf,
        /// Extra DNS names or IP addresses for the certificate.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
}

/// Completes on the first SIGINT or SIGTERM: the one place signals are handled.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    skyrelay_common::telemetry::init_logging("info", cli.log_json);
    match cli.command {
        Command::Origin { config } => {
            let cfg: skyrelay_origin::config::OriginConfig =
                skyrelay_common::config::load(config.as_deref()).context("origin configuration")?;
            skyrelay_origin::node::run(cfg, shutdown_signal()).await.context("origin")?;
        }
        Command::Edge { config } => {
            let cfg: skyrelay_edge::config::EdgeConfig =
                skyrelay_common::config::load(config.as_deref()).context("edge configuration")?;
            skyrelay_edge::node::run(cfg, shutdown_signal()).await.context("edge")?;
        }
        Command::ControlPlane { config, action } => {
            let cfg: skyrelay_control_plane::ControlPlaneConfig =
                skyrelay_common::config::load(config.as_deref()).context("control-plane configuration")?;
            match action {
                None => {
                    let registry = prometheus::Registry::new();
                    skyrelay_control_plane::run(cfg, &registry, shutdown_signal())
                        .await
                        .context("control plane")?;
                }
                Some(ControlPlaneAction::CreateAdmin { name }) => {
                    let password = skyrelay_control_plane::create_admin_from_config(&cfg, &name)
                        .await
                        .context("creating the admin")?;
                    println!("admin {name} created; password (shown once): {password}");
                }
            }
        }
        Command::Up(args) => up::run(args, shutdown_signal()).await?,
        Command::Loadtest(args) => {
            skyrelay_loadtest::cli::run(args, shutdown_signal()).await.context("loadtest")?;
        }
        Command::ClusterCa(ClusterCa::Init { dir }) => {
            skyrelay_common::relay::tls::create_ca(&dir).context("creating the cluster CA")?;
            println!("cluster CA created in {} (keep ca.key private)", dir.display());
        }
        Command::ClusterCa(ClusterCa::Issue { ca, name, out, sans }) => {
            skyrelay_common::relay::tls::issue_node_cert(&ca, &name, &out, &sans)
                .context("issuing the node certificate")?;
            println!("certificate for {name} written to {}", out.display());
        }
    }
    Ok(())
}
