//! `verify` on real directories: a clean store verifies, a broken tally or an undecodable
//! value is named.

use super::recovery_tests::survey;
use super::tests::{TempDir, TestResult, conv, open_one, out, reopen, timer};
use super::*;

/// Surveys 1..=`n` (flushed in tens, a checkpoint halfway), an open escalation with a timer
/// and a queued message, an opt-out, a stored MO part and an MO mark: every table.
fn populate(store: &Store, n: u64) -> TestResult {
    for id in 1..=n {
        survey(store, id, 10_000 + id)?;
        if id % 10 == 0 {
            store.flush_sync()?;
        }
        if id == n / 2 {
            store.checkpoint()?;
        }
    }
    let open = n + 1;
    open_one(store, conv(open, "escalation", &["998909999999"], 2_500))?;
    store.commit(Commit {
        timers_set: vec![timer(open, "escalate", 60_000)],
        outbox: vec![out(90_000, open)],
        opt_outs: vec!["998907777777".into()],
        mo: Some(MoRecord {
            pending_ack: vec![MoMark::new("998901234567", "5700", 0, None, b"5")],
            parts: vec![],
        }),
        ..Commit::default()
    })?;
    store.put_part(&MoPart {
        source: "998901234567".into(),
        destination: "5700".into(),
        concat: MoConcat {
            reference: 7,
            total: 2,
            seq: 1,
        },
        data_coding: 0,
        payload: b"4 ".to_vec(),
    })?;
    store.flush_sync()
}

/// Writes raw bytes under `key` of the state tree, as damage or another program would,
/// behind the store's back (the state in memory keeps what it had).
fn put_raw(store: &Store, key: &[u8], value: &[u8]) -> TestResult {
    store.inner.cold.insert(key, value)?;
    Ok(())
}

fn first_key(store: &Store, tag: u8) -> Vec<u8> {
    let (key, _) = store.inner.cold.scan_prefix([tag]).next().unwrap().unwrap();
    key.to_vec()
}

#[test]
fn a_clean_store_verifies_and_counts_every_kind() -> TestResult {
    let dir = TempDir::new("verify-clean");
    let store = Store::open(&dir.0)?;
    populate(&store, 40)?;
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    assert_eq!(verified.counts["conversations"], 41);
    assert_eq!(verified.counts["ratings"], 40);
    assert_eq!(verified.counts["outbox messages"], 1);
    assert_eq!(verified.counts["MO parts"], 1);
    assert!(verified.counts["tallies"] > 0);
    drop(store);
    let verified = reopen(&dir.0)?.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    Ok(())
}

#[test]
fn a_wrong_tally_fails_verify_naming_its_key() -> TestResult {
    let store = Store::temporary()?;
    populate(&store, 12)?;
    store.checkpoint()?;
    let key = first_key(&store, keys::TALLY);
    let mut wrong: tally::Tally =
        keys::decode(keys::STATE, &key, &store.inner.cold.get(&key)?.unwrap())?;
    *wrong.scores.entry(5).or_default() += 1;
    put_raw(&store, &key, &keys::encode(&key, &wrong)?)?;
    let verified = store.verify()?;
    let named = format!("state/{}", show_key(&key));
    let recount = (verified.problems.iter())
        .find(|p| p.contains(&named) && p.contains("the ratings and conversations count"));
    assert!(recount.is_some(), "{:?}", verified.problems);
    Ok(())
}

#[test]
fn an_undecodable_value_fails_verify_naming_its_key() -> TestResult {
    let store = Store::temporary()?;
    populate(&store, 12)?;
    store.checkpoint()?;
    // A rating chunk: nothing reads it at open, so only verify (or a report) meets it.
    let key = first_key(&store, keys::COMMENTED);
    put_raw(&store, &key, b"\x01\xc1 not messagepack")?;
    let verified = store.verify()?;
    let named = format!("corrupt entry state/{}", show_key(&key));
    assert!(
        verified.problems.iter().any(|p| p.starts_with(&named)),
        "{:?}",
        verified.problems
    );
    assert!(
        (verified.problems.iter()).any(|p| p.starts_with("tallies not recounted")),
        "{:?}",
        verified.problems
    );
    Ok(())
}

#[test]
fn an_index_entry_without_its_record_fails_verify() -> TestResult {
    let store = Store::temporary()?;
    populate(&store, 3)?;
    store.checkpoint()?;
    let key = first_key(&store, keys::CREATED);
    store.inner.cold.remove(&key)?;
    let verified = store.verify()?;
    let named = format!("state/{}", show_key(&key));
    assert!(
        (verified.problems.iter())
            .any(|p| p.contains(&named) && p.contains("missing from the creation-time index")),
        "{:?}",
        verified.problems
    );
    Ok(())
}
