//! The service driver: the tokio tasks that connect the SMPP pools, the flow engine and the
//! store, doing what the sans-IO parts decide (`inbound.rs`, `outbox.rs`, `receipts.rs`).
//!
//! - **Inbound**: MOs are taken in batches; each is handled as [`Inbound::handle`] decides and
//!   the batch goes to the acker, which waits for one store flush covering every batch
//!   waiting, then sends their deliver_sm_resps: an acknowledged MO is on the medium, and
//!   durability costs one group commit per batch, not per message.
//! - **Outbound**: the outbox is read in id order and each message submitted through a pool;
//!   a message is submitted only after a flush that covers the step that queued it, and leaves
//!   the outbox with what [`Outbox::handle_result`] decided. After a crash, the messages
//!   accepted since the last outcome flush are sent again (at-least-once, bounded by the
//!   windows).
//! - **Timers** fire from the store's timers, one pass per tick.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::inbound::{self, Decision, Inbound, Mo};
use super::outbox::{self, Outbox, SendResult};
use super::receipts::{self, EarlyReceipts};
use crate::esme::{AckHandle, InboundMessage, Pool};
use crate::flow::engine::{FlowEngine, Routed};
use crate::metrics as names;
use crate::smpp::receipt::{DeliveryReceipt, id_forms};
use crate::store::{MoMark, OutMessage, OutboxOutcome, ReceiptApplied, Store};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Inbound messages handled per batch, at most.
const MAX_INBOUND_BATCH: usize = 512;
/// How long an "acknowledgement pending" mark outlives a crash. SMSCs redeliver within
/// minutes; after this a repeated text is a new message.
pub const MO_MARK_TTL: Duration = Duration::from_secs(3600);
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

/// The running service core.
pub struct Pipeline {
    engine: Arc<FlowEngine>,
    store: Store,
    /// One pool per `[[smsc]]`; MT messages go to a bound one, round robin.
    pools: Vec<Arc<Pool>>,
    next_pool: AtomicUsize,
    outbox_ready: Notify,
    counts: Mutex<Counts>,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    early_receipts: Mutex<EarlyReceipts>,
}

impl Pipeline {
    /// Starts the inbound, outbound and timer tasks over `store` (the engine's). `inbound`
    /// carries the messages of every pool.
    pub fn start(
        engine: Arc<FlowEngine>,
        store: Store,
        pools: Vec<Arc<Pool>>,
        inbound: mpsc::Receiver<InboundMessage>,
    ) -> Arc<Pipeline> {
        assert!(!pools.is_empty(), "a pipeline needs at least one SMPP pool");
        let pipeline = Arc::new(Pipeline {
            engine,
            store,
            pools,
            next_pool: AtomicUsize::new(0),
            outbox_ready: Notify::new(),
            counts: Mutex::new(Counts::default()),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            early_receipts: Mutex::new(EarlyReceipts::default()),
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

    async fn inbound_loop(self: Arc<Self>, mut messages: mpsc::Receiver<InboundMessage>) {
        let mut inbound = Inbound::default();
        match self.store.parts() {
            Ok(parts) if !parts.is_empty() => {
                tracing::info!(
                    parts = parts.len(),
                    "restoring MO parts stored before the restart"
                );
                for mo in inbound.restore(SystemTime::now(), parts) {
                    self.deliver(mo);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot read stored MO parts: {e}"),
        }
        // Stored batches go to the acker, which waits for their flush and responds while the
        // next batch is being handled (a pipelined group commit).
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        let acker = tokio::spawn(self.clone().ack_loop(stored_rx));
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        let mut batch = Vec::with_capacity(MAX_INBOUND_BATCH);
        loop {
            tokio::select! {
                n = messages.recv_many(&mut batch, MAX_INBOUND_BATCH) => if n == 0 { break },
                _ = expiry.tick() => {
                    for mo in inbound.expire(SystemTime::now()) {
                        self.deliver(mo);
                    }
                    continue;
                }
                () = self.shutdown.cancelled() => break,
            }
            let handled: Vec<Handled> = batch
                .drain(..)
                .map(|message| self.take_in(message, &mut inbound))
                .collect();
            if stored_tx.send(handled).is_err() {
                break;
            }
        }
        // What was stored is still flushed and acknowledged.
        drop(stored_tx);
        let _ = acker.await;
    }

    /// One flush for every handled batch waiting (however many), then their responses.
    async fn ack_loop(self: Arc<Self>, mut stored: mpsc::UnboundedReceiver<Vec<Handled>>) {
        let mut batches = Vec::new();
        while stored.recv_many(&mut batches, 1024).await > 0 {
            let flushed = self.store.flush().await;
            if let Err(e) = &flushed {
                tracing::error!("store flush failed; the SMSC will redeliver these MOs: {e}");
            }
            for h in batches.drain(..).flatten() {
                match (&flushed, h.stored) {
                    (Ok(()), true) => {
                        h.ack.ack();
                        if let Some(mark) = h.mark
                            && let Err(e) = self.store.mo_acknowledged(&mark)
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

    /// Does what `inbound` decides for one message (durable after the batch's flush).
    fn take_in(&self, message: InboundMessage, inbound: &mut Inbound) -> Handled {
        let InboundMessage {
            smsc,
            inbound: i,
            ack,
        } = message;
        let seen = if i.receipt.is_some() {
            false
        } else {
            match self.store.mo_seen(&inbound::mark(&i)) {
                Ok(seen) => seen,
                Err(e) => {
                    tracing::error!("cannot read the store: {e}");
                    return Handled::new(ack, false, None);
                }
            }
        };
        match inbound.handle(SystemTime::now(), &i, seen) {
            Decision::Receipt(Ok(receipt)) => {
                let stored = self.on_receipt(&receipt);
                Handled::new(ack, stored, None)
            }
            // An unreadable receipt cannot be matched; acknowledging it loses nothing.
            Decision::Receipt(Err(e)) => {
                tracing::debug!(%smsc, "unreadable delivery receipt: {e}");
                Handled::new(ack, true, None)
            }
            Decision::Redelivered(mark) => {
                self.count(|c| c.mo_redelivered += 1);
                metrics::counter!(names::MO_REDELIVERED, "smsc" => smsc.to_string()).increment(1);
                Handled::new(ack, true, Some(mark))
            }
            Decision::Hold(part) => match self.store.put_part(&part) {
                Ok(_) => Handled::new(ack, true, None),
                Err(e) => {
                    tracing::error!("cannot store an MO part: {e}");
                    Handled::new(ack, false, None)
                }
            },
            Decision::Deliver(mo) => {
                let mark = mo.mark.clone();
                let stored = self.deliver(mo);
                Handled::new(ack, stored, mark)
            }
        }
    }

    /// Routes one whole MO to the flows; `true` when its step is stored.
    fn deliver(&self, mo: Mo) -> bool {
        let now = now_ms();
        match self
            .engine
            .reply_mo(now, &mo.from, &mo.text, now, Some(mo.record))
        {
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

    /// A delivery receipt: the state of the part it names, the message's status from all its
    /// parts, and `on_delivery` when that status changed. `false` when it could not be stored
    /// (the SMSC sends it again).
    fn on_receipt(&self, receipt: &DeliveryReceipt) -> bool {
        self.count(|c| c.receipts += 1);
        let state = receipts::part_state(receipt);
        let applied = match self
            .store
            .apply_receipt(&id_forms(&receipt.message_id), state)
        {
            Ok(applied) => applied,
            Err(e) => {
                tracing::error!("cannot store a receipt: {e}");
                return false;
            }
        };
        // Not known yet (its submit is still being recorded), or not ours: kept a while.
        let Some(ReceiptApplied { part, changed }) = applied else {
            (self
                .early_receipts
                .lock()
                .unwrap_or_else(|p| p.into_inner()))
            .keep(Instant::now(), receipt);
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
        let mut outbox = Outbox::new(Instant::now());
        let mut finished = Vec::new();
        loop {
            if !self.shutdown.is_cancelled() {
                let (due, read) = outbox.poll_due(Instant::now());
                let fresh = match read {
                    Some((after, limit)) => match self.store.outbox_after(after, limit) {
                        Ok(fresh) => outbox.handle_fresh(fresh),
                        Err(e) => {
                            tracing::error!("cannot read the outbox: {e}");
                            Vec::new()
                        }
                    },
                    None => Vec::new(),
                };
                // A message leaves only once the step that queued it is on disk: else a crash
                // could lose the step (and the MO's ack) after its SMS went out, and the
                // redelivered MO would send it again.
                let fresh = if !fresh.is_empty()
                    && let Err(e) = self.store.flush().await
                {
                    tracing::error!("store flush failed; not sending yet: {e}");
                    outbox.handle_not_durable(&fresh);
                    Vec::new()
                } else {
                    fresh
                };
                outbox.handle_submitted(due.len() + fresh.len());
                for message in due.into_iter().chain(fresh) {
                    let this = self.clone();
                    let done = done_tx.clone();
                    sends.spawn(async move {
                        let result = this.pool().send_text(&message.to, &message.text).await;
                        let _ = done.send((message, result));
                    });
                }
            }
            while sends.try_join_next().is_some() {}

            tokio::select! {
                n = done_rx.recv_many(&mut finished, 4096) => if n == 0 { return },
                () = self.outbox_ready.notified() => {}
                () = tokio::time::sleep_until(outbox.poll_timeout()) => {}
                () = self.shutdown.cancelled(), if !self.shutdown.is_cancelled() => {}
            }
            self.record(&mut outbox, &mut finished).await;

            if self.shutdown.is_cancelled() {
                // Submits in flight finish (the pools are still up) and are recorded;
                // what does not finish in time stays in the outbox for the next start.
                let deadline = Instant::now() + STOP_GRACE;
                while outbox.sending() > 0 {
                    tokio::select! {
                        n = done_rx.recv_many(&mut finished, 4096) => if n == 0 { break },
                        () = tokio::time::sleep_until(deadline) => {
                            tracing::warn!(sending = outbox.sending(), "stopping with submits unanswered; they stay in the outbox");
                            break;
                        }
                    }
                    self.record(&mut outbox, &mut finished).await;
                }
                sends.abort_all();
                return;
            }
        }
    }

    /// Records what became of finished submits (one store record and one flush for the lot),
    /// then applies the receipts that were waiting for them.
    async fn record(&self, outbox: &mut Outbox, finished: &mut Vec<(OutMessage, SendResult)>) {
        if finished.is_empty() {
            return;
        }
        let mut outcomes = Vec::with_capacity(finished.len());
        for (message, result) in finished.drain(..) {
            let flow = message.flow.clone();
            let to = message.to.clone();
            let opening = message.opening;
            match outbox.handle_result(Instant::now(), now_ms(), message, result) {
                outbox::Decision::Kept => {}
                outbox::Decision::Retry { pause, attempt } => {
                    tracing::warn!(%to, attempt, ?pause, "message not sent, will retry");
                    self.count(|c| c.mt_retried += 1);
                    metrics::counter!(names::MT_MESSAGES, "flow" => flow, "status" => "retried")
                        .increment(1);
                }
                outbox::Decision::Finished(outcome) => {
                    let accepted = outcome.status == "sent";
                    if !accepted {
                        tracing::warn!(%to, "message refused for good: {}", outcome.status);
                    }
                    self.count_outcome(&flow, accepted, opening);
                    outcomes.push(outcome);
                }
            }
        }
        if outcomes.is_empty() {
            return;
        }
        if let Err(e) = self.store.outbox_finished(&outcomes) {
            // They stay in the outbox: sent again after a restart (at-least-once).
            tracing::error!("cannot record sent messages: {e}");
            return;
        }
        if let Err(e) = self.store.flush().await {
            tracing::error!("store flush failed: {e}");
        }
        let early = (self
            .early_receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner()))
        .take(outcomes.iter().flat_map(|o: &OutboxOutcome| &o.smsc_ids));
        for receipt in &early {
            self.on_receipt(receipt);
        }
    }

    fn count_outcome(&self, flow: &str, accepted: bool, opening: bool) {
        self.count(|c| {
            if accepted {
                c.mt_accepted += 1;
            } else {
                c.mt_failed += 1;
            }
        });
        metrics::counter!(names::MT_MESSAGES,
            "flow" => flow.to_owned(),
            "status" => if accepted { "accepted" } else { "failed" })
        .increment(1);
        if accepted && opening && flow == "survey" {
            metrics::counter!(names::SURVEY_FUNNEL, "stage" => "sent").increment(1);
        }
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
                match self.store.sweep_mo_marks(before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(marks = n, "swept MO marks left by a crash"),
                    Err(e) => tracing::warn!("cannot sweep MO marks: {e}"),
                }
            }
        }
    }

    /// Gauges read from the store every few seconds (from memory).
    async fn gauge_loop(self: Arc<Self>) {
        // Every flow seen so far (loaded, or with open conversations): its gauge is set each
        // round, to 0 once its last conversation closes.
        let mut flows: BTreeSet<String> = BTreeSet::new();
        loop {
            if let Ok(counts) = self.store.open_counts() {
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
            metrics::gauge!(names::OUTBOX_PENDING).set(self.store.outbox_len() as f64);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }
}

/// One inbound message, handled and waiting for its batch's flush.
struct Handled {
    ack: AckHandle,
    /// Whether it is in the store; otherwise the SMSC is asked to redeliver.
    stored: bool,
    /// The "acknowledgement pending" mark to clear once the response is handed over.
    mark: Option<MoMark>,
}

impl Handled {
    fn new(ack: AckHandle, stored: bool, mark: Option<MoMark>) -> Handled {
        Handled { ack, stored, mark }
    }
}
