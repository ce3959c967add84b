//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto), optional TLS, a bounded number
//! of connections, graceful drain on shutdown, connections without a request closed
//! (`super::idle`). Plain-TCP connections write through
//! [`ZeroCopyStream`] (cached segments with `sendfile`) unless `zero_copy` is off.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Delivery;
use super::idle::{Activity, close_when_idle};
use crate::zero_copy::ZeroCopyStream;

/// Serves `delivery` on `listener` until `shutdown` completes, then stops accepting, lets
/// open connections finish for up to `drain_timeout_ms`, and closes the rest.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    delivery: Arc<Delivery>,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = delivery.config().clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper timer: its header-read timeout is armed around every request's headers.
    // Connections without a request are closed by `idle` instead, once per connection.
    builder.http2().max_concurrent_streams(cfg.max_http2_streams);
    let builder = Arc::new(builder);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshake_timeout = Duration::from_millis(cfg.tls_handshake_timeout_ms);
    let idle_limit = Duration::from_millis(cfg.header_read_timeout_ms);
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let zero_copy = cfg.zero_copy.then(|| delivery.metrics.zero_copy_bytes.clone());
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = accept(&listener, &permits) => accepted,
        };
        let (stream, peer, permit) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: back off briefly rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let delivery = delivery.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let zero_copy = zero_copy.clone();
        let activity = Arc::new(Activity::default());
        let requests = activity.clone();
        let connection = tasks.spawn(async move {
            let _permit = permit;
            let client = peer.ip();
            let service = service_fn(move |req| {
                let delivery = delivery.clone();
                let request = requests.request();
                async move {
                    let mut resp = delivery.handle(req, client).await;
                    resp.body_mut().hold_connection(request);
                    Ok::<_, Infallible>(resp)
                }
            });
            let connection = async {
                match (acceptor, zero_copy) {
                    (None, Some(sent)) => {
                        let io = TokioIo::new(ZeroCopyStream::new(stream, sent));
                        watcher.watch(builder.serve_connection(io, service).into_owned()).await
                    }
                    (None, None) => {
                        watcher
                            .watch(builder.serve_connection(TokioIo::new(stream), service).into_owned())
                            .await
                    }
                    (Some(acceptor), _) => {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                watcher
                                    .watch(builder.serve_connection(TokioIo::new(tls), service).into_owned())
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                Ok(())
                            }
                        }
                    }
                }
            };
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        tokio::spawn(close_when_idle(activity, idle_limit, connection));
    }
    drop(listener);
    let drain = Duration::from_millis(cfg.drain_timeout_ms);
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::info!(open = tasks.len(), "drain deadline passed; closing remaining connections");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}
