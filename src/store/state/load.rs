//! Start-up: the hot tables loaded from the checkpoint, and the indexes an open
//! conversation is found by (kept here as it opens and closes).

use std::collections::hash_map::Entry;
use std::sync::Arc;

use super::super::audit_tally::AuditTallies;
use super::super::tally::{self, Tally};
use super::super::{ConversationId, IncidentState, Millis, MoPart, OutMessage, StoreError};
use super::super::{WebhookCall, keys};
use super::{ConversationRecord, Hot, Keyed, State, split_lp};

impl State {
    /// Loads the hot tables from the checkpoint in sled.
    pub fn load(&mut self) -> Result<(), StoreError> {
        for entry in self.cold.scan_prefix([keys::HOT]) {
            let (key, _) = entry?;
            let id = keys::trailing_u64(&key)?;
            let ckey = keys::conversation(id);
            let value = self
                .cold
                .get(&ckey)?
                .ok_or_else(|| StoreError::decode(keys::STATE, &key, "hot without a record"))?;
            let record: ConversationRecord = keys::decode(keys::STATE, &ckey, &value)?;
            self.index(id, &record, Arc::from(&value[..]));
        }
        for entry in self.cold.scan_prefix([keys::OUTBOX]) {
            let (key, value) = entry?;
            let m: OutMessage = keys::decode(keys::STATE, &key, &value)?;
            self.outbox.insert(m.id, m);
        }
        for entry in self.cold.scan_prefix([keys::WEBHOOK]) {
            let (key, value) = entry?;
            let w: WebhookCall = keys::decode(keys::STATE, &key, &value)?;
            self.webhooks.insert(w.id, w);
        }
        for entry in self.cold.scan_prefix([keys::OPT_OUT]) {
            let (key, _) = entry?;
            self.opt_outs
                .insert(String::from_utf8_lossy(&key[1..]).into_owned());
        }
        for entry in self.cold.scan_prefix([keys::SCRIPT]) {
            let (key, value) = entry?;
            let source: String = keys::decode(keys::STATE, &key, &value)?;
            let (flow, version) = split_lp(&key[1..])
                .ok_or_else(|| StoreError::decode(keys::STATE, &key, "not lp(flow) | version"))?;
            self.scripts.insert((flow, version), source);
        }
        for entry in self.cold.scan_prefix([keys::LIVE]) {
            let (key, value) = entry?;
            let version: String = keys::decode(keys::STATE, &key, &value)?;
            self.live
                .insert(String::from_utf8_lossy(&key[1..]).into_owned(), version);
        }
        for entry in self.cold.scan_prefix([keys::MO_MARK]) {
            let (key, value) = entry?;
            let until: Millis = keys::decode(keys::STATE, &key, &value)?;
            self.marks.insert(key.to_vec(), until);
        }
        for entry in self.cold.scan_prefix([keys::PART]) {
            let (key, value) = entry?;
            let part: MoPart = keys::decode(keys::STATE, &key, &value)?;
            self.parts.insert(key.to_vec(), part);
        }
        for entry in self.cold.scan_prefix([keys::TALLY]) {
            let (key, value) = entry?;
            let t: Tally = keys::decode(keys::STATE, &key, &value)?;
            self.tallies.insert(tally::key_from(&key)?, t);
        }
        self.tally_zone = self.lookup(keys::TALLY_ZONE)?;
        self.audit = AuditTallies::load(&self.cold)?;
        self.load_exports()?;
        if let Some(mark) = self.lookup::<u64>(keys::IDS)? {
            self.next_id = self.next_id.max(mark.saturating_add(1));
            self.ids_noted = Some(mark);
        }
        Ok(())
    }

    pub(super) fn flow_name(&mut self, flow: &str) -> Arc<str> {
        if let Some(f) = self.flows.get(flow) {
            return f.clone();
        }
        let f: Arc<str> = Arc::from(flow);
        self.flows.insert(f.clone());
        f
    }

    /// Puts a conversation into the hot indexes (replacing nothing: the caller removed the
    /// old entry).
    pub(super) fn index(
        &mut self,
        id: ConversationId,
        record: &ConversationRecord,
        encoded: Arc<[u8]>,
    ) {
        let c = &record.conversation;
        let open = c.status.is_open();
        if open {
            for party in &c.parties {
                let list = self.parties.entry(party.clone()).or_default();
                let at = list.partition_point(|e| *e < (c.created_at, id));
                list.insert(at, (c.created_at, id));
            }
        }
        for (name, due) in &record.timers {
            self.timers.insert((*due, id, name.clone()));
        }
        let flow = self.flow_name(&c.flow);
        let keyed = (open && (c.reply_code.is_some() || c.join_key.is_some())).then(|| {
            Box::new(Keyed {
                code: c.reply_code,
                join: c.join_key.clone(),
            })
        });
        if let Some(k) = &keyed {
            if let Some(code) = k.code {
                self.codes.insert((flow.clone(), code), id);
            }
            if let Some(join) = &k.join {
                self.joins.insert((flow.clone(), join.clone()), id);
            }
        }
        let call = (c.incident.as_ref())
            .map(IncidentState::of)
            .filter(|s| open && *s != IncidentState::Closed);
        self.hot.insert(
            id,
            Hot {
                flow,
                created_at: c.created_at,
                parties: c.parties.clone(),
                open,
                timers: record.timers.clone(),
                record: encoded,
                keyed,
                call,
            },
        );
    }

    /// Takes a conversation out of the hot indexes.
    pub(super) fn unindex(&mut self, id: ConversationId) {
        let Some(hot) = self.hot.remove(&id) else {
            return;
        };
        if hot.open {
            for party in &hot.parties {
                if let Entry::Occupied(mut e) = self.parties.entry(party.clone()) {
                    e.get_mut()
                        .retain(|&(at, c)| (at, c) != (hot.created_at, id));
                    if e.get().is_empty() {
                        e.remove();
                    }
                }
            }
        }
        for (name, due) in hot.timers {
            self.timers.remove(&(due, id, name));
        }
        if let Some(k) = hot.keyed {
            // Only if it still names this one: a newer conversation may have taken the key.
            if let Some(code) = k.code
                && let Entry::Occupied(e) = self.codes.entry((hot.flow.clone(), code))
                && *e.get() == id
            {
                e.remove();
            }
            if let Some(join) = k.join
                && let Entry::Occupied(e) = self.joins.entry((hot.flow.clone(), join))
                && *e.get() == id
            {
                e.remove();
            }
        }
    }
}
