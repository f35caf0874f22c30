//! The response feed: each rating with its comment, operator, channel, time and conversation,
//! newest first, a page at a time (`GET /api/v1/responses`, `smsflow report responses`).
//!
//! Pages are cut by a cursor that names the last row given, `(at, conversation, n)` with `n`
//! the row's place among the ratings of that conversation at that millisecond (a hook may
//! record several), so a page starts exactly after the one before: no gap and no repeat,
//! whatever was written meanwhile or whether the service restarted (the store's order of
//! ratings is time, conversation, then commit order, and survives a restart).
//!
//! The store is read newest first in windows that grow (an hour, then four times as long
//! each time) until the page is full or `from` is reached, so a page of recent answers reads
//! recent chunks only.

use serde::{Deserialize, Serialize};

use crate::store::{ConversationId, Millis, Rating, Store, StoreError};

/// Rows per page when `limit` is not given, and the most a page may have.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// The first window read back from the end of the range.
const FIRST_WINDOW: Millis = 3_600_000;

/// What rows to give.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedQuery {
    /// Ratings with `from <= at < to`.
    pub from: Millis,
    pub to: Millis,
    pub operator: Option<String>,
    pub channel: Option<String>,
    pub score: Option<u8>,
    pub flow: Option<String>,
    pub limit: usize,
    /// Rows strictly after this one (in feed order).
    pub after: Option<Cursor>,
    /// Give MSISDNs whole instead of masked.
    pub full_numbers: bool,
}

impl Default for FeedQuery {
    fn default() -> Self {
        FeedQuery {
            from: Millis::MIN,
            to: Millis::MAX,
            operator: None,
            channel: None,
            score: None,
            flow: None,
            limit: DEFAULT_LIMIT,
            after: None,
            full_numbers: false,
        }
    }
}

/// Where a page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: Millis,
    pub conversation: ConversationId,
    pub n: u32,
}

impl Cursor {
    /// Whether this row comes after `other` in the feed: older, or of the same conversation
    /// and millisecond and recorded later.
    pub fn follows(&self, other: &Cursor) -> bool {
        let (mine, theirs) = ((self.at, self.conversation), (other.at, other.conversation));
        mine < theirs || (mine == theirs && self.n > other.n)
    }

    /// The opaque form pages carry: hex of the three numbers.
    pub fn encode(&self) -> String {
        format!(
            "{:016x}{:016x}{:08x}",
            self.at as u64, self.conversation, self.n
        )
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() != 40 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(Cursor {
            at: u64::from_str_radix(&text[..16], 16).ok()? as Millis,
            conversation: u64::from_str_radix(&text[16..32], 16).ok()?,
            n: u32::from_str_radix(&text[32..], 16).ok()?,
        })
    }
}

/// One row of the feed (SPEC.md "Response feed rows").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub conversation: ConversationId,
    /// RFC 3339, UTC.
    pub at: String,
    pub score: u8,
    pub comment: String,
    pub operator: String,
    pub channel: String,
    /// Masked (`99890*****67`) unless the query asked for whole numbers.
    pub msisdn: String,
    pub flow: String,
}

/// A page: `{"items": [...], "next": CURSOR|null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<Response>,
    /// The cursor of the next page; null once nothing older is left.
    pub next: Option<String>,
}

/// The page `query` asks for; `now` bounds a query without `to` (ratings are stamped with the
/// service's clock, so none is a day past it).
pub fn page(store: &Store, query: &FeedQuery, now: Millis) -> Result<Page, StoreError> {
    let limit = query.limit.clamp(1, MAX_LIMIT);
    let mut end = match query.after {
        // Rows at the cursor's millisecond may still follow it.
        Some(c) => query.to.min(c.at.saturating_add(1)),
        None => query.to,
    };
    end = end.min(now.saturating_add(86_400_000));
    let mut rows: Vec<(Cursor, Rating)> = Vec::new();
    let mut window = FIRST_WINDOW;
    while end > query.from && rows.len() <= limit {
        let start = end.saturating_sub(window).max(query.from);
        rows.extend(
            newest_first(store.ratings(start, end)?).filter(|(cursor, r)| {
                query.after.is_none_or(|after| cursor.follows(&after)) && wanted(query, r)
            }),
        );
        end = start;
        window = window.saturating_mul(4);
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more.then(|| rows.last().map(|(c, _)| c.encode())).flatten();
    let items = rows
        .into_iter()
        .map(|(_, r)| Response {
            conversation: r.conversation,
            at: jiff::Timestamp::from_millisecond(r.at)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            score: r.score,
            comment: r.comment,
            operator: r.operator,
            channel: r.channel,
            msisdn: if query.full_numbers {
                r.msisdn
            } else {
                mask(&r.msisdn)
            },
            flow: r.flow,
        })
        .collect();
    Ok(Page { items, next })
}

fn wanted(q: &FeedQuery, r: &Rating) -> bool {
    q.operator.as_ref().is_none_or(|o| *o == r.operator)
        && q.channel.as_ref().is_none_or(|c| *c == r.channel)
        && q.score.is_none_or(|s| s == r.score)
        && q.flow.as_ref().is_none_or(|f| *f == r.flow)
}

/// Ratings (in store order) in feed order, each with its cursor: newest first, and in commit
/// order among those of one conversation at one millisecond.
fn newest_first(ratings: Vec<Rating>) -> impl Iterator<Item = (Cursor, Rating)> {
    let mut rows: Vec<(Cursor, Rating)> = Vec::with_capacity(ratings.len());
    for r in ratings {
        let n = match rows.last() {
            Some((c, _)) if c.at == r.at && c.conversation == r.conversation => c.n + 1,
            _ => 0,
        };
        rows.push((
            Cursor {
                at: r.at,
                conversation: r.conversation,
                n,
            },
            r,
        ));
    }
    // Descending by (at, conversation), ascending by n.
    rows.sort_by(|a, b| {
        (b.0.at, b.0.conversation)
            .cmp(&(a.0.at, a.0.conversation))
            .then(a.0.n.cmp(&b.0.n))
    });
    rows.into_iter()
}

/// `99890*****67`: the country and operator code and the last two digits.
pub fn mask(msisdn: &str) -> String {
    let digits = msisdn.chars().count();
    if digits <= 4 {
        return "*".repeat(digits);
    }
    let keep_start = if digits >= 10 { 5 } else { 2 };
    msisdn
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_start || i + 2 >= digits {
                c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Commit;
    use crate::store::tests::{TempDir, reopen};

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn numbers_are_masked_as_the_spec_shows() {
        assert_eq!(mask("998901234567"), "99890*****67");
        assert_eq!(mask("12345"), "12*45");
        assert_eq!(mask("123"), "***");
    }

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            at: 1_794_312_000_000,
            conversation: 42,
            n: 3,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("xyz"), None);
    }

    fn rating(at: Millis, conversation: u64, score: u8) -> Rating {
        Rating {
            conversation,
            flow: "survey".into(),
            at,
            msisdn: "998901234567".into(),
            score,
            operator: format!("op-{}", conversation % 3),
            channel: "call".into(),
            comment: format!("c{conversation}"),
        }
    }

    /// Every page, following `next`, until the last.
    fn all_pages(store: &Store, query: &FeedQuery) -> Vec<Response> {
        let mut out = Vec::new();
        let mut query = query.clone();
        loop {
            let page = page(store, &query, NOW).unwrap();
            assert!(page.items.len() <= query.limit);
            out.extend(page.items);
            match page.next {
                Some(next) => query.after = Some(Cursor::decode(&next).unwrap()),
                None => return out,
            }
        }
    }

    #[test]
    fn pages_have_no_gap_or_repeat_across_a_restart() {
        let dir = TempDir::new("feed");
        let hour = 3_600_000;
        let t0 = 1_794_312_000_000;
        let mut expected = Vec::new();
        {
            let store = Store::open(&dir.0).unwrap();
            // Spread over days, several in one millisecond and two of one conversation at
            // one millisecond.
            for i in 0..300u64 {
                let at = t0 + (i as i64 / 3) * hour * 5;
                let r = rating(at, i / 2, (i % 5) as u8 + 1);
                expected.push(r.clone());
                store
                    .commit(Commit {
                        ratings: vec![r],
                        ..Commit::default()
                    })
                    .unwrap();
            }
            store.flush_sync().unwrap();
        }
        // Newest first, commit order within one conversation and millisecond.
        expected.sort_by_key(|r| std::cmp::Reverse((r.at, r.conversation)));
        let comments: Vec<String> = expected.iter().map(|r| r.comment.clone()).collect();

        let store = reopen(&dir.0).unwrap();
        let query = FeedQuery {
            limit: 7,
            to: t0 + 1000 * hour,
            ..FeedQuery::default()
        };
        let first = page(&store, &query, NOW).unwrap();
        let got: Vec<String> = all_pages(&store, &query)
            .into_iter()
            .map(|r| r.comment)
            .collect();
        assert_eq!(got, comments);
        drop(store);

        // The second page of before the restart, asked of the reopened store.
        let store = reopen(&dir.0).unwrap();
        let second = page(
            &store,
            &FeedQuery {
                after: Some(Cursor::decode(first.next.as_ref().unwrap()).unwrap()),
                ..query.clone()
            },
            NOW,
        )
        .unwrap();
        let second: Vec<String> = second.items.into_iter().map(|r| r.comment).collect();
        assert_eq!(second, comments[7..14]);

        // Filters.
        let fives = all_pages(
            &store,
            &FeedQuery {
                score: Some(5),
                operator: Some("op-1".into()),
                ..query.clone()
            },
        );
        assert!(!fives.is_empty());
        assert!(fives.iter().all(|r| r.score == 5 && r.operator == "op-1"));
        assert_eq!(fives[0].msisdn, "99890*****67");
        assert_eq!(
            fives.len(),
            expected
                .iter()
                .filter(|r| r.score == 5 && r.operator == "op-1")
                .count()
        );
    }
}
