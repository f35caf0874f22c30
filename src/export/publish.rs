//! The publisher: a tokio task that takes the store's export queue oldest first, makes sure
//! the steps behind it are on disk, publishes each event to JetStream with its `Nats-Msg-Id`,
//! waits for the stream's acks, and moves the store's cursor past what was acknowledged.
//!
//! Publishes are pipelined (a batch goes out, then its acks are awaited in order); the
//! cursor only ever moves over a prefix of acknowledged events, so a failure in the middle
//! of a batch republishes from there and the stream's duplicate window drops what it had.
//! While NATS is down the batch is retried after a pause (1 s doubling to 60 s); the events
//! wait in the store, `smsflow_export_pending` shows how many, and no flow step waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::event::Envelope;
use crate::config::ExportConfig;
use crate::metrics as names;
use crate::retry::backoff;
use crate::store::Store;
use crate::store::export::QueuedEvent;

/// Events published before their acks are awaited.
const BATCH: usize = 512;
/// How often the queue is looked at when it was empty.
const POLL: Duration = Duration::from_millis(50);
/// How often `smsflow_export_pending` is refreshed, whatever the publisher waits for.
const GAUGE_EVERY: Duration = Duration::from_millis(500);
/// How long a JetStream request (a publish's ack, the stream's info) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the stream remembers a `Nats-Msg-Id` when smsflow creates it: longer than a
/// restart after a crash takes, so a republished event is recognised.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);

/// The running publisher.
pub struct Exporter {
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Who publishes: the node's name and short code, in every event.
#[derive(Debug, Clone)]
pub struct Origin {
    pub node: String,
    pub short_code: String,
}

impl Exporter {
    /// Starts publishing `store`'s export queue as `config` says. Connecting happens in the
    /// background: a NATS that is down at start is retried like one that goes down later.
    pub fn start(store: Store, config: ExportConfig, origin: Origin) -> Arc<Exporter> {
        let exporter = Arc::new(Exporter {
            shutdown: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let stop = exporter.shutdown.clone();
        let gauge = tokio::spawn(count_pending(store.clone()));
        let task = tokio::spawn(async move {
            run(store, config, origin, stop).await;
            gauge.abort();
        });
        *exporter.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        exporter
    }

    /// Stops after the batch in flight (bounded by the ack timeout); what was not
    /// acknowledged stays queued for the next start.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Keeps the backlog gauge current while the publisher waits (for an ack, out a pause).
async fn count_pending(store: Store) {
    let mut every = tokio::time::interval(GAUGE_EVERY);
    loop {
        every.tick().await;
        metrics::gauge!(names::EXPORT_PENDING).set(store.exports_len() as f64);
    }
}

async fn run(store: Store, config: ExportConfig, origin: Origin, stop: CancellationToken) {
    let servers = config.servers();
    let client = async_nats::ConnectOptions::new()
        .name(format!("smsflow {}", origin.node))
        .retry_on_initial_connect()
        .connection_timeout(REQUEST_TIMEOUT)
        .event_callback(|event| async move {
            tracing::info!("NATS connection: {event}");
        })
        .connect(servers.as_slice())
        .await;
    let client = match client {
        Ok(client) => client,
        Err(e) => {
            // Only a malformed address gets here (connecting itself is retried); the
            // config check should have refused it.
            tracing::error!("cannot set up the NATS client for [export]: {e}; not exporting");
            return;
        }
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .ack_timeout(REQUEST_TIMEOUT)
        .build(client);
    let mut stream_ready = false;
    let mut failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let batch = store.exports_after(0, BATCH);
        if batch.as_ref().is_ok_and(Vec::is_empty) {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = stop.cancelled() => {}
            }
            continue;
        }
        let attempt = async {
            let batch = batch.map_err(|e| format!("cannot read the export queue: {e}"))?;
            // Nothing is published before the step behind it is on disk.
            store
                .flush()
                .await
                .map_err(|e| format!("store flush: {e}"))?;
            if !stream_ready {
                ensure_stream(&js, &config).await?;
                stream_ready = true;
            }
            publish(&js, &config, &origin, &store, &batch).await
        };
        match attempt.await {
            Ok(()) => failures = 0,
            Err(why) => {
                stream_ready = false;
                failures += 1;
                metrics::counter!(names::EXPORT_FAILURES).increment(1);
                let pause = backoff(failures);
                let pending = store.exports_len();
                tracing::warn!(pending, retry_in = %humantime::format_duration(pause), "export to NATS failed: {why}");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

/// The stream, created when missing: every subject under the prefix, on disk, kept
/// `max_age`, duplicates recognised for [`DUPLICATE_WINDOW`]. An existing stream is used as
/// it is (its operators may have tuned it).
async fn ensure_stream(js: &jetstream::Context, config: &ExportConfig) -> Result<(), String> {
    let wanted = stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subjects()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: config.max_age,
        num_replicas: config.replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(wanted)
        .await
        .map_err(|e| format!("stream {}: {e}", config.stream))?;
    let subjects = &stream.cached_info().config.subjects;
    if !subjects.iter().any(|s| covers(s, &config.subjects())) {
        tracing::warn!(stream = %config.stream, ?subjects, "the stream does not list {}; events may find no stream", config.subjects());
    }
    Ok(())
}

/// Whether subject filter `filter` matches everything `wanted` (`prefix.>`) does.
fn covers(filter: &str, wanted: &str) -> bool {
    filter == wanted || filter == ">"
}

/// Publishes `batch` and moves the cursor over the acknowledged prefix.
async fn publish(
    js: &jetstream::Context,
    config: &ExportConfig,
    origin: &Origin,
    store: &Store,
    batch: &[QueuedEvent],
) -> Result<(), String> {
    let mut acks = Vec::with_capacity(batch.len());
    let mut failed = None;
    for queued in batch {
        let envelope = Envelope::of(&origin.node, &origin.short_code, queued);
        let kind = envelope.kind();
        let subject = format!("{}.{kind}", config.subject_prefix);
        let payload = match serde_json::to_vec(&envelope) {
            Ok(json) => Bytes::from(json),
            Err(e) => {
                failed = Some(format!("event {}: {e}", envelope.id));
                break;
            }
        };
        let message = PublishMessage::build()
            .payload(payload)
            .message_id(&envelope.id);
        match js.send_publish(subject, message).await {
            Ok(ack) => acks.push((queued.seq, kind, Some(ack))),
            Err(e) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                tracing::error!(event = %envelope.id, kind, "export event dropped: {e}");
                acks.push((queued.seq, kind, None));
            }
            Err(e) => {
                failed = Some(format!("publish: {e}"));
                break;
            }
        }
    }
    let mut answers = Vec::with_capacity(acks.len());
    for (seq, kind, ack) in acks {
        let answer = match ack {
            None => Answer::Dropped,
            Some(ack) => match ack.await {
                Ok(ack) if ack.duplicate => Answer::Duplicate,
                Ok(_) => Answer::Published,
                Err(e) => Answer::Failed(format!("ack of event {seq}: {e}")),
            },
        };
        answers.push((seq, kind, answer));
    }
    let settled = settle(answers);
    for (kind, result) in settled.counted {
        metrics::counter!(names::EXPORT_EVENTS, "kind" => kind, "result" => result).increment(1);
    }
    if let Some(upto) = settled.upto {
        // Should this fail they stay queued: published again, the stream drops the copies.
        store
            .exported(upto)
            .map_err(|e| format!("cannot record the export cursor: {e}"))?;
    }
    match settled.failed.or(failed) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// What JetStream answered for one event of a batch.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Published,
    /// The stream had its `Nats-Msg-Id` already.
    Duplicate,
    /// Never sent: over the server's max_payload.
    Dropped,
    Failed(String),
}

/// What a batch's answers come to.
#[derive(Debug, PartialEq)]
struct Settled {
    /// The cursor moves over the answered prefix (a dropped event counts: it never will be).
    upto: Option<u64>,
    /// `(kind, result)` of each event of that prefix, for the counters.
    counted: Vec<(&'static str, &'static str)>,
    /// Why the rest of the batch waits.
    failed: Option<String>,
}

/// The batch's answers in publish order, sans I/O: everything after the first failure is
/// published again (acknowledged or not: the stream drops the copies).
fn settle(answers: Vec<(u64, &'static str, Answer)>) -> Settled {
    let mut settled = Settled {
        upto: None,
        counted: Vec::new(),
        failed: None,
    };
    for (seq, kind, answer) in answers {
        let result = match answer {
            Answer::Published => "published",
            Answer::Duplicate => "duplicate",
            Answer::Dropped => "dropped",
            Answer::Failed(why) => {
                settled.failed = Some(why);
                break;
            }
        };
        settled.counted.push((kind, result));
        settled.upto = Some(seq);
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_moves_over_the_answered_prefix_only() {
        let answers = vec![
            (7, "rating", Answer::Published),
            (8, "mt", Answer::Dropped),
            (9, "mt", Answer::Duplicate),
            (10, "conversation", Answer::Failed("no ack in 5s".into())),
            (11, "rating", Answer::Published),
        ];
        let settled = settle(answers);
        assert_eq!(settled.upto, Some(9), "11 is published again after 10");
        assert_eq!(
            settled.counted,
            [
                ("rating", "published"),
                ("mt", "dropped"),
                ("mt", "duplicate")
            ]
        );
        assert_eq!(settled.failed.as_deref(), Some("no ack in 5s"));
        let first = settle(vec![(1, "rating", Answer::Failed("down".into()))]);
        assert_eq!((first.upto, first.counted.len()), (None, 0));
        assert_eq!(settle(Vec::new()).upto, None);
    }
}
