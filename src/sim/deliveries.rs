//! The deliver_sm the simulator owes ESMEs (injected MOs and delivery receipts) until each is
//! answered for good: the queue every receiver-capable session takes from, the scheduler for
//! those that must wait (a receipt's delay, a retry), and the settling of an answer.
//!
//! Must not: touch a socket or a PDU's fields (frames are encoded before they come here), or
//! lose a delivery: each either gets a final answer, or is dropped at shutdown with its
//! [`DeliveryHandle`] reporting [`SimError::Stopped`] and its pending count taken back.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::stats::Stats;
use super::{SimError, lock};
use crate::smpp::CommandStatus;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeliveryKind {
    Mo,
    Receipt,
}

/// One deliver_sm the simulator owes an ESME, until it is answered for good.
pub(super) struct Delivery {
    pub(super) kind: DeliveryKind,
    /// The whole frame, sequence_number 0; each attempt patches in its own.
    pub(super) frame: Bytes,
    /// Attempts so far; more than one means redelivery.
    pub(super) sends: u32,
    done: Option<oneshot::Sender<CommandStatus>>,
}

/// A delivery waiting for its time, ordered for a min-heap on `due`.
pub(super) struct Scheduled {
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

/// The deliveries owed, and how they move from waiting to sent to settled.
pub(super) struct Deliveries {
    /// deliver_sm ready to be sent, oldest first, taken by any receiver-capable session with
    /// room in its window.
    queue: Mutex<VecDeque<Delivery>>,
    /// Wakes one session waiting for the queue; a session that cannot take everything
    /// passes the wake-up on.
    ready: Notify,
    /// deliver_sm that must wait (receipt delay, retry delay).
    scheduler: mpsc::UnboundedSender<Scheduled>,
    retry_delay: Duration,
    /// The simulator stopping: nothing is queued any more.
    stop: CancellationToken,
    stats: Arc<Stats>,
}

impl Deliveries {
    /// The deliveries and the receiving end of their scheduler, for [`Deliveries::run_scheduler`].
    pub(super) fn new(
        retry_delay: Duration,
        stop: CancellationToken,
        stats: Arc<Stats>,
    ) -> (Self, mpsc::UnboundedReceiver<Scheduled>) {
        let (scheduler, rx) = mpsc::unbounded_channel();
        let deliveries = Self {
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            scheduler,
            retry_delay,
            stop,
            stats,
        };
        (deliveries, rx)
    }

    /// Queues the parts of one injected message.
    pub(super) fn inject(&self, frames: Vec<Bytes>) -> DeliveryHandle {
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

    /// Owes the ESME the delivery receipt `frame`, sent at `due`.
    pub(super) fn owe_receipt(&self, due: Instant, frame: Bytes) {
        self.stats.receipts_pending.fetch_add(1, Relaxed);
        let receipt = Delivery {
            kind: DeliveryKind::Receipt,
            frame,
            sends: 0,
            done: None,
        };
        self.schedule(due, receipt);
    }

    /// Up to `room` deliveries to send now, oldest first.
    pub(super) fn take(&self, room: usize) -> Vec<Delivery> {
        let (taken, more_left) = {
            let mut queue = lock(&self.queue);
            let n = room.min(queue.len());
            let taken: Vec<Delivery> = queue.drain(..n).collect();
            (taken, !queue.is_empty())
        };
        if more_left {
            // This session is full; let another receiver take the rest.
            self.ready.notify_one();
        }
        taken
    }

    /// Notified when something is queued.
    pub(super) fn ready(&self) -> &Notify {
        &self.ready
    }

    /// Forgets what is queued (the simulator stopped); how many there were.
    pub(super) fn clear(&self) -> usize {
        let dropped = std::mem::take(&mut *lock(&self.queue));
        dropped.len()
    }

    fn enqueue(&self, delivery: Delivery) {
        if self.stop.is_cancelled() {
            self.drop_delivery(delivery);
            return;
        }
        lock(&self.queue).push_back(delivery);
        self.ready.notify_one();
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
    pub(super) fn settle(&self, delivery: Delivery, status: CommandStatus) {
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

    /// Sends `delivery` again after the retry delay (no answer, a temporary error, a session
    /// lost).
    pub(super) fn retry(&self, delivery: Delivery) {
        self.schedule(Instant::now() + self.retry_delay, delivery);
    }

    /// Moves scheduled deliveries to the queue when they are due; ends when the simulator
    /// stops, dropping what it still holds.
    pub(super) async fn run_scheduler(&self, mut rx: mpsc::UnboundedReceiver<Scheduled>) {
        let mut heap = BinaryHeap::<Scheduled>::new();
        loop {
            let next_due = heap.peek().map(|s| s.due);
            tokio::select! {
                () = self.stop.cancelled() => break,
                received = rx.recv() => match received {
                    Some(scheduled) => heap.push(scheduled),
                    None => break,
                },
                () = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                    let now = Instant::now();
                    while heap.peek().is_some_and(|s| s.due <= now) {
                        if let Some(scheduled) = heap.pop() {
                            self.enqueue(scheduled.delivery);
                        }
                    }
                }
            }
        }
        for scheduled in heap
            .drain()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            self.drop_delivery(scheduled.delivery);
        }
    }
}
