//! `smsflow report csi|incidents`: the request checked against the config, the report built
//! from the store, or fetched from the running service when it holds the store, and rendered.
//! The binary only parses arguments, prints and maps [`CliError`] to the exit code.

use std::path::Path;

use super::feed::{self, Cursor, FeedQuery, Page};
use super::open_calls::{self, OpenPage, OpenQuery};
use super::query::{Kind, Query, range_ms, today};
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
    /// The survey flow of a CSI report (default `survey`).
    pub flow: Option<String>,
    pub format: Format,
    /// `nats://…` (comma-separated servers): the report of the events every node exported
    /// to the stream of `[export]` (default `SMSFLOW`, subjects `smsflow.*`), not of the
    /// local store.
    pub source: Option<String>,
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
    /// Read from a JetStream stream: the servers, and what was read.
    Stream {
        servers: String,
        nodes: Vec<String>,
        events: usize,
        duplicates: u64,
    },
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
    .and_then(|q| q.for_flow(request.flow.as_deref()))
    .map_err(|e| CliError::Usage(e.to_string()))?;
    if let Some(url) = &request.source {
        return from_stream(url, &query, config);
    }
    let data_dir: &Path = &config.service.data_dir;
    let failed = |e: StoreError| CliError::Failed(e.to_string());
    if is_missing_or_empty(data_dir) {
        // Day one: the empty report a manager expects, made by the same code from a store
        // with nothing in it, so every section is there; the data dir is left alone.
        check_flow(&query, config, None)?;
        let empty = Store::temporary_in(zone).map_err(failed)?;
        return source::build(&empty, &query, zone)
            .map(|r| (r, Origin::NoStore(data_dir.to_path_buf())))
            .map_err(failed);
    }
    match Store::open(data_dir) {
        Ok(store) => {
            check_flow(&query, config, Some(&store))?;
            source::build(&store, &query, zone)
                .map(|r| (r, Origin::Store))
                .map_err(failed)
        }
        Err(StoreError::Locked { .. }) => {
            let addr = remote::connect_address(config.http.listen);
            let token = config.http.tokens.first().map(|t| t.expose());
            let body = remote::get(addr, &remote::path(&query), token).map_err(|e| match e {
                // The service refused the request as the CLI would (a flow it does not know).
                remote::RemoteError::Status {
                    status: 400,
                    detail,
                    ..
                } => CliError::Usage(detail),
                e => CliError::Failed(format!(
                    "the store {} is in use (a running service?) and its HTTP API did not \
                     give the report: {e}",
                    data_dir.display()
                )),
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

/// Refuses a CSI report of a flow the store has no conversations of and `scripts_dir` has no
/// script for, as the running service refuses one it neither runs nor ran (with the same
/// message): a mistyped `--flow` is an error naming the flows there are, not an empty report.
fn check_flow(query: &Query, config: &Config, store: Option<&Store>) -> Result<(), CliError> {
    let mut known = match store {
        Some(store) => store
            .stored_flows()
            .map_err(|e| CliError::Failed(e.to_string()))?,
        None => Default::default(),
    };
    if let Ok(entries) = std::fs::read_dir(&config.service.scripts_dir) {
        known.extend(entries.filter_map(|e| {
            let path = e.ok()?.path();
            let stem = path.file_stem()?.to_str()?;
            (path.extension()? == "rhai").then(|| stem.to_owned())
        }));
    }
    query
        .check_flow(&known)
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// The report of the events on the stream at `url` (the stream and subjects of
/// `[export]`, or its defaults); a CSI report is on the scale the flow's script in
/// `service.scripts_dir` declares (CSAT 1–5 without one).
fn from_stream(url: &str, query: &Query, config: &Config) -> Result<(Report, Origin), CliError> {
    let export = config.export.clone().unwrap_or_default();
    let servers = crate::config::export::servers(url);
    let probe = crate::config::ExportConfig {
        nats_url: url.to_owned(),
        ..export.clone()
    };
    crate::config::export::check(&probe)
        .map_err(|(_, why)| CliError::Usage(format!("--source: {why}")))?;
    let source = crate::export::replay::Source {
        servers,
        stream: export.stream,
        subject_prefix: export.subject_prefix,
    };
    let script = config
        .service
        .scripts_dir
        .join(format!("{}.rhai", query.flow));
    let scale = (std::fs::read_to_string(script).ok())
        .and_then(|s| crate::flow::runner::declared_scale(&s))
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the NATS client: {e}")))?;
    let zone = &config.service.timezone;
    let built = runtime
        .block_on(super::stream::build(&source, query, zone, scale))
        .map_err(CliError::Failed)?;
    let origin = Origin::Stream {
        servers: crate::config::export::redacted(&source.servers),
        nodes: built.nodes.into_iter().collect(),
        events: built.events,
        duplicates: built.duplicates,
    };
    Ok((built.report, origin))
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

/// What `smsflow report responses` was asked for, as typed.
#[derive(Debug, Clone, Default)]
pub struct FeedRequest {
    /// Days, YYYY-MM-DD, both included (default: everything).
    pub from: Option<String>,
    pub to: Option<String>,
    pub operator: Option<String>,
    pub channel: Option<String>,
    pub score: Option<u8>,
    pub flow: Option<String>,
    /// Rows of one page; None: every row.
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Whole MSISDNs instead of masked ones.
    pub full_numbers: bool,
}

/// The response feed: one page (or every row) from the store, or from the running service
/// when it holds the store.
pub fn responses(
    request: &FeedRequest,
    config: &Config,
    now: Millis,
) -> Result<(Page, Origin), CliError> {
    let zone = &config.service.timezone;
    let day = |name: &str, value: &Option<String>| -> Result<Option<jiff::civil::Date>, CliError> {
        value
            .as_deref()
            .map(|v| {
                v.parse::<jiff::civil::Date>().map_err(|_| {
                    CliError::Usage(format!("--{name} {v:?} is not a date (YYYY-MM-DD)"))
                })
            })
            .transpose()
    };
    let (from, to) = (day("from", &request.from)?, day("to", &request.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(CliError::Usage(format!("--from {f} is after --to {t}")));
    }
    let mut query = FeedQuery {
        from: from.map_or(Millis::MIN, |d| range_ms(zone, d, d).0),
        to: to.map_or(Millis::MAX, |d| range_ms(zone, d, d).1),
        operator: request.operator.clone(),
        channel: request.channel.clone(),
        score: request.score,
        flow: request.flow.clone(),
        limit: request.limit.unwrap_or(feed::MAX_LIMIT),
        after: match &request.cursor {
            Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                CliError::Usage(format!("--cursor {c:?} is not a cursor a page gave"))
            })?),
            None => None,
        },
        full_numbers: request.full_numbers,
    };
    if query.limit == 0 || query.limit > feed::MAX_LIMIT {
        return Err(CliError::Usage(format!(
            "--limit must be 1 to {}; leave it out for every row",
            feed::MAX_LIMIT
        )));
    }
    let data_dir: &Path = &config.service.data_dir;
    if is_missing_or_empty(data_dir) {
        let empty = Page {
            items: Vec::new(),
            next: None,
        };
        return Ok((empty, Origin::NoStore(data_dir.to_path_buf())));
    }
    // Every row: page through until the last.
    let mut all = Page {
        items: Vec::new(),
        next: None,
    };
    let origin = loop {
        let (page, origin) = match Store::open(data_dir) {
            Ok(store) => (
                feed::page(&store, &query, now).map_err(|e| CliError::Failed(e.to_string()))?,
                Origin::Store,
            ),
            Err(StoreError::Locked { .. }) => remote_page(config, &query)?,
            Err(e) => return Err(CliError::Failed(e.to_string())),
        };
        all.items.extend(page.items);
        all.next = page.next;
        match (&all.next, request.limit) {
            (Some(next), None) => query.after = Cursor::decode(next),
            _ => break origin,
        }
    };
    Ok((all, origin))
}

/// The calls not over yet, all of them: from the store, or from the running service when it
/// holds the store.
pub fn open_calls(
    config: &Config,
    now: Millis,
    full_numbers: bool,
) -> Result<(OpenPage, Origin), CliError> {
    let data_dir: &Path = &config.service.data_dir;
    let empty = OpenPage {
        items: Vec::new(),
        next: None,
    };
    if is_missing_or_empty(data_dir) {
        return Ok((empty, Origin::NoStore(data_dir.to_path_buf())));
    }
    let mut query = OpenQuery {
        limit: open_calls::MAX_LIMIT,
        full_numbers,
        ..OpenQuery::default()
    };
    let mut all = empty;
    loop {
        let (page, origin) = match Store::open(data_dir) {
            Ok(store) => {
                let zone = &config.service.timezone;
                let page = open_calls::page(&store, &query, now, zone)
                    .map_err(|e| CliError::Failed(e.to_string()))?;
                (page, Origin::Store)
            }
            Err(StoreError::Locked { .. }) => {
                let addr = remote::connect_address(config.http.listen);
                let token = config.http.tokens.first().map(|t| t.expose());
                let mut path = format!("/api/v1/incidents?limit={}", query.limit);
                if let Some(after) = query.after {
                    path.push_str(&format!("&cursor={}", open_calls::encode(after)));
                }
                let body = remote::get(addr, &path, token).map_err(|e| {
                    CliError::Failed(format!(
                        "the store {} is in use (a running service?) and its HTTP API did not \
                         give the open calls: {e}",
                        data_dir.display()
                    ))
                })?;
                let page: OpenPage = serde_json::from_str(&body).map_err(|e| {
                    CliError::Failed(format!(
                        "the service at {addr} sent a page we cannot read: {e}"
                    ))
                })?;
                (page, Origin::Service(addr.to_string()))
            }
            Err(e) => return Err(CliError::Failed(e.to_string())),
        };
        all.items.extend(page.items);
        match page.next.as_deref().and_then(open_calls::decode) {
            Some(next) => query.after = Some(next),
            None => return Ok((all, origin)),
        }
    }
}

/// A page of the feed from the service's HTTP API.
fn remote_page(config: &Config, query: &FeedQuery) -> Result<(Page, Origin), CliError> {
    let addr = remote::connect_address(config.http.listen);
    let token = config.http.tokens.first().map(|t| t.expose());
    let mut path = format!("/api/v1/responses?limit={}", query.limit);
    let time = |ms: Millis| jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string());
    if query.from != Millis::MIN
        && let Ok(t) = time(query.from)
    {
        path.push_str(&format!("&from={}", t.replace('+', "%2B")));
    }
    if query.to != Millis::MAX
        && let Ok(t) = time(query.to - 1)
    {
        path.push_str(&format!("&to={}", t.replace('+', "%2B")));
    }
    for (name, value) in [
        ("operator", &query.operator),
        ("channel", &query.channel),
        ("flow", &query.flow),
    ] {
        if let Some(v) = value {
            path.push_str(&format!("&{name}={}", encode(v)));
        }
    }
    if let Some(score) = query.score {
        path.push_str(&format!("&score={score}"));
    }
    if let Some(after) = query.after {
        path.push_str(&format!("&cursor={}", after.encode()));
    }
    let body = remote::get(addr, &path, token).map_err(|e| {
        CliError::Failed(format!(
            "the store {} is in use (a running service?) and its HTTP API did not give the \
             responses: {e}",
            config.service.data_dir.display()
        ))
    })?;
    let page: Page = serde_json::from_str(&body).map_err(|e| {
        CliError::Failed(format!(
            "the service at {addr} sent a page we cannot read: {e}"
        ))
    })?;
    Ok((page, Origin::Service(addr.to_string())))
}

/// Percent-encodes a query value (everything but unreserved ASCII).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
