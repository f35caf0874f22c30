//! Damage found after the store opened, and sled's panics kept off stderr.
//!
//! Opening checks what it can cheaply (`open.rs`, `seal.rs`, `state/census.rs`), but a store
//! is more than it reads at start: a closed conversation, a timeline, an old rating chunk may
//! sit on a page of sled's file that no longer reads back (sled's checksum fails, a value
//! does not decode, sled panics). The first read that meets one marks the store **damaged**:
//!
//! - one ERROR naming what failed and the way out (`smsflow store verify`, `smsflow store
//!   restore`), and the gauge `smsflow_store_damaged` at 1; `/readyz` answers 503 with the
//!   same text ([`Store::damage`]);
//! - the store takes no more steps: every write is refused with [`StoreError::Damaged`] (an
//!   MO is left for the SMSC to redeliver, an HTTP event answered 503), and it hands out no
//!   messages, webhook calls, export events or timers, since what became of them could not
//!   be recorded. A restore goes back to the backup, so what is refused now is not lost; what
//!   would have been acknowledged on top of the damage would be;
//! - steps applied before are still flushed, and reads of what is intact go on answering
//!   (conversations, reports), so operators can see what is there.
//!
//! It lasts until the process ends: a restart checks again at open, and the damage shows
//! again at the first read that meets it.
//!
//! sled also panics on some pages it cannot read. [`quietly`] runs sled under
//! `catch_unwind` with a panic hook that prints nothing for it, so the panic becomes the
//! message of the error that follows, not a backtrace on stderr.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use super::{Store, StoreError};

/// Whether the store in `path` has been found damaged, and why (the first damage).
#[derive(Debug)]
pub(super) struct Watch {
    path: PathBuf,
    found: OnceLock<String>,
}

impl Watch {
    pub fn new(path: PathBuf) -> Watch {
        Watch {
            path,
            found: OnceLock::new(),
        }
    }

    /// The first damage found, if any.
    pub fn found(&self) -> Option<&str> {
        self.found.get().map(String::as_str)
    }

    /// Marks the store damaged by `detail` (what failed): the ERROR and the gauge the first
    /// time, nothing more after.
    pub fn mark(&self, detail: &str) {
        let mut first = false;
        self.found.get_or_init(|| {
            first = true;
            detail.to_owned()
        });
        if first {
            metrics::gauge!(crate::metrics::STORE_DAMAGED).set(1.0);
            tracing::error!("{}", message(&self.path, detail));
        } else {
            tracing::debug!("store damaged, again: {detail}");
        }
    }
}

/// What the ERROR, `/readyz` and [`StoreError::Damaged`] say.
pub(super) fn message(path: &Path, detail: &str) -> String {
    format!(
        "the store in {} is damaged ({detail}), probably from disk damage: it takes no more \
         steps (MOs are left for the SMSC to redeliver, events are answered 503) and sends \
         nothing; reads of what is intact still answer. Stop the service, check the store \
         with `smsflow store verify`, and restore a backup with `smsflow store restore DIR`",
        path.display()
    )
}

/// Whether `e` says the store's data is damaged (rather than busy, full or misused).
pub(super) fn is_damage(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Decode { .. } | StoreError::Sled(sled::Error::Corruption { .. })
    )
}

/// `e` for a message: sled's corruption error without its empty backtrace.
pub(super) fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Sled(sled::Error::Corruption { at: Some(at), .. }) => format!(
            "sled's checksum fails for what its file holds at offset {}",
            at.lid()
        ),
        StoreError::Sled(sled::Error::Corruption { at: None, .. }) => {
            "sled's checksum fails for what its file holds".to_owned()
        }
        other => other.to_string(),
    }
}

impl Store {
    /// Why the store is damaged, once a read met damage (see the module documentation):
    /// `/readyz` answers 503 with it.
    pub fn damage(&self) -> Option<String> {
        let found = self.inner.damage.found()?;
        Some(message(&self.inner.path, found))
    }

    pub fn is_damaged(&self) -> bool {
        self.inner.damage.found().is_some()
    }

    /// Logs an operation on this store that failed: at ERROR, unless the store is damaged,
    /// which it said once, at ERROR, when that was found: the same line for every MO the
    /// SMSC redelivers would bury it.
    pub fn log_failure(&self, what: std::fmt::Arguments<'_>) {
        if self.is_damaged() {
            tracing::debug!("{what}");
        } else {
            tracing::error!("{what}");
        }
    }

    /// Runs `read`, a read of sled (`what` names it for the message): damage it meets marks
    /// the store damaged and comes back as [`StoreError::Damaged`]; sled panicking on a page
    /// is damage too.
    pub(super) fn read<T>(
        &self,
        what: impl FnOnce() -> String,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match quietly(read) {
            Ok(result) => self.notice(what, result),
            Err(panic) => Err(self.found(what, format!("sled panicked: {panic}"))),
        }
    }

    /// `result` of a read of sled (`what`), with damage marked (see [`Store::read`]).
    pub(super) fn notice<T>(
        &self,
        what: impl FnOnce() -> String,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match result {
            Err(e) if is_damage(&e) => Err(self.found(what, describe(&e))),
            other => other,
        }
    }

    /// Marks the store damaged by `detail`, met reading `what`.
    fn found(&self, what: impl FnOnce() -> String, detail: String) -> StoreError {
        let detail = format!("reading {}: {detail}", what());
        self.inner.damage.mark(&detail);
        self.damaged(detail)
    }

    /// The error of a store found damaged by `detail`.
    pub(super) fn damaged(&self, detail: String) -> StoreError {
        StoreError::Damaged {
            path: self.inner.path.clone(),
            detail,
        }
    }

    /// `Err` once the store is damaged: it takes no more steps.
    pub(super) fn refuse_if_damaged(&self) -> Result<(), StoreError> {
        match self.inner.damage.found() {
            Some(found) => Err(self.damaged(found.to_owned())),
            None => Ok(()),
        }
    }
}

thread_local! {
    /// Set while [`quietly`] runs on this thread: the panic hook prints nothing and keeps
    /// where the panic happened here instead.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static WHERE: Cell<Option<String>> = const { Cell::new(None) };
}

/// Runs `f`; a panic comes back as `Err` with its message and where it happened
/// ("MESSAGE (at sled-0.34.7/src/FILE:LINE)"), and nothing is printed for it. Other
/// threads' panics print as usual.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                WHERE.with(|w| w.set(at));
            } else {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|panic| {
        let text = (panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        match WHERE.with(Cell::take) {
            Some(at) => format!("{text} (at {})", short_path(&at)),
            None => text,
        }
    })
}

/// A panic's file from the crate's directory on (`sled-0.34.7/src/...`), not the build
/// machine's cargo home.
fn short_path(at: &str) -> &str {
    at.find("sled-").map_or(at, |i| &at[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_quietly_comes_back_as_its_message_and_where() {
        let caught = quietly(|| -> u32 { panic!("tried to serialize Uninitialized") });
        let text = caught.unwrap_err();
        assert!(
            text.starts_with("tried to serialize Uninitialized (at src/store/damage.rs:"),
            "{text}"
        );
        assert_eq!(quietly(|| 7), Ok(7));
        // Outside, panics print as before.
        assert!(!QUIET.with(Cell::get));
    }
}
