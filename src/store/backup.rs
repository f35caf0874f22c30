//! Backups of a store while it runs, and restores from them.
//!
//! A backup is one file, [`FILE`] in a new or empty directory: every entry of the store's
//! trees at one point in time, length-prefixed, with a CRC-32 over the whole file. The writer
//! makes everything durable and checkpointed, then holds sled's state tree and the log behind
//! it still (`writer.rs`, `Request::Pause`) while this copies them and steps go on into new
//! log groups. So a backup is the store as of the last durable group when it began: every
//! step acknowledged before the backup started is in it. Why a file of our own rather than a
//! copy of sled's directory: sled's files are not at rest while it has them open, and a
//! format of ours does not depend on sled's.
//!
//! A restore reads the backup twice: once to check it whole (header, lengths, checksum), then
//! into a new sled directory beside the data directory, sealed at the backup's seq, opened
//! and verified like any store. Only then is the data directory moved aside
//! (`<data_dir>.before-restore-<stamp>`, never deleted) and the new one moved in.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use super::seal::{self, Seal};
use super::{Store, StoreError, Verified, keys};

/// The backup's file name in its directory.
pub const FILE: &str = "smsflow.backup";

const MAGIC: &[u8; 16] = b"smsflow-backup\n\0";
const FORMAT: u32 = 1;
/// Tree tags of the entries; 0 ends them.
const END: u8 = 0;
const TREES: [(u8, &str); 3] = [(1, keys::META), (2, keys::STATE), (3, keys::LOG)];
/// No key or value of ours comes near this: a longer length is a damaged file, not an
/// allocation to attempt.
const MAX_LEN: u32 = 1 << 30;
/// Entries per sled batch when restoring.
const BATCH: usize = 10_000;

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("{} is not empty: a backup goes into a new or empty directory", path.display())]
    NotEmpty { path: PathBuf },
    #[error(
        "{} is inside the store's directory {}: put backups elsewhere",
        path.display(),
        store.display()
    )]
    InsideStore { path: PathBuf, store: PathBuf },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an smsflow backup: {detail}", path.display())]
    NotABackup { path: PathBuf, detail: String },
    #[error("the backup {} is damaged: {detail}", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{} is in use by a running smsflow (sled holds its lock): stop the service before \
         restoring",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error(
        "the store restored from {} does not verify ({problems} problems; the first: {first}); \
         {} is as it was",
        backup.display(),
        data_dir.display()
    )]
    Unverified {
        backup: PathBuf,
        data_dir: PathBuf,
        problems: usize,
        first: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for BackupError {
    fn from(e: sled::Error) -> BackupError {
        BackupError::Store(e.into())
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + use<> {
    let path = path.to_path_buf();
    move |source| BackupError::Io { what, path, source }
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup file.
    pub file: PathBuf,
    /// The log seq its checkpoint covers.
    pub checkpoint: u64,
    /// The last durable group in it: what a restore is sealed at.
    pub last: u64,
    /// Keys of every tree.
    pub entries: u64,
    pub bytes: u64,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub backup: BackupInfo,
    /// Where the data directory that was there went.
    pub aside: Option<PathBuf>,
    /// The restored store's check.
    pub verified: Verified,
}

impl Store {
    /// Writes a backup of the store into `dir` (created if missing, refused when not empty)
    /// while steps go on; see the module documentation.
    pub fn backup(&self, dir: &Path) -> Result<BackupInfo, BackupError> {
        prepare(dir, &self.inner.path)?;
        let partial = dir.join(format!("{FILE}.partial"));
        let paused = self.inner.writer.pause()?;
        let mut out = Out::create(&partial, paused.checkpoint, paused.last)?;
        for (tag, name) in TREES {
            let tree = self.inner.db.open_tree(name)?;
            let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
                if name == keys::LOG {
                    // Groups after `last` are steps made after the backup began.
                    Box::new(tree.range(..=keys::log(paused.last)))
                } else {
                    Box::new(tree.iter())
                };
            for entry in entries {
                let what = || format!("the {name} tree for a backup");
                let (key, value) = self.notice(what, entry.map_err(StoreError::from))?;
                out.entry(tag, &key, &value)?;
            }
        }
        let (checkpoint, last) = (paused.checkpoint, paused.last);
        drop(paused);
        let (entries, bytes) = out.finish()?;
        let file = dir.join(FILE);
        std::fs::rename(&partial, &file).map_err(io("rename", &partial))?;
        seal::sync_dir(dir).map_err(io("sync", dir))?;
        Ok(BackupInfo {
            file,
            checkpoint,
            last,
            entries,
            bytes,
        })
    }
}

/// A new or empty `dir`, outside the store's directory `store`.
fn prepare(dir: &Path, store: &Path) -> Result<(), BackupError> {
    let created = match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
            false
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io("create", dir))?;
            true
        }
        Err(e) => return Err(io("read", dir)(e)),
    };
    if let (Ok(d), Ok(s)) = (dir.canonicalize(), store.canonicalize())
        && d.starts_with(&s)
    {
        if created {
            // Ours and empty: nothing of the store's.
            let _ = std::fs::remove_dir(dir);
        }
        return Err(BackupError::InsideStore {
            path: dir.to_path_buf(),
            store: store.to_path_buf(),
        });
    }
    Ok(())
}

/// The backup file being written: every byte through the checksum.
struct Out {
    file: BufWriter<File>,
    path: PathBuf,
    crc: crc32fast::Hasher,
    entries: u64,
    bytes: u64,
}

impl Out {
    fn create(path: &Path, checkpoint: u64, last: u64) -> Result<Out, BackupError> {
        let file = File::create(path).map_err(io("create", path))?;
        let mut out = Out {
            file: BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            crc: crc32fast::Hasher::new(),
            entries: 0,
            bytes: 0,
        };
        out.put(MAGIC)?;
        out.put(&FORMAT.to_be_bytes())?;
        out.put(&keys::SCHEMA_VERSION.to_be_bytes())?;
        out.put(&checkpoint.to_be_bytes())?;
        out.put(&last.to_be_bytes())?;
        Ok(out)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.crc.update(bytes);
        self.bytes += bytes.len() as u64;
        self.file.write_all(bytes).map_err(io("write", &self.path))
    }

    fn entry(&mut self, tree: u8, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        self.put(&[tree])?;
        for part in [key, value] {
            // sled keeps nothing near 4 GiB; MAX_LEN stops it at restore anyway.
            self.put(&(part.len() as u32).to_be_bytes())?;
            self.put(part)?;
        }
        self.entries += 1;
        Ok(())
    }

    /// The end marker, the count and the checksum; synced. (entries, bytes)
    fn finish(mut self) -> Result<(u64, u64), BackupError> {
        self.put(&[END])?;
        self.put(&self.entries.to_be_bytes())?;
        let crc = self.crc.clone().finalize();
        self.file
            .write_all(&crc.to_be_bytes())
            .map_err(io("write", &self.path))?;
        let file = self.file.into_inner().map_err(|e| BackupError::Io {
            what: "write",
            path: self.path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io("sync", &self.path))?;
        Ok((self.entries, self.bytes + 4))
    }
}

/// A backup file being read: every byte before the checksum through it.
struct In {
    file: BufReader<File>,
    path: PathBuf,
    crc: crc32fast::Hasher,
    bytes: u64,
}

/// One entry of a backup: (tree tag, key, value).
type Entry = (u8, Vec<u8>, Vec<u8>);

impl In {
    /// Opens `file` and reads its header: (checkpoint, last).
    fn open(file: &Path) -> Result<(In, u64, u64), BackupError> {
        let f = File::open(file).map_err(|e| match e.kind() {
            ErrorKind::NotFound => BackupError::NotABackup {
                path: file.to_path_buf(),
                detail: format!("no {FILE} in it (what `smsflow store backup` writes)"),
            },
            _ => io("open", file)(e),
        })?;
        let mut input = In {
            file: BufReader::with_capacity(1 << 20, f),
            path: file.to_path_buf(),
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        let not_ours = |detail: &str| BackupError::NotABackup {
            path: file.to_path_buf(),
            detail: detail.to_owned(),
        };
        let mut magic = [0u8; 16];
        input
            .exact(&mut magic)
            .map_err(|_| not_ours("shorter than a header"))?;
        if &magic != MAGIC {
            return Err(not_ours("it does not start as one"));
        }
        let format = input.u32()?;
        if format != FORMAT {
            return Err(not_ours(&format!(
                "format {format}, this smsflow reads {FORMAT}"
            )));
        }
        let schema = input.u32()?;
        if schema != keys::SCHEMA_VERSION {
            return Err(not_ours(&format!(
                "a store of schema {schema}, this smsflow writes {}",
                keys::SCHEMA_VERSION
            )));
        }
        let (checkpoint, last) = (input.u64()?, input.u64()?);
        Ok((input, checkpoint, last))
    }

    fn damaged(&self, detail: impl Into<String>) -> BackupError {
        BackupError::Damaged {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        self.file.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => {
                self.damaged(format!("cut short after {} bytes", self.bytes))
            }
            _ => io("read", &self.path)(e),
        })?;
        self.crc.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn part(&mut self) -> Result<Vec<u8>, BackupError> {
        let len = self.u32()?;
        if len > MAX_LEN {
            return Err(self.damaged(format!("a length of {len} at byte {}", self.bytes)));
        }
        let mut part = vec![0u8; len as usize];
        self.exact(&mut part)?;
        Ok(part)
    }

    /// The next entry; `None` after the last one, once the count and checksum matched.
    fn next(&mut self, read: u64) -> Result<Option<Entry>, BackupError> {
        let mut tree = [0u8];
        self.exact(&mut tree)?;
        if tree[0] == END {
            let count = self.u64()?;
            let crc = self.crc.clone().finalize();
            let mut stored = [0u8; 4];
            self.file
                .read_exact(&mut stored)
                .map_err(|_| self.damaged("no checksum at the end"))?;
            if u32::from_be_bytes(stored) != crc {
                return Err(self.damaged("its checksum does not match its contents"));
            }
            if count != read {
                return Err(self.damaged(format!("it says {count} entries but holds {read}")));
            }
            let mut rest = [0u8];
            if self.file.read(&mut rest).map_err(io("read", &self.path))? != 0 {
                return Err(self.damaged("bytes after the checksum"));
            }
            return Ok(None);
        }
        if !TREES.iter().any(|&(tag, _)| tag == tree[0]) {
            return Err(self.damaged(format!("tree tag {} at byte {}", tree[0], self.bytes)));
        }
        let key = self.part()?;
        let value = self.part()?;
        Ok(Some((tree[0], key, value)))
    }
}

/// Reads the backup in `dir` whole and checks it; `each` sees every entry (still unchecked:
/// the checksum is known only at the end).
fn read(
    dir: &Path,
    mut each: impl FnMut(Entry) -> Result<(), BackupError>,
) -> Result<BackupInfo, BackupError> {
    let file = dir.join(FILE);
    let (mut input, checkpoint, last) = In::open(&file)?;
    let mut entries = 0;
    while let Some(entry) = input.next(entries)? {
        entries += 1;
        each(entry)?;
    }
    Ok(BackupInfo {
        file,
        checkpoint,
        last,
        entries,
        bytes: input.bytes + 4,
    })
}

/// Checks the backup in `dir` whole (header, lengths, checksum) without restoring it.
pub fn check_backup(dir: &Path) -> Result<BackupInfo, BackupError> {
    read(dir, |_| Ok(()))
}

/// Replaces the store in `data_dir` with the backup in `backup_dir`, refused while a service
/// holds `data_dir`; `stamp` (a time, from the caller: the store reads no clock) names where
/// the old data directory goes. See the module documentation.
pub fn restore(backup_dir: &Path, data_dir: &Path, stamp: &str) -> Result<Restored, BackupError> {
    let backup = check_backup(backup_dir)?;
    // Held until the new store is in place: a service starting meanwhile finds it locked.
    let _lock = lock(data_dir)?;
    let name = data_dir
        .file_name()
        .ok_or_else(|| BackupError::NotABackup {
            path: data_dir.to_path_buf(),
            detail: "service.data_dir has no directory name to restore under".into(),
        })?;
    let sibling = |what: &str| {
        let mut n = name.to_os_string();
        n.push(format!(".{what}-{stamp}"));
        data_dir.with_file_name(n)
    };
    let new = sibling("restoring");
    if new.exists() {
        return Err(BackupError::NotEmpty { path: new });
    }
    let built = build(backup_dir, &new);
    let verified = match built {
        Ok(verified) if verified.is_ok() => verified,
        failed => {
            // Ours, made just now; the data directory itself was not touched.
            let _ = std::fs::remove_dir_all(&new);
            let verified = failed?;
            return Err(BackupError::Unverified {
                backup: backup_dir.to_path_buf(),
                data_dir: data_dir.to_path_buf(),
                problems: verified.problem_count(),
                first: verified.problems.first().cloned().unwrap_or_default(),
            });
        }
    };
    let aside = if data_dir.exists() {
        let aside = sibling("before-restore");
        std::fs::rename(data_dir, &aside).map_err(io("move aside", data_dir))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&new, data_dir).map_err(io("move into place", &new))?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        seal::sync_dir(parent).map_err(io("sync", parent))?;
    }
    Ok(Restored {
        backup,
        aside,
        verified,
    })
}

/// sled's lock on `data_dir` (the flock on its `db` file), taken so no service opens it
/// meanwhile; `None` when there is no store there.
fn lock(data_dir: &Path) -> Result<Option<File>, BackupError> {
    use fs2::FileExt;
    let db = data_dir.join("db");
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&db) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", &db)(e)),
    };
    match file.try_lock_exclusive() {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => Err(BackupError::InUse {
            path: data_dir.to_path_buf(),
        }),
        Err(e) => Err(io("lock", &db)(e)),
    }
}

/// The backup in `backup_dir` as a new store in `new`, sealed at its last group, opened and
/// verified.
fn build(backup_dir: &Path, new: &Path) -> Result<Verified, BackupError> {
    let info = {
        let db = sled::Config::new().path(new).flush_every_ms(None).open()?;
        let trees = TREES
            .iter()
            .map(|&(tag, name)| Ok((tag, db.open_tree(name)?)))
            .collect::<Result<Vec<(u8, sled::Tree)>, sled::Error>>()?;
        let mut batches: Vec<(sled::Batch, usize)> =
            trees.iter().map(|_| Default::default()).collect();
        let info = read(backup_dir, |(tag, key, value)| {
            let i = trees
                .iter()
                .position(|(t, _)| *t == tag)
                .unwrap_or_default();
            let (batch, n) = &mut batches[i];
            batch.insert(key, value);
            *n += 1;
            if *n >= BATCH {
                trees[i].1.apply_batch(std::mem::take(batch))?;
                *n = 0;
            }
            Ok(())
        })?;
        for ((_, tree), (batch, _)) in trees.iter().zip(batches) {
            tree.apply_batch(batch)?;
        }
        db.flush()?;
        info
    };
    drop(Seal::create(new, info.last)?);
    // sled lets go of its file lock a moment after its last handle drops (its threads end
    // on their own): the store just written may still be locked for a few milliseconds.
    let mut waited = 0;
    let store = loop {
        match Store::open(new) {
            Err(StoreError::Locked { .. }) if waited < 200 => {
                waited += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => break opened?,
        }
    };
    Ok(store.verify()?)
}
