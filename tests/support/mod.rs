//! Support for the root package's tests: `skyrelay up` as a child process in a temp data
//! directory, and the JSON files it writes there.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use skyrelay_testkit::{ChildGuard, wait_for};

/// The file in the data directory that takes `skyrelay up`'s output and log (stdout and stderr).
pub const UP_LOG: &str = "up-output.log";

/// How many of the log's last lines a failing test prints.
const LOG_TAIL_LINES: usize = 60;

/// `skyrelay up` on free ports with `dir` as its data directory (stopped on drop). Its log
/// (info and above) goes to [`UP_LOG`] in `dir`, appended across runs.
pub fn start_up(dir: &Path) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(UP_LOG))
        .expect("log file in the data directory");
    let child = Command::new(env!("CARGO_BIN_EXE_skyrelay"))
        .args(["up", "--port-base", "0", "--rtmp-port", "0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log file handle"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("skyrelay runs");
    ChildGuard(child)
}

/// The last lines of `up`'s log in `dir`, for a failing test's output.
pub fn up_log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(UP_LOG)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// The JSON in `path` once it exists and parses (`up.json`, `credentials.json`), within 60 s.
pub async fn read_json(path: &Path) -> serde_json::Value {
    wait_for(&format!("{}", path.display()), Duration::from_secs(60), || async {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
    })
    .await
}

/// A running `skyrelay up` with what it wrote: `up.json`, the control plane's URL and the
/// admin password from `credentials.json`.
pub struct Up {
    pub process: ChildGuard,
    pub info: serde_json::Value,
    pub control_plane: String,
    pub admin_password: String,
    pub dir: std::path::PathBuf,
}

impl Drop for Up {
    /// A failing test shows what the network logged last (the test's output captures it).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.dir.join(UP_LOG).display(),
                up_log_tail(&self.dir)
            );
        }
    }
}

/// Starts `skyrelay up` in `dir` and waits for its `up.json` and `credentials.json`.
pub async fn start_up_with_admin(dir: &Path) -> Up {
    let process = start_up(dir);
    let info = read_json(&dir.join("up.json")).await;
    let creds = read_json(&dir.join("credentials.json")).await;
    let control_plane = info["control_plane"].as_str().expect("control_plane in up.json").to_string();
    let admin_password =
        creds["admin_password"].as_str().expect("admin_password in credentials.json").to_string();
    Up { process, info, control_plane, admin_password, dir: dir.to_path_buf() }
}
