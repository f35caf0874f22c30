//! The MO → flow → MT pipeline: wires the SMPP pool to the flow engine.
//!
//! - **Inbound**: an MO (reassembled when it came in parts) goes to the flow engine, whose step
//!   is committed to the store; after a store flush the deliver_sm is acknowledged, so an
//!   acknowledged MO is always on disk. A receipt goes to the conversation that sent the
//!   message (`on_delivery`).
//! - **Outbound**: the store's outbox is drained into the pool; each message leaves the outbox
//!   once the SMSC accepted (or finally refused) it.
//! - **Timers**: due timers fire from the store's timer tree.
//!
//! What this first version does not do yet (the service issue): MO parts are held in memory
//! until their message completes (acknowledged on arrival), a redelivered MO is not recognised,
//! and an outbox message whose submit timed out is not retried.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::esme::{InboundMessage, Pool};
use crate::flow::engine::{FlowEngine, Routed};
use crate::smpp::concat::{Offer, Part, Reassembler};
use crate::smpp::text::{self, MessageBody};
use crate::store::ConversationId;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters of what went through, for progress and the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub mo: u64,
    pub mt_accepted: u64,
    pub mt_failed: u64,
    pub receipts: u64,
    pub timers: u64,
    pub script_errors: u64,
}

/// A message the SMSC accepted: which conversation and outbox entry it belongs to.
#[derive(Debug, Clone)]
struct SentPart {
    conversation: ConversationId,
    outbox_id: u64,
    to: String,
}

/// The running pipeline.
pub struct Pipeline {
    engine: Arc<FlowEngine>,
    pool: Arc<Pool>,
    outbox_ready: Arc<Notify>,
    counts: Arc<Mutex<Counts>>,
    /// SMSC message id → the message it belongs to (for receipts).
    sent: Arc<Mutex<HashMap<String, SentPart>>>,
    shutdown: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
}

impl Pipeline {
    /// Starts the inbound, outbound and timer tasks.
    pub fn start(
        engine: Arc<FlowEngine>,
        pool: Arc<Pool>,
        inbound: mpsc::Receiver<InboundMessage>,
    ) -> Arc<Pipeline> {
        let pipeline = Arc::new(Pipeline {
            engine,
            pool,
            outbox_ready: Arc::new(Notify::new()),
            counts: Arc::new(Mutex::new(Counts::default())),
            sent: Arc::new(Mutex::new(HashMap::new())),
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
        });
        {
            let mut tasks = pipeline.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.spawn(pipeline.clone().inbound_loop(inbound));
            tasks.spawn(pipeline.clone().outbox_loop());
            tasks.spawn(pipeline.clone().timer_loop());
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

    /// Stops the tasks (in-flight sends finish; the pool is shut down by its owner).
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        while tasks.join_next().await.is_some() {}
    }

    async fn inbound_loop(self: Arc<Self>, mut inbound: mpsc::Receiver<InboundMessage>) {
        let mut reassembler = Reassembler::new(Duration::from_secs(300), 10_000);
        loop {
            let message = tokio::select! {
                message = inbound.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
                () = self.shutdown.cancelled() => return,
            };
            if let Some(receipt) = &message.inbound.receipt {
                self.on_receipt(receipt);
                message.ack.ack();
                continue;
            }
            let i = &message.inbound;
            let text = match i.concat {
                None => Some(body_text(text::decode(i.data_coding, &i.payload))),
                Some(concat) => {
                    let part = Part {
                        source: i.source_addr.clone(),
                        destination: i.destination_addr.clone(),
                        concat,
                        data_coding: i.data_coding,
                        payload: i.payload.to_vec(),
                    };
                    match reassembler.offer(SystemTime::now(), part) {
                        Ok(Offer::Complete(whole)) => Some(body_text(whole.body())),
                        Ok(_) => None,
                        Err(_) => Some(body_text(text::decode(i.data_coding, &i.payload))),
                    }
                }
            };
            let Some(text) = text else {
                message.ack.ack();
                continue;
            };
            let now = now_ms();
            match self.engine.reply(now, &i.source_addr, &text, now) {
                Ok(routed) => {
                    if let Routed::Conversation(step) | Routed::Inbox(step) = &routed
                        && step.error.is_some()
                    {
                        self.count(|c| c.script_errors += 1);
                    }
                    self.count(|c| c.mo += 1);
                    // Acknowledged only once the step is on disk.
                    match self.engine.store().flush().await {
                        Ok(()) => message.ack.ack(),
                        Err(e) => {
                            tracing::error!("store flush failed, MO left for redelivery: {e}");
                            message.ack.retry_later();
                        }
                    }
                    self.outbox_changed();
                }
                Err(e) => {
                    tracing::error!("MO not stored, left for redelivery: {e}");
                    message.ack.retry_later();
                }
            }
        }
    }

    fn on_receipt(
        &self,
        receipt: &Result<crate::smpp::receipt::DeliveryReceipt, crate::smpp::receipt::ReceiptError>,
    ) {
        let Ok(receipt) = receipt else {
            return;
        };
        self.count(|c| c.receipts += 1);
        let part = self
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&receipt.message_id);
        let Some(part) = part else {
            return;
        };
        let status = if receipt.state.is_success() {
            "delivered"
        } else {
            "undeliverable"
        };
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
    }

    async fn outbox_loop(self: Arc<Self>) {
        let in_flight: Arc<Mutex<HashSet<u64>>> = Arc::new(Mutex::new(HashSet::new()));
        let mut sends = JoinSet::new();
        loop {
            let batch = match self.engine.store().outbox(512) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!("cannot read the outbox: {e}");
                    Vec::new()
                }
            };
            for message in batch {
                if !in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(message.id)
                {
                    continue;
                }
                let this = self.clone();
                let in_flight = in_flight.clone();
                sends.spawn(async move {
                    let result = this.pool.send_text(&message.to, &message.text).await;
                    match result {
                        Ok(sent) => {
                            this.count(|c| c.mt_accepted += 1);
                            let mut map = this.sent.lock().unwrap_or_else(|p| p.into_inner());
                            for id in sent.message_ids {
                                map.insert(
                                    id,
                                    SentPart {
                                        conversation: message.conversation,
                                        outbox_id: message.id,
                                        to: message.to.clone(),
                                    },
                                );
                            }
                        }
                        Err(e) => {
                            this.count(|c| c.mt_failed += 1);
                            tracing::warn!(to = %message.to, "message not sent: {e}");
                        }
                    }
                    if let Err(e) = this.engine.store().outbox_done(&[message.id]) {
                        tracing::error!("cannot clear outbox entry {}: {e}", message.id);
                    }
                    in_flight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&message.id);
                });
            }
            while sends.try_join_next().is_some() {}
            tokio::select! {
                () = self.outbox_ready.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = self.shutdown.cancelled() => {
                    while sends.join_next().await.is_some() {}
                    return;
                }
            }
        }
    }

    async fn timer_loop(self: Arc<Self>) {
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
        }
    }
}

fn body_text(body: MessageBody) -> String {
    match body {
        MessageBody::Text(text) => text,
        MessageBody::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
    }
}
