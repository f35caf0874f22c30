//! Open conversations by party and timers: the party index follows the status, timers are
//! set, replaced, cancelled and fire in due order (negative and equal times included).

use super::tests::{TestResult, conv, entry, open_one, rating, timer};
use super::*;

#[test]
fn party_index_follows_conversation_status() -> TestResult {
    let store = Store::temporary()?;
    let mut c = conv(1, "escalation", &["998901111111"], 100);
    open_one(&store, c.clone())?;
    assert_eq!(store.open_conversations_of("998901111111")?, vec![1]);
    assert_eq!(store.open_conversations(Some("escalation"))?, vec![1]);

    // Escalating adds a party; an update without changes keeps the index as it is.
    c.parties.push("998902222222".into());
    open_one(&store, c.clone())?;
    open_one(&store, c.clone())?;
    assert_eq!(store.open_conversations_of("998901111111")?, vec![1]);
    assert_eq!(store.open_conversations_of("998902222222")?, vec![1]);

    // A party can also leave while the conversation stays open.
    c.parties.remove(0);
    open_one(&store, c.clone())?;
    assert!(store.open_conversations_of("998901111111")?.is_empty());

    c.status = ConversationStatus::Finished {
        outcome: "acknowledged".into(),
    };
    open_one(&store, c.clone())?;
    assert!(store.open_conversations_of("998902222222")?.is_empty());
    assert!(store.open_conversations(None)?.is_empty());
    assert_eq!(store.state().index_sizes().0, 0, "no party indexed");
    assert_eq!(
        store.conversation(1)?.map(|c| c.status),
        Some(c.status.clone())
    );

    // Errored conversations leave the index too.
    let mut e = conv(2, "survey", &["998903333333"], 100);
    open_one(&store, e.clone())?;
    e.status = ConversationStatus::Errored { error: "x".into() };
    open_one(&store, e)?;
    assert!(store.open_conversations_of("998903333333")?.is_empty());
    Ok(())
}

#[test]
fn open_conversations_of_lists_newest_first() -> TestResult {
    let store = Store::temporary()?;
    // Created out of id order, one with a negative time, two at the same time.
    open_one(&store, conv(10, "survey", &["99890"], 300))?;
    open_one(&store, conv(11, "escalation", &["99890", "998901"], -50))?;
    open_one(&store, conv(12, "survey", &["99890"], 500))?;
    open_one(&store, conv(13, "survey", &["99890"], 300))?;
    open_one(&store, conv(14, "survey", &["998901"], 900))?;
    assert_eq!(store.open_conversations_of("99890")?, vec![12, 13, 10, 11]);
    assert_eq!(store.open_conversations_of("998901")?, vec![14, 11]);
    assert!(store.open_conversations_of("9989")?.is_empty());
    assert_eq!(
        store.open_conversations(Some("survey"))?,
        vec![10, 12, 13, 14]
    );
    assert_eq!(store.open_conversations(Some("escalation"))?, vec![11]);
    assert!(store.open_conversations(Some("surve"))?.is_empty());
    assert_eq!(store.open_conversations(None)?, vec![10, 11, 12, 13, 14]);
    Ok(())
}

#[test]
fn timers_set_replace_cancel_and_fire_in_due_order() -> TestResult {
    let store = Store::temporary()?;
    assert_eq!(store.next_timer_due()?, None);
    // Timers belong to stored conversations; an unknown one's are ignored.
    store.commit(Commit {
        timers_set: vec![timer(99, "expire", 1)],
        ..Commit::default()
    })?;
    assert_eq!(store.next_timer_due()?, None);
    open_one(&store, conv(1, "survey", &["998901111111"], 0))?;
    open_one(&store, conv(2, "escalation", &["998902222222"], 0))?;
    store.commit(Commit {
        timers_set: vec![
            timer(1, "expire", 5_000),
            timer(2, "escalate", 3_000),
            timer(1, "remind", 4_000),
        ],
        ..Commit::default()
    })?;
    assert_eq!(store.next_timer_due()?, Some(3_000));
    assert_eq!(
        store.due_timers(4_000, 10)?,
        vec![timer(2, "escalate", 3_000), timer(1, "remind", 4_000)]
    );
    assert!(store.due_timers(2_999, 10)?.is_empty());
    assert_eq!(
        store.due_timers(i64::MAX, 1)?,
        vec![timer(2, "escalate", 3_000)]
    );

    // Same name replaces: the old due time is gone from the due order.
    store.commit(Commit {
        timers_set: vec![timer(2, "escalate", 6_000)],
        ..Commit::default()
    })?;
    assert_eq!(store.timers_of(2)?, vec![timer(2, "escalate", 6_000)]);
    assert_eq!(store.next_timer_due()?, Some(4_000));
    assert_eq!(store.due_timers(5_000, 10)?.len(), 2);

    // Cancel, including an unknown name (a no-op).
    store.commit(Commit {
        timers_cancelled: vec![(1, "remind".into()), (1, "nope".into())],
        ..Commit::default()
    })?;
    assert_eq!(store.timers_of(1)?, vec![timer(1, "expire", 5_000)]);
    assert_eq!(
        store.due_timers(i64::MAX, 10)?,
        vec![timer(1, "expire", 5_000), timer(2, "escalate", 6_000)]
    );

    // Cancel and set of the same name in one commit: the set wins.
    store.commit(Commit {
        timers_cancelled: vec![(1, "expire".into())],
        timers_set: vec![timer(1, "expire", 7_000)],
        ..Commit::default()
    })?;
    assert_eq!(store.timers_of(1)?, vec![timer(1, "expire", 7_000)]);
    assert_eq!(store.state().index_sizes().1, 2);

    store.commit(Commit {
        timers_cancelled: vec![(1, "expire".into()), (2, "escalate".into())],
        ..Commit::default()
    })?;
    assert_eq!(store.next_timer_due()?, None);
    assert_eq!(store.state().index_sizes().1, 0);
    Ok(())
}

#[test]
fn negative_and_equal_timestamps_keep_their_order() -> TestResult {
    let store = Store::temporary()?;
    for id in [1, 2, 3] {
        open_one(&store, conv(id, "survey", &[], 0))?;
    }
    store.commit(Commit {
        timers_set: vec![
            timer(3, "b", 0),
            timer(2, "a", -10),
            timer(1, "z", i64::MIN),
            timer(1, "y", 0),
        ],
        ratings: vec![
            rating(9, 0, 1),
            rating(2, -1, 2),
            rating(1, 0, 3),
            rating(1, 0, 4),
        ],
        timeline: vec![
            (1, entry(5, Direction::Out, "first")),
            (1, entry(5, Direction::In, "second")),
            (1, entry(-1, Direction::Out, "third")),
        ],
        ..Commit::default()
    })?;
    let order: Vec<(ConversationId, String)> = store
        .due_timers(0, 10)?
        .into_iter()
        .map(|t| (t.conversation, t.name))
        .collect();
    assert_eq!(
        order,
        [(1, "z"), (2, "a"), (1, "y"), (3, "b")]
            .map(|(c, n)| (c, n.to_string()))
            .to_vec()
    );
    assert_eq!(store.next_timer_due()?, Some(i64::MIN));
    // Equal times: by conversation, then in commit order.
    let scores: Vec<u8> = store
        .ratings(i64::MIN, i64::MAX)?
        .iter()
        .map(|r| r.score)
        .collect();
    assert_eq!(scores, vec![2, 3, 4, 1]);
    store.commit(Commit {
        ratings: vec![rating(1, 0, 5)],
        ..Commit::default()
    })?;
    let scores: Vec<u8> = store.ratings(0, 1)?.iter().map(|r| r.score).collect();
    assert_eq!(scores, vec![3, 4, 5, 1]);
    // The timeline is in commit order, whatever the times say.
    let texts: Vec<String> = store.timeline(1)?.into_iter().map(|e| e.text).collect();
    assert_eq!(texts, ["first", "second", "third"]);
    store.commit(Commit {
        timeline: vec![(1, entry(-100, Direction::In, "fourth"))],
        ..Commit::default()
    })?;
    assert_eq!(
        store.timeline(1)?.last().map(|e| e.text.as_str()),
        Some("fourth")
    );
    Ok(())
}
