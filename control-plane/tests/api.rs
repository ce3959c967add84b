//! API tests, every scenario run against SQLite and against PostgreSQL.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use skyrelay_common::cpapi::token::Presented;
use skyrelay_common::cpapi::{Heartbeat, KeyRing, KeySet, TokenError};
use skyrelay_control_plane::create_admin;
use support::app::TestApp;

async fn users(url: String) {
    let mut t = TestApp::new(&url, "login_max_failures = 3").await;
    let alice = t.user("alice").await;
    let r = t.call(Method::GET, "/v1/me", Some(&alice), None).await;
    assert_eq!(
        (r.status, r.json["username"].as_str(), r.json["role"].as_str()),
        (StatusCode::OK, Some("alice"), Some("streamer"))
    );
    // Duplicate, short password, bad name, unknown field, role escalation.
    let dup = t
        .call(
            Method::POST,
            "/v1/users",
            None,
            Some(json!({"username": "alice", "password": "another password"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    for bad in [
        json!({"username": "bob", "password": "short"}),
        json!({"username": "b/b", "password": "long enough"}),
        json!({"username": "bob", "password": "long enough", "extra": 1}),
        json!({"username": 5, "password": "long enough"}),
    ] {
        assert_eq!(t.call(Method::POST, "/v1/users", None, Some(bad)).await.status, StatusCode::BAD_REQUEST);
    }
    let esc = t
        .call(
            Method::POST,
            "/v1/users",
            Some(&alice),
            Some(json!({"username": "mallory", "password": "long enough", "role": "admin"})),
        )
        .await;
    assert_eq!(esc.status, StatusCode::FORBIDDEN);
    // Wrong password, then the rate limit.
    for _ in 0..3 {
        let r = t
            .call(
                Method::POST,
                "/v1/sessions",
                None,
                Some(json!({"username": "alice", "password": "wrong password"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let limited = t
        .call(
            Method::POST,
            "/v1/sessions",
            None,
            Some(json!({"username": "alice", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    // The client address is limited too: another user from it is refused, from elsewhere not.
    let other = t
        .call(
            Method::POST,
            "/v1/sessions",
            None,
            Some(json!({"username": "root", "password": "whatever pw"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::TOO_MANY_REQUESTS);
    t.peer = "198.51.100.7:4000".parse().unwrap();
    // Logout ends the session.
    assert_eq!(
        t.call(Method::DELETE, "/v1/sessions", Some(&alice), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(t.call(Method::GET, "/v1/me", Some(&alice), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        t.call(Method::GET, "/v1/me", Some("Bearer nonsense"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // First admin: password shown once, logs in, is admin; the name cannot be reused.
    let pw = create_admin(t.app.store(), "root").await.unwrap();
    assert!(pw.len() >= 32);
    assert!(create_admin(t.app.store(), "root").await.is_err());
    let root = t.login("root", &pw).await;
    assert_eq!(t.call(Method::GET, "/v1/me", Some(&root), None).await.json["role"], "admin");
    let r = t
        .call(
            Method::POST,
            "/v1/users",
            Some(&root),
            Some(json!({"username": "ops", "password": "long enough", "role": "admin"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

async fn channels_and_keys(url: String) {
    let t = TestApp::new(&url, "").await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let r = t
        .call(Method::POST, "/v1/channels", Some(&alice), Some(json!({"name": "news", "private": true})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!((r.json["private"].as_bool(), r.json["recording"].as_bool()), (Some(true), Some(false)));
    assert_eq!(
        t.call(Method::POST, "/v1/channels", Some(&bob), Some(json!({"name": "news"}))).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        t.call(Method::POST, "/v1/channels", None, Some(json!({"name": "x"}))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = t.call(Method::PATCH, "/v1/channels/news", Some(&alice), Some(json!({"recording": true}))).await;
    assert_eq!(
        (r.status, r.json["recording"].as_bool(), r.json["private"].as_bool()),
        (StatusCode::OK, Some(true), Some(true))
    );
    assert_eq!(
        t.call(Method::GET, "/v1/channels/news", Some(&bob), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(Method::GET, "/v1/channels/nope", Some(&bob), None).await.status,
        StatusCode::NOT_FOUND
    );
    let list = t.call(Method::GET, "/v1/channels", Some(&alice), None).await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(1));
    assert_eq!(t.call(Method::GET, "/v1/channels", Some(&bob), None).await.json, json!([]));

    // Stream key: shown once, authorises a publish; a user session cannot act as a node.
    let k = t.call(Method::POST, "/v1/channels/news/stream-key", Some(&alice), None).await;
    assert_eq!(k.status, StatusCode::CREATED);
    let key1 = k.json["stream_key"].as_str().unwrap().to_string();
    assert_eq!(key1.len(), 43, "32 random bytes, base64url");
    let auth = |key: &str| json!({"stream_key": key, "node": "origin-1"});
    let g = t.node(Method::POST, "/v1/publish/authorize", Some(auth(&key1))).await;
    assert_eq!(
        (g.status, g.json["channel"].as_str(), g.json["recording"].as_bool()),
        (StatusCode::OK, Some("news"), Some(true))
    );
    let as_user = t.call(Method::POST, "/v1/publish/authorize", Some(&alice), Some(auth(&key1))).await;
    assert_eq!(as_user.status, StatusCode::UNAUTHORIZED);
    let wrong_secret =
        t.call(Method::POST, "/v1/publish/authorize", Some("Node wrong"), Some(auth(&key1))).await;
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    // Rotation: the old key stops working.
    let key2 =
        t.call(Method::POST, "/v1/channels/news/stream-key", Some(&alice), None).await.json["stream_key"]
            .as_str()
            .unwrap()
            .to_string();
    assert_ne!(key1, key2);
    assert_eq!(
        t.node(Method::POST, "/v1/publish/authorize", Some(auth(&key1))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.node(Method::POST, "/v1/publish/authorize", Some(auth(&key2))).await.status, StatusCode::OK);
    // Revocation.
    let rv = t.call(Method::DELETE, "/v1/channels/news/stream-key", Some(&alice), None).await;
    assert_eq!(rv.json["revoked"], 1);
    assert_eq!(
        t.node(Method::POST, "/v1/publish/authorize", Some(auth(&key2))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.node(Method::POST, "/v1/publish/authorize", Some(auth(""))).await.status,
        StatusCode::FORBIDDEN
    );
    // Delete.
    assert_eq!(
        t.call(Method::DELETE, "/v1/channels/news", Some(&bob), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.call(Method::DELETE, "/v1/channels/news", Some(&alice), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.call(Method::GET, "/v1/channels/news", Some(&alice), None).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A content type and body bytes.
type Body<'a> = (&'a str, Vec<u8>);

async fn malformed_input(url: String) {
    let t = TestApp::new(&url, "").await;
    let alice = t.user("alice").await;
    let json_ct = "application/json";
    let cases: Vec<(Method, &str, Option<Body<'_>>)> = vec![
        (Method::POST, "/v1/channels", Some((json_ct, b"{not json".to_vec()))),
        (Method::POST, "/v1/channels", Some((json_ct, b"[]".to_vec()))),
        (Method::POST, "/v1/channels", Some((json_ct, vec![0xff, 0xfe, 0x00]))),
        (Method::POST, "/v1/channels", Some(("text/plain", b"{\"name\":\"x\"}".to_vec()))),
        (Method::POST, "/v1/channels", None),
        (Method::POST, "/v1/channels", Some((json_ct, vec![b' '; 100_000]))),
        (Method::POST, "/v1/channels", Some((json_ct, br#"{"name": "../etc"}"#.to_vec()))),
        (Method::POST, "/v1/channels", Some((json_ct, br#"{"name": "ok", "private": "yes"}"#.to_vec()))),
        (Method::GET, "/v1/channels/%ff%fe", None),
        (Method::GET, "/v1/channels?limit=-1", None),
        (Method::GET, "/v1/route/play/%00", None),
        (Method::GET, "/v1/route/ingest?region=a&region=b&x=1", None),
        (Method::GET, "/v1/nowhere", None),
        (Method::PUT, "/v1/channels", None),
        (Method::GET, "/v1/channels/news/where?wait=abc", None),
        (Method::POST, "/v1/nodes/x/heartbeat", Some((json_ct, b"{\"cpu\": \"hot\"}".to_vec()))),
    ];
    for (m, path, body) in cases {
        let r = t.raw(m.clone(), path, Some(&alice), &[], body).await;
        assert!(r.status.is_client_error(), "{m} {path}: {}", r.status);
    }
    // Node-only endpoints with malformed bodies.
    let secret = format!("Node {}", support::app::NODE_SECRET);
    for body in [
        &b"{}"[..],
        b"{\"name\":\"n\",\"role\":\"router\",\"region\":\"r\",\"public_url\":\"http://x\"}",
        b"{\"name\":\"n\",\"role\":\"edge\",\"region\":\"r\",\"public_url\":\"ftp://x\"}",
    ] {
        let r = t.raw(Method::POST, "/v1/nodes", Some(&secret), &[], Some((json_ct, body.to_vec()))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = t.raw(Method::GET, "/v1/openapi.json", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["paths"]["/v1/channels"].is_object());
    // Every documented path and method is routed (no "route not found"/405 answer).
    let doc: serde_json::Value = serde_json::from_str(skyrelay_control_plane::api::OPENAPI).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            let concrete = path.replace("{name}", "x").replace("{channel}", "x");
            let m: Method = method.to_uppercase().parse().unwrap();
            let r = t.raw(m.clone(), &concrete, None, &[], None).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            assert_ne!(r.json["error"], "route not found", "{m} {path}");
        }
    }
    // Requests are counted by route and status.
    let text = prometheus::TextEncoder::new().encode_to_string(&t.registry.gather()).unwrap();
    assert!(
        text.contains(r#"skyrelay_control_plane_http_requests_total{route="/v1/channels",status="400"}"#),
        "{text}"
    );
}

async fn nodes_live_and_where(url: String) {
    let t = TestApp::new(&url, "").await;
    let alice = t.user("alice").await;
    t.call(Method::POST, "/v1/channels", Some(&alice), Some(json!({"name": "show"}))).await;
    t.register_node("origin-1", "origin", "local").await;
    t.register_node("origin-2", "origin", "local").await;
    t.register_node("edge-1", "edge", "local").await;
    let hb = t
        .node(
            Method::POST,
            "/v1/nodes/edge-1/heartbeat",
            Some(json!({"viewers": 5, "egress_bps": 1000, "cpu": 0.3})),
        )
        .await;
    assert_eq!(hb.json["known"], true);
    assert_eq!(t.node(Method::POST, "/v1/nodes/ghost/heartbeat", Some(json!({}))).await.json["known"], false);
    // Viewer/streamer sessions cannot heartbeat or register.
    assert_eq!(
        t.call(Method::POST, "/v1/nodes/edge-1/heartbeat", Some(&alice), Some(json!({}))).await.status,
        StatusCode::UNAUTHORIZED
    );

    let w = t.node(Method::GET, "/v1/channels/show/where", None).await;
    assert_eq!((w.json["version"].as_u64(), w.json["origin"].is_null()), (Some(0), true));
    let live = |node: &str| json!({"channel": "show", "node": node});
    assert_eq!(
        t.node(Method::POST, "/v1/live", Some(live("edge-1"))).await.status,
        StatusCode::FORBIDDEN,
        "edges don't report live"
    );
    assert_eq!(
        t.node(Method::POST, "/v1/live", Some(json!({"channel": "nope", "node": "origin-1"}))).await.status,
        StatusCode::NOT_FOUND
    );
    let r = t.node(Method::POST, "/v1/live", Some(live("origin-1"))).await;
    assert_eq!((r.json["version"].as_u64(), r.json["origin"]["name"].as_str()), (Some(1), Some("origin-1")));
    assert_eq!(r.json["origin"]["relay_addr"], "origin-1.test:4433");

    // Long-poll: held while nothing changes, woken by a change.
    let started = std::time::Instant::now();
    let held = t.node(Method::GET, "/v1/channels/show/where?version=1&wait=300", None).await;
    assert_eq!(held.json["version"], 1);
    assert!(started.elapsed() >= Duration::from_millis(250), "returned early: {:?}", started.elapsed());
    let waiter = {
        let t2 = TestApp {
            app: t.app.clone(),
            router: t.router.clone(),
            registry: t.registry.clone(),
            peer: t.peer,
        };
        tokio::spawn(async move {
            t2.node(Method::GET, "/v1/channels/show/where?version=1&wait=20000", None).await.json
        })
    };
    // The failover: the stream moves to origin-2 (the waiter may or may not be waiting yet;
    // either way it must see version 2).
    let moved = t.node(Method::POST, "/v1/live", Some(live("origin-2"))).await;
    assert_eq!(moved.json["version"], 2);
    let woke =
        tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("long-poll not woken").unwrap();
    assert_eq!((woke["version"].as_u64(), woke["origin"]["name"].as_str()), (Some(2), Some("origin-2")));
    // A late "ended" from the old origin does not end the moved stream.
    let stale = t.node(Method::POST, "/v1/live/ended", Some(live("origin-1"))).await;
    assert_eq!(stale.json["origin"]["name"], "origin-2");
    let ended = t.node(Method::POST, "/v1/live/ended", Some(live("origin-2"))).await;
    assert_eq!((ended.json["version"].as_u64(), ended.json["origin"].is_null()), (Some(3), true));

    // Admin listing shows health.
    let pw = create_admin(t.app.store(), "root").await.unwrap();
    let root = t.login("root", &pw).await;
    assert_eq!(t.call(Method::GET, "/v1/nodes", Some(&alice), None).await.status, StatusCode::FORBIDDEN);
    let nodes = t.call(Method::GET, "/v1/nodes", Some(&root), None).await;
    assert_eq!(nodes.json.as_array().map(Vec::len), Some(3));
    assert!(nodes.json.as_array().unwrap().iter().all(|n| n["healthy"] == true));
    t.app.maintain().await.unwrap();
    let text = prometheus::TextEncoder::new().encode_to_string(&t.registry.gather()).unwrap();
    assert!(
        text.contains(r#"skyrelay_control_plane_nodes_healthy{region="local",role="origin"} 2"#),
        "{text}"
    );
    assert!(text.contains("skyrelay_control_plane_live_channels 0"), "{text}");
}

const REGIONS: &str = r#"
trusted_proxies = ["127.0.0.1/32"]
[[regions]]
name = "eu"
cidrs = ["10.1.0.0/16"]
distances = { us = 80 }
[[regions]]
name = "us"
cidrs = ["10.2.0.0/16"]
distances = { eu = 80 }
"#;

async fn routing_and_tokens(url: String) {
    let t = TestApp::new(&url, REGIONS).await;
    let alice = t.user("alice").await;
    t.call(Method::POST, "/v1/channels", Some(&alice), Some(json!({"name": "open"}))).await;
    t.call(Method::POST, "/v1/channels", Some(&alice), Some(json!({"name": "secret", "private": true})))
        .await;
    assert_eq!(
        t.call(Method::GET, "/v1/route/play/open", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for (name, region) in [("eu-1", "eu"), ("eu-2", "eu"), ("us-1", "us")] {
        t.register_node(name, "edge", region).await;
    }
    t.register_node("origin-eu", "origin", "eu").await;
    t.register_node("origin-us", "origin", "us").await;

    let play = |path: &str, peer: &str, xff: Option<&str>| {
        let mut h = vec![("x-test-peer", peer.to_string())];
        if let Some(x) = xff {
            h.push(("x-forwarded-for", x.to_string()));
        }
        let path = path.to_string();
        let t = &t;
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            t.raw(Method::GET, &path, None, &h, None).await
        }
    };
    // Region from the hint, from the CIDR table, from X-Forwarded-For of a trusted proxy only.
    assert_eq!(play("/v1/route/play/open?region=us", "10.1.0.5:1", None).await.json["region"], "us");
    assert_eq!(play("/v1/route/play/open", "10.1.0.5:1", None).await.json["region"], "eu");
    assert_eq!(play("/v1/route/play/open", "127.0.0.1:1", Some("10.2.9.9")).await.json["region"], "us");
    assert_eq!(
        play("/v1/route/play/open", "10.1.0.5:1", Some("10.2.9.9")).await.json["region"],
        "eu",
        "untrusted proxy"
    );
    let r = play("/v1/route/play/open", "10.1.0.5:1", None).await;
    assert!(r.json["url"].as_str().unwrap().ends_with("/live/open/master.m3u8"), "{:?}", r.json);
    assert!(r.json["token"].is_null(), "public channels need no token");
    // Ingest: nearest healthy origin.
    let ing = play("/v1/route/ingest", "10.2.0.1:1", None).await;
    assert_eq!(
        (ing.json["node"].as_str(), ing.json["url"].as_str()),
        (Some("origin-us"), Some("rtmp://origin-us.test:1935/live"))
    );

    // Unhealthy edges are never chosen; an empty region falls back to the nearest one.
    t.app.store().heartbeat("eu-1", &Heartbeat::default(), 0).await.unwrap();
    for i in 0..50 {
        let r = play(&format!("/v1/route/play/open?region=eu&n={i}"), "10.1.0.5:1", None).await;
        assert!(r.status.is_client_error() || r.json["edge"] == "eu-2", "{:?}", r.json);
    }
    t.app.store().heartbeat("eu-2", &Heartbeat::default(), 0).await.unwrap();
    let fb = play("/v1/route/play/open", "10.1.0.5:1", None).await;
    assert_eq!((fb.json["edge"].as_str(), fb.json["region"].as_str()), (Some("us-1"), Some("us")));

    // Shield edge: the same for every asker in a region, always a healthy edge of it.
    t.register_node("us-2", "edge", "us").await;
    let w1 = t.node(Method::GET, "/v1/channels/open/where?region=us", None).await;
    let w2 = t.node(Method::GET, "/v1/channels/open/where?region=us", None).await;
    let shield = w1.json["shield"]["name"].as_str().unwrap().to_string();
    assert!(shield.starts_with("us-"), "{:?}", w1.json);
    assert_eq!(w2.json["shield"]["name"], shield.as_str());
    assert!(
        t.node(Method::GET, "/v1/channels/open/where?region=eu", None).await.json["shield"].is_null(),
        "no healthy eu edge"
    );
    t.register_node("us-2", "edge", "us").await;

    // Private channel: token only for signed-in users; it verifies with the published keys.
    assert_eq!(play("/v1/route/play/secret", "10.2.0.1:1", None).await.status, StatusCode::UNAUTHORIZED);
    let r = t
        .raw(Method::GET, "/v1/route/play/secret", Some(&alice), &[("x-test-peer", "10.2.0.1:1")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let token = r.json["token"].as_str().unwrap().to_string();
    assert!(r.json["url"].as_str().unwrap().ends_with(&format!("master.m3u8?token={token}")));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let at = Presented { channel: "secret", client_ip: None, region: None };
    assert!(KeyRing::new(&keys(&t).await).verify(&token, at, now).is_ok());
    let redirect =
        t.raw(Method::GET, "/play/secret", Some(&alice), &[("x-test-peer", "10.2.0.1:1")], None).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert!(redirect.headers["location"].to_str().unwrap().contains("?token="));

    // Rotation keeps the old key verifying (grace); revocation ends earlier tokens.
    let pw = create_admin(t.app.store(), "root").await.unwrap();
    let root = t.login("root", &pw).await;
    assert_eq!(
        t.call(Method::POST, "/v1/keys/rotate", Some(&alice), None).await.status,
        StatusCode::FORBIDDEN
    );
    let rot = t.call(Method::POST, "/v1/keys/rotate", Some(&root), None).await;
    assert_eq!(rot.status, StatusCode::OK);
    let set = keys(&t).await;
    assert_eq!(set.keys.len(), 2);
    assert_eq!(set.keys.iter().filter(|k| k.not_after.is_some()).count(), 1);
    assert!(KeyRing::new(&set).verify(&token, at, now).is_ok(), "rotated-out key inside its grace");
    let rv = t.call(Method::POST, "/v1/channels/secret/revoke-tokens", Some(&alice), None).await;
    assert_eq!(rv.status, StatusCode::OK);
    assert_eq!(KeyRing::new(&keys(&t).await).verify(&token, at, now), Err(TokenError::Revoked));
}

async fn keys(t: &TestApp) -> KeySet {
    serde_json::from_value(t.call(Method::GET, "/v1/keys", None, None).await.json).unwrap()
}

async fn run_all(db: impl AsyncFn(&str) -> String) {
    users(db("users").await).await;
    channels_and_keys(db("channels").await).await;
    malformed_input(db("malformed").await).await;
    nodes_live_and_where(db("live").await).await;
    routing_and_tokens(db("routing").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    run_all(async |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        support::sqlite_url(&d)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_on_postgres() {
    let pg = support::pg::PgCluster::start();
    run_all(async |name: &str| pg.create_db(&format!("api_{name}")).await).await;
}
