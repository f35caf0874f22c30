//! The webhook queue's policy, without I/O: which calls to deliver now, what an attempt's
//! result means (delivered, refused for good, or worth another attempt after a growing
//! pause), when to give up, and when to wake next. Time is an input; the worker reads the
//! store, makes the POSTs and records what [`Queue::handle_result`] decides.
//!
//! Calls are read in id order after a cursor. Ids are taken before their step commits, so a
//! call can land behind the cursor: a rescan from the start every [`RESCAN`] finds those,
//! skipping the ones being delivered or waiting to retry (as `service::outbox` does).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Millis, WebhookCall, WebhookOutcome};

/// Deliveries in flight at once, at most.
pub const MAX_SENDING: usize = 16;
/// Calls read from the store per pass, at most.
pub const READ_BATCH: usize = 256;
/// First and longest pause before a failed attempt is made again (SPEC.md: 1 s … 60 s).
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// A call still failing this long after its step is given up (SPEC.md: 24 h).
pub const GIVE_UP_MS: Millis = 24 * 3600 * 1000;
/// How often the queue is read again from its first call.
pub const RESCAN: Duration = Duration::from_secs(1);

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered this status.
    Answered(u16),
    /// No answer: connect refused, TLS failed, the timeout, a broken response.
    Failed(String),
    /// The call's `[[webhook]]` is not in the config any more.
    Unknown,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Out of the queue with this outcome; `result` is the metric's label.
    Finished {
        outcome: WebhookOutcome,
        result: &'static str,
    },
    /// Another attempt after `pause` (this was attempt `attempt`).
    Retry { pause: Duration, attempt: u32 },
}

/// See the module documentation.
#[derive(Debug)]
pub struct Queue {
    /// The highest id read; new calls are read after it.
    cursor: Option<u64>,
    rescan_at: Instant,
    /// Being delivered or waiting to retry: not to be read again.
    known: HashSet<u64>,
    retries: BTreeMap<(Instant, u64), WebhookCall>,
    attempts: HashMap<u64, u32>,
    sending: usize,
}

impl Queue {
    pub fn new(now: Instant) -> Queue {
        Queue {
            cursor: None,
            rescan_at: now,
            known: HashSet::new(),
            retries: BTreeMap::new(),
            attempts: HashMap::new(),
            sending: 0,
        }
    }

    /// Retries due at `now` (taken out of the wait), and where and how many fresh calls to
    /// read: `(after id, at most)`; nothing to read when every slot is busy.
    pub fn poll_due(&mut self, now: Instant) -> (Vec<WebhookCall>, Option<(Option<u64>, usize)>) {
        let mut due = Vec::new();
        while self.sending + due.len() < MAX_SENDING
            && let Some(entry) = self.retries.first_entry()
            && entry.key().0 <= now
        {
            due.push(entry.remove());
        }
        if now >= self.rescan_at {
            self.cursor = None;
            self.rescan_at = now + RESCAN;
        }
        let room = MAX_SENDING - self.sending - due.len();
        let read = (room > 0).then(|| (self.cursor, room.min(READ_BATCH)));
        (due, read)
    }

    /// Calls read after the cursor: the ones not already being delivered or waiting.
    pub fn handle_fresh(&mut self, mut fresh: Vec<WebhookCall>) -> Vec<WebhookCall> {
        if let Some(last) = fresh.last() {
            self.cursor = Some(last.id);
        }
        fresh.retain(|c| self.known.insert(c.id));
        fresh
    }

    /// The store could not make `fresh` durable: not delivered now, read again later.
    pub fn handle_not_durable(&mut self, fresh: &[WebhookCall]) {
        for c in fresh {
            self.known.remove(&c.id);
        }
        self.cursor = None;
    }

    /// `n` deliveries started.
    pub fn handle_started(&mut self, n: usize) {
        self.sending += n;
    }

    /// The number the next attempt of `call` is (1 for the first).
    pub fn attempt_of(&self, call: &WebhookCall) -> u32 {
        self.attempts.get(&call.id).copied().unwrap_or(0) + 1
    }

    /// An attempt's result, at `now` (`now_ms` on the wall clock, for the give-up age and the
    /// timeline). 2xx is delivered; 408, 429 and 5xx, like no answer, are tried again; any
    /// other status is the receiver refusing the call, which retrying will not change.
    pub fn handle_result(
        &mut self,
        now: Instant,
        now_ms: Millis,
        call: WebhookCall,
        attempt: Attempt,
    ) -> Decision {
        self.sending = self.sending.saturating_sub(1);
        let n = self.attempt_of(&call);
        let (status, result) = match attempt {
            Attempt::Answered(code @ 200..=299) => {
                (format!("delivered (HTTP {code}, attempt {n})"), "delivered")
            }
            Attempt::Answered(code) if !temporary(code) => {
                (format!("refused (HTTP {code}, attempt {n})"), "refused")
            }
            Attempt::Unknown => (
                format!(
                    "given up: no [[webhook]] named {:?} in the config",
                    call.webhook
                ),
                "given_up",
            ),
            failure if now_ms.saturating_sub(call.created_at) < GIVE_UP_MS => {
                tracing::debug!(webhook = %call.webhook, call = call.id, attempt = n, ?failure, "webhook attempt failed");
                self.attempts.insert(call.id, n);
                let pause = backoff(n);
                self.retries.insert((now + pause, call.id), call);
                return Decision::Retry { pause, attempt: n };
            }
            failure => (
                format!(
                    "given up after 24h and {n} attempts: {}",
                    describe(&failure)
                ),
                "given_up",
            ),
        };
        self.attempts.remove(&call.id);
        self.known.remove(&call.id);
        Decision::Finished {
            outcome: WebhookOutcome {
                call: call.id,
                conversation: call.conversation,
                webhook: call.webhook,
                at: now_ms,
                status,
            },
            result,
        }
    }

    /// When the next retry or rescan is due.
    pub fn poll_timeout(&self) -> Instant {
        match self.retries.first_key_value() {
            Some(((at, _), _)) => (*at).min(self.rescan_at),
            None => self.rescan_at,
        }
    }

    /// Deliveries started and not finished.
    pub fn sending(&self) -> usize {
        self.sending
    }
}

fn describe(attempt: &Attempt) -> String {
    match attempt {
        Attempt::Answered(code) => format!("HTTP {code}"),
        Attempt::Failed(why) => why.clone(),
        Attempt::Unknown => "unknown webhook".to_owned(),
    }
}

/// Statuses that say "not now" rather than "no": timeouts, rate limits, server errors.
pub fn temporary(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The pause before attempt `attempt + 1`: doubling from [`RETRY_MIN`] up to [`RETRY_MAX`].
pub fn backoff(attempt: u32) -> Duration {
    RETRY_MIN
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: u64, created_at: Millis) -> WebhookCall {
        WebhookCall {
            id,
            webhook: "servicedesk".into(),
            conversation: 7,
            flow: "escalation".into(),
            seq: 1,
            created_at,
            body: "{}".into(),
        }
    }

    /// On virtual time: a receiver that keeps answering 503 gets the call again after 1, 2,
    /// 4 … 60 s, never before its pause, and the call is given up a day after its step.
    #[test]
    fn a_failing_receiver_is_retried_backing_off_to_a_minute_then_given_up() {
        let t0 = Instant::now();
        let mut queue = Queue::new(t0);
        let (due, read) = queue.poll_due(t0);
        assert!(due.is_empty());
        assert_eq!(read, Some((None, MAX_SENDING)));
        assert_eq!(queue.handle_fresh(vec![call(5, 0)]).len(), 1);
        assert!(queue.handle_fresh(vec![call(5, 0)]).is_empty(), "read once");
        queue.handle_started(1);
        let mut now = t0;
        let mut c = call(5, 0);
        for (i, secs) in [1, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
            let pause = Duration::from_secs(secs);
            let attempt = i as u32 + 1;
            assert_eq!(queue.attempt_of(&c), attempt);
            let decision = queue.handle_result(now, 1_000, c, Attempt::Answered(503));
            assert_eq!(decision, Decision::Retry { pause, attempt });
            assert!(queue.poll_timeout() <= now + pause);
            let early = now + pause - Duration::from_millis(1);
            assert!(queue.poll_due(early).0.is_empty(), "not before its pause");
            now += pause;
            c = queue.poll_due(now).0.pop().expect("due after its pause");
            queue.handle_started(1);
        }
        let failed = Attempt::Failed("connection refused".into());
        match queue.handle_result(now, GIVE_UP_MS, c, failed) {
            Decision::Finished { outcome, result } => {
                assert_eq!(result, "given_up");
                assert_eq!(
                    outcome.status,
                    "given up after 24h and 9 attempts: connection refused"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(queue.sending(), 0);
    }

    #[test]
    fn statuses_deliver_refuse_or_retry() {
        let t0 = Instant::now();
        let mut queue = Queue::new(t0);
        for (status, expected) in [
            (200, "delivered"),
            (204, "delivered"),
            (400, "refused"),
            (410, "refused"),
        ] {
            queue.handle_started(1);
            match queue.handle_result(t0, 0, call(1, 0), Attempt::Answered(status)) {
                Decision::Finished { result, outcome } => {
                    assert_eq!(result, expected, "{status}");
                    assert!(
                        outcome
                            .status
                            .contains(&format!("HTTP {status}, attempt 1"))
                    );
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [408, 429, 500, 502] {
            assert!(temporary(status), "{status}");
        }
        match queue.handle_result(t0, 0, call(2, 0), Attempt::Unknown) {
            Decision::Finished { result, .. } => assert_eq!(result, "given_up"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_call_not_yet_durable_is_read_again() {
        let t0 = Instant::now();
        let mut queue = Queue::new(t0);
        let fresh = queue.handle_fresh(vec![call(3, 0)]);
        queue.handle_not_durable(&fresh);
        let (_, read) = queue.poll_due(t0);
        assert_eq!(read, Some((None, MAX_SENDING)));
        assert_eq!(queue.handle_fresh(vec![call(3, 0)]).len(), 1);
    }
}
