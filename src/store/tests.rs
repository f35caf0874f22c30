//! Store scenarios on temporary sled databases (in memory-backed temp dirs), plus a few on
//! real directories for reopening and locking.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use super::*;

pub(super) type TestResult = Result<(), StoreError>;

/// A directory under the system temp dir, unique per test and process, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("smsflow-store-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens `path`, waiting out a lock still held by a store this test just dropped. sled
/// releases memory (and so could release its file) through epoch-based reclamation, which
/// may lag the last handle; it did not in our runs, but a late unlock would be a test
/// artefact, not a bug.
pub(crate) fn reopen(path: &Path) -> Result<Store, StoreError> {
    let mut tries = 0;
    loop {
        match Store::open(path) {
            Err(StoreError::Locked { .. }) if tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub(super) fn conv(
    id: ConversationId,
    flow: &str,
    parties: &[&str],
    created_at: Millis,
) -> Conversation {
    Conversation {
        id,
        flow: flow.to_string(),
        flow_version: "5e3a9c".to_string(),
        state: json!({"asked": 1, "operator": "op-17", "nested": {"list": [1, -2, 3.5, null, "ж"]}}),
        parties: parties.iter().map(|p| p.to_string()).collect(),
        event_key: Some(format!("call-{id}")),
        created_at,
        updated_at: created_at,
        ..Default::default()
    }
}

pub(super) fn entry(at: Millis, direction: Direction, text: &str) -> TimelineEntry {
    TimelineEntry {
        at,
        direction,
        party: "998901234567".to_string(),
        text: text.to_string(),
        status: TimelineStatus::Received,
        message_id: (direction == Direction::Out).then_some(7),
    }
}

pub(super) fn rating(conversation: ConversationId, at: Millis, score: u8) -> Rating {
    Rating {
        conversation,
        flow: "survey".to_string(),
        at,
        msisdn: "998901234567".to_string(),
        score,
        operator: "op-17".to_string(),
        channel: "call".to_string(),
        comment: "Оператор был вежлив, но долго пришлось ждать на линии.".to_string(),
    }
}

pub(super) fn incident(conversation: ConversationId, at: Millis) -> Incident {
    Incident {
        conversation,
        at,
        updated_at: at,
        fields: json!({"button": {"name": "Палата 315"}, "acknowledged_at_level": 2, "ack_ms": 35000}),
    }
}

pub(super) fn timer(conversation: ConversationId, name: &str, due: Millis) -> Timer {
    Timer {
        conversation,
        name: name.to_string(),
        due,
    }
}

pub(super) fn out(id: u64, conversation: ConversationId) -> OutMessage {
    OutMessage {
        id,
        conversation,
        to: "998901234567".to_string(),
        text: "Спасибо за вашу оценку!".to_string(),
        created_at: 1_000,
        flow: "survey".to_string(),
        opening: false,
    }
}

pub(super) fn open_one(store: &Store, c: Conversation) -> TestResult {
    store.commit(Commit {
        conversation: Some(c),
        ..Commit::default()
    })
}

#[test]
fn event_keys_are_idempotency_keys() -> TestResult {
    let store = Store::temporary()?;
    store.commit(Commit {
        conversation: Some(conv(1, "survey", &["998901234567"], 1)),
        event_key: Some(("survey".into(), "call-7781".into(), 1)),
        ..Commit::default()
    })?;
    assert_eq!(store.event_conversation("survey", "call-7781")?, Some(1));
    assert_eq!(store.event_conversation("escalation", "call-7781")?, None);
    assert_eq!(store.event_conversation("survey", "call-778")?, None);

    // The same key for the same conversation again is fine (a retried step).
    store.commit(Commit {
        event_key: Some(("survey".into(), "call-7781".into(), 1)),
        ..Commit::default()
    })?;

    // A racing duplicate that created another conversation fails whole.
    let result = store.commit(Commit {
        conversation: Some(conv(2, "survey", &["998901234567"], 2)),
        outbox: vec![out(5, 2)],
        event_key: Some(("survey".into(), "call-7781".into(), 2)),
        ..Commit::default()
    });
    match result {
        Err(StoreError::EventKeyTaken {
            flow,
            key,
            conversation,
        }) => {
            assert_eq!(
                (flow.as_str(), key.as_str(), conversation),
                ("survey", "call-7781", 1)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.conversation(2)?, None);
    assert!(store.outbox(10)?.is_empty());
    assert_eq!(store.open_conversations_of("998901234567")?, vec![1]);
    Ok(())
}

#[test]
fn ratings_and_incidents_by_half_open_time_range() -> TestResult {
    let store = Store::temporary()?;
    store.commit(Commit {
        ratings: (0..10)
            .map(|i| rating(i, i as Millis * 100, 1 + (i % 5) as u8))
            .collect(),
        incidents: (0..10)
            .map(|i| incident(i, i as Millis * 100 - 500))
            .collect(),
        ..Commit::default()
    })?;
    let ats = |rs: Vec<Rating>| rs.iter().map(|r| r.at).collect::<Vec<_>>();
    assert_eq!(ats(store.ratings(200, 500)?), vec![200, 300, 400]);
    assert_eq!(ats(store.ratings(199, 201)?), vec![200]);
    assert!(ats(store.ratings(200, 200)?).is_empty());
    assert!(ats(store.ratings(500, 200)?).is_empty());
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 10);
    let ats: Vec<Millis> = store.incidents(-500, 0)?.iter().map(|i| i.at).collect();
    assert_eq!(ats, vec![-500, -400, -300, -200, -100]);
    Ok(())
}

#[test]
fn opt_out_and_back_in() -> TestResult {
    let store = Store::temporary()?;
    assert!(!store.is_opted_out("998901234567")?);
    store.commit(Commit {
        opt_outs: vec!["998901234567".into()],
        ..Commit::default()
    })?;
    assert!(store.is_opted_out("998901234567")?);
    assert!(!store.is_opted_out("99890123456")?);
    store.commit(Commit {
        opt_ins: vec!["998901234567".into()],
        ..Commit::default()
    })?;
    assert!(!store.is_opted_out("998901234567")?);
    // Both in one commit: opted out.
    store.commit(Commit {
        opt_outs: vec!["998901234567".into()],
        opt_ins: vec!["998901234567".into()],
        ..Commit::default()
    })?;
    assert!(store.is_opted_out("998901234567")?);
    Ok(())
}

#[test]
fn last_conversation_at_tracks_the_newest_per_flow_and_party() -> TestResult {
    let store = Store::temporary()?;
    assert_eq!(store.last_conversation_at("survey", "998901234567")?, None);
    let mut c = conv(1, "survey", &["998901234567"], 1_000);
    open_one(&store, c.clone())?;
    assert_eq!(
        store.last_conversation_at("survey", "998901234567")?,
        Some(1_000)
    );
    // Still there after the conversation ends.
    c.status = ConversationStatus::Finished {
        outcome: "expired".into(),
    };
    open_one(&store, c)?;
    assert_eq!(
        store.last_conversation_at("survey", "998901234567")?,
        Some(1_000)
    );
    // A newer one moves it, an older one committed later does not.
    open_one(&store, conv(3, "survey", &["998901234567"], 5_000))?;
    open_one(&store, conv(2, "survey", &["998901234567"], 3_000))?;
    assert_eq!(
        store.last_conversation_at("survey", "998901234567")?,
        Some(5_000)
    );
    // Per flow.
    assert_eq!(
        store.last_conversation_at("escalation", "998901234567")?,
        None
    );
    // A party added later gets the conversation's creation time.
    let mut e = conv(4, "escalation", &["998901111111"], 7_000);
    open_one(&store, e.clone())?;
    e.parties.push("998901234567".into());
    e.updated_at = 9_000;
    open_one(&store, e)?;
    assert_eq!(
        store.last_conversation_at("escalation", "998901234567")?,
        Some(7_000)
    );
    Ok(())
}

#[test]
fn script_versions_are_kept() -> TestResult {
    let store = Store::temporary()?;
    store.commit(Commit {
        script: Some(("survey".into(), "aa".into(), "// v1".into())),
        ..Commit::default()
    })?;
    store.commit(Commit {
        script: Some(("survey".into(), "bb".into(), "// v2".into())),
        ..Commit::default()
    })?;
    // A version is content-addressed: the first source stored under it stays.
    store.commit(Commit {
        script: Some(("survey".into(), "aa".into(), "// other".into())),
        ..Commit::default()
    })?;
    assert_eq!(store.script("survey", "aa")?.as_deref(), Some("// v1"));
    assert_eq!(store.script("survey", "bb")?.as_deref(), Some("// v2"));
    assert_eq!(store.script("escalation", "aa")?, None);
    Ok(())
}

#[test]
fn outbox_drains_oldest_first() -> TestResult {
    let store = Store::temporary()?;
    let ids: Vec<u64> = (0..5).map(|_| store.next_id()).collect::<Result<_, _>>()?;
    store.commit(Commit {
        outbox: vec![out(ids[2], 1), out(ids[0], 1)],
        ..Commit::default()
    })?;
    store.commit(Commit {
        outbox: vec![out(ids[1], 2), out(ids[4], 2), out(ids[3], 1)],
        ..Commit::default()
    })?;
    let batch: Vec<u64> = store.outbox(3)?.iter().map(|m| m.id).collect();
    assert_eq!(batch, ids[..3]);
    store.outbox_done(&batch)?;
    store.outbox_done(&[u64::MAX])?;
    let rest: Vec<u64> = store.outbox(10)?.iter().map(|m| m.id).collect();
    assert_eq!(rest, ids[3..]);
    store.outbox_done(&rest)?;
    assert!(store.outbox(10)?.is_empty());
    Ok(())
}

#[test]
fn outbox_outcomes_carry_status_and_smsc_ids_to_the_timeline() -> TestResult {
    let store = Store::temporary()?;
    let (a, b) = (store.next_id()?, store.next_id()?);
    let mut queued = entry(1_000, Direction::Out, "вопрос");
    queued.status = TimelineStatus::Queued;
    queued.message_id = Some(a);
    store.commit(Commit {
        conversation: Some(conv(1, "survey", &["998901234567"], 1_000)),
        timeline: vec![(1, queued)],
        outbox: vec![out(a, 1), out(b, 1)],
        ..Commit::default()
    })?;
    assert_eq!(store.outbox_after(a, 10)?.len(), 1, "read after a cursor");
    store.outbox_finished(&[OutboxOutcome {
        message: out(a, 1),
        status: "sent".into(),
        smsc_ids: vec!["1f".into(), "20".into()],
        at: 0,
    }])?;
    assert_eq!(
        store.outbox(10)?.iter().map(|m| m.id).collect::<Vec<_>>(),
        [b]
    );
    assert_eq!(store.timeline(1)?[0].status.to_string(), "sent");
    let second = store.sent_part("20")?.expect("part 2 is known");
    assert_eq!((second.outbox_id, second.part), (a, 1));
    let forms = |id: &str| vec![id.to_owned()];
    let first = store.apply_receipt(&forms("1f"), PartState::Delivered, 0)?;
    assert_eq!(
        first.map(|r| r.changed),
        Some(Some(MessageStatus::Enroute)),
        "part 2 is still on its way"
    );
    assert_eq!(store.timeline(1)?[0].status.to_string(), "enroute");
    let second = store.apply_receipt(&forms("20"), PartState::Delivered, 0)?;
    assert_eq!(
        second.map(|r| r.changed),
        Some(Some(MessageStatus::Delivered))
    );
    assert_eq!(store.timeline(1)?[0].status.to_string(), "delivered");
    assert!(
        store.sent_part("1f")?.is_none(),
        "a final receipt forgets its id"
    );
    assert_eq!(
        store.apply_receipt(&forms("1f"), PartState::Delivered, 0)?,
        None
    );
    assert_eq!(store.open_counts()?, [("survey".to_string(), 1)]);
    Ok(())
}

#[test]
fn mo_marks_go_with_steps_and_are_kept_until_swept() -> TestResult {
    let dir = TempDir::new("marks");
    let store = Store::open(&dir.0)?;
    let part = MoPart {
        source: "998901234567".into(),
        destination: "5700".into(),
        concat: MoConcat {
            reference: 7,
            total: 2,
            seq: 1,
        },
        data_coding: 8,
        payload: vec![0x04, 0x34],
    };
    let part_key = store.put_part(&part)?;
    assert_eq!(store.parts()?, std::slice::from_ref(&part));
    let (old, new) = (
        MoMark::new("998901234567", "5700", 0, None, None, b"5"),
        MoMark::new("998901234567", "5700", 0, None, None, b"OK"),
    );
    for (mark, at) in [(&old, 1_000), (&new, 9_000)] {
        let mut c = conv(at as u64, "survey", &["998901234567"], at);
        c.updated_at = at;
        store.commit(Commit {
            conversation: Some(c),
            mo: Some(MoRecord {
                pending_ack: vec![mark.clone()],
                parts: vec![part_key.clone()],
                received_at: at,
            }),
            ..Commit::default()
        })?;
    }
    assert!(store.parts()?.is_empty(), "the step consumed the part");
    assert!(store.mo_seen(&old, 9_000)? && store.mo_seen(&new, 9_000)?);
    // Unacknowledged marks are kept an hour (a crash before the response).
    let hour = 3_600_000;
    assert_eq!(store.sweep_mo_marks(1_000 + hour)?, 0);
    assert_eq!(store.sweep_mo_marks(1_001 + hour)?, 1);
    assert!(!store.mo_seen(&old, 9_000)? && store.mo_seen(&new, 9_000)?);
    // Acknowledged, a mark is kept as long as the service says, across a restart.
    store.mo_acknowledged(&new, 20_000)?;
    drop(store);
    let store = reopen(&dir.0)?;
    assert_eq!(store.sweep_mo_marks(20_000)?, 0);
    assert!(store.mo_seen(&new, 20_000)?, "kept until 20 000");
    assert!(
        !store.mo_seen(&new, 20_001)?,
        "not seen past it, swept or not"
    );
    assert_eq!(store.sweep_mo_marks(20_001)?, 1);
    assert!(!store.mo_seen(&new, 0)?);
    Ok(())
}

#[test]
fn next_id_is_monotonic_nonzero_and_unique_across_restarts() -> TestResult {
    let dir = TempDir::new("ids");
    let mut last = 0;
    {
        let store = Store::open(&dir.0)?;
        for _ in 0..100 {
            let id = store.next_id()?;
            assert!(id > last);
            last = id;
        }
    }
    let store = reopen(&dir.0)?;
    assert!(store.next_id()? > last);
    Ok(())
}

#[tokio::test]
async fn reopen_finds_everything() -> TestResult {
    let dir = TempDir::new("reopen");
    let c = conv(1, "survey", &["998901234567"], 1_000);
    {
        let store = Store::open(&dir.0)?;
        store.commit(Commit {
            conversation: Some(c.clone()),
            timers_set: vec![timer(1, "expire", 87_400_000)],
            timeline: vec![(1, entry(1_000, Direction::Out, "ask"))],
            outbox: vec![out(3, 1)],
            ratings: vec![rating(1, 1_500, 5)],
            incidents: vec![incident(1, 1_600)],
            opt_outs: vec!["998909999999".into()],
            event_key: Some(("survey".into(), "call-7781".into(), 1)),
            script: Some(("survey".into(), "aa".into(), "// v1".into())),
            ..Commit::default()
        })?;
        let handle = store.clone();
        // The async barrier is usable from spawned tasks.
        tokio::spawn(async move { handle.flush().await })
            .await
            .expect("flush task does not panic")?;
    }
    let store = reopen(&dir.0)?;
    assert_eq!(store.conversation(1)?, Some(c));
    assert_eq!(store.open_conversations_of("998901234567")?, vec![1]);
    assert_eq!(store.open_conversations(Some("survey"))?, vec![1]);
    assert_eq!(store.timers_of(1)?, vec![timer(1, "expire", 87_400_000)]);
    assert_eq!(store.next_timer_due()?, Some(87_400_000));
    assert_eq!(store.timeline(1)?.len(), 1);
    assert_eq!(store.outbox(10)?, vec![out(3, 1)]);
    assert_eq!(store.ratings(0, 2_000)?, vec![rating(1, 1_500, 5)]);
    assert_eq!(store.incidents(0, 2_000)?, vec![incident(1, 1_600)]);
    assert!(store.is_opted_out("998909999999")?);
    assert_eq!(store.event_conversation("survey", "call-7781")?, Some(1));
    assert_eq!(store.script("survey", "aa")?.as_deref(), Some("// v1"));
    assert_eq!(
        store.last_conversation_at("survey", "998901234567")?,
        Some(1_000)
    );
    Ok(())
}

#[test]
fn another_schema_version_is_refused() -> TestResult {
    let dir = TempDir::new("schema");
    {
        let store = Store::open(&dir.0)?;
        let meta = store.inner.db.open_tree(keys::META)?;
        meta.insert(
            keys::META_SCHEMA_VERSION,
            &keys::schema_version_value(keys::SCHEMA_VERSION + 1)[..],
        )?;
        store.flush_sync()?;
    }
    match reopen(&dir.0) {
        Err(StoreError::SchemaMismatch {
            found,
            expected,
            path,
        }) => {
            assert_eq!(
                (found, expected),
                (keys::SCHEMA_VERSION + 1, keys::SCHEMA_VERSION)
            );
            assert_eq!(path, dir.0);
        }
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn data_without_a_schema_version_is_refused() -> TestResult {
    let dir = TempDir::new("noschema");
    {
        let db = sled::Config::new().path(&dir.0).open()?;
        db.open_tree("conversations")?.insert(b"x", b"y")?;
        db.flush()?;
    }
    let err = reopen(&dir.0).expect_err("no version recorded");
    assert!(
        matches!(err, StoreError::SchemaMismatch { found: 0, .. }),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn a_second_open_of_the_same_directory_names_it() -> TestResult {
    let dir = TempDir::new("locked");
    let _first = Store::open(&dir.0)?;
    let err = Store::open(&dir.0).expect_err("sled locks the directory");
    assert!(
        matches!(&err, StoreError::Locked { path, .. } if *path == dir.0),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&dir.0.display().to_string()), "{message}");
    assert!(message.contains("in use"), "{message}");
    Ok(())
}

#[test]
fn store_is_send_sync_and_flush_is_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    if let Ok(store) = Store::temporary() {
        send_sync(&store);
        send(store.flush());
    }
}

/// A three-part message whose parts' receipts come in any order: the message is delivered
/// once all three are, and undeliverable as soon as one part fails, whatever comes after.
#[test]
fn receipts_for_every_part_decide_the_message_status() -> TestResult {
    let store = Store::temporary()?;
    let forms = |id: &str| vec![id.to_owned()];
    let send = |ids: [&str; 3]| -> Result<u64, StoreError> {
        let id = store.next_id()?;
        let mut queued = entry(1_000, Direction::Out, "длинное сообщение");
        queued.status = TimelineStatus::Queued;
        queued.message_id = Some(id);
        store.commit(Commit {
            conversation: Some(conv(id, "survey", &[], 1_000)),
            timeline: vec![(id, queued)],
            outbox: vec![out(id, id)],
            ..Commit::default()
        })?;
        store.outbox_finished(&[OutboxOutcome {
            message: out(id, id),
            status: "sent".into(),
            smsc_ids: ids.iter().map(|s| s.to_string()).collect(),
            at: 0,
        }])?;
        Ok(id)
    };
    let status = |id: u64| store.timeline(id).map(|t| t[0].status.to_string());

    // Parts 3, 1, 2 delivered in that order; an ENROUTE for part 1 on the way.
    let a = send(["a1", "a2", "a3"])?;
    let applied = |id: &str, state| store.apply_receipt(&forms(id), state, 0);
    assert_eq!(
        applied("a3", PartState::Delivered)?.unwrap().changed,
        Some(MessageStatus::Enroute)
    );
    assert_eq!(applied("a1", PartState::Enroute)?.unwrap().changed, None);
    assert_eq!(status(a)?, "enroute");
    assert_eq!(applied("a1", PartState::Delivered)?.unwrap().changed, None);
    let last = applied("a2", PartState::Delivered)?.unwrap();
    assert_eq!((last.part.outbox_id, last.part.part), (a, 1));
    assert_eq!(last.changed, Some(MessageStatus::Delivered));
    assert_eq!(status(a)?, "delivered");

    // Part 2 fails: undeliverable at once; parts 1 and 3 delivered later change nothing.
    let b = send(["b1", "b2", "b3"])?;
    assert_eq!(
        applied("b2", PartState::Undeliverable)?.unwrap().changed,
        Some(MessageStatus::Undeliverable)
    );
    assert_eq!(status(b)?, "undeliverable");
    assert_eq!(applied("b1", PartState::Delivered)?.unwrap().changed, None);
    assert_eq!(applied("b3", PartState::Delivered)?.unwrap().changed, None);
    assert_eq!(status(b)?, "undeliverable");
    Ok(())
}

/// Found by the simulation (sequential SMSC ids): a receipt for id "10" whose own message is
/// not recorded yet matched message B's id "16" (the same number read as hex), and marked
/// someone else's message delivered. Another base now counts only for the receipt's own
/// recipient.
#[test]
fn issue_18_a_receipt_is_not_matched_to_another_subscribers_message_by_its_other_base() -> TestResult
{
    let store = Store::temporary()?;
    let mut other = out(7, 1);
    other.to = "998902222222".into();
    open_one(&store, conv(1, "survey", &["998902222222"], 1_000))?;
    store.outbox_finished(&[OutboxOutcome {
        message: other,
        status: "sent".into(),
        smsc_ids: vec!["16".into()],
        at: 0,
    }])?;
    let forms = crate::smpp::receipt::id_forms("10");
    assert!(forms.contains(&"16".to_owned()), "{forms:?}");
    let from_x =
        store.apply_receipt_from(&forms, Some("+998901111111"), PartState::Delivered, 0)?;
    assert_eq!(from_x, None, "kept for its own message, not given to B's");
    assert_eq!(store.state().message_status(7)?, Some("sent".into()));
    // From B's own number, the other base still finds B's message (receipts in decimal for
    // hex submit ids, the tolerance it is there for).
    let from_b = store.apply_receipt_from(&forms, Some("998902222222"), PartState::Delivered, 0)?;
    assert_eq!(
        from_b.map(|r| r.changed),
        Some(Some(MessageStatus::Delivered))
    );
    Ok(())
}
