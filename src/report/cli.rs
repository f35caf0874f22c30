//! `smsflow report csi|incidents`: the request checked against the config, the report built
//! from the store, or fetched from the running service when it holds the store, and rendered.
//! The binary only parses arguments, prints and maps [`CliError`] to the exit code.

use std::path::Path;

use super::query::{Kind, Query, today};
use super::render::{self, Format};
use super::{Report, remote, source};
use crate::config::Config;
use crate::store::{Millis, Store, StoreError};

/// What the user asked for, as typed.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
    pub format: Format,
}

/// Why `smsflow report` failed; [`CliError::exit_code`] is what the process returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Bad usage (a date, a grouping): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The job failed (no store, a store error, the service did not answer): exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

/// Where the report came from, for a note on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Read from the store directory.
    Store,
    /// `service.data_dir` (this path) is missing or empty: nothing recorded yet, so the
    /// report is empty. Nothing was created there.
    NoStore(std::path::PathBuf),
    /// The store was locked by a running service; its HTTP API at this address answered.
    Service(String),
}

/// Checks `request` and builds the report (`now` in ms decides the default dates).
pub fn report(
    request: &Request,
    config: &Config,
    now: Millis,
) -> Result<(Report, Origin), CliError> {
    let zone = &config.service.timezone;
    let query = Query::parse(
        request.kind,
        request.from.as_deref(),
        request.to.as_deref(),
        request.by.as_deref(),
        today(zone, now),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let data_dir: &Path = &config.service.data_dir;
    if is_missing_or_empty(data_dir) {
        // Day one: the empty report a manager expects, made by the same code from a store
        // with nothing in it, so every section is there; the data dir is left alone.
        let empty = Store::temporary_in(zone).map_err(|e| CliError::Failed(e.to_string()))?;
        return source::build(&empty, &query, zone)
            .map(|r| (r, Origin::NoStore(data_dir.to_path_buf())))
            .map_err(|e| CliError::Failed(e.to_string()));
    }
    match Store::open(data_dir) {
        Ok(store) => source::build(&store, &query, zone)
            .map(|r| (r, Origin::Store))
            .map_err(|e| CliError::Failed(e.to_string())),
        Err(StoreError::Locked { .. }) => {
            let addr = remote::connect_address(config.http.listen);
            let token = config.http.tokens.first().map(|t| t.expose());
            let body = remote::get(addr, &remote::path(&query), token).map_err(|e| {
                CliError::Failed(format!(
                    "the store {} is in use (a running service?) and its HTTP API did not \
                     give the report: {e}",
                    data_dir.display()
                ))
            })?;
            let report = Report::from_json(request.kind, &body).map_err(|e| {
                CliError::Failed(format!(
                    "the service at {addr} sent a report we cannot read: {e}"
                ))
            })?;
            Ok((report, Origin::Service(addr.to_string())))
        }
        Err(e) => Err(CliError::Failed(e.to_string())),
    }
}

/// Whether `dir` holds nothing a store could be read from. An unreadable directory is not
/// "empty": opening it gives the real error.
fn is_missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// [`report`] rendered in the requested format.
pub fn run(request: &Request, config: &Config, now: Millis) -> Result<(Vec<u8>, Origin), CliError> {
    let (report, origin) = report(request, config, now)?;
    let bytes =
        render::render(&report, request.format).map_err(|e| CliError::Failed(e.to_string()))?;
    Ok((bytes, origin))
}
