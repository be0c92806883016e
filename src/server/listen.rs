//! The accept loop: plain HTTP or TLS (the certificate in force is looked up
//! for every handshake, so it rotates without a restart), HTTP/1.1 and
//! HTTP/2, and a graceful shutdown that is bounded in time; binding a
//! Go-style address, and the signals that stop or reload the server.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::server::conn::{
    Admitted, Connections, Cut, PLAIN_HTTP_ON_TLS, Slot, Watched, looks_like_plain_http,
};
use crate::server::routes::router;
use crate::server::state::AppState;
use crate::web::ClientAddr;

/// Longest a client may take over its TLS handshake (the connection's watch
/// holds it to the read-header timeout as well, when that is shorter).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` completes; then stops accepting, lets requests in
/// flight finish (for at most `shutdown_timeout`), and closes the state store.
/// Every connection is watched: see [`crate::server::Limits`].
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
    let connections = Connections::new(state.options.limits.fitted());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like (for a moment, as
                    // evicted connections close): wait a little, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match connections.admit() {
            Admitted::Room(s) => s,
            Admitted::Evicted(s) => {
                state.http.closed(Cut::Evicted.reason());
                s
            }
            Admitted::Full => {
                state.http.closed("refused");
                tracing::debug!(%peer, "every connection busy at --web.max-connections: refused");
                drop(tcp);
                continue;
            }
        };
        let conn = Conn {
            builder: builder.clone(),
            app: app.clone(),
            watcher: graceful.watcher(),
            connections: connections.clone(),
            state: state.clone(),
            peer,
        };
        tokio::spawn(conn.serve(tcp, slot));
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

/// One accepted connection and what serving it needs.
struct Conn {
    builder: Builder<TokioExecutor>,
    app: axum::Router,
    watcher: Watcher,
    connections: Arc<Connections>,
    state: Arc<AppState>,
    peer: SocketAddr,
}

impl Conn {
    async fn serve(self, tcp: TcpStream, slot: Slot) {
        let http = self.state.http.clone();
        http.connection(1);
        let web = self.state.options.web.clone();
        if !web.tls {
            self.serve_io(tcp, &slot).await;
        } else {
            // Watched too: a connection evicted mid-handshake goes at once.
            let limits = *self.connections.limits();
            match slot
                .activity
                .watch(&limits, self.handshake(tcp, &web))
                .await
            {
                Ok(Some(tls)) => self.serve_io(tls, &slot).await,
                Ok(None) => {}
                Err(cut) => {
                    http.closed(cut.reason());
                    tracing::debug!(peer = %self.peer, reason = cut.reason(), "connection closed by the server during its TLS handshake");
                }
            }
        }
        http.connection(-1);
        drop(slot);
    }

    /// The TLS handshake, bounded in time; plain HTTP gets Go's 400.
    async fn handshake(
        &self,
        mut tcp: TcpStream,
        web: &crate::web::WebConfig,
    ) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
        let peer = self.peer;
        let handshake = async {
            let mut first = [0u8; 1];
            match tcp.peek(&mut first).await {
                // Closed before a byte (a TCP health check): nothing to say.
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if looks_like_plain_http(&first) {
                // As Go's server does; the client reads it as an HTTP answer.
                let _ = tcp.write_all(PLAIN_HTTP_ON_TLS).await;
                let _ = tcp.shutdown().await;
                return None;
            }
            let tls = web.tls_config()?; // none valid yet: logged by WebConfig
            match TlsAcceptor::from(tls).accept(tcp).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "TLS handshake rejected");
                    None
                }
            }
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(s) => s,
            Err(_) => {
                self.state.http.closed(Cut::HeaderTimeout.reason());
                tracing::debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }

    async fn serve_io<I>(self, io: I, slot: &Slot)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = slot.activity.clone();
        let app = self.app.clone();
        let client = ClientAddr(self.peer.ip());
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            // Held until the response head is ready: see `conn`.
            let guard = activity.begin();
            req.extensions_mut().insert(client);
            let app = app.clone();
            async move {
                let response = app.oneshot(req).await;
                drop(guard);
                response
            }
        });
        let io = TokioIo::new(Watched::new(io, slot.activity.clone()));
        let conn = self
            .builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let served = slot
            .activity
            .watch(self.connections.limits(), self.watcher.watch(conn))
            .await;
        match served {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error")
            }
            Err(cut) => {
                self.state.http.closed(cut.reason());
                tracing::debug!(peer = %self.peer, reason = cut.reason(), "connection closed by the server");
            }
        }
    }
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
