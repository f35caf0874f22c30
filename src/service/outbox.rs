//! The outbox's policy, without I/O: which messages to submit now, what a submit's result
//! means (accepted, refused for good, or worth another attempt after a growing pause), and
//! when to wake next. Time is an input; the driver reads the store, submits through the pools
//! and records what [`Outbox::handle_result`] decides.
//!
//! Messages are read in id order after a cursor, rescanned from the start every [`RESCAN`]
//! for the ones that committed behind it, and retried after [`backoff`]: the queue that
//! `crate::retry` keeps for the outbox and the webhooks alike. What is the outbox's own:
//! which submit errors are worth another attempt, the parts of a long message an attempt
//! got accepted, and the **budget**: what a crash may send twice.
//!
//! A message accepted by the SMSC whose outcome is not yet on disk goes out again after a
//! crash (at-least-once). So a message holds its parts against the budget from its submit
//! until its outcome is durable ([`Outbox::handle_durable`]), and nothing more is submitted
//! while the budget is spent: after a `kill -9`, at most the budget's parts (the SMSCs'
//! `sessions × window`) are sent again, however long the outbox.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::esme::{SendError, Sent, SubmitError};
use crate::retry::{Queued, Retries};
use crate::smpp::pdu::CommandStatus;
use crate::smpp::receipt::canonical_id;
use crate::store::{MessageStatus, Millis, OutMessage, OutboxOutcome};

pub use crate::retry::{GIVE_UP_MS, RESCAN, RETRY_MAX, RETRY_MIN, backoff};

/// Outbox messages being submitted at once, at most.
pub const MAX_SENDING: usize = 8192;
/// Messages read from the store per pass, at most.
pub const READ_BATCH: usize = 1024;
/// How long a due retry waits when the budget is spent.
const BUDGET_WAIT: Duration = Duration::from_millis(100);

pub type SendResult = Result<Sent, SendError>;

/// What became of one submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accepted, or refused for good: take it out of the outbox with this outcome.
    Finished(OutboxOutcome),
    /// Worth another attempt, after `pause` (this was attempt `attempt`).
    Retry { pause: Duration, attempt: u32 },
    /// The pool stopped before sending it: it stays in the outbox for the next start.
    Kept,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outbox {
    queue: Retries<OutMessage>,
    /// The parts of a long message accepted by an attempt that failed on another part.
    accepted: HashMap<u64, Vec<Option<String>>>,
    /// Parts that may be submitted and not durably recorded at once.
    budget: usize,
    /// The parts each message submitted holds, until its outcome is durable.
    held: HashMap<u64, usize>,
    held_parts: usize,
}

impl Queued for OutMessage {
    fn id(&self) -> u64 {
        self.id
    }
}

/// The concatenation reference of `message`'s parts: from its id, so every attempt (after a
/// restart too) uses the same one and a handset puts the parts of retries together.
pub fn reference(message: &OutMessage) -> u8 {
    message.id as u8
}

impl Outbox {
    /// An outbox whose submits not durably recorded hold at most `budget` parts (one
    /// message at least, however long).
    pub fn new(now: Instant, budget: usize) -> Outbox {
        Outbox {
            queue: Retries::new(now, MAX_SENDING, READ_BATCH),
            accepted: HashMap::new(),
            budget: budget.max(1),
            held: HashMap::new(),
            held_parts: 0,
        }
    }

    /// Of `candidates` (due retries and fresh messages, durable), the ones the budget lets
    /// go now, each holding its parts; the others wait (a fresh one is read again, a retry
    /// stays due). Then [`Outbox::handle_submitted`] for those.
    pub fn admit(&mut self, now: Instant, candidates: Vec<OutMessage>) -> Vec<OutMessage> {
        let mut admitted = Vec::with_capacity(candidates.len());
        let mut later = Vec::new();
        for m in candidates {
            let parts = crate::smpp::text::cost(&m.text).parts.max(1);
            if self.held_parts > 0 && self.held_parts + parts > self.budget {
                later.push(m);
                continue;
            }
            self.held_parts += parts;
            *self.held.entry(m.id).or_default() += parts;
            admitted.push(m);
        }
        for m in later {
            if self.queue.failures(m.id) > 0 {
                // Due again shortly: results and durable outcomes free the budget sooner.
                self.queue.defer(now + BUDGET_WAIT, m);
            } else {
                self.queue.handle_not_durable(std::slice::from_ref(&m));
            }
        }
        admitted
    }

    /// The outcomes of these messages are on disk: their parts no longer count against the
    /// budget.
    pub fn handle_durable(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            self.release(id);
        }
    }

    fn release(&mut self, id: u64) {
        if let Some(parts) = self.held.remove(&id) {
            self.held_parts -= parts;
        }
    }

    /// Parts submitted and not durably recorded.
    pub fn held_parts(&self) -> usize {
        self.held_parts
    }

    /// Retries due at `now` (taken out of the wait), and where and how many fresh messages
    /// to read from the store: `(after id, at most)`; nothing to read when there is no room.
    pub fn poll_due(&mut self, now: Instant) -> (Vec<OutMessage>, Option<(u64, usize)>) {
        let (due, read) = self.queue.poll_due(now);
        // No more than the budget has room for (a message is a part at least).
        let room = self.budget.saturating_sub(self.held_parts);
        let read = read
            .filter(|_| room > 0)
            .map(|(after, limit)| (after, limit.min(room)));
        (due, read)
    }

    /// Messages read after the cursor: the ones not already sending or waiting.
    pub fn handle_fresh(&mut self, fresh: Vec<OutMessage>) -> Vec<OutMessage> {
        self.queue.handle_fresh(fresh)
    }

    /// The store could not make `fresh` durable: they are not sent now, and read again.
    pub fn handle_not_durable(&mut self, fresh: &[OutMessage]) {
        self.queue.handle_not_durable(fresh);
    }

    /// The parts of message `id` an earlier attempt got accepted: to leave out of this one.
    pub fn accepted_parts(&self, id: u64) -> &[Option<String>] {
        self.accepted.get(&id).map_or(&[], Vec::as_slice)
    }

    /// `n` messages handed to the pools.
    pub fn handle_submitted(&mut self, n: usize) {
        self.queue.handle_started(n);
    }

    /// A submit's result, at `now` (`now_ms` on the wall clock, for the give-up age).
    pub fn handle_result(
        &mut self,
        now: Instant,
        now_ms: Millis,
        message: OutMessage,
        result: SendResult,
    ) -> Decision {
        self.queue.answered();
        let (status, smsc_ids) = match result {
            Ok(sent) => (MessageStatus::Sent, sent.message_ids),
            Err(SendError {
                error: SubmitError::Shutdown,
                ..
            }) => {
                self.queue.kept(message.id);
                self.accepted.remove(&message.id);
                self.release(message.id);
                return Decision::Kept;
            }
            Err(e) if is_temporary(&e.error) && now_ms - message.created_at < GIVE_UP_MS => {
                if e.accepted.iter().any(Option::is_some) {
                    self.accepted.insert(message.id, e.accepted);
                }
                // Nothing to record: the parts another attempt may go twice are its own.
                self.release(message.id);
                let (pause, attempt) = self.queue.retry(now, message);
                return Decision::Retry { pause, attempt };
            }
            Err(e) => {
                let ids = e.accepted.into_iter().flatten().collect();
                (MessageStatus::Failed(e.error.to_string()), ids)
            }
        };
        self.accepted.remove(&message.id);
        self.queue.done(message.id);
        Decision::Finished(OutboxOutcome {
            message,
            status,
            smsc_ids: smsc_ids.iter().map(|id| canonical_id(id)).collect(),
            at: now_ms,
        })
    }

    /// When the next retry or rescan is due.
    pub fn poll_timeout(&self) -> Instant {
        self.queue.poll_timeout()
    }

    /// Submits handed out and not answered yet.
    pub fn sending(&self) -> usize {
        self.queue.in_flight()
    }
}

/// Whether a failed submit is worth another attempt: the SMSC may not have it (no answer, lost
/// link) or said "not now".
pub fn is_temporary(error: &SubmitError) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u64, created_at: Millis) -> OutMessage {
        OutMessage {
            id,
            conversation: 1,
            to: "998901234567".into(),
            text: "Спасибо".into(),
            created_at,
            flow: "survey".into(),
            opening: false,
        }
    }

    fn refused(error: SubmitError) -> SendResult {
        Err(SendError {
            parts: 1,
            failed_part: 1,
            accepted: Vec::new(),
            error,
        })
    }

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

    /// On virtual time: a message that keeps failing waits 1, 2, 4 … 60 s between attempts,
    /// is read again only when its pause is over, and is given up a day after it was queued.
    #[test]
    fn a_failing_submit_backs_off_to_a_minute_and_is_given_up_after_a_day() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(t0, 4 * READ_BATCH);
        let (due, read) = outbox.poll_due(t0);
        assert!(due.is_empty());
        assert_eq!(read, Some((0, READ_BATCH)));
        let fresh = outbox.handle_fresh(vec![message(7, 0)]);
        assert_eq!(fresh.len(), 1);
        assert!(
            outbox.handle_fresh(vec![message(7, 0)]).is_empty(),
            "read once"
        );
        outbox.handle_submitted(1);

        let mut now = t0;
        let mut m = message(7, 0);
        for (attempt, secs) in [1, 2, 4, 8, 16, 32, 60, 60, 60].into_iter().enumerate() {
            let pause = Duration::from_secs(secs);
            let decision = outbox.handle_result(now, 1_000, m, refused(SubmitError::LinkLost));
            let attempt = attempt as u32 + 1;
            assert_eq!(decision, Decision::Retry { pause, attempt });
            assert!(
                outbox.poll_timeout() <= now + pause,
                "it wakes for the retry"
            );
            let early = now + pause - Duration::from_millis(1);
            assert!(outbox.poll_due(early).0.is_empty(), "not before its pause");
            now += pause;
            m = outbox.poll_due(now).0.pop().expect("due after its pause");
            outbox.handle_submitted(1);
        }
        // A day after it was queued, the next failure gives it up.
        match outbox.handle_result(now, GIVE_UP_MS + 1, m, refused(SubmitError::LinkLost)) {
            Decision::Finished(outcome) => {
                assert!(
                    matches!(&outcome.status, MessageStatus::Failed(why) if why.starts_with("link lost")),
                    "{}",
                    outcome.status
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outbox.sending(), 0);
    }

    /// What a crash may send twice is bounded: a message holds its parts from its submit
    /// until its outcome is durable, and nothing more goes while the budget is spent.
    #[test]
    fn submits_not_durably_recorded_hold_at_most_the_budget() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(t0, 3);
        // "Спасибо" is one part each.
        let fresh = outbox.handle_fresh((1..=5).map(|id| message(id, 0)).collect());
        let first = outbox.admit(t0, fresh);
        let ids: Vec<u64> = first.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(outbox.held_parts(), 3);
        outbox.handle_submitted(3);
        assert_eq!(outbox.poll_due(t0).1, None, "no room: nothing read");
        let sent = Ok(Sent {
            message_ids: vec!["a".into()],
        });
        for m in first {
            assert!(matches!(
                outbox.handle_result(t0, 0, m, sent.clone()),
                Decision::Finished(_)
            ));
        }
        assert_eq!(outbox.held_parts(), 3, "answered, but not yet on disk");
        outbox.handle_durable([1, 2]);
        assert_eq!(outbox.held_parts(), 1);
        let (_, read) = outbox.poll_due(t0);
        assert_eq!(read, Some((0, 2)), "4 and 5 are read again, two at most");
        let again = outbox.handle_fresh(vec![message(4, 0), message(5, 0)]);
        assert_eq!(outbox.admit(t0, again).len(), 2);
        // A long message goes alone when nothing is held, whatever its parts.
        let mut outbox = Outbox::new(t0, 2);
        let long = OutMessage {
            text: "Ж".repeat(300),
            ..message(9, 0)
        };
        let fresh = outbox.handle_fresh(vec![long]);
        assert_eq!(outbox.admit(t0, fresh).len(), 1);
        assert_eq!(outbox.held_parts(), 5);
    }

    #[test]
    fn an_accepted_message_leaves_with_its_ids_and_a_stopped_pool_keeps_it() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(t0, 4 * READ_BATCH);
        outbox.handle_fresh(vec![message(1, 0), message(2, 0)]);
        outbox.handle_submitted(2);
        let sent = Sent {
            message_ids: vec!["00AB".into(), "0ac".into()],
        };
        match outbox.handle_result(t0, 0, message(1, 0), Ok(sent)) {
            Decision::Finished(o) => {
                assert_eq!(o.status, MessageStatus::Sent);
                assert_eq!(o.smsc_ids, ["ab", "ac"], "kept canonical");
            }
            other => panic!("{other:?}"),
        }
        let stopped = refused(SubmitError::Shutdown);
        assert_eq!(
            outbox.handle_result(t0, 0, message(2, 0), stopped),
            Decision::Kept
        );
        // Kept messages are read again (after the rescan).
        let (_, read) = outbox.poll_due(t0 + RESCAN);
        assert_eq!(read, Some((0, READ_BATCH)));
        assert_eq!(outbox.handle_fresh(vec![message(2, 0)]).len(), 1);
    }
}
