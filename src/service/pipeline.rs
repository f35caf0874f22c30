//! The MO → flow → MT pipeline: wires the SMPP pools to the flow engine and the store.
//!
//! - **Inbound** (`Pipeline::inbound_loop`): messages are taken in batches; each is stored
//!   (a part of a concatenated MO as a part, a whole MO as the step of the conversation it
//!   answers) and the batch shares one store flush before its deliver_sm_resps go out, so an
//!   acknowledged MO is always on disk and durability costs one fsync per batch, not per
//!   message. A receipt updates its message's status and reaches `on_delivery`.
//! - **Redelivery**: a step stores its MO's content as "acknowledgement pending" in the same
//!   transaction; the mark is dropped once the response is handed to the session. An MO that
//!   arrives while its mark is still there (the SMSC resending after a crash between the
//!   flush and the response) is acknowledged and not processed again. Marks left by a crash
//!   are swept after [`MO_MARK_TTL`].
//! - **Outbound** (`Pipeline::outbox_loop`): the durable outbox is read in id order and
//!   each message submitted through a pool. A message leaves the outbox (with its status and
//!   SMSC ids, for receipts) when the SMSC accepted it or refused it for good, in batches
//!   followed by a flush. A message is submitted only after a flush that covers the step that
//!   queued it. No answer, a lost link or a temporary refusal means another attempt after a
//!   growing pause. After a clean stop nothing is sent twice; after a crash, the messages
//!   accepted since the last outbox flush are sent again (at-least-once, bounded by the
//!   window).
//! - **Timers** fire from the store's timer tree, one pass per tick.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::esme::{AckHandle, InboundMessage, Pool, SendError, Sent, SubmitError};
use crate::flow::engine::{FlowEngine, Routed};
use crate::metrics as names;
use crate::smpp::concat::{Assembled, Offer, Part, Reassembler};
use crate::smpp::pdu::CommandStatus;
use crate::smpp::receipt::{DeliveryReceipt, canonical_id, id_forms};
use crate::smpp::session::Inbound;
use crate::smpp::text::{self, MessageBody};
use crate::store::{MoRecord, OutMessage, OutboxOutcome, PartState, ReceiptApplied, keys};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Inbound messages handled per store flush, at most.
const MAX_INBOUND_BATCH: usize = 512;
/// How long the parts of an incomplete concatenated MO wait for the rest.
const PART_TTL: Duration = Duration::from_secs(300);
/// Incomplete concatenated MOs held at once (the oldest goes first beyond it).
const MAX_PENDING_MESSAGES: usize = 10_000;
/// How long an "acknowledgement pending" mark outlives a crash. SMSCs redeliver within
/// minutes; after this a repeated text is a new message.
pub const MO_MARK_TTL: Duration = Duration::from_secs(3600);
/// Outbox messages being submitted at once, at most.
const MAX_SENDING: usize = 8192;
/// First and longest pause before a failed submit is tried again.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// An MT message still not accepted after this long is given up ("failed: expired"); carriers
/// keep undelivered messages about as long.
const MT_GIVE_UP_MS: i64 = 24 * 3600 * 1000;
/// Receipts kept while their submit's outcome is being recorded, at most, and for how long
/// once the map is full (receipts for messages that are not ours are forgotten that way).
const MAX_EARLY_RECEIPTS: usize = 10_000;
const EARLY_RECEIPT_TTL: Duration = Duration::from_secs(60);
/// How long a stop waits for submits in flight before leaving them in the outbox.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Counters of what went through, for progress and the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub mo: u64,
    pub mo_redelivered: u64,
    pub mt_accepted: u64,
    pub mt_retried: u64,
    pub mt_failed: u64,
    pub receipts: u64,
    pub timers: u64,
    pub script_errors: u64,
}

/// The running pipeline.
pub struct Pipeline {
    engine: Arc<FlowEngine>,
    /// One pool per `[[smsc]]`; MT messages go to a bound one, round robin.
    pools: Vec<Arc<Pool>>,
    next_pool: AtomicUsize,
    outbox_ready: Notify,
    counts: Mutex<Counts>,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    /// Receipts that came before their submit's outcome was recorded (an SMSC may send the
    /// receipt within milliseconds of the submit_sm_resp), by canonical SMSC id.
    early_receipts: Mutex<HashMap<String, (Instant, DeliveryReceipt)>>,
}

impl Pipeline {
    /// Starts the inbound, outbound and timer tasks. `inbound` carries the messages of every
    /// pool.
    pub fn start(
        engine: Arc<FlowEngine>,
        pools: Vec<Arc<Pool>>,
        inbound: mpsc::Receiver<InboundMessage>,
    ) -> Arc<Pipeline> {
        assert!(!pools.is_empty(), "a pipeline needs at least one SMPP pool");
        let pipeline = Arc::new(Pipeline {
            engine,
            pools,
            next_pool: AtomicUsize::new(0),
            outbox_ready: Notify::new(),
            counts: Mutex::new(Counts::default()),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            early_receipts: Mutex::new(HashMap::new()),
        });
        {
            let mut tasks = pipeline.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.spawn(pipeline.clone().inbound_loop(inbound));
            tasks.spawn(pipeline.clone().outbox_loop());
            tasks.spawn(pipeline.clone().timer_loop());
            tasks.spawn(pipeline.clone().gauge_loop());
        }
        pipeline
    }

    pub fn engine(&self) -> &Arc<FlowEngine> {
        &self.engine
    }

    pub fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Wakes the outbox drainer (after a step that may have queued messages).
    pub fn outbox_changed(&self) {
        self.outbox_ready.notify_one();
    }

    /// Stops the tasks: inbound messages not yet stored are left unacknowledged (the SMSC
    /// redelivers them), submits in flight finish and are recorded. The pools are shut down by
    /// their owner afterwards.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        while tasks.join_next().await.is_some() {}
    }

    /// A pool for the next MT: a bound one, round robin; any when none is bound (the submit
    /// waits in its queue until it binds).
    fn pool(&self) -> &Arc<Pool> {
        let start = self.next_pool.fetch_add(1, Ordering::Relaxed);
        let n = self.pools.len();
        (0..n)
            .map(|i| &self.pools[(start + i) % n])
            .find(|p| p.bound() > 0)
            .unwrap_or(&self.pools[start % n])
    }

    // --- inbound ----------------------------------------------------------------------------

    async fn inbound_loop(self: Arc<Self>, mut inbound: mpsc::Receiver<InboundMessage>) {
        let mut reassembler = Reassembler::new(PART_TTL, MAX_PENDING_MESSAGES);
        self.restore_parts(&mut reassembler);
        // Stored batches go to the acker, which flushes and responds while the next batch is
        // being stored (a pipelined group commit).
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        let acker = tokio::spawn(self.clone().ack_loop(stored_rx));
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        let mut batch = Vec::with_capacity(MAX_INBOUND_BATCH);
        loop {
            tokio::select! {
                n = inbound.recv_many(&mut batch, MAX_INBOUND_BATCH) => if n == 0 { break },
                _ = expiry.tick() => {
                    self.release_expired(&mut reassembler);
                    continue;
                }
                () = self.shutdown.cancelled() => break,
            }
            let handled: Vec<Handled> = batch
                .drain(..)
                .map(|message| self.take_in(message, &mut reassembler))
                .collect();
            if stored_tx.send(handled).is_err() {
                break;
            }
        }
        // What was stored is still flushed and acknowledged.
        drop(stored_tx);
        let _ = acker.await;
    }

    /// Flushes the store once for every stored batch waiting (however many), then sends
    /// their responses: an acknowledged MO is always on disk.
    async fn ack_loop(self: Arc<Self>, mut stored: mpsc::UnboundedReceiver<Vec<Handled>>) {
        let mut batches = Vec::new();
        while stored.recv_many(&mut batches, 1024).await > 0 {
            let flushed = self.engine.store().flush().await;
            if let Err(e) = &flushed {
                tracing::error!("store flush failed; the SMSC will redeliver these MOs: {e}");
            }
            for h in batches.drain(..).flatten() {
                match (&flushed, h.stored) {
                    (Ok(()), true) => {
                        h.ack.ack();
                        if let Some(mark) = h.mark
                            && let Err(e) = self.engine.store().mo_acknowledged(&mark)
                        {
                            tracing::warn!("cannot clear an MO mark: {e}");
                        }
                    }
                    _ => h.ack.retry_later(),
                }
            }
            // The steps' messages are durable now: send them.
            self.outbox_changed();
        }
    }

    /// Stores one inbound message (not yet durably: the caller flushes the batch).
    fn take_in(&self, message: InboundMessage, reassembler: &mut Reassembler) -> Handled {
        let InboundMessage {
            smsc,
            inbound: i,
            ack,
        } = message;
        if let Some(receipt) = &i.receipt {
            let stored = match receipt {
                Ok(receipt) => self.on_receipt(receipt),
                // An unreadable receipt cannot be matched; acknowledging it loses nothing.
                Err(e) => {
                    tracing::debug!(%smsc, "unreadable delivery receipt: {e}");
                    true
                }
            };
            return Handled::new(ack, stored, None);
        }
        let concat = i.concat.map(|c| (c.reference, c.total, c.seq));
        let mark = keys::mo(
            &i.source_addr,
            &i.destination_addr,
            i.data_coding,
            concat,
            &i.payload,
        );
        match self.engine.store().mo_seen(&mark) {
            Ok(true) => {
                self.count(|c| c.mo_redelivered += 1);
                metrics::counter!(names::MO_REDELIVERED, "smsc" => smsc.to_string()).increment(1);
                return Handled::new(ack, true, Some(mark));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!("cannot read the store: {e}");
                return Handled::new(ack, false, None);
            }
        }
        let Some(concat) = i.concat else {
            return self.take_alone(&i, ack, mark, Vec::new());
        };
        let part = Part {
            source: i.source_addr.clone(),
            destination: i.destination_addr.clone(),
            concat,
            data_coding: i.data_coding,
            payload: i.payload.to_vec(),
        };
        let part_key = match self.engine.store().put_part(&part) {
            Ok(key) => key,
            Err(e) => {
                tracing::error!("cannot store an MO part: {e}");
                return Handled::new(ack, false, None);
            }
        };
        match reassembler.offer(SystemTime::now(), part) {
            Ok(Offer::Complete(whole)) => {
                let record = MoRecord {
                    pending_ack: vec![mark.clone()],
                    parts: part_keys(&whole),
                };
                let stored = self.deliver(&whole.key.source, &body_text(whole.body()), record);
                Handled::new(ack, stored, Some(mark))
            }
            // Stored and held (a duplicate copy changes nothing); acknowledged after the flush.
            Ok(_) => Handled::new(ack, true, None),
            Err(e) => {
                // Concatenation info that cannot be right (seq 0, seq > total): the part is
                // a message of its own.
                tracing::debug!(%smsc, "bad concatenation info, taking the part alone: {e}");
                // Its stored copy goes with the step, or a restart would offer it again.
                self.take_alone(&i, ack, mark, vec![part_key])
            }
        }
    }

    /// An MO in one piece (or a part that cannot be placed, taken as one): its own text is
    /// the message. `parts` are stored parts the step consumes.
    fn take_alone(
        &self,
        i: &Inbound,
        ack: AckHandle,
        mark: Vec<u8>,
        parts: Vec<Vec<u8>>,
    ) -> Handled {
        let text = body_text(text::decode(i.data_coding, &i.payload));
        let record = MoRecord {
            pending_ack: vec![mark.clone()],
            parts,
        };
        let stored = self.deliver(&i.source_addr, &text, record);
        Handled::new(ack, stored, Some(mark))
    }

    /// Routes one whole MO to the flows; `true` when its step is stored.
    fn deliver(&self, from: &str, text: &str, record: MoRecord) -> bool {
        let now = now_ms();
        match self.engine.reply_mo(now, from, text, now, Some(record)) {
            Ok(routed) => {
                let flow = match &routed {
                    Routed::Conversation(step) | Routed::Inbox(step) => {
                        if step.error.is_some() {
                            self.count(|c| c.script_errors += 1);
                        }
                        step.flow.clone()
                    }
                    Routed::Unsolicited(_) => "none".to_owned(),
                };
                metrics::counter!(names::MO_MESSAGES, "flow" => flow).increment(1);
                self.count(|c| c.mo += 1);
                true
            }
            Err(e) => {
                tracing::error!("MO not stored, left for redelivery: {e}");
                false
            }
        }
    }

    /// Parts stored before a restart go back into the reassembler. A message found complete
    /// here was completed by a part whose response may never have been sent: every part is
    /// marked, so the SMSC's redelivery of it is recognised.
    fn restore_parts(&self, reassembler: &mut Reassembler) {
        let parts = match self.engine.store().parts() {
            Ok(parts) => parts,
            Err(e) => {
                tracing::error!("cannot read stored MO parts: {e}");
                return;
            }
        };
        if !parts.is_empty() {
            tracing::info!(
                parts = parts.len(),
                "restoring MO parts stored before the restart"
            );
        }
        for part in parts {
            if let Ok(Offer::Complete(whole)) = reassembler.offer(SystemTime::now(), part) {
                let record = MoRecord {
                    pending_ack: whole
                        .parts
                        .iter()
                        .map(|p| {
                            let c = (whole.key.reference, whole.key.total, p.seq);
                            keys::mo(
                                &whole.key.source,
                                &whole.key.destination,
                                p.data_coding,
                                Some(c),
                                &p.payload,
                            )
                        })
                        .collect(),
                    parts: part_keys(&whole),
                };
                self.deliver(&whole.key.source, &body_text(whole.body()), record);
            }
        }
    }

    /// Messages whose missing parts never came (TTL, or pushed out by newer ones) go to the
    /// flows as far as they got: a reply missing its end is still a reply.
    fn release_expired(&self, reassembler: &mut Reassembler) {
        let mut released = reassembler.expire(SystemTime::now());
        released.extend(reassembler.take_evicted());
        for whole in released {
            tracing::info!(missing = ?whole.missing, "concatenated MO incomplete; taking the parts received");
            let record = MoRecord {
                pending_ack: Vec::new(),
                parts: part_keys(&whole),
            };
            self.deliver(&whole.key.source, &body_text(whole.body()), record);
        }
    }

    /// A delivery receipt: the state of the part it names, the message's status from all its
    /// parts, and `on_delivery` when that status changed. `false` when it could not be stored
    /// (the SMSC sends it again).
    fn on_receipt(&self, receipt: &DeliveryReceipt) -> bool {
        self.count(|c| c.receipts += 1);
        let state = if receipt.state.is_success() {
            PartState::Delivered
        } else if receipt.state.is_final() {
            PartState::Undeliverable
        } else {
            PartState::Enroute
        };
        let applied = match self
            .engine
            .store()
            .apply_receipt(&id_forms(&receipt.message_id), state)
        {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!("cannot store a receipt: {e}");
                return false;
            }
        };
        // Not known yet (its submit is still being recorded), or not ours (sent before the
        // store was new, already final): kept a while in case it is the first.
        let Some(ReceiptApplied { part, changed }) = applied else {
            self.keep_early_receipt(receipt);
            return true;
        };
        let Some(status) = changed else {
            return true;
        };
        if status != "enroute" {
            metrics::counter!(names::MT_MESSAGES, "flow" => part.flow.clone(), "status" => status)
                .increment(1);
            if status == "delivered" && part.opening && part.flow == "survey" {
                metrics::counter!(names::SURVEY_FUNNEL, "stage" => "delivered").increment(1);
            }
        }
        match self.engine.delivery(
            now_ms(),
            part.conversation,
            &part.to,
            status,
            Some(part.outbox_id),
        ) {
            Ok(_) => self.outbox_changed(),
            Err(e) => tracing::debug!("receipt for conversation {}: {e}", part.conversation),
        }
        true
    }

    // --- outbound ---------------------------------------------------------------------------

    async fn outbox_loop(self: Arc<Self>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(OutMessage, SendResult)>();
        let mut sends = JoinSet::new();
        // The highest outbox id read: new messages are read after it. Ids are taken before
        // their step commits, so a message can land behind the cursor; a rescan from the start
        // every second finds those, skipping the ones already sending or waiting to retry.
        let mut cursor = 0u64;
        let mut rescan = Instant::now();
        let mut known: HashSet<u64> = HashSet::new();
        let mut sending = 0usize;
        // Messages waiting for another attempt, by when; attempts so far by id.
        let mut retries: BTreeMap<(Instant, u64), OutMessage> = BTreeMap::new();
        let mut attempts: HashMap<u64, u32> = HashMap::new();
        let mut finished = Vec::new();
        loop {
            if !self.shutdown.is_cancelled() {
                let now = Instant::now();
                let mut due = Vec::new();
                while sending + due.len() < MAX_SENDING
                    && let Some(entry) = retries.first_entry()
                    && entry.key().0 <= now
                {
                    due.push(entry.remove());
                }
                let room = MAX_SENDING - sending - due.len();
                if now >= rescan {
                    cursor = 0;
                    rescan = now + Duration::from_secs(1);
                }
                let mut fresh = if room > 0 {
                    self.engine
                        .store()
                        .outbox_after(cursor, room.min(1024))
                        .unwrap_or_else(|e| {
                            tracing::error!("cannot read the outbox: {e}");
                            Vec::new()
                        })
                } else {
                    Vec::new()
                };
                if let Some(last) = fresh.last() {
                    cursor = last.id;
                }
                fresh.retain(|m| known.insert(m.id));
                // A message leaves only once the step that queued it is on disk: else a crash
                // could lose the step (and the MO's ack) after its SMS went out, and the
                // redelivered MO would send it again.
                if !fresh.is_empty()
                    && let Err(e) = self.engine.store().flush().await
                {
                    tracing::error!("store flush failed; not sending yet: {e}");
                    for m in &fresh {
                        known.remove(&m.id);
                    }
                    cursor = 0;
                    fresh.clear();
                }
                for message in due.into_iter().chain(fresh) {
                    sending += 1;
                    let this = self.clone();
                    let done = done_tx.clone();
                    sends.spawn(async move {
                        let result = this.pool().send_text(&message.to, &message.text).await;
                        let _ = done.send((message, result));
                    });
                }
            }
            while sends.try_join_next().is_some() {}

            let next_retry = retries
                .first_key_value()
                .map(|((at, _), _)| *at)
                .into_iter()
                .chain([rescan])
                .min();
            tokio::select! {
                n = done_rx.recv_many(&mut finished, 4096) => if n == 0 { return },
                () = self.outbox_ready.notified() => {}
                () = sleep_until(next_retry) => {}
                () = self.shutdown.cancelled(), if !self.shutdown.is_cancelled() => {}
            }
            sending -= finished.len();
            self.record(&mut finished, &mut retries, &mut attempts, &mut known)
                .await;

            if self.shutdown.is_cancelled() {
                // Submits in flight finish (the pools are still up) and are recorded;
                // what does not finish in time stays in the outbox for the next start.
                let deadline = Instant::now() + STOP_GRACE;
                while sending > 0 {
                    tokio::select! {
                        n = done_rx.recv_many(&mut finished, 4096) => if n == 0 { break },
                        () = tokio::time::sleep_until(deadline) => {
                            tracing::warn!(sending, "stopping with submits unanswered; they stay in the outbox");
                            break;
                        }
                    }
                    sending -= finished.len();
                    self.record(&mut finished, &mut retries, &mut attempts, &mut known)
                        .await;
                }
                sends.abort_all();
                return;
            }
        }
    }

    /// Takes finished messages out of the outbox (one transaction and one flush for the lot)
    /// and schedules the ones to try again.
    async fn record(
        &self,
        finished: &mut Vec<(OutMessage, SendResult)>,
        retries: &mut BTreeMap<(Instant, u64), OutMessage>,
        attempts: &mut HashMap<u64, u32>,
        known: &mut HashSet<u64>,
    ) {
        if finished.is_empty() {
            return;
        }
        let mut outcomes = Vec::with_capacity(finished.len());
        for (message, result) in finished.drain(..) {
            let (status, smsc_ids) = match result {
                Ok(sent) => ("sent".to_owned(), sent.message_ids),
                // The pool stopped before sending it: it stays for the next start.
                Err(SendError {
                    error: SubmitError::Shutdown,
                    ..
                }) => {
                    known.remove(&message.id);
                    continue;
                }
                Err(e)
                    if is_temporary(&e.error) && now_ms() - message.created_at < MT_GIVE_UP_MS =>
                {
                    let n = attempts.entry(message.id).or_insert(0);
                    *n += 1;
                    let pause = RETRY_MIN
                        .saturating_mul(1 << (*n - 1).min(16))
                        .min(RETRY_MAX);
                    tracing::warn!(to = %message.to, attempt = *n, ?pause, "message not sent, will retry: {e}");
                    self.count(|c| c.mt_retried += 1);
                    metrics::counter!(names::MT_MESSAGES, "flow" => message.flow.clone(), "status" => "retried")
                        .increment(1);
                    retries.insert((Instant::now() + pause, message.id), message);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(to = %message.to, "message refused for good: {e}");
                    (format!("failed: {}", e.error), e.accepted)
                }
            };
            attempts.remove(&message.id);
            known.remove(&message.id);
            let accepted = status == "sent";
            self.count(|c| {
                if accepted {
                    c.mt_accepted += 1;
                } else {
                    c.mt_failed += 1;
                }
            });
            metrics::counter!(names::MT_MESSAGES,
                "flow" => message.flow.clone(),
                "status" => if accepted { "accepted" } else { "failed" })
            .increment(1);
            if accepted && message.opening && message.flow == "survey" {
                metrics::counter!(names::SURVEY_FUNNEL, "stage" => "sent").increment(1);
            }
            outcomes.push(OutboxOutcome {
                message,
                status,
                smsc_ids: smsc_ids.iter().map(|id| canonical_id(id)).collect(),
            });
        }
        if outcomes.is_empty() {
            return;
        }
        let store = self.engine.store();
        if let Err(e) = store.outbox_finished(&outcomes) {
            // They stay in the outbox: sent again after a restart (at-least-once).
            tracing::error!("cannot record sent messages: {e}");
            return;
        }
        if let Err(e) = store.flush().await {
            tracing::error!("store flush failed: {e}");
        }
        let early: Vec<DeliveryReceipt> = {
            let mut kept = self
                .early_receipts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if kept.is_empty() {
                Vec::new()
            } else {
                outcomes
                    .iter()
                    .flat_map(|o| &o.smsc_ids)
                    .filter_map(|id| kept.remove(id).map(|(_, r)| r))
                    .collect()
            }
        };
        for receipt in &early {
            self.on_receipt(receipt);
        }
    }

    fn keep_early_receipt(&self, receipt: &DeliveryReceipt) {
        let mut kept = self
            .early_receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_EARLY_RECEIPTS {
            let now = Instant::now();
            kept.retain(|_, (at, _)| now.duration_since(*at) < EARLY_RECEIPT_TTL);
            if kept.len() >= MAX_EARLY_RECEIPTS {
                return;
            }
        }
        let id = canonical_id(&receipt.message_id);
        kept.insert(id, (Instant::now(), receipt.clone()));
    }

    // --- timers and gauges ------------------------------------------------------------------

    async fn timer_loop(self: Arc<Self>) {
        let mut sweep = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
                () = self.shutdown.cancelled() => return,
            }
            match self.engine.fire_due_timers(now_ms()) {
                Ok(steps) if !steps.is_empty() => {
                    let errors = steps.iter().filter(|s| s.error.is_some()).count() as u64;
                    self.count(|c| {
                        c.timers += steps.len() as u64;
                        c.script_errors += errors;
                    });
                    self.outbox_changed();
                }
                Ok(_) => {}
                Err(e) => tracing::error!("timers: {e}"),
            }
            if sweep.elapsed() >= Duration::from_secs(60) {
                sweep = Instant::now();
                let before = now_ms() - MO_MARK_TTL.as_millis() as i64;
                match self.engine.store().sweep_mo_marks(before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(marks = n, "swept MO marks left by a crash"),
                    Err(e) => tracing::warn!("cannot sweep MO marks: {e}"),
                }
            }
        }
    }

    /// Gauges read from the store every few seconds (cheap index scans).
    async fn gauge_loop(self: Arc<Self>) {
        // Every flow seen so far (loaded, or with open conversations): its gauge is set each
        // round, to 0 once its last conversation closes.
        let mut flows: BTreeSet<String> = BTreeSet::new();
        loop {
            let store = self.engine.store();
            if let Ok(counts) = store.open_counts() {
                let new: Vec<String> = self
                    .engine
                    .flows()
                    .iter()
                    .map(|f| f.name.clone())
                    .chain(counts.iter().map(|(flow, _)| flow.clone()))
                    .filter(|flow| !flows.contains(flow))
                    .collect();
                if !new.is_empty() {
                    names::register_zeroes(&new);
                    flows.extend(new);
                }
                for flow in &flows {
                    let n = counts
                        .iter()
                        .find(|(f, _)| f == flow)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!(names::CONVERSATIONS_OPEN, "flow" => flow.clone())
                        .set(n as f64);
                }
            }
            metrics::gauge!(names::OUTBOX_PENDING).set(store.outbox_len() as f64);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }
}

type SendResult = Result<Sent, SendError>;

/// One inbound message, stored (or not) and waiting for the batch's flush.
struct Handled {
    ack: AckHandle,
    /// Whether it is in the store; otherwise the SMSC is asked to redeliver.
    stored: bool,
    /// The "acknowledgement pending" mark to clear once the response is handed over.
    mark: Option<Vec<u8>>,
}

impl Handled {
    fn new(ack: AckHandle, stored: bool, mark: Option<Vec<u8>>) -> Handled {
        Handled { ack, stored, mark }
    }
}

/// Whether a failed submit is worth another attempt: the SMSC may not have it (no answer, lost
/// link) or said "not now".
fn is_temporary(error: &SubmitError) -> bool {
    match error {
        SubmitError::TimedOut { .. } | SubmitError::LinkLost | SubmitError::Throttled { .. } => {
            true
        }
        SubmitError::Rejected { status } => matches!(
            *status,
            CommandStatus::ESME_RSYSERR
                | CommandStatus::ESME_RMSGQFUL
                | CommandStatus::ESME_RTHROTTLED
                | CommandStatus::ESME_RX_T_APPN
        ),
        SubmitError::Shutdown | SubmitError::Encode(_) => false,
    }
}

fn part_keys(whole: &Assembled) -> Vec<Vec<u8>> {
    whole
        .parts
        .iter()
        .map(|p| keys::part(&whole.key, p.seq))
        .collect()
}

fn body_text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_errors_are_retried_and_refusals_are_not() {
        assert!(is_temporary(&SubmitError::LinkLost));
        assert!(is_temporary(&SubmitError::Rejected {
            status: CommandStatus::ESME_RMSGQFUL
        }));
        assert!(!is_temporary(&SubmitError::Rejected {
            status: CommandStatus::ESME_RINVDSTADR
        }));
        assert!(!is_temporary(&SubmitError::Shutdown));
    }
}
