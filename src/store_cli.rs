//! `smsflow store verify|backup|restore`: the store's operations from the command line.
//!
//! Each reads `service.data_dir` from the config. sled lets one process at a time open a
//! store, so: `verify` and `restore` refuse a store a running service holds (exit 1, saying
//! so); `backup` asks that service to write the backup (`POST /api/v1/store/backup`), the way
//! `smsflow report` asks it for a report. Exit codes as everywhere: 0 ok, 1 the job failed
//! (a problem found, a damaged store), 2 bad usage or config.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use smsflow::config::Config;
use smsflow::report::remote;
use smsflow::store::backup::{self, BackupInfo};
use smsflow::store::{Store, StoreError, Verified};

use crate::config_arg::ConfigArg;

/// How long `backup` waits for a running service to write the backup.
const REMOTE_BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

/// The examples of `smsflow store --help`.
pub const EXAMPLES: &str = "\
Examples:
  smsflow store verify -c smsflow.toml
  smsflow store backup /var/backups/smsflow/2026-11-22
  smsflow store restore /var/backups/smsflow/2026-11-22   (with the service stopped)";

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Decode every record, check every index and recount the CSI tallies; exit 1 on any
    /// problem.
    #[command(after_help = "\
Examples:
  smsflow store verify                     the store of ./smsflow.toml (or the defaults)
  smsflow store verify -c /etc/smsflow/smsflow.toml

Needs the store to itself: stop the service, or verify a restored backup elsewhere.")]
    Verify(ConfigArg),
    /// Write a consistent backup of the store into DIR (new or empty), through the running
    /// service when it holds the store.
    #[command(after_help = "\
Examples:
  smsflow store backup /var/backups/smsflow/2026-11-22
  smsflow store backup ./backup -c smsflow.toml")]
    Backup {
        /// Where to write the backup.
        dir: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Replace the store with the backup in DIR; the store that was there is moved to
    /// `<data_dir>.before-restore-<time>`, never deleted. Refused while a service runs.
    #[command(after_help = "\
Examples:
  smsflow store restore /var/backups/smsflow/2026-11-22
  smsflow store restore ./backup -c smsflow.toml && smsflow store verify -c smsflow.toml")]
    Restore {
        /// A directory `smsflow store backup` wrote.
        dir: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// Why a store command failed: the message and the exit code.
struct Failed(String, u8);

fn failed(message: impl Into<String>) -> Failed {
    Failed(message.into(), 1)
}

pub fn run(command: StoreCommand) -> ExitCode {
    let (name, result) = match command {
        StoreCommand::Verify(config) => ("verify", verify(config.path.as_deref())),
        StoreCommand::Backup { dir, config } => ("backup", backup(&dir, config.path.as_deref())),
        StoreCommand::Restore { dir, config } => ("restore", restore(&dir, config.path.as_deref())),
    };
    match result {
        Ok(code) => code,
        Err(Failed(message, code)) => {
            eprintln!("smsflow store {name}: {message}");
            ExitCode::from(code)
        }
    }
}

/// The config and its data directory, which must hold a store.
fn store_dir(config: Option<&Path>) -> Result<(Config, PathBuf), Failed> {
    let config = Config::discover(config).map_err(|e| Failed(e.to_string(), 2))?;
    let dir = config.service.data_dir.clone();
    if !dir.is_dir() {
        return Err(failed(format!(
            "no store at {} (service.data_dir): nothing has been recorded yet, or --config \
             points elsewhere",
            dir.display()
        )));
    }
    Ok((config, dir))
}

fn verify(config: Option<&Path>) -> Result<ExitCode, Failed> {
    let (_, dir) = store_dir(config)?;
    let store = match Store::open(&dir) {
        Ok(store) => store,
        Err(StoreError::Locked { .. }) => {
            return Err(failed(format!(
                "the store in {} is in use by a running service (sled holds its lock): stop \
                 it to verify the store, or verify a restore of `smsflow store backup DIR` \
                 elsewhere",
                dir.display()
            )));
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let verified = store.verify().map_err(|e| failed(e.to_string()))?;
    print_verified(&dir, &verified);
    Ok(if verified.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_verified(dir: &Path, verified: &Verified) {
    println!(
        "store {} (checkpoint at commit {}):",
        dir.display(),
        verified.checkpoint
    );
    for (kind, n) in &verified.counts {
        println!("  {kind:<28} {n:>10}");
    }
    if verified.is_ok() {
        println!("no problems found");
        return;
    }
    println!("{} problems:", verified.problem_count());
    for p in &verified.problems {
        println!("  {p}");
    }
    if verified.more_problems > 0 {
        println!("  ... and {} more", verified.more_problems);
    }
}

fn backup(dir: &Path, config: Option<&Path>) -> Result<ExitCode, Failed> {
    let (config, data_dir) = store_dir(config)?;
    // The service may run elsewhere than here: it gets the whole path.
    let target =
        std::path::absolute(dir).map_err(|e| Failed(format!("{}: {e}", dir.display()), 2))?;
    let (info, via) = match Store::open(&data_dir) {
        Ok(store) => (
            store.backup(&target).map_err(|e| failed(e.to_string()))?,
            None,
        ),
        Err(StoreError::Locked { .. }) => {
            let addr = remote::connect_address(config.http.listen);
            let token = config.http.tokens.first().map(|t| t.expose());
            let body = serde_json::json!({ "dir": target }).to_string();
            let answer = remote::post(
                addr,
                "/api/v1/store/backup",
                token,
                &body,
                REMOTE_BACKUP_TIMEOUT,
            )
            .map_err(|e| {
                failed(format!(
                    "the store {} is in use (a running service?) and its HTTP API did not \
                     write the backup: {e}",
                    data_dir.display()
                ))
            })?;
            (remote_info(&answer).map_err(failed)?, Some(addr))
        }
        Err(e) => return Err(failed(e.to_string())),
    };
    let through = via.map_or(String::new(), |a| {
        format!(" (written by the running service at {a})")
    });
    println!(
        "wrote {}: the store up to commit {}, {} entries, {} bytes{through}",
        info.file.display(),
        info.last,
        info.entries,
        info.bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// The service's answer to a backup request.
fn remote_info(answer: &str) -> Result<BackupInfo, String> {
    let v: serde_json::Value =
        serde_json::from_str(answer).map_err(|e| format!("the service's answer: {e}"))?;
    let n = |key: &str| {
        (v.get(key).and_then(|x| x.as_u64()))
            .ok_or_else(|| format!("the service's answer has no {key:?}: {answer}"))
    };
    Ok(BackupInfo {
        file: PathBuf::from(v.get("file").and_then(|f| f.as_str()).unwrap_or_default()),
        checkpoint: n("checkpoint")?,
        last: n("seq")?,
        entries: n("entries")?,
        bytes: n("bytes")?,
    })
}

fn restore(dir: &Path, config: Option<&Path>) -> Result<ExitCode, Failed> {
    let config = Config::discover(config).map_err(|e| Failed(e.to_string(), 2))?;
    let data_dir = &config.service.data_dir;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let done = backup::restore(dir, data_dir, &stamp).map_err(|e| failed(e.to_string()))?;
    print_verified(data_dir, &done.verified);
    println!(
        "restored {} from {}: the store up to commit {}, {} entries",
        data_dir.display(),
        done.backup.file.display(),
        done.backup.last,
        done.backup.entries
    );
    if let Some(aside) = &done.aside {
        println!(
            "the store that was there is in {} (delete it once you no longer need it)",
            aside.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
