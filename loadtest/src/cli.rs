//! Command-line arguments and their dispatch, shared by the `skyrelay-loadtest` binary and
//! the `skyrelay loadtest` subcommand of the root binary.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::burst::{self, BurstError, BurstObject};
use crate::scenario::{self, PublisherGroup, RunError, RunOptions, Scenario, ViewerGroup};
use crate::viewer::Mode;

/// `skyrelay-loadtest` / `skyrelay loadtest` arguments.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    out: Output,
}

#[derive(Debug, Args)]
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

#[derive(Debug, Subcommand)]
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
    /// Cold-miss burst: C clients, connected in advance, request the same object at the
    /// same instant; reports time to first byte and statuses (JSON to --report).
    Burst {
        /// Where the object is fetched from in the burst: `http://host:port` (an edge).
        #[arg(long)]
        target: String,
        /// The channel's master or media playlist at the reference node (the origin): the
        /// object is chosen there and requested at the same path from `--target`.
        #[arg(long)]
        reference: String,
        /// Which object: the media playlist, or the newest complete segment.
        #[arg(long, value_enum, default_value = "segment")]
        object: BurstObject,
        /// Clients in the burst.
        #[arg(long, default_value_t = 256)]
        clients: usize,
        /// Per-client limit in seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A scenario file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The scenario is invalid or could not start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The burst could not run.
    #[error(transparent)]
    Burst(#[from] BurstError),
    /// The report could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl LoadtestArgs {
    fn scenario(&self) -> Result<Option<Scenario>, CliError> {
        Ok(Some(match &self.command {
            Command::Publish { url, count, file, duration } => Scenario {
                duration_s: *duration,
                warmup_s: Some(0),
                ramp_up_s: 0,
                http2: false,
                http2_viewers_per_connection: 50,
                publishers: vec![PublisherGroup { url: url.clone(), count: *count, file: file.clone() }],
                viewers: Vec::new(),
                metrics: Vec::new(),
            },
            Command::Play { urls, viewers, mode, duration, ramp_up, http2, viewers_per_connection } => {
                Scenario {
                    duration_s: *duration,
                    warmup_s: Some(0),
                    ramp_up_s: *ramp_up,
                    http2: *http2,
                    http2_viewers_per_connection: *viewers_per_connection,
                    publishers: Vec::new(),
                    viewers: urls
                        .iter()
                        .enumerate()
                        .map(|(i, url)| ViewerGroup {
                            name: Some(format!("{}-{i}", mode.as_str())),
                            url: url.clone(),
                            count: *viewers,
                            mode: *mode,
                            region: None,
                        })
                        .collect(),
                    metrics: Vec::new(),
                }
            }
            Command::Scenario { file, duration } => {
                let text = std::fs::read_to_string(file)
                    .map_err(|source| CliError::Read { path: file.clone(), source })?;
                let mut s = Scenario::from_toml(&text).map_err(RunError::from)?;
                if let Some(d) = duration {
                    s.duration_s = *d;
                }
                s
            }
            Command::Burst { .. } => return Ok(None),
        }))
    }
}

/// Runs the command until it ends or `shutdown` completes (the run then stops early and
/// still reports); prints the table and writes the report (and, with viewers, the plot).
pub async fn run(
    args: LoadtestArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let cancel = CancellationToken::new();
    let on_shutdown = cancel.clone();
    let watcher = tokio::spawn(async move {
        shutdown.await;
        on_shutdown.cancel();
    });
    let result = run_command(args, cancel).await;
    watcher.abort();
    result
}

async fn run_command(args: LoadtestArgs, cancel: CancellationToken) -> Result<(), CliError> {
    let write = |path: &PathBuf, r: std::io::Result<()>| {
        r.map_err(|source| CliError::Write { path: path.clone(), source })
    };
    if let Command::Burst { target, reference, object, clients, timeout } = &args.command {
        let opts =
            burst::BurstOptions { clients: *clients, timeout: std::time::Duration::from_secs(*timeout) };
        let result = burst::run(target, reference, *object, &opts, cancel).await?;
        print!("{}", result.table());
        write(&args.out.report, result.write_json(&args.out.report))?;
        println!("report: {}", args.out.report.display());
        return Ok(());
    }
    let Some(scenario) = args.scenario()? else { return Ok(()) };
    let opts = RunOptions {
        progress: !args.out.quiet,
        command: Some(std::env::args().collect::<Vec<_>>().join(" ")),
    };
    let report = scenario::run(&scenario, opts, cancel).await?;
    print!("{}", report.table());
    write(&args.out.report, report.write_json(&args.out.report))?;
    if let Some(g) = report.groups.first() {
        if let Err(e) = crate::plot::draw(g, &g.name, &args.out.plot) {
            eprintln!("{e}");
        } else {
            println!("plot: {}", args.out.plot.display());
        }
    }
    println!("report: {}", args.out.report.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn commands_parse_into_scenarios() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "t",
            "play",
            "--url",
            "http://127.0.0.1:1/a.m3u8",
            "--url",
            "http://127.0.0.1:2/b.m3u8",
            "--viewers",
            "7",
            "--mode",
            "hls",
            "--http2",
            "--ramp-up",
            "2",
            "--quiet",
        ])
        .unwrap();
        assert!(cli.args.out.quiet);
        let s = cli.args.scenario().unwrap().unwrap();
        assert_eq!(s.viewers.len(), 2);
        assert!(s.viewers.iter().all(|v| v.count == 7 && v.mode == Mode::Hls));
        assert!(s.http2 && s.ramp_up_s == 2 && s.publishers.is_empty());

        let cli = Cli::try_parse_from([
            "t",
            "publish",
            "--url",
            "rtmp://127.0.0.1/live/k{i}",
            "--count",
            "3",
            "--file",
            "a.flv",
        ])
        .unwrap();
        let s = cli.args.scenario().unwrap().unwrap();
        assert_eq!((s.publishers[0].count, s.viewers.len()), (3, 0));

        let cli = Cli::try_parse_from([
            "t",
            "--report",
            "b.json",
            "burst",
            "--target",
            "http://127.0.0.1:9",
            "--reference",
            "http://127.0.0.1:8/live/c/master.m3u8",
            "--object",
            "playlist",
        ])
        .unwrap();
        assert!(cli.args.scenario().unwrap().is_none());
        assert_eq!(cli.args.out.report, PathBuf::from("b.json"));
        assert!(matches!(
            cli.args.command,
            Command::Burst { object: BurstObject::Playlist, clients: 256, .. }
        ));

        let missing = Cli::try_parse_from(["t", "scenario", "/nonexistent/x.toml"]).unwrap();
        assert!(matches!(missing.args.scenario(), Err(CliError::Read { .. })));
        assert!(Cli::try_parse_from(["t", "play"]).is_err());
    }
}
