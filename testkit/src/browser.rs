//! Headless Chromium driven by the Node.js scripts under `web/tests/` (playwright-core from
//! `web/node_modules`): where things are, a prerequisite check with what to run when they are
//! missing, a driver run with its output kept under `target/test-artifacts/`, and the reading
//! of the `key=value` result line a driver prints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ChildGuard;

/// The Chromium binary: `$CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The repository's `web/` directory (driver scripts, npm packages, hls.js).
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// `target/test-artifacts/`, created when missing: screenshots and driver logs.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

/// Panics with what to run when Chromium or the web packages are missing.
pub fn check_prerequisites() {
    let web = web_dir();
    assert!(
        chromium().is_file(),
        "Chromium is missing at {}: run scripts/test.sh, which installs Debian's chromium",
        chromium().display()
    );
    assert!(
        web.join("node_modules/playwright-core").is_dir()
            && web.join("node_modules/hls.js/dist/hls.min.js").is_file(),
        "web/node_modules is missing: run `npm ci --prefix web` (scripts/test.sh does)"
    );
}

/// What a driver printed: its standard output, and both streams together for messages.
pub struct Driven {
    pub stdout: String,
    pub report: String,
}

/// Runs `web/tests/{script}` with `args` (and `--chromium`), keeping its output as
/// `target/test-artifacts/{name}.log` and `{name}.stderr.log`; panics with the output when it
/// fails or outlives `timeout`.
pub async fn drive(script: &str, name: &str, args: &[String], timeout: Duration) -> Driven {
    let dir = artifacts();
    let out_path = dir.join(format!("{name}.log"));
    let err_path = dir.join(format!("{name}.stderr.log"));
    let child = Command::new("node")
        .arg(web_dir().join("tests").join(script))
        .args(args)
        .arg("--chromium")
        .arg(chromium())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("driver log"))
        .stderr(std::fs::File::create(&err_path).expect("driver error log"))
        .spawn()
        .expect("node runs (Node.js is needed for the web UI)");
    let mut driver = ChildGuard(child);
    let exit = driver.wait_exit(timeout).await;
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let report = format!("{stdout}\n{stderr}");
    println!("{name}:\n{report}");
    match exit {
        Some(status) => assert!(status.success(), "{script} failed ({status}):\n{report}"),
        None => panic!("{script} did not finish within {timeout:?}:\n{report}"),
    }
    Driven { stdout, report }
}

/// The `key=value` pairs of a driver's result line.
pub struct DriverResult {
    pairs: HashMap<String, String>,
    report: String,
}

impl DriverResult {
    /// Reads the line of `driven` starting with `prefix` (empty when there is none).
    pub fn parse(driven: &Driven, prefix: &str) -> DriverResult {
        let line = driven.stdout.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or("");
        let pairs = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DriverResult { pairs, report: driven.report.clone() }
    }

    /// The value of `key`, or `""`.
    pub fn get(&self, key: &str) -> &str {
        self.pairs.get(key).map_or("", String::as_str)
    }

    /// The figure `key`; panics with the driver's output when it is missing or not a number.
    pub fn number(&self, key: &str) -> f64 {
        self.pairs
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no figure {key} in the driver's report:\n{}", self.report))
    }

    /// The driver's whole output, for assertion messages.
    pub fn report(&self) -> &str {
        &self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_is_read_by_prefix() {
        let driven = Driven {
            stdout: "noise\nwatch-result started=1 played_s=6.5 engine=hls.js\n".into(),
            report: String::new(),
        };
        let r = DriverResult::parse(&driven, "watch-result ");
        assert_eq!(r.get("started"), "1");
        assert_eq!(r.get("engine"), "hls.js");
        assert_eq!(r.get("absent"), "");
        assert!((r.number("played_s") - 6.5).abs() < 1e-9);
    }
}
