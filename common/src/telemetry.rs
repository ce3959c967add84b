//! Logging setup for the binaries: `RUST_LOG`-style filters, text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. `json` selects one JSON object per line.
/// The filter comes from `RUST_LOG`, else `default_filter`. Logs go to stdout, coloured only
/// when it is a terminal (a file or a log collector gets plain text).
pub fn init_logging(default_filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_ansi(ansi);
    // A second call (tests) keeps the first subscriber.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
