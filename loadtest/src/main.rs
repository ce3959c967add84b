//! `skyrelay-loadtest`: RTMP publishers and LL-HLS/HLS viewers with per-frame latency.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use skyrelay_loadtest::scenario::{self, PublisherGroup, RunOptions, Scenario, ViewerGroup};
use skyrelay_loadtest::viewer::Mode;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "skyrelay-loadtest", version, about = "Skyrelay load tester")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct Output {
    /// JSON report path.
    #[arg(long, global = true, default_value = "loadtest-report.json")]
    report: PathBuf,
    /// SVG plot path (latency over time and distribution).
    #[arg(long, global = true, default_value = "loadtest-latency.svg")]
    plot: PathBuf,
    /// No live progress line.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Publish N looped copies of an FLV file over RTMP, stamping every video frame.
    Publish {
        /// rtmp://host[:port]/app/key; `{i}` is replaced by the publisher index.
        #[arg(long)]
        url: String,
        /// Number of publishers.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// FLV file (H.264 + AAC) to replay.
        #[arg(long)]
        file: PathBuf,
        /// Run time in seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
    },
    /// Play URLs with M viewers each and measure latency, startup, stalls, errors.
    Play {
        /// Master or media playlist URL (repeatable).
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// Viewers per URL.
        #[arg(long, default_value_t = 1)]
        viewers: usize,
        /// Player behaviour.
        #[arg(long, value_enum, default_value = "ll-hls")]
        mode: Mode,
        /// Measured time in seconds.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Spread viewer starts over this many seconds.
        #[arg(long, default_value_t = 0)]
        ramp_up: u64,
        /// Use HTTP/2 with prior knowledge.
        #[arg(long)]
        http2: bool,
        /// With --http2: viewers sharing one connection.
        #[arg(long, default_value_t = 50)]
        viewers_per_connection: usize,
    },
    /// Run a TOML scenario (publishers, viewer groups, metrics).
    Scenario {
        /// The scenario file.
        file: PathBuf,
        /// Override `duration_s`.
        #[arg(long)]
        duration: Option<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let scenario = match cli.command {
        Command::Publish { url, count, file, duration } => Scenario {
            duration_s: duration,
            warmup_s: Some(0),
            ramp_up_s: 0,
            http2: false,
            http2_viewers_per_connection: 50,
            publishers: vec![PublisherGroup { url, count, file }],
            viewers: Vec::new(),
            metrics: Vec::new(),
        },
        Command::Play { urls, viewers, mode, duration, ramp_up, http2, viewers_per_connection } => Scenario {
            duration_s: duration,
            warmup_s: Some(0),
            ramp_up_s: ramp_up,
            http2,
            http2_viewers_per_connection: viewers_per_connection,
            publishers: Vec::new(),
            viewers: urls
                .into_iter()
                .enumerate()
                .map(|(i, url)| ViewerGroup {
                    name: Some(format!("{}-{i}", mode.as_str())),
                    url,
                    count: viewers,
                    mode,
                    region: None,
                })
                .collect(),
            metrics: Vec::new(),
        },
        Command::Scenario { file, duration } => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut s = Scenario::from_toml(&text)?;
            if let Some(d) = duration {
                s.duration_s = d;
            }
            s
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        let opts = RunOptions {
            progress: !cli.out.quiet,
            command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
        };
        scenario::run(&scenario, opts, cancel).await
    })?;
    print!("{}", report.table());
    report.write_json(&cli.out.report).with_context(|| format!("writing {}", cli.out.report.display()))?;
    if let Some(g) = report.groups.first() {
        if let Err(e) = skyrelay_loadtest::plot::draw(g, &g.name, &cli.out.plot) {
            eprintln!("{e}");
        } else {
            println!("plot: {}", cli.out.plot.display());
        }
    }
    println!("report: {}", cli.out.report.display());
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
