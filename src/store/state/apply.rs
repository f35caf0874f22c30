//! Applying a record: the one place the state changes, checking everything before it
//! changes anything.

use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::super::delivery::{Delivery, PartState, ReceiptApplied};
use super::super::log::Record;
use super::super::tally::{self, Delta, Tally, TallyKey};
use super::super::{Commit, ConversationId, ConversationStatus, Millis, OutboxOutcome, PartKey};
use super::super::{MessageStatus, SentPart, StoreError, keys};
use super::{Applied, Change, ConversationRecord, OldHead, PENDING_MARK_KEPT, State};

impl State {
    /// Applies `record`, or nothing of it (an error). The caller appends it to the log.
    pub fn apply(&mut self, record: &Record) -> Result<Applied, StoreError> {
        match record {
            Record::Commit(c) => self.apply_commit(c)?,
            Record::MoAcknowledged(key) => self.unmark(key),
            Record::ScriptLive {
                flow,
                version,
                source,
            } => {
                if let Entry::Vacant(slot) = self.scripts.entry((flow.clone(), version.clone())) {
                    let key = keys::script(flow, version);
                    let value = keys::encode(&key, source)?;
                    slot.insert(source.clone());
                    self.put(key, value, true);
                }
                let key = keys::live(flow);
                let value = keys::encode(&key, version)?;
                let absent = self.live.insert(flow.clone(), version.clone()).is_none();
                self.put(key, value, absent);
            }
            Record::MarkKept { key, until } => {
                if let Some(kept) = self.marks.get_mut(key) {
                    *kept = *until;
                    let value = keys::encode(key, until)?;
                    self.put(key.clone(), value, false);
                }
            }
            Record::MarksSwept(keys) => {
                for key in keys {
                    self.unmark(key);
                }
            }
            Record::PartPut(part) => {
                let key = PartKey::of(part).0;
                let value = keys::encode(&key, part)?;
                let absent = self.parts.insert(key.clone(), part.clone()).is_none();
                self.put(key, value, absent);
            }
            Record::PartsRemoved(keys) => {
                for key in keys {
                    if self.parts.remove(key).is_some() {
                        self.remove(key.clone());
                    }
                }
            }
            Record::OutboxDone(ids) => {
                for id in ids {
                    self.take_out(*id);
                }
            }
            Record::OutboxFinished(outcomes) => self.apply_outcomes(outcomes)?,
            Record::Receipt { smsc_id, state, at } => {
                return Ok(Applied::Receipt(self.apply_receipt(smsc_id, *state, *at)?));
            }
            Record::TalliesRebuilt { zone, tallies } => self.replace_tallies(zone, tallies)?,
            Record::WebhooksFinished(outcomes) => self.webhooks_finished(outcomes),
            Record::ExportSwitched(on) => self.switch_export(*on)?,
            Record::Exported { upto } => self.exported(*upto),
        }
        self.dirty.records += 1;
        Ok(Applied::Done)
    }

    /// Adds `delta` to the tally `key`, and its new value to the dirty layer.
    fn count(&mut self, key: TallyKey, delta: &Delta) {
        let bytes = tally::key_bytes(&key);
        let t = self.tallies.entry(key).or_default();
        tally::apply(t, delta);
        // A tally is a handful of numbers; it cannot fail to encode.
        if let Ok(value) = keys::encode(&bytes, t) {
            self.put(bytes, value, false);
        }
    }

    fn replace_tallies(
        &mut self,
        zone: &str,
        tallies: &[(Vec<u8>, Tally)],
    ) -> Result<(), StoreError> {
        let mut fresh = Vec::with_capacity(tallies.len());
        for (bytes, t) in tallies {
            fresh.push((
                tally::key_from(bytes)?,
                bytes.clone(),
                keys::encode(bytes, t)?,
                t,
            ));
        }
        let zone_value = keys::encode(keys::TALLY_ZONE, zone)?;
        for key in std::mem::take(&mut self.tallies).into_keys() {
            self.remove(tally::key_bytes(&key));
        }
        for (key, bytes, value, t) in fresh {
            self.put(bytes, value, false);
            self.tallies.insert(key, t.clone());
        }
        self.put(keys::TALLY_ZONE.to_vec(), zone_value, false);
        self.tally_zone = Some(zone.to_owned());
        Ok(())
    }

    fn unmark(&mut self, key: &[u8]) {
        if self.marks.remove(key).is_some() {
            self.remove(key.to_vec());
        }
    }

    fn take_out(&mut self, id: u64) {
        if self.outbox.remove(&id).is_some() {
            self.remove(keys::outbox(id));
        }
    }

    fn apply_commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        // Reads and checks first: nothing changes until they all pass.
        let event_key = match &c.event_key {
            Some((flow, key, id)) => {
                let k = keys::event_key(flow, key);
                match self.lookup::<ConversationId>(&k)? {
                    Some(existing) if existing != *id => {
                        return Err(StoreError::EventKeyTaken {
                            flow: flow.clone(),
                            key: key.clone(),
                            conversation: existing,
                        });
                    }
                    Some(_) => None,
                    None => Some((k, keys::encode(b"e", id)?)),
                }
            }
            None => None,
        };
        let mut ids: Vec<ConversationId> = c.conversation.iter().map(|c| c.id).collect();
        for id in (c.timers_set.iter().map(|t| t.conversation))
            .chain(c.timers_cancelled.iter().map(|(id, _)| *id))
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let mut changes = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(change) = self.conversation_change(c, id)? {
                changes.push(change);
            }
        }
        let mut fatigue = Vec::new();
        for ch in changes.iter().filter(|ch| ch.stepped) {
            let new = &ch.record.conversation;
            for msisdn in &new.parties {
                let known = ch.old.as_ref().is_some_and(|o| {
                    o.flow == new.flow
                        && o.created_at == new.created_at
                        && o.parties.contains(msisdn)
                });
                if known {
                    continue;
                }
                let key = keys::last_by_party(&new.flow, msisdn);
                let last: Option<Millis> = self.lookup(&key)?;
                if last.is_none_or(|last| new.created_at > last) {
                    let value = keys::encode(&key, &new.created_at)?;
                    fatigue.push((key, value, last.is_none()));
                }
            }
        }
        let step_at = c.conversation.as_ref().map_or(0, |c| c.updated_at);
        let mo_at = c.mo.as_ref().map_or(0, |mo| mo.received_at).max(step_at);
        let kept_until = mo_at + PENDING_MARK_KEPT;
        let mut marks = Vec::new();
        if let Some(mo) = &c.mo {
            for mark in &mo.pending_ack {
                marks.push((mark.0.clone(), keys::encode(&mark.0, &kept_until)?));
            }
        }
        let mut outbox = Vec::with_capacity(c.outbox.len());
        for m in &c.outbox {
            let key = keys::outbox(m.id);
            outbox.push((m.clone(), keys::encode(&key, m)?));
        }
        let mut webhooks = Vec::with_capacity(c.webhooks.len());
        for w in &c.webhooks {
            webhooks.push((w.clone(), keys::encode(&keys::webhook(w.id), w)?));
        }
        let script = match &c.script {
            Some((flow, version, source))
                if !self.scripts.contains_key(&(flow.clone(), version.clone())) =>
            {
                let key = keys::script(flow, version);
                let value = keys::encode(&key, source)?;
                Some((flow, version, source, key, value))
            }
            _ => None,
        };

        let mut counts: Vec<(TallyKey, Delta)> = (c.ratings.iter())
            .map(|r| tally::of_rating(&self.zone, r))
            .collect();
        for ch in changes.iter().filter(|ch| ch.stepped) {
            let new = &ch.record.conversation;
            let key = || tally::of_conversation(&self.zone, new);
            if c.outbox
                .iter()
                .any(|m| m.opening && m.conversation == ch.id)
            {
                counts.push((key(), Delta::Sent));
            }
            let was_open = ch.old.as_ref().is_none_or(|o| o.open);
            let outcome = match &new.status {
                ConversationStatus::Open => None,
                ConversationStatus::Finished { outcome } => Some(outcome.clone()),
                ConversationStatus::Errored { .. } => Some("error".to_owned()),
            };
            if let Some(outcome) = outcome.filter(|_| was_open) {
                counts.push((key(), Delta::Outcome(outcome)));
            }
        }

        let audit = super::super::audit_tally::deltas(c, |id| {
            Ok((self.record(id)?).map(|r| (r.conversation.created_at, r.conversation.incident)))
        })?;
        let exports = self.commit_events(c, &changes)?;

        // Then the changes, which cannot fail.
        // Ids a commit holds are taken (tests and tools may pick their own): none is handed
        // out again, and a replay after a crash finds them.
        self.next_id = self.next_id.max(highest_id(c).saturating_add(1));
        for (key, delta) in &counts {
            self.count(key.clone(), delta);
        }
        for (key, value) in self.audit.apply(&audit) {
            match value {
                Some(value) => self.put(key, value, false),
                None => self.remove(key),
            }
        }
        if let Some(mo) = &c.mo {
            for PartKey(key) in &mo.parts {
                if self.parts.remove(key).is_some() {
                    self.remove(key.clone());
                }
            }
        }
        for (key, value) in marks {
            let absent = self.marks.insert(key.clone(), kept_until).is_none();
            self.put(key, value, absent);
        }
        for ch in changes {
            self.change_conversation(ch);
        }
        for (key, value, absent) in fatigue {
            self.put(key, value, absent);
        }
        for (id, entry) in &c.timeline {
            self.dirty
                .timeline
                .entry(*id)
                .or_default()
                .push(entry.clone());
        }
        for (m, value) in outbox {
            let key = keys::outbox(m.id);
            let absent = self.outbox.insert(m.id, m).is_none();
            self.put(key, value, absent);
        }
        for (w, value) in webhooks {
            let key = keys::webhook(w.id);
            let absent = self.webhooks.insert(w.id, w).is_none();
            self.put(key, value, absent);
        }
        self.dirty.ratings.extend(c.ratings.iter().cloned());
        self.dirty.incidents.extend(c.incidents.iter().cloned());
        for msisdn in &c.opt_ins {
            if self.opt_outs.remove(msisdn) {
                self.remove(keys::opt_out(msisdn));
            }
        }
        for msisdn in &c.opt_outs {
            if self.opt_outs.insert(msisdn.clone()) {
                self.put(keys::opt_out(msisdn), Vec::new(), false);
            }
        }
        if let Some((key, value)) = event_key {
            self.put(key, value, true);
        }
        if let Some((flow, version, source, key, value)) = script {
            self.scripts
                .insert((flow.clone(), version.clone()), source.clone());
            self.put(key, value, true);
        }
        self.queue_exports(exports);
        Ok(())
    }

    /// What commit `c` makes of conversation `id`: its new record and what it was.
    fn conversation_change(
        &self,
        c: &Commit,
        id: ConversationId,
    ) -> Result<Option<Change>, StoreError> {
        let hot = self.hot.get(&id);
        let old_record = match (hot, &c.conversation) {
            // Stepped and hot: the indexes have what the change needs.
            (Some(_), Some(new)) if new.id == id => None,
            _ => self.record(id)?,
        };
        let old = match (hot, &old_record) {
            (Some(h), _) => Some(OldHead {
                flow: h.flow.to_string(),
                created_at: h.created_at,
                parties: h.parties.clone(),
                timers: h.timers.iter().cloned().collect(),
                open: h.open,
                hot: true,
            }),
            (None, Some(r)) => Some(OldHead {
                flow: r.conversation.flow.clone(),
                created_at: r.conversation.created_at,
                parties: r.conversation.parties.clone(),
                timers: r.timers.iter().cloned().collect(),
                open: r.conversation.status.is_open(),
                hot: false,
            }),
            (None, None) => None,
        };
        let (conversation, stepped) = match &c.conversation {
            Some(new) if new.id == id => (new.clone(), true),
            // Only its timers change.
            _ => match old_record {
                Some(r) => (r.conversation, false),
                None => return Ok(None),
            },
        };
        let mut timers = old.as_ref().map(|o| o.timers.clone()).unwrap_or_default();
        for (cid, name) in &c.timers_cancelled {
            if *cid == id {
                timers.remove(name);
            }
        }
        for t in c.timers_set.iter().filter(|t| t.conversation == id) {
            timers.insert(t.name.clone(), t.due);
        }
        let record = ConversationRecord {
            conversation,
            timers: timers.into_iter().collect(),
        };
        let encoded = Arc::from(keys::encode(&keys::conversation(id), &record)?);
        Ok(Some(Change {
            id,
            old,
            record,
            encoded,
            stepped,
        }))
    }

    fn change_conversation(&mut self, ch: Change) {
        let Change {
            id,
            old,
            record,
            encoded,
            ..
        } = ch;
        let was_hot = old.as_ref().is_some_and(|o| o.hot);
        let existed = old.is_some();
        let c = &record.conversation;
        if !existed {
            self.put(keys::created(&c.flow, c.created_at, id), Vec::new(), true);
        }
        self.unindex(id);
        let hot = c.status.is_open() || !record.timers.is_empty();
        if hot {
            self.index(id, &record, encoded.clone());
            if !was_hot {
                self.put(keys::hot(id), Vec::new(), !existed);
            }
        } else if was_hot {
            self.remove(keys::hot(id));
        }
        self.put(keys::conversation(id), encoded, !existed);
    }

    fn apply_outcomes(&mut self, outcomes: &[OutboxOutcome]) -> Result<(), StoreError> {
        let exports = self.outcome_events(outcomes)?;
        let mut writes = Vec::new();
        for o in outcomes {
            let m = &o.message;
            let key = keys::delivery(m.id);
            let delivery = Delivery {
                status: o.status.clone(),
                parts: vec![PartState::Sent; o.smsc_ids.len()],
            };
            writes.push((key.clone(), keys::encode(&key, &delivery)?));
            for (part, smsc_id) in o.smsc_ids.iter().enumerate() {
                let sent = SentPart {
                    conversation: m.conversation,
                    outbox_id: m.id,
                    to: m.to.clone(),
                    flow: m.flow.clone(),
                    part,
                    opening: m.opening,
                };
                let key = keys::sent_part(smsc_id);
                writes.push((key.clone(), keys::encode(&key, &sent)?));
            }
        }
        for o in outcomes {
            self.take_out(o.message.id);
        }
        for (key, value) in writes {
            // SMSC ids are new; a message's outcome is recorded once.
            self.put(key, value, true);
        }
        self.queue_exports(exports);
        Ok(())
    }

    /// The SMSC id form under which a sent part is kept, of `forms` (the receipt's own form
    /// first). Another form (the same number read in the other base) counts only for a part
    /// sent to `recipient`, when the receipt names one: short sequential ids read the other
    /// way round are often another message's id, and that message is someone else's.
    pub fn known_form(
        &self,
        forms: &[String],
        recipient: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let digits = |n: &str| n.trim().trim_start_matches('+').to_owned();
        for (n, id) in forms.iter().enumerate() {
            let key = keys::sent_part(id);
            if n == 0 {
                if self.exists(&key)? {
                    return Ok(Some(id.clone()));
                }
                continue;
            }
            let Some(part) = self.lookup::<SentPart>(&key)? else {
                continue;
            };
            match recipient.map(digits).filter(|r| !r.is_empty()) {
                Some(r) if r != digits(&part.to) => continue,
                _ => return Ok(Some(id.clone())),
            }
        }
        Ok(None)
    }

    fn apply_receipt(
        &mut self,
        smsc_id: &str,
        state: PartState,
        at: Millis,
    ) -> Result<Option<ReceiptApplied>, StoreError> {
        let sent_key = keys::sent_part(smsc_id);
        let Some(part) = self.lookup::<SentPart>(&sent_key)? else {
            return Ok(None);
        };
        let key = keys::delivery(part.outbox_id);
        let delivery: Option<Delivery> = self.lookup(&key)?;
        let (next, changed) = super::super::delivery::receipt(delivery, part.part, state);
        let value = match &next {
            Some(d) => Some(keys::encode(&key, d)?),
            None => None,
        };
        // The opening message (a survey's question) delivered counts for its conversation.
        let delivered = match (&changed, part.opening) {
            (Some(MessageStatus::Delivered), true) => (self.record(part.conversation)?)
                .map(|r| tally::of_conversation(&self.zone, &r.conversation)),
            _ => None,
        };
        let exports = self.receipt_event(&part, changed.as_ref(), at)?;
        if state.is_final() {
            self.remove(sent_key);
        }
        self.queue_exports(exports);
        if let Some(value) = value {
            self.put(key, value, false);
        }
        if let Some(key) = delivered {
            self.count(key, &Delta::Delivered);
        }
        self.dirty.records += 1;
        Ok(Some(ReceiptApplied { part, changed }))
    }

    /// The status a receipt set on outbox message `id`.
    pub fn message_status(&self, id: u64) -> Result<Option<MessageStatus>, StoreError> {
        Ok(self
            .lookup::<Delivery>(&keys::delivery(id))?
            .map(|d| d.status))
    }
}

/// The highest conversation or outbox id commit `c` holds (0: none).
fn highest_id(c: &Commit) -> u64 {
    let conversations = (c.conversation.iter().map(|c| c.id))
        .chain(c.timers_set.iter().map(|t| t.conversation))
        .chain(c.timers_cancelled.iter().map(|(id, _)| *id))
        .chain(c.timeline.iter().map(|(id, _)| *id))
        .chain(c.ratings.iter().map(|r| r.conversation))
        .chain(c.incidents.iter().map(|i| i.conversation))
        .chain(c.event_key.iter().map(|(_, _, id)| *id));
    let messages = c.outbox.iter().flat_map(|m| [m.id, m.conversation]);
    let webhooks = c.webhooks.iter().map(|w| w.id);
    conversations
        .chain(messages)
        .chain(webhooks)
        .max()
        .unwrap_or(0)
}
