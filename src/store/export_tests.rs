//! The export queue: events derived from the steps while export is on, in order, the same
//! after a crash's replay, taken out by the cursor, and their seqs never reused.

use super::export::{ExportEvent, QueuedEvent};
use super::recovery_tests::survey;
use super::tests::{TempDir, TestResult, reopen};
use super::*;

fn kinds(events: &[QueuedEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.kind()).collect()
}

#[test]
fn a_survey_exports_its_mt_statuses_rating_and_end_once_export_is_on() -> TestResult {
    let store = Store::temporary()?;
    survey(&store, 1, 11)?;
    assert_eq!(store.exports_len(), 0, "export is off by default");
    store.set_export(true)?;
    survey(&store, 2, 12)?;
    // The first events checkpointed (read from sled), the last in the dirty layer.
    store.checkpoint()?;
    store.set_export(false)?;
    store.set_export(true)?;
    let events = store.exports_after(0, 100)?;
    assert_eq!(kinds(&events), ["mt", "mt", "rating", "conversation"]);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let ExportEvent::Mt(sent) = &events[0].event else {
        panic!("{events:?}")
    };
    assert_eq!((sent.message, sent.status.word()), (12, "sent"));
    let ExportEvent::Mt(delivered) = &events[1].event else {
        panic!("{events:?}")
    };
    assert_eq!(delivered.status, MessageStatus::Delivered);
    let ExportEvent::Conversation(end) = &events[3].event else {
        panic!("{events:?}")
    };
    assert_eq!((end.id, end.outcome.as_str()), (2, "rated"));
    assert_eq!(kinds(&store.exports_after(2, 1)?), ["rating"]);

    store.exported(2)?;
    assert_eq!(
        kinds(&store.exports_after(0, 100)?),
        ["rating", "conversation"]
    );
    store.set_export(false)?;
    survey(&store, 3, 13)?;
    assert_eq!(store.exports_len(), 2, "off: nothing new, the queued stay");
    Ok(())
}

#[test]
fn a_replay_after_a_crash_derives_the_same_events_under_the_same_seqs() -> TestResult {
    let dir = TempDir::new("export-replay");
    let before;
    {
        let store = Store::open(&dir.0)?;
        store.set_export(true)?;
        survey(&store, 1, 11)?;
        store.checkpoint()?;
        survey(&store, 2, 12)?;
        store.exported(3)?;
        survey(&store, 3, 13)?;
        store.flush_sync()?;
        before = store.exports_after(0, 100)?;
        store.simulate_crash();
    }
    assert_eq!(before.first().map(|e| e.seq), Some(4));
    assert_eq!(before.len(), 9);
    let store = reopen(&dir.0)?;
    assert_eq!(store.exports_after(0, 100)?, before);
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);

    store.exported(12)?;
    assert_eq!(store.exports_len(), 0);
    drop(store);
    let store = reopen(&dir.0)?;
    survey(&store, 4, 14)?;
    let next = store.exports_after(0, 100)?;
    assert_eq!(
        next.first().map(|e| e.seq),
        Some(13),
        "seqs are never reused"
    );
    Ok(())
}
