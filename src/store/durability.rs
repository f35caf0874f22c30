//! The one thread that makes the store durable: every flush of the process goes through it.
//!
//! Why a thread of its own: sled 0.34 deadlocks when `flush_async` is called concurrently
//! (spacejam/sled#1308, fixed only on sled's unreleased main; also #1412), and smsflow wants
//! durability from many places at once (HTTP events, MO acks, the outbox). Here callers queue
//! a waiter; the thread takes every waiter queued, calls sled's synchronous `flush()` once,
//! then `fdatasync`s sled's log file, and completes them all: one device flush per group
//! however many ask (a group commit), and never two flushes at once.
//!
//! Why `fdatasync` after sled's flush: sled writes its log with `pwrite` and
//! `sync_file_range`, which hands pages to the device but does not flush the device's
//! volatile cache. "Acknowledged after the flush" must mean on the medium.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::StoreError;

/// How a caller waits for its flush: from async code or from a plain thread.
enum Waiter {
    Async(tokio::sync::oneshot::Sender<Result<(), String>>),
    Blocking(mpsc::SyncSender<Result<(), String>>),
}

impl Waiter {
    fn complete(self, result: Result<(), String>) {
        // A caller that stopped waiting (a cancelled request) needs no answer.
        let _ = match self {
            Waiter::Async(tx) => tx.send(result),
            Waiter::Blocking(tx) => tx.send(result).map_err(|_| Ok(())),
        };
    }
}

/// The flusher thread's handle. Dropping it stops the thread after the flushes queued and
/// waits for it, so the thread's sled handle is gone (and the directory unlocked) when the
/// store is.
pub(super) struct Flusher {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread over `db`; `dir` is the store's directory, whose log file (`db`) is
    /// `fdatasync`ed after each flush (`None` for a temporary store, which needs no device
    /// durability).
    pub(super) fn start(db: sled::Db, dir: Option<&Path>) -> Result<Flusher, StoreError> {
        let log = match dir {
            Some(dir) => Some(File::open(dir.join("db")).map_err(|e| {
                StoreError::Sled(sled::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot open sled's log file for fdatasync: {e}"),
                )))
            })?),
            None => None,
        };
        let (queue, waiters) = mpsc::channel::<Waiter>();
        let thread = std::thread::Builder::new()
            .name("smsflow-flush".into())
            .spawn(move || {
                while let Ok(first) = waiters.recv() {
                    let mut group = vec![first];
                    group.extend(waiters.try_iter());
                    let result = flush(&db, log.as_ref());
                    for waiter in group {
                        waiter.complete(result.clone());
                    }
                }
            })
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Flusher {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Returns once everything written before the call is on the medium.
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Waiter::Async(tx))?;
        rx.await
            .map_err(|_| StoreError::Durability("the flusher thread stopped".into()))?
            .map_err(StoreError::Durability)
    }

    /// [`Flusher::flush`] for a plain thread (blocks it).
    pub(super) fn flush_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Waiter::Blocking(tx))?;
        rx.recv()
            .map_err(|_| StoreError::Durability("the flusher thread stopped".into()))?
            .map_err(StoreError::Durability)
    }

    fn send(&self, waiter: Waiter) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .and_then(|q| q.send(waiter).ok())
            .ok_or_else(|| StoreError::Durability("the flusher thread stopped".into()))
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// sled's flush, then the device's: the error as text, since every waiter of the group gets
/// the same one.
fn flush(db: &sled::Db, log: Option<&File>) -> Result<(), String> {
    db.flush().map_err(|e| format!("sled flush: {e}"))?;
    if let Some(log) = log {
        log.sync_data()
            .map_err(|e| format!("fdatasync of sled's log: {e}"))?;
    }
    Ok(())
}
