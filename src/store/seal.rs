//! The seal: the high-water mark of the store's durable commits, kept outside sled, and the
//! check at open that the store recovered at least that much.
//!
//! Why: sled 0.34 recovers its log up to the first message whose checksum fails and drops the
//! rest without an error (a damaged sector reads as "the log ended here"). A damaged store
//! then opens as an older one: ratings gone, conversations back in an earlier step, MTs that
//! were sent back in the outbox. Measured on 300-survey stores with 4 KiB of random bytes at
//! offset 64 KiB of sled's `db`: some opened with nothing, some with part, some made sled
//! panic while recovering, some were untouched (the bytes hit dead space).
//!
//! The writer calls [`Seal::advance`] after each durable flush and before it answers the
//! flush's waiters, so every MO acknowledged, HTTP event answered and MT released is at or
//! below the seal. At open, a store whose checkpoint plus log reaches less than the seal, or
//! whose log has a hole, or that sled or our decoding cannot read, is refused with
//! [`StoreError::DataLoss`] instead of starting as if nothing happened.
//!
//! The file (`smsflow.seal` in the data directory) is two 512-byte slots, each a whole record
//! with its own checksum, written in turn with a positioned write and `fdatasync`: the file
//! never changes size (nothing for the file system to journal), and a write torn by a power
//! cut spoils only the slot being written. The newest valid slot (by generation, not by seq:
//! accepting a loss seals lower) is the seal. A seal is only ever a lower bound of what sled
//! has durably, so a crash at any point never raises a false alarm.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The seal's file name in the data directory.
pub const FILE: &str = "smsflow.seal";

const MAGIC: &[u8; 8] = b"SMSFSEAL";
const FORMAT: u32 = 1;
/// One slot per sector, so a torn write cannot reach the other slot.
const SLOT: usize = 512;
/// magic(8) format(4) reserved(4) generation(8) seq(8) crc32 of the 32 bytes before (4).
const RECORD: usize = 36;

/// What is wrong with a store at open; see [`StoreError::DataLoss`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The checkpoint and the log reach commit `recovered`; `sealed` were made durable.
    Behind { recovered: u64, sealed: u64 },
    /// The log after the checkpoint has commit `after`, then `next`: the ones between are
    /// missing (`sealed`: the seal, when there is one).
    Gap {
        after: u64,
        next: u64,
        sealed: Option<u64>,
    },
    /// sled or this build cannot read the store at all (`detail`: sled's error, the entry that
    /// does not decode, or sled's panic).
    Unreadable { detail: String, sealed: Option<u64> },
    /// The seal file itself is damaged: whether commits are missing cannot be told.
    Seal { detail: String },
    /// The checkpoint reads back with other counts than it wrote (`differences`, each
    /// "N what where it wrote M"; see `state/census.rs`): pages of sled's file are damaged
    /// or came back older.
    Census {
        differences: Vec<String>,
        sealed: Option<u64>,
    },
}

impl Damage {
    /// The message of [`StoreError::DataLoss`]: what is missing and what to do.
    pub(super) fn message(&self, path: &Path) -> String {
        let dir = path.display();
        let restore = "Restore a backup with `smsflow store restore DIR`";
        let accept = "or start anyway with `smsflow run --accept-data-loss` (the missing steps \
                      are lost for good, and messages already sent may be sent again)";
        match self {
            Damage::Behind { recovered, sealed } => format!(
                "the store in {dir} recovered commits up to {recovered} but {sealed} were made \
                 durable: {} commits (conversations, ratings, outbox changes) are missing, \
                 probably from disk damage. {restore}, {accept}",
                sealed - recovered
            ),
            Damage::Gap {
                after,
                next,
                sealed,
            } => format!(
                "the store in {dir} is missing commits {}..={} in the middle of its log{}, \
                 probably from disk damage. {restore}, {accept}; the store then goes back to \
                 commit {after}",
                after + 1,
                next - 1,
                sealed.map_or(String::new(), |s| format!(" ({s} were made durable)")),
            ),
            Damage::Unreadable { detail, sealed } => format!(
                "the store in {dir} is damaged and cannot be read ({detail}){}, probably from \
                 disk damage. {restore}, or move {dir} aside to start with an empty store",
                sealed.map_or(String::new(), |s| format!(
                    "; {s} commits were made durable"
                )),
            ),
            Damage::Census {
                differences,
                sealed,
            } => format!(
                "the store in {dir} reads back {} at its last checkpoint{}: parts of sled's \
                 file are damaged or came back older than they were written, probably from \
                 disk damage. {restore}, or start anyway with `smsflow run \
                 --accept-data-loss` (what is missing is lost for good, and an event id \
                 whose key was lost starts a new conversation)",
                differences.join(", "),
                sealed.map_or(String::new(), |s| format!(
                    " ({s} commits were made durable)"
                )),
            ),
            Damage::Seal { detail } => format!(
                "the seal of the store in {dir} ({FILE}) is damaged ({detail}), so whether \
                 commits are missing cannot be told. Check the store with `smsflow store \
                 verify`, then restore a backup with `smsflow store restore DIR` or seal it \
                 as it is with `smsflow run --accept-data-loss`"
            ),
        }
    }

    /// Whether `--accept-data-loss` can open the store anyway (a store sled cannot read
    /// cannot be opened at all).
    pub fn acceptable(&self) -> bool {
        !matches!(self, Damage::Unreadable { .. })
    }
}

/// The seal file, open for writing; the writer thread owns it.
#[derive(Debug)]
pub(super) struct Seal {
    file: File,
    path: PathBuf,
    generation: u64,
    seq: u64,
}

impl Seal {
    /// The seal in `dir`: `Ok(None)` when there is none (a new store, or one from an
    /// older smsflow); an error when the file is there but no slot is valid.
    pub fn open(dir: &Path) -> Result<Option<Seal>, Damage> {
        let path = dir.join(FILE);
        let damaged = |detail: String| Damage::Seal { detail };
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(damaged(format!("cannot open it: {e}"))),
        };
        let mut bytes = Vec::with_capacity(2 * SLOT);
        file.read_to_end(&mut bytes)
            .map_err(|e| damaged(format!("cannot read it: {e}")))?;
        let newest = (bytes.chunks(SLOT))
            .take(2)
            .filter_map(decode)
            .max_by_key(|&(generation, _)| generation);
        let Some((generation, seq)) = newest else {
            return Err(damaged(format!(
                "{} bytes and no slot with a valid checksum",
                bytes.len()
            )));
        };
        Ok(Some(Seal {
            file,
            path,
            generation,
            seq,
        }))
    }

    /// Creates the seal in `dir` at `seq` (a new store, an older store's first open, a
    /// restore): written whole under a temporary name, then renamed, the directory synced.
    pub fn create(dir: &Path, seq: u64) -> Result<Seal, StoreError> {
        let path = dir.join(FILE);
        let temporary = dir.join(format!("{FILE}.new"));
        let io = |what: &str, e: std::io::Error| {
            StoreError::Durability(format!("cannot {what} {}: {e}", path.display()))
        };
        let mut bytes = vec![0u8; 2 * SLOT];
        bytes[..RECORD].copy_from_slice(&encode(1, seq));
        let mut file = File::create(&temporary).map_err(|e| io("create", e))?;
        file.write_all(&bytes).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("sync", e))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(|e| io("rename into", e))?;
        sync_dir(dir).map_err(|e| io("sync the directory of", e))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("open", e))?;
        Ok(Seal {
            file,
            path,
            generation: 1,
            seq,
        })
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Records that commits up to `seq` are durable; nothing to do when the seal is there
    /// already. Returns once the seal is on the medium.
    pub fn advance(&mut self, seq: u64) -> Result<(), String> {
        if seq <= self.seq {
            return Ok(());
        }
        self.write(seq)
    }

    /// Seals at `seq` even below the current seal (`--accept-data-loss`, a restore).
    pub fn reset(&mut self, seq: u64) -> Result<(), String> {
        self.write(seq)
    }

    fn write(&mut self, seq: u64) -> Result<(), String> {
        let generation = self.generation + 1;
        let offset = (generation % 2) * SLOT as u64;
        let record = encode(generation, seq);
        (self.file.seek(SeekFrom::Start(offset)))
            .and_then(|_| self.file.write_all(&record))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write the seal {}: {e}", self.path.display()))?;
        self.generation = generation;
        self.seq = seq;
        Ok(())
    }
}

fn encode(generation: u64, seq: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..8].copy_from_slice(MAGIC);
    r[8..12].copy_from_slice(&FORMAT.to_be_bytes());
    r[16..24].copy_from_slice(&generation.to_be_bytes());
    r[24..32].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32fast::hash(&r[..32]);
    r[32..].copy_from_slice(&crc.to_be_bytes());
    r
}

/// (generation, seq) of a valid slot.
fn decode(slot: &[u8]) -> Option<(u64, u64)> {
    let r = slot.get(..RECORD)?;
    let crc = u32::from_be_bytes(r[32..36].try_into().ok()?);
    if &r[..8] != MAGIC || crc32fast::hash(&r[..32]) != crc {
        return None;
    }
    if u32::from_be_bytes(r[8..12].try_into().ok()?) != FORMAT {
        return None;
    }
    let generation = u64::from_be_bytes(r[16..24].try_into().ok()?);
    let seq = u64::from_be_bytes(r[24..32].try_into().ok()?);
    Some((generation, seq))
}

/// Makes a rename or a new file in `dir` durable (a no-op where directories cannot be
/// opened, as on Windows).
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all(),
        Err(_) if cfg!(windows) => Ok(()),
        Err(e) => Err(e),
    }
}

/// What the log after the checkpoint reaches, for [`check`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Recovered {
    /// The last commit the checkpoint and the log hold (0: none).
    pub seq: u64,
    /// A hole in the log: (the last commit before it, the first after it).
    pub gap: Option<(u64, u64)>,
}

/// The damage, if any, of a store that recovered `recovered` against its seal.
pub(super) fn check(recovered: Recovered, sealed: Option<u64>) -> Option<Damage> {
    if let Some((after, next)) = recovered.gap {
        return Some(Damage::Gap {
            after,
            next,
            sealed,
        });
    }
    match sealed {
        Some(sealed) if recovered.seq < sealed => Some(Damage::Behind {
            recovered: recovered.seq,
            sealed,
        }),
        _ => None,
    }
}

/// What [`Seal::open`] found, for [`settle`].
pub(super) enum Found {
    Sealed(Seal),
    /// A new store, or one written by an smsflow without seals.
    Missing,
    /// Damaged, and the operator accepted that (`--accept-data-loss`).
    Damaged,
}

impl Found {
    pub fn seq(&self) -> Option<u64> {
        match self {
            Found::Sealed(seal) => Some(seal.seq()),
            Found::Missing | Found::Damaged => None,
        }
    }
}

/// The seal the writer goes on with, once the store in `path` recovered `recovered` (`log`:
/// its log tree; `has_data`: it is not a new store): refuses damage unless `accept`, in which
/// case the store is sealed where it is (after dropping the log past a hole) with a warning.
pub(super) fn settle(
    path: &Path,
    found: Found,
    recovered: Recovered,
    log: &sled::Tree,
    has_data: bool,
    accept: bool,
) -> Result<Seal, StoreError> {
    let damage = check(recovered, found.seq());
    let damaged = damage.is_some();
    if let Some(damage) = damage {
        if !accept {
            return Err(StoreError::DataLoss {
                path: path.to_path_buf(),
                damage,
            });
        }
        tracing::warn!(
            "store: DATA LOSS ACCEPTED (--accept-data-loss): {}; going on from commit {}",
            damage.message(path),
            recovered.seq
        );
        if recovered.gap.is_some() {
            // The groups after the hole were written on top of the missing ones: they cannot
            // be applied, and the writer reuses their seqs.
            let mut batch = sled::Batch::default();
            for entry in log.range(super::keys::log(recovered.seq + 1)..) {
                batch.remove(entry?.0);
            }
            log.apply_batch(batch)?;
            log.flush()?;
        }
    }
    match found {
        Found::Sealed(mut seal) => {
            if damaged {
                seal.reset(recovered.seq).map_err(StoreError::Durability)?;
            }
            Ok(seal)
        }
        Found::Missing | Found::Damaged => {
            if matches!(found, Found::Missing) && has_data {
                tracing::info!(
                    "store: {} has no {FILE} (written by an smsflow before seals); sealing it \
                     at commit {}",
                    path.display(),
                    recovered.seq
                );
            }
            Seal::create(path, recovered.seq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TempDir;

    #[test]
    fn the_newest_valid_slot_is_the_seal_and_a_torn_slot_falls_back() {
        let dir = TempDir::new("seal");
        std::fs::create_dir_all(&dir.0).unwrap();
        assert!(Seal::open(&dir.0).unwrap().is_none());
        let mut seal = Seal::create(&dir.0, 5).unwrap();
        seal.advance(7).unwrap();
        seal.advance(6).unwrap();
        assert_eq!(Seal::open(&dir.0).unwrap().unwrap().seq(), 7);
        // Accepting a loss seals lower; the generation, not the seq, says which is newer.
        seal.reset(3).unwrap();
        assert_eq!(Seal::open(&dir.0).unwrap().unwrap().seq(), 3);
        seal.advance(4).unwrap();
        // A torn write of the newest slot: the other one (one seal behind) stands.
        let path = dir.0.join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let newest = (seal.generation % 2) as usize * SLOT;
        bytes[newest + 25] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Seal::open(&dir.0).unwrap().unwrap().seq(), 3);
        // Both spoilt: damage, not silence.
        bytes[(1 - seal.generation % 2) as usize * SLOT + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(Seal::open(&dir.0), Err(Damage::Seal { .. })));
    }

    #[test]
    fn behind_or_a_gap_is_damage_and_ahead_is_not() {
        let at = |seq| Recovered { seq, gap: None };
        assert_eq!(check(at(9), Some(9)), None);
        assert_eq!(check(at(12), Some(9)), None, "a crash after the flush");
        assert_eq!(check(at(3), None), None);
        assert_eq!(
            check(at(4), Some(9)),
            Some(Damage::Behind {
                recovered: 4,
                sealed: 9
            })
        );
        let gap = Recovered {
            seq: 9,
            gap: Some((4, 7)),
        };
        assert!(matches!(
            check(gap, Some(9)),
            Some(Damage::Gap {
                after: 4,
                next: 7,
                ..
            })
        ));
        let message = Damage::Behind {
            recovered: 1834,
            sealed: 2301,
        }
        .message(Path::new("data"));
        assert!(message.starts_with(
            "the store in data recovered commits up to 1834 but 2301 were made durable: 467 \
             commits"
        ));
        assert!(message.contains("smsflow store restore DIR"), "{message}");
        assert!(message.contains("--accept-data-loss"), "{message}");
    }
}
