//! The whole network with its control plane: a streamer's key made through the API
//! publishes with ffmpeg; the edge finds the origin through the control plane; a revoked key
//! is refused; a private channel needs a token from `/v1/route/play`; playback and
//! publishing go on while the control plane is down.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use skyrelay_common::relay::tls;
use skyrelay_control_plane::{App, ControlPlaneConfig};
use skyrelay_edge::node::EdgeNode;
use skyrelay_origin::config::OriginConfig;
use skyrelay_origin::node::OriginNode;
use support::*;
use tokio::sync::oneshot;

/// A control plane on its own runtime, so that killing it (dropping the runtime) closes
/// every socket it has, as a crashed process would.
struct ControlPlane {
    base: String,
    secret: String,
    runtime: tokio::runtime::Runtime,
}

impl ControlPlane {
    fn kill(self) {
        self.runtime.shutdown_background();
    }
}

async fn start_control_plane(dir: &std::path::Path) -> ControlPlane {
    let (tx, rx) = oneshot::channel();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let (base, secret) = runtime.block_on(serve_control_plane(&dir));
        let _ = tx.send(ControlPlane { base, secret, runtime });
    });
    rx.await.expect("control plane started")
}

async fn serve_control_plane(dir: &std::path::Path) -> (String, String) {
    let text = format!(
        "data_dir = \"{}\"\nnode_secret = \"node-secret-for-tests-0001\"\nheartbeat_interval_ms = 500\n",
        dir.display()
    );
    let cfg: ControlPlaneConfig = skyrelay_common::config::from_toml(&text).unwrap();
    let app = App::new(cfg, &prometheus::Registry::new()).await.expect("control plane starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let secret = app.node_secret().to_string();
    let password = skyrelay_control_plane::create_admin(app.store(), "admin").await.expect("admin");
    tokio::spawn(async move {
        let _ = skyrelay_control_plane::serve(app, listener, std::future::pending()).await;
    });
    std::fs::write(dir.join("admin-password"), password).unwrap();
    (base, secret)
}

async fn login(cp: &ControlPlane, dir: &std::path::Path) -> String {
    let password = std::fs::read_to_string(dir.join("admin-password")).unwrap();
    let (status, body) = http_json(
        "POST",
        &format!("{}/v1/sessions", cp.base),
        None,
        Some(json!({"username": "admin", "password": password})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("session token").to_string()
}

async fn channel_with_key(cp: &ControlPlane, session: &str, name: &str, private: bool) -> String {
    let (status, body) = http_json(
        "POST",
        &format!("{}/v1/channels", cp.base),
        Some(session),
        Some(json!({"name": name, "private": private})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        http_json("POST", &format!("{}/v1/channels/{name}/stream-key", cp.base), Some(session), None).await;
    assert_eq!(status, 201, "{body}");
    body["stream_key"].as_str().expect("stream key").to_string()
}

fn decodes(url: &str) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", url, "-t", "3", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && err.trim().is_empty() { Ok(()) } else { Err(err) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamer_to_viewer_through_the_control_plane() {
    skyrelay_common::telemetry::init_logging("info,skyrelay=debug", false);
    skyrelay_testkit::report_panics_inline();
    let dir = tempfile::tempdir().unwrap();
    let cp = start_control_plane(&dir.path().join("cp")).await;
    let session = login(&cp, dir.path().join("cp").as_path()).await;
    let public_key = channel_with_key(&cp, &session, "show", false).await;
    let private_key = channel_with_key(&cp, &session, "secret", true).await;

    tls::create_ca(&dir.path().join("ca")).unwrap();
    let mut ocfg = OriginConfig { node_name: "origin-1".into(), ..OriginConfig::default() };
    ocfg.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.http.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    ocfg.relay.listen = Some("127.0.0.1:0".parse().unwrap());
    ocfg.relay.cert_dir = Some(issue(dir.path(), "origin-1"));
    ocfg.control_plane.url = Some(cp.base.clone());
    ocfg.control_plane.node_secret = Some(cp.secret.clone());
    let origin = OriginNode::start(ocfg, None).await.expect("origin starts");
    let mut ecfg = edge_config(dir.path(), "edge-1", "127.0.0.1:9".parse().unwrap(), "unused");
    ecfg.control_plane.url = Some(cp.base.clone());
    ecfg.control_plane.node_secret = Some(cp.secret.clone());
    let edge = EdgeNode::start(ecfg).await.expect("edge starts");

    // Public channel: published with the API-made key, found by the edge through the
    // control plane, decoded by ffmpeg.
    let _show = ffmpeg_publish(&format!("rtmp://{}/live/{public_key}", origin.rtmp_addr), 60);
    let show = format!("http://{}/live/show/master.m3u8", edge.http_addr);
    let show_playlist = format!("http://{}/live/show/source/index.m3u8", edge.http_addr);
    wait_for("the edge to serve the public channel", Duration::from_secs(30), || async {
        let (status, text) = http_text(&show_playlist).await;
        (status == 200 && text.matches("#EXTINF").count() >= 1).then_some(())
    })
    .await;
    decodes(&show).expect("public channel decodes at the edge");

    // Private channel: 403 without a token, plays with one from /v1/route/play.
    let _secret = ffmpeg_publish(&format!("rtmp://{}/live/{private_key}", origin.rtmp_addr), 60);
    let secret_master = format!("http://{}/live/secret/master.m3u8", edge.http_addr);
    wait_for("the origin to carry the private channel", Duration::from_secs(30), || async {
        let url = format!("http://{}/live/secret/source/index.m3u8", origin.http_addr);
        let (status, text) = http_text(&url).await;
        (status == 200 && text.contains("#EXTINF")).then_some(())
    })
    .await;
    let (status, body) = http_text(&secret_master).await;
    assert_eq!(status, 403, "private channel without a token: {body}");
    let (status, route) =
        http_json("GET", &format!("{}/v1/route/play/secret", cp.base), Some(&session), None).await;
    assert_eq!(status, 200, "{route}");
    let token = route["token"].as_str().expect("a token for a private channel").to_string();
    let with_token = format!("{secret_master}?token={token}");
    wait_for("the private channel to play with a token", Duration::from_secs(30), || async {
        let (status, text) = http_text(&with_token).await;
        (status == 200 && text.contains("token=")).then_some(())
    })
    .await;
    decodes(&with_token).expect("private channel decodes with a token");
    let (status, _) = http_text(&format!("{secret_master}?token=not-a-token")).await;
    assert_eq!(status, 403, "a forged token must be refused");

    // A channel turned private is enforced at the edge that already serves it (within the
    // policy refresh interval), and public again once turned back.
    let channel_url = format!("{}/v1/channels/show", cp.base);
    let set_private = |private: bool, expect: u16, what: &'static str| {
        let (channel_url, session, show_playlist) = (&channel_url, &session, &show_playlist);
        async move {
            let patch = json!({ "private": private });
            let (status, body) = http_json("PATCH", channel_url, Some(session), Some(patch)).await;
            assert_eq!(status, 200, "{body}");
            wait_for(what, Duration::from_secs(30), || async {
                (http_text(show_playlist).await.0 == expect).then_some(())
            })
            .await;
        }
    };
    set_private(true, 403, "the edge to refuse the now-private channel").await;
    set_private(false, 200, "the edge to serve the channel publicly again").await;

    // A revoked key is refused at the next publish.
    let (status, body) =
        http_json("DELETE", &format!("{}/v1/channels/show/stream-key", cp.base), Some(&session), None).await;
    assert_eq!(status, 200, "{body}");
    let mut refused = ffmpeg_publish(&format!("rtmp://{}/live/{public_key}", origin.rtmp_addr), 5);
    let exit = refused.wait_exit(Duration::from_secs(20)).await.expect("refused publisher exits");
    assert!(!exit.success(), "a revoked key must not publish");

    // The control plane goes away: the live channel keeps flowing to the viewer.
    let before = {
        let (_, text) = http_text(&show_playlist).await;
        let p = parse_media_playlist(&text);
        p.media_sequence + p.segments.len() as u64
    };
    let cp_base = cp.base.clone();
    tokio::task::spawn_blocking(move || cp.kill()).await.unwrap();
    // Dropping its runtime closes the listener, not necessarily before we look.
    let addr = cp_base.trim_start_matches("http://").to_string();
    wait_for("the killed control plane to refuse connections", Duration::from_secs(10), || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(addr).await.is_err().then_some(()) }
    })
    .await;
    wait_for("new segments at the edge with the control plane down", Duration::from_secs(20), || async {
        let (status, text) = http_text(&show_playlist).await;
        let p = parse_media_playlist(&text);
        (status == 200 && p.media_sequence + p.segments.len() as u64 >= before + 2).then_some(())
    })
    .await;
    decodes(&show).expect("still decodes with the control plane down");
    edge.stop().await;
    origin.stop().await;
}
