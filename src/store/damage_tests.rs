//! A damaged store is refused at open, never started as an older one; a store that is only
//! crashed, stopped or old is not (no false alarms); `--accept-data-loss` goes on from what is
//! left. See `seal.rs`.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use jiff::tz::TimeZone;

use super::recovery_tests::survey;
use super::tests::{TempDir, TestResult, reopen};
use super::*;

const SURVEYS: u64 = 300;

/// `len` bytes of a fixed LCG stream: random enough for sled's checksums, the same every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

/// Overwrites `len` bytes at `offset` of sled's `db` file in `dir` with noise.
pub(super) fn damage(dir: &Path, offset: u64, len: usize, seed: u64) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("db"))
        .unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&noise(seed, len)).unwrap();
    f.sync_all().unwrap();
}

/// `SURVEYS` surveys in `dir`, made durable `flush_every` at a time (one group commit for a
/// burst of replies, as the service does under load), with a checkpoint every
/// `checkpoint_every` surveys; a clean stop.
fn write_surveys(dir: &Path, flush_every: u64, checkpoint_every: u64) -> TestResult {
    let store = Store::open(dir)?;
    for i in 0..SURVEYS {
        survey(&store, i + 1, 10_000 + i)?;
        if (i + 1) % flush_every == 0 {
            store.flush_sync()?;
        }
        if (i + 1) % checkpoint_every == 0 {
            store.checkpoint()?;
        }
    }
    Ok(())
}

/// What a reopen of a damaged store gives: refused, or (when the bytes hit space sled no
/// longer uses) everything, exactly as it was. Never an older store.
fn refused_or_whole(dir: &Path) -> Result<Option<Damage>, StoreError> {
    match reopen(dir) {
        Err(StoreError::DataLoss { damage, .. }) => Ok(Some(damage)),
        Err(other) => panic!("neither data loss nor a store: {other}"),
        Ok(store) => {
            assert_eq!(
                store.ratings(i64::MIN, i64::MAX)?.len() as u64,
                SURVEYS,
                "a store that opens after damage has every rating"
            );
            assert_eq!(store.outbox_len(), 0, "no sent message back in the outbox");
            assert!(store.open_conversations(None)?.is_empty());
            Ok(None)
        }
    }
}

#[test]
fn four_kib_of_noise_at_64_kib_of_sleds_file_is_data_loss_never_a_silent_start() -> TestResult {
    // How sled's recovery meets the damage depends on where its segments are, which varies
    // from run to run. Measured on these stores before the seal, 3 runs each: bursts of 30
    // opened with 2 of 11 group commits or made sled panic ("tried to serialize
    // Uninitialized") in 8 of 9; a flush per survey (sled rewrote the start of its file)
    // was untouched. Each must now be refused or be whole.
    let mut refused = Vec::new();
    for (n, checkpoint_every) in [1_000, 100, 25].into_iter().enumerate() {
        let dir = TempDir::new("damage");
        write_surveys(&dir.0, 30, checkpoint_every)?;
        damage(&dir.0, 64 * 1024, 4096, n as u64 + 1);
        if let Some(damage) = refused_or_whole(&dir.0)? {
            let message = StoreError::DataLoss {
                path: dir.0.clone(),
                damage: damage.clone(),
            }
            .to_string();
            assert!(message.contains("smsflow store restore DIR"), "{message}");
            refused.push(damage);
        }
    }
    assert!(
        !refused.is_empty(),
        "the damage should have hit live data at least once"
    );
    Ok(())
}

#[test]
fn a_clean_reopen_or_a_crash_after_many_checkpoints_is_no_false_alarm() -> TestResult {
    let dir = TempDir::new("no-false-alarm");
    let mut id = 0;
    for round in 0..12 {
        let store = reopen(&dir.0)?;
        for _ in 0..40 {
            id += 1;
            survey(&store, id, 100_000 + id)?;
            if id % 3 == 0 {
                store.flush_sync()?;
            }
            if id % 17 == 0 {
                store.checkpoint()?;
            }
        }
        match round % 3 {
            // Killed with steps not yet flushed: they are lost, and were never sealed.
            0 => store.simulate_crash(),
            // Killed right after a flush.
            1 => {
                store.flush_sync()?;
                store.simulate_crash();
            }
            // A clean stop.
            _ => {}
        }
        drop(store);
        let store = reopen(&dir.0)?;
        assert!(store.ratings(i64::MIN, i64::MAX)?.len() as u64 <= id);
    }
    let sealed = seal::Seal::open(&dir.0).unwrap().expect("sealed").seq();
    let store = reopen(&dir.0)?;
    assert_eq!(lock(&store.inner.state).checkpointed, sealed);
    Ok(())
}

#[test]
fn a_store_behind_its_seal_is_refused_until_the_loss_is_accepted() -> TestResult {
    let dir = TempDir::new("behind");
    write_surveys(&dir.0, 1, 50)?;
    let recovered = seal::Seal::open(&dir.0).unwrap().expect("sealed").seq();
    // What disk damage that sled takes for the end of its log looks like from here.
    seal::Seal::open(&dir.0)
        .unwrap()
        .expect("sealed")
        .advance(recovered + 467)
        .unwrap();
    match reopen(&dir.0) {
        Err(StoreError::DataLoss {
            damage:
                Damage::Behind {
                    recovered: r,
                    sealed,
                },
            ..
        }) => assert_eq!((r, sealed), (recovered, recovered + 467)),
        other => panic!("{other:?}"),
    }
    let zone = TimeZone::UTC;
    let store = Store::open_in_accepting_loss(&dir.0, &zone)?;
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len() as u64, SURVEYS);
    survey(&store, 999, 99_999)?;
    store.flush_sync()?;
    drop(store);
    let store = reopen(&dir.0)?;
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len() as u64, SURVEYS + 1);
    Ok(())
}

#[test]
fn a_hole_in_the_log_is_data_loss_and_accepting_it_goes_back_to_before_the_hole() -> TestResult {
    let dir = TempDir::new("gap");
    let zone = TimeZone::UTC;
    {
        // A simulated store checkpoints by record count only: these stay in the log.
        let store = Store::open_simulated(&dir.0, &zone)?;
        for id in 1..=10 {
            survey(&store, id, 1_000 + id)?;
            store.flush_sync()?;
        }
        store.simulate_crash();
    }
    let groups = {
        super::open::wait_for_sled_lock(&dir.0, std::time::Duration::from_secs(5));
        let db = sled::open(&dir.0)?;
        let log = db.open_tree(keys::LOG)?;
        let seqs: Vec<u64> = (log.iter().keys())
            .map(|k| keys::trailing_u64(&k?))
            .collect::<Result<_, _>>()?;
        log.remove(keys::log(seqs[4]))?;
        db.flush()?;
        seqs
    };
    match reopen(&dir.0) {
        Err(StoreError::DataLoss {
            damage: Damage::Gap { after, next, .. },
            ..
        }) => assert_eq!((after, next), (groups[3], groups[5])),
        other => panic!("{other:?}"),
    }
    let store = Store::open_in_accepting_loss(&dir.0, &zone)?;
    // The first group holds the tallies counted at the first open, then every survey is one
    // group: the three before the hole are left.
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 3);
    survey(&store, 11, 1_011)?;
    store.flush_sync()?;
    drop(store);
    let store = reopen(&dir.0)?;
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len(), 4);
    Ok(())
}

#[test]
fn a_store_without_a_seal_is_sealed_and_a_damaged_seal_is_refused() -> TestResult {
    let dir = TempDir::new("unsealed");
    write_surveys(&dir.0, 1, 100)?;
    // As smsflow wrote it before seals.
    std::fs::remove_file(dir.0.join(seal::FILE)).unwrap();
    drop(reopen(&dir.0)?);
    let sealed = seal::Seal::open(&dir.0).unwrap().expect("sealed at open");
    assert!(sealed.seq() > 0);
    std::fs::write(dir.0.join(seal::FILE), noise(7, 1024)).unwrap();
    assert!(matches!(
        reopen(&dir.0),
        Err(StoreError::DataLoss {
            damage: Damage::Seal { .. },
            ..
        })
    ));
    drop(Store::open_in_accepting_loss(&dir.0, &TimeZone::UTC)?);
    let store = reopen(&dir.0)?;
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len() as u64, SURVEYS);
    Ok(())
}

/// The seal's price per group commit: a positioned write and an `fdatasync` of a small file,
/// next to sled's flush and `fdatasync` of its log. Prints; run with `--ignored --nocapture`.
#[test]
#[ignore]
fn seal_cost_per_flush() -> TestResult {
    const FLUSHES: u32 = 500;
    let dir = TempDir::new("seal-cost");
    let store = Store::open(&dir.0)?;
    let started = std::time::Instant::now();
    for i in 0..FLUSHES {
        store.commit(Commit {
            ratings: vec![super::tests::rating(1, i64::from(i), 5)],
            ..Commit::default()
        })?;
        store.flush_sync()?;
    }
    let with_seal = started.elapsed() / FLUSHES;
    drop(store);
    let mut seal = seal::Seal::open(&dir.0).unwrap().expect("sealed");
    let started = std::time::Instant::now();
    for i in 0..FLUSHES {
        seal.advance(seal.seq() + 1 + u64::from(i % 2)).unwrap();
    }
    let seal_alone = started.elapsed() / FLUSHES;
    println!("group commit with its seal: {with_seal:?}; the seal alone: {seal_alone:?}");
    Ok(())
}

/// Runs `change` on the state tree of the stopped store in `dir`, as sled's own API sees it
/// (what a page recovered from an older copy, or damaged past decoding, looks like).
fn in_sled(dir: &Path, change: impl FnOnce(&sled::Tree) -> sled::Result<()>) -> TestResult {
    super::open::wait_for_sled_lock(dir, std::time::Duration::from_secs(5));
    let db = sled::open(dir)?;
    change(&db.open_tree(keys::STATE)?)?;
    db.flush()?;
    Ok(())
}

/// The first `n` keys of `tag` in `state`.
fn first_keys(state: &sled::Tree, tag: u8, n: usize) -> sled::Result<Vec<sled::IVec>> {
    state.scan_prefix([tag]).keys().take(n).collect()
}

#[test]
fn event_ids_missing_from_the_checkpoint_are_refused_at_open_never_taken_for_new() -> TestResult {
    // Before the census a store whose idempotency index came back short opened as if
    // nothing happened, and an event id posted again started a second conversation.
    let dir = TempDir::new("census-event-keys");
    write_surveys(&dir.0, 30, 100)?;
    in_sled(&dir.0, |state| {
        for key in first_keys(state, keys::EVENT_KEY, 132)? {
            state.remove(key)?;
        }
        Ok(())
    })?;
    let damage = match reopen(&dir.0) {
        Err(StoreError::DataLoss { damage, .. }) => damage,
        other => panic!("{other:?}"),
    };
    let Damage::Census { differences, .. } = &damage else {
        panic!("{damage:?}");
    };
    assert_eq!(differences, &["168 event ids where it wrote 300"]);
    let message = damage.message(&dir.0);
    assert!(
        message.contains("reads back 168 event ids where it wrote 300"),
        "{message}"
    );
    assert!(message.contains("smsflow store restore DIR"), "{message}");
    assert!(message.contains("--accept-data-loss"), "{message}");

    // Accepted: counted as it is, and the next start is clean.
    drop(Store::open_in_accepting_loss(&dir.0, &TimeZone::UTC)?);
    let store = reopen(&dir.0)?;
    assert_eq!(store.event_conversation("survey", "call-300")?, Some(300));
    assert!(store.verify()?.is_ok(), "{:?}", store.verify()?.problems);
    Ok(())
}

#[test]
fn hot_conversations_or_messages_missing_from_the_checkpoint_are_refused_at_open() -> TestResult {
    let dir = TempDir::new("census-hot");
    {
        let store = Store::open(&dir.0)?;
        for id in 1..=20 {
            let c = super::tests::conv(id, "survey", &["998901234567"], 1_000);
            store.commit(Commit {
                conversation: Some(c),
                outbox: vec![super::tests::out(1_000 + id, id)],
                ..Commit::default()
            })?;
        }
    }
    in_sled(&dir.0, |state| {
        for tag in [keys::HOT, keys::OUTBOX, keys::CREATED] {
            for key in first_keys(state, tag, 3)? {
                state.remove(key)?;
            }
        }
        Ok(())
    })?;
    match reopen(&dir.0) {
        Err(StoreError::DataLoss {
            damage: Damage::Census { differences, .. },
            ..
        }) => assert_eq!(
            differences,
            [
                "17 conversations where it wrote 20",
                "17 open conversations where it wrote 20",
                "17 outbox messages where it wrote 20",
            ]
        ),
        other => panic!("{other:?}"),
    }
    Ok(())
}

#[test]
fn a_store_without_a_census_is_counted_at_its_first_open() -> TestResult {
    let dir = TempDir::new("census-missing");
    write_surveys(&dir.0, 30, 100)?;
    // As an smsflow before the census left it.
    in_sled(&dir.0, |state| state.remove(keys::CENSUS).map(|_| ()))?;
    drop(reopen(&dir.0)?);
    let store = reopen(&dir.0)?;
    survey(&store, SURVEYS + 1, 20_000)?;
    store.checkpoint()?;
    let verified = store.verify()?;
    assert!(verified.is_ok(), "{:?}", verified.problems);
    drop(store);
    let store = reopen(&dir.0)?;
    assert_eq!(store.conversation_ids()?.len() as u64, SURVEYS + 1);
    Ok(())
}

#[test]
fn a_value_that_does_not_decode_after_open_marks_the_store_damaged() -> TestResult {
    let dir = TempDir::new("damaged-read");
    write_surveys(&dir.0, 30, 100)?;
    // A closed conversation: nothing reads it at open.
    in_sled(&dir.0, |state| {
        state.insert(keys::conversation(7), &[keys::ENCODING_VERSION, 0xc1][..])?;
        Ok(())
    })?;
    let store = reopen(&dir.0)?;
    assert!(!store.is_damaged(), "the open reads no closed conversation");
    assert_eq!(store.conversation(8)?.map(|c| c.id), Some(8));
    let detail = match store.conversation(7) {
        Err(StoreError::Damaged { detail, .. }) => detail,
        other => panic!("{other:?}"),
    };
    assert!(
        detail.starts_with("reading conversation 7: corrupt entry state/c"),
        "{detail}"
    );
    let why = store.damage().expect("damaged");
    assert!(why.contains("smsflow store verify"), "{why}");
    assert!(why.contains("smsflow store restore DIR"), "{why}");

    // No more steps: a new event is refused, nothing is handed out to send or to fire.
    match survey(&store, SURVEYS + 1, 20_000) {
        Err(StoreError::Damaged { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(store.event_conversation("survey", "call-301")?, None);
    store.commit(Commit::default()).expect_err("refused");
    assert!(store.due_timers(i64::MAX, 10)?.is_empty());
    assert!(store.outbox(10)?.is_empty());
    // What is intact still reads, and what was applied before is still flushed.
    assert_eq!(store.event_conversation("survey", "call-9")?, Some(9));
    assert_eq!(store.ratings(i64::MIN, i64::MAX)?.len() as u64, SURVEYS);
    store.flush_sync()?;
    Ok(())
}

#[test]
fn verify_holds_the_census_against_what_it_reads() -> TestResult {
    let dir = TempDir::new("census-verify");
    write_surveys(&dir.0, 30, 100)?;
    let store = reopen(&dir.0)?;
    assert!(store.verify()?.is_ok());
    // The census itself came back older than the checkpoint's keys.
    store.inner.cold.insert(
        keys::CENSUS,
        keys::encode(
            keys::CENSUS,
            &state::census::Census {
                checkpoint: lock(&store.inner.state).checkpointed,
                conversations: 290,
                event_keys: 300,
                ..state::census::stored(&store.inner.cold)?.unwrap_or_default()
            },
        )?,
    )?;
    let problems = store.verify()?.problems;
    assert!(
        problems.contains(&"state/N (the census): 300 conversations where it wrote 290".into()),
        "{problems:?}"
    );
    Ok(())
}
