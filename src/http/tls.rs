//! HTTPS for the API and `/metrics`: [`serve`] runs an axum router over plain TCP or, with a
//! server config (`[http]` / `[metrics]` `tls_cert` + `tls_key`), over TLS; and
//! [`warn_if_exposed`] says out loud when a listener beyond loopback has no TLS.
//!
//! Handshakes run in their own tasks ([`TlsListener`]), so one slow or silent client cannot
//! hold up the accept loop; at most [`MAX_HANDSHAKES`] run at once, each bounded by
//! [`HANDSHAKE_TIMEOUT`]. Only finished handshakes reach axum, which then serves them like TCP
//! connections (same graceful shutdown).
//!
//! Must not: know any route; the router comes in whole, with its layers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; past this, accepting waits (back-pressure, bounded memory).
pub const MAX_HANDSHAKES: usize = 256;

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` completes,
/// then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            axum::serve(TlsListener::new(listener, config)?, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Logs a loud warning when `listen` is beyond loopback and served without TLS. `what` is
/// what travels in clear (for the log line), `section` the config table to fix.
pub fn warn_if_exposed(listen: SocketAddr, tls: bool, what: &str, section: &str) {
    if let Some(warning) = exposure_warning(listen, tls, what, section) {
        tracing::warn!("{warning}");
    }
}

fn exposure_warning(listen: SocketAddr, tls: bool, what: &str, section: &str) -> Option<String> {
    (!tls && !listen.ip().is_loopback()).then(|| {
        format!(
            "{what} in clear text on {listen}; set [{section}] tls_cert/tls_key or keep it on \
             loopback"
        )
    })
}

/// TCP connections that finished a TLS handshake, as an axum listener.
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    /// The accept loop; aborted (with the handshakes it runs) when the listener is dropped.
    task: JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener` and handshaking with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        // A handful of finished handshakes may wait for axum; the semaphore bounds the rest.
        let (tx, accepted) = mpsc::channel(16);
        let task = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            accepted,
            local_addr,
            task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when aborted, which happens only on drop: no more
            // connections will come, and axum's contract has no way to say so.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    // Dropped with this task, which aborts every handshake still running.
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, accepted) = (acceptor.clone(), accepted.clone());
        handshakes.spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = accepted.send((stream, peer)).await;
                }
                // Scanners and clients that do not trust our certificate end here; at info,
                // so an operator setting up a client sees why it cannot connect.
                Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_beyond_loopback_is_warned_about() {
        let what = "the HTTP API carries MSISDNs and tokens";
        let warning = |addr: &str, tls| exposure_warning(addr.parse().unwrap(), tls, what, "http");
        assert_eq!(
            warning("0.0.0.0:8080", false).as_deref(),
            Some(
                "the HTTP API carries MSISDNs and tokens in clear text on 0.0.0.0:8080; set \
                 [http] tls_cert/tls_key or keep it on loopback"
            )
        );
        assert!(warning("[::]:8080", false).is_some());
        assert!(warning("10.0.0.5:8080", false).is_some());
        assert_eq!(warning("0.0.0.0:8080", true), None);
        assert_eq!(warning("127.0.0.1:8080", false), None);
        assert_eq!(warning("127.0.0.2:8080", false), None);
        assert_eq!(warning("[::1]:8080", false), None);
    }
}
