//! `skyrelay-loadtest`: RTMP publishers and LL-HLS/HLS viewers with per-frame latency
//! (the same commands as `skyrelay loadtest`).

use clap::Parser;
use skyrelay_loadtest::cli::{self, LoadtestArgs};

#[derive(Parser)]
#[command(name = "skyrelay-loadtest", version, about = "Skyrelay load tester")]
struct Cli {
    #[command(flatten)]
    args: LoadtestArgs,
}

/// mimalloc rather than glibc's allocator: thousands of viewers allocate and free small
/// buffers for every streamed chunk, and `malloc`/`free` were the largest item in this
/// process's profile (docs/benchmarks.md, "10,000 LL-HLS viewers").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(cli::run(cli.args, async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
