//! The audit tallies through the store: a call's press, then its answer, a complaint; kept
//! across a checkpoint and a replay of the log, and equal to the recount `verify` makes.

use serde_json::json;

use super::tests::{TempDir, TestResult, conv, reopen};
use super::{Commit, ConversationStatus, Incident, Store, audit_tally::SLOT_MS};

/// 2026-11-23 14:00 UTC, a quarter hour's start.
const AT: i64 = 1_795_442_400_000;

fn step(store: &Store, id: u64, at: i64, fields: serde_json::Value, open: bool) -> TestResult {
    let mut c = conv(id, "escalation", &[], AT);
    c.updated_at = at;
    c.incident = Some(fields.clone());
    if !open {
        c.status = ConversationStatus::Finished {
            outcome: "done".into(),
        };
    }
    store.commit(Commit {
        conversation: Some(c),
        incidents: vec![Incident {
            conversation: id,
            at: AT,
            updated_at: at,
            fields,
        }],
        ..Commit::default()
    })
}

#[tokio::test]
async fn a_call_counts_at_its_press_then_its_answer_across_a_restart() -> TestResult {
    let dir = TempDir::new("audit");
    let store = Store::open(&dir.0)?;
    let call = |state: &str, acknowledged: bool| {
        json!({"kind": "manager_call", "state": state, "location": "зал 1", "button": "Стол 12",
               "acknowledged": acknowledged})
    };
    step(&store, 1, AT, call("ringing", false), true)?;
    let counts = |s: &Store| {
        let t = s.audit_tallies(AT, AT + SLOT_MS);
        assert_eq!(t.len(), 1, "{t:?}");
        (t[0].1.calls, t[0].1.answered, t[0].1.complaints)
    };
    assert_eq!(counts(&store), (1, 0, 0));
    store.flush().await?;
    store.checkpoint()?;
    step(&store, 1, AT + 95_000, call("closed", true), false)?;
    let complaint = json!({"kind": "complaint", "state": "closed", "location": "зал 1",
                           "button": "Стол 12"});
    step(&store, 2, AT + 1_000, complaint, false)?;
    // A ward's call counts nothing here.
    step(&store, 3, AT, json!({"state": "ringing"}), true)?;
    assert_eq!(counts(&store), (1, 1, 1));
    store.flush().await?;
    drop(store);
    // The answer and the complaint are in the log after the checkpoint: replayed.
    let store = reopen(&dir.0)?;
    assert_eq!(counts(&store), (1, 1, 1));
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert_eq!(verified.counts.get("audit tallies"), Some(&1));
    Ok(())
}
