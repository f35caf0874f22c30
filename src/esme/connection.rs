//! The tokio driver of one SMPP session: a short loop that moves frames between a socket and a
//! [`Session`], feeds it submit jobs from the pool's queue and application acks, and sleeps
//! until the session's next deadline. All protocol decisions are the session's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::smpp::codec::FrameCodec;
use crate::smpp::pdu::CommandStatus;
use crate::smpp::session::{CloseReason, Event, Inbound, Outcome, Session, SessionConfig, State};

use super::bind::BindLife;
use super::rate::TpsLimiter;
use super::telemetry::SessionMetrics;

/// Anything a session can run over: a TCP stream, a TLS stream over one, an in-memory duplex
/// in tests.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Opens a fresh connection to the SMSC.
pub type Connector = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>> + Send + Sync,
>;

/// A connector for plain TCP.
pub fn tcp_connector(host: String, port: u16) -> Connector {
    Arc::new(move || {
        let target = format!("{host}:{port}");
        Box::pin(async move { Ok(Box::new(connect_tcp(&target).await?) as Box<dyn Io>) })
    })
}

/// TCP to `target` within [`CONNECT_TIMEOUT`], without Nagle: PDUs are small and every one
/// waits for its answer.
pub(super) async fn connect_tcp(target: &str) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// What one slot is waiting for right now: a connect, or its session's submits and MOs.
#[derive(Debug, Default)]
pub struct SlotLoad {
    pub(super) connecting: AtomicBool,
    pub(super) submits: AtomicUsize,
    pub(super) unacked: AtomicUsize,
    pub(super) unbinding: AtomicBool,
}

impl SlotLoad {
    /// A session's submits awaiting their response, MOs awaiting our acknowledgement, and
    /// whether it sent its unbind.
    pub fn set(&self, submits: usize, unacked: usize, unbinding: bool) {
        self.submits.store(submits, Ordering::Relaxed);
        self.unacked.store(unacked, Ordering::Relaxed);
        self.unbinding.store(unbinding, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.set(0, 0, false);
    }

    pub(super) fn connecting(&self, connecting: bool) {
        self.connecting.store(connecting, Ordering::Relaxed);
    }
}

/// A request for the pool's sessions to send, with where its outcome goes.
#[derive(Debug)]
pub struct SubmitJob {
    pub command: rusmpp::Command,
    pub reply: oneshot::Sender<JobResult>,
}

/// What a session did with a job: an outcome, or the command back untouched because the
/// session ended before sending it (the pool queues it again: it was never on the wire).
pub type JobResult = Result<Outcome, NotSent>;

#[derive(Debug)]
pub struct NotSent(pub rusmpp::Command);

/// An MO message or receipt for the application, with the handle that acknowledges it.
#[derive(Debug)]
pub struct InboundMessage {
    /// The `[[smsc]]` name it came from.
    pub smsc: Arc<str>,
    /// The bind that delivered it: whether it is still up, and what it showed of the SMSC
    /// reading our responses (a copy's redelivery rule needs both).
    pub bind: Arc<BindLife>,
    pub inbound: Inbound,
    pub ack: AckHandle,
}

/// Sends the deliver_sm_resp for one inbound message. Dropping it unacknowledged answers
/// ESME_RX_T_APPN, so the SMSC delivers the message again rather than it being lost.
#[derive(Debug)]
pub struct AckHandle {
    sequence_number: u32,
    acks: Option<mpsc::UnboundedSender<(u32, CommandStatus)>>,
}

impl AckHandle {
    /// ESME_ROK: the message is stored; the SMSC may forget it.
    pub fn ack(self) {
        self.respond(CommandStatus::ESME_ROK);
    }

    /// ESME_RX_T_APPN: the message could not be stored; the SMSC delivers it again later.
    pub fn retry_later(self) {
        self.respond(CommandStatus::ESME_RX_T_APPN);
    }

    /// Any status, e.g. ESME_RX_P_APPN to refuse a message for good.
    pub fn respond(mut self, status: CommandStatus) {
        if let Some(acks) = self.acks.take() {
            // The session may be gone; then the SMSC redelivers, which is what we want.
            let _ = acks.send((self.sequence_number, status));
        }
    }

    pub fn sequence_number(&self) -> u32 {
        self.sequence_number
    }
}

impl Drop for AckHandle {
    fn drop(&mut self) {
        if let Some(acks) = self.acks.take() {
            let _ = acks.send((self.sequence_number, CommandStatus::ESME_RX_T_APPN));
        }
    }
}

/// What one session shares with the others of its pool.
#[derive(Debug, Clone)]
pub struct Shared {
    pub smsc: Arc<str>,
    /// The pool's submit queue; `None` for a receiver, which never submits.
    pub jobs: Option<Arc<tokio::sync::Mutex<mpsc::Receiver<SubmitJob>>>>,
    pub inbound: mpsc::Sender<InboundMessage>,
    pub limiter: Option<Arc<Mutex<TpsLimiter>>>,
    pub max_command_length: usize,
    /// What this slot's session waits for, for a stop's account of what is still running.
    pub load: Arc<SlotLoad>,
}

/// How a session run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub reason: CloseReason,
    /// Whether it got as far as bound (a reconnect after a good session starts the back-off
    /// from the floor again).
    pub was_bound: bool,
    /// The read or write error that lost the connection, when one did (a reset, a TLS alert
    /// such as the SMSC refusing our client certificate), for the operator's log.
    pub error: Option<String>,
}

/// Called with each event the driver does not consume itself (bound, throttled, malformed,
/// closed), for the pool's status and logs.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Binds over `io` and runs the session until it closes. On `shutdown` it stops taking jobs,
/// waits for the submits in flight, unbinds and returns.
pub async fn run_session(
    mut io: impl Io,
    config: SessionConfig,
    shared: &Shared,
    observer: &Observer,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let start = Instant::now();
    let response_timeout = config.response_timeout;
    let mut session = Session::new(config, start.into_std());
    let mut codec = FrameCodec::new(shared.max_command_length);
    let mut read_buf = BytesMut::with_capacity(64 * 1024);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    // Each reply with when its submit_sm was written (submit latency).
    let mut replies: HashMap<u64, (oneshot::Sender<JobResult>, Instant)> = HashMap::new();
    let mut telemetry = SessionMetrics::new(&shared.smsc);
    let mut next_token = 0u64;
    // A job taken from the queue, waiting for its TPS slot (or for window room after a race).
    let mut held: Option<(SubmitJob, Instant)> = None;
    let mut was_bound = false;
    let mut io_error: Option<String> = None;
    let mut unbinding = false;
    let mut shutdown_deadline: Option<Instant> = None;
    let mut end = None;
    let life = Arc::new(BindLife::open(start.into_std()));

    if let Err(e) = session.bind(start.into_std()) {
        tracing::error!(smsc = %shared.smsc, error = %e, "cannot build bind");
        life.close(Instant::now().into_std());
        return SessionEnd {
            reason: CloseReason::ConnectionLost,
            was_bound: false,
            error: None,
        };
    }

    loop {
        // 0. Acks the application already gave go out with this iteration's write.
        while let Ok((seq, status)) = ack_rx.try_recv() {
            answer(&mut session, &life, seq, status);
        }
        // 1. Write what the session produced.
        if let Some(out) = session.poll_transmit() {
            telemetry.pdus_out(&out);
            // flush: a TLS stream may hold records it took but could not send yet (a no-op on
            // TCP).
            if let Err(e) = async {
                io.write_all(&out).await?;
                io.flush().await
            }
            .await
            {
                io_error.get_or_insert(crate::tls::explain::session_error(&e));
                session.handle_close();
            }
        }
        // 2. Hand out events.
        while let Some(event) = session.poll_event() {
            match event {
                Event::Completed { token, outcome, .. } => {
                    if let Some((reply, sent_at)) = replies.remove(&token) {
                        life.answered(sent_at.into_std());
                        telemetry.submitted(sent_at.elapsed());
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Event::Inbound(inbound) => {
                    let seq = inbound.sequence_number;
                    let message = InboundMessage {
                        smsc: shared.smsc.clone(),
                        bind: life.clone(),
                        inbound,
                        ack: AckHandle {
                            sequence_number: seq,
                            acks: Some(ack_tx.clone()),
                        },
                    };
                    // A full application queue is back-pressure: the SMSC retries later
                    // (the dropped handle answers ESME_RX_T_APPN).
                    if let Err(e) = shared.inbound.try_send(message) {
                        tracing::debug!(smsc = %shared.smsc, "inbound queue full or closed: {e}");
                    }
                }
                Event::Closed { ref reason } => {
                    telemetry.set_bound(false);
                    observer(&event);
                    end = Some(reason.clone());
                }
                other => {
                    match other {
                        Event::Bound { .. } => {
                            was_bound = true;
                            telemetry.set_bound(true);
                        }
                        Event::Throttled { .. } => telemetry.throttled(),
                        _ => {}
                    }
                    observer(&other);
                }
            }
        }
        if let Some(reason) = end.take() {
            // Jobs never sent go back to the pool; everything sent was answered by `close`.
            if let Some((job, _)) = held.take() {
                let _ = job.reply.send(Err(NotSent(job.command)));
            }
            if let Some(out) = session.poll_transmit() {
                telemetry.pdus_out(&out);
                let _ = io.write_all(&out).await;
            }
            life.close(Instant::now().into_std());
            shared.load.clear();
            let _ = io.shutdown().await;
            return SessionEnd {
                reason,
                was_bound,
                error: io_error,
            };
        }

        telemetry.set_in_flight(session.pending_submits());
        shared
            .load
            .set(session.pending_submits(), session.unacked(), unbinding);
        let now = Instant::now();
        // 3. Shutdown: stop taking jobs; unbind once submits are answered and inbound
        //    messages acknowledged, or after one response timeout at most.
        if shutdown.is_cancelled() && !unbinding && matches!(session.state(), State::Bound(_)) {
            if let Some((job, _)) = held.take() {
                let _ = job.reply.send(Err(NotSent(job.command)));
            }
            let grace_over = *shutdown_deadline.get_or_insert(now + response_timeout) <= now;
            if (session.pending_submits() == 0 && session.unacked() == 0) || grace_over {
                unbinding = true;
                let _ = session.unbind(now.into_std());
                continue;
            }
        }
        if shutdown.is_cancelled() && matches!(session.state(), State::Open | State::Binding(_)) {
            session.handle_close();
            continue;
        }
        // 4. Submit while the window, the TPS slot and the queue allow, writing nothing in
        //    between: a burst of jobs leaves in one write instead of one syscall each.
        let mut submitted = false;
        loop {
            if held.is_none()
                && !shutdown.is_cancelled()
                && session.can_submit(now.into_std())
                && let Some(job) = try_next_job(shared)
            {
                held = Some((job, reserve_slot(shared, now)));
            }
            let ready = held
                .as_ref()
                .is_some_and(|(_, at)| *at <= now && session.can_submit(now.into_std()));
            let Some((job, _)) = held.take_if(|_| ready) else {
                break;
            };
            let token = next_token;
            next_token += 1;
            match session.submit(now.into_std(), token, job.command) {
                Ok(_) => {
                    replies.insert(token, (job.reply, now));
                }
                Err(e) => {
                    tracing::error!(smsc = %shared.smsc, error = %e, "submit refused by the session");
                    // Only an unencodable command gets here (state and window were checked):
                    // report it as rejected rather than retrying forever.
                    let _ = job.reply.send(Ok(Outcome::Rejected {
                        status: CommandStatus::ESME_RSYSERR,
                    }));
                }
            }
            submitted = true;
        }
        if submitted {
            continue;
        }

        let take_jobs = held.is_none()
            && !shutdown.is_cancelled()
            && session.can_submit(now.into_std())
            && shared.jobs.is_some();
        let deadline = [
            session.poll_timeout().map(Instant::from_std),
            held.as_ref().map(|(_, at)| *at),
            shutdown_deadline.filter(|_| !unbinding),
        ]
        .into_iter()
        .flatten()
        .min();

        tokio::select! {
            read = io.read_buf(&mut read_buf) => {
                match read {
                    Ok(0) => session.handle_close(),
                    Err(e) => {
                        io_error.get_or_insert(crate::tls::explain::session_error(&e));
                        session.handle_close();
                    }
                    Ok(_) => loop {
                        match codec.decode(&mut read_buf) {
                            Ok(Some(frame)) => {
                                life.read_at(Instant::now().into_std());
                                telemetry.pdu_in(&frame);
                                session.handle_frame(Instant::now().into_std(), frame);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                // Framing is lost: nothing after this can be trusted.
                                tracing::warn!(smsc = %shared.smsc, error = %e, "closing link");
                                session.handle_close();
                                break;
                            }
                        }
                    },
                }
            }
            job = next_job(shared), if take_jobs => {
                if let Some(job) = job {
                    held = Some((job, reserve_slot(shared, now)));
                }
            }
            Some((seq, status)) = ack_rx.recv() => answer(&mut session, &life, seq, status),
            () = sleep_until(deadline) => session.handle_timeout(Instant::now().into_std()),
            () = shutdown.cancelled(), if !shutdown.is_cancelled() => {}
        }
    }
}

/// Our deliver_sm_resp for `seq`; a refusal is noted on the bind (see
/// [`BindView::may_resend`](super::BindView::may_resend)).
fn answer(session: &mut Session, life: &BindLife, seq: u32, status: CommandStatus) {
    if status != CommandStatus::ESME_ROK {
        life.refused_at(std::time::Instant::now());
    }
    session.ack(seq, status);
}

/// A job already waiting in the queue, without waiting for one (or for the queue's lock).
fn try_next_job(shared: &Shared) -> Option<SubmitJob> {
    shared.jobs.as_ref()?.try_lock().ok()?.try_recv().ok()
}

/// When a job taken now may be sent: now, or the pool's next free TPS slot.
fn reserve_slot(shared: &Shared, now: Instant) -> Instant {
    match &shared.limiter {
        // A std mutex: held for one arithmetic step, never across an await.
        Some(limiter) => Instant::from_std(
            limiter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(now.into_std()),
        ),
        None => now,
    }
}

async fn next_job(shared: &Shared) -> Option<SubmitJob> {
    let jobs = shared.jobs.as_ref()?;
    jobs.lock().await.recv().await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a TCP connect may take before the attempt counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
