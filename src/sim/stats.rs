//! The simulator's counters: atomics every task updates, read as one [`SimStats`] snapshot.
//!
//! Must not: hold anything but counters (each is updated on its own, so a snapshot taken
//! while traffic flows may be a few events apart between fields).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::SimStats;

/// The counters behind [`SimStats`] (each field's meaning is documented there).
#[derive(Default)]
pub(super) struct Stats {
    pub(super) binds_accepted: AtomicU64,
    pub(super) binds_rejected: AtomicU64,
    pub(super) sessions_open: AtomicU64,
    pub(super) sessions_bound: AtomicU64,
    pub(super) submit_sm_received: AtomicU64,
    pub(super) submit_sm_throttled: AtomicU64,
    pub(super) receipts_sent: AtomicU64,
    pub(super) mo_injected: AtomicU64,
    pub(super) mo_delivered: AtomicU64,
    pub(super) mo_rejected: AtomicU64,
    pub(super) mo_pending: AtomicU64,
    pub(super) mo_redelivered: AtomicU64,
    pub(super) receipts_pending: AtomicU64,
    pub(super) replies_pending: AtomicU64,
    pub(super) generic_nacks_sent: AtomicU64,
    pub(super) tls_handshakes_failed: AtomicU64,
}

impl Stats {
    pub(super) fn snapshot(&self) -> SimStats {
        SimStats {
            binds_accepted: self.binds_accepted.load(Relaxed),
            binds_rejected: self.binds_rejected.load(Relaxed),
            sessions_open: self.sessions_open.load(Relaxed),
            sessions_bound: self.sessions_bound.load(Relaxed),
            submit_sm_received: self.submit_sm_received.load(Relaxed),
            submit_sm_throttled: self.submit_sm_throttled.load(Relaxed),
            receipts_sent: self.receipts_sent.load(Relaxed),
            mo_injected: self.mo_injected.load(Relaxed),
            mo_delivered: self.mo_delivered.load(Relaxed),
            mo_rejected: self.mo_rejected.load(Relaxed),
            mo_pending: self.mo_pending.load(Relaxed),
            mo_redelivered: self.mo_redelivered.load(Relaxed),
            receipts_pending: self.receipts_pending.load(Relaxed),
            replies_pending: self.replies_pending.load(Relaxed),
            generic_nacks_sent: self.generic_nacks_sent.load(Relaxed),
            tls_handshakes_failed: self.tls_handshakes_failed.load(Relaxed),
        }
    }
}

/// Takes one from a countdown (a fault-injection order); whether there was one.
pub(super) fn take_one(counter: &AtomicU64) -> bool {
    counter.load(Relaxed) > 0
        && (counter.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))).is_ok()
}
