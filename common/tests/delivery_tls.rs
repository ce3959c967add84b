//! TLS with HTTP/2 (ALPN), and the graceful drain with a deadline.

mod delivery_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use delivery_support::*;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus::Registry;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use skyrelay_common::delivery::{Delivery, DeliveryConfig, serve};
use skyrelay_common::hub::Hub;
use tokio::sync::oneshot;

#[tokio::test]
async fn serves_http2_over_tls() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let mut server_cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let hub = Arc::new(Hub::new(window_config()));
    let r = hub.open(CHANNEL, "source").unwrap();
    init(&r);
    segments(&r, 0, 1);
    let delivery = Arc::new(Delivery::new(hub, DeliveryConfig::default(), &Registry::new(), "tls").unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Some(Arc::new(server_cfg)), delivery, async move {
        let _ = stopped.await;
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    client_cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(format!("https://localhost:{}/live/live1/source/seg-0.m4s", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), 4 * 2 * chunk_bytes(0, 0, 0).len());
    drop(send);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap();
    let _ = conn.await;
}

#[tokio::test]
async fn shutdown_waits_for_held_requests_at_most_the_drain_deadline() {
    let cfg = DeliveryConfig { hold_deadline_ms: 60_000, drain_timeout_ms: 300, ..Default::default() };
    let srv = start(cfg).await;
    let r = srv.source();
    init(&r);
    segments(&r, 0, 1);
    let c = client();
    let url = srv.url("/live/live1/source/index.m3u8?_HLS_msn=1");
    let held = tokio::spawn(async move {
        let req = http::Request::get(url).body(Empty::<Bytes>::new()).unwrap();
        c.request(req).await.map(|r| r.status())
    });
    srv.wait_metric("http_active_requests", &[], 1.0).await;
    let started = tokio::time::Instant::now();
    srv.stop().await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "drained for {took:?}");
    assert!(took < Duration::from_secs(5), "drain deadline respected: {took:?}");
    let outcome = tokio::time::timeout(Duration::from_secs(5), held).await.unwrap().unwrap();
    assert!(outcome.is_err(), "the held request was cut at the deadline: {outcome:?}");
}
