//! Store tests, run against SQLite and PostgreSQL.

mod support;

use skyrelay_common::cpapi::{Heartbeat, NodeRole, RegisterNode};
use skyrelay_control_plane::store::channels::ChannelUpdate;
use skyrelay_control_plane::store::users::Role;
use skyrelay_control_plane::store::{Store, StoreError};

async fn exercise(store: &Store) {
    // Migrating twice is a no-op.
    store.migrate().await.unwrap();

    let u = store.create_user("alice", "hash", Role::Streamer, 1).await.unwrap();
    assert_eq!(u.username, "alice");
    assert!(matches!(store.create_user("alice", "x", Role::Admin, 1).await, Err(StoreError::Conflict)));
    let (cu, h) = store.user_credentials("alice").await.unwrap().unwrap();
    assert_eq!((cu.id, h.as_str()), (u.id, "hash"));
    assert_eq!(store.count_role(Role::Admin).await.unwrap(), 0);

    store.create_session("th", u.id, 100).await.unwrap();
    assert_eq!(store.session_user("th", 50).await.unwrap().unwrap().id, u.id);
    assert!(store.session_user("th", 100).await.unwrap().is_none(), "expired");
    assert_eq!(store.purge_sessions(100).await.unwrap(), 1);

    let c = store.create_channel("news", u.id, true, false, 5).await.unwrap();
    assert!(c.private && !c.recording);
    let c2 =
        store.update_channel(c.id, &ChannelUpdate { private: None, recording: Some(true) }).await.unwrap();
    assert!(c2.private && c2.recording);
    assert_eq!(store.list_channels(Some(u.id), 10).await.unwrap().len(), 1);
    assert_eq!(store.list_channels(None, 10).await.unwrap().len(), 1);

    store.rotate_stream_key(c.id, "k1", 6).await.unwrap();
    assert_eq!(store.channel_by_key_hash("k1").await.unwrap().unwrap().0.name, "news");
    store.rotate_stream_key(c.id, "k2", 7).await.unwrap();
    assert!(store.channel_by_key_hash("k1").await.unwrap().is_none(), "rotated out");
    assert_eq!(store.revoke_stream_keys(c.id, 8).await.unwrap(), 1);
    assert!(store.channel_by_key_hash("k2").await.unwrap().is_none(), "revoked");

    store.revoke_channel_tokens(c.id, 1234).await.unwrap();
    assert_eq!(store.token_revocations().await.unwrap(), vec![("news".to_string(), 1234)]);

    let reg = RegisterNode {
        name: "o1".into(),
        role: NodeRole::Origin,
        region: "eu".into(),
        public_url: "http://o1".into(),
        rtmp_url: Some("rtmp://o1/live".into()),
        relay_addr: None,
    };
    store.upsert_node(&reg, 10).await.unwrap();
    store.upsert_node(&reg, 11).await.unwrap();
    assert!(store.heartbeat("o1", &Heartbeat { viewers: 3, egress_bps: 9, cpu: 0.5 }, 20).await.unwrap());
    assert!(!store.heartbeat("nope", &Heartbeat::default(), 20).await.unwrap());
    let n = store.node("o1").await.unwrap().unwrap();
    assert_eq!((n.last_heartbeat, n.viewers, n.cpu, n.relay_addr.clone()), (20, 3, 0.5, None));
    assert!(n.healthy(25, 10) && !n.healthy(31, 10));

    let e = store.set_live("news", Some("o1"), None, 30).await.unwrap();
    assert_eq!(e.version, 1);
    let same = store.set_live("news", Some("o1"), None, 31).await.unwrap();
    assert_eq!(same.version, 1, "no change, no bump");
    let stale = store.set_live("news", None, Some("o2"), 32).await.unwrap();
    assert_eq!((stale.version, stale.node.as_deref()), (1, Some("o1")), "ended from another origin ignored");
    let ended = store.set_live("news", None, Some("o1"), 33).await.unwrap();
    assert_eq!((ended.version, ended.node), (2, None));
    assert_eq!(store.live_count().await.unwrap(), 0);

    store.delete_channel(c.id).await.unwrap();
    assert!(store.channel("news").await.unwrap().is_none());
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&support::sqlite_url(dir.path())).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

/// The SQLite database is in WAL mode (kept in the file: a fresh connection reports it), so
/// readers and the writer do not block each other.
#[tokio::test]
async fn sqlite_store_uses_write_ahead_logging() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    let store = Store::open(&url).await.unwrap();
    store.create_user("walter", "hash", Role::Streamer, 1).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    conn.close().await.unwrap();
    store.close().await;
}

/// Live reports of many channels at once, as origins send them, all succeed on SQLite: a
/// transaction that reads and then writes takes the write lock at its start instead of
/// failing "database is locked" when another connection wrote in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_live_reports_do_not_fail_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::open(&support::sqlite_url(dir.path())).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            let channel = format!("ch{}", i % 16);
            store.set_live(&channel, Some("o1"), None, i).await?;
            store.set_live(&channel, None, Some("o1"), i + 1).await
        });
    }
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.unwrap() {
            failed.push(e.to_string());
        }
    }
    assert!(failed.is_empty(), "{} of 64 failed, e.g. {:?}", failed.len(), failed.first());
    store.close().await;
}

#[tokio::test]
async fn store_on_postgres() {
    let pg = support::pg::PgCluster::start();
    let url = pg.create_db("store_test").await;
    let store = Store::open(&url).await.unwrap();
    exercise(&store).await;
    store.close().await;
}
