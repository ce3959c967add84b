//! First-run state of `skyrelay up` and the control plane it runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skyrelay_control_plane::{App, ControlPlaneConfig};

use super::ports::Ports;

/// The running control plane.
pub struct ControlPlane {
    pub url: String,
    pub node_secret: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    app: App,
}

impl ControlPlane {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Starts the control plane with SQLite in `<data_dir>/control-plane`, one configured
/// region per name (all equally far apart).
pub async fn start_control_plane(data_dir: &Path, regions: &[String], ports: &Ports) -> Result<ControlPlane> {
    let mut text = format!(
        "listen = \"{}\"\ndata_dir = \"{}\"\ndefault_region = \"{}\"\nheartbeat_interval_ms = 1000\n",
        ports.control_plane(),
        data_dir.join("control-plane").display(),
        regions[0]
    );
    for region in regions {
        text.push_str(&format!("[[regions]]\nname = \"{region}\"\n"));
        let others: Vec<_> =
            regions.iter().filter(|r| *r != region).map(|r| format!("\"{r}\" = 100")).collect();
        text.push_str(&format!("distances = {{ {} }}\n", others.join(", ")));
    }
    let cfg: ControlPlaneConfig =
        skyrelay_common::config::from_toml(&text).context("control-plane settings")?;
    std::fs::create_dir_all(&cfg.data_dir).context("creating the control-plane data directory")?;
    let listen = cfg.listen;
    let app = App::new(cfg, &prometheus::Registry::new()).await.context("starting the control plane")?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        anyhow!("cannot listen on {listen} (control plane): {e}\nA port is taken: pick other ports with --port-base.")
    })?;
    let url = format!("http://{}", listener.local_addr()?);
    let node_secret = app.node_secret().to_string();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let served = app.clone();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        if let Err(e) = skyrelay_control_plane::serve(served, listener, shutdown).await {
            tracing::error!(error = %e, "control plane stopped");
        }
    });
    Ok(ControlPlane { url, node_secret, stop, task, app })
}

/// What the first run made and later runs reuse (`<data_dir>/credentials.json`, 0600).
#[derive(Serialize, Deserialize)]
struct Stored {
    admin_password: String,
    channel: String,
    stream_key: String,
}

/// The credentials `up` prints and writes into `up.json`.
pub struct Credentials {
    pub admin_token: String,
    pub channel: String,
    pub stream_key: String,
    /// Set on the first run only (printed once).
    pub new_admin_password: Option<String>,
}

/// Creates the admin, the `demo` channel and its stream key on the first run; logs in.
pub async fn first_run(data_dir: &Path, cp: &ControlPlane) -> Result<Credentials> {
    let path = data_dir.join("credentials.json");
    if path.exists() {
        let stored: Stored = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| {
            format!("{} is damaged; remove it (and the data dir) to start over", path.display())
        })?;
        let admin_token = login(cp, &stored.admin_password).await?;
        return Ok(Credentials {
            admin_token,
            channel: stored.channel,
            stream_key: stored.stream_key,
            new_admin_password: None,
        });
    }
    let password = skyrelay_control_plane::create_admin(cp.app.store(), "admin").await.map_err(|e| {
        anyhow!("creating the admin: {e} (the data dir has a database but no credentials.json: remove the data dir)")
    })?;
    let admin_token = login(cp, &password).await?;
    let (status, body) =
        api(cp, "POST", "/v1/channels", Some(&admin_token), Some(json!({"name": "demo", "recording": true})))
            .await?;
    if status != 201 {
        bail!("creating the demo channel: {status} {body}");
    }
    let (status, body) = api(cp, "POST", "/v1/channels/demo/stream-key", Some(&admin_token), None).await?;
    let stream_key = body["stream_key"].as_str().filter(|_| status == 201);
    let stream_key =
        stream_key.ok_or_else(|| anyhow!("creating the demo stream key: {status} {body}"))?.to_string();
    let stored =
        Stored { admin_password: password.clone(), channel: "demo".into(), stream_key: stream_key.clone() };
    write_private(&path, &serde_json::to_vec_pretty(&stored)?)?;
    Ok(Credentials { admin_token, channel: "demo".into(), stream_key, new_admin_password: Some(password) })
}

async fn login(cp: &ControlPlane, password: &str) -> Result<String> {
    let body = json!({"username": "admin", "password": password});
    let (status, answer) = api(cp, "POST", "/v1/sessions", None, Some(body)).await?;
    answer["token"]
        .as_str()
        .filter(|_| status == 201)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("admin login failed: {status} {answer}"))
}

async fn api(
    cp: &ControlPlane,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(format!("{}{path}", cp.url));
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let payload = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req.body(Full::new(payload))?))
        .await
        .map_err(|_| anyhow!("control plane did not answer {method} {path}"))??;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// The cluster CA in `<data_dir>/cluster/ca`, created on the first run.
pub fn cluster_ca(data_dir: &Path) -> Result<PathBuf> {
    let dir = data_dir.join("cluster/ca");
    if !dir.join("ca.pem").exists() {
        skyrelay_common::relay::tls::create_ca(&dir).context("creating the cluster CA")?;
    }
    Ok(dir)
}

/// The certificate directory of node `name`, issued on first use.
pub fn node_cert(ca: &Path, data_dir: &Path, name: &str) -> Result<PathBuf> {
    let dir = data_dir.join("cluster").join(name);
    if !dir.join("node.pem").exists() {
        skyrelay_common::relay::tls::issue_node_cert(ca, name, &dir, &["127.0.0.1".to_string()])
            .with_context(|| format!("issuing the certificate of {name}"))?;
    }
    Ok(dir)
}
