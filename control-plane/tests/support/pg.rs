//! A throwaway PostgreSQL cluster for tests: `initdb` into a temp dir, `pg_ctl start` on a
//! free loopback port, `pg_ctl stop` on drop. PostgreSQL refuses to run as root, so as root
//! the binaries run as the `postgres` user (`runuser`).
//!
//! Missing binaries are a test failure, not a skip: the test command installs the Debian
//! `postgresql` package.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN_DIRS: &[&str] =
    &["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"];

pub struct PgCluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin =
            BIN_DIRS.iter().map(PathBuf::from).find(|d| d.join("initdb").exists()).unwrap_or_else(|| {
                panic!(
                    "PostgreSQL server binaries not found in {BIN_DIRS:?}: install them with \
                 `apt-get install -y postgresql` (the test command does this)"
                )
            });
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("skyrelay-pg").tempdir().expect("temp dir");
        if as_postgres {
            let ok =
                Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).status().expect("chown");
            assert!(ok.success(), "chown of the cluster dir to postgres failed");
        }
        let data = dir.path().join("db");
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let pg = PgCluster { data: data.clone(), bin, as_postgres, port, _dir: dir };
        pg.run("initdb", &["-D", path(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            pg._dir.path().display()
        );
        let log = pg._dir.path().join("log");
        pg.run("pg_ctl", &["-D", path(&data), "-o", &opts, "-l", path(&log), "-w", "-t", "60", "start"]);
        pg
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_postgres {
            Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// URL of the maintenance database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub async fn create_db(&self, name: &str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut c = sqlx::AnyConnection::connect(&self.admin_url()).await.expect("connect to postgres");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("create database");
        c.close().await.ok();
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", path(&self.data), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser").arg("-u").arg("postgres").arg("--").arg(&exe).args(args).output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
