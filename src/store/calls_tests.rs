//! The webhook queue and the reply-code and join-key indexes: through steps, checkpoints and a
//! crash, as the flow engine and the delivery worker use them.

use super::tests::{TempDir, TestResult, conv, open_one, reopen};
use super::*;

fn call(id: u64, conversation: ConversationId, seq: u32) -> WebhookCall {
    WebhookCall {
        id,
        webhook: "servicedesk".into(),
        conversation,
        flow: "escalation".into(),
        seq,
        created_at: 1_000,
        body: format!(
            r#"{{"webhook":"servicedesk","conversation":{conversation},"payload":{{}}}}"#
        ),
    }
}

fn outcome(call: &WebhookCall, status: &str) -> WebhookOutcome {
    WebhookOutcome {
        call: call.id,
        conversation: call.conversation,
        webhook: call.webhook.clone(),
        at: 2_000,
        status: status.into(),
    }
}

#[test]
fn a_queued_call_survives_a_crash_and_leaves_once_finished() -> TestResult {
    let dir = TempDir::new("webhooks");
    let (a, b) = (call(11, 1, 1), call(12, 1, 2));
    {
        let store = Store::open(&dir.0)?;
        store.commit(Commit {
            conversation: Some(conv(1, "escalation", &["998901111111"], 1_000)),
            webhooks: vec![a.clone()],
            ..Commit::default()
        })?;
        store.checkpoint()?;
        store.commit(Commit {
            webhooks: vec![b.clone()],
            ..Commit::default()
        })?;
        store.flush_sync()?;
        store.simulate_crash();
    }
    let store = reopen(&dir.0)?;
    assert_eq!(store.webhooks_after(0, 10), [a.clone(), b.clone()]);
    assert_eq!(
        store.webhooks_after(a.id, 10),
        vec![b.clone()],
        "after a cursor"
    );
    assert_eq!(b.idempotency_key(), "1-2");
    store.webhooks_finished(&[outcome(&a, "delivered (HTTP 200, attempt 2)")])?;
    store.webhooks_finished(&[outcome(&a, "delivered again")])?;
    assert_eq!(store.webhooks_after(0, 10), vec![b.clone()]);
    assert_eq!(store.webhooks_len(), 1);
    let statuses: Vec<String> = store
        .timeline(1)?
        .into_iter()
        .map(|e| e.status.to_string())
        .collect();
    assert_eq!(
        statuses,
        ["delivered (HTTP 200, attempt 2)"],
        "recorded once"
    );
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    // An id a queued call holds is never handed out again.
    assert!(store.next_id()? > b.id);
    Ok(())
}

#[test]
fn open_conversations_are_found_by_reply_code_and_join_key_while_open() -> TestResult {
    let store = Store::temporary()?;
    let keyed = |id, code, join: &str| Conversation {
        reply_code: Some(code),
        join_key: Some(join.to_owned()),
        ..conv(id, "escalation", &["998901111111"], 1_000 + id as i64)
    };
    open_one(&store, keyed(1, 100, "12@PC"))?;
    open_one(&store, keyed(2, 101, "20@PC"))?;
    open_one(&store, conv(3, "survey", &["998901111111"], 1_003))?;
    assert_eq!(store.code_holder("escalation", 100), Some(1));
    assert_eq!(store.code_holder("survey", 100), None, "codes are per flow");
    assert_eq!(store.join_holder("escalation", "20@PC"), Some(2));
    assert_eq!(store.holding_code(&[3, 2, 1], 101), [2]);
    // Closed, it lets go of both; a newer holder of a key keeps it when the older closes.
    let mut closed = keyed(1, 100, "12@PC");
    closed.status = ConversationStatus::Finished {
        outcome: "resolved".into(),
    };
    open_one(&store, keyed(4, 102, "20@PC"))?;
    open_one(&store, closed)?;
    assert_eq!(store.code_holder("escalation", 100), None);
    assert_eq!(store.join_holder("escalation", "12@PC"), None);
    assert_eq!(store.join_holder("escalation", "20@PC"), Some(4));
    let mut closed = keyed(2, 101, "20@PC");
    closed.status = ConversationStatus::Finished {
        outcome: "resolved".into(),
    };
    open_one(&store, closed)?;
    assert_eq!(store.join_holder("escalation", "20@PC"), Some(4));
    assert_eq!(store.holding_code(&[1, 2, 4], 101), Vec::<u64>::new());
    Ok(())
}
