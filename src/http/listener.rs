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
//!
//! A stop answers every request it can instead of resetting connections. When `shutdown`
//! completes the listener keeps accepting, but a request that comes now gets a JSON 503
//! `stopping` (nothing started, `Connection: close`, `Retry-After`); the requests being
//! answered finish, their answers saying `Connection: close`. Once none runs, the connections
//! the kernel already accepted are taken and the listener is closed; connections still open
//! get [`LAST_CALL`] to send a request (answered 503), then are closed. Whatever still runs at
//! four fifths of [`ListenerLimits::stop_grace`] is answered 503 too, and at the grace the rest is
//! dropped. A connection that ends after an answer is closed the way nginx does
//! ("lingering close"): our side shut, what the client still sends read and dropped for up to
//! [`LINGER`], because closing a socket with unread bytes makes the kernel send a reset that
//! can destroy the answer (a 413 before its body, a 503) before the client reads it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::config::ListenerLimits;
use crate::metrics as names;

/// In a stop, how long a connection that is open but not answering anything may still send
/// a request (answered 503) before it is closed: a client that connected just before the
/// listener closed gets an answer, not a closed connection.
pub const LAST_CALL: Duration = Duration::from_millis(500);
/// How long, after the last answer on a connection, what the client still sends is read and
/// dropped before the socket is closed (see the module documentation).
pub const LINGER: Duration = Duration::from_secs(2);
/// The `Retry-After` of a 503 `stopping`, in seconds: about a restart.
pub const RETRY_AFTER_STOPPING: u32 = 5;

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
    limits: ListenerLimits,
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
    limits: ListenerLimits,
    what: &'static str,
    census: Census,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut open = Opener {
        tls: tls.map(TlsAcceptor::from),
        router,
        limits,
        what,
        connections: census.0,
        signals: Signals::default(),
        in_flight: Arc::default(),
        tasks: JoinSet::new(),
    };
    let mut last_accept_warning: Option<Instant> = None;
    let mut stop_began: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    tokio::pin!(shutdown);
    loop {
        // A stop that began: answer until no request runs, or it is time to cut them.
        let cut_at = stop_began.map_or(far, |t| t + limits.stop_grace * 4 / 5);
        let accepted = tokio::select! {
            () = &mut shutdown, if stop_began.is_none() => {
                stop_began = Some(tokio::time::Instant::now());
                open.signals.draining.cancel();
                continue;
            }
            () = open.in_flight.none(), if stop_began.is_some() => break,
            () = tokio::time::sleep_until(cut_at) => break,
            accepted = listener.accept() => accepted,
        };
        // Reap finished connection tasks as we go.
        while open.tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => open.connection(stream),
            Err(e) => {
                // Out of descriptors (EMFILE/ENFILE) or a connection reset before accept:
                // free a descriptor from the idlest connection and try again shortly.
                lock(&open.connections).evict_idle();
                if last_accept_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        listener = what,
                        "accept failed ({e}); closing idle connections to make room"
                    );
                    last_accept_warning = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let began = stop_began.unwrap_or_else(tokio::time::Instant::now);
    open.close_listener(listener);
    // Open connections' last call, then closed once their answer is out.
    let cut_at = began + limits.stop_grace * 4 / 5;
    let last_call = (tokio::time::Instant::now() + LAST_CALL).min(cut_at);
    open.until_all_closed(last_call).await;
    open.signals.closing.cancel();
    open.until_all_closed(cut_at).await;
    if !open.tasks.is_empty() {
        tracing::warn!(
            listener = what,
            "requests still running {:?} into the stop; answering them 503",
            limits.stop_grace * 4 / 5
        );
        open.signals.cut.cancel();
        open.until_all_closed(began + limits.stop_grace).await;
    }
    // Dropping the set ends what is left.
    Ok(())
}

/// Where a stop is (see the module documentation), for every connection of a listener.
#[derive(Clone, Default)]
struct Signals {
    /// New requests get a 503 `stopping`; answers close their connection.
    draining: CancellationToken,
    /// Connections close once the request being answered is (idle ones now).
    closing: CancellationToken,
    /// Requests still running are answered 503 now.
    cut: CancellationToken,
}

/// Requests being answered on all of a listener's connections.
#[derive(Default)]
struct InFlight {
    count: AtomicU64,
    none_left: Notify,
}

impl InFlight {
    /// Returns once no request is being answered.
    async fn none(&self) {
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// What the accept loop needs to start a connection's task.
struct Opener {
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ListenerLimits,
    what: &'static str,
    connections: Arc<Mutex<Connections>>,
    signals: Signals,
    in_flight: Arc<InFlight>,
    tasks: JoinSet<()>,
}

impl Opener {
    /// Starts serving `stream`, making room for it (or refusing it) at the cap.
    fn connection(&mut self, stream: TcpStream) {
        let what = self.what;
        let mut open = lock(&self.connections);
        if open.open.len() >= self.limits.max_connections && !open.evict_idle() {
            drop(open);
            metrics::counter!(names::HTTP_CONNECTIONS_REFUSED, "listener" => what).increment(1);
            tracing::debug!(listener = what, "every connection busy; refusing one");
            drop(stream);
            return;
        }
        let id = open.next;
        open.next += 1;
        let tracked = Tracked {
            handshaking: Arc::new(AtomicBool::new(self.tls.is_some())),
            busy: Arc::new(AtomicU64::new(0)),
            idle_since: Arc::new(Mutex::new(Instant::now())),
            close: CancellationToken::new(),
        };
        let conn = Conn {
            router: self.router.clone(),
            limits: self.limits,
            busy: tracked.busy.clone(),
            idle_since: tracked.idle_since.clone(),
            evict: tracked.close.clone(),
            signals: self.signals.clone(),
            in_flight: self.in_flight.clone(),
        };
        let handshaking = tracked.handshaking.clone();
        open.open.insert(id, tracked);
        drop(open);
        let (tls, connections) = (self.tls.clone(), self.connections.clone());
        let limits = self.limits;
        self.tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
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
                        () = conn.evict.cancelled() => {}
                        // Still no HTTP after its last call.
                        () = conn.signals.closing.cancelled() => {}
                    }
                }
            }
            lock(&connections).open.remove(&id);
        });
    }

    /// Serves what the kernel already accepted (a reset otherwise), then closes `listener`:
    /// from now on a connect is refused.
    fn close_listener(&mut self, listener: TcpListener) {
        let Ok(listener) = listener.into_std() else {
            return;
        };
        while let Ok((stream, _)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream));
            if let Ok(stream) = stream {
                self.connection(stream);
            }
        }
    }

    /// Until every connection's task ended, or `deadline`.
    async fn until_all_closed(&mut self, deadline: tokio::time::Instant) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout_at(deadline, all).await;
    }
}

/// One connection: HTTP/1.1 with the header-read timeout, each request under the request
/// timeout; dropped at once when `evict` fires, and through a stop as [`Signals`] say.
struct Conn {
    router: Router,
    limits: ListenerLimits,
    busy: Arc<AtomicU64>,
    idle_since: Arc<Mutex<Instant>>,
    evict: CancellationToken,
    signals: Signals,
    in_flight: Arc<InFlight>,
}

/// What a connection's task waits for.
enum Event {
    Done(hyper::Result<()>),
    Evicted,
    Draining,
    Closing,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl Conn {
    async fn serve<Io: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, io: Io) {
        let Conn {
            router,
            limits,
            busy,
            idle_since,
            evict,
            signals,
            in_flight,
        } = self;
        let service = {
            let (busy, signals) = (busy.clone(), signals.clone());
            hyper::service::service_fn(move |req: Request<Incoming>| -> Answer {
                if signals.draining.is_cancelled() {
                    return Box::pin(std::future::ready(Ok(stopping(false))));
                }
                let guard = Busy::start(&busy, &idle_since, &in_flight);
                let call = router.clone().call(req.map(Body::new));
                let cut = signals.cut.clone();
                Box::pin(async move {
                    let _guard = guard;
                    tokio::select! {
                        answered = tokio::time::timeout(limits.request_timeout, call) => {
                            answered.unwrap_or_else(|_| Ok(request_timed_out(limits.request_timeout)))
                        }
                        () = cut.cancelled() => Ok(stopping(true)),
                    }
                })
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let mut conn = builder.serve_connection(TokioIo::new(io), service);
        let (mut draining, mut closing) = (false, false);
        let done = loop {
            let event = tokio::select! {
                done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => Event::Done(done),
                () = evict.cancelled() => Event::Evicted,
                () = signals.draining.cancelled(), if !draining => Event::Draining,
                () = signals.closing.cancelled(), if !closing => Event::Closing,
            };
            match event {
                Event::Done(done) => break done,
                // Idle (that is why it was chosen): nothing to answer.
                Event::Evicted => return,
                Event::Draining => {
                    draining = true;
                    // The answer being written says `Connection: close`; an idle
                    // connection stays for its last call.
                    if busy.load(Relaxed) > 0 {
                        Pin::new(&mut conn).graceful_shutdown();
                    }
                }
                Event::Closing => {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
            }
        };
        // hyper gave up on an error (a header timeout, a broken request): nothing to save.
        if done.is_ok() {
            linger(conn.into_parts().io.into_inner()).await;
        }
    }
}

/// Closes `io` after an answer without a reset: our side shut, then what the client still
/// sends read and dropped until it closes too, or [`LINGER`].
async fn linger<Io: AsyncRead + AsyncWrite + Unpin>(mut io: Io) {
    let drained = async {
        let _ = io.shutdown().await;
        let mut sink = [0u8; 8192];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drained).await;
}

/// Marks a connection busy while a request is answered (dropped with the request, answered
/// or not).
struct Busy {
    busy: Arc<AtomicU64>,
    idle_since: Arc<Mutex<Instant>>,
    in_flight: Arc<InFlight>,
}

impl Busy {
    fn start(
        busy: &Arc<AtomicU64>,
        idle_since: &Arc<Mutex<Instant>>,
        in_flight: &Arc<InFlight>,
    ) -> Busy {
        busy.fetch_add(1, Relaxed);
        in_flight.count.fetch_add(1, SeqCst);
        Busy {
            busy: busy.clone(),
            idle_since: idle_since.clone(),
            in_flight: in_flight.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.idle_since) = Instant::now();
        self.busy.fetch_sub(1, Relaxed);
        if self.in_flight.count.fetch_sub(1, SeqCst) == 1 {
            self.in_flight.none_left.notify_waiters();
        }
    }
}

fn request_timed_out(after: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "error": "request timeout",
        "detail": format!("the request took longer than {after:?}"),
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// The answer to a request a stop will not let run: `cut` when it ran and was stopped.
fn stopping(cut: bool) -> Response<Body> {
    let detail = if cut {
        "smsflow is stopping and this request was still running when the stop's grace ran \
         out; it may have taken effect: send it again with the same id after Retry-After"
    } else {
        "smsflow is stopping; nothing was started: send the request again after Retry-After \
         (to this service once it is back, or to another)"
    };
    let body = serde_json::json!({"error": "stopping", "detail": detail});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_STOPPING));
    response
}
