//! The webhook queue's policy, without I/O: which calls to deliver now, what an attempt's
//! result means (delivered, refused for good, or worth another attempt after a growing
//! pause), when to give up, and when to wake next. Time is an input; the worker reads the
//! store, makes the POSTs and records what [`Queue::handle_result`] decides.
//!
//! Calls are read in id order after a cursor, rescanned, and retried after 1 s … 60 s: the
//! queue `crate::retry` keeps for the outbox too (SPEC.md gives webhooks the same back-off and
//! the same 24 h). What is the webhooks' own is what a status means.

use std::time::Duration;

use tokio::time::Instant;

use crate::retry::{GIVE_UP_MS, Queued, Retries};
use crate::store::{Millis, WebhookCall, WebhookOutcome};

/// Deliveries in flight at once, at most.
pub const MAX_SENDING: usize = 16;
/// Calls read from the store per pass, at most.
pub const READ_BATCH: usize = 256;

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
    queue: Retries<WebhookCall>,
}

impl Queued for WebhookCall {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Queue {
    pub fn new(now: Instant) -> Queue {
        Queue {
            queue: Retries::new(now, MAX_SENDING, READ_BATCH),
        }
    }

    /// Retries due at `now` (taken out of the wait), and where and how many fresh calls to
    /// read: `(after id, at most)`; nothing to read when every slot is busy.
    pub fn poll_due(&mut self, now: Instant) -> (Vec<WebhookCall>, Option<(u64, usize)>) {
        self.queue.poll_due(now)
    }

    /// Calls read after the cursor: the ones not already being delivered or waiting.
    pub fn handle_fresh(&mut self, fresh: Vec<WebhookCall>) -> Vec<WebhookCall> {
        self.queue.handle_fresh(fresh)
    }

    /// The store could not make `fresh` durable: not delivered now, read again later.
    pub fn handle_not_durable(&mut self, fresh: &[WebhookCall]) {
        self.queue.handle_not_durable(fresh);
    }

    /// `n` deliveries started.
    pub fn handle_started(&mut self, n: usize) {
        self.queue.handle_started(n);
    }

    /// The number the next attempt of `call` is (1 for the first).
    pub fn attempt_of(&self, call: &WebhookCall) -> u32 {
        self.queue.failures(call.id) + 1
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
        self.queue.answered();
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
                let (pause, attempt) = self.queue.retry(now, call);
                return Decision::Retry { pause, attempt };
            }
            failure => (
                format!(
                    "given up after 24h and {n} attempts: {}",
                    describe(&failure)
                ),
                "given_up",
            ),
        };
        self.queue.done(call.id);
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
        self.queue.poll_timeout()
    }

    /// Deliveries started and not finished.
    pub fn sending(&self) -> usize {
        self.queue.in_flight()
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

    /// On virtual time: a receiver that answers 503 or nothing gets the call again after
    /// 1 s, then 2 s (the back-off itself is `crate::retry`'s, tested there), and the call is
    /// given up a day after its step.
    #[test]
    fn a_failing_receiver_gets_the_call_again_until_a_day_is_over() {
        let t0 = Instant::now();
        let mut queue = Queue::new(t0);
        assert_eq!(queue.poll_due(t0).1, Some((0, MAX_SENDING)));
        let mut c = queue.handle_fresh(vec![call(5, 0)]).pop().unwrap();
        queue.handle_started(1);
        let mut now = t0;
        let failures = [
            Attempt::Answered(503),
            Attempt::Failed("no answer within 10s".into()),
        ];
        for (attempt, failure) in (1..).zip(failures) {
            assert_eq!(queue.attempt_of(&c), attempt);
            let pause = Duration::from_secs(1 << (attempt - 1));
            let decision = queue.handle_result(now, 1_000, c, failure);
            assert_eq!(decision, Decision::Retry { pause, attempt });
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
                    "given up after 24h and 3 attempts: connection refused"
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
}
