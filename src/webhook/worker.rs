//! The delivery worker: a tokio task that reads the store's webhook queue, POSTs each call once
//! its step is durable, and records what [`Queue`] decides. Protocol decisions stay in
//! `policy.rs`; this is the loop around them.
//!
//! A call is sent only after a flush that covers the step that queued it: else a crash could
//! lose the step after its hand-off went out, and the Service Desk would hold an incident
//! smsflow never had. After a crash, calls whose delivery was not yet recorded are sent again
//! with the same `Idempotency-Key` (at least once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client;
use super::policy::{Attempt, Decision, Queue};
use crate::config::WebhookConfig;
use crate::config::webhook::Resolved;
use crate::metrics as names;
use crate::store::{Millis, Store, WebhookCall};

/// How often the queue is looked at when nothing wakes the worker: steps from MOs and timers
/// queue calls too, and the pipeline does not tell us.
const POLL: Duration = Duration::from_millis(200);
/// How long a stop waits for deliveries in flight before leaving them queued.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The running worker.
pub struct Worker {
    wake: Notify,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Deliveries in flight (see [`Worker::describe`]).
    in_flight: AtomicUsize,
}

/// Where each webhook goes, by name.
type Targets = HashMap<String, (Resolved, Duration)>;

impl Worker {
    /// Starts delivering `store`'s queue to `webhooks` (checked configs). Calls for a name
    /// not among them are given up, counted and logged.
    pub fn start(store: Store, webhooks: &[WebhookConfig]) -> Arc<Worker> {
        let targets: Targets = (webhooks.iter())
            .filter_map(|w| Some((w.name.clone(), (w.resolved()?.clone(), w.timeout))))
            .collect();
        names::register_webhooks(&crate::config::webhook::names(webhooks));
        let worker = Arc::new(Worker {
            wake: Notify::new(),
            shutdown: CancellationToken::new(),
            task: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
        });
        let task = tokio::spawn(worker.clone().run(store, targets));
        *worker.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        worker
    }

    /// What the worker still waits for, in words (empty: nothing).
    pub fn describe(&self) -> Vec<String> {
        match self.in_flight.load(Ordering::Relaxed) {
            0 => Vec::new(),
            n => vec![format!(
                "{n} webhook deliveries waiting for their receiver's answer"
            )],
        }
    }

    /// Look at the queue now (a step may have queued a call).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops: deliveries in flight get a few seconds to finish and are recorded; the rest
    /// stay queued for the next start.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn run(self: Arc<Self>, store: Store, targets: Targets) {
        let targets = Arc::new(targets);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(WebhookCall, Attempt)>();
        let mut posts = JoinSet::new();
        let mut queue = Queue::new(Instant::now());
        let mut finished = Vec::new();
        loop {
            if !self.shutdown.is_cancelled() {
                let (due, read) = queue.poll_due(Instant::now());
                let mut fresh = match read {
                    Some((after, limit)) => queue.handle_fresh(store.webhooks_after(after, limit)),
                    None => Vec::new(),
                };
                if !fresh.is_empty()
                    && let Err(e) = store.flush().await
                {
                    if !Store::is_disk_full(&e) {
                        tracing::error!("store flush failed; not delivering webhooks yet: {e}");
                    }
                    queue.handle_not_durable(&fresh);
                    fresh.clear();
                }
                queue.handle_started(due.len() + fresh.len());
                for call in due.into_iter().chain(fresh) {
                    let attempt = queue.attempt_of(&call);
                    let (done, targets) = (done_tx.clone(), targets.clone());
                    posts.spawn(async move {
                        let result = match targets.get(&call.webhook) {
                            Some((target, timeout)) => {
                                client::post(target, *timeout, &call, attempt).await
                            }
                            None => Attempt::Unknown,
                        };
                        let _ = done.send((call, result));
                    });
                }
            }
            while posts.try_join_next().is_some() {}
            self.in_flight.store(queue.sending(), Ordering::Relaxed);
            metrics::gauge!(names::WEBHOOKS_PENDING).set(store.webhooks_len() as f64);
            let wake_at = queue.poll_timeout().min(Instant::now() + POLL);
            tokio::select! {
                n = done_rx.recv_many(&mut finished, 256) => if n == 0 { return },
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
                () = self.shutdown.cancelled(), if !self.shutdown.is_cancelled() => {}
            }
            record(&store, &mut queue, &mut finished);
            if self.shutdown.is_cancelled() {
                let deadline = Instant::now() + STOP_GRACE;
                while queue.sending() > 0 {
                    tokio::select! {
                        n = done_rx.recv_many(&mut finished, 256) => if n == 0 { break },
                        () = tokio::time::sleep_until(deadline) => {
                            tracing::warn!(sending = queue.sending(), "stopping with webhook deliveries unanswered; they stay queued");
                            break;
                        }
                    }
                    record(&store, &mut queue, &mut finished);
                    self.in_flight.store(queue.sending(), Ordering::Relaxed);
                }
                posts.abort_all();
                self.in_flight.store(0, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Applies what the queue decides for each finished attempt: counted, logged, and the
/// finished calls taken out of the store's queue in one record.
fn record(store: &Store, queue: &mut Queue, finished: &mut Vec<(WebhookCall, Attempt)>) {
    if finished.is_empty() {
        return;
    }
    let mut outcomes = Vec::new();
    for (call, attempt) in finished.drain(..) {
        let (webhook, id, key) = (call.webhook.clone(), call.id, call.idempotency_key());
        let why = match &attempt {
            Attempt::Answered(code) => format!("HTTP {code}"),
            Attempt::Failed(why) => why.clone(),
            Attempt::Unknown => "unknown webhook".to_owned(),
        };
        let result = match queue.handle_result(Instant::now(), now_ms(), call, attempt) {
            Decision::Retry { pause, attempt } => {
                tracing::warn!(%webhook, call = id, %key, attempt, retry_in = %humantime::format_duration(pause), "webhook delivery failed: {why}");
                "retried"
            }
            Decision::Finished { outcome, result } => {
                match result {
                    "delivered" => {
                        tracing::info!(%webhook, call = id, %key, "webhook {}", outcome.status)
                    }
                    _ => tracing::error!(%webhook, call = id, %key, "webhook {}", outcome.status),
                }
                outcomes.push(outcome);
                result
            }
        };
        metrics::counter!(names::WEBHOOK_DELIVERIES, "webhook" => webhook, "result" => result)
            .increment(1);
    }
    if let Err(e) = store.webhooks_finished(&outcomes) {
        // They stay queued and are delivered again: at least once.
        tracing::error!("cannot record webhook deliveries: {e}");
    }
}

fn now_ms() -> Millis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
