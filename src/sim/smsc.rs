//! The simulated SMSC: a TCP listener, one task per ESME connection, a shared queue of
//! deliver_sm waiting for a receiver, and a scheduler for what must happen later (receipts,
//! retries).
//!
//! Owns: bind checks, the operation matrix (a transmitter never gets deliver_sm, a receiver
//! cannot submit), submit_sm answers (message ids, latency, throttling), delivery receipts, the
//! SMSC side of MO delivery (window, response timeout, retry until answered for good, across
//! reconnects), enquire_link, unbind, generic_nack for what it cannot take, fault injection, and
//! the reassembled view of what was submitted ([`Submitted`]).
//!
//! Must not: build or parse PDUs by hand (everything goes through [`crate::smpp`]), hold a lock
//! across `.await` (locks are `std::sync::Mutex`, held for a push or a pop), or lose a
//! deliver_sm: every one either gets a final answer, or is dropped with its
//! [`DeliveryHandle`] reporting [`SimError::Stopped`] at [`SmscHandle::shutdown`].
//!
//! It is also the load generator of the benches, so the per-PDU path avoids allocating: frames
//! are cut from one read buffer, answers go into one write buffer that is flushed once per read,
//! deliver_sm frames are encoded once and only their sequence number is patched per attempt.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::handsets::{self, Handsets};
use super::{
    Mo, RawDeliver, SimAddress, SimConfig, SimError, SimStats, SplitMix64, Submitted, unreachable,
};
use crate::smpp::concat::{MessageKey, Offer, Part, Reassembler};
use crate::smpp::encode::{self, Address, BindMode, Param, ShortMessage};
use crate::smpp::pdu::{Bind, Sm};
use crate::smpp::text::{self, MessageBody};
use crate::smpp::udh::UDHI;
use crate::smpp::{CommandId, CommandStatus, FrameCodec, FrameError, Pdu};

/// How long an ESME may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session waits for unbind_resp after the simulator's unbind.
const UNBIND_WAIT: Duration = Duration::from_secs(1);
/// Bytes read per syscall at most; a burst of submit_sm is answered in one write.
const READ_BUFFER: usize = 64 * 1024;
/// Answers not yet written before the simulator stops reading from a peer that does not read.
const MAX_WRITE_BACKLOG: usize = 1024 * 1024;
/// Receivers of [`SmscHandle::submitted`] that fall further behind than this miss events.
const SUBMITTED_CAPACITY: usize = 8192;
/// How long the parts of a concatenated MT may wait for the rest before they are dropped from
/// the [`Submitted`] view.
const MT_ASSEMBLY_TTL: Duration = Duration::from_secs(600);
/// Incomplete concatenated MT messages held at once for the [`Submitted`] view.
const MT_ASSEMBLY_MAX_PENDING: usize = 10_000;
/// esm_class message type "SMSC delivery receipt" (SMPP 3.4 §5.2.12).
const ESM_CLASS_RECEIPT: u8 = 0x04;
/// registered_delivery bits asking for a receipt on final outcome (SMPP 3.4 §5.2.17).
const RECEIPT_REQUESTED: u8 = 0x01;
/// message_state values (SMPP 3.4 §5.2.28).
const STATE_DELIVERED: u8 = 2;
const STATE_UNDELIVERABLE: u8 = 5;

/// Opens the listener and starts the simulator; it runs until [`SmscHandle::shutdown`].
pub async fn start(config: SimConfig) -> Result<SmscHandle, SimError> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: config.listen,
        source,
    })?;
    let (scheduler_tx, scheduler_rx) = mpsc::unbounded_channel();
    let (handsets_tx, handsets_rx) = match config.subscribers {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let first_message_id = 0x1000_0000 + SplitMix64::new(config.seed).next_u64() % 0xE000_0000;
    let shared = Arc::new(Shared {
        local_addr,
        submit_latency_nanos: AtomicU64::new(nanos(config.submit_latency)),
        throttle_next: AtomicU64::new(0),
        resend_early: AtomicU64::new(0),
        swallow_submits: AtomicU64::new(0),
        reject_binds: AtomicBool::new(false),
        next_message_id: AtomicU64::new(first_message_id),
        next_mo_reference: AtomicU32::new(0),
        stats: Stats::default(),
        deliveries: Mutex::new(VecDeque::new()),
        deliveries_ready: Notify::new(),
        scheduler: scheduler_tx,
        submitted: broadcast::channel(SUBMITTED_CAPACITY).0,
        handsets: handsets_tx,
        mt_assembly: Mutex::new(MtAssembly {
            reassembler: Reassembler::new(MT_ASSEMBLY_TTL, MT_ASSEMBLY_MAX_PENDING),
            ids: HashMap::new(),
        }),
        tps: config
            .max_tps
            .map(|rate| Mutex::new(TokenBucket::new(rate, Instant::now()))),
        control: broadcast::channel(16).0,
        accepting: CancellationToken::new(),
        stop: CancellationToken::new(),
        sessions: TaskTracker::new(),
        accept_task: Mutex::new(None),
        config,
    });
    tokio::spawn(run_scheduler(shared.clone(), scheduler_rx));
    let handle = SmscHandle {
        shared: shared.clone(),
    };
    if let (Some(subscribers), Some(rx)) = (&shared.config.subscribers, handsets_rx) {
        let handsets = Handsets::new(subscribers.clone(), shared.config.seed);
        handsets::spawn(handle.clone(), handsets, rx, shared.stop.clone());
    }
    let accept = tokio::spawn(accept_loop(shared.clone(), listener));
    *lock(&shared.accept_task) = Some(accept);
    info!(
        %local_addr,
        system_id = %shared.config.system_id,
        tls = shared.config.tls.is_some(),
        "smsc simulator listening"
    );
    Ok(handle)
}

/// The caller's side of a running simulator: injection, fault injection, observation,
/// shutdown. Cheap to clone.
#[derive(Clone)]
pub struct SmscHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SmscHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmscHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl SmscHandle {
    /// The address the listener got (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Sends `mo` to a bound receiver or transceiver as one deliver_sm, or as several with a
    /// concatenation UDH when the text is longer than one SMS (GSM 03.38 when it fits, else
    /// UCS-2). Queued until a receiver is bound; re-sent until answered for good.
    pub fn inject_mo(&self, mo: Mo) -> Result<DeliveryHandle, SimError> {
        // The UDH reference is 8-bit; wrapping is what real handsets do too.
        let reference = self.shared.next_mo_reference.fetch_add(1, Relaxed) as u8;
        let encoded = text::encode(&mo.text, reference);
        let esm_class = if encoded.needs_udhi() { UDHI } else { 0 };
        let (source, destination) = (
            SimAddress::guess(&mo.source),
            SimAddress::guess(&mo.destination),
        );
        let frames = encoded
            .parts
            .iter()
            .map(|part| {
                let message = ShortMessage {
                    service_type: "",
                    source: address(&source),
                    destination: address(&destination),
                    esm_class,
                    registered_delivery: 0,
                    data_coding: encoded.data_coding(),
                    short_message: part,
                    params: Vec::new(),
                };
                Ok(encode::to_frame(&encode::deliver_sm(0, &message)?))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        Ok(self.shared.inject(frames))
    }

    /// Sends one deliver_sm exactly as described (codings, UDH, SAR TLVs, receipts, ...).
    pub fn inject_deliver(&self, raw: RawDeliver) -> Result<DeliveryHandle, SimError> {
        let params = raw
            .tlvs
            .iter()
            .map(|(tag, value)| Param::Other { tag: *tag, value })
            .collect();
        let message = ShortMessage {
            service_type: &raw.service_type,
            source: address(&raw.source),
            destination: address(&raw.destination),
            esm_class: raw.esm_class,
            registered_delivery: raw.registered_delivery,
            data_coding: raw.data_coding,
            short_message: &raw.short_message,
            params,
        };
        let frame = encode::to_frame(&encode::deliver_sm(0, &message)?);
        Ok(self.shared.inject(vec![frame]))
    }

    /// Every message submitted from now on, reassembled. Lagging receivers miss events (see
    /// [`broadcast`]); the counters in [`SmscHandle::stats`] never miss anything.
    pub fn submitted(&self) -> broadcast::Receiver<Submitted> {
        self.shared.submitted.subscribe()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats.snapshot()
    }

    /// A message handed to the simulated people was answered, or will not be.
    pub(crate) fn reply_settled(&self) {
        self.shared.stats.replies_pending.fetch_sub(1, Relaxed);
    }

    /// Delay every submit_sm_resp from now on by `latency`.
    pub fn set_submit_latency(&self, latency: Duration) {
        self.shared
            .submit_latency_nanos
            .store(nanos(latency), Relaxed);
    }

    /// Answer the next `n` submit_sm with ESME_RTHROTTLED (adds to any still pending).
    pub fn throttle_next(&self, n: u64) {
        self.shared.throttle_next.fetch_add(n, Relaxed);
    }

    /// Takes the next `n` submit_sm without answering or keeping them: a part lost on the
    /// way, which the ESME times out and sends again.
    pub fn swallow_next_submits(&self, n: u64) {
        self.shared.swallow_submits.fetch_add(n, Relaxed);
    }

    /// Sends each of the next `n` MOs twice in a row, the copy before the first's
    /// deliver_sm_resp can have come back: an SMSC that gave up on the response too early.
    /// The copy's own response settles nothing.
    pub fn resend_next_mos_early(&self, n: u64) {
        self.shared.resend_early.fetch_add(n, Relaxed);
    }

    /// Refuse every bind with ESME_RBINDFAIL while `reject` is true.
    pub fn reject_binds(&self, reject: bool) {
        self.shared.reject_binds.store(reject, Relaxed);
    }

    /// Closes every session abruptly, without unbind: what a network failure looks like.
    /// Unanswered deliver_sm are retried once an ESME binds again.
    pub fn disconnect_all(&self) {
        // No receivers just means no sessions.
        let _ = self.shared.control.send(Control::Disconnect);
    }

    /// Stops accepting, unbinds every session (waiting up to a second for unbind_resp), closes
    /// them, and stops the timers. Deliver_sm not answered for good by then are dropped and
    /// their handles report [`SimError::Stopped`]. Safe to call twice.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.accepting.cancel();
        let accept = lock(&shared.accept_task).take();
        if let Some(accept) = accept {
            // The accept loop only ends; a panic in it would already have been logged.
            let _ = accept.await;
        }
        let _ = shared.control.send(Control::Unbind);
        shared.sessions.close();
        let grace = UNBIND_WAIT + Duration::from_millis(500);
        if tokio::time::timeout(grace, shared.sessions.wait())
            .await
            .is_err()
        {
            let _ = shared.control.send(Control::Disconnect);
            shared.sessions.wait().await;
        }
        shared.stop.cancel();
        let dropped = std::mem::take(&mut *lock(&shared.deliveries));
        if !dropped.is_empty() {
            warn!(
                count = dropped.len(),
                "smsc simulator stopped with deliver_sm never answered"
            );
        }
        info!("smsc simulator stopped");
    }
}

/// Resolves when the ESME has answered every part of an injected message for good.
#[derive(Debug)]
#[must_use = "the handle tells whether the ESME took the message"]
pub struct DeliveryHandle {
    parts: Vec<oneshot::Receiver<CommandStatus>>,
}

impl DeliveryHandle {
    /// How many deliver_sm the message took.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// ESME_ROK when every part was acknowledged, else the first permanent error
    /// (ESME_RX_P_APPN or ESME_RX_R_APPN). Temporary errors are retried, not reported.
    pub async fn outcome(self) -> Result<CommandStatus, SimError> {
        let mut outcome = CommandStatus::ESME_ROK;
        for part in self.parts {
            let status = part.await.map_err(|_| SimError::Stopped)?;
            if outcome.is_ok() {
                outcome = status;
            }
        }
        Ok(outcome)
    }
}

/// Orders to every session at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// Close now, without unbind.
    Disconnect,
    /// Send unbind, then close.
    Unbind,
}

/// State every session and the handle share.
struct Shared {
    config: SimConfig,
    local_addr: SocketAddr,
    submit_latency_nanos: AtomicU64,
    throttle_next: AtomicU64,
    resend_early: AtomicU64,
    swallow_submits: AtomicU64,
    reject_binds: AtomicBool,
    next_message_id: AtomicU64,
    next_mo_reference: AtomicU32,
    stats: Stats,
    /// deliver_sm ready to be sent, oldest first, taken by any receiver-capable session with
    /// room in its window.
    deliveries: Mutex<VecDeque<Delivery>>,
    /// Wakes one session waiting for `deliveries`; a session that cannot take everything
    /// passes the wake-up on.
    deliveries_ready: Notify,
    /// deliver_sm that must wait (receipt delay, retry delay).
    scheduler: mpsc::UnboundedSender<Scheduled>,
    submitted: broadcast::Sender<Submitted>,
    handsets: Option<mpsc::UnboundedSender<Submitted>>,
    mt_assembly: Mutex<MtAssembly>,
    tps: Option<Mutex<TokenBucket>>,
    control: broadcast::Sender<Control>,
    accepting: CancellationToken,
    stop: CancellationToken,
    sessions: TaskTracker,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

/// Locks, ignoring poisoning: every critical section here is a push, a pop or a counter
/// update, which cannot leave the data half-changed.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn address(a: &SimAddress) -> Address<'_> {
    Address {
        ton: a.ton,
        npi: a.npi,
        addr: &a.addr,
    }
}

impl Shared {
    fn submit_latency(&self) -> Duration {
        Duration::from_nanos(self.submit_latency_nanos.load(Relaxed))
    }

    /// Queues the parts of one injected message.
    fn inject(&self, frames: Vec<Bytes>) -> DeliveryHandle {
        let mut parts = Vec::with_capacity(frames.len());
        let count = frames.len() as u64;
        self.stats.mo_injected.fetch_add(count, Relaxed);
        self.stats.mo_pending.fetch_add(count, Relaxed);
        for frame in frames {
            let (tx, rx) = oneshot::channel();
            parts.push(rx);
            self.enqueue(Delivery {
                kind: DeliveryKind::Mo,
                frame,
                sends: 0,
                done: Some(tx),
            });
        }
        DeliveryHandle { parts }
    }

    fn enqueue(&self, delivery: Delivery) {
        if self.stop.is_cancelled() {
            self.drop_delivery(delivery);
            return;
        }
        lock(&self.deliveries).push_back(delivery);
        self.deliveries_ready.notify_one();
    }

    /// Forgets a delivery for good (the simulator is stopping); its handle reports `Stopped`.
    fn drop_delivery(&self, delivery: Delivery) {
        match delivery.kind {
            DeliveryKind::Mo => self.stats.mo_pending.fetch_sub(1, Relaxed),
            DeliveryKind::Receipt => self.stats.receipts_pending.fetch_sub(1, Relaxed),
        };
    }

    fn schedule(&self, due: Instant, delivery: Delivery) {
        if due <= Instant::now() {
            self.enqueue(delivery);
        } else if let Err(mpsc::error::SendError(scheduled)) =
            self.scheduler.send(Scheduled { due, delivery })
        {
            // The scheduler only ends when the simulator stops.
            self.drop_delivery(scheduled.delivery);
        }
    }

    /// The ESME answered a deliver_sm: final for ESME_ROK and the permanent errors, else the
    /// SMSC tries again later.
    fn settle(&self, delivery: Delivery, status: CommandStatus) {
        let permanent = matches!(
            status,
            CommandStatus::ESME_RX_P_APPN | CommandStatus::ESME_RX_R_APPN
        );
        if !status.is_ok() && !permanent {
            debug!(%status, "deliver_sm refused for now; will retry");
            self.retry(delivery);
            return;
        }
        if delivery.kind == DeliveryKind::Mo {
            let counter = if status.is_ok() {
                &self.stats.mo_delivered
            } else {
                &self.stats.mo_rejected
            };
            counter.fetch_add(1, Relaxed);
            self.stats.mo_pending.fetch_sub(1, Relaxed);
        } else {
            self.stats.receipts_pending.fetch_sub(1, Relaxed);
        }
        if let Some(done) = delivery.done {
            // The caller may have dropped its handle; that is its business.
            let _ = done.send(status);
        }
    }

    fn retry(&self, delivery: Delivery) {
        self.schedule(Instant::now() + self.config.retry_delay, delivery);
    }

    /// Whether this submit_sm is to be refused with ESME_RTHROTTLED.
    fn throttles(&self, now: Instant) -> bool {
        if take_one(&self.throttle_next) {
            return true;
        }
        self.tps
            .as_ref()
            .is_some_and(|bucket| !lock(bucket).take(now))
    }

    /// Whether messages to `number` never reach a handset: their receipts say UNDELIV and
    /// nobody answers them. The same for every message to the number, whatever order, session
    /// or thread they come in.
    fn unreachable(&self, number: &str) -> bool {
        unreachable(self.config.seed, self.config.receipt_failure_share, number)
    }

    /// The delivery receipt for the accepted submit_sm `sm` (message id `id`).
    fn receipt(&self, id: &str, sm: &Sm<'_>) -> Result<Delivery, SimError> {
        let to = sm.destination_addr.to_str_lossy();
        let (dlvrd, stat, err, state) = if self.unreachable(&to) {
            ("000", "UNDELIV", "001", STATE_UNDELIVERABLE)
        } else {
            ("001", "DELIVRD", "000", STATE_DELIVERED)
        };
        let now = SystemTime::now();
        let text = format!(
            "id:{id} sub:001 dlvrd:{dlvrd} submit date:{} done date:{} stat:{stat} err:{err} text:{}",
            receipt_date(now),
            receipt_date(now + self.config.receipt_delay),
            receipt_excerpt(sm),
        );
        // The receipt comes from the handset the message went to.
        let (source, destination) = (
            sm.destination_addr.to_str_lossy(),
            sm.source_addr.to_str_lossy(),
        );
        let message = ShortMessage {
            service_type: "",
            source: Address {
                ton: sm.dest_addr_ton.value(),
                npi: sm.dest_addr_npi.value(),
                addr: &source,
            },
            destination: Address {
                ton: sm.source_addr_ton.value(),
                npi: sm.source_addr_npi.value(),
                addr: &destination,
            },
            esm_class: ESM_CLASS_RECEIPT,
            registered_delivery: 0,
            data_coding: 0,
            short_message: text.as_bytes(),
            params: vec![Param::ReceiptedMessageId(id), Param::MessageState(state)],
        };
        Ok(Delivery {
            kind: DeliveryKind::Receipt,
            frame: encode::to_frame(&encode::deliver_sm(0, &message)?),
            sends: 0,
            done: None,
        })
    }

    /// Feeds an accepted submit_sm to the [`Submitted`] view, if anyone looks at it.
    fn observe_submit(&self, system_id: &str, sm: &Sm<'_>, message_id: &str) {
        let broadcast = self.submitted.receiver_count() > 0;
        if !broadcast && self.handsets.is_none() {
            return;
        }
        let Some(event) = self.assemble(system_id, sm, message_id) else {
            return;
        };
        if let Some(handsets) = &self.handsets
            && !self.unreachable(&event.destination)
        {
            self.stats.replies_pending.fetch_add(1, Relaxed);
            if handsets.send(event.clone()).is_err() {
                // Closed only when the simulator stops: no reply will come.
                self.stats.replies_pending.fetch_sub(1, Relaxed);
            }
        }
        if broadcast {
            // No receivers left since the check above: nothing to do.
            let _ = self.submitted.send(event);
        }
    }

    /// The whole message once its last part is in; `None` while parts are missing.
    fn assemble(&self, system_id: &str, sm: &Sm<'_>, message_id: &str) -> Option<Submitted> {
        let single = |sm: &Sm<'_>| Submitted {
            system_id: system_id.to_owned(),
            source: sm.source_addr.to_str_lossy().into_owned(),
            destination: sm.destination_addr.to_str_lossy().into_owned(),
            text: body_text(text::decode(sm.data_coding, sm.payload())),
            message_ids: vec![message_id.to_owned()],
            data_coding: sm.data_coding,
            registered_delivery: sm.registered_delivery,
        };
        let Some(part) = Part::from_sm(sm) else {
            return Some(single(sm));
        };
        let key = MessageKey {
            source: part.source.clone(),
            destination: part.destination.clone(),
            reference: part.concat.reference,
            total: part.concat.total,
        };
        let seq = part.concat.seq;
        let now = SystemTime::now();
        let mut assembly = lock(&self.mt_assembly);
        let MtAssembly { reassembler, ids } = &mut *assembly;
        for lost in reassembler
            .expire(now)
            .into_iter()
            .chain(reassembler.take_evicted())
        {
            warn!(
                source = %lost.key.source,
                destination = %lost.key.destination,
                missing = ?lost.missing,
                "concatenated submit_sm never completed; left out of the submitted view"
            );
            ids.remove(&lost.key);
        }
        match reassembler.offer(now, part) {
            Ok(Offer::Complete(assembled)) => {
                let mut message_ids = ids.remove(&assembled.key).unwrap_or_default();
                drop(assembly);
                message_ids.push((seq, message_id.to_owned()));
                message_ids.sort_unstable();
                Some(Submitted {
                    system_id: system_id.to_owned(),
                    source: key.source,
                    destination: key.destination,
                    text: body_text(assembled.body()),
                    message_ids: message_ids.into_iter().map(|(_, id)| id).collect(),
                    data_coding: assembled
                        .parts
                        .first()
                        .map_or(sm.data_coding, |p| p.data_coding),
                    registered_delivery: sm.registered_delivery,
                })
            }
            Ok(Offer::Stored { .. }) => {
                ids.entry(key)
                    .or_default()
                    .push((seq, message_id.to_owned()));
                None
            }
            Ok(Offer::Duplicate) => None,
            Err(error) => {
                drop(assembly);
                warn!(%error, "submit_sm has a concatenation header that cannot be placed");
                Some(single(sm))
            }
        }
    }
}

fn body_text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(octets) => String::from_utf8_lossy(&octets).into_owned(),
    }
}

/// Concatenated MT parts waiting for the rest, and the message id given to each.
struct MtAssembly {
    reassembler: Reassembler,
    ids: HashMap<MessageKey, Vec<(u8, String)>>,
}

/// The counters behind [`SimStats`].
#[derive(Default)]
struct Stats {
    binds_accepted: AtomicU64,
    binds_rejected: AtomicU64,
    sessions_open: AtomicU64,
    sessions_bound: AtomicU64,
    submit_sm_received: AtomicU64,
    submit_sm_throttled: AtomicU64,
    receipts_sent: AtomicU64,
    mo_injected: AtomicU64,
    mo_delivered: AtomicU64,
    mo_rejected: AtomicU64,
    mo_pending: AtomicU64,
    mo_redelivered: AtomicU64,
    receipts_pending: AtomicU64,
    replies_pending: AtomicU64,
    generic_nacks_sent: AtomicU64,
    tls_handshakes_failed: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> SimStats {
        SimStats {
            binds_accepted: self.binds_accepted.load(Relaxed),
            binds_rejected: self.binds_rejected.load(Relaxed),
            sessions_open: self.sessions_open.load(Relaxed),
            sessions_bound: self.sessions_bound.load(Relaxed),
            submit_sm_received: self.submit_sm_received.load(Relaxed),
            submit_sm_throttled: self.submit_sm_throttled.load(Relaxed),
            receipts_sent: self.receipts_sent.load(Relaxed),
            mo_injected: self.mo_injected.load(Relaxed),
            mo_delivered: self.mo_delivered.load(Relaxed),
            mo_rejected: self.mo_rejected.load(Relaxed),
            mo_pending: self.mo_pending.load(Relaxed),
            mo_redelivered: self.mo_redelivered.load(Relaxed),
            receipts_pending: self.receipts_pending.load(Relaxed),
            replies_pending: self.replies_pending.load(Relaxed),
            generic_nacks_sent: self.generic_nacks_sent.load(Relaxed),
            tls_handshakes_failed: self.tls_handshakes_failed.load(Relaxed),
        }
    }
}

/// A submit_sm per second limit with one second of burst.
struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeliveryKind {
    Mo,
    Receipt,
}

/// One deliver_sm the simulator owes an ESME, until it is answered for good.
struct Delivery {
    kind: DeliveryKind,
    /// The whole frame, sequence_number 0; each attempt patches in its own.
    frame: Bytes,
    /// Attempts so far; more than one means redelivery.
    sends: u32,
    done: Option<oneshot::Sender<CommandStatus>>,
}

/// A delivery waiting for its time, ordered for a min-heap on `due`.
struct Scheduled {
    due: Instant,
    delivery: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        other.due.cmp(&self.due)
    }
}

/// Moves scheduled deliveries to the queue when they are due; ends when the simulator stops,
/// dropping what it still holds.
async fn run_scheduler(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Scheduled>) {
    let mut heap = BinaryHeap::<Scheduled>::new();
    loop {
        let next_due = heap.peek().map(|s| s.due);
        tokio::select! {
            () = shared.stop.cancelled() => break,
            received = rx.recv() => match received {
                Some(scheduled) => heap.push(scheduled),
                None => break,
            },
            () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|s| s.due <= now) {
                    if let Some(scheduled) = heap.pop() {
                        shared.enqueue(scheduled.delivery);
                    }
                }
            }
        }
    }
    for scheduled in heap
        .drain()
        .chain(std::iter::from_fn(|| rx.try_recv().ok()))
    {
        shared.drop_delivery(scheduled.delivery);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let acceptor = shared
        .config
        .tls
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            () = shared.accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        // Subscribed here, before the task runs, so a shutdown right after accept reaches it.
        let control = shared.control.subscribe();
        match &acceptor {
            None => {
                let session = Session::new(shared.clone(), peer);
                shared.sessions.spawn(session.serve_tcp(stream, control));
            }
            Some(acceptor) => {
                let task = serve_tls(shared.clone(), acceptor.clone(), stream, peer, control);
                shared.sessions.spawn(task);
            }
        }
    }
}

/// The TLS handshake, then the session over it. A failed handshake (an ESME that does not
/// trust us, or brings no client certificate when one is required) is logged and counted;
/// it never becomes a session.
async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    control: broadcast::Receiver<Control>,
) {
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
        // Shutdown does not wait for a handshake that may never finish.
        () = shared.accepting.cancelled() => return,
    };
    match handshake {
        Ok(Ok(tls)) => {
            let (reader, writer) = tokio::io::split(tls);
            let session = Session::new(shared.clone(), peer);
            session.serve(reader, writer, control).await;
        }
        Ok(Err(error)) => {
            shared.stats.tls_handshakes_failed.fetch_add(1, Relaxed);
            warn!(%peer, %error, "TLS handshake failed");
        }
        Err(_) => {
            shared.stats.tls_handshakes_failed.fetch_add(1, Relaxed);
            warn!(%peer, "TLS handshake timed out");
        }
    }
}

/// Writes some of `buf`, or flushes once it is all written (`None`): one future, so the
/// session loop borrows its writer once.
async fn write_or_flush(
    writer: &mut (impl AsyncWrite + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_buf(buf).await.map(Some)
    }
}

/// Why a session ended, for the log.
#[derive(Debug)]
enum SessionEnd {
    PeerClosed,
    UnboundByPeer,
    UnboundBySimulator,
    UnbindTimeout,
    EnquireLinkTimeout,
    Disconnected,
    Framing(FrameError),
    Io(std::io::Error),
}

/// What the ESME bound as.
struct Bound {
    mode: BindMode,
    system_id: String,
}

/// One ESME connection: the state the connection task drives. Dropping it returns every
/// unanswered deliver_sm to the queue.
struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    bound: Option<Bound>,
    next_sequence_number: u32,
    /// Answers and deliver_sm not written yet; flushed after each read.
    wbuf: BytesMut,
    /// deliver_sm sent and not answered, by sequence_number.
    in_flight: HashMap<u32, Delivery>,
    /// When each in-flight deliver_sm times out, in send order (the timeout is constant, so the
    /// front is always the earliest); entries of answered ones are skipped.
    response_deadlines: VecDeque<(Instant, u32)>,
    /// submit_sm_resp held back by the submit latency, in order.
    delayed_responses: VecDeque<(Instant, Bytes)>,
    enquire_link_due: Option<Instant>,
    /// Our enquire_link waiting for its answer: sequence_number and deadline.
    enquire_link_outstanding: Option<(u32, Instant)>,
    unbind_deadline: Option<Instant>,
    /// Set when the session is to end once `wbuf` is written.
    closing: Option<SessionEnd>,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        shared.stats.sessions_open.fetch_add(1, Relaxed);
        let enquire_link_due = shared
            .config
            .enquire_link_interval
            .map(|every| Instant::now() + every);
        Self {
            shared,
            peer,
            bound: None,
            next_sequence_number: 1,
            wbuf: BytesMut::with_capacity(READ_BUFFER),
            in_flight: HashMap::new(),
            response_deadlines: VecDeque::new(),
            delayed_responses: VecDeque::new(),
            enquire_link_due,
            enquire_link_outstanding: None,
            unbind_deadline: None,
            closing: None,
        }
    }

    async fn serve_tcp(self, mut stream: TcpStream, control: broadcast::Receiver<Control>) {
        // Borrowed halves: no lock between reading and writing on the plain (bench) path.
        let (reader, writer) = stream.split();
        self.serve(reader, writer, control).await;
    }

    async fn serve(
        mut self,
        reader: impl AsyncRead + Unpin,
        writer: impl AsyncWrite + Unpin,
        control: broadcast::Receiver<Control>,
    ) {
        debug!(peer = %self.peer, "esme connected");
        let end = self.run(reader, writer, control).await;
        let system_id = self.bound.as_ref().map_or("", |b| b.system_id.as_str());
        match &end {
            SessionEnd::Framing(error) => {
                warn!(peer = %self.peer, system_id, %error, "closing session: framing lost")
            }
            SessionEnd::Io(error) => {
                warn!(peer = %self.peer, system_id, %error, "session closed by i/o error")
            }
            SessionEnd::EnquireLinkTimeout | SessionEnd::UnbindTimeout => {
                warn!(peer = %self.peer, system_id, reason = ?end, "closing unresponsive session")
            }
            _ => info!(peer = %self.peer, system_id, reason = ?end, "session closed"),
        }
    }

    async fn run(
        &mut self,
        mut reader: impl AsyncRead + Unpin,
        mut writer: impl AsyncWrite + Unpin,
        mut control: broadcast::Receiver<Control>,
    ) -> SessionEnd {
        // A TLS writer may keep records it took but could not send yet: flush once the
        // buffer is written (a no-op on TCP).
        let mut unflushed = false;
        let mut codec = FrameCodec::default();
        let mut rbuf = BytesMut::with_capacity(READ_BUFFER);
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            self.take_deliveries();
            if self.wbuf.is_empty()
                && !unflushed
                && let Some(end) = self.closing.take()
            {
                return end;
            }
            let deadline = self.next_deadline();
            if let Some(deadline) = deadline {
                timer.as_mut().reset(deadline);
            }
            if rbuf.capacity() - rbuf.len() < 4096 {
                rbuf.reserve(READ_BUFFER);
            }
            let read_open = self.closing.is_none() && self.wbuf.len() < MAX_WRITE_BACKLOG;
            let wants_deliveries = self.wants_deliveries();
            tokio::select! {
                biased;
                written = write_or_flush(&mut writer, &mut self.wbuf),
                    if !self.wbuf.is_empty() || unflushed =>
                {
                    match written {
                        Ok(Some(0)) => return SessionEnd::PeerClosed,
                        Ok(Some(_)) => unflushed = true,
                        Ok(None) => unflushed = false,
                        Err(error) => return SessionEnd::Io(error),
                    }
                }
                read = reader.read_buf(&mut rbuf), if read_open => {
                    match read {
                        Ok(0) => return SessionEnd::PeerClosed,
                        Ok(_) => {}
                        Err(error) => return SessionEnd::Io(error),
                    }
                    let now = Instant::now();
                    while self.closing.is_none() {
                        match codec.decode(&mut rbuf) {
                            Ok(Some(frame)) => self.handle_frame(&frame, now),
                            Ok(None) => break,
                            Err(error) => return SessionEnd::Framing(error),
                        }
                    }
                }
                order = control.recv() => match order {
                    Ok(Control::Disconnect) | Err(broadcast::error::RecvError::Closed) => {
                        return SessionEnd::Disconnected;
                    }
                    Ok(Control::Unbind) => self.start_unbind(Instant::now()),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
                () = self.shared.deliveries_ready.notified(), if wants_deliveries => {}
                () = &mut timer, if deadline.is_some() => {
                    if let Some(end) = self.on_timer(Instant::now()) {
                        return end;
                    }
                }
            }
        }
    }

    fn receiver_capable(&self) -> bool {
        self.bound
            .as_ref()
            .is_some_and(|b| b.mode != BindMode::Transmitter)
    }

    fn wants_deliveries(&self) -> bool {
        self.receiver_capable()
            && self.closing.is_none()
            && self.unbind_deadline.is_none()
            && self.in_flight.len() < self.shared.config.window
    }

    /// Takes queued deliver_sm up to the window and writes them.
    fn take_deliveries(&mut self) {
        if !self.wants_deliveries() {
            return;
        }
        let room = self.shared.config.window - self.in_flight.len();
        let (taken, more_left) = {
            let mut queue = lock(&self.shared.deliveries);
            let n = room.min(queue.len());
            let taken: Vec<Delivery> = queue.drain(..n).collect();
            (taken, !queue.is_empty())
        };
        if more_left {
            // This session is full; let another receiver take the rest.
            self.shared.deliveries_ready.notify_one();
        }
        let deadline = Instant::now() + self.shared.config.response_timeout;
        for mut delivery in taken {
            let sequence_number = self.sequence_number();
            let start = self.wbuf.len();
            self.wbuf.extend_from_slice(&delivery.frame);
            if let Some(field) = self.wbuf.get_mut(start + 12..start + 16) {
                field.copy_from_slice(&sequence_number.to_be_bytes());
            }
            delivery.sends += 1;
            match (delivery.kind, delivery.sends) {
                (DeliveryKind::Mo, 2..) => {
                    self.shared.stats.mo_redelivered.fetch_add(1, Relaxed);
                }
                (DeliveryKind::Receipt, 1) => {
                    self.shared.stats.receipts_sent.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            if delivery.kind == DeliveryKind::Mo && take_one(&self.shared.resend_early) {
                let copy = self.sequence_number();
                let start = self.wbuf.len();
                self.wbuf.extend_from_slice(&delivery.frame);
                if let Some(field) = self.wbuf.get_mut(start + 12..start + 16) {
                    field.copy_from_slice(&copy.to_be_bytes());
                }
                self.shared.stats.mo_redelivered.fetch_add(1, Relaxed);
            }
            self.in_flight.insert(sequence_number, delivery);
            self.response_deadlines
                .push_back((deadline, sequence_number));
        }
    }

    fn sequence_number(&mut self) -> u32 {
        let n = self.next_sequence_number;
        // SMPP 3.4 §5.1.4: 0x00000001..=0x7FFFFFFF, then wrap.
        self.next_sequence_number = if n >= 0x7FFF_FFFF { 1 } else { n + 1 };
        n
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(_, seq)) = self.response_deadlines.front() {
            if self.in_flight.contains_key(&seq) {
                break;
            }
            self.response_deadlines.pop_front();
        }
        [
            self.response_deadlines.front().map(|&(at, _)| at),
            self.delayed_responses.front().map(|&(at, _)| at),
            self.enquire_link_due,
            self.enquire_link_outstanding.map(|(_, at)| at),
            self.unbind_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires whatever is due; `Some` ends the session at once.
    fn on_timer(&mut self, now: Instant) -> Option<SessionEnd> {
        while let Some(&(at, seq)) = self.response_deadlines.front() {
            if at > now {
                break;
            }
            self.response_deadlines.pop_front();
            if let Some(delivery) = self.in_flight.remove(&seq) {
                warn!(
                    peer = %self.peer,
                    sequence_number = seq,
                    timeout = ?self.shared.config.response_timeout,
                    "no deliver_sm_resp in time; will redeliver"
                );
                self.shared.retry(delivery);
            }
        }
        while self
            .delayed_responses
            .front()
            .is_some_and(|&(at, _)| at <= now)
        {
            if let Some((_, frame)) = self.delayed_responses.pop_front() {
                self.wbuf.extend_from_slice(&frame);
            }
        }
        if self.unbind_deadline.is_some_and(|at| at <= now) {
            return Some(SessionEnd::UnbindTimeout);
        }
        if self
            .enquire_link_outstanding
            .is_some_and(|(_, at)| at <= now)
        {
            return Some(SessionEnd::EnquireLinkTimeout);
        }
        if let (Some(due), Some(every)) = (
            self.enquire_link_due,
            self.shared.config.enquire_link_interval,
        ) && due <= now
        {
            self.enquire_link_due = Some(now + every);
            // Only a bound session is probed: before bind the ESME owes us nothing but a bind.
            if self.bound.is_some() && self.enquire_link_outstanding.is_none() {
                let seq = self.sequence_number();
                self.write(&encode::enquire_link(seq));
                self.enquire_link_outstanding =
                    Some((seq, now + self.shared.config.response_timeout));
            }
        }
        None
    }

    fn start_unbind(&mut self, now: Instant) {
        if self.bound.is_none() {
            self.closing.get_or_insert(SessionEnd::Disconnected);
            return;
        }
        if self.unbind_deadline.is_none() {
            let seq = self.sequence_number();
            self.write(&encode::unbind(seq));
            self.unbind_deadline = Some(now + UNBIND_WAIT);
        }
    }

    fn write(&mut self, command: &rusmpp::Command) {
        encode::write_command(command, &mut self.wbuf);
    }

    fn nack(&mut self, sequence_number: u32, status: CommandStatus) {
        self.shared.stats.generic_nacks_sent.fetch_add(1, Relaxed);
        self.write(&encode::generic_nack(sequence_number, status));
    }

    fn handle_frame(&mut self, frame: &[u8], now: Instant) {
        let command = match crate::smpp::decode(frame) {
            Ok(command) => command,
            Err(error) => {
                warn!(peer = %self.peer, %error, "undecodable pdu; answering generic_nack");
                self.nack(error.sequence_number(), error.command_status());
                return;
            }
        };
        let seq = command.sequence_number();
        let status = command.command_status();
        match command.pdu {
            Pdu::BindTransmitter(bind) => self.on_bind(BindMode::Transmitter, seq, &bind),
            Pdu::BindReceiver(bind) => self.on_bind(BindMode::Receiver, seq, &bind),
            Pdu::BindTransceiver(bind) => self.on_bind(BindMode::Transceiver, seq, &bind),
            Pdu::SubmitSm(sm) => self.on_submit(seq, &sm, now),
            Pdu::DeliverSmResp(_) | Pdu::GenericNack => match self.in_flight.remove(&seq) {
                Some(delivery) => self.shared.settle(delivery, status),
                None => debug!(peer = %self.peer, seq, "answer to no deliver_sm in flight"),
            },
            Pdu::EnquireLink => self.write(&encode::enquire_link_resp(seq)),
            Pdu::EnquireLinkResp => {
                if self.enquire_link_outstanding.is_some_and(|(s, _)| s == seq) {
                    self.enquire_link_outstanding = None;
                }
            }
            Pdu::Unbind => {
                self.write(&encode::unbind_resp(seq));
                self.closing = Some(SessionEnd::UnboundByPeer);
            }
            Pdu::UnbindResp if self.unbind_deadline.is_some() => {
                self.closing = Some(SessionEnd::UnboundBySimulator);
            }
            _ => {
                let id = command.command_id();
                if id.is_response() {
                    debug!(peer = %self.peer, command = id.name(), seq, "unexpected response ignored");
                    return;
                }
                let status = match (id, &self.bound) {
                    (CommandId::Other(_), _) | (_, Some(_)) => CommandStatus::ESME_RINVCMDID,
                    (_, None) => CommandStatus::ESME_RINVBNDSTS,
                };
                debug!(peer = %self.peer, command = id.name(), %status, "command not taken");
                self.nack(seq, status);
            }
        }
    }

    fn on_bind(&mut self, mode: BindMode, seq: u32, bind: &Bind<'_>) {
        let config = &self.shared.config;
        let status = if self.bound.is_some() {
            CommandStatus::ESME_RALYBND
        } else if self.shared.reject_binds.load(Relaxed) {
            CommandStatus::ESME_RBINDFAIL
        } else if bind.system_id != config.system_id.as_str() {
            CommandStatus::ESME_RINVSYSID
        } else if bind.password != config.password.as_str() {
            CommandStatus::ESME_RINVPASWD
        } else {
            CommandStatus::ESME_ROK
        };
        match encode::bind_resp(mode, seq, status, &config.smsc_system_id) {
            Ok(resp) => self.write(&resp),
            Err(error) => {
                warn!(%error, "cannot encode bind_resp; answering generic_nack");
                self.nack(seq, CommandStatus::ESME_RSYSERR);
                return;
            }
        }
        let system_id = bind.system_id.to_str_lossy();
        if status.is_ok() {
            info!(peer = %self.peer, %system_id, ?mode, "esme bound");
            self.shared.stats.binds_accepted.fetch_add(1, Relaxed);
            self.shared.stats.sessions_bound.fetch_add(1, Relaxed);
            self.bound = Some(Bound {
                mode,
                system_id: system_id.into_owned(),
            });
        } else {
            warn!(peer = %self.peer, %system_id, ?mode, %status, "bind refused");
            self.shared.stats.binds_rejected.fetch_add(1, Relaxed);
        }
    }

    fn on_submit(&mut self, seq: u32, sm: &Sm<'_>, now: Instant) {
        let shared = self.shared.clone();
        shared.stats.submit_sm_received.fetch_add(1, Relaxed);
        let system_id = match &self.bound {
            Some(bound) if bound.mode != BindMode::Receiver => bound.system_id.as_str(),
            _ => {
                self.write(&encode::header_only(
                    rusmpp::CommandId::SubmitSmResp,
                    CommandStatus::ESME_RINVBNDSTS,
                    seq,
                ));
                return;
            }
        };
        if take_one(&shared.swallow_submits) {
            debug!(peer = %self.peer, seq, "swallowing a submit_sm");
            return;
        }
        if shared.throttles(now) {
            shared.stats.submit_sm_throttled.fetch_add(1, Relaxed);
            self.respond_submit(seq, CommandStatus::ESME_RTHROTTLED, "", now);
            return;
        }
        let number = shared.next_message_id.fetch_add(1, Relaxed);
        let id = MessageId::new(number);
        if sm.registered_delivery & RECEIPT_REQUESTED != 0 {
            match shared.receipt(id.as_str(), sm) {
                Ok(receipt) => {
                    shared.stats.receipts_pending.fetch_add(1, Relaxed);
                    shared.schedule(now + shared.config.receipt_delay, receipt);
                }
                Err(error) => warn!(id = id.as_str(), %error, "cannot build the delivery receipt"),
            }
        }
        shared.observe_submit(system_id, sm, id.as_str());
        self.respond_submit(seq, CommandStatus::ESME_ROK, id.as_str(), now);
    }

    fn respond_submit(&mut self, seq: u32, status: CommandStatus, id: &str, now: Instant) {
        let resp = match encode::submit_sm_resp(seq, status, id) {
            Ok(resp) => resp,
            Err(error) => {
                warn!(%error, "cannot encode submit_sm_resp; answering generic_nack");
                self.nack(seq, CommandStatus::ESME_RSYSERR);
                return;
            }
        };
        let latency = self.shared.submit_latency();
        if latency.is_zero() && self.delayed_responses.is_empty() {
            self.write(&resp);
        } else {
            let mut frame = BytesMut::new();
            encode::write_command(&resp, &mut frame);
            // Never before an answer already held back, so answers stay in order.
            let due = self
                .delayed_responses
                .back()
                .map_or(now + latency, |&(last, _)| last.max(now + latency));
            self.delayed_responses.push_back((due, frame.freeze()));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let stats = &self.shared.stats;
        stats.sessions_open.fetch_sub(1, Relaxed);
        if self.bound.is_some() {
            stats.sessions_bound.fetch_sub(1, Relaxed);
        }
        if !self.in_flight.is_empty() {
            info!(
                peer = %self.peer,
                count = self.in_flight.len(),
                "session closed with deliver_sm unanswered; will redeliver"
            );
        }
        for (_, delivery) in self.in_flight.drain() {
            self.shared.retry(delivery);
        }
    }
}

/// A message id as uppercase hex, at least 8 digits, without allocating.
struct MessageId {
    digits: [u8; 16],
    len: usize,
}

impl MessageId {
    fn new(number: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let len = (16 - number.leading_zeros() as usize / 4).max(8);
        let mut digits = [b'0'; 16];
        for (i, digit) in digits[..len].iter_mut().rev().enumerate() {
            *digit = HEX[((number >> (4 * i)) & 0xF) as usize];
        }
        Self { digits, len }
    }

    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or_default()
    }
}

/// `YYMMDDhhmm` in UTC, the receipt text's date format.
fn receipt_date(at: SystemTime) -> String {
    // Out of jiff's range (years beyond ±9999) only with a broken clock: the epoch then.
    let at = jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    at.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%y%m%d%H%M")
        .to_string()
}

/// The first 20 characters of the message for the receipt's `text:` field, as printable
/// ASCII (receipt text is read as IA5 by most ESMEs; other characters become `?`).
fn receipt_excerpt(sm: &Sm<'_>) -> String {
    let text = body_text(text::decode(sm.data_coding, sm.payload()));
    text.chars()
        .take(20)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Takes one from a countdown; whether there was one.
fn take_one(counter: &AtomicU64) -> bool {
    counter.load(Relaxed) > 0
        && (counter.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_uppercase_hex_of_at_least_8_digits() {
        assert_eq!(MessageId::new(0x5E0F_1A2B).as_str(), "5E0F1A2B");
        assert_eq!(MessageId::new(0xAB).as_str(), "000000AB");
        assert_eq!(MessageId::new(0x1_0000_0000).as_str(), "100000000");
        assert_eq!(MessageId::new(u64::MAX).as_str(), "FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn receipt_dates_are_utc_yymmddhhmm() {
        use std::time::UNIX_EPOCH;
        assert_eq!(receipt_date(UNIX_EPOCH), "7001010000");
        // 2026-11-22 14:49:30 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_795_358_970);
        assert_eq!(receipt_date(at), "2611221449");
        // 2024-02-29 23:59 UTC, a leap day.
        let at = UNIX_EPOCH + Duration::from_secs(1_709_251_140);
        assert_eq!(receipt_date(at), "2402292359");
    }

    #[test]
    fn token_bucket_allows_a_second_of_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        assert_eq!((0..15).filter(|_| bucket.take(start)).count(), 10);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| bucket.take(later)).count(), 5);
    }
}
