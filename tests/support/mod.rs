//! Support for the root package's tests: `skyrelay up` as a child process in a temp data
//! directory, and the JSON files it writes there.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use skyrelay_testkit::{ChildGuard, wait_for};

/// `skyrelay up` on free ports with `dir` as its data directory (stopped on drop).
pub fn start_up(dir: &Path) -> ChildGuard {
    let child = Command::new(env!("CARGO_BIN_EXE_skyrelay"))
        .args(["up", "--port-base", "0", "--rtmp-port", "0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("skyrelay runs");
    ChildGuard(child)
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
}

/// Starts `skyrelay up` in `dir` and waits for its `up.json` and `credentials.json`.
pub async fn start_up_with_admin(dir: &Path) -> Up {
    let process = start_up(dir);
    let info = read_json(&dir.join("up.json")).await;
    let creds = read_json(&dir.join("credentials.json")).await;
    let control_plane = info["control_plane"].as_str().expect("control_plane in up.json").to_string();
    let admin_password =
        creds["admin_password"].as_str().expect("admin_password in credentials.json").to_string();
    Up { process, info, control_plane, admin_password }
}
