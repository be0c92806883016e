//! The accept loop: plain HTTP or TLS (the certificate in force is looked up
//! for every handshake, so it rotates without a restart), HTTP/1.1 and
//! HTTP/2, and a graceful shutdown that is bounded in time; binding a
//! Go-style address, and the signals that stop or reload the server.

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

use crate::server::routes::router;
use crate::server::state::AppState;

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
        .fleet
        .close(deadline.max(Instant::now() + Duration::from_secs(1)))
        .await;
    Ok(())
}

/// Binds a Go-style address: ":9917" listens on every interface.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let candidates: Vec<String> = match addr.strip_prefix(':') {
        Some(port) => vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")],
        None => vec![addr.to_string()],
    };
    let mut last = None;
    for c in &candidates {
        match TcpListener::bind(c).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map(|e| e.to_string()).unwrap_or_default();
    Err(std::io::Error::other(format!(
        "cannot listen on {addr}: {why}"
    )))
}

/// SIGHUP reads the configuration file again, as `POST /-/reload` does.
pub fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            // The outcome is logged and in whatsapp_config_last_reload_successful.
            let _ = state.fleet.reload().await;
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
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
