//! Ids across restarts (`Store::next_id`): dense after a clean stop, never one a durable
//! record holds after a crash, and above sled's counter for a store from before the id mark.

use super::tests::{TempDir, TestResult, conv, open_one, out, reopen};
use super::*;

/// Takes `n` ids.
fn take(store: &Store, n: usize) -> Result<Vec<u64>, StoreError> {
    (0..n).map(|_| store.next_id()).collect()
}

/// A store whose writer writes only when asked: what a crash keeps depends on the calls.
fn simulated(dir: &TempDir) -> Result<Store, StoreError> {
    Store::open_simulated(&dir.0, &jiff::tz::TimeZone::UTC)
}

// See: issue 12, "conversation ids jump to 2000001 after a restart".
#[test]
fn issue_12_ids_stay_dense_across_a_clean_restart() -> TestResult {
    let dir = TempDir::new("ids-dense");
    {
        let store = Store::open(&dir.0)?;
        let ids = take(&store, 3)?;
        assert_eq!(ids, [1, 2, 3]);
        for id in ids {
            open_one(&store, conv(id, "survey", &["998901234567"], 1_000))?;
        }
        // sled's counter keeps up: an older smsflow, which takes its next id there, would
        // not hand out 1 to 3 again.
        assert!(store.inner.db.generate_id()? + 1 > 3);
    }
    {
        let store = reopen(&dir.0)?;
        assert_eq!(store.next_id()?, 4);
        // Handed out but never committed: still not handed out again after a clean stop.
    }
    let store = reopen(&dir.0)?;
    assert_eq!(store.next_id()?, 5);
    assert!(store.conversation(3)?.is_some());
    Ok(())
}

#[test]
fn after_a_crash_the_ids_of_durable_steps_are_not_handed_out_again() -> TestResult {
    let dir = TempDir::new("ids-crash");
    {
        let store = simulated(&dir)?;
        for id in take(&store, 3)? {
            open_one(&store, conv(id, "survey", &["998901234567"], 1_000))?;
        }
        store.checkpoint()?;
        // After the checkpoint: 4 is lost, 5 and its message 6 are durable in the log, 7
        // is taken by a step that never reaches the disk.
        let [_, c, m] = take(&store, 3)?[..] else {
            unreachable!("three ids")
        };
        store.commit(Commit {
            conversation: Some(conv(c, "survey", &["998901234567"], 2_000)),
            outbox: vec![out(m, c)],
            ..Commit::default()
        })?;
        store.flush_sync()?;
        let lost = store.next_id()?;
        open_one(&store, conv(lost, "survey", &["998907777777"], 3_000))?;
        store.simulate_crash();
    }
    let store = reopen(&dir.0)?;
    assert!(store.conversation(5)?.is_some(), "replayed from the log");
    assert!(store.conversation(7)?.is_none(), "never durable");
    // One past the highest id of a durable record: 7 comes again, it is held by nothing.
    assert_eq!(store.next_id()?, 7);
    Ok(())
}

#[test]
fn after_a_crash_ids_handed_out_before_the_checkpoint_are_not_handed_out_again() -> TestResult {
    let dir = TempDir::new("ids-checkpoint");
    {
        let store = simulated(&dir)?;
        let ids = take(&store, 10)?;
        open_one(&store, conv(ids[0], "survey", &["998901234567"], 1_000))?;
        store.checkpoint()?;
        store.simulate_crash();
    }
    let store = reopen(&dir.0)?;
    assert_eq!(store.next_id()?, 11);
    Ok(())
}

#[test]
fn ids_a_commit_picks_itself_are_not_handed_out() -> TestResult {
    let store = Store::temporary()?;
    open_one(&store, conv(41, "survey", &["998901234567"], 1_000))?;
    assert_eq!(store.next_id()?, 42);
    Ok(())
}

#[test]
fn a_store_from_before_the_id_mark_continues_above_sleds_counter() -> TestResult {
    let dir = TempDir::new("ids-legacy");
    {
        let store = Store::open(&dir.0)?;
        for id in take(&store, 3)? {
            open_one(&store, conv(id, "survey", &["998901234567"], 1_000))?;
        }
        store.checkpoint()?;
        // What an earlier smsflow left: a checkpoint without the mark. (The stop writes it
        // again only when ids moved since.)
        assert!(store.inner.cold.remove(keys::IDS)?.is_some());
        store.flush_sync()?;
    }
    let first = {
        let store = reopen(&dir.0)?;
        let id = store.next_id()?;
        // sled restarts its counter twice its persist interval (1 000 000) above the last
        // value it persisted: earlier smsflows' ids are all below.
        assert!(id > 2_000_000, "{id}");
        assert!(store.conversation(3)?.is_some());
        id
    };
    // The jump happens once: the mark is kept from then on.
    let store = reopen(&dir.0)?;
    assert_eq!(store.next_id()?, first + 1);
    Ok(())
}
