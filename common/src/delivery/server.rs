//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto), optional TLS, a bounded number
//! of connections, graceful drain on shutdown, connections without a request closed
//! (`super::idle`). By default one loop per CPU, each on a thread with a single-threaded
//! runtime of its own (`DeliveryConfig::threads`). Plain-TCP connections write through
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
///
/// With `threads` above one (0: one per CPU), connections are accepted and served by that
/// many threads, each with a single-threaded runtime of its own and a handle on the same
/// listening socket: a connection stays on the thread that accepted it, so its requests
/// never move between cores. Other work of the node stays on the caller's runtime.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    delivery: Arc<Delivery>,
    shutdown: impl Future<Output = ()>,
) {
    let threads = match delivery.config().threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let permits = Arc::new(Semaphore::new(delivery.config().max_connections));
    if threads <= 1 {
        return accept_loop(listener, tls, delivery, permits, shutdown).await;
    }
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "HTTP listener cannot be shared between threads");
            return;
        }
    };
    // Drain on `shutdown`; abort if this future is dropped first (as one task would be).
    let (stop, stopped) = tokio::sync::watch::channel(Stop::Running);
    let stop = StopOnDrop(stop);
    let mut finished = Vec::with_capacity(threads);
    for i in 0..threads {
        let started = listener.try_clone().and_then(|l| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
            let (tls, delivery, permits) = (tls.clone(), delivery.clone(), permits.clone());
            let stopped = stopped.clone();
            std::thread::Builder::new().name(format!("http-{i}")).spawn(move || {
                runtime.block_on(serve_thread(l, tls, delivery, permits, stopped));
                // Dropping the runtime ends whatever its tasks still hold.
                drop(runtime);
                let _ = done.send(());
            })?;
            Ok(finished_rx)
        });
        match started {
            Ok(rx) => finished.push(rx),
            Err(e) => tracing::error!(thread = i, error = %e, "HTTP thread failed to start"),
        }
    }
    drop(listener);
    shutdown.await;
    let _ = stop.0.send(Stop::Drain);
    for rx in finished {
        let _ = rx.await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Drain,
    Abort,
}

struct StopOnDrop(tokio::sync::watch::Sender<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_if_modified(|s| {
            let running = *s == Stop::Running;
            if running {
                *s = Stop::Abort;
            }
            running
        });
    }
}

/// One serving thread: its accept loop until told to drain (then as [`serve`] does) or to
/// abort (then at once).
async fn serve_thread(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    delivery: Arc<Delivery>,
    permits: Arc<Semaphore>,
    stopped: tokio::sync::watch::Receiver<Stop>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "HTTP thread cannot use the listener");
            return;
        }
    };
    let mut drain = stopped.clone();
    let drain = async move {
        let _ = drain.wait_for(|s| *s != Stop::Running).await;
    };
    let mut abort = stopped;
    tokio::select! {
        () = accept_loop(listener, tls, delivery, permits, drain) => {}
        _ = abort.wait_for(|s| *s == Stop::Abort) => {}
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    delivery: Arc<Delivery>,
    permits: Arc<Semaphore>,
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
