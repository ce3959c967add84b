//! A real S3-compatible server for tests: s3s-fs (installed by `scripts/test.sh`) as a child
//! process on a loopback port, serving a directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{ChildGuard, run, wait_for};

/// The s3s-fs binary: on `PATH`, else in Cargo's bin directory; panics with how to install it.
pub fn s3s_fs_binary() -> PathBuf {
    if run(Command::new("s3s-fs").arg("--version")).0 {
        return PathBuf::from("s3s-fs");
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let candidate = home.join("bin").join("s3s-fs");
    assert!(
        candidate.exists(),
        "s3s-fs is not installed: `cargo install s3s-fs@0.14.1 --features binary --locked` (scripts/test.sh does it)"
    );
    candidate
}

/// s3s-fs serving `dir` on `127.0.0.1:port` with the given credentials; returns once it
/// accepts connections (killed when the guard drops).
pub async fn start_s3s_fs(port: u16, dir: &Path, access_key: &str, secret_key: &str) -> ChildGuard {
    std::fs::create_dir_all(dir).expect("s3s-fs directory");
    let child = Command::new(s3s_fs_binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", access_key, "--secret-key", secret_key])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    let guard = ChildGuard(child);
    wait_for("s3s-fs to listen", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
    guard
}
