//! The node client (common::cpapi::client) against a served control plane on loopback:
//! register, heartbeat, authorise a publish, report live/ended, long-poll, key set; and a
//! restart on the same store keeps working for nodes.

mod support;

use std::time::Duration;

use skyrelay_common::cpapi::{ControlPlaneClient, Heartbeat, KeyRing, NodeRole, RegisterNode};
use skyrelay_control_plane::store::channels::ChannelUpdate;
use skyrelay_control_plane::{App, ControlPlaneConfig, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

struct Running {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    app: App,
}

async fn start(url: &str) -> Running {
    let text = format!("database_url = \"{url}\"\nnode_secret = \"{}\"", support::app::NODE_SECRET);
    let cfg: ControlPlaneConfig = skyrelay_common::config::from_toml(&text).unwrap();
    let app = App::new(cfg, &prometheus::Registry::new()).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    let served = app.clone();
    let task = tokio::spawn(async move {
        serve(served, listener, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Running { base, stop: Some(tx), task, app }
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("shutdown").unwrap();
    }
}

fn origin(name: &str) -> RegisterNode {
    RegisterNode {
        name: name.into(),
        role: NodeRole::Origin,
        region: "local".into(),
        public_url: format!("http://{name}:8080"),
        rtmp_url: Some(format!("rtmp://{name}:1935/live")),
        relay_addr: Some(format!("{name}:4433")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    let cp = start(&url).await;
    let client = ControlPlaneClient::new(&cp.base, support::app::NODE_SECRET);
    let intruder = ControlPlaneClient::new(&cp.base, "not-the-secret-at-all");

    assert!(intruder.register(&origin("o1")).await.unwrap_err().is_refusal());
    let reg = client.register(&origin("o1")).await.unwrap();
    assert_eq!(reg.heartbeat_interval_ms, 2000);
    assert!(client.heartbeat("o1", &Heartbeat { viewers: 1, egress_bps: 2, cpu: 0.1 }).await.unwrap().known);

    // A channel and key made through the store (the API path is covered in api.rs).
    let store = cp.app.store();
    let user =
        store.create_user("s", "x", skyrelay_control_plane::store::users::Role::Streamer, 0).await.unwrap();
    let ch = store.create_channel("show", user.id, true, false, 0).await.unwrap();
    store
        .update_channel(ch.id, &ChannelUpdate { recording: Some(true), ..Default::default() })
        .await
        .unwrap();
    let key = "a-stream-key-for-the-client-test-0123456789";
    store.rotate_stream_key(ch.id, &skyrelay_control_plane::auth::hash_secret(key), 0).await.unwrap();

    let grant = client.authorize_publish(key, "o1").await.unwrap();
    assert_eq!((grant.channel.as_str(), grant.private, grant.recording), ("show", true, true));
    let refused = client.authorize_publish("wrong", "o1").await.unwrap_err();
    assert!(refused.is_refusal(), "{refused}");

    // Long-poll through the client, woken by the live report.
    let first = client.where_is("show", None, Duration::ZERO).await.unwrap();
    assert!(first.origin.is_none());
    assert!(first.private, "edges learn that playback needs a token");
    let waiter = {
        let c = client.clone();
        let v = first.version;
        tokio::spawn(async move { c.where_is("show", Some(v), Duration::from_secs(20)).await })
    };
    let live = client.report_live("show", "o1").await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(seen.version, live.version);
    assert_eq!(seen.origin.unwrap().relay_addr.as_deref(), Some("o1:4433"));

    let keys = client.keys().await.unwrap();
    assert_eq!(keys.keys.len(), 1);
    assert!(!KeyRing::new(&keys).is_empty());

    // Control plane down: calls fail as unreachable (not refusals), so nodes keep cached state.
    cp.stop().await;
    let down = client.authorize_publish(key, "o1").await.unwrap_err();
    assert!(!down.is_refusal(), "{down}");

    // Restarted on the same store: heartbeats are known again, the live state survived.
    let cp = start(&url).await;
    let client = ControlPlaneClient::new(&cp.base, support::app::NODE_SECRET);
    assert!(client.heartbeat("o1", &Heartbeat::default()).await.unwrap().known);
    assert!(!client.heartbeat("ghost", &Heartbeat::default()).await.unwrap().known);
    let w = client.where_is("show", None, Duration::ZERO).await.unwrap();
    assert_eq!(w.origin.map(|o| o.name).as_deref(), Some("o1"));
    let ended = client.report_ended("show", "o1").await.unwrap();
    assert!(ended.origin.is_none());
    cp.stop().await;
}

/// Polls `f` until it is true or 10 s pass.
async fn eventually<F: AsyncFn() -> bool>(what: &str, f: F) {
    let check = || async { f().await.then_some(()) };
    skyrelay_testkit::poll_for(what, Duration::from_secs(10), Duration::from_millis(20), check).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_loop_re_registers_and_keys_refresh() {
    use skyrelay_common::cpapi::{TokenError, check_playback, heartbeat_loop, spawn_key_refresher};
    let dir = tempfile::tempdir().unwrap();
    let cp = start(&support::sqlite_url(dir.path())).await;
    let client = ControlPlaneClient::new(&cp.base, support::app::NODE_SECRET);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let hb = tokio::spawn(heartbeat_loop(
        client.clone(),
        origin("o9"),
        || Heartbeat { viewers: 7, egress_bps: 0, cpu: 0.0 },
        stop_rx.clone(),
    ));
    let store = cp.app.store().clone();
    eventually("registration", async || store.node("o9").await.unwrap().is_some_and(|n| n.viewers == 7))
        .await;
    // The control plane forgets the node: the loop registers it again.
    store.delete_node("o9").await.unwrap();
    eventually("re-registration", async || store.node("o9").await.unwrap().is_some()).await;

    let (keys, refresher) = spawn_key_refresher(client.clone(), stop_rx);
    let mut k = keys.clone();
    tokio::time::timeout(Duration::from_secs(10), k.wait_for(|r| !r.is_empty())).await.unwrap().unwrap();
    let ring = keys.borrow().clone();
    assert_eq!(check_playback(&ring, false, None, "show", None, None, 0), Ok(None));
    assert_eq!(check_playback(&ring, true, None, "show", None, None, 0), Err(TokenError::Missing));
    assert_eq!(check_playback(&ring, true, Some("x.y"), "show", None, None, 0), Err(TokenError::Malformed));

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), hb).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), refresher).await.unwrap().unwrap();
    cp.stop().await;
}
