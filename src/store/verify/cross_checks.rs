//! The cross-checks once every tree is read: the indexes in sled against the records, the
//! state in memory against sled, the census, and the CSI tallies recounted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::super::state::census::Census;
use super::super::tally::{self, Tally, TallyKey};
use super::super::{ConversationId, Millis, Store, keys, show_key};
use super::Check;

impl Check {
    /// The indexes in sled against the records in sled (those read whole).
    pub(super) fn records(&mut self) {
        use keys::{CONVERSATION, CREATED, HOT};
        if !self.whole(&[CONVERSATION]) {
            return;
        }
        let (hot_whole, created_whole) = (self.whole(&[HOT]), self.whole(&[CREATED]));
        let mut problems = Vec::new();
        for (&id, head) in &self.conversations {
            let hot = head.open || !head.timers.is_empty();
            if hot_whole && hot != self.hot.contains(&id) {
                problems.push(format!(
                    "state/{}: conversation {id} is {} but {} the hot index",
                    show_key(&keys::hot(id)),
                    if hot { "open or has timers" } else { "closed" },
                    if hot { "missing from" } else { "in" },
                ));
            }
            if created_whole
                && !self
                    .created
                    .contains(&(head.flow.clone(), head.created_at, id))
            {
                let key = keys::created(&head.flow, head.created_at, id);
                problems.push(format!(
                    "state/{}: conversation {id} is missing from the creation-time index",
                    show_key(&key)
                ));
            }
        }
        for &id in self
            .hot
            .difference(&self.conversations.keys().copied().collect())
        {
            problems.push(format!(
                "state/{}: hot, but conversation {id} has no record",
                show_key(&keys::hot(id))
            ));
        }
        for (flow, at, id) in &self.created {
            let matches = (self.conversations.get(id))
                .is_some_and(|h| &h.flow == flow && h.created_at == *at);
            if !matches {
                problems.push(format!(
                    "state/{}: no conversation {id} of {flow:?} created then",
                    show_key(&keys::created(flow, *at, *id))
                ));
            }
        }
        for (key, id) in &self.references {
            if !self.conversations.contains_key(id) {
                problems.push(format!(
                    "state/{}: names conversation {id}, which has no record",
                    show_key(key)
                ));
            }
        }
        for p in problems {
            self.problem(p);
        }
    }

    /// The indexes in memory (built at open and kept by every step since) against the
    /// records in sled (those read whole).
    pub(super) fn memory(&mut self, store: &Store) {
        let state = store.state();
        let indexes = state.indexes();
        let mut problems = Vec::new();
        let records = self.whole(&[keys::CONVERSATION]);
        let mut parties: HashMap<&str, Vec<(Millis, ConversationId)>> = HashMap::new();
        let mut timers = BTreeSet::new();
        let mut hot = BTreeSet::new();
        for (&id, head) in &self.conversations {
            if head.open {
                for p in &head.parties {
                    parties.entry(p).or_default().push((head.created_at, id));
                }
            }
            for (name, due) in &head.timers {
                timers.insert((*due, id, name.clone()));
            }
            if head.open || !head.timers.is_empty() {
                hot.insert(id);
            }
        }
        for list in parties.values_mut() {
            list.sort_unstable();
        }
        let indexed: usize = indexes.parties.values().map(Vec::len).sum();
        let expected: usize = parties.values().map(Vec::len).sum();
        let same = indexed == expected
            && (indexes.parties.iter()).all(|(p, list)| parties.get(p.as_str()) == Some(list));
        if records && !same {
            problems.push(format!(
                "party index: {indexed} entries in memory, the open conversations' records \
                 give {expected} (or others)"
            ));
        }
        if records && &timers != indexes.timers {
            let missing = timers.difference(indexes.timers).count();
            let extra = indexes.timers.difference(&timers).count();
            problems.push(format!(
                "timers by due time: {missing} timers of the records missing, {extra} not in \
                 any record"
            ));
        }
        if records && hot != indexes.hot {
            problems.push("hot conversations in memory differ from the records".into());
        }
        let outbox: BTreeSet<u64> = indexes.outbox.keys().copied().collect();
        if self.whole(&[keys::OUTBOX]) && outbox != self.outbox {
            problems.push(format!(
                "outbox: {} messages in memory, {} under `o` keys",
                outbox.len(),
                self.outbox.len()
            ));
        }
        let webhooks: BTreeSet<u64> = indexes.webhooks.keys().copied().collect();
        if self.whole(&[keys::WEBHOOK]) && webhooks != self.webhooks {
            problems.push(format!(
                "webhooks: {} calls in memory, {} under `w` keys",
                webhooks.len(),
                self.webhooks.len()
            ));
        }
        if self.whole(&[keys::EXPORT]) && indexes.exports != self.exports {
            problems.push(format!(
                "export queue: {} events in memory, {} under `q` keys",
                indexes.exports.len(),
                self.exports.len()
            ));
        }
        for (k, (key, t)) in &self.tallies {
            if self.whole(&[keys::TALLY]) && indexes.tallies.get(k) != Some(t) {
                problems.push(format!(
                    "state/{}: stored tally differs from the one in memory",
                    show_key(key)
                ));
            }
        }
        if self.checkpoint != Some(state.checkpointed) {
            problems.push(format!(
                "state/k: checkpoint {:?}, in memory {}",
                self.checkpoint, state.checkpointed
            ));
        }
        self.verified.checkpoint = state.checkpointed;
        drop(state);
        for p in problems {
            self.problem(p);
        }
    }

    /// The census the checkpoint wrote against the entries read (`state/census.rs`).
    pub(super) fn census(&mut self) {
        let Some(census) = self.census else {
            return;
        };
        // A tag not read whole counts as its census says: its own problem is listed.
        let n = |tag: u8, kind: &str, census: u64| match self.whole(&[tag]) {
            true => self.verified.counts.get(kind).copied().unwrap_or(0),
            false => census,
        };
        let read = Census {
            checkpoint: self.checkpoint.unwrap_or_default(),
            conversations: n(
                keys::CREATED,
                "creation-time index entries",
                census.conversations,
            ),
            event_keys: n(keys::EVENT_KEY, "event keys", census.event_keys),
            hot: n(keys::HOT, "hot index entries", census.hot),
            outbox: n(keys::OUTBOX, "outbox messages", census.outbox),
            webhooks: n(keys::WEBHOOK, "webhook calls waiting", census.webhooks),
            exports: n(keys::EXPORT, "export events waiting", census.exports),
            tallies: n(keys::TALLY, "tallies", census.tallies),
        };
        for difference in read.differences(&census) {
            self.problem(format!("state/N (the census): {difference}"));
        }
    }

    /// The stored tallies against the ones the raw records count: see
    /// [`tally::disagreements`].
    pub(super) fn tallies(&mut self, counted: BTreeMap<TallyKey, Tally>) {
        let problems = tally::disagreements(&self.tallies, &counted);
        for p in problems {
            self.problem(p);
        }
    }
}
