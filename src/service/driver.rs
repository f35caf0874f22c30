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

pub use super::core::Counts;
use super::core::{Core, millis};
use super::inbound::{self, Inbound};
use super::outbox::{self, Outbox, SendResult};
use crate::esme::{AckHandle, BindLife, InboundMessage, Pool};
use crate::flow::engine::FlowEngine;
use crate::metrics as names;
use crate::store::{MoMark, OutMessage, Store};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// Inbound messages handled per batch, at most.
const MAX_INBOUND_BATCH: usize = 512;
/// How long a stop waits for submits in flight before leaving them in the outbox.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// What `[service]` sets for the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long an acknowledged MO's redelivery is still recognised (see
    /// [`inbound::kept_for`]).
    pub redelivery_window: Duration,
    /// How long after our response a bind's close still means the SMSC may not have it (the
    /// longest `[[smsc]] response_timeout`; see [`Inbound::new`]).
    pub response_grace: Duration,
    /// Parts that may be submitted and not durably recorded at once: what a crash may send
    /// twice (the SMSCs' `sessions × window`; see [`Outbox`]).
    pub submit_budget: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            redelivery_window: crate::config::DEFAULT_REDELIVERY_WINDOW,
            response_grace: inbound::DEFAULT_GRACE,
            submit_budget: 64,
        }
    }
}

/// The running service.
pub struct Pipeline {
    core: Core,
    settings: Settings,
    engine: Arc<FlowEngine>,
    store: Store,
    /// One pool per `[[smsc]]`; MT messages go to a bound one, round robin.
    pools: Vec<Arc<Pool>>,
    next_pool: AtomicUsize,
    outbox_ready: Notify,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    /// Submits in flight, and MOs stored but waiting for their flush and response: what a
    /// stop that ran out of time abandons ([`Pipeline::describe`]).
    sending: AtomicUsize,
    unflushed: AtomicUsize,
}

impl Pipeline {
    /// Starts the inbound, outbound and timer tasks over `store` (the engine's). `inbound`
    /// carries the messages of every pool.
    pub fn start(
        engine: Arc<FlowEngine>,
        store: Store,
        pools: Vec<Arc<Pool>>,
        inbound: mpsc::Receiver<InboundMessage>,
        settings: Settings,
    ) -> Arc<Pipeline> {
        assert!(!pools.is_empty(), "a pipeline needs at least one SMPP pool");
        let pipeline = Arc::new(Pipeline {
            core: Core::new(engine.clone(), store.clone()),
            settings,
            engine,
            store,
            pools,
            next_pool: AtomicUsize::new(0),
            outbox_ready: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            sending: AtomicUsize::new(0),
            unflushed: AtomicUsize::new(0),
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
        self.core.counts()
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

    /// What the pipeline still waits for, in words (empty: nothing).
    pub fn describe(&self) -> Vec<String> {
        let (sending, unflushed) = (
            self.sending.load(Ordering::Relaxed),
            self.unflushed.load(Ordering::Relaxed),
        );
        let mut waiting = Vec::new();
        if sending > 0 {
            waiting.push(format!("{sending} MT messages being submitted"));
        }
        if unflushed > 0 {
            waiting.push(format!("{unflushed} MOs waiting for the store's flush"));
        }
        waiting
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
        let mut inbound = Inbound::new(self.settings.response_grace);
        match self.store.parts() {
            Ok(parts) if !parts.is_empty() => {
                tracing::info!(
                    parts = parts.len(),
                    "restoring MO parts stored before the restart"
                );
                for mo in inbound.restore(SystemTime::now(), parts) {
                    self.core.deliver(now_ms(), mo);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot read stored MO parts: {e}"),
        }
        // Stored batches go to the acker, which waits for their flush and responds while the
        // next batch is being handled (a pipelined group commit).
        let (stored_tx, stored_rx) = mpsc::unbounded_channel();
        // Back from the acker: content-only MOs answered, on which bind, when.
        let (acked_tx, mut acked) = mpsc::unbounded_channel();
        let acker = tokio::spawn(self.clone().ack_loop(stored_rx, acked_tx));
        let mut expiry = tokio::time::interval(Duration::from_secs(1));
        let mut batch = Vec::with_capacity(MAX_INBOUND_BATCH);
        loop {
            tokio::select! {
                n = messages.recv_many(&mut batch, MAX_INBOUND_BATCH) => if n == 0 { break },
                _ = expiry.tick() => {
                    for mo in inbound.expire(SystemTime::now(), std::time::Instant::now()) {
                        self.core.deliver(now_ms(), mo);
                    }
                    continue;
                }
                () = self.shutdown.cancelled() => break,
            }
            // Before the batch: a copy of an MO answered just now is judged by its bind.
            while let Ok((mark, bind, at)) = acked.try_recv() {
                inbound.acknowledged(mark, bind, at);
            }
            let handled: Vec<Handled> = batch
                .drain(..)
                .map(
                    |InboundMessage {
                         smsc,
                         bind,
                         inbound: i,
                         ack,
                     }| {
                        let taken = (self.core).take_in(
                            &mut inbound,
                            SystemTime::now(),
                            Instant::now(),
                            &smsc,
                            &i,
                        );
                        Handled {
                            ack,
                            bind,
                            stored: taken.stored,
                            mark: taken.mark,
                        }
                    },
                )
                .collect();
            self.unflushed.fetch_add(handled.len(), Ordering::Relaxed);
            if stored_tx.send(handled).is_err() {
                break;
            }
        }
        // What was stored is still flushed and acknowledged.
        drop(stored_tx);
        let _ = acker.await;
    }

    /// One flush for every handled batch waiting (however many), then their responses; each
    /// MO answered goes back to the inbound loop on `acked` with its bind.
    async fn ack_loop(
        self: Arc<Self>,
        mut stored: mpsc::UnboundedReceiver<Vec<Handled>>,
        acked: mpsc::UnboundedSender<(MoMark, Arc<BindLife>, std::time::Instant)>,
    ) {
        let mut batches = Vec::new();
        while stored.recv_many(&mut batches, 1024).await > 0 {
            let flushed = self.store.flush().await;
            if let Err(e) = &flushed
                && !Store::is_disk_full(e)
            {
                tracing::error!("store flush failed; the SMSC will redeliver these MOs: {e}");
            }
            for h in batches.drain(..).flatten() {
                self.unflushed.fetch_sub(1, Ordering::Relaxed);
                match (&flushed, h.stored) {
                    (Ok(()), true) => {
                        h.ack.ack();
                        if let Some(mark) = h.mark {
                            let kept = inbound::kept_for(&mark, self.settings.redelivery_window);
                            let until = now_ms() + kept.as_millis() as i64;
                            if let Err(e) = self.store.mo_acknowledged(&mark, until) {
                                tracing::warn!("cannot keep an MO mark: {e}");
                            }
                            let _ = acked.send((mark, h.bind, std::time::Instant::now()));
                        }
                    }
                    _ => h.ack.retry_later(),
                }
            }
            // The steps' messages are durable now: send them.
            self.outbox_changed();
        }
    }

    // --- outbound ---------------------------------------------------------------------------

    async fn outbox_loop(self: Arc<Self>) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(OutMessage, SendResult)>();
        let mut sends = JoinSet::new();
        let mut outbox = Outbox::new(Instant::now(), self.settings.submit_budget);
        let mut finished = Vec::new();
        // Outcomes recorded whose flush failed: they hold the budget until one succeeds.
        let mut undurable: Vec<u64> = Vec::new();
        loop {
            if !undurable.is_empty() && self.store.flush().await.is_ok() {
                outbox.handle_durable(undurable.drain(..));
            }
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
                    if !Store::is_disk_full(&e) {
                        tracing::error!("store flush failed; not sending yet: {e}");
                    }
                    outbox.handle_not_durable(&fresh);
                    Vec::new()
                } else {
                    fresh
                };
                let admitted = outbox.admit(Instant::now(), due.into_iter().chain(fresh).collect());
                outbox.handle_submitted(admitted.len());
                for message in admitted {
                    let this = self.clone();
                    let done = done_tx.clone();
                    let accepted = outbox.accepted_parts(message.id).to_vec();
                    sends.spawn(async move {
                        let reference = outbox::reference(&message);
                        let pool = this.pool();
                        let result =
                            (pool.send_parts(&message.to, &message.text, reference, &accepted))
                                .await;
                        let _ = done.send((message, result));
                    });
                }
            }
            while sends.try_join_next().is_some() {}
            self.sending.store(outbox.sending(), Ordering::Relaxed);

            tokio::select! {
                n = done_rx.recv_many(&mut finished, 4096) => if n == 0 { return },
                () = self.outbox_ready.notified() => {}
                () = tokio::time::sleep_until(outbox.poll_timeout()) => {}
                () = self.shutdown.cancelled(), if !self.shutdown.is_cancelled() => {}
            }
            undurable.extend(self.record(&mut outbox, &mut finished).await);

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
                    undurable.extend(self.record(&mut outbox, &mut finished).await);
                    self.sending.store(outbox.sending(), Ordering::Relaxed);
                }
                sends.abort_all();
                self.sending.store(0, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Records what became of finished submits (one store record and one flush for the lot),
    /// then applies the receipts that were waiting for them. Once durable, the messages free
    /// their part of the budget; the ids of those whose flush failed are returned.
    async fn record(
        &self,
        outbox: &mut Outbox,
        finished: &mut Vec<(OutMessage, SendResult)>,
    ) -> Vec<u64> {
        if finished.is_empty() {
            return Vec::new();
        }
        let ids: Vec<u64> = finished.iter().map(|(m, _)| m.id).collect();
        let (at, now) = (Instant::now(), now_ms());
        let outcomes = self.core.record(outbox, at, now, finished.drain(..));
        let recorded: Vec<u64> = outcomes.iter().map(|o| o.message.id).collect();
        // Not recorded (the store refused): they stay in the outbox and go again anyway.
        outbox.handle_durable(ids.into_iter().filter(|id| !recorded.contains(id)));
        if outcomes.is_empty() {
            return Vec::new();
        }
        let flushed = self.store.flush().await;
        self.core.after_recorded(now, &outcomes);
        match flushed {
            Ok(()) => {
                outbox.handle_durable(recorded);
                Vec::new()
            }
            Err(e) => {
                if !Store::is_disk_full(&e) {
                    tracing::error!("store flush failed: {e}");
                }
                recorded
            }
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
            let stepped = self.core.fire_timers(now_ms());
            if self.core.poll_overdue_receipts(Instant::now(), now_ms()) || stepped {
                self.outbox_changed();
            }
            if sweep.elapsed() >= Duration::from_secs(60) {
                sweep = Instant::now();
                match self.store.sweep_mo_marks(now_ms()) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(marks = n, "swept MO marks past their window"),
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
                for flow in &new {
                    let scores = self
                        .engine
                        .flow(flow)
                        .map_or(1..=5, |f| f.scale.min..=f.scale.max);
                    names::register_flow(flow, scores);
                }
                flows.extend(new);
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
            let (ringing, taken) = self.store.open_call_counts();
            metrics::gauge!(names::INCIDENTS_OPEN, "state" => "ringing").set(ringing as f64);
            metrics::gauge!(names::INCIDENTS_OPEN, "state" => "acknowledged").set(taken as f64);
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
    /// The bind it came on, which takes the response.
    bind: Arc<BindLife>,
    /// Whether it is in the store; otherwise the SMSC is asked to redeliver.
    stored: bool,
    /// The "acknowledgement pending" mark to clear once the response is handed over.
    mark: Option<MoMark>,
}
