//! One bind (one connection's session) as the messages it delivered see it: whether it is
//! still up, and what it showed of the SMSC reading our writes. The service asks this when
//! the same text comes again without a reference, to tell an SMSC resending an MO whose
//! deliver_sm_resp may have been lost from a person writing the same words again.
//!
//! The connection task writes it (each read, each submit answered, the close); readers take a
//! [`BindView`], a copy at one instant, so the rule that uses it stays a pure function.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug)]
pub struct BindLife {
    id: u64,
    opened: Instant,
    closed: OnceLock<Instant>,
    /// Nanoseconds after `opened` of the last PDU read; 0: none yet.
    last_read: AtomicU64,
    /// Nanoseconds after `opened` at which the newest request the SMSC answered was written;
    /// 0: none.
    answered_write: AtomicU64,
    /// Nanoseconds after `opened` of the last deliver_sm answered with an error (a full
    /// inbound queue, a store that could not take it); 0: none.
    refused: AtomicU64,
}

/// A [`BindLife`] at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindView {
    pub id: u64,
    pub closed: Option<Instant>,
    /// The last PDU read from the SMSC on it, if any.
    pub last_read: Option<Instant>,
    /// When the newest request of ours that the SMSC answered was written, if any: the SMSC
    /// had read everything we wrote before it (TCP keeps order).
    pub answered_write: Option<Instant>,
    /// When we last answered a deliver_sm on it with an error, if ever.
    pub refused: Option<Instant>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl BindLife {
    /// A new bind, opened at `at`; ids are unique in the process.
    pub fn open(at: Instant) -> BindLife {
        BindLife {
            id: NEXT_ID.fetch_add(1, Relaxed),
            opened: at,
            closed: OnceLock::new(),
            last_read: AtomicU64::new(0),
            answered_write: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn read_at(&self, at: Instant) {
        self.last_read.fetch_max(self.offset(at), Relaxed);
    }

    /// The SMSC answered a request of ours written at `written`.
    pub fn answered(&self, written: Instant) {
        self.answered_write.fetch_max(self.offset(written), Relaxed);
    }

    /// We answered a deliver_sm with an error at `at`: the SMSC sends it again.
    pub fn refused_at(&self, at: Instant) {
        self.refused.fetch_max(self.offset(at), Relaxed);
    }

    /// The connection is gone (the first call counts).
    pub fn close(&self, at: Instant) {
        let _ = self.closed.set(at);
    }

    pub fn view(&self) -> BindView {
        let at = |nanos: u64| (nanos > 0).then(|| self.opened + Duration::from_nanos(nanos));
        BindView {
            id: self.id,
            closed: self.closed.get().copied(),
            last_read: at(self.last_read.load(Relaxed)),
            answered_write: at(self.answered_write.load(Relaxed)),
            refused: at(self.refused.load(Relaxed)),
        }
    }

    fn offset(&self, at: Instant) -> u64 {
        // At least 1: 0 means "never".
        (at.saturating_duration_since(self.opened).as_nanos() as u64).max(1)
    }
}

impl BindView {
    /// Whether an MO this bind delivered, whose deliver_sm_resp we handed to it at `acked`,
    /// may be sent again by the SMSC because the response may not have reached it. Only an
    /// answer to a request we wrote after the response shows the SMSC read it (TCP keeps
    /// order): until then, on a live bind too, a copy may be the SMSC's resend after its
    /// response timeout (a loaded service answers late). Without that answer, a closed bind
    /// may have lost the response when it closed within `grace` (the SMSC's response
    /// timeout) of it, or with nothing at all read from the SMSC after it (a link that died
    /// silently); a bind that stayed up may simply not have been read yet. And since a
    /// refusal of ours after the response, a copy may be the SMSC's retry of its own early
    /// copy. Otherwise a copy is someone writing again (a nurse's second `OK`): on a live
    /// bind, the first submit_sm or enquire_link answered after our response settles it.
    pub fn may_resend(&self, acked: Instant, grace: Duration) -> bool {
        if self.refused.is_some_and(|r| r >= acked) {
            return true;
        }
        if self.answered_write.is_some_and(|w| w >= acked) {
            return false;
        }
        let Some(closed) = self.closed else {
            return true;
        };
        let silent = self.last_read.is_none_or(|r| r <= acked);
        closed.saturating_duration_since(acked) <= grace || silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn view(
        closed: Option<u64>,
        last_read: Option<u64>,
        answered: Option<u64>,
        t0: Instant,
    ) -> BindView {
        let at = |s: u64| t0 + Duration::from_secs(s);
        BindView {
            id: 1,
            closed: closed.map(at),
            last_read: last_read.map(at),
            answered_write: answered.map(at),
            refused: None,
        }
    }

    /// Regression (the 60 s soak): the SMSC sent an early copy of an MO, which we refused
    /// (the inbound queue was full) after answering the first; its retry on the live bind
    /// was taken for a new message and processed twice.
    #[test]
    fn a_copy_after_a_refusal_since_the_response_may_be_the_smscs_retry() {
        let t0 = Instant::now();
        let acked = t0 + Duration::from_secs(5);
        let refused = |r: u64| BindView {
            refused: Some(t0 + Duration::from_secs(r)),
            ..view(None, Some(7), Some(6), t0)
        };
        assert!(refused(6).may_resend(acked, GRACE));
        // A refusal before our response was of another message, or of this one's first copy.
        assert!(!refused(4).may_resend(acked, GRACE));
    }

    #[test]
    fn a_copy_on_a_live_bind_is_a_new_message_once_the_smsc_answered_on() {
        let t0 = Instant::now();
        assert!(!view(None, Some(1), Some(1), t0).may_resend(t0, GRACE));
        // Regression (the soak, full suite): nothing answered since our response, so the
        // SMSC may not have read it yet; its resend after its response timeout was
        // processed a second time.
        assert!(view(None, Some(1), None, t0).may_resend(t0, GRACE));
    }

    #[test]
    fn a_bind_that_closed_right_after_the_response_may_resend_it() {
        let t0 = Instant::now();
        assert!(view(Some(1), Some(1), None, t0).may_resend(t0, GRACE));
        // Closed long after, with the SMSC still sending: it had the response.
        assert!(!view(Some(60), Some(50), None, t0).may_resend(t0, GRACE));
        // Closed long after, but nothing came back since: the link may have died at once.
        assert!(view(Some(60), None, None, t0).may_resend(t0, GRACE));
    }

    #[test]
    fn an_answer_to_a_later_request_shows_the_smsc_read_the_response() {
        let t0 = Instant::now();
        let acked = t0 + Duration::from_secs(5);
        assert!(!view(Some(6), Some(6), Some(5), t0).may_resend(acked, GRACE));
        // An answer to something written before the response proves nothing.
        assert!(view(Some(6), Some(6), Some(4), t0).may_resend(acked, GRACE));
    }

    #[test]
    fn a_life_records_reads_answers_and_the_first_close() {
        let t0 = Instant::now();
        let life = BindLife::open(t0);
        assert_eq!(life.view().last_read, None);
        life.read_at(t0 + Duration::from_secs(2));
        life.read_at(t0 + Duration::from_secs(1));
        life.answered(t0 + Duration::from_secs(3));
        life.close(t0 + Duration::from_secs(4));
        life.close(t0 + Duration::from_secs(9));
        let v = life.view();
        assert_eq!(v.last_read, Some(t0 + Duration::from_secs(2)));
        assert_eq!(v.answered_write, Some(t0 + Duration::from_secs(3)));
        assert_eq!(v.closed, Some(t0 + Duration::from_secs(4)));
        assert_ne!(BindLife::open(t0).id(), life.id());
    }
}
