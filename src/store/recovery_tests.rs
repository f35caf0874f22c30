//! The store across checkpoints, crashes and versions: what a restart finds is what was
//! there, whether it came from the checkpoint, the log after it, or a version 1 store.

use serde_json::json;

use super::tests::{
    TempDir, TestResult, conv, entry, incident, open_one, out, rating, reopen, timer,
};
use super::*;

const MSISDN: &str = "998901234567";

/// A survey's life in three commits, with the outcome and receipt of its question.
pub(super) fn survey(store: &Store, id: ConversationId, question: u64) -> TestResult {
    let mut c = conv(id, "survey", &[MSISDN], 1_000);
    let mut ask = entry(1_000, Direction::Out, "Оцените");
    ask.message_id = Some(question);
    // The question, sent by the step that creates the conversation (its event hook).
    let question_out = OutMessage {
        opening: true,
        ..out(question, id)
    };
    store.commit(Commit {
        conversation: Some(c.clone()),
        timers_set: vec![timer(id, "expire", 90_000)],
        timeline: vec![(id, ask)],
        outbox: vec![question_out.clone()],
        event_key: Some(("survey".into(), format!("call-{id}"), id)),
        ..Commit::default()
    })?;
    store.outbox_finished(&[OutboxOutcome {
        message: question_out,
        status: "sent".into(),
        smsc_ids: vec![format!("q{question}")],
        at: 0,
    }])?;
    store.apply_receipt(&[format!("q{question}")], PartState::Delivered, 0)?;
    c.status = ConversationStatus::Finished {
        outcome: "rated".into(),
    };
    c.state = json!({"score": 5});
    c.updated_at = 2_000;
    store.commit(Commit {
        conversation: Some(c),
        timers_cancelled: vec![(id, "expire".into())],
        timeline: vec![(id, entry(2_000, Direction::In, "5"))],
        ratings: vec![rating(id, 2_000, 5)],
        ..Commit::default()
    })
}

fn statuses(store: &Store, id: ConversationId) -> Result<Vec<String>, StoreError> {
    Ok(store
        .timeline(id)?
        .into_iter()
        .map(|e| e.status.to_string())
        .collect())
}

#[test]
fn reads_merge_the_checkpoint_with_the_steps_after_it() -> TestResult {
    let store = Store::temporary()?;
    survey(&store, 1, 11)?;
    store.checkpoint()?;
    survey(&store, 2, 12)?;
    let silent = Rating {
        comment: " ".into(),
        ..rating(1, 3_000, 4)
    };
    store.commit(Commit {
        timeline: vec![(1, entry(3_000, Direction::Out, "ещё"))],
        incidents: vec![incident(1, 3_000)],
        ratings: vec![silent],
        ..Commit::default()
    })?;
    for round in 0..2 {
        let scores: Vec<u8> = store
            .ratings(i64::MIN, i64::MAX)?
            .iter()
            .map(|r| r.score)
            .collect();
        assert_eq!(scores, [5, 5, 4], "round {round}");
        let commented = store.commented_ratings(i64::MIN, i64::MAX)?;
        assert_eq!(
            commented.len(),
            2,
            "round {round}: the rating without a comment is apart"
        );
        assert_eq!(store.incidents(0, 4_000)?.len(), 1, "round {round}");
        let texts: Vec<String> = store.timeline(1)?.into_iter().map(|e| e.text).collect();
        assert_eq!(texts, ["Оцените", "5", "ещё"], "round {round}");
        assert_eq!(
            statuses(&store, 2)?,
            ["delivered", "received"],
            "round {round}"
        );
        assert_eq!(store.sent_conversations("survey", 0, 5_000)?.len(), 2);
        assert_eq!(store.event_conversation("survey", "call-2")?, Some(2));
        // A second checkpoint moves everything to sled; nothing is counted twice.
        store.checkpoint()?;
    }
    Ok(())
}

#[test]
fn a_restart_after_a_crash_replays_the_log_after_the_checkpoint() -> TestResult {
    let dir = TempDir::new("replay");
    {
        let store = Store::open(&dir.0)?;
        survey(&store, 1, 11)?;
        store.checkpoint()?;
        survey(&store, 2, 12)?;
        open_one(&store, conv(3, "escalation", &["998909999999"], 2_500))?;
        store.commit(Commit {
            timers_set: vec![timer(3, "escalate", 60_000)],
            outbox: vec![out(13, 3)],
            opt_outs: vec!["998907777777".into()],
            ..Commit::default()
        })?;
        store.flush_sync()?;
        store.simulate_crash();
        assert!(
            store.commit(Commit::default()).is_err(),
            "a crashed store takes nothing"
        );
    }
    let store = reopen(&dir.0)?;
    for id in [1, 2] {
        let c = store.conversation(id)?.expect("stored");
        assert_eq!(c.state, json!({"score": 5}));
        assert_eq!(statuses(&store, id)?, ["delivered", "received"]);
        assert!(store.timers_of(id)?.is_empty());
    }
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 2);
    // The tallies replayed with the steps, each counted once.
    let day = jiff::civil::date(1970, 1, 1);
    let tallies = store.tallies(day, day);
    let survey = || {
        tallies
            .iter()
            .filter(|(k, _)| k.flow == "survey")
            .map(|(_, t)| t)
    };
    assert_eq!(
        survey().map(|t| t.responses()).sum::<u64>(),
        2,
        "{tallies:?}"
    );
    let rated: u64 = survey().filter_map(|t| t.outcomes.get("rated")).sum();
    assert_eq!(rated, 2, "{tallies:?}");
    assert_eq!(store.open_conversations(None)?, [3]);
    assert_eq!(store.open_conversations_of("998909999999")?, [3]);
    assert_eq!(store.next_timer_due()?, Some(60_000));
    assert_eq!(store.outbox(10)?, [out(13, 3)]);
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert!(store.is_opted_out("998907777777")?);
    assert_eq!(store.event_conversation("survey", "call-1")?, Some(1));
    assert_eq!(store.last_conversation_at("survey", MSISDN)?, Some(1_000));
    // The survey's second event key is refused for another conversation, as before.
    let taken = store.commit(Commit {
        conversation: Some(conv(4, "survey", &[], 4_000)),
        event_key: Some(("survey".into(), "call-2".into(), 4)),
        ..Commit::default()
    });
    assert!(matches!(
        taken,
        Err(StoreError::EventKeyTaken {
            conversation: 2,
            ..
        })
    ));
    Ok(())
}

#[test]
fn a_clean_stop_checkpoints_and_leaves_no_log() -> TestResult {
    let dir = TempDir::new("clean-stop");
    {
        let store = Store::open(&dir.0)?;
        survey(&store, 1, 11)?;
    }
    let store = reopen(&dir.0)?;
    let log = store.inner.db.open_tree(keys::LOG)?;
    assert!(
        log.is_empty(),
        "the log is pruned behind the last checkpoint"
    );
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 1);
    Ok(())
}

/// Version 1's layout (smsflow up to d911031), written the way that code wrote it: one tree
/// per table, keys as its `keys.rs` built them.
mod v1_layout {
    use super::*;

    fn lp(k: &mut Vec<u8>, s: &str) {
        k.extend_from_slice(&(s.len() as u32).to_be_bytes());
        k.extend_from_slice(s.as_bytes());
    }

    fn pair(a: &str, b: &str) -> Vec<u8> {
        let mut k = Vec::new();
        lp(&mut k, a);
        k.extend_from_slice(b.as_bytes());
        k
    }

    fn put<T: serde::Serialize>(db: &sled::Db, tree: &str, key: &[u8], value: &T) -> TestResult {
        db.open_tree(tree)?.insert(key, keys::encode(key, value)?)?;
        Ok(())
    }

    /// An open survey with a timer and a queued question, a rated one with a delivered
    /// question and a receipt-tracked two-part thanks, an opt-out, a stored MO part and an
    /// unacknowledged MO mark.
    pub fn write(db: &sled::Db) -> TestResult {
        let open = conv(1, "survey", &[MSISDN], 1_000);
        let mut rated = conv(2, "survey", &["998902222222"], 1_500);
        rated.status = ConversationStatus::Finished {
            outcome: "rated".into(),
        };
        put(db, "conversations", &1u64.to_be_bytes(), &open)?;
        put(db, "conversations", &2u64.to_be_bytes(), &rated)?;
        let t = timer(1, "expire", 90_000);
        let mut tk = 1u64.to_be_bytes().to_vec();
        tk.extend_from_slice(b"expire");
        put(db, "timer_index", &tk, &t)?;
        let mut party = Vec::new();
        lp(&mut party, MSISDN);
        party.extend_from_slice(&keys::time(1_000));
        party.extend_from_slice(&1u64.to_be_bytes());
        db.open_tree("party_index")?.insert(party, &[][..])?;
        let question = |id: u64, at, outbox_id| {
            let mut e = entry(at, Direction::Out, "Оцените");
            e.message_id = Some(outbox_id);
            (id, e)
        };
        let timeline = [
            question(1, 1_000, 101),
            question(2, 1_500, 102),
            (2, entry(1_600, Direction::In, "5")),
        ];
        for (seq, (id, e)) in timeline.into_iter().enumerate() {
            let mut k = id.to_be_bytes().to_vec();
            k.extend_from_slice(&(seq as u64 + 10).to_be_bytes());
            put(db, "timeline", &k, &e)?;
        }
        let r = rating(2, 1_600, 5);
        let mut rk = keys::time(r.at).to_vec();
        rk.extend_from_slice(&2u64.to_be_bytes());
        rk.extend_from_slice(&7u64.to_be_bytes());
        put(db, "ratings", &rk, &r)?;
        put(db, "incidents", &rk, &incident(2, 1_600))?;
        db.open_tree("opt_outs")?.insert(b"998907777777", &[][..])?;
        put(db, "event_keys", &pair("survey", "call-1"), &1u64)?;
        put(db, "scripts", &pair("survey", "aa"), &"// v1".to_string())?;
        put(db, "outbox", &101u64.to_be_bytes(), &out(101, 1))?;
        put(db, "last_by_party", &pair("survey", MSISDN), &1_000i64)?;
        put(
            db,
            "inbound",
            &MoMark::new(MSISDN, "5700", 0, None, None, b"5").0,
            &1_600i64,
        )?;
        // Written by version 1 as smpp::concat::Part: the same fields.
        let part = MoPart {
            source: MSISDN.into(),
            destination: "5700".into(),
            concat: MoConcat {
                reference: 7,
                total: 2,
                seq: 1,
            },
            data_coding: 0,
            payload: b"4 ".to_vec(),
        };
        put(db, "inbound", &PartKey::of(&part).0, &part)?;
        // The rated survey's question (102) delivered; its thanks (103) in two parts, the
        // first delivered.
        let mut m = vec![b'm'];
        m.extend_from_slice(&102u64.to_be_bytes());
        put(db, "delivery", &m, &"delivered".to_string())?;
        m[1..].copy_from_slice(&103u64.to_be_bytes());
        put(db, "delivery", &m, &"enroute".to_string())?;
        let mut r = m.clone();
        r[0] = b'r';
        put(
            db,
            "delivery",
            &r,
            &vec![PartState::Delivered, PartState::Sent],
        )?;
        let sent = SentPart {
            conversation: 2,
            outbox_id: 103,
            to: "998902222222".into(),
            flow: "survey".into(),
            part: 1,
            opening: false,
        };
        put(db, "delivery", b"sff2", &sent)?;
        db.open_tree(keys::META)?
            .insert(keys::META_SCHEMA_VERSION, &1u32.to_be_bytes()[..])?;
        db.flush()?;
        Ok(())
    }
}

#[test]
fn a_version_1_store_is_migrated_at_open() -> TestResult {
    let dir = TempDir::new("migrate");
    {
        let db = sled::Config::new().path(&dir.0).open()?;
        v1_layout::write(&db)?;
    }
    let store = reopen(&dir.0)?;
    let names: Vec<String> = (store.inner.db.tree_names().iter())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "conversations"),
        "old trees dropped: {names:?}"
    );
    assert_eq!(store.open_conversations(None)?, [1]);
    assert_eq!(store.open_conversations_of(MSISDN)?, [1]);
    assert_eq!(store.timers_of(1)?, [timer(1, "expire", 90_000)]);
    assert_eq!(
        store.conversation(2)?.map(|c| c.status),
        Some(ConversationStatus::Finished {
            outcome: "rated".into()
        })
    );
    let texts: Vec<String> = store.timeline(2)?.into_iter().map(|e| e.text).collect();
    assert_eq!(texts, ["Оцените", "5"]);
    assert_eq!(statuses(&store, 2)?, ["delivered", "received"]);
    assert_eq!(store.ratings(0, 2_000)?, [rating(2, 1_600, 5)]);
    assert_eq!(store.incidents(0, 2_000)?, [incident(2, 1_600)]);
    assert!(store.is_opted_out("998907777777")?);
    assert_eq!(store.event_conversation("survey", "call-1")?, Some(1));
    assert_eq!(store.script("survey", "aa")?.as_deref(), Some("// v1"));
    assert_eq!(store.outbox(10)?, [out(101, 1)]);
    assert_eq!(store.last_conversation_at("survey", MSISDN)?, Some(1_000));
    assert!(store.mo_seen(&MoMark::new(MSISDN, "5700", 0, None, None, b"5"), 0)?);
    assert_eq!(store.parts()?.len(), 1);
    assert_eq!(store.sent_conversations("survey", 0, 2_000)?.len(), 2);
    // The two-part thanks: part 2's receipt completes it, from the migrated part states.
    let applied = store
        .apply_receipt(&["ff2".into()], PartState::Delivered, 0)?
        .expect("the migrated SMSC id is known");
    assert_eq!(applied.changed, Some(MessageStatus::Delivered));
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    drop(store);
    // And it opens again as a version 2 store.
    let store = reopen(&dir.0)?;
    assert_eq!(store.open_conversations(None)?, [1]);
    Ok(())
}
