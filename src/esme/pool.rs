//! The sessions of one `[[smsc]]`: `sessions` binds (transceivers, or transmitter + receiver
//! pairs), each kept up by a supervisor that reconnects with back-off, all sharing one submit
//! queue, one TPS limiter and one inbound stream.
//!
//! Outbound: [`Pool::submit`] and [`Pool::send_text`] queue work that any bound session with
//! room in its window takes; a job a session could not send before its link died goes back in
//! the queue, so nothing queued is lost. Inbound: every MO and receipt arrives once on the
//! receiver returned by [`Pool::start`], with its [`AckHandle`](super::AckHandle).

use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::smpp::codec::DEFAULT_MAX_COMMAND_LENGTH;
use crate::smpp::encode::{self, Address, BindMode, ShortMessage};
use crate::smpp::pdu::CommandStatus;
use crate::smpp::session::{CloseReason, Event, Outcome, SessionConfig};
use crate::smpp::text;

use super::backoff::{Backoff, SplitMix64};
pub use super::connection::{Connector, tcp_connector};
use super::connection::{
    InboundMessage, JobResult, Observer, Shared, SlotLoad, SubmitJob, run_session,
};
use super::rate::TpsLimiter;
use super::tls::HandshakeError;

/// Transceivers, or one transmitter plus one receiver per session slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    Transceiver,
    Pair,
}

/// One `[[smsc]]`, as the pool needs it (the service's config layer fills it in).
#[derive(Clone)]
pub struct PoolConfig {
    pub name: String,
    pub connector: Connector,
    /// Credentials, window, timers; `bind_mode` is set per session from `bind`.
    pub session: SessionConfig,
    pub bind: BindKind,
    /// Parallel binds (slots). Default 1.
    pub sessions: usize,
    /// submit_sm per second across all sessions; 0 = no cap.
    pub tps: u32,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How MT messages are addressed.
    pub source_addr: String,
    pub source_addr_ton: u8,
    pub source_addr_npi: u8,
    pub registered_delivery: bool,
    pub max_command_length: usize,
}

impl PoolConfig {
    /// A pool of one transceiver on `connector` with the defaults of SPEC.md.
    pub fn new(name: impl Into<String>, connector: Connector) -> Self {
        Self {
            name: name.into(),
            connector,
            session: SessionConfig::default(),
            bind: BindKind::Transceiver,
            sessions: 1,
            tps: 0,
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            source_addr: "5700".into(),
            source_addr_ton: 3,
            source_addr_npi: 0,
            registered_delivery: true,
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
        }
    }
}

impl fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolConfig")
            .field("name", &self.name)
            .field("bind", &self.bind)
            .field("sessions", &self.sessions)
            .field("tps", &self.tps)
            .finish_non_exhaustive()
    }
}

/// Why a submit did not get a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    #[error("smsc rejected the message with {status}")]
    Rejected { status: CommandStatus },
    #[error("smsc kept throttling the message ({status})")]
    Throttled { status: CommandStatus },
    /// The SMSC may or may not have the message: the caller decides whether to resend.
    #[error("no response from the smsc within {after:?}")]
    TimedOut { after: Duration },
    /// The SMSC may or may not have the message: the caller decides whether to resend.
    #[error("link lost before the smsc answered")]
    LinkLost,
    #[error("the smpp pool is shut down")]
    Shutdown,
    #[error("cannot encode: {0}")]
    Encode(#[from] encode::EncodeError),
}

/// An MT text sent in one or more parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The SMSC's id of each part, in part order.
    pub message_ids: Vec<String>,
}

/// A text of which some parts were accepted before one failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("part {failed_part} of {parts}: {error}")]
pub struct SendError {
    pub parts: usize,
    /// 1-based.
    pub failed_part: usize,
    /// Per part, its id when it was accepted (all but the failed one may have gone through):
    /// what [`Pool::send_parts`] leaves out when the text is tried again.
    pub accepted: Vec<Option<String>>,
    pub error: SubmitError,
}

/// What a session slot is doing, for `/readyz`, logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotStatus {
    pub bound: bool,
    pub binds: u64,
    pub connect_attempts: u64,
    /// The last reason the slot was not bound, in words an operator can act on.
    pub last_error: Option<String>,
    /// The delay before the next connection attempt, when one is scheduled.
    pub next_attempt_in: Option<Duration>,
}

#[derive(Debug, Default)]
struct PoolState {
    slots: Mutex<Vec<SlotStatus>>,
    bound_transmitters: AtomicUsize,
    /// Per slot, what its session waits for (see [`Pool::describe`]).
    loads: Vec<Arc<SlotLoad>>,
}

/// See the module documentation.
pub struct Pool {
    name: Arc<str>,
    jobs: mpsc::Sender<SubmitJob>,
    state: Arc<PoolState>,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    reference: AtomicU8,
    source: (String, u8, u8),
    registered_delivery: bool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts the session supervisors. MOs and receipts arrive on the returned receiver
    /// (bounded by `inbound_capacity`; when it is full, inbound messages are answered
    /// ESME_RX_T_APPN and the SMSC retries them).
    pub fn start(
        config: PoolConfig,
        inbound_capacity: usize,
    ) -> (Pool, mpsc::Receiver<InboundMessage>) {
        let (jobs_tx, jobs_rx) = mpsc::channel(1024);
        let (inbound_tx, inbound_rx) = mpsc::channel(inbound_capacity.max(1));
        let name: Arc<str> = config.name.as_str().into();
        super::telemetry::register(&name, config.bind);
        let jobs = Arc::new(tokio::sync::Mutex::new(jobs_rx));
        let limiter = (config.tps > 0).then(|| {
            // A tenth of a second's worth may go back to back.
            Arc::new(Mutex::new(TpsLimiter::new(
                config.tps,
                (config.tps / 10).max(1),
            )))
        });
        let modes: Vec<BindMode> = match config.bind {
            BindKind::Transceiver => vec![BindMode::Transceiver; config.sessions.max(1)],
            BindKind::Pair => (0..config.sessions.max(1))
                .flat_map(|_| [BindMode::Transmitter, BindMode::Receiver])
                .collect(),
        };
        let state = Arc::new(PoolState {
            slots: Mutex::new(vec![SlotStatus::default(); modes.len()]),
            bound_transmitters: AtomicUsize::new(0),
            loads: (0..modes.len()).map(|_| Arc::default()).collect(),
        });
        let shutdown = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (slot, mode) in modes.into_iter().enumerate() {
            let shared = Shared {
                smsc: name.clone(),
                jobs: (mode != BindMode::Receiver).then(|| jobs.clone()),
                inbound: inbound_tx.clone(),
                limiter: limiter.clone(),
                max_command_length: config.max_command_length,
                load: state.loads[slot].clone(),
            };
            let mut session = config.session.clone();
            session.bind_mode = mode;
            tasks.spawn(supervise(
                slot,
                config.clone(),
                session,
                shared,
                state.clone(),
                shutdown.clone(),
            ));
        }
        let pool = Pool {
            name,
            jobs: jobs_tx,
            state,
            shutdown,
            tasks: Mutex::new(tasks),
            reference: AtomicU8::new(0),
            source: (
                config.source_addr,
                config.source_addr_ton,
                config.source_addr_npi,
            ),
            registered_delivery: config.registered_delivery,
        };
        (pool, inbound_rx)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sessions currently bound that can submit (transmitters and transceivers).
    pub fn bound(&self) -> usize {
        self.state.bound_transmitters.load(Ordering::Relaxed)
    }

    /// What each slot still waits for, in words, for a stop that ran out of time: `slot 0:
    /// bound, 2 submit_sm unanswered, 1 MO not yet acknowledged`. Empty when nothing waits.
    pub fn describe(&self) -> Vec<String> {
        let slots = self.status();
        (self.state.loads.iter().zip(&slots).enumerate())
            .filter_map(|(i, (load, status))| {
                let (submits, unacked) = (
                    load.submits.load(Ordering::Relaxed),
                    load.unacked.load(Ordering::Relaxed),
                );
                let doing = if load.connecting.load(Ordering::Relaxed) {
                    "connecting (TCP or TLS handshake)".to_owned()
                } else if load.unbinding.load(Ordering::Relaxed) {
                    "waiting for unbind_resp".to_owned()
                } else if status.bound && (submits > 0 || unacked > 0) {
                    format!(
                        "bound, {submits} submit_sm unanswered, {unacked} MO not yet acknowledged"
                    )
                } else if status.bound {
                    "bound, about to unbind".to_owned()
                } else {
                    return None;
                };
                Some(format!("smsc {} slot {i}: {doing}", self.name))
            })
            .collect()
    }

    pub fn status(&self) -> Vec<SlotStatus> {
        self.state
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues one request (built with rusmpp) and waits for its outcome. Waits, rather than
    /// failing, while no session is bound or every window is full.
    pub async fn submit(&self, mut command: rusmpp::Command) -> Result<String, SubmitError> {
        loop {
            let reply = self.enqueue(command).await?;
            match reply.await {
                Ok(Ok(outcome)) => return outcome_to_result(outcome),
                // Never sent: queue it again.
                Ok(Err(not_sent)) => command = not_sent.0,
                Err(_) => return Err(SubmitError::Shutdown),
            }
        }
    }

    async fn enqueue(
        &self,
        command: rusmpp::Command,
    ) -> Result<oneshot::Receiver<JobResult>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(SubmitJob { command, reply })
            .await
            .map_err(|_| SubmitError::Shutdown)?;
        Ok(rx)
    }

    /// Sends `text` to `destination`: GSM 7-bit or UCS-2, split into concatenated parts when
    /// long. All parts are queued at once (they may travel on different sessions); the result
    /// lists every part's message id, or says which part failed.
    pub async fn send_text(&self, destination: &str, text: &str) -> Result<Sent, SendError> {
        let reference = self.reference.fetch_add(1, Ordering::Relaxed);
        self.send_parts(destination, text, reference, &[]).await
    }

    /// [`Pool::send_text`] under concatenation reference `reference`, leaving out the parts
    /// `accepted` has an id for: a retry sends only what did not get through, under the same
    /// reference, so the handset assembles one message.
    pub async fn send_parts(
        &self,
        destination: &str,
        text: &str,
        reference: u8,
        accepted: &[Option<String>],
    ) -> Result<Sent, SendError> {
        let encoded = text::encode(text, reference);
        let parts = encoded.parts.len();
        let mut ids: Vec<Option<String>> = (0..parts)
            .map(|i| accepted.get(i).cloned().flatten())
            .collect();
        let fail = |failed_part, accepted, error| SendError {
            parts,
            failed_part,
            accepted,
            error,
        };
        let mut submits = Vec::with_capacity(parts);
        for (i, part) in encoded.parts.iter().enumerate() {
            if ids[i].is_some() {
                continue;
            }
            let message = ShortMessage::part(
                Address {
                    ton: self.source.1,
                    npi: self.source.2,
                    addr: &self.source.0,
                },
                Address::international(destination),
                &encoded,
                part,
            )
            .registered_delivery(u8::from(self.registered_delivery));
            let command = encode::submit_sm(0, &message)
                .map_err(|e| fail(i + 1, ids.clone(), SubmitError::Encode(e)))?;
            submits.push((i, self.submit(command)));
        }
        let mut first_error = None;
        // Await in order; later parts keep going even if one fails, so the ids are complete.
        for (i, submit) in submits {
            match submit.await {
                Ok(id) => ids[i] = Some(id),
                Err(e) => {
                    first_error.get_or_insert((i + 1, e));
                }
            }
        }
        match first_error {
            None => Ok(Sent {
                message_ids: ids.into_iter().flatten().collect(),
            }),
            Some((part, error)) => Err(fail(part, ids, error)),
        }
    }

    /// Stops taking work, lets sessions finish what is in flight, unbinds, and waits for all
    /// session tasks. Jobs still queued are answered [`SubmitError::Shutdown`].
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        while tasks.join_next().await.is_some() {}
    }
}

fn outcome_to_result(outcome: Outcome) -> Result<String, SubmitError> {
    match outcome {
        Outcome::Accepted { message_id } => Ok(message_id),
        Outcome::Rejected { status } => Err(SubmitError::Rejected { status }),
        Outcome::Throttled { status } => Err(SubmitError::Throttled { status }),
        Outcome::TimedOut { after } => Err(SubmitError::TimedOut { after }),
        Outcome::LinkLost => Err(SubmitError::LinkLost),
    }
}

/// Whether a bind refusal means the credentials or account are wrong (retrying soon won't help).
fn is_credentials(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::ESME_RINVPASWD
            | CommandStatus::ESME_RINVSYSID
            | CommandStatus::ESME_RBINDFAIL
            | CommandStatus::ESME_RINVSYSTYP
    )
}

/// Keeps one session slot connected and bound until shutdown.
async fn supervise(
    slot: usize,
    config: PoolConfig,
    session: SessionConfig,
    shared: Shared,
    state: Arc<PoolState>,
    shutdown: CancellationToken,
) {
    let seed = SplitMix64(slot as u64 ^ std::process::id() as u64 ^ nanos()).next_u64();
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max, seed);
    let name = shared.smsc.clone();
    let mode = session.bind_mode;
    let update = {
        let state = state.clone();
        move |f: &dyn Fn(&mut SlotStatus)| {
            let mut slots = state.slots.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut slots[slot]);
        }
    };
    let observer: Observer = {
        let state = state.clone();
        let name = name.clone();
        Arc::new(move |event: &Event| match event {
            Event::Bound { system_id } => {
                tracing::info!(smsc = %name, slot, ?mode, peer = %system_id, "bound");
                if mode != BindMode::Receiver {
                    state.bound_transmitters.fetch_add(1, Ordering::Relaxed);
                }
                let mut slots = state.slots.lock().unwrap_or_else(|p| p.into_inner());
                slots[slot].bound = true;
                slots[slot].binds += 1;
                slots[slot].last_error = None;
            }
            Event::Closed { reason } => {
                let mut slots = state.slots.lock().unwrap_or_else(|p| p.into_inner());
                if slots[slot].bound && mode != BindMode::Receiver {
                    state.bound_transmitters.fetch_sub(1, Ordering::Relaxed);
                }
                slots[slot].bound = false;
                tracing::info!(smsc = %name, slot, ?reason, "session closed");
            }
            Event::Throttled { status, pause } => {
                tracing::debug!(smsc = %name, slot, %status, ?pause, "throttled by the smsc");
            }
            Event::Malformed { error } => {
                tracing::warn!(smsc = %name, slot, %error, "malformed pdu from the smsc (answered generic_nack)");
            }
            Event::Refused { command_id, status } => {
                tracing::warn!(smsc = %name, slot, command = command_id.name(), %status, "refused a pdu from the smsc");
            }
            _ => {}
        })
    };

    while !shutdown.is_cancelled() {
        update(&|s| {
            s.connect_attempts += 1;
            s.next_attempt_in = None;
        });
        let load = &state.loads[slot];
        load.connecting(true);
        // A connect (TCP, then the TLS handshake) may take its own timeout; a stop does not
        // wait for it.
        let connected = tokio::select! {
            connected = (config.connector)() => connected,
            () = shutdown.cancelled() => {
                load.connecting(false);
                break;
            }
        };
        load.connecting(false);
        let delay = match connected {
            Err(e) if HandshakeError::is(&e) => {
                // A certificate or name that does not verify will not fix itself: say so
                // loudly, and keep trying at the normal pace (the carrier may renew it).
                let why = e.to_string();
                tracing::error!(smsc = %name, slot, "{why}");
                update(&|s| s.last_error = Some(why.clone()));
                backoff.next_delay()
            }
            Err(e) => {
                let why = format!("cannot connect: {e}");
                tracing::warn!(smsc = %name, slot, "{why}");
                update(&|s| s.last_error = Some(why.clone()));
                backoff.next_delay()
            }
            Ok(io) => {
                let end = run_session(io, session.clone(), &shared, &observer, &shutdown).await;
                if let Some(error) = &end.error {
                    tracing::warn!(smsc = %name, slot, %error, "connection lost");
                }
                match end.reason {
                    CloseReason::BindRejected { status } if is_credentials(status) => {
                        let why = format!(
                            "bind rejected with {status}: check system_id and password of [[smsc]] \"{name}\"; retrying slowly"
                        );
                        tracing::error!(smsc = %name, slot, "{why}");
                        update(&|s| s.last_error = Some(why.clone()));
                        backoff.next_long_delay()
                    }
                    reason => {
                        if end.was_bound {
                            backoff.reset();
                        }
                        let why = match reason {
                            CloseReason::BindRejected { status } => {
                                format!("bind rejected with {status}")
                            }
                            CloseReason::BindTimedOut => "no answer to bind".to_owned(),
                            CloseReason::LinkDead => {
                                "enquire_link unanswered; link dead".to_owned()
                            }
                            CloseReason::Unbound => "unbound".to_owned(),
                            CloseReason::UnbindTimedOut => "unbind unanswered".to_owned(),
                            // The I/O error says more than the reason when there is one: a
                            // TLS alert after the handshake ("CertificateRequired") lands here.
                            CloseReason::ConnectionLost => match &end.error {
                                Some(error) => format!("connection lost: {error}"),
                                None => "connection lost".to_owned(),
                            },
                        };
                        update(&|s| s.last_error = Some(why.clone()));
                        backoff.next_delay()
                    }
                }
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        update(&|s| s.next_attempt_in = Some(delay));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
