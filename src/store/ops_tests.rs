//! `verify`, `backup` and `restore` on real directories: a clean store verifies, a broken
//! tally or an undecodable value is named; a backup taken under writes holds every step
//! acknowledged before it; a restore replaces a damaged store and keeps the old one aside.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::backup::{self, BackupError};
use super::recovery_tests::survey;
use super::tests::{TempDir, TestResult, conv, open_one, out, reopen, timer};
use super::*;

/// For tests that mix store and backup errors.
type OpsResult = Result<(), Box<dyn std::error::Error>>;

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
            pending_ack: vec![MoMark::new("998901234567", "5700", 0, None, None, b"5")],
            parts: vec![],
            received_at: 2_500,
        }),
        ..Commit::default()
    })?;
    store.set_live_script("survey", "aa", "// v1")?;
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
    assert_eq!(verified.counts["live flow versions"], 1);
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

/// The reports of every survey flow read the tallies' sends and deliveries: fewer stored than
/// the conversations sent is a wrong report too, not only more.
#[test]
fn a_tally_of_sends_that_disagrees_with_the_records_fails_verify() -> TestResult {
    let store = Store::temporary()?;
    populate(&store, 12)?;
    store.checkpoint()?;
    let (key, mut wrong) = (store.inner.cold.scan_prefix([keys::TALLY]))
        .map(|entry| {
            let (key, value) = entry.unwrap();
            let t: tally::Tally = keys::decode(keys::STATE, &key, &value).unwrap();
            (key.to_vec(), t)
        })
        .find(|(_, t)| t.sent > 0)
        .expect("the surveys' sends are counted");
    assert_eq!((wrong.sent, wrong.delivered), (12, 12));
    for (sent, delivered) in [(11, 12), (12, 11)] {
        (wrong.sent, wrong.delivered) = (sent, delivered);
        put_raw(&store, &key, &keys::encode(&key, &wrong)?)?;
        let verified = store.verify()?;
        let expected = format!(
            "tallies of flow \"survey\" on 1970-01-01: {sent} sent and {delivered} delivered \
             stored, but the conversations count 12 sent and 12 delivered"
        );
        assert!(
            verified.problems.contains(&expected),
            "{:?}",
            verified.problems
        );
    }
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

#[test]
fn a_backup_under_writes_holds_every_step_acknowledged_before_it() -> OpsResult {
    let dir = TempDir::new("backup-live");
    let (backup_dir, restored) = (dir.0.join("backup"), dir.0.join("restored"));
    let store = Store::open(dir.0.join("data"))?;
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (store, acknowledged, stop) = (store.clone(), acknowledged.clone(), stop.clone());
        move || -> Result<(), StoreError> {
            let mut id = 0;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                survey(&store, id, 100_000 + id)?;
                store.flush_sync()?;
                acknowledged.lock().unwrap().push(id);
            }
            Ok(())
        }
    });
    while acknowledged.lock().unwrap().len() < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before: Vec<u64> = acknowledged.lock().unwrap().clone();
    let info = store.backup(&backup_dir)?;
    let during = acknowledged.lock().unwrap().len() - before.len();
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap()?;
    assert!(
        matches!(store.backup(&backup_dir), Err(BackupError::NotEmpty { .. })),
        "a backup never goes into a directory with something in it"
    );
    let total = acknowledged.lock().unwrap().len();
    drop(store);

    let done = backup::restore(&backup_dir, &restored, "t1")?;
    assert_eq!(done.backup, info);
    assert!(done.aside.is_none(), "nothing was there to move aside");
    assert!(done.verified.is_ok(), "{:?}", done.verified.problems);
    let store = reopen(&restored)?;
    let rated: std::collections::BTreeSet<u64> = (store.ratings(i64::MIN, i64::MAX)?.iter())
        .map(|r| r.conversation)
        .collect();
    for id in &before {
        assert!(
            rated.contains(id),
            "survey {id} was acknowledged before the backup"
        );
    }
    assert!(rated.len() <= total);
    println!(
        "backup: {} entries, {} bytes, {} steps acknowledged while it ran",
        info.entries, info.bytes, during
    );
    assert!(store.verify()?.is_ok());
    Ok(())
}

/// Bursts of 30 surveys, then 4 KiB of noise at 64 KiB of sled's file, until the store is
/// refused (where the noise lands varies from run to run; see `damage_tests.rs`).
fn damaged_after_backup(data: &Path, backup_dir: &Path) -> Result<Damage, StoreError> {
    for attempt in 0..20u64 {
        let _ = std::fs::remove_dir_all(data);
        let _ = std::fs::remove_dir_all(backup_dir);
        {
            let store = Store::open(data)?;
            for id in 1..=300 {
                survey(&store, id, 10_000 + id)?;
                if id % 30 == 0 {
                    store.flush_sync()?;
                }
                if id % 100 == 0 {
                    store.checkpoint()?;
                }
            }
            store.backup(backup_dir).expect("backup");
        }
        super::damage_tests::damage(data, 64 * 1024, 4096, attempt + 1);
        match reopen(data) {
            Err(StoreError::DataLoss { damage, .. }) => return Ok(damage),
            Ok(_) => continue,
            Err(e) => return Err(e),
        }
    }
    panic!("20 damaged stores and none refused");
}

#[test]
fn restoring_a_damaged_store_from_its_backup_opens_without_data_loss() -> OpsResult {
    let dir = TempDir::new("restore-damaged");
    let (data, backup_dir) = (dir.0.join("data"), dir.0.join("backup"));
    damaged_after_backup(&data, &backup_dir)?;
    // sled lets go of its lock a moment after the last handle drops.
    let mut tries = 0;
    let done = loop {
        match backup::restore(&backup_dir, &data, "20261201T000000Z") {
            Err(BackupError::InUse { .. }) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            done => break done?,
        }
    };
    let aside = done.aside.expect("the damaged store moved aside");
    assert_eq!(
        aside.file_name().unwrap(),
        "data.before-restore-20261201T000000Z"
    );
    assert!(
        aside.join("db").exists(),
        "the damaged store is kept, not deleted"
    );
    let store = reopen(&data)?;
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 300);
    assert_eq!(store.outbox_len(), 0, "no sent message back in the outbox");
    assert!(store.verify()?.is_ok());
    Ok(())
}

#[test]
fn backup_and_restore_refuse_what_would_lose_or_mix_data() -> OpsResult {
    let dir = TempDir::new("restore-refusals");
    let (data, backup_dir) = (dir.0.join("data"), dir.0.join("backup"));
    let store = Store::open(&data)?;
    populate(&store, 5)?;
    assert!(matches!(
        store.backup(&data.join("backup")),
        Err(BackupError::InsideStore { .. })
    ));
    assert!(!data.join("backup").exists());
    store.backup(&backup_dir).expect("backup");
    assert!(matches!(
        backup::restore(&backup_dir, &data, "t"),
        Err(BackupError::InUse { .. })
    ));
    drop(store);
    let file = backup_dir.join(backup::FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let refused = backup::restore(&backup_dir, &data, "t");
    assert!(
        matches!(refused, Err(BackupError::Damaged { .. })),
        "{refused:?}"
    );
    assert!(!dir.0.join("data.before-restore-t").exists());
    assert!(!dir.0.join("data.restoring-t").exists());
    assert_eq!(reopen(&data)?.ratings(i64::MIN, i64::MAX)?.len(), 5);
    Ok(())
}

#[test]
fn a_checkpoint_asked_for_during_a_backup_is_written_after_it() -> TestResult {
    let store = Store::temporary()?;
    populate(&store, 3)?;
    let paused = store.inner.writer.pause()?;
    let before = lock(&store.inner.state).checkpointed;
    survey(&store, 100, 20_000)?;
    store.flush_sync()?;
    let waiting = std::thread::spawn({
        let store = store.clone();
        move || store.checkpoint()
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!waiting.is_finished(), "it waits for the backup");
    assert_eq!(lock(&store.inner.state).checkpointed, before);
    drop(paused);
    waiting.join().unwrap()?;
    assert!(lock(&store.inner.state).checkpointed > before);
    Ok(())
}
