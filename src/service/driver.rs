//! The service driver: the tokio tasks around the one [`Core`], doing the I/O it asks for.
//!
//! - **The core's task** takes MOs from the pools in batches, submit results, commit
//!   results, outbox wake-ups (from HTTP) and timeouts, hands each to the core, then does
//!   what the core lets out: a store flush (on the store's writer thread, while the next
//!   batch is handled: a pipelined group commit), the deliver_sm_resps whose steps that
//!   flush made durable, and the submits (one task each, through a pool, round robin).
//! - **The gauges** are read from the store every few seconds.
//!
//! After a crash, the messages accepted since their outcomes' last commit are sent again
//! (at-least-once, bounded by the core's budget: the SMSCs' windows).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::{Answer, Core, Submit};
pub use super::core::{Counts, Settings};
use super::inbound::millis;
use super::outbox::{self, SendResult};
use crate::esme::{AckHandle, InboundMessage, Pool};
use crate::flow::engine::{Accepted, EngineError, FlowEngine};
use crate::metrics as names;
use crate::store::{OutMessage, Store, StoreError};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// Inbound messages handled per batch, at most.
const MAX_INBOUND_BATCH: usize = 512;
/// Events waiting for the core, at most: a poster past it waits for room (HTTP's own
/// limits bound how many wait).
const EVENT_QUEUE: usize = 1024;

/// An event for the core, from HTTP, and where its answer goes.
struct EventRequest {
    now_ms: i64,
    flow: String,
    event: serde_json::Value,
    key: Option<String>,
    answer: oneshot::Sender<Accepted>,
}
/// How long a stop waits for submits in flight before leaving them in the outbox.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// What the core task shows the rest of the service, after each round.
#[derive(Debug, Default, Clone, Copy)]
struct Shown {
    counts: Counts,
    /// Submits in flight, and MOs stored but waiting for their commit and response: what a
    /// stop that ran out of time abandons ([`Pipeline::describe`]).
    sending: usize,
    unanswered: usize,
}

/// The running service.
pub struct Pipeline {
    engine: Arc<FlowEngine>,
    store: Store,
    /// One pool per `[[smsc]]`; MT messages go to a bound one, round robin.
    pools: Vec<Arc<Pool>>,
    next_pool: AtomicUsize,
    outbox_ready: Notify,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    shown: watch::Receiver<Shown>,
    events: mpsc::Sender<EventRequest>,
}

impl Pipeline {
    /// Starts the core's task and the gauges over `store` (the engine's). `inbound` carries
    /// the messages of every pool.
    pub fn start(
        engine: Arc<FlowEngine>,
        store: Store,
        pools: Vec<Arc<Pool>>,
        inbound: mpsc::Receiver<InboundMessage>,
        settings: Settings,
    ) -> Arc<Pipeline> {
        assert!(!pools.is_empty(), "a pipeline needs at least one SMPP pool");
        let (show, shown) = watch::channel(Shown::default());
        let (events, event_queue) = mpsc::channel(EVENT_QUEUE);
        let pipeline = Arc::new(Pipeline {
            engine: engine.clone(),
            store: store.clone(),
            pools,
            next_pool: AtomicUsize::new(0),
            outbox_ready: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            shown,
            events,
        });
        let core = Core::new(engine, store, settings, SystemTime::now(), Instant::now());
        {
            let mut tasks = pipeline.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.spawn((pipeline.clone()).core_loop(core, inbound, event_queue, show));
            tasks.spawn(pipeline.clone().gauge_loop());
        }
        pipeline
    }

    pub fn engine(&self) -> &Arc<FlowEngine> {
        &self.engine
    }

    pub fn counts(&self) -> Counts {
        self.shown.borrow().counts
    }

    /// Hands an event to the core: what it came to, once its step is durable (`now_ms`:
    /// the caller's clock).
    pub async fn start_event(
        &self,
        now_ms: i64,
        flow: String,
        event: serde_json::Value,
        key: Option<String>,
    ) -> Accepted {
        let (answer, answered) = oneshot::channel();
        let request = EventRequest {
            now_ms,
            flow,
            event,
            key,
            answer,
        };
        let stopping = || EngineError::NotDurable {
            disk_full: false,
            detail: "the service is stopping".into(),
        };
        if self.events.send(request).await.is_err() {
            return Err(stopping());
        }
        answered.await.unwrap_or_else(|_| Err(stopping()))
    }

    /// Wakes the core to read the outbox (after a step that may have queued messages).
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
        let Shown {
            sending,
            unanswered,
            ..
        } = *self.shown.borrow();
        let mut waiting = Vec::new();
        if sending > 0 {
            waiting.push(format!("{sending} MT messages being submitted"));
        }
        if unanswered > 0 {
            waiting.push(format!("{unanswered} MOs waiting for the store's flush"));
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

    /// The core's task: each input goes to the core, then what it lets out goes out (flushes,
    /// responses, submits). Flushes run on the store's writer thread while the core goes on
    /// with the next messages.
    async fn core_loop(
        self: Arc<Self>,
        mut core: Core<AckHandle, oneshot::Sender<Accepted>>,
        mut messages: mpsc::Receiver<InboundMessage>,
        mut events: mpsc::Receiver<EventRequest>,
        show: watch::Sender<Shown>,
    ) {
        let (committed_tx, mut committed) =
            mpsc::unbounded_channel::<(u64, Result<(), StoreError>)>();
        let (sent_tx, mut sent) = mpsc::unbounded_channel::<(OutMessage, SendResult)>();
        let mut sends = JoinSet::new();
        let mut batch = Vec::with_capacity(MAX_INBOUND_BATCH);
        let mut posted = Vec::with_capacity(EVENT_QUEUE);
        let mut finished = Vec::new();
        let mut stop_by: Option<Instant> = None;
        loop {
            while let Some(commit) = core.poll_commit() {
                let (store, done) = (self.store.clone(), committed_tx.clone());
                tokio::spawn(async move {
                    let _ = done.send((commit, store.flush().await));
                });
            }
            while let Some((reply, answer)) = core.poll_ack() {
                match answer {
                    Answer::Ack => reply.ack(),
                    Answer::RetryLater => reply.retry_later(),
                }
            }
            while let Some((answer, accepted)) = core.poll_accepted() {
                let _ = answer.send(accepted);
            }
            while let Some(submit) = core.poll_submit() {
                sends.spawn(self.clone().submit(submit, sent_tx.clone()));
            }
            while sends.try_join_next().is_some() {}
            show.send_replace(Shown {
                counts: core.counts(),
                sending: core.sending(),
                unanswered: core.unanswered(),
            });
            if let Some(deadline) = stop_by {
                if core.settled() && core.sending() == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    // Unanswered MOs get ESME_RX_T_APPN as their handles drop: redelivered,
                    // and recognised by their marks if their steps were stored.
                    tracing::warn!(
                        sending = core.sending(),
                        unanswered = core.unanswered(),
                        "stopping with submits unanswered; they stay in the outbox"
                    );
                    break;
                }
            }
            let wake = match stop_by {
                Some(deadline) => core.poll_timeout().min(deadline),
                None => core.poll_timeout(),
            };
            tokio::select! {
                n = messages.recv_many(&mut batch, MAX_INBOUND_BATCH), if stop_by.is_none() => {
                    if n == 0 {
                        stop_by = Some(Instant::now() + STOP_GRACE);
                        core.handle_stop();
                        continue;
                    }
                    let (now, at) = (SystemTime::now(), Instant::now());
                    for m in batch.drain(..) {
                        core.handle_deliver(now, at, &m.smsc, Some(m.bind), &m.inbound, m.ack);
                    }
                }
                n = events.recv_many(&mut posted, EVENT_QUEUE), if stop_by.is_none() => {
                    for e in posted.drain(..n) {
                        core.handle_event(e.now_ms, &e.flow, e.event, e.key.as_deref(), e.answer);
                    }
                }
                Some((commit, result)) = committed.recv() => {
                    core.handle_committed(SystemTime::now(), Instant::now(), commit, result);
                }
                n = sent.recv_many(&mut finished, 4096) => if n > 0 {
                    core.handle_sent(SystemTime::now(), Instant::now(), finished.drain(..));
                },
                () = self.outbox_ready.notified() => core.handle_outbox_changed(),
                () = tokio::time::sleep_until(wake) => {
                    core.handle_timeout(SystemTime::now(), Instant::now());
                }
                () = self.shutdown.cancelled(), if stop_by.is_none() => {
                    // What was stored is still committed and answered; submits in flight
                    // finish (the pools are still up) and are recorded, within the grace.
                    stop_by = Some(Instant::now() + STOP_GRACE);
                    core.handle_stop();
                }
            }
        }
        sends.abort_all();
        show.send_modify(|s| s.sending = 0);
    }

    /// One submit through a pool; its result goes back to the core.
    async fn submit(
        self: Arc<Self>,
        Submit { message, accepted }: Submit,
        done: mpsc::UnboundedSender<(OutMessage, SendResult)>,
    ) {
        let reference = outbox::reference(&message);
        let result = (self.pool())
            .send_parts(&message.to, &message.text, reference, &accepted)
            .await;
        let _ = done.send((message, result));
    }

    // --- gauges ----------------------------------------------------------------------------

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
