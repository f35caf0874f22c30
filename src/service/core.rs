//! The service's one owner of what changes per message: inbound reassembly and redelivery
//! marks, the outbox and its budget, receipt matching, the steps of the flows, the counts,
//! and the order of what leaves. It is sans-IO: every input is a `handle_*` call with the
//! time as an argument, and what the world must do comes out of `poll_*`:
//!
//! - [`Core::poll_commit`]: make the store durable up to here (one group commit), then
//!   [`Core::handle_committed`];
//! - [`Core::poll_ack`]: the responses to deliver_sms, each only after a commit covering its
//!   step is durable (an acknowledged MO is on the medium);
//! - [`Core::poll_submit`]: the messages to submit, each only after a commit covering the
//!   step that queued it (a crash cannot lose a step whose SMS went out), and only while the
//!   budget of submits not durably recorded has room (what a crash may send twice);
//! - [`Core::poll_timeout`]: when to call [`Core::handle_timeout`] next.
//!
//! The driver (`driver.rs`) runs one of these on one task; the seeded simulation drives the
//! same one on virtual time, so the ordering it checks is the service's own.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::inbound::{self, Decision, Inbound, Mo, millis};
use super::outbox::{self, Outbox, SendResult};
use super::receipts::{Kept, Receipts};
use crate::esme::BindLife;
use crate::flow::engine::{Accepted, EngineError, FlowEngine, Routed, Started, StepResult};
use crate::metrics as names;
use crate::smpp::session::Inbound as Deliver;
use crate::store::{MessageStatus, Millis, MoMark, OutMessage, Store, StoreError};

/// Commits asked for and not answered yet, at most: the store's writer makes the ones
/// waiting one group, so a second one in flight lets the writes made during a group's
/// fsync start their own without waiting for its answer.
pub const MAX_COMMITS_IN_FLIGHT: usize = 2;
/// How often due timers and overdue receipts are looked at.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// How often incomplete concatenated MOs are looked at.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// How often MO marks past their window are swept.
const SWEEP_TICK: Duration = Duration::from_secs(60);

/// Counters of what went through, for progress and the summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub mo: u64,
    pub mo_redelivered: u64,
    pub mt_accepted: u64,
    pub mt_retried: u64,
    pub mt_failed: u64,
    pub receipts: u64,
    pub timers: u64,
    pub script_errors: u64,
}

/// What `[service]` sets for the core.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long an acknowledged MO's redelivery is still recognised (see
    /// [`inbound::kept_for`]).
    pub redelivery_window: Duration,
    /// How long after our response a bind's close still means the SMSC may not have it (the
    /// longest `[[smsc]] response_timeout`; see [`Inbound::new`]).
    pub response_grace: Duration,
    /// Parts that may be submitted and not durably recorded at once: what a crash may send
    /// twice (the SMSCs' `sessions × window`; see [`Outbox`]).
    pub submit_budget: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            redelivery_window: crate::config::DEFAULT_REDELIVERY_WINDOW,
            response_grace: inbound::DEFAULT_GRACE,
            submit_budget: 64,
        }
    }
}

/// The response a deliver_sm gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// ESME_ROK: it is on disk (or nothing needed storing).
    Ack,
    /// ESME_RX_T_APPN: not stored; the SMSC delivers it again later.
    RetryLater,
}

/// A message to hand to a pool now; its result comes back to [`Core::handle_sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub message: OutMessage,
    /// The parts an earlier attempt got accepted: left out of this one.
    pub accepted: Vec<Option<String>>,
}

/// A deliver_sm whose step waits for commit `commit` before its response.
struct Unanswered<R> {
    commit: u64,
    reply: R,
    /// The mark to keep (as acknowledged) once answered.
    mark: Option<MoMark>,
    bind: Option<Arc<BindLife>>,
}

/// An event whose step waits for commit `commit` before its answer.
struct Unaccepted<E> {
    commit: u64,
    reply: E,
    done: (StepResult, Started),
}

/// When each periodic look is due.
struct Ticks {
    timers: Instant,
    expiry: Instant,
    sweep: Instant,
}

/// See the module documentation. `R` is what answers one deliver_sm (the SMPP session's
/// response handle; the simulation's own token), `E` what answers one event (the HTTP
/// request's channel).
pub struct Core<R, E = ()> {
    pub engine: Arc<FlowEngine>,
    pub store: Store,
    settings: Settings,
    inbound: Inbound,
    outbox: Outbox,
    receipts: Receipts,
    counts: Counts,
    // The commits: `requested` is the last one handed out; a write made now is covered by
    // the next (`requested + 1`), which starts after the write. A commit that is durable
    // makes every earlier one durable too, whichever order their answers come in.
    requested: u64,
    in_flight: usize,
    /// Written since the last commit was requested.
    dirty: bool,
    /// A commit failed with outcomes still to make durable: try again at the next tick.
    retry_commit: bool,
    unanswered: VecDeque<Unanswered<R>>,
    answers: VecDeque<(R, Answer)>,
    unaccepted: VecDeque<Unaccepted<E>>,
    accepted: VecDeque<(E, Accepted)>,
    /// Fresh outbox messages read, waiting for the commit that covers their steps.
    fresh: Option<(u64, Vec<OutMessage>)>,
    submits: VecDeque<Submit>,
    /// Outbox ids whose recorded outcome waits for a commit, holding the budget till then.
    outcomes: VecDeque<(u64, Vec<u64>)>,
    /// Something may have changed the outbox: read it at the next poll.
    outbox_dirty: bool,
    ticks: Ticks,
    stopping: bool,
    /// The time of the latest input.
    now: SystemTime,
    at: Instant,
}

impl<R, E> Core<R, E> {
    /// A core over `engine`'s store, started at `now`/`at` (the same instant on the wall
    /// clock and the monotonic one): the MO parts stored before a restart are restored, and
    /// messages they complete are delivered to the flows.
    pub fn new(
        engine: Arc<FlowEngine>,
        store: Store,
        settings: Settings,
        now: SystemTime,
        at: Instant,
    ) -> Core<R, E> {
        let mut core = Core {
            engine,
            store,
            settings,
            inbound: Inbound::new(settings.response_grace),
            outbox: Outbox::new(at, settings.submit_budget),
            receipts: Receipts::default(),
            counts: Counts::default(),
            requested: 0,
            in_flight: 0,
            dirty: false,
            retry_commit: false,
            unanswered: VecDeque::new(),
            answers: VecDeque::new(),
            unaccepted: VecDeque::new(),
            accepted: VecDeque::new(),
            fresh: None,
            submits: VecDeque::new(),
            outcomes: VecDeque::new(),
            outbox_dirty: true,
            ticks: Ticks {
                timers: at,
                expiry: at + EXPIRY_TICK,
                sweep: at + SWEEP_TICK,
            },
            stopping: false,
            now,
            at,
        };
        match core.store.parts() {
            Ok(parts) if !parts.is_empty() => {
                tracing::info!(
                    parts = parts.len(),
                    "restoring MO parts stored before the restart"
                );
                for mo in core.inbound.restore(now, parts) {
                    core.deliver(mo);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot read stored MO parts: {e}"),
        }
        core
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The next commit: what is written from now on waits for it.
    fn covering(&mut self) -> u64 {
        self.dirty = true;
        self.requested + 1
    }

    fn clock(&mut self, now: SystemTime, at: Instant) {
        self.now = now;
        self.at = at;
    }

    fn now_ms(&self) -> Millis {
        millis(self.now)
    }

    // --- inputs -----------------------------------------------------------------------------

    /// One deliver_sm from `smsc`, on `bind` (which takes the response), answered by `reply`
    /// through [`Core::poll_ack`].
    pub fn handle_deliver(
        &mut self,
        now: SystemTime,
        at: Instant,
        smsc: &str,
        bind: Option<Arc<BindLife>>,
        i: &Deliver,
        reply: R,
    ) {
        self.clock(now, at);
        let now_ms = self.now_ms();
        let store = &self.store;
        let decision = match self
            .inbound
            .handle(now, i, |mark| store.mo_seen(mark, now_ms))
        {
            Ok(decision) => decision,
            Err(e) => {
                store.log_failure(format_args!("cannot read the store: {e}"));
                return self.answers.push_back((reply, Answer::RetryLater));
            }
        };
        let (stored, mark) = match decision {
            Decision::Receipt(Ok(receipt)) => {
                self.counts.receipts += 1;
                let kept = Kept {
                    at,
                    receipt,
                    from: i.source_addr.clone(),
                    smsc: smsc.to_owned(),
                };
                let applied = self
                    .receipts
                    .handle(&self.store, &self.engine, now_ms, kept);
                self.outbox_dirty |= applied.stepped;
                (applied.stored, None)
            }
            // An unreadable receipt cannot be matched; acknowledging it loses nothing.
            Decision::Receipt(Err(e)) => {
                tracing::debug!(%smsc, "unreadable delivery receipt: {e}");
                (true, None)
            }
            Decision::Redelivered(mark) => {
                tracing::info!(
                    from = %i.source_addr,
                    %smsc,
                    "an MO already processed came again (the SMSC resending it, as our response \
                     may not have reached it): acknowledged, not processed again"
                );
                self.counts.mo_redelivered += 1;
                metrics::counter!(names::MO_REDELIVERED, "smsc" => smsc.to_owned()).increment(1);
                (true, Some(mark))
            }
            Decision::Hold(part) => match self.store.put_part(&part) {
                Ok(_) => (true, None),
                Err(e) => {
                    (self.store).log_failure(format_args!("cannot store an MO part: {e}"));
                    (false, None)
                }
            },
            Decision::Deliver(mo) => {
                let mark = mo.mark.clone();
                (self.deliver(mo), mark)
            }
        };
        if !stored {
            return self.answers.push_back((reply, Answer::RetryLater));
        }
        // Even a redelivery waits: its first copy's step may still be on its way to disk.
        let commit = self.covering();
        self.unanswered.push_back(Unanswered {
            commit,
            reply,
            mark,
            bind,
        });
    }

    /// An event for `flow` (`key`: its id, which makes a retry its duplicate), at `now_ms`
    /// on the caller's clock, answered by `reply` through [`Core::poll_accepted`] once its
    /// step is durable.
    pub fn handle_event(
        &mut self,
        now_ms: Millis,
        flow: &str,
        event: serde_json::Value,
        key: Option<&str>,
        reply: E,
    ) {
        match self.engine.start(now_ms, flow, event, key) {
            Ok(done) => {
                // A duplicate waits too: its first copy may still be on its way to disk.
                let commit = self.covering();
                self.outbox_dirty = true;
                (self.unaccepted).push_back(Unaccepted {
                    commit,
                    reply,
                    done,
                });
            }
            Err(e) => self.accepted.push_back((reply, Err(e))),
        }
    }

    /// Commit `commit` (from [`Core::poll_commit`]) is durable, or failed.
    pub fn handle_committed(
        &mut self,
        now: SystemTime,
        at: Instant,
        commit: u64,
        result: Result<(), StoreError>,
    ) {
        self.clock(now, at);
        self.in_flight = self.in_flight.saturating_sub(1);
        let ok = match &result {
            Ok(()) => true,
            Err(e) => {
                if !Store::is_disk_full(e) {
                    tracing::error!(
                        "store flush failed; MOs left for redelivery, messages not sent yet: {e}"
                    );
                }
                false
            }
        };
        while let Some(u) = self.unaccepted.front()
            && u.commit <= commit
        {
            let u = self.unaccepted.pop_front().expect("a front");
            let answer = match &result {
                Ok(()) => Ok(u.done),
                Err(e) => Err(EngineError::NotDurable {
                    disk_full: Store::is_disk_full(e),
                    detail: e.to_string(),
                }),
            };
            self.accepted.push_back((u.reply, answer));
        }
        while let Some(u) = self.unanswered.front()
            && u.commit <= commit
        {
            let u = self.unanswered.pop_front().expect("a front");
            if !ok {
                self.answers.push_back((u.reply, Answer::RetryLater));
                continue;
            }
            if let Some(mark) = u.mark {
                let kept = inbound::kept_for(&mark, self.settings.redelivery_window);
                let until = self.now_ms() + kept.as_millis() as i64;
                if let Err(e) = self.store.mo_acknowledged(&mark, until) {
                    tracing::warn!("cannot keep an MO mark: {e}");
                }
                if let Some(bind) = u.bind {
                    self.inbound.acknowledged(mark, bind, at.into_std());
                }
            }
            self.answers.push_back((u.reply, Answer::Ack));
        }
        if let Some((_, fresh)) = self.fresh.take_if(|(c, _)| *c <= commit) {
            if ok {
                self.admit(fresh);
            } else {
                self.outbox.handle_not_durable(&fresh);
            }
        }
        if ok {
            while let Some((c, _)) = self.outcomes.front()
                && *c <= commit
            {
                let (_, ids) = self.outcomes.pop_front().expect("a front");
                self.outbox.handle_durable(ids);
            }
            // Room in the budget, and steps durable: read on.
            self.outbox_dirty = true;
        } else {
            // The outcomes hold the budget until a commit succeeds: the next tick asks for
            // one (not at once: a full disk would make this a busy loop).
            let next = self.requested + 1;
            for (c, _) in self.outcomes.iter_mut().filter(|(c, _)| *c <= commit) {
                *c = next;
                self.retry_commit = true;
            }
        }
    }

    /// What the submits of [`Core::poll_submit`] came to. The outcomes are recorded (durable
    /// with the next commit, which frees their part of the budget), and the receipts that
    /// came before them applied.
    pub fn handle_sent(
        &mut self,
        now: SystemTime,
        at: Instant,
        finished: impl IntoIterator<Item = (OutMessage, SendResult)>,
    ) {
        self.clock(now, at);
        let now_ms = self.now_ms();
        let mut outcomes = Vec::new();
        let mut unrecorded = Vec::new();
        for (message, result) in finished {
            let (id, flow, to, opening) = (
                message.id,
                message.flow.clone(),
                message.to.clone(),
                message.opening,
            );
            match self.outbox.handle_result(at, now_ms, message, result) {
                outbox::Decision::Kept => {}
                outbox::Decision::Retry { pause, attempt } => {
                    tracing::warn!(%to, attempt, ?pause, "message not sent, will retry");
                    self.counts.mt_retried += 1;
                    metrics::counter!(names::MT_RETRIES, "flow" => flow).increment(1);
                }
                outbox::Decision::Finished(outcome) => {
                    let accepted = outcome.status == MessageStatus::Sent;
                    if !accepted {
                        tracing::warn!(%to, "message refused for good: {}", outcome.status);
                    }
                    self.count_outcome(&flow, accepted, opening);
                    outcomes.push(outcome);
                    continue;
                }
            }
            unrecorded.push(id);
        }
        self.outbox.handle_durable(unrecorded);
        self.outbox_dirty = true;
        if outcomes.is_empty() {
            return;
        }
        if let Err(e) = self.store.outbox_finished(&outcomes) {
            // They stay in the outbox: sent again after a restart (at-least-once).
            (self.store).log_failure(format_args!("cannot record sent messages: {e}"));
            self.outbox
                .handle_durable(outcomes.iter().map(|o| o.message.id));
            return;
        }
        let commit = self.covering();
        (self.outcomes).push_back((commit, outcomes.iter().map(|o| o.message.id).collect()));
        let stepped = (self.receipts).handle_recorded(&self.store, &self.engine, now_ms, &outcomes);
        self.outbox_dirty |= stepped;
    }

    /// Something outside the core (an HTTP event, a button, a reload) queued messages.
    pub fn handle_outbox_changed(&mut self) {
        self.outbox_dirty = true;
    }

    /// Time passed: due timers fire, overdue receipts are matched or forgotten, incomplete
    /// MOs past their wait are delivered as far as they got, old marks are swept, and due
    /// retries go out.
    pub fn handle_timeout(&mut self, now: SystemTime, at: Instant) {
        self.clock(now, at);
        let now_ms = self.now_ms();
        if at >= self.ticks.timers {
            self.ticks.timers = at + TIMER_TICK;
            if self.retry_commit {
                self.retry_commit = false;
                self.dirty = true;
            }
            if !self.stopping {
                self.fire_timers(now_ms);
            }
            let stepped = (self.receipts).poll_overdue(&self.store, &self.engine, at, now_ms);
            self.outbox_dirty |= stepped;
        }
        if at >= self.ticks.expiry {
            self.ticks.expiry = at + EXPIRY_TICK;
            for mo in self.inbound.expire(now, at.into_std()) {
                self.deliver(mo);
            }
        }
        if at >= self.ticks.sweep {
            self.ticks.sweep = at + SWEEP_TICK;
            match self.store.sweep_mo_marks(now_ms) {
                Ok(0) => {}
                Ok(n) => tracing::debug!(marks = n, "swept MO marks past their window"),
                Err(e) => tracing::warn!("cannot sweep MO marks: {e}"),
            }
        }
        if at >= self.outbox.poll_timeout() {
            self.outbox_dirty = true;
        }
    }

    /// The service stops: nothing more is submitted or fired; what is stored is still
    /// committed and answered, and submits in flight recorded.
    pub fn handle_stop(&mut self) {
        self.stopping = true;
    }

    // --- outputs ----------------------------------------------------------------------------

    /// A commit to make: flush the store, then [`Core::handle_committed`] with this number.
    /// At most [`MAX_COMMITS_IN_FLIGHT`] at a time; the core goes on working meanwhile.
    pub fn poll_commit(&mut self) -> Option<u64> {
        self.read_outbox();
        if self.in_flight >= MAX_COMMITS_IN_FLIGHT || !self.dirty {
            return None;
        }
        self.dirty = false;
        self.in_flight += 1;
        self.requested += 1;
        Some(self.requested)
    }

    /// A deliver_sm's response, once its step is durable.
    pub fn poll_ack(&mut self) -> Option<(R, Answer)> {
        self.answers.pop_front()
    }

    /// An event's answer, once its step is durable.
    pub fn poll_accepted(&mut self) -> Option<(E, Accepted)> {
        self.accepted.pop_front()
    }

    /// A message to submit now.
    pub fn poll_submit(&mut self) -> Option<Submit> {
        self.read_outbox();
        self.submits.pop_front()
    }

    /// When [`Core::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Instant {
        let ticks = (self.ticks.timers)
            .min(self.ticks.expiry)
            .min(self.ticks.sweep);
        // The outbox is not read while stopping or while fresh messages wait for their
        // commit (which reads it again): its due time would only spin the caller.
        if self.stopping || self.fresh.is_some() {
            return ticks;
        }
        ticks.min(self.outbox.poll_timeout())
    }

    /// Submits handed out and not answered yet.
    pub fn sending(&self) -> usize {
        self.outbox.sending()
    }

    /// Deliver_sms stored and waiting for their commit.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// Parts submitted and not durably recorded (what a crash now may send again).
    pub fn held_parts(&self) -> usize {
        self.outbox.held_parts()
    }

    /// The deliver_sms not answered yet, taken out: what a crash leaves the SMSC to send
    /// again (the driver's handles answer ESME_RX_T_APPN as they drop).
    pub fn into_unanswered(self) -> impl Iterator<Item = R> {
        (self.unanswered.into_iter().map(|u| u.reply))
            .chain(self.answers.into_iter().map(|(r, _)| r))
    }

    /// Stopping, and nothing left to commit, answer or wait for but `sending()` submits.
    pub fn settled(&self) -> bool {
        self.stopping
            && self.in_flight == 0
            && !self.dirty
            && self.unanswered.is_empty()
            && self.answers.is_empty()
            && self.unaccepted.is_empty()
            && self.accepted.is_empty()
    }

    // --- the steps --------------------------------------------------------------------------

    /// Due retries go now; fresh messages are read, to go once a commit covers their steps.
    fn read_outbox(&mut self) {
        if !self.outbox_dirty || self.stopping || self.fresh.is_some() {
            return;
        }
        self.outbox_dirty = false;
        let (due, read) = self.outbox.poll_due(self.at);
        if !due.is_empty() {
            self.admit(due);
        }
        let Some((after, limit)) = read else { return };
        match self.store.outbox_after(after, limit) {
            Ok(fresh) => {
                let fresh = self.outbox.handle_fresh(fresh);
                if !fresh.is_empty() {
                    let commit = self.covering();
                    self.fresh = Some((commit, fresh));
                }
            }
            Err(e) => tracing::error!("cannot read the outbox: {e}"),
        }
    }

    /// Of durable `messages`, the ones the budget lets go now.
    fn admit(&mut self, messages: Vec<OutMessage>) {
        if self.stopping {
            self.outbox.handle_not_durable(&messages);
            return;
        }
        let admitted = self.outbox.admit(self.at, messages);
        self.outbox.handle_submitted(admitted.len());
        for message in admitted {
            let accepted = self.outbox.accepted_parts(message.id).to_vec();
            self.submits.push_back(Submit { message, accepted });
        }
    }

    /// Routes one whole MO to the flows; `true` when its step is stored.
    fn deliver(&mut self, mo: Mo) -> bool {
        let now_ms = self.now_ms();
        match (self.engine).reply_mo(now_ms, &mo.from, &mo.text, now_ms, Some(mo.record)) {
            Ok(routed) => {
                let flow = match &routed {
                    Routed::Conversation(step) | Routed::Inbox(step) => {
                        if step.error.is_some() {
                            self.counts.script_errors += 1;
                        }
                        step.flow.clone()
                    }
                    Routed::Unsolicited(_) => "none".to_owned(),
                };
                metrics::counter!(names::MO_MESSAGES, "flow" => flow).increment(1);
                self.counts.mo += 1;
                self.outbox_dirty = true;
                self.dirty = true;
                true
            }
            Err(e) => {
                if matches!(&e, EngineError::Store(s) if Store::is_disk_full(s)) {
                    tracing::debug!("MO not stored, left for redelivery: {e}");
                } else {
                    (self.store)
                        .log_failure(format_args!("MO not stored, left for redelivery: {e}"));
                }
                false
            }
        }
    }

    fn count_outcome(&mut self, flow: &str, accepted: bool, opening: bool) {
        if accepted {
            self.counts.mt_accepted += 1;
        } else {
            self.counts.mt_failed += 1;
        }
        metrics::counter!(names::MT_MESSAGES,
            "flow" => flow.to_owned(),
            "status" => if accepted { "accepted" } else { "failed" })
        .increment(1);
        if accepted && opening && self.engine.is_survey(flow) {
            metrics::counter!(names::SURVEY_FUNNEL, "flow" => flow.to_owned(), "stage" => "sent")
                .increment(1);
        }
    }

    /// Fires the timers due at `now_ms`.
    fn fire_timers(&mut self, now_ms: Millis) {
        // They wait for room: a step that cannot be stored would fail each tick.
        if self.store.disk_full() {
            return;
        }
        match self.engine.fire_due_timers(now_ms) {
            Ok(steps) if !steps.is_empty() => {
                let errors = steps.iter().filter(|s| s.error.is_some()).count() as u64;
                self.counts.timers += steps.len() as u64;
                self.counts.script_errors += errors;
                self.outbox_dirty = true;
                self.dirty = true;
            }
            Ok(_) => {}
            Err(e) => (self.store).log_failure(format_args!("timers: {e}")),
        }
    }
}
