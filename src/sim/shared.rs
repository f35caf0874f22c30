//! The state every session task, the scheduler and the caller's [`super::SmscHandle`] share:
//! the config, the deliveries owed, the submit side, the counters, the fault-injection
//! switches sessions read, and the tokens and tracker that stop everything.
//!
//! Must not: hold a lock across `.await` (every lock here is a `std::sync::Mutex` held for a
//! push, a pop or a counter update).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::deliveries::{Deliveries, Scheduled};
use super::stats::Stats;
use super::submits::Submits;
use super::{SimConfig, Submitted};

/// Orders to every session at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    /// Close now, without unbind.
    Disconnect,
    /// Send unbind, then close.
    Unbind,
}

/// State every session and the handle share.
pub(super) struct Shared {
    pub(super) config: SimConfig,
    pub(super) local_addr: SocketAddr,
    submit_latency_nanos: AtomicU64,
    /// Send each of the next this many MOs twice in a row.
    pub(super) resend_early: AtomicU64,
    pub(super) reject_binds: AtomicBool,
    /// The UDH reference of the next concatenated MO.
    pub(super) next_mo_reference: AtomicU32,
    pub(super) stats: Arc<Stats>,
    pub(super) deliveries: Deliveries,
    pub(super) submits: Submits,
    pub(super) control: broadcast::Sender<Control>,
    /// Cancelled when the listener is to stop accepting.
    pub(super) accepting: CancellationToken,
    /// Cancelled when the simulator has stopped: the scheduler and the people stop too.
    pub(super) stop: CancellationToken,
    pub(super) sessions: TaskTracker,
    pub(super) accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    /// The shared state of a simulator listening on `local_addr`; the receiving end of the
    /// deliveries' scheduler is for [`Deliveries::run_scheduler`].
    pub(super) fn new(
        config: SimConfig,
        local_addr: SocketAddr,
        handsets: Option<mpsc::UnboundedSender<Submitted>>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Scheduled>) {
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (deliveries, scheduled) =
            Deliveries::new(config.retry_delay, stop.clone(), stats.clone());
        let shared = Self {
            local_addr,
            submit_latency_nanos: AtomicU64::new(nanos(config.submit_latency)),
            resend_early: AtomicU64::new(0),
            reject_binds: AtomicBool::new(false),
            next_mo_reference: AtomicU32::new(0),
            submits: Submits::new(&config, handsets, stats.clone()),
            stats,
            deliveries,
            control: broadcast::channel(16).0,
            accepting: CancellationToken::new(),
            stop,
            sessions: TaskTracker::new(),
            accept_task: Mutex::new(None),
            config,
        };
        (Arc::new(shared), scheduled)
    }

    pub(super) fn submit_latency(&self) -> Duration {
        Duration::from_nanos(self.submit_latency_nanos.load(Relaxed))
    }

    pub(super) fn set_submit_latency(&self, latency: Duration) {
        self.submit_latency_nanos.store(nanos(latency), Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
