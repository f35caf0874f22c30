//! `smsflow demo`: the whole product on loopback, with nothing to configure.
//!
//! Starts the built-in SMSC simulator with simulated subscribers and staff, binds to it, runs
//! the shipped flows (supervisors set, short escalation and resolve timeouts) over a store in a temporary
//! directory, posts surveys and incidents, shows progress, prints the CSI and incident reports
//! (the tables of `smsflow report`) and writes the HTML dashboard to a file it names.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::esme::{Pool, PoolConfig, tcp_connector};
use crate::flow::engine::{EngineConfig, FlowEngine};
use crate::report::{self, CsiReport, IncidentReport, Kind, Report};
use crate::sim::{self, DelayRange, SimConfig, SubscribersConfig};
use crate::store::{ConversationId, Incident, Rating, Store};

use super::driver::{Pipeline, Settings, now_ms};

const SURVEY: &str = include_str!("../../scripts/survey.rhai");
const ESCALATION: &str = include_str!("../../scripts/escalation.rhai");
const INBOX: &str = include_str!("../../scripts/inbox.rhai");

/// Supervisors the demo sets in the survey flow (the shipped setting is empty).
const SUPERVISORS: &str = r#"supervisors: [["998977000001"], ["998977000002"]],"#;

const OPERATORS: [&str; 5] = ["op-11", "op-17", "op-23", "op-31", "op-42"];
const CHANNELS: [&str; 4] = ["call", "chat", "ticket", "order"];
const BUTTONS: [(&str, &str); 5] = [
    ("Палата 315", "терапевтическое отделение"),
    ("Палата 204", "хирургия"),
    ("Стол 7", "ресторан, зал 1"),
    ("Касса 2", "магазин"),
    ("Примерочная 3", "магазин"),
];

#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    pub surveys: u32,
    pub incidents: u32,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot prepare {path}: {source}")]
    Files {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),
    #[error(transparent)]
    Engine(#[from] crate::flow::engine::EngineError),
    #[error("a shipped flow does not compile: {0}")]
    Flow(String),
    #[error("could not bind to the simulator within 10 s")]
    NotBound,
}

/// What the demo did, for printing.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub surveys_sent: usize,
    pub ratings: Vec<Rating>,
    pub survey_outcomes: Vec<(String, usize)>,
    pub incidents: Vec<Incident>,
    /// The CSI report of the last 30 days (by operator), as `smsflow report csi` makes it.
    pub csi: Option<Box<CsiReport>>,
    /// The incident report of the last 30 days (by location).
    pub incident_report: Option<Box<IncidentReport>>,
    /// Where the HTML dashboard was written, if it could be.
    pub html: Option<PathBuf>,
    /// The Prometheus text a running service would serve at `/metrics`, after the run.
    pub metrics: String,
    /// Where that text was written, if it could be.
    pub metrics_file: Option<PathBuf>,
    pub elapsed: Duration,
}

/// The demo's HTML dashboard, in the temp directory (the same name every run, so a browser tab
/// can be reloaded).
pub fn html_path() -> PathBuf {
    std::env::temp_dir().join("smsflow-demo-report.html")
}

/// Runs the demo; `progress` draws a progress bar on stderr.
pub async fn run(config: DemoConfig, progress: bool) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let metrics = crate::metrics::install();
    let dir =
        std::env::temp_dir().join(format!("smsflow-demo-{}-{}", std::process::id(), now_ms()));
    let scripts = dir.join("scripts");
    let files = |e| DemoError::Files {
        path: dir.clone(),
        source: e,
    };
    std::fs::create_dir_all(&scripts).map_err(files)?;
    for (name, source) in [
        (
            "survey.rhai",
            SURVEY.replacen("supervisors: [],", SUPERVISORS, 1),
        ),
        ("escalation.rhai", ESCALATION.to_owned()),
        ("inbox.rhai", INBOX.to_owned()),
    ] {
        std::fs::write(scripts.join(name), source).map_err(files)?;
    }
    let result = run_in(&dir, config, progress).await;
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|mut report| {
        if report.csi.is_some() || report.incident_report.is_some() {
            let page = report::render::html::page(
                report.csi.as_deref(),
                report.incident_report.as_deref(),
            );
            // Written beside and renamed, so a reader never sees half a page.
            let path = html_path();
            let partial = path.with_extension(format!("html.{}", std::process::id()));
            if std::fs::write(&partial, page).is_ok() && std::fs::rename(&partial, &path).is_ok() {
                report.html = Some(path);
            }
        }
        report.metrics = metrics.render();
        let path = std::env::temp_dir().join("smsflow-demo-metrics.prom");
        if std::fs::write(&path, &report.metrics).is_ok() {
            report.metrics_file = Some(path);
        }
        report.elapsed = started.elapsed();
        report
    })
}

async fn run_in(
    dir: &std::path::Path,
    config: DemoConfig,
    progress: bool,
) -> Result<DemoReport, DemoError> {
    let timezone = jiff::tz::TimeZone::get("Asia/Tashkent").unwrap_or(jiff::tz::TimeZone::UTC);
    let store = Store::open_in(dir.join("data"), &timezone)?;
    let (engine, errors) = FlowEngine::new(
        store.clone(),
        EngineConfig {
            scripts_dir: Some(dir.join("scripts")),
            timezone,
            ..EngineConfig::default()
        },
    );
    if let Some(e) = errors.first() {
        return Err(DemoError::Flow(e.to_string()));
    }
    let engine = Arc::new(engine);

    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().map_err(|_| DemoError::NotBound)?,
        receipt_delay: Duration::from_millis(100),
        receipt_failure_share: 0.05,
        seed: config.seed,
        subscribers: Some(SubscribersConfig {
            reply_delay: DelayRange::new(Duration::from_millis(200), Duration::from_millis(1500)),
            ack_delay: DelayRange::new(Duration::from_millis(800), Duration::from_secs(7)),
        }),
        ..SimConfig::default()
    })
    .await?;
    let addr = smsc.local_addr();
    let mut pool_config =
        PoolConfig::new("demo", tcp_connector(addr.ip().to_string(), addr.port()));
    pool_config.reconnect_min = Duration::from_millis(100);
    pool_config.reconnect_max = Duration::from_secs(1);
    let (pool, inbound) = Pool::start(pool_config, 1024);
    let pool = Arc::new(pool);
    let pipeline = Pipeline::start(
        engine.clone(),
        store.clone(),
        vec![pool.clone()],
        inbound,
        Settings::default(),
    );

    let bind_deadline = Instant::now() + Duration::from_secs(10);
    while pool.bound() == 0 {
        if Instant::now() > bind_deadline {
            return Err(DemoError::NotBound);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Post the surveys and incidents, as a business system would.
    let mut surveys = Vec::new();
    let mut incidents = Vec::new();
    let now = now_ms();
    for i in 0..config.surveys {
        let event = serde_json::json!({
            "id": format!("call-{i}"),
            "msisdn": format!("99890{:07}", 1_000_000 + i),
            "operator": OPERATORS[i as usize % OPERATORS.len()],
            "channel": CHANNELS[i as usize % CHANNELS.len()],
            "comment": i % 3 != 0,
        });
        let (step, _) = engine.start(now, "survey", event, Some(&format!("call-{i}")))?;
        surveys.push(step.conversation);
    }
    for i in 0..config.incidents {
        let (name, location) = BUTTONS[i as usize % BUTTONS.len()];
        let staff = |level: u32, n: u32| format!("998912{level}{:05}", i * 10 + n);
        let event = serde_json::json!({
            "id": format!("inc-{i}"),
            "button": {"id": 100 + i, "name": name, "location": location, "type": 102},
            "concentrator": {"host": "NURSE-PC-3", "ip": "10.0.0.17", "user": "station"},
            "levels": [[staff(1, 0)], [staff(2, 0)], [staff(3, 0), staff(3, 1)]],
            "ack_timeout": "4s",
            "resolve_timeout": "3s",
        });
        let (step, _) = engine.start(now, "escalation", event, Some(&format!("inc-{i}")))?;
        incidents.push(step.conversation);
    }
    pipeline.outbox_changed();

    // Wait until every incident is closed and the surveys stop moving (silent subscribers
    // never answer; their surveys would only close after 24 h).
    let total = (surveys.len() + incidents.len()) as u64;
    let bar = if progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed:>3} [{bar:40}] {pos}/{len} conversations closed  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut last_change = Instant::now();
    let mut closed_before = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed_surveys = closed(&engine, &surveys)?;
        let closed_incidents = closed(&engine, &incidents)?;
        let closed_now = closed_surveys + closed_incidents;
        let counts = pipeline.counts();
        bar.set_position(closed_now as u64);
        bar.set_message(format!("{} MO, {} MT", counts.mo, counts.mt_accepted));
        if closed_now != closed_before {
            closed_before = closed_now;
            last_change = Instant::now();
        }
        let incidents_done = closed_incidents == incidents.len();
        let surveys_quiet =
            closed_surveys == surveys.len() || last_change.elapsed() > Duration::from_secs(4);
        if (incidents_done && surveys_quiet) || Instant::now() > deadline {
            break;
        }
    }
    bar.finish_and_clear();

    pipeline.shutdown().await;
    pool.shutdown().await;
    smsc.shutdown().await;

    let store = engine.store();
    let mut outcomes: Vec<(String, usize)> = Vec::new();
    for id in &surveys {
        let outcome = match store.conversation(*id)?.map(|c| c.status) {
            Some(crate::store::ConversationStatus::Finished { outcome }) => outcome,
            Some(crate::store::ConversationStatus::Errored { .. }) => "errored".into(),
            _ => "no answer yet".into(),
        };
        match outcomes.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((outcome, 1)),
        }
    }
    outcomes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let zone = engine.timezone();
    let today = report::query::today(zone, now_ms());
    let build = |kind| -> Result<Option<Report>, DemoError> {
        match report::Query::parse(kind, None, None, None, today) {
            Ok(query) => Ok(Some(report::source::build(store, &query, zone)?)),
            Err(_) => Ok(None),
        }
    };
    let csi = match build(Kind::Csi)? {
        Some(Report::Csi(r)) => Some(r),
        _ => None,
    };
    let incident_report = match build(Kind::Incidents)? {
        Some(Report::Incidents(r)) => Some(r),
        _ => None,
    };
    Ok(DemoReport {
        surveys_sent: surveys.len(),
        ratings: store.ratings(i64::MIN, i64::MAX)?,
        survey_outcomes: outcomes,
        incidents: store.incidents(i64::MIN, i64::MAX)?,
        csi,
        incident_report,
        html: None,
        metrics: String::new(),
        metrics_file: None,
        elapsed: Duration::ZERO,
    })
}

fn closed(engine: &FlowEngine, ids: &[ConversationId]) -> Result<usize, DemoError> {
    let mut n = 0;
    for id in ids {
        if engine
            .store()
            .conversation(*id)?
            .is_some_and(|c| !c.status.is_open())
        {
            n += 1;
        }
    }
    Ok(n)
}

/// What the demo prints: how the surveys ended, then the CSI and incident reports as
/// `smsflow report` tables, and where the HTML dashboard is.
pub fn print(report: &DemoReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let outcomes: Vec<String> = report
        .survey_outcomes
        .iter()
        .map(|(outcome, n)| format!("{outcome} {n}"))
        .collect();
    writeln!(
        out,
        "CSI survey: {} surveys posted; outcomes: {}\n",
        report.surveys_sent,
        outcomes.join(", ")
    )?;
    match &report.csi {
        Some(csi) => write!(out, "{}", report::render::table::csi(csi))?,
        None => writeln!(out, "(no CSI report)")?,
    }
    writeln!(out)?;
    match &report.incident_report {
        Some(r) => write!(out, "{}", report::render::table::incidents(r))?,
        None => writeln!(out, "Staff calls: (no incident report)")?,
    }
    if let Some(path) = &report.html {
        writeln!(
            out,
            "\nHTML report (charts): {}\n  the same page a running service serves at GET /reports",
            path.display()
        )?;
    }
    if let Some(path) = &report.metrics_file {
        writeln!(
            out,
            "Metrics after the run: {}\n  what GET /metrics of a running service shows",
            path.display()
        )?;
    }
    writeln!(out, "\nDone in {:.1} s.", report.elapsed.as_secs_f64())?;
    Ok(())
}
