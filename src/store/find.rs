//! Finding conversations (`GET /api/v1/conversations`): newest first by creation time,
//! filtered by flow, party, status and creation time, a page at a time. Read-only.
//!
//! The walk goes backwards through the creation-time index (the `C` keys, one range per
//! flow, merged newest first with the layers not yet checkpointed) and reads each
//! conversation it meets, so its cost is the entries it reads, not the store's size. Two
//! shortcuts skip most of it: open conversations are all in memory (the party index for a
//! party, the hot table otherwise), and for a party the fatigue key (`l`: when the newest
//! conversation of a flow with that party was created) says where in a flow's range to
//! start, and which flows to skip. A walk reads at most [`Find::max_scanned`] entries; it
//! then stops with the position reached, and the next call goes on from there.

use std::collections::BTreeSet;
use std::iter::Rev;

use super::state::created_keys;
use super::{Conversation, ConversationId, ConversationStatus, Millis, Store, StoreError, keys};

/// Entries a walk reads at most by default ([`Find::max_scanned`]): what one request may
/// cost when its filter matches few of many conversations.
pub const MAX_SCANNED: usize = 100_000;

/// Where a conversation stands in the creation-time index; newest first is descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub created_at: Millis,
    pub id: ConversationId,
}

impl Position {
    pub fn of(c: &Conversation) -> Position {
        Position {
            created_at: c.created_at,
            id: c.id,
        }
    }

    /// The position of a `C` key.
    fn from_key(key: &[u8]) -> Result<Position, StoreError> {
        Ok(Position {
            created_at: keys::created_at_of(key)?,
            id: keys::trailing_u64(key)?,
        })
    }

    /// The first position created at `at`.
    fn at(created_at: Millis) -> Position {
        Position { created_at, id: 0 }
    }
}

/// A conversation's status, without what it ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Open,
    Finished,
    Errored,
}

impl StatusFilter {
    pub fn matches(self, status: &ConversationStatus) -> bool {
        matches!(
            (self, status),
            (StatusFilter::Open, ConversationStatus::Open)
                | (StatusFilter::Finished, ConversationStatus::Finished { .. })
                | (StatusFilter::Errored, ConversationStatus::Errored { .. })
        )
    }
}

/// What [`Store::find`] looks for; every filter left `None` matches everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Find {
    pub flow: Option<String>,
    /// A party (subscriber or staff), as the store keeps MSISDNs: digits, no `+`.
    pub msisdn: Option<String>,
    pub status: Option<StatusFilter>,
    /// Created at or after.
    pub from: Millis,
    /// Created before.
    pub to: Millis,
    /// Only conversations older than this: the previous page's [`Found::next`].
    pub before: Option<Position>,
    /// Conversations per page.
    pub limit: usize,
    /// Index entries read at most (at least 1).
    pub max_scanned: usize,
}

impl Default for Find {
    fn default() -> Find {
        Find {
            flow: None,
            msisdn: None,
            status: None,
            from: Millis::MIN,
            to: Millis::MAX,
            before: None,
            limit: 50,
            max_scanned: MAX_SCANNED,
        }
    }
}

impl Find {
    fn matches(&self, c: &Conversation) -> bool {
        self.flow.as_ref().is_none_or(|f| *f == c.flow)
            && self.status.is_none_or(|s| s.matches(&c.status))
            && (self.msisdn.as_ref()).is_none_or(|m| c.parties.contains(m))
    }

    /// The walk's range: `[lo, hi)`.
    fn range(&self) -> (Position, Position) {
        let hi = Position::at(self.to);
        (
            Position::at(self.from),
            self.before.map_or(hi, |b| b.min(hi)),
        )
    }
}

/// A page of [`Store::find`].
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Newest first.
    pub conversations: Vec<Conversation>,
    /// Where the next page starts (its [`Find::before`]): the page is full, or the walk read
    /// [`Find::max_scanned`] entries; `None` once nothing older is left to read.
    pub next: Option<Position>,
}

impl Store {
    /// A page of the conversations `find` matches, newest first (by creation time, then id);
    /// see the module documentation for what it reads.
    pub fn find(&self, find: &Find) -> Result<Found, StoreError> {
        self.read(|| "the creation-time index".into(), || self.walk(find))
    }

    fn walk(&self, find: &Find) -> Result<Found, StoreError> {
        let (lo, hi) = find.range();
        if find.limit == 0 || lo >= hi {
            return Ok(Found {
                conversations: Vec::new(),
                next: None,
            });
        }
        if find.status == Some(StatusFilter::Open) {
            self.find_open(find, lo, hi)
        } else {
            self.find_in_index(find, lo, hi)
        }
    }

    /// Every flow with a conversation in the store, loaded or not.
    pub fn stored_flows(&self) -> Result<BTreeSet<String>, StoreError> {
        let layered = self.layered_created();
        let what = || "the flows of the creation-time index".into();
        self.read(what, || self.flows_in(&layered))
    }

    /// Open conversations: the candidates come from memory, so there is nothing to bound.
    fn find_open(&self, find: &Find, lo: Position, hi: Position) -> Result<Found, StoreError> {
        let heads = (self.state()).open_heads(find.msisdn.as_deref(), find.flow.as_deref());
        let mut heads: Vec<Position> = (heads.into_iter())
            .map(|(created_at, id)| Position { created_at, id })
            .filter(|p| lo <= *p && *p < hi)
            .collect();
        heads.sort_unstable_by(|a, b| b.cmp(a));
        let mut conversations = Vec::new();
        for (n, p) in heads.iter().enumerate() {
            if conversations.len() == find.limit {
                return Ok(Found {
                    conversations,
                    next: Some(heads[n - 1]),
                });
            }
            // It may have closed since the heads were read.
            if let Some(c) = self.conversation(p.id)?.filter(|c| find.matches(c)) {
                conversations.push(c);
            }
        }
        Ok(Found {
            conversations,
            next: None,
        })
    }

    fn find_in_index(&self, find: &Find, lo: Position, hi: Position) -> Result<Found, StoreError> {
        let layered = self.layered_created();
        let flows = match &find.flow {
            Some(flow) => BTreeSet::from([flow.clone()]),
            None => self.flows_in(&layered)?,
        };
        let mut walks = Vec::new();
        for flow in flows {
            let mut hi = hi;
            if let Some(msisdn) = &find.msisdn {
                // No conversation of this flow had the party: nothing to read. Else none
                // created after the newest one that had it.
                match self.last_conversation_at(&flow, msisdn)? {
                    None => continue,
                    Some(at) if at < Millis::MAX => hi = hi.min(Position::at(at + 1)),
                    Some(_) => {}
                }
            }
            if lo < hi {
                walks.push(Walk::new(self, &flow, lo, hi, &layered)?);
            }
        }
        let mut conversations = Vec::new();
        let (mut read, mut last) = (0, None);
        let max = find.max_scanned.max(1);
        loop {
            let mut newest: Option<(usize, Position)> = None;
            for (i, walk) in walks.iter_mut().enumerate() {
                if let Some(p) = walk.peek()?
                    && newest.is_none_or(|(_, n)| p > n)
                {
                    newest = Some((i, p));
                }
            }
            let Some((i, p)) = newest else {
                return Ok(Found {
                    conversations,
                    next: None,
                });
            };
            if conversations.len() == find.limit || read == max {
                return Ok(Found {
                    conversations,
                    next: last,
                });
            }
            walks[i].advance();
            read += 1;
            last = Some(p);
            if let Some(c) = self.conversation(p.id)?.filter(|c| find.matches(c)) {
                conversations.push(c);
            }
        }
    }

    /// The `C` keys of the layers sled may not have yet (every flow's).
    fn layered_created(&self) -> Vec<Vec<u8>> {
        let prefix = [keys::CREATED];
        let pending = self.state().pending(None, None, Some(&prefix));
        let mut layered = pending.dirty_created;
        for layer in &pending.layers {
            layered.extend(created_keys(layer, &prefix));
        }
        layered
    }

    /// The flows of the index: one seek per flow in sled (past each flow's last key), and
    /// those of `layered`.
    fn flows_in(&self, layered: &[Vec<u8>]) -> Result<BTreeSet<String>, StoreError> {
        let mut flows = BTreeSet::new();
        let mut from = vec![keys::CREATED];
        while let Some(entry) = self.inner.cold.range(from..).next() {
            let (key, _) = entry?;
            if key.first() != Some(&keys::CREATED) {
                break;
            }
            let flow = keys::created_flow(&key)?;
            // Right after the highest key the flow can have.
            from = keys::created(&flow, Millis::MAX, u64::MAX);
            from.push(0);
            flows.insert(flow);
        }
        for key in layered {
            flows.insert(keys::created_flow(key)?);
        }
        Ok(flows)
    }
}

/// One flow's part of the index in `[lo, hi)`, newest first: sled's range backwards merged
/// with the layers' keys (a key in both, a checkpoint being written, comes once).
struct Walk {
    cold: Rev<sled::Iter>,
    /// The next entry of `cold`, read ahead.
    cold_next: Option<Position>,
    cold_done: bool,
    /// Ascending: the newest is last.
    layered: Vec<Position>,
}

impl Walk {
    fn new(
        store: &Store,
        flow: &str,
        lo: Position,
        hi: Position,
        layered: &[Vec<u8>],
    ) -> Result<Walk, StoreError> {
        let key = |p: Position| keys::created(flow, p.created_at, p.id);
        let prefix = keys::created_prefix(flow);
        let mut mine = Vec::new();
        for k in layered.iter().filter(|k| k.starts_with(&prefix)) {
            let p = Position::from_key(k)?;
            if lo <= p && p < hi {
                mine.push(p);
            }
        }
        mine.sort_unstable();
        Ok(Walk {
            cold: store.inner.cold.range(key(lo)..key(hi)).rev(),
            cold_next: None,
            cold_done: false,
            layered: mine,
        })
    }

    /// The newest position left.
    fn peek(&mut self) -> Result<Option<Position>, StoreError> {
        if self.cold_next.is_none() && !self.cold_done {
            match self.cold.next() {
                Some(entry) => self.cold_next = Some(Position::from_key(&entry?.0)?),
                None => self.cold_done = true,
            }
        }
        Ok(self.cold_next.max(self.layered.last().copied()))
    }

    /// Past the position [`Walk::peek`] gave.
    fn advance(&mut self) {
        let newest = self.cold_next.max(self.layered.last().copied());
        if newest.is_some() && self.cold_next == newest {
            self.cold_next = None;
        }
        if newest.is_some() && self.layered.last().copied() == newest {
            self.layered.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TempDir, TestResult, conv, open_one};
    use super::*;

    /// Conversations 1..=8 created 1 s apart, of two flows (odd ids survey), three parties
    /// (`…01`: 3 and 6, `…02`: 1, 4 and 7, `…03`: 2, 5 and 8), open (1, 2, 3, 7),
    /// finished (5, 6) or errored (4, 8). Committed out of order: 1, 2, 5 and 8 are in sled,
    /// the others in the dirty layer between them (the writer writes only when asked).
    fn store() -> Result<(Store, TempDir), StoreError> {
        let dir = TempDir::new("find");
        let store = Store::open_simulated(&dir.0, &jiff::tz::TimeZone::UTC)?;
        let parties = ["998900000001", "998900000002", "998900000003"];
        for (n, id) in [2, 5, 1, 8, 3, 6, 4, 7u64].into_iter().enumerate() {
            let flow = if id % 2 == 0 { "escalation" } else { "survey" };
            let party = parties[(id % 3) as usize];
            let mut c = conv(id, flow, &[party], id as Millis * 1_000);
            c.status = match id % 4 {
                0 => ConversationStatus::Errored {
                    error: "boom".into(),
                },
                1 | 2 if id > 2 => ConversationStatus::Finished {
                    outcome: "rated".into(),
                },
                _ => ConversationStatus::Open,
            };
            open_one(&store, c)?;
            if n == 3 {
                store.checkpoint()?;
            }
        }
        Ok((store, dir))
    }

    fn ids(found: &Found) -> Vec<ConversationId> {
        found.conversations.iter().map(|c| c.id).collect()
    }

    #[test]
    fn every_filter_newest_first_across_sled_and_the_layers() -> TestResult {
        let (store, _dir) = store()?;
        let all = store.find(&Find::default())?;
        assert_eq!(ids(&all), [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(all.next, None);
        let cases = [
            (
                Find {
                    flow: Some("survey".into()),
                    ..Find::default()
                },
                vec![7, 5, 3, 1],
            ),
            (
                Find {
                    msisdn: Some("998900000002".into()),
                    ..Find::default()
                },
                vec![7, 4, 1],
            ),
            (
                Find {
                    msisdn: Some("998900000003".into()),
                    flow: Some("escalation".into()),
                    ..Find::default()
                },
                vec![8, 2],
            ),
            (
                Find {
                    msisdn: Some("998900000003".into()),
                    status: Some(StatusFilter::Errored),
                    to: 8_000,
                    ..Find::default()
                },
                vec![],
            ),
            (
                Find {
                    status: Some(StatusFilter::Open),
                    ..Find::default()
                },
                vec![7, 3, 2, 1],
            ),
            (
                Find {
                    status: Some(StatusFilter::Open),
                    msisdn: Some("998900000001".into()),
                    ..Find::default()
                },
                vec![3],
            ),
            (
                Find {
                    status: Some(StatusFilter::Errored),
                    ..Find::default()
                },
                vec![8, 4],
            ),
            (
                Find {
                    status: Some(StatusFilter::Finished),
                    flow: Some("survey".into()),
                    ..Find::default()
                },
                vec![5],
            ),
            (
                Find {
                    from: 3_000,
                    to: 7_000,
                    ..Find::default()
                },
                vec![6, 5, 4, 3],
            ),
            (
                Find {
                    msisdn: Some("998909999999".into()),
                    ..Find::default()
                },
                vec![],
            ),
        ];
        for (find, expected) in cases {
            assert_eq!(ids(&store.find(&find)?), expected, "{find:?}");
        }
        assert_eq!(
            store.stored_flows()?,
            BTreeSet::from(["escalation".to_owned(), "survey".to_owned()])
        );
        Ok(())
    }

    #[test]
    fn pages_walk_every_match_once_and_the_bound_stops_a_walk() -> TestResult {
        let (store, _dir) = store()?;
        for status in [None, Some(StatusFilter::Open)] {
            let mut find = Find {
                limit: 3,
                status,
                ..Find::default()
            };
            let mut seen = Vec::new();
            loop {
                let page = store.find(&find)?;
                assert!(page.conversations.len() <= 3);
                seen.extend(ids(&page));
                match page.next {
                    Some(next) => find.before = Some(next),
                    None => break,
                }
            }
            let expected: Vec<u64> = match status {
                None => (1..=8).rev().collect(),
                Some(_) => vec![7, 3, 2, 1],
            };
            assert_eq!(seen, expected, "{status:?}");
        }
        // Two entries read per call: the errored ones (8, 4) come a page at a time, some
        // pages empty, each with where to go on.
        let mut find = Find {
            status: Some(StatusFilter::Errored),
            max_scanned: 2,
            ..Find::default()
        };
        let mut pages = Vec::new();
        loop {
            let page = store.find(&find)?;
            pages.push(ids(&page));
            match page.next {
                Some(next) => find.before = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, [vec![8], vec![], vec![4], vec![]]);
        Ok(())
    }

    #[test]
    fn a_party_added_later_is_found_and_parties_skip_other_flows() -> TestResult {
        let (store, _dir) = store()?;
        let mut c = store.conversation(3)?.expect("stored");
        c.parties.push("998905555555".into());
        c.updated_at = 9_000;
        open_one(&store, c)?;
        let find = Find {
            msisdn: Some("998905555555".into()),
            ..Find::default()
        };
        assert_eq!(ids(&store.find(&find)?), [3]);
        store.checkpoint()?;
        assert_eq!(ids(&store.find(&find)?), [3]);
        Ok(())
    }
}
