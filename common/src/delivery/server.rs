//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util auto), optional TLS, a bounded number
//! of connections, graceful drain on shutdown, connections without a request closed
//! (`super::idle`). By default one loop per CPU, each on a thread with a single-threaded
//! runtime of its own (`DeliveryConfig::threads`). Plain-TCP connections write through
//! [`ZeroCopyStream`] (cached segments with `sendfile`) unless `zero_copy` is off.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::idle::{Activity, close_when_idle};
use super::{Delivery, DeliveryBody, h1};
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
    let native_http1 = cfg.native_http1;
    let graceful = GracefulShutdown::new();
    // Tells `h1` connections to close once their response in progress is sent.
    let (drain, draining) = tokio::sync::watch::channel(false);
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
        let idle_activity = activity.clone();
        let draining = draining.clone();
        let connection = tasks.spawn(async move {
            let _permit = permit;
            let client = peer.ip();
            let served = match (acceptor, zero_copy) {
                (None, Some(sent)) => {
                    let io = ZeroCopyStream::new(stream, sent);
                    serve_plain(io, native_http1, delivery, client, activity, draining, builder, watcher)
                        .await
                }
                (None, None) => {
                    serve_plain(stream, native_http1, delivery, client, activity, draining, builder, watcher)
                        .await
                }
                (Some(acceptor), _) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => {
                        let service = hyper_service(delivery, client, activity);
                        watcher.watch(builder.serve_connection(TokioIo::new(tls), service).into_owned()).await
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        Ok(())
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
        tokio::spawn(close_when_idle(idle_activity, idle_limit, connection));
    }
    drop(listener);
    let _ = drain.send(true);
    let deadline = Duration::from_millis(cfg.drain_timeout_ms);
    let finished = async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(deadline, finished).await.is_err() {
        tracing::info!(open = tasks.len(), "drain deadline passed; closing remaining connections");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// The service hyper calls for each request of a connection it serves.
fn hyper_service(
    delivery: Arc<Delivery>,
    client: IpAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<DeliveryBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<DeliveryBody>, Infallible>> + Send + 'static,
> + Send
+ 'static {
    service_fn(move |req| {
        let delivery = delivery.clone();
        let request = activity.request();
        async move {
            let mut resp = delivery.handle(req, client).await;
            resp.body_mut().hold_connection(request);
            Ok::<_, Infallible>(resp)
        }
    })
}

/// A plain-TCP connection: served by `h1` (`native_http1`) unless it speaks HTTP/2, else
/// by hyper.
#[allow(clippy::too_many_arguments)]
async fn serve_plain<S>(
    io: S,
    native_http1: bool,
    delivery: Arc<Delivery>,
    client: IpAddr,
    activity: Arc<Activity>,
    draining: tokio::sync::watch::Receiver<bool>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = if native_http1 {
        match h1::serve_connection(io, &delivery, client, &activity, draining).await? {
            h1::Served::Closed => return Ok(()),
            h1::Served::Http2(io) => io,
        }
    } else {
        h1::Rewind::new(Bytes::new(), io)
    };
    let service = hyper_service(delivery, client, activity);
    watcher.watch(builder.serve_connection(TokioIo::new(io), service).into_owned()).await
}

async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}
