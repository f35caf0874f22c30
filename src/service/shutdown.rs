//! A stop with a bound: whatever hangs, SIGTERM ends `smsflow run` within
//! `[service] shutdown_timeout` (plus the unbind's and the flush's last rites).
//!
//! `run` stops its parts in order (HTTP, the pipeline, the SMPP pools' unbind, webhooks,
//! export, the store's flush), each through [`Stop::part`] against one deadline. A part still
//! running at the deadline is abandoned (its future dropped, its tasks cancelled) with a WARN
//! that says what it was waiting for, as the part itself describes it. Past the deadline the
//! unbind and the flush still get [`LAST_RITES`] each ([`Stop::last_rite`]): the carrier should
//! hear the unbind and the store should be flushed even when a webhook receiver hung. Then
//! `smsflow run` exits with [`EXIT_STOP_TIMED_OUT`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Past the deadline, how long the unbind and the final flush may each still take.
pub const LAST_RITES: Duration = Duration::from_secs(3);

/// The exit code of a stop that abandoned a part (0 is a clean stop, 1 a failure, 2 a bad
/// config).
pub const EXIT_STOP_TIMED_OUT: u8 = 3;

/// How long a whole stop can take at most: the timeout and both last rites, plus a margin
/// for the process's own exit. Past it, `main`'s watchdog ends the process.
pub fn longest(timeout: Duration) -> Duration {
    timeout + 2 * LAST_RITES + Duration::from_secs(2)
}

/// See the module documentation.
#[derive(Debug)]
pub struct Stop {
    timeout: Duration,
    deadline: Instant,
    /// What was abandoned, each with what it waited for.
    abandoned: Vec<String>,
}

impl Stop {
    /// A stop starting now that may take `timeout`.
    pub fn new(timeout: Duration) -> Stop {
        Stop {
            timeout,
            deadline: Instant::now() + timeout,
            abandoned: Vec::new(),
        }
    }

    /// Runs `part` until the deadline. Past it, `running` says what the part still waits for
    /// (one line per connection, task or request; empty: nothing it can name), the WARN
    /// names it and the part is abandoned: `None`.
    pub async fn part<T>(
        &mut self,
        name: &str,
        running: impl FnOnce() -> Vec<String>,
        part: impl Future<Output = T>,
    ) -> Option<T> {
        let until = self.deadline;
        self.until(until, name, running, part).await
    }

    /// [`Stop::part`], with at least [`LAST_RITES`] even once the deadline passed.
    pub async fn last_rite<T>(
        &mut self,
        name: &str,
        running: impl FnOnce() -> Vec<String>,
        part: impl Future<Output = T>,
    ) -> Option<T> {
        let until = self.deadline.max(Instant::now() + LAST_RITES);
        self.until(until, name, running, part).await
    }

    async fn until<T>(
        &mut self,
        until: Instant,
        name: &str,
        running: impl FnOnce() -> Vec<String>,
        part: impl Future<Output = T>,
    ) -> Option<T> {
        match tokio::time::timeout_at(until, part).await {
            Ok(done) => Some(done),
            Err(_) => {
                let waiting = running();
                let what = if waiting.is_empty() {
                    name.to_owned()
                } else {
                    format!("{name} ({})", waiting.join("; "))
                };
                tracing::warn!(
                    "stopping: shutdown_timeout ({}) is over; abandoning {what}",
                    humantime::format_duration(self.timeout)
                );
                self.abandoned.push(what);
                None
            }
        }
    }

    /// What was abandoned; empty for a clean stop.
    pub fn abandoned(&self) -> &[String] {
        &self.abandoned
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_part_past_the_deadline_is_abandoned_and_named_with_what_it_waited_for() {
        let mut stop = Stop::new(Duration::from_secs(20));
        let quick = stop.part("http", Vec::new, async { 7 }).await;
        assert_eq!(quick, Some(7));
        let hung = stop
            .part(
                "webhooks",
                || vec!["servicedesk: 1 delivery in flight".to_owned()],
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(hung, None);
        assert_eq!(
            stop.abandoned(),
            ["webhooks (servicedesk: 1 delivery in flight)"]
        );
        // The deadline passed: a plain part is abandoned at once, a last rite gets its time.
        let started = Instant::now();
        assert_eq!(stop.part("export", Vec::new, async {}).await, Some(()));
        let unbind = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "unbound"
        };
        assert_eq!(
            stop.last_rite("smpp", Vec::new, unbind).await,
            Some("unbound")
        );
        let flush = stop
            .last_rite("store", Vec::new, std::future::pending::<()>())
            .await;
        assert_eq!(flush, None);
        assert_eq!(
            Instant::now() - started,
            Duration::from_secs(2) + LAST_RITES
        );
        assert_eq!(stop.abandoned().len(), 2);
    }
}
