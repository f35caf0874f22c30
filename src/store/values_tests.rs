//! Values through the store: every type round-trips, a corrupted value is an error naming its
//! tree and key, and a commit that fails midway leaves nothing.

use serde_json::json;

use super::tests::{TestResult, conv, entry, incident, open_one, out, rating, timer};
use super::*;

#[test]
fn every_value_type_round_trips() -> TestResult {
    fn check<T>(value: &T) -> TestResult
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = keys::encode(b"k", value)?;
        assert_eq!(bytes[0], keys::ENCODING_VERSION);
        assert_eq!(&keys::decode::<T>("test", b"k", &bytes)?, value);
        Ok(())
    }
    let mut c = conv(1, "survey", &["998901234567"], -5);
    check(&c)?;
    c.status = ConversationStatus::Finished {
        outcome: "rated".into(),
    };
    c.event_key = None;
    check(&c)?;
    c.status = ConversationStatus::Errored {
        error: "on_reply: boom".into(),
    };
    c.state = json!({});
    check(&c)?;
    check(&entry(1, Direction::In, "5"))?;
    check(&entry(2, Direction::Out, "Спасибо"))?;
    check(&rating(1, 3, 5))?;
    check(&incident(1, 4))?;
    check(&timer(1, "expire", i64::MIN))?;
    check(&out(u64::MAX, 1))?;
    check(&i64::MIN)?;
    check(&u64::MAX)?;
    check(&"source".to_string())?;

    // And through the store, by every read path.
    let store = Store::temporary()?;
    let c = conv(2, "survey", &["998901234567"], 10);
    store.commit(Commit {
        conversation: Some(c.clone()),
        timers_set: vec![timer(2, "expire", 20)],
        timeline: vec![(2, entry(10, Direction::Out, "ask"))],
        outbox: vec![out(9, 2)],
        ratings: vec![rating(2, 11, 4)],
        incidents: vec![incident(2, 12)],
        ..Commit::default()
    })?;
    assert_eq!(store.conversation(2)?, Some(c));
    assert_eq!(store.timers_of(2)?, vec![timer(2, "expire", 20)]);
    assert_eq!(store.timeline(2)?, vec![entry(10, Direction::Out, "ask")]);
    assert_eq!(store.outbox(10)?, vec![out(9, 2)]);
    assert_eq!(store.ratings(0, 100)?, vec![rating(2, 11, 4)]);
    assert_eq!(store.incidents(0, 100)?, vec![incident(2, 12)]);
    assert_eq!(store.conversation(3)?, None);
    Ok(())
}

#[test]
fn corrupted_values_are_errors_naming_tree_and_key() -> TestResult {
    let store = Store::temporary()?;
    let cold = &store.inner.cold;
    cold.insert(keys::conversation(5), &[keys::ENCODING_VERSION, 0xc1][..])?;
    cold.insert(keys::conversation(6), &[9, 0x90][..])?;
    cold.insert(keys::conversation(7), &[][..])?;
    // Read after the store opened, a value that does not decode is damage (`damage.rs`),
    // named by tree and key.
    for (id, detail) in [
        (5, "messagepack"),
        (6, "unknown value encoding 9"),
        (7, "empty value"),
    ] {
        match store.conversation(id) {
            Err(StoreError::Damaged { detail: d, .. }) => {
                let key = keys::conversation(id).escape_ascii().to_string();
                assert!(
                    d.starts_with(&format!(
                        "reading conversation {id}: corrupt entry state/{key}"
                    )),
                    "{d}"
                );
                assert!(d.contains(detail), "{d}");
            }
            other => panic!("conversation {id}: {other:?}"),
        }
    }
    let message = store.conversation(6).expect_err("corrupt").to_string();
    assert!(
        message.starts_with("the store in <temporary> is damaged"),
        "{message}"
    );
    // A corrupt log group refuses the start, naming the group.
    Ok(())
}

#[test]
fn a_commit_failing_midway_leaves_nothing() -> TestResult {
    let store = Store::temporary()?;
    let mut c = conv(1, "survey", &["998901234567"], 100);
    open_one(&store, c.clone())?;
    // A corrupt fatigue date of a new party: the commit reads it last of all it reads.
    store.inner.cold.insert(
        keys::last_by_party("survey", "998907777777"),
        &[keys::ENCODING_VERSION][..],
    )?;

    let before = c.clone();
    c.status = ConversationStatus::Finished {
        outcome: "rated".into(),
    };
    c.state = json!({"changed": true});
    c.parties.push("998907777777".into());
    let result = store.commit(Commit {
        conversation: Some(c.clone()),
        timeline: vec![(1, entry(101, Direction::In, "5"))],
        outbox: vec![out(3, 1)],
        ratings: vec![rating(1, 101, 5)],
        incidents: vec![incident(1, 101)],
        opt_outs: vec!["998901234567".into()],
        event_key: Some(("survey".into(), "call-x".into(), 1)),
        script: Some(("survey".into(), "v2".into(), "fn on_event(e) {}".into())),
        timers_set: vec![timer(1, "expire", 200)],
        ..Commit::default()
    });
    // The value that does not decode is damage: the store takes no more steps, and reads of
    // what is intact go on.
    match result {
        Err(StoreError::Damaged { detail, .. }) => assert!(
            detail.starts_with("reading what a step updates: corrupt entry state/l"),
            "{detail}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.conversation(1)?, Some(before));
    assert_eq!(store.open_conversations_of("998901234567")?, vec![1]);
    assert!(store.timeline(1)?.is_empty());
    assert_eq!(store.outbox_len(), 0);
    assert!(store.ratings(i64::MIN, i64::MAX)?.is_empty());
    assert!(store.incidents(i64::MIN, i64::MAX)?.is_empty());
    assert!(!store.is_opted_out("998901234567")?);
    assert_eq!(store.event_conversation("survey", "call-x")?, None);
    assert_eq!(store.script("survey", "v2")?, None);
    assert!(store.timers_of(1)?.is_empty());
    Ok(())
}
