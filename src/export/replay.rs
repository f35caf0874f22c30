//! Reading the stream back: an ordered replay of every event published since a time, for
//! `smsflow report … --source nats://…`. Ordered consumers are ephemeral and need no ack, so
//! a report leaves nothing behind on the server and never competes with other consumers.

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

use super::event::Envelope;
use crate::store::Millis;

/// How long the replay waits for the next message before it gives up.
const IDLE: Duration = Duration::from_secs(30);

/// Where the events are: servers, stream, subject prefix.
#[derive(Debug, Clone)]
pub struct Source {
    pub servers: Vec<String>,
    pub stream: String,
    pub subject_prefix: String,
}

/// Every event of `kinds` the stream stored since `since` (publish time; an event is
/// published after it happened, so nothing of the range is missed), each `Nats-Msg-Id` once,
/// in stream order. Events the stream cannot read as ours are counted and skipped.
pub async fn read(source: &Source, kinds: &[&str], since: Millis) -> Result<Replay, String> {
    let client = async_nats::ConnectOptions::new()
        .name("smsflow report")
        .connection_timeout(Duration::from_secs(5))
        .connect(source.servers.as_slice())
        .await
        .map_err(|e| {
            let servers = crate::config::export::redacted(&source.servers);
            format!("cannot connect to NATS at {servers}: {e}")
        })?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&source.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", source.stream))?;
    let start_time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(since) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // One kind: the server filters; several: one pass over the prefix.
    let filter_subject = match kinds {
        [kind] => format!("{}.{kind}", source.subject_prefix),
        _ => format!("{}.>", source.subject_prefix),
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject,
            deliver_policy: consumer::DeliverPolicy::ByStartTime { start_time },
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot read stream {}: {e}", source.stream))?;
    let mut replay = Replay::default();
    if consumer.cached_info().num_pending == 0 {
        return Ok(replay);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("cannot read stream {}: {e}", source.stream))?;
    let mut seen = HashSet::new();
    loop {
        let next = tokio::time::timeout(IDLE, messages.next())
            .await
            .map_err(|_| format!("stream {}: no message for {IDLE:?}", source.stream))?;
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => return Err(format!("reading stream {}: {e}", source.stream)),
            None => return Ok(replay),
        };
        let pending = message.info().map(|i| i.pending).unwrap_or(0);
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(e) if !kinds.contains(&e.kind()) => {}
            // The stream dedupes within its window; a republish after a longer outage is
            // dropped here.
            Ok(e) if !seen.insert(e.id.clone()) => replay.duplicates += 1,
            Ok(e) => replay.events.push(e),
            Err(_) => replay.unreadable += 1,
        }
        if pending == 0 {
            return Ok(replay);
        }
    }
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Replay {
    pub events: Vec<Envelope>,
    /// Events seen twice (same id), counted once.
    pub duplicates: u64,
    /// Messages that are not smsflow events.
    pub unreadable: u64,
}
