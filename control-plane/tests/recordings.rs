//! The recordings catalog against SQLite and PostgreSQL: origins report, users list, read
//! and delete by channel visibility, origins fetch deletions and confirm the purge.

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::app::TestApp;

fn report(channel: &str, recording: &str, status: &str) -> Value {
    json!({"channel": channel, "recording": recording, "node": "o1", "started_ms": 1_000,
           "ended_ms": null, "duration_ms": 0, "bytes": 0, "segment_count": 0, "status": status,
           "location": "s3://vod/", "playlist": format!("recordings/{channel}/{recording}/index.m3u8")})
}

async fn catalog(url: String) {
    let t = TestApp::new(&url, "").await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    for (name, private) in [("pub", false), ("priv", true)] {
        let r = t
            .call(Method::POST, "/v1/channels", Some(&alice), Some(json!({"name": name, "private": private})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Only registered origins report, only for existing channels, only with sane figures.
    let r = t.node(Method::PUT, "/v1/recordings", Some(report("pub", "20261124T150000Z", "recording"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.json);
    t.register_node("e1", "edge", "eu").await;
    t.register_node("o1", "origin", "eu").await;
    let mut from_edge = report("pub", "20261124T150000Z", "recording");
    from_edge["node"] = "e1".into();
    assert_eq!(t.node(Method::PUT, "/v1/recordings", Some(from_edge)).await.status, StatusCode::FORBIDDEN);
    let r =
        t.node(Method::PUT, "/v1/recordings", Some(report("nope", "20261124T150000Z", "recording"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let mut negative = report("pub", "20261124T150000Z", "recording");
    negative["bytes"] = (-1).into();
    assert_eq!(t.node(Method::PUT, "/v1/recordings", Some(negative)).await.status, StatusCode::BAD_REQUEST);
    let mut bad_status = report("pub", "20261124T150000Z", "recording");
    bad_status["status"] = "lost".into();
    assert_eq!(t.node(Method::PUT, "/v1/recordings", Some(bad_status)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        t.call(Method::PUT, "/v1/recordings", Some(&alice), Some(report("pub", "x", "recording")))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Create, then update to complete; a second recording and one on the private channel.
    let r = t.node(Method::PUT, "/v1/recordings", Some(report("pub", "20261124T150000Z", "recording"))).await;
    assert_eq!((r.status, r.json["id"].as_str()), (StatusCode::OK, Some("pub-20261124T150000Z")));
    let mut done = report("pub", "20261124T150000Z", "complete");
    done["ended_ms"] = 31_000.into();
    done["duration_ms"] = 30_000.into();
    done["bytes"] = 4_000_000.into();
    done["segment_count"] = 15.into();
    let r = t.node(Method::PUT, "/v1/recordings", Some(done)).await;
    assert_eq!((r.json["status"].as_str(), r.json["segment_count"].as_i64()), (Some("complete"), Some(15)));
    let mut later = report("pub", "20261124T160000Z", "partial");
    later["started_ms"] = 2_000.into();
    later["reason"] = "publisher vanished".into();
    assert_eq!(t.node(Method::PUT, "/v1/recordings", Some(later)).await.status, StatusCode::OK);
    let r =
        t.node(Method::PUT, "/v1/recordings", Some(report("priv", "20261124T150000Z", "uploading"))).await;
    assert_eq!(r.status, StatusCode::OK);

    // Public channel: anyone lists and reads, newest first.
    let r = t.call(Method::GET, "/v1/channels/pub/recordings", None, None).await;
    let ids: Vec<_> =
        r.json.as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, ["pub-20261124T160000Z", "pub-20261124T150000Z"]);
    let r = t.call(Method::GET, "/v1/recordings/pub-20261124T150000Z", None, None).await;
    assert_eq!((r.status, r.json["duration_ms"].as_i64()), (StatusCode::OK, Some(30_000)));
    let r = t.call(Method::GET, "/v1/recordings/pub-20261124T160000Z", None, None).await;
    assert_eq!(r.json["reason"].as_str(), Some("publisher vanished"));
    // Private channel: owner only.
    let path = "/v1/channels/priv/recordings";
    assert_eq!(t.call(Method::GET, path, None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.call(Method::GET, path, Some(&bob), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.call(Method::GET, path, Some(&alice), None).await.json.as_array().map(Vec::len), Some(1));
    let one = "/v1/recordings/priv-20261124T150000Z";
    assert_eq!(t.call(Method::GET, one, Some(&bob), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.call(Method::GET, one, Some(&alice), None).await.status, StatusCode::OK);
    // Nodes (edges serving VOD) read any entry, and find origins' addresses in the node list.
    let r = t.node(Method::GET, one, None).await;
    assert_eq!((r.status, r.json["channel"].as_str()), (StatusCode::OK, Some("priv")));
    let r = t.node(Method::GET, "/v1/nodes", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let o1 = r.json.as_array().unwrap().iter().find(|n| n["name"] == "o1").cloned().expect("o1 listed");
    assert_eq!(o1["role"].as_str(), Some("origin"));
    assert!(o1["public_url"].as_str().is_some_and(|u| u.starts_with("http")), "{o1}");
    assert_eq!(t.call(Method::GET, "/v1/nodes", Some(&bob), None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.call(Method::GET, "/v1/nodes", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.call(Method::GET, "/v1/recordings/none", None, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.call(Method::GET, "/v1/recordings/a%2Fb", None, None).await.status, StatusCode::BAD_REQUEST);

    // Delete: owner only; the entry leaves listings and the origin is told to purge.
    let del = "/v1/recordings/pub-20261124T150000Z";
    assert_eq!(t.call(Method::DELETE, del, None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(t.call(Method::DELETE, del, Some(&bob), None).await.status, StatusCode::FORBIDDEN);
    let r = t.call(Method::DELETE, del, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.json["deleted_at"].as_i64().is_some());
    assert_eq!(t.call(Method::GET, del, None, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(t.call(Method::DELETE, del, Some(&alice), None).await.status, StatusCode::NOT_FOUND);
    let r = t.call(Method::GET, "/v1/channels/pub/recordings", None, None).await;
    assert_eq!(r.json.as_array().map(Vec::len), Some(1));
    // A late report from the origin does not bring it back.
    let r = t.node(Method::PUT, "/v1/recordings", Some(report("pub", "20261124T150000Z", "complete"))).await;
    assert!(r.json["deleted_at"].as_i64().is_some());
    assert_eq!(t.call(Method::GET, del, None, None).await.status, StatusCode::NOT_FOUND);
    let pending = t.node(Method::GET, "/v1/nodes/o1/deleted-recordings", None).await;
    assert_eq!(pending.json[0]["id"].as_str(), Some("pub-20261124T150000Z"));
    assert_eq!(pending.json[0]["location"].as_str(), Some("s3://vod/"));
    assert_eq!(
        t.call(Method::GET, "/v1/nodes/o1/deleted-recordings", Some(&alice), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Purging a recording that is not deleted is refused; the deleted one goes.
    let live = "/v1/recordings/pub-20261124T160000Z/purged";
    assert_eq!(t.node(Method::POST, live, None).await.status, StatusCode::NOT_FOUND);
    let r = t.node(Method::POST, "/v1/recordings/pub-20261124T150000Z/purged", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let pending = t.node(Method::GET, "/v1/nodes/o1/deleted-recordings", None).await;
    assert_eq!(pending.json.as_array().map(Vec::len), Some(0));
    // Once purged, the same recording may be reported again.
    let r = t.node(Method::PUT, "/v1/recordings", Some(report("pub", "20261124T150000Z", "complete"))).await;
    assert_eq!((r.status, r.json["deleted_at"].as_i64()), (StatusCode::OK, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    catalog(support::sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_on_postgres() {
    let pg = support::pg::PgCluster::start();
    catalog(pg.create_db("recordings").await).await;
}
