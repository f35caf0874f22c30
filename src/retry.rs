//! A durable queue worked off in id order, sans I/O: what the outbox (MT messages) and the
//! webhook queue share. Time is an input (`tokio::time::Instant`, so tests run on a paused
//! clock); the caller reads the store, does the I/O, and says what came of each attempt.
//!
//! Items are read in id order after a cursor. Ids are taken before their step commits, so an
//! item can land behind the cursor: a rescan from the start every [`RESCAN`] finds those,
//! skipping the ones in flight or waiting to retry. An item that failed waits [`backoff`]
//! (1 s, 2 s, 4 s … 60 s) before its next attempt; callers give up at [`GIVE_UP_MS`] after
//! the step that queued it.
//!
//! Must not: read a clock, touch the store, or decide what a result means (the callers'
//! `handle_result`s do: `service::outbox`, `webhook::policy`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Millis;

/// First and longest pause before a failed attempt is made again.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// An item still failing this long after it was queued is given up; carriers keep
/// undelivered messages about as long.
pub const GIVE_UP_MS: Millis = 24 * 3600 * 1000;
/// How often the queue is read again from its first item.
pub const RESCAN: Duration = Duration::from_secs(1);

/// An item of a queue: its store id.
pub trait Queued {
    fn id(&self) -> u64;
}

/// See the module documentation.
#[derive(Debug)]
pub struct Retries<T> {
    /// The highest id read; new items are read after it (0: from the first).
    cursor: u64,
    rescan_at: Instant,
    /// In flight or waiting to retry: not to be read again.
    known: HashSet<u64>,
    retries: BTreeMap<(Instant, u64), T>,
    /// Failed attempts so far, by id.
    attempts: HashMap<u64, u32>,
    in_flight: usize,
    max_in_flight: usize,
    read_batch: usize,
}

impl<T: Queued> Retries<T> {
    /// A queue with at most `max_in_flight` attempts at once, reading `read_batch` at a time.
    pub fn new(now: Instant, max_in_flight: usize, read_batch: usize) -> Retries<T> {
        Retries {
            cursor: 0,
            rescan_at: now,
            known: HashSet::new(),
            retries: BTreeMap::new(),
            attempts: HashMap::new(),
            in_flight: 0,
            max_in_flight,
            read_batch,
        }
    }

    /// Retries due at `now` (taken out of the wait), and where and how many fresh items to
    /// read from the store: `(after id, at most)`; nothing to read when there is no room.
    pub fn poll_due(&mut self, now: Instant) -> (Vec<T>, Option<(u64, usize)>) {
        let mut due = Vec::new();
        while self.in_flight + due.len() < self.max_in_flight
            && let Some(entry) = self.retries.first_entry()
            && entry.key().0 <= now
        {
            due.push(entry.remove());
        }
        if now >= self.rescan_at {
            self.cursor = 0;
            self.rescan_at = now + RESCAN;
        }
        let room = self.max_in_flight - self.in_flight - due.len();
        let read = (room > 0).then(|| (self.cursor, room.min(self.read_batch)));
        (due, read)
    }

    /// Items read after the cursor: the ones not already in flight or waiting.
    pub fn handle_fresh(&mut self, mut fresh: Vec<T>) -> Vec<T> {
        if let Some(last) = fresh.last() {
            self.cursor = last.id();
        }
        fresh.retain(|item| self.known.insert(item.id()));
        fresh
    }

    /// The store could not make `fresh` durable: not attempted now, read again.
    pub fn handle_not_durable(&mut self, fresh: &[T]) {
        for item in fresh {
            self.known.remove(&item.id());
        }
        self.cursor = 0;
    }

    /// `n` attempts started.
    pub fn handle_started(&mut self, n: usize) {
        self.in_flight += n;
    }

    /// An attempt came back (whatever it came to).
    pub fn answered(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The attempt of `item` failed: it waits, and is due again after the returned pause;
    /// also returned, which failed attempt this was (1 for the first).
    pub fn retry(&mut self, now: Instant, item: T) -> (Duration, u32) {
        let n = self.attempts.entry(item.id()).or_insert(0);
        *n += 1;
        let (pause, attempt) = (backoff(*n), *n);
        self.retries.insert((now + pause, item.id()), item);
        (pause, attempt)
    }

    /// `item` is due but not attempted now (no room): it stays due, no attempt counted.
    pub fn defer(&mut self, now: Instant, item: T) {
        self.retries.insert((now, item.id()), item);
    }

    /// `id` is finished (out of the store's queue): forgotten.
    pub fn done(&mut self, id: u64) {
        self.attempts.remove(&id);
        self.known.remove(&id);
    }

    /// `id` stays in the store untried (a stop): read again, attempts kept.
    pub fn kept(&mut self, id: u64) {
        self.known.remove(&id);
    }

    /// Failed attempts of `id` so far.
    pub fn failures(&self, id: u64) -> u32 {
        self.attempts.get(&id).copied().unwrap_or(0)
    }

    /// When the next retry or rescan is due.
    pub fn poll_timeout(&self) -> Instant {
        match self.retries.first_key_value() {
            Some(((at, _), _)) => (*at).min(self.rescan_at),
            None => self.rescan_at,
        }
    }

    /// Attempts started and not answered yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }
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

    impl Queued for u64 {
        fn id(&self) -> u64 {
            *self
        }
    }

    /// On virtual time: a failing item waits 1, 2, 4 … 60 s, is not due before its pause, and
    /// is read once however often it is read again.
    #[test]
    fn a_failing_item_backs_off_to_a_minute() {
        let t0 = Instant::now();
        let mut queue: Retries<u64> = Retries::new(t0, 4, 2);
        let (due, read) = queue.poll_due(t0);
        assert!(due.is_empty());
        assert_eq!(read, Some((0, 2)));
        assert_eq!(queue.handle_fresh(vec![7]), [7]);
        assert!(queue.handle_fresh(vec![7]).is_empty(), "read once");
        queue.handle_started(1);
        let mut now = t0;
        for (i, secs) in [1, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
            queue.answered();
            let pause = Duration::from_secs(secs);
            assert_eq!(queue.retry(now, 7), (pause, i as u32 + 1));
            assert!(queue.poll_timeout() <= now + pause);
            let early = now + pause - Duration::from_millis(1);
            assert!(queue.poll_due(early).0.is_empty(), "not before its pause");
            now += pause;
            assert_eq!(queue.poll_due(now).0, [7]);
            queue.handle_started(1);
        }
        queue.answered();
        queue.done(7);
        assert_eq!((queue.failures(7), queue.in_flight()), (0, 0));
    }

    #[test]
    fn kept_and_not_durable_items_are_read_again_after_the_rescan() {
        let t0 = Instant::now();
        let mut queue: Retries<u64> = Retries::new(t0, 4, 10);
        queue.poll_due(t0);
        let fresh = queue.handle_fresh(vec![1, 2]);
        queue.handle_not_durable(&fresh[..1]);
        queue.kept(2);
        let (_, read) = queue.poll_due(t0 + RESCAN);
        assert_eq!(read, Some((0, 4)));
        assert_eq!(queue.handle_fresh(vec![1, 2]), [1, 2]);
    }
}
