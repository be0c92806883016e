//! The accept loop: plain HTTP or TLS (the certificate in force is looked up
//! for every handshake, so it rotates without a restart), HTTP/1.1 and
//! HTTP/2, and a graceful shutdown that is bounded in time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{AppState, router};

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes; then stops accepting, lets requests in
/// flight finish (for at most `shutdown_timeout`), and writes the state file
/// (a target still collecting by then keeps its last saved state).
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let web = state.options.web.clone();
    let mut builder = Builder::new(TokioExecutor::new());
    if !web.http2 {
        builder = builder.http1_only();
    }
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let web = web.clone();
        tokio::spawn(async move {
            if !web.tls {
                serve(tcp, builder, service, watcher, peer).await;
                return;
            }
            let Some(tls) = web.tls_config() else {
                return; // no valid TLS configuration yet: logged by WebConfig
            };
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(tls).accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            serve(stream, builder, service, watcher, peer).await;
        });
    }
    drop(listener);
    let deadline = Instant::now() + state.options.shutdown_timeout;
    if tokio::time::timeout_at(deadline.into(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?state.options.shutdown_timeout, "requests still in flight at the shutdown timeout; closing them");
    }
    state
        .collectors()
        .save_state_by(Some(deadline.max(Instant::now() + Duration::from_secs(1))))
        .await;
    Ok(())
}

async fn serve<I>(
    io: I,
    builder: Builder<TokioExecutor>,
    service: TowerToHyperService<axum::Router>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
