//! Serving a router on a listener within limits, so idle or slow sockets cannot starve the
//! API (or `/metrics`): every connection has a header-read timeout (which is also how long an
//! idle keep-alive connection stays) and a timeout per request, and the listener holds at
//! most `max_connections`.
//!
//! At the cap, or when the process is out of file descriptors, the connection idle the
//! longest (no request being answered: a half-sent request counts as idle) is closed to make
//! room, so `/healthz` from a prober still gets in while a flood of half-open sockets sits
//! there. Only when every connection is busy answering is the newcomer refused (closed at
//! once). axum's own `serve` has none of these limits, hence this loop on hyper directly.
//!
//! With a TLS config (`[http]` / `[metrics]` `tls_cert` + `tls_key`) each connection's task
//! first runs the handshake, within the header-read timeout, so a silent client holds nothing
//! but its own slot.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::metrics as names;

/// What one listener allows. Defaults: SPEC's `[http]` keys of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From the connection's start, or the end of the previous response, to the last header
    /// of the next request: a connection idle this long is closed (hyper runs this timer
    /// while waiting for a request head, so it is the keep-alive idle timeout too).
    pub header_read_timeout: Duration,
    /// From the headers to the response (a slow body upload included): 503 after it.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// `/metrics`: a scraper or two, short requests.
    pub fn metrics() -> Limits {
        Limits {
            max_connections: 64,
            ..Limits::default()
        }
    }
}

/// How long a stop waits for requests being answered.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One open connection, as the accept loop sees it.
struct Tracked {
    /// In its TLS handshake (not yet speaking HTTP).
    handshaking: Arc<AtomicBool>,
    /// Requests being answered on it now.
    busy: Arc<AtomicU64>,
    /// When it last finished a request (or opened).
    idle_since: Arc<Mutex<Instant>>,
    close: CancellationToken,
}

#[derive(Default)]
struct Connections {
    open: HashMap<u64, Tracked>,
    next: u64,
}

/// The connections a listener holds, for a stop that ran out of time to say what it waited
/// for; [`serve`] keeps it current.
#[derive(Clone, Default)]
pub struct Census(Arc<Mutex<Connections>>);

impl Census {
    /// `api: 3 connections (1 answering a request, 1 in its TLS handshake, 1 idle)`, or
    /// `None` when none is open.
    pub fn describe(&self, what: &str) -> Option<String> {
        let open = lock(&self.0);
        if open.open.is_empty() {
            return None;
        }
        let handshaking = (open.open.values())
            .filter(|c| c.handshaking.load(Relaxed))
            .count();
        let busy = (open.open.values())
            .filter(|c| c.busy.load(Relaxed) > 0)
            .count();
        let idle = open.open.len() - handshaking - busy;
        Some(format!(
            "{what}: {} connections ({busy} answering a request, {handshaking} in their TLS \
             handshake, {idle} idle)",
            open.open.len()
        ))
    }
}

impl Connections {
    /// Closes the connection idle the longest; whether there was one.
    fn evict_idle(&mut self) -> bool {
        let oldest = (self.open.iter())
            .filter(|(_, c)| c.busy.load(Relaxed) == 0 && !c.close.is_cancelled())
            .min_by_key(|(_, c)| *lock(&c.idle_since))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.open.get(&id)) {
            Some(c) => {
                c.close.cancel();
                true
            }
            None => false,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `router` on `listener` (over TLS with `tls`) within `limits` until `shutdown`
/// completes, then lets the requests being answered finish (up to a grace). `what` names the
/// listener in logs and metrics (`api`, `metrics`).
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    limits: Limits,
    what: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_counted(
        listener,
        tls,
        router,
        limits,
        what,
        Census::default(),
        shutdown,
    )
    .await
}

/// [`serve`], keeping `census` current.
pub async fn serve_counted(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    limits: Limits,
    what: &'static str,
    census: Census,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(TlsAcceptor::from);
    let connections = census.0;
    let stopping = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut last_accept_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connection tasks as we go.
        while tasks.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept:
                // free a descriptor from the idlest connection and try again shortly.
                lock(&connections).evict_idle();
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        listener = what,
                        "accept failed ({e}); closing idle connections to make room"
                    );
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut open = lock(&connections);
        if open.open.len() >= limits.max_connections && !open.evict_idle() {
            drop(open);
            metrics::counter!(names::HTTP_CONNECTIONS_REFUSED, "listener" => what).increment(1);
            tracing::debug!(listener = what, "every connection busy; refusing one");
            drop(stream);
            continue;
        }
        let id = open.next;
        open.next += 1;
        let tracked = Tracked {
            handshaking: Arc::new(AtomicBool::new(tls.is_some())),
            busy: Arc::new(AtomicU64::new(0)),
            idle_since: Arc::new(Mutex::new(Instant::now())),
            close: stopping.child_token(),
        };
        let (router, tls, close) = (router.clone(), tls.clone(), tracked.close.clone());
        let (busy, idle_since) = (tracked.busy.clone(), tracked.idle_since.clone());
        let handshaking = tracked.handshaking.clone();
        open.open.insert(id, tracked);
        drop(open);
        let connections = connections.clone();
        tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                router,
                limits,
                busy,
                idle_since,
                close,
            };
            match tls {
                None => conn.serve(stream).await,
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    let handshake = tokio::time::timeout(limits.header_read_timeout, handshake);
                    tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => {
                                handshaking.store(false, Relaxed);
                                conn.serve(stream).await
                            }
                            // Scanners and clients that do not trust our certificate end
                            // here; at debug, a port scan is not an event.
                            Ok(Err(e)) => tracing::debug!(listener = what, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(listener = what, "TLS handshake timed out"),
                        },
                        () = conn.close.cancelled() => {}
                    }
                }
            }
            lock(&connections).open.remove(&id);
        });
    }
    drop(listener);
    stopping.cancel();
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = what,
            "requests still running after {STOP_GRACE:?}; closing them"
        );
    }
    Ok(())
}

/// One connection: HTTP/1.1 with the header-read timeout, each request under the request
/// timeout, closed when `close` fires (an eviction: at once; a stop: after the request being
/// answered).
struct Conn {
    router: Router,
    limits: Limits,
    busy: Arc<AtomicU64>,
    idle_since: Arc<Mutex<Instant>>,
    close: CancellationToken,
}

impl Conn {
    async fn serve<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: Io) {
        let Conn {
            router,
            limits,
            busy,
            idle_since,
            close,
        } = self;
        let service = {
            let busy = busy.clone();
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let guard = Busy::start(&busy, &idle_since);
                let call = router.clone().call(req.map(Body::new));
                async move {
                    let _guard = guard;
                    match tokio::time::timeout(limits.request_timeout, call).await {
                        Ok(response) => response,
                        Err(_) => Ok(request_timed_out(limits.request_timeout)),
                    }
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = close.cancelled() => {}
        }
        if busy.load(Relaxed) > 0 {
            // A stop (or an eviction that lost a race): finish the request, then close.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Marks a connection busy while a request is answered (dropped with the request, answered
/// or not).
struct Busy {
    busy: Arc<AtomicU64>,
    idle_since: Arc<Mutex<Instant>>,
}

impl Busy {
    fn start(busy: &Arc<AtomicU64>, idle_since: &Arc<Mutex<Instant>>) -> Busy {
        busy.fetch_add(1, Relaxed);
        Busy {
            busy: busy.clone(),
            idle_since: idle_since.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.idle_since) = Instant::now();
        self.busy.fetch_sub(1, Relaxed);
    }
}

fn request_timed_out(after: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "error": "request timeout",
        "detail": format!("the request took longer than {after:?}"),
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}
