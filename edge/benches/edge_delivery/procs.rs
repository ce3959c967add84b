//! Processes the benchmark runs next to itself: the edge (this binary again, in
//! `--edge-child` mode, so its CPU time is its own), nginx and wrk; CPU time of a process
//! tree from `/proc/<pid>/stat`. Every process is stopped by its PID.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports on 127.0.0.1, from `BASE_PORT`.
#[derive(Clone, Copy)]
pub struct Ports {
    pub origin_http: u16,
    pub origin_rtmp: u16,
    pub origin_admin: u16,
    pub origin_relay: u16,
    pub edge_http: u16,
    pub edge_admin: u16,
    /// nginx: static files (the same bytes the edge serves).
    pub nginx_static: u16,
    /// nginx: reverse proxy to the origin, unbuffered (streams open parts).
    pub nginx_proxy: u16,
    /// nginx: proxy_cache with proxy_cache_lock in front of the origin.
    pub nginx_cache: u16,
}

impl Ports {
    pub fn new(base: u16) -> Ports {
        Ports {
            origin_http: base,
            origin_rtmp: base + 1,
            origin_admin: base + 2,
            origin_relay: base + 3,
            edge_http: base + 10,
            edge_admin: base + 11,
            nginx_static: base + 20,
            nginx_proxy: base + 21,
            nginx_cache: base + 22,
        }
    }
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A child process stopped (by PID) on drop.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    /// Sent SIGTERM instead of closing stdin.
    signal: bool,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if self.signal {
            let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        } else {
            drop(self.child.stdin.take()); // the edge child stops when its stdin closes
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} (pid {}) did not stop: killing it", self.name, self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts this binary as the edge: `--edge-child <cert dir> <http port> <admin port> <upstream relay>`.
pub fn spawn_edge(cert_dir: &Path, ports: Ports) -> Result<Proc, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let child = Command::new(exe)
        .arg("--edge-child")
        .arg(cert_dir)
        .args([ports.edge_http, ports.edge_admin, ports.origin_relay].map(|p| p.to_string()))
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn edge: {e}"))?;
    Ok(Proc { name: "edge", child, signal: false })
}

/// Writes the nginx configuration (one instance, three servers) and starts nginx.
pub fn spawn_nginx(dir: &Path, ports: Ports, workers: usize) -> Result<Proc, String> {
    let www = dir.join("www");
    let conf = format!(
        r#"daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 65;
  client_body_temp_path {dir}/tmp-body;
  proxy_temp_path {dir}/tmp-proxy;
  fastcgi_temp_path {dir}/tmp-fcgi;
  uwsgi_temp_path {dir}/tmp-uwsgi;
  scgi_temp_path {dir}/tmp-scgi;
  types {{ application/vnd.apple.mpegurl m3u8; video/iso.segment m4s; video/mp4 mp4; }}
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 64; }}
  proxy_cache_path {dir}/cache levels=1:2 keys_zone=edge:16m max_size=1g inactive=10m use_temp_path=off;
  server {{
    listen 127.0.0.1:{stat};
    root {www};
    location ~ \.m3u8$ {{ add_header Cache-Control "no-cache"; add_header Access-Control-Allow-Origin "*"; }}
    location / {{ add_header Cache-Control "public, max-age=300, immutable"; add_header Access-Control-Allow-Origin "*"; }}
  }}
  server {{
    listen 127.0.0.1:{proxy};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
  server {{
    listen 127.0.0.1:{cache};
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_valid 200 1m;
    }}
  }}
}}
"#,
        dir = dir.display(),
        www = www.display(),
        origin = ports.origin_http,
        stat = ports.nginx_static,
        proxy = ports.nginx_proxy,
        cache = ports.nginx_cache,
    );
    let path = dir.join("nginx.conf");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(conf.as_bytes()))
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .spawn()
        .map_err(|e| format!("spawn nginx: {e}"))?;
    Ok(Proc { name: "nginx", child, signal: true })
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_port(port: u16, within: Duration) -> Result<(), String> {
    let end = Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(local(port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("nothing listens on 127.0.0.1:{port}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (ppid, utime + stime in clock ticks) of `pid`.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((f.get(1)?.parse().ok()?, f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?))
}

/// CPU seconds used so far by `pid` and its direct children (nginx's workers).
pub fn cpu_seconds(pid: u32) -> f64 {
    let mut ticks = stat(pid).map(|s| s.1).unwrap_or(0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if let Some((ppid, t)) = stat(child)
                && ppid == pid
            {
                ticks += t;
            }
        }
    }
    ticks as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// One wrk run against `url` while the server `pid` is measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub cpu_s: f64,
}

impl WrkResult {
    pub fn per_cpu_s(&self) -> f64 {
        if self.cpu_s > 0.0 { self.requests as f64 / self.cpu_s } else { f64::NAN }
    }
}

pub fn wrk(url: &str, seconds: u64, server_pid: u32) -> Result<WrkResult, String> {
    let before = cpu_seconds(server_pid);
    let out = Command::new("wrk")
        .args(["-t2", "-c256", &format!("-d{seconds}s"), url])
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let cpu_s = cpu_seconds(server_pid) - before;
    let text = String::from_utf8_lossy(&out.stdout);
    let num = |after: &str| -> Option<f64> {
        let l = text.lines().find(|l| l.contains(after))?;
        l.split_whitespace().find_map(|w| w.trim_end_matches(',').parse::<f64>().ok())
    };
    let socket_errors = text
        .lines()
        .find(|l| l.contains("Socket errors"))
        .map(|l| l.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Ok(WrkResult {
        requests: num(" requests in ").ok_or_else(|| format!("wrk output: {text}"))? as u64,
        rps: num("Requests/sec").unwrap_or(f64::NAN),
        non_2xx: num("Non-2xx").unwrap_or(0.0) as u64,
        socket_errors,
        cpu_s,
    })
}
