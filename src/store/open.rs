//! Opening a store: sled's directory, the seal, the schema, the checkpoint and the log
//! after it, the tallies' zone; and what opening finds wrong ([`StoreError::DataLoss`]).

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jiff::tz::TimeZone;

use super::log::Record;
use super::state::State;
use super::state::census::{self, Checked};
use super::{
    Damage, Inner, Millis, SLED_CACHE_BYTES, Store, StoreError, checkpoint, damage, keys, seal,
    tally, v1, writer,
};

/// How a store is opened.
#[derive(Debug, Clone, Copy)]
struct Options<'a> {
    /// The zone of the tallies' days (`None`: the one they were counted in).
    zone: Option<&'a TimeZone>,
    /// The writer also writes on its own timer (see [`Store::open_simulated`]).
    timed: bool,
    /// Open a damaged store anyway and seal it as it is ([`Store::open_in_accepting_loss`]).
    accept_loss: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            zone: None,
            timed: true,
            accept_loss: false,
        }
    }
}

/// Where a store lives: on disk with what was found of its seal, or in a temporary
/// directory, where nothing survives to be checked.
enum Place {
    Disk(seal::Found),
    Temporary,
}

/// What [`Store::recover`] read, for the writer to go on from.
struct Recovery {
    disk: writer::Disk,
    state: State,
    replayed: checkpoint::Replayed,
    /// The checkpoint's counts against its census.
    census: Checked,
}

impl Store {
    /// Creates or opens the store in directory `path`: checks (or records)
    /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION), migrates a version 1 store, loads the
    /// checkpoint and replays the log after it, and checks the result against the seal
    /// ([`StoreError::DataLoss`]).
    ///
    /// CSI tallies count days in the zone they were counted in (UTC for a new store); see
    /// [`Store::open_in`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path.as_ref(), Options::default())
    }

    /// [`Store::open`] with the tallies' days in `zone` (`service.timezone`): a store that
    /// counted in another zone (or before tallies) recounts them from the raw records first,
    /// with a progress line.
    pub fn open_in(path: impl AsRef<Path>, zone: &TimeZone) -> Result<Store, StoreError> {
        let options = Options {
            zone: Some(zone),
            ..Options::default()
        };
        Store::open_with(path.as_ref(), options)
    }

    /// [`Store::open_in`] for a deterministic simulation: the writer writes only when asked
    /// (a flush or a checkpoint), never on a timer, and checkpoints by record count alone, so
    /// what is on disk at a (simulated) crash depends only on the calls made.
    pub fn open_simulated(path: impl AsRef<Path>, zone: &TimeZone) -> Result<Store, StoreError> {
        let options = Options {
            zone: Some(zone),
            timed: false,
            ..Options::default()
        };
        Store::open_with(path.as_ref(), options)
    }

    /// [`Store::open_in`] for a store refused with [`StoreError::DataLoss`] that the operator
    /// chose to run as it is (`smsflow run --accept-data-loss`): opens what sled recovered
    /// (up to a hole in the log, dropping what follows it), seals it there and warns. What
    /// was lost stays lost; MTs whose sending was lost are sent again. A store sled cannot
    /// read at all ([`Damage::Unreadable`]) is still an error.
    pub fn open_in_accepting_loss(
        path: impl AsRef<Path>,
        zone: &TimeZone,
    ) -> Result<Store, StoreError> {
        let options = Options {
            zone: Some(zone),
            accept_loss: true,
            ..Options::default()
        };
        Store::open_with(path.as_ref(), options)
    }

    fn open_with(path: &Path, options: Options<'_>) -> Result<Store, StoreError> {
        let lost = |damage| StoreError::DataLoss {
            path: path.to_path_buf(),
            damage,
        };
        // For the message when sled cannot read the store at all.
        let unreadable = |detail| {
            let sealed = (seal::Seal::open(path).ok().flatten()).map(|s| s.seq());
            lost(Damage::Unreadable { detail, sealed })
        };
        // sled panics on some damage while recovering its log: that is damage too, not a
        // crash of the service without a word (nor a backtrace on stderr).
        wait_for_sled_lock(path, super::CLOSE_LIMIT);
        let opened = damage::quietly(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(SLED_CACHE_BYTES)
                .flush_every_ms(None)
                .open()
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(source @ sled::Error::Corruption { .. })) => {
                return Err(unreadable(damage::describe(&source.into())));
            }
            // What sled says of a config file (`conf`) it cannot parse: every store of
            // smsflow was written by sled 0.34, so that is damage too.
            Ok(Err(sled::Error::Unsupported(detail) | sled::Error::ReportableBug(detail))) => {
                return Err(unreadable(format!("sled: {detail}")));
            }
            Ok(Err(source)) => {
                // sled 0.34 reports a held lock only as an `Io(Other)` with this text.
                let locked = matches!(&source, sled::Error::Io(e)
                if e.to_string().contains("could not acquire lock"));
                return Err(if locked {
                    StoreError::Locked {
                        path: path.to_path_buf(),
                        source,
                    }
                } else {
                    StoreError::Open {
                        path: path.to_path_buf(),
                        source,
                    }
                });
            }
            Err(panic) => {
                return Err(unreadable(format!(
                    "sled panicked while recovering: {panic}"
                )));
            }
        };
        // Read only now that sled's lock is ours: no other process writes the seal.
        let seal = match seal::Seal::open(path) {
            Ok(Some(seal)) => seal::Found::Sealed(seal),
            Ok(None) => seal::Found::Missing,
            Err(damage) if options.accept_loss => {
                tracing::warn!(
                    "store: {}; accepted (--accept-data-loss): sealing the store as it is",
                    damage.message(path)
                );
                seal::Found::Damaged
            }
            Err(damage) => return Err(lost(damage)),
        };
        Store::from_db(db, path.to_path_buf(), Place::Disk(seal), options)
    }

    /// A store in a temporary directory that sled removes when the last handle drops: for
    /// tests and `smsflow check`.
    pub fn temporary() -> Result<Store, StoreError> {
        Store::temporary_with(Options::default())
    }

    /// [`Store::temporary`] counting its tallies' days in `zone`.
    pub fn temporary_in(zone: &TimeZone) -> Result<Store, StoreError> {
        Store::temporary_with(Options {
            zone: Some(zone),
            ..Options::default()
        })
    }

    fn temporary_with(options: Options<'_>) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .flush_every_ms(None)
            .open()?;
        Store::from_db(db, PathBuf::from("<temporary>"), Place::Temporary, options)
    }

    /// On disk, `path` is sled's directory, whose log the writer `fdatasync`s, and where the
    /// seal is checked and kept.
    fn from_db(
        db: sled::Db,
        path: PathBuf,
        place: Place,
        options: Options<'_>,
    ) -> Result<Store, StoreError> {
        let (recovery, seal, sealed) = match place {
            Place::Temporary => (Store::recover(&db, &path, None, options)?, None, None),
            Place::Disk(found) => {
                let sealed = found.seq();
                let recovery = Store::recover_on_disk(&db, &path, sealed, options)?;
                let recovered = seal::Recovered {
                    seq: recovery.replayed.next - 1,
                    gap: recovery.replayed.gap,
                };
                let has_data = recovered.seq > 0 || !recovery.disk.state.is_empty();
                let log = &recovery.disk.log;
                let seal =
                    seal::settle(&path, found, recovered, log, has_data, options.accept_loss)?;
                (recovery, Some(seal), sealed)
            }
        };
        let Recovery {
            mut disk,
            state,
            replayed,
            census,
        } = recovery;
        settle_census(&path, &disk.state, census, sealed, options.accept_loss)?;
        disk.seal = seal;
        let recount = state.tally_zone.as_deref() != Some(tally::zone_name(state.zone()).as_str());
        let cold = disk.state.clone();
        let state = Arc::new(Mutex::new(state));
        disk.next_seq = replayed.next;
        let reserve = disk.reserve.clone();
        let damage = disk.damage.clone();
        let writer = writer::Writer::start(disk, state.clone())?;
        let store = Store {
            inner: Arc::new(Inner {
                writer,
                state,
                db: ManuallyDrop::new(db),
                cold: ManuallyDrop::new(cold),
                path,
                reserve,
                damage,
            }),
        };
        if recount {
            store.recount_tallies()?;
        }
        Ok(store)
    }

    /// [`Store::recover`] of sled's directory `path` (`sealed`: its seal), where damage shows
    /// as sled's corruption error, a value that does not decode, or sled panicking on a page
    /// it cannot read: each a [`Damage::Unreadable`].
    fn recover_on_disk(
        db: &sled::Db,
        path: &Path,
        sealed: Option<u64>,
        options: Options<'_>,
    ) -> Result<Recovery, StoreError> {
        let recovered = damage::quietly(|| Store::recover(db, path, Some(path), options));
        let detail = match recovered {
            Ok(Ok(recovery)) => return Ok(recovery),
            Ok(Err(e)) if damage::is_damage(&e) => damage::describe(&e),
            Ok(Err(e)) => return Err(e),
            Err(panic) => format!("sled panicked while recovering: {panic}"),
        };
        Err(StoreError::DataLoss {
            path: path.to_path_buf(),
            damage: Damage::Unreadable { detail, sealed },
        })
    }

    /// Everything that reads the store at open: the schema (migrating a version 1 store),
    /// the checkpoint, the log after it. `dir`: sled's directory on disk.
    fn recover(
        db: &sled::Db,
        path: &Path,
        dir: Option<&Path>,
        Options { zone, timed, .. }: Options<'_>,
    ) -> Result<Recovery, StoreError> {
        v1::check_schema(db, path)?;
        let mut disk = writer::Disk::new(db.clone(), dir, 0)?;
        disk.timed = timed;
        let cold = disk.state.clone();
        let checkpointed = checkpoint::checkpointed(&cold)?;
        // The zone to count in: the one asked for, else the one counted in so far.
        let recorded: Option<String> = match cold.get(keys::TALLY_ZONE)? {
            Some(v) => Some(keys::decode(keys::STATE, keys::TALLY_ZONE, &v)?),
            None => None,
        };
        let zone = match (zone, &recorded) {
            (Some(zone), _) => zone.clone(),
            (None, Some(name)) => TimeZone::get(name).unwrap_or_else(|e| {
                tracing::warn!(
                    "store: tallies were counted in {name:?}, unknown here ({e}); counting in UTC"
                );
                TimeZone::UTC
            }),
            (None, None) => TimeZone::UTC,
        };
        let checkpointed_before = cold.contains_key(keys::CHECKPOINT)?;
        let mut state = State::new(cold, checkpointed, zone);
        state.load()?;
        let census = state.check_census(checkpointed)?;
        let replayed = checkpoint::replay(&disk.log, &mut state)?;
        if replayed.records > 0 {
            tracing::info!(
                records = replayed.records,
                "store: replayed the log after the checkpoint"
            );
        }
        if !state.has_id_mark() && checkpointed_before {
            // Checkpointed before the id mark existed: its ids came from sled's counter,
            // which restarts above every id it gave (see `Store::next_id`).
            state.raise_next_id(db.generate_id()?.saturating_add(1));
        }
        Ok(Recovery {
            disk,
            state,
            replayed,
            census,
        })
    }

    /// Every tally as the raw records (ratings, conversations and their timelines) count it in
    /// the store's zone; `progress`: log lines for a big store.
    pub(super) fn counted_tallies(
        &self,
        progress: bool,
    ) -> Result<BTreeMap<tally::TallyKey, tally::Tally>, StoreError> {
        let zone = self.state().zone().clone();
        let mut tallies: BTreeMap<tally::TallyKey, tally::Tally> = BTreeMap::new();
        let mut add = |key: tally::TallyKey, delta: tally::Delta| {
            tally::apply(tallies.entry(key).or_default(), &delta);
        };
        for r in self.ratings(Millis::MIN, Millis::MAX)? {
            let (key, delta) = tally::of_rating(&zone, &r);
            add(key, delta);
        }
        let ids = self.conversation_ids()?;
        let progress = progress && ids.len() > 10_000;
        if progress {
            tracing::info!(zone = %tally::zone_name(&zone), conversations = ids.len(), "store: counting CSI tallies from the raw records");
        }
        for (n, id) in ids.into_iter().enumerate() {
            if progress && n > 0 && n % 100_000 == 0 {
                tracing::info!(conversations = n, "store: counting CSI tallies");
            }
            let Some(c) = self.conversation(id)? else {
                continue;
            };
            for delta in tally::of_history(&c, &self.timeline(id)?) {
                add(tally::of_conversation(&zone, &c), delta);
            }
        }
        Ok(tallies)
    }

    /// Recounts every tally from the raw records (ratings, conversations and their
    /// timelines) in the store's zone: linear in the store, once per change of zone.
    fn recount_tallies(&self) -> Result<(), StoreError> {
        let zone = self.state().zone().clone();
        let name = tally::zone_name(&zone);
        let started = std::time::Instant::now();
        let tallies = self.counted_tallies(true)?;
        let tallies: Vec<(Vec<u8>, tally::Tally)> = (tallies.into_iter())
            .map(|(k, t)| (tally::key_bytes(&k), t))
            .collect();
        let n = tallies.len();
        self.write(Record::TalliesRebuilt {
            zone: name.clone(),
            tallies,
        })?;
        self.flush_sync()?;
        tracing::info!(zone = %name, tallies = n, seconds = started.elapsed().as_secs_f64(), "store: CSI tallies counted");
        Ok(())
    }
}

/// Acts on what the census check at open found (`state/census.rs`; `cold`: sled's state
/// tree, `sealed`: the seal): refuses a store that reads back other counts than its last
/// checkpoint wrote, unless `accept` (then it is counted as it is, with a warning), and
/// stores the counts of one that had no census.
fn settle_census(
    path: &Path,
    cold: &sled::Tree,
    checked: Checked,
    sealed: Option<u64>,
    accept: bool,
) -> Result<(), StoreError> {
    let counted = match checked {
        Checked::Matches => return Ok(()),
        Checked::Uncounted { counted, stale } => {
            if stale {
                tracing::warn!(
                    "store: the census of {} is of an earlier checkpoint (an smsflow without \
                     one wrote to the store since); counting the store as it is",
                    path.display()
                );
            }
            counted
        }
        Checked::Differs { counted, census } => {
            let damage = Damage::Census {
                differences: counted.differences(&census),
                sealed,
            };
            if !accept {
                return Err(StoreError::DataLoss {
                    path: path.to_path_buf(),
                    damage,
                });
            }
            tracing::warn!(
                "store: DATA LOSS ACCEPTED (--accept-data-loss): {}; counting the store as \
                 it is",
                damage.message(path)
            );
            counted
        }
    };
    census::store(cold, &counted)
}

/// Waits, at most `limit`, until no handle holds the lock of the sled store at `path` (its
/// `db` file). sled lets go of that lock from its IO threads, a moment after the last handle
/// of a store was dropped: a reopen in the same process (`store restore`, the tests; once one
/// failed "could not acquire lock" under load) could come first. Another process holding
/// the store still gets sled's error, after the wait.
pub(crate) fn wait_for_sled_lock(path: &Path, limit: std::time::Duration) {
    let Ok(file) = std::fs::File::open(path.join("db")) else {
        return; // no store there yet
    };
    // fs2's flock, the one sled takes (std's File::lock is newer than our MSRV).
    use fs2::FileExt;
    if FileExt::try_lock_exclusive(&file).is_ok() {
        let _ = FileExt::unlock(&file);
        return;
    }
    let (released, wait) = std::sync::mpsc::channel();
    // Blocks until the holder lets go; past the limit it is left behind, and lets go of the
    // lock as soon as it gets it.
    let waiter = std::thread::Builder::new()
        .name("smsflow-store-lock".into())
        .spawn(move || {
            if FileExt::lock_exclusive(&file).is_ok() {
                let _ = FileExt::unlock(&file);
            }
            let _ = released.send(());
        });
    if waiter.is_ok() {
        let _ = wait.recv_timeout(limit);
    }
}
