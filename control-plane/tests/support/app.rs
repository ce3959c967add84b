//! An in-process control plane driven with `tower::ServiceExt::oneshot`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use skyrelay_control_plane::{App, ControlPlaneConfig};
use tower::ServiceExt;

pub const NODE_SECRET: &str = "test-node-secret-0123456789";

pub struct TestApp {
    pub app: App,
    pub router: Router,
    pub registry: prometheus::Registry,
    pub peer: SocketAddr,
}

pub struct Resp {
    pub status: StatusCode,
    pub json: Value,
    pub headers: HeaderMap,
}

impl TestApp {
    /// A control plane on `database_url` with extra TOML config.
    pub async fn new(database_url: &str, extra: &str) -> TestApp {
        let text = format!("database_url = \"{database_url}\"\nnode_secret = \"{NODE_SECRET}\"\n{extra}");
        let cfg: ControlPlaneConfig = skyrelay_common::config::from_toml(&text).expect("config");
        let registry = prometheus::Registry::new();
        let app = App::new(cfg, &registry).await.expect("app");
        let router = app.router();
        TestApp { app, router, registry, peer: "203.0.113.9:5555".parse().unwrap() }
    }

    /// Sends a request; `auth` is a full Authorization header value.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = match body {
            Some((ct, bytes)) => {
                b = b.header("content-type", ct);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).unwrap();
        let peer =
            headers.iter().find(|(k, _)| *k == "x-test-peer").map_or(self.peer, |(_, v)| v.parse().unwrap());
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_client_error() || status.is_server_error() {
            assert!(
                json.get("error").and_then(Value::as_str).is_some(),
                "{status} without a JSON error body: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Resp { status, json, headers }
    }

    pub async fn call(&self, method: Method, path: &str, auth: Option<&str>, body: Option<Value>) -> Resp {
        let body = body.map(|v| ("application/json", serde_json::to_vec(&v).unwrap()));
        self.raw(method, path, auth, &[], body).await
    }

    pub async fn node(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call(method, path, Some(&format!("Node {NODE_SECRET}")), body).await
    }

    /// Registers `username` and logs in; returns "Bearer <token>".
    pub async fn user(&self, username: &str) -> String {
        let creds = serde_json::json!({"username": username, "password": "correct horse battery"});
        let r = self.call(Method::POST, "/v1/users", None, Some(creds.clone())).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
        self.login(username, "correct horse battery").await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/sessions",
                None,
                Some(serde_json::json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
        format!("Bearer {}", r.json["token"].as_str().unwrap())
    }

    /// Registers a node and returns nothing; `rtmp` only for origins.
    pub async fn register_node(&self, name: &str, role: &str, region: &str) {
        let mut body = serde_json::json!({"name": name, "role": role, "region": region,
            "public_url": format!("http://{name}.test:8080")});
        if role == "origin" {
            body["rtmp_url"] = format!("rtmp://{name}.test:1935/live").into();
            body["relay_addr"] = format!("{name}.test:4433").into();
        }
        let r = self.node(Method::POST, "/v1/nodes", Some(body)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    }
}
