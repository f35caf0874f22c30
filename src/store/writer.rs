//! The store writer: the one thread that writes to sled and flushes it.
//!
//! Steps apply to the state in memory at once ([`super::state`]) and leave their records in
//! the log group. Whoever needs them durable (an MO's deliver_sm_resp, an HTTP 202, a
//! message about to be submitted) queues a waiter. The writer takes every waiter queued and
//! the whole group, writes the group as **one** key of the log tree, calls sled's
//! synchronous `flush()` once, `fdatasync`s sled's log file, and completes every waiter: a
//! group commit, one device flush however many ask.
//!
//! Every few thousand records or fraction of a second it also freezes the dirty layer and
//! writes it as a checkpoint (one atomic `apply_batch` with the log seq it covers), then
//! prunes the log behind it once a flush made the checkpoint durable.
//!
//! Why one thread: sled 0.34 deadlocks when its asynchronous flush runs concurrently (spacejam/sled#1308, fixed
//! only on sled's unreleased main; also #1412), and per-key writes from many threads cost
//! sled's locks and the kernel's futexes more than the writes themselves. Why `fdatasync`:
//! sled writes its log with `pwrite` and `sync_file_range`, which does not flush the device's
//! volatile cache; "acknowledged after the flush" must mean on the medium. sled's own
//! background flusher is off (`flush_every_ms(None)`), so this thread's flush is the only one.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::damage::{self, Watch};
use super::seal::Seal;
use super::state::{Layer, State};
use super::{StoreError, checkpoint, keys, lock};

/// How long the writer sleeps when nobody waits: records nobody flushed (receipts, say) are
/// written at least this often.
const TICK: Duration = Duration::from_millis(20);
/// A checkpoint is written once this many records are in the dirty layer ...
///
/// Small and often, because sled's `apply_batch` holds its global write lock for the whole
/// batch (every log write waits) and costs more per key as batches grow. Measured with the
/// e2e bench (20 000 replies, window 100): 4096 records / 500 ms gave 5 361 replies/s, 229 µs
/// of CPU per reply, p99 164 ms; 1024 / 200 ms gave 7 074/s, 170 µs, p99 50 ms; 256 / 50 ms
/// gave 5 526/s, 224 µs, p99 42 ms.
const CHECKPOINT_RECORDS: u64 = 1024;
/// ... or this long after the last one, whichever comes first.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);

/// What a caller asks of the writer.
enum Request {
    /// Answer once everything applied so far is durable.
    Flush(Waiter),
    /// Write a checkpoint now, answer once sled has it (tests and `smsflow` tools).
    Checkpoint(Waiter),
    /// A checkpoint as for `Checkpoint`, then none and no pruning until a `Resume`: sled's
    /// state tree stays that checkpoint and the log keeps every group after it, so a backup
    /// can copy them while steps go on (`backup.rs`). Answered with the checkpoint's seq and
    /// the last durable group's.
    Pause(mpsc::SyncSender<Result<(u64, u64), WriteError>>),
    Resume,
}

/// How a caller waits for its flush: from async code or from a plain thread.
enum Waiter {
    Async(tokio::sync::oneshot::Sender<Result<(), WriteError>>),
    Blocking(mpsc::SyncSender<Result<(), WriteError>>),
}

impl Waiter {
    fn complete(self, result: Result<(), WriteError>) {
        // A caller that stopped waiting (a cancelled request) needs no answer.
        let _ = match self {
            Waiter::Async(tx) => tx.send(result),
            Waiter::Blocking(tx) => tx.send(result).map_err(|_| Ok(())),
        };
    }
}

/// What the writer thread owns.
pub(super) struct Disk {
    pub db: sled::Db,
    pub log: sled::Tree,
    pub state: sled::Tree,
    /// sled's log file, `fdatasync`ed after each flush (`None` for a temporary store).
    pub file: Option<File>,
    /// The seq of the next log group.
    pub next_seq: u64,
    /// Also write on [`TICK`] and checkpoint on [`CHECKPOINT_INTERVAL`]; off, only what is
    /// asked for (a deterministic simulation).
    pub timed: bool,
    /// The high-water mark of durable groups, advanced after each flush (`None`: a temporary
    /// store).
    pub seal: Option<Seal>,
    /// sled's directory (`None`: a temporary store), whose file system the reserve is
    /// checked on.
    pub dir: Option<std::path::PathBuf>,
    /// Bytes that must stay free on that file system: below it nothing is written (a full
    /// disk is back-pressure, not a failed write that would need a restart). 0: no check.
    pub reserve: Arc<std::sync::atomic::AtomicU64>,
    /// Damage found after opening, by a read or by a checkpoint (`damage.rs`).
    pub damage: Arc<Watch>,
}

impl Disk {
    /// `dir`: sled's directory, whose `db` file is its log (`None`: a temporary store, which
    /// needs no device durability).
    pub fn new(db: sled::Db, dir: Option<&Path>, next_seq: u64) -> Result<Disk, StoreError> {
        let file = match dir {
            Some(dir) => Some(File::open(dir.join("db")).map_err(|e| {
                StoreError::Durability(format!("cannot open sled's log file for fdatasync: {e}"))
            })?),
            None => None,
        };
        let path = dir.map_or_else(|| "<temporary>".into(), Path::to_path_buf);
        Ok(Disk {
            damage: Arc::new(Watch::new(path)),
            log: db.open_tree(keys::LOG)?,
            state: db.open_tree(keys::STATE)?,
            db,
            file,
            next_seq,
            timed: true,
            seal: None,
            dir: dir.map(Path::to_path_buf),
            reserve: Arc::default(),
        })
    }

    /// Why there is not enough room to write, if there is not.
    fn short_of_room(&self) -> Option<String> {
        let reserve = self.reserve.load(Ordering::Relaxed);
        let dir = self.dir.as_ref().filter(|_| reserve > 0)?;
        let free = fs2::available_space(dir).ok()?;
        (free < reserve).then(|| {
            format!(
                "the disk of {} is full: {} free, [service] min_free_space is {}",
                dir.display(),
                bytes(free),
                bytes(reserve)
            )
        })
    }

    /// sled's flush, then the device's: the error as text, since every waiter of the group
    /// gets the same one.
    fn flush(&self) -> Result<(), String> {
        self.db.flush().map_err(|e| format!("sled flush: {e}"))?;
        if let Some(file) = &self.file {
            file.sync_data()
                .map_err(|e| format!("fdatasync of sled's log: {e}"))?;
        }
        Ok(())
    }
}

/// The writer thread's handle. Dropping it writes what is left, checkpoints it and waits for
/// the thread, so the thread's sled handle is gone (and the directory unlocked) when the
/// store is.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Gets `()` (or is dropped) when the thread ends, so a stop can wait for it within a
    /// bound.
    ended: Mutex<mpsc::Receiver<()>>,
    /// Set: the process "died" (see [`Writer::crash`]).
    crash: Arc<AtomicBool>,
}

/// How long a stop waits for the writer's last round (a group and a checkpoint): past it, a
/// write stuck in sled is left to the process's exit rather than holding `smsflow run` up.
const STOP_LIMIT: Duration = Duration::from_secs(10);

impl Writer {
    pub fn start(disk: Disk, state: Arc<Mutex<State>>) -> Result<Writer, StoreError> {
        let (queue, requests) = mpsc::channel::<Request>();
        let crash = Arc::new(AtomicBool::new(false));
        let (ended_tx, ended) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("smsflow-store".into())
            .spawn({
                let crash = crash.clone();
                move || {
                    Thread::new(disk, state, crash).run(requests);
                    let _ = ended_tx.send(());
                }
            })
            .map_err(|e| StoreError::Durability(format!("cannot start the store writer: {e}")))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            ended: Mutex::new(ended),
            crash,
        })
    }

    /// Writes a checkpoint of everything applied so far; blocks until sled has it.
    pub fn checkpoint_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Checkpoint(Waiter::Blocking(tx)))?;
        rx.recv()
            .map_err(|_| stopped())?
            .map_err(WriteError::into_store)
    }

    /// Makes everything applied so far durable and checkpointed, then holds sled's state tree
    /// and log as they are (see `Request::Pause`) until the returned guard is dropped.
    pub fn pause(&self) -> Result<Paused<'_>, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Pause(tx))?;
        let (checkpoint, last) = rx
            .recv()
            .map_err(|_| stopped())?
            .map_err(WriteError::into_store)?;
        Ok(Paused {
            writer: self,
            checkpoint,
            last,
        })
    }

    /// From now on the thread writes nothing more, as if the process had died: a group it
    /// is writing may or may not reach the disk, nothing after it does, and there is no final
    /// checkpoint. The caller stops the store taking records first.
    pub fn crash(&self) {
        self.crash.store(true, Ordering::SeqCst);
    }

    /// Returns once everything applied before the call is on the medium.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Request::Flush(Waiter::Async(tx)))?;
        rx.await
            .map_err(|_| stopped())?
            .map_err(WriteError::into_store)
    }

    /// [`Writer::flush`] for a plain thread (blocks it).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Request::Flush(Waiter::Blocking(tx)))?;
        rx.recv()
            .map_err(|_| stopped())?
            .map_err(WriteError::into_store)
    }

    fn send(&self, request: Request) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .and_then(|q| q.send(request).ok())
            .ok_or_else(stopped)
    }
}

/// The writer holds sled's state tree and log still while this lives.
pub(super) struct Paused<'a> {
    writer: &'a Writer,
    /// The log seq the state tree's checkpoint covers.
    pub checkpoint: u64,
    /// The last group on the medium: the state tree plus the log up to it is the store.
    pub last: u64,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        // A writer that stopped has nothing to resume.
        let _ = self.writer.send(Request::Resume);
    }
}

/// Why a write or flush did not reach the medium.
#[derive(Debug, Clone)]
pub(super) enum WriteError {
    /// sled or the device failed: nothing more is written until a restart.
    Failed(String),
    /// Less room than the reserve: nothing was written yet; it will be once there is room.
    DiskFull(String),
}

impl WriteError {
    fn into_store(self) -> StoreError {
        match self {
            WriteError::Failed(e) => StoreError::Durability(e),
            WriteError::DiskFull(e) => StoreError::DiskFull(e),
        }
    }
}

/// `1.5 MiB`, `512 KiB`, `3 B`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn stopped() -> StoreError {
    StoreError::Durability("the store writer stopped".into())
}

impl Writer {
    /// Ends the thread: it writes what is left and checkpoints it. Waits at most
    /// [`STOP_LIMIT`]; a thread stuck in sled is left behind (logged). Idempotent.
    pub fn stop(&mut self) {
        drop(self.queue.take());
        let Some(thread) = self.thread.take() else {
            return;
        };
        // `Err(Disconnected)`: the thread ended without a word (a panic); join says how.
        let ended = self.ended.get_mut().unwrap_or_else(|p| p.into_inner());
        match ended.recv_timeout(STOP_LIMIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            Err(RecvTimeoutError::Timeout) => tracing::error!(
                "the store writer did not finish its last round within {STOP_LIMIT:?}; \
                 leaving it to the process's exit (acknowledged steps are already durable)"
            ),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Thread {
    disk: Disk,
    state: Arc<Mutex<State>>,
    last_checkpoint: Instant,
    /// A checkpoint sled has but that no flush covered yet: the log up to it is pruned after
    /// the next flush.
    unpruned: Option<u64>,
    /// The oldest log seq that may still be in the log tree.
    pruned_to: u64,
    /// Why the store stopped taking writes (a log write or a flush failed).
    failed: Option<String>,
    crash: Arc<AtomicBool>,
    /// Backups under way (see `Request::Pause`): no checkpoint, no pruning.
    paused: u32,
    /// Why the last round wrote nothing: the disk has less room than the reserve (see
    /// [`Thread::room`]); cleared by the first round that finds room.
    disk_full: Option<String>,
    /// Checkpoints asked for while paused: written, and answered, once the backups resume.
    deferred: Vec<Waiter>,
}

impl Thread {
    fn new(disk: Disk, state: Arc<Mutex<State>>, crash: Arc<AtomicBool>) -> Thread {
        // Groups a crash left behind the checkpoint go with the next prune.
        let first = match disk.log.first() {
            Ok(Some((key, _))) => keys::trailing_u64(&key).ok(),
            _ => None,
        };
        let checkpointed = lock(&state).checkpointed;
        Thread {
            pruned_to: first.unwrap_or(disk.next_seq).min(checkpointed + 1),
            disk,
            state,
            last_checkpoint: Instant::now(),
            unpruned: None,
            failed: None,
            crash,
            paused: 0,
            disk_full: None,
            deferred: Vec::new(),
        }
    }

    fn run(mut self, queue: mpsc::Receiver<Request>) {
        loop {
            let mut requests = Vec::new();
            let received = if self.disk.timed {
                queue.recv_timeout(TICK)
            } else {
                queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            let stopping = match received {
                Ok(first) => {
                    requests.push(first);
                    requests.extend(queue.try_iter());
                    false
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let (mut waiters, mut after_checkpoint, mut pauses) =
                (Vec::new(), Vec::new(), Vec::new());
            for request in requests {
                match request {
                    Request::Flush(w) => waiters.push(w),
                    Request::Checkpoint(w) => after_checkpoint.push(w),
                    Request::Pause(tx) => pauses.push(tx),
                    Request::Resume => self.paused = self.paused.saturating_sub(1),
                }
            }
            if self.paused > 0 {
                self.deferred.append(&mut after_checkpoint);
            } else {
                after_checkpoint.append(&mut self.deferred);
            }
            if self.crash.load(Ordering::SeqCst) {
                let crashed = Err(WriteError::Failed(
                    "the process crashed (simulated)".to_owned(),
                ));
                for w in waiters.into_iter().chain(after_checkpoint) {
                    w.complete(crashed.clone());
                }
                for tx in pauses {
                    let _ = tx.send(Err(WriteError::Failed(
                        "the process crashed (simulated)".to_owned(),
                    )));
                }
                if stopping {
                    return;
                }
                continue;
            }
            let force = stopping || !after_checkpoint.is_empty() || !pauses.is_empty();
            self.round(waiters, force);
            if force {
                // A second round makes the checkpoint durable and prunes the log behind it;
                // on a stop, the next start is quick.
                self.round(Vec::new(), false);
                let result = match (&self.failed, &self.disk_full) {
                    (Some(e), _) => Err(WriteError::Failed(e.clone())),
                    (None, Some(full)) => Err(WriteError::DiskFull(full.clone())),
                    (None, None) => Ok(()),
                };
                for w in after_checkpoint {
                    w.complete(result.clone());
                }
                if !pauses.is_empty() {
                    self.pause(pauses, result);
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Answers backups that asked to pause, once a forced round checkpointed everything:
    /// from here on, until they resume, the state tree and the log behind it stay.
    fn pause(
        &mut self,
        pauses: Vec<mpsc::SyncSender<Result<(u64, u64), WriteError>>>,
        result: Result<(), WriteError>,
    ) {
        let checkpoint = lock(&self.state).checkpointed;
        let last = self.disk.next_seq.saturating_sub(1);
        for tx in pauses {
            let answer = result.clone().map(|()| (checkpoint, last));
            if answer.is_ok() && tx.send(answer).is_ok() {
                self.paused += 1;
            }
        }
    }

    /// One group commit, and a checkpoint when one is due (`force`: now).
    fn round(&mut self, waiters: Vec<Waiter>, force: bool) {
        if let Some(failed) = &self.failed {
            for waiter in waiters {
                waiter.complete(Err(WriteError::Failed(failed.clone())));
            }
            return;
        }
        if let Err(full) = self.room() {
            // Nothing is written: the group stays in memory until a round finds room. New
            // steps are refused meanwhile (see `State::disk_full`), so it grows only by the
            // records of what is in flight (submit outcomes, receipts).
            for waiter in waiters {
                waiter.complete(Err(WriteError::DiskFull(full.clone())));
            }
            return;
        }
        let (group, frozen) = {
            let mut state = lock(&self.state);
            let group = std::mem::take(&mut state.log);
            let due = state.dirty.records >= CHECKPOINT_RECORDS
                || force
                || (self.disk.timed && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL);
            if due && state.frozen.is_none() {
                state.note_ids();
            }
            let frozen = if self.paused > 0 {
                None
            } else if due && state.frozen.is_none() && !state.dirty.is_empty() {
                state.note_census();
                let layer = Arc::new(std::mem::take(&mut state.dirty));
                state.frozen = Some(layer.clone());
                Some(layer)
            } else {
                state.frozen.clone()
            };
            (group, frozen)
        };
        let wrote = !group.is_empty();
        let mut result = Ok(());
        if wrote {
            let seq = self.disk.next_seq;
            result = (self.disk.log.insert(keys::log(seq), group))
                .map(|_| self.disk.next_seq += 1)
                .map_err(|e| format!("log write: {e}"));
        }
        if result.is_ok() && (wrote || !waiters.is_empty() || self.unpruned.is_some()) {
            result = self.disk.flush();
        }
        // Before the waiters hear of it: whatever the service acts on is under the seal.
        if result.is_ok()
            && let Some(seal) = &mut self.disk.seal
        {
            result = seal.advance(self.disk.next_seq.saturating_sub(1));
        }
        if let Err(e) = &result {
            // What is in memory can no longer be matched to what is on disk: nothing more is
            // acknowledged until a restart replays the log (a failed fdatasync may have lost
            // pages the kernel had; trying again would hide that).
            tracing::error!(
                "the store could not be made durable, refusing writes until a restart: {e}"
            );
            lock(&self.state).failed = Some(e.clone());
            self.failed = Some(e.clone());
        }
        let result = result.map_err(WriteError::Failed);
        for waiter in waiters {
            waiter.complete(result.clone());
        }
        if result.is_err() {
            return;
        }
        if self.paused == 0
            && let Some(seq) = self.unpruned.take()
        {
            self.prune(seq);
        }
        if let Some(layer) = frozen {
            self.checkpoint(&layer);
        }
    }

    /// Whether the disk has the room the reserve asks for. On the change either way it says
    /// so (one line each), and tells the state, which refuses new steps while there is none.
    fn room(&mut self) -> Result<(), String> {
        let full = self.disk.short_of_room();
        match (&full, &self.disk_full) {
            (Some(why), None) => {
                tracing::error!(
                    "{why}; new steps are refused (HTTP 503, MOs left for the SMSC to redeliver) until there is room again"
                );
                metrics::gauge!(crate::metrics::STORE_DISK_FULL).set(1.0);
            }
            (None, Some(_)) => {
                tracing::warn!("the disk has room again; writing what waited");
                metrics::gauge!(crate::metrics::STORE_DISK_FULL).set(0.0);
            }
            _ => {}
        }
        lock(&self.state).disk_full = full.clone();
        self.disk_full = full.clone();
        match full {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Writes the frozen layer as the checkpoint of everything logged so far.
    fn checkpoint(&mut self, layer: &Layer) {
        let seq = self.disk.next_seq.saturating_sub(1);
        let written = checkpoint::batch(layer, seq).and_then(|batch| {
            self.disk.state.apply_batch(batch)?;
            Ok(())
        });
        match written {
            Ok(()) => {
                let mut state = lock(&self.state);
                state.frozen = None;
                state.checkpointed = seq;
                drop(state);
                self.unpruned = Some(seq);
                self.last_checkpoint = Instant::now();
            }
            // A page sled cannot read is damage, said once; the store takes no more steps.
            Err(e) if damage::is_damage(&e) => {
                let detail = format!("writing a checkpoint: {}", damage::describe(&e));
                self.disk.damage.mark(&detail);
            }
            // The layer stays frozen (reads still see it) and is tried again next round.
            Err(e) => tracing::error!("cannot write a store checkpoint, will retry: {e}"),
        }
    }

    /// Removes the log groups a durable checkpoint covers.
    fn prune(&mut self, upto: u64) {
        let mut batch = sled::Batch::default();
        for seq in self.pruned_to..=upto {
            batch.remove(&keys::log(seq)[..]);
        }
        match self.disk.log.apply_batch(batch) {
            Ok(()) => self.pruned_to = upto + 1,
            Err(e) => tracing::warn!("cannot prune the store log: {e}"),
        }
    }
}
