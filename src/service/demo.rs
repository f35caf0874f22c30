//! `smsflow demo`: the whole product on loopback, with nothing to configure.
//!
//! Starts the built-in SMSC simulator with simulated subscribers and staff, binds to it, runs
//! the shipped flows (supervisors set, short escalation and resolve timeouts) over a store in a temporary
//! directory, posts surveys and incidents and a restaurant's evening of button presses
//! ([`super::restaurant`]), shows progress, prints the CSI, incident and service quality audit
//! reports (the tables of `smsflow report`) and writes the HTML dashboard to a file it names.
//!
//! **Repeatable.** The same [`DemoConfig::seed`] gives the same numbers, although the run is
//! on the real clock:
//! - every choice of the simulator is a function of the seed and the message (who answers,
//!   what, after how long; which numbers are unreachable), never of the order messages
//!   arrive in (see [`crate::sim::handsets`]);
//! - staff answer after 2, 4, 6 or 8 s against a 5 s ack timeout ([`ACK_DELAY`],
//!   [`ACK_TIMEOUT`]), so an acknowledgement and the escalation it races are a second
//!   apart, not a scheduling accident; likewise their ГОТОВО and the reminders every 5 s
//!   ([`RESOLVE_TIMEOUT`]);
//! - the run ends when nothing more can happen soon: no message waiting in the
//!   outbox or the simulator, no answer still to come, no timer due within [`HORIZON`]; not
//!   after a fixed time. Only the times (seconds to acknowledge) vary, by milliseconds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::esme::{Pool, PoolConfig, tcp_connector};
use crate::flow::engine::{EngineConfig, FlowEngine};
use crate::report::{self, AuditReport, CsiReport, IncidentReport, Kind, Report};
use crate::sim::{self, DelayRange, SimConfig, SubscribersConfig};
use crate::store::{ConversationId, Incident, Rating, Store};

use super::driver::{Counts, Pipeline, Settings, now_ms};
use super::history::{self, History, Made};
use super::restaurant;

/// Days of history by default: with today, the 30 days the reports cover and the 30 before
/// them that each "vs previous period" compares with, so the comparison is of like with like.
pub const DEFAULT_HISTORY_DAYS: u32 = 2 * report::query::DEFAULT_DAYS as u32 - 1;

/// The history's daily volume: enough for each operator's day to have a few answers.
const HISTORY_SURVEYS_PER_DAY: u32 = 60;
const HISTORY_INCIDENTS_PER_DAY: u32 = 4;

const SURVEY: &str = include_str!("../../scripts/survey.rhai");
const ESCALATION: &str = include_str!("../../scripts/escalation.rhai");
const INBOX: &str = include_str!("../../scripts/inbox.rhai");
const COMPLAINT: &str = include_str!("../../scripts/complaint.rhai");

/// Supervisors the demo sets in the survey flow (the shipped setting is empty).
const SUPERVISORS: &str = r#"supervisors: [["998977000001"], ["998977000002"]],"#;

/// Each level's time to acknowledge a posted staff call, before it escalates.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a taken call may stay open before a reminder, each reminder restarting it. The
/// staff's ГОТОВО comes after the same 2, 4, 6 or 8 s as an ack (from the message that asked),
/// so 5 s keeps it a second or more from every reminder; 3 s raced the reply at 6 s with the
/// second reminder, and two runs of one seed sent 65 or 68 messages.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// When the simulated staff who answer do: whole steps of 2 s, an odd number of seconds from
/// every escalation at 5, 10, 15 s (see the module doc). 6 and 8 s are late acks.
pub const ACK_DELAY: DelayRange = DelayRange::new(Duration::from_secs(2), Duration::from_secs(8))
    .in_steps(Duration::from_secs(2));
/// Timers further away than this (a survey's 24 h answer window, a supervisor call's 10 min)
/// are not waited for.
pub const HORIZON: Duration = Duration::from_secs(60);
/// The run stops waiting after this even if something is still due (it says so).
pub const MAX_WAIT: Duration = Duration::from_secs(180);

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
    /// Survey events posted.
    pub surveys: u32,
    /// Staff calls posted by call buttons (ratings of 1–2 open more, for supervisors).
    pub incidents: u32,
    /// Seed of the simulator's every choice: the same seed, the same numbers.
    pub seed: u64,
    /// Days of history made before the live part ([`super::history`]).
    pub days: u32,
    /// Press a restaurant's table buttons too: complaints and manager calls
    /// ([`super::restaurant`]), and the service quality audit of them.
    pub restaurant: bool,
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
    #[error("making the history: {0}")]
    History(#[from] history::HistoryError),
}

/// What the demo did, for printing.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub seed: u64,
    pub surveys_sent: usize,
    pub ratings: Vec<Rating>,
    pub survey_outcomes: Vec<(String, usize)>,
    /// Ratings of the live part (today, over SMPP); `ratings` holds the history's too.
    pub live_ratings: usize,
    /// Every call in the reports' range as it stands (its latest incident record): calls from
    /// call buttons (history and live) and those opened for supervisors by low ratings.
    pub incidents: Vec<Incident>,
    /// Staff calls posted by call buttons in the live part.
    pub incidents_posted: usize,
    /// Supervisor calls opened by ratings of 1–2 in the reports' range, open ones included.
    pub supervisor_calls: usize,
    /// The restaurant's presses posted now: (complaints, manager calls).
    pub restaurant_presses: (usize, usize),
    /// Calls still waiting for an OK, or taken and not resolved, at the end: `open` in the
    /// report (a supervisor's has a 10 min timeout).
    pub calls_open: usize,
    /// Messages through the service: MO in, MT out.
    pub counts: Counts,
    /// The run stopped at [`MAX_WAIT`] with something still due (never on a healthy machine).
    pub cut_short: bool,
    /// The CSI report of the last 30 days (by operator), as `smsflow report csi` makes it.
    pub csi: Option<Box<CsiReport>>,
    /// The incident report of the last 30 days (by location).
    pub incident_report: Option<Box<IncidentReport>>,
    /// The service quality audit of the last 30 days (by location): the restaurant's presses.
    pub audit: Option<Box<AuditReport>>,
    /// Where the HTML dashboard was written, if it could be.
    pub html: Option<PathBuf>,
    /// The Prometheus text a running service would serve at `/metrics`, after the run.
    pub metrics: String,
    /// Where that text was written, if it could be.
    pub metrics_file: Option<PathBuf>,
    pub elapsed: Duration,
    /// What the days of history before the live part hold.
    pub history: Made,
    pub history_days: u32,
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
    // Two runs in one process (tests) may start in the same millisecond: a counter too.
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "smsflow-demo-{}-{}-{run}",
        std::process::id(),
        now_ms()
    ));
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
        ("complaint.rhai", COMPLAINT.to_owned()),
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
                &report::render::html::PageOptions {
                    generated_at: Some(
                        jiff::Zoned::now().strftime("%Y-%m-%d %H:%M %Z").to_string(),
                    ),
                    audit: report.audit.as_deref(),
                    ..Default::default()
                },
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
    // The range `smsflow report` gives by default, which the printed reports use: the
    // summary lines count over it too.
    let today = report::query::today(engine.timezone(), now_ms());
    let today_start = report::query::range_ms(engine.timezone(), today, today).0;
    let report_range = report::Query::parse(Kind::Csi, None, None, None, today)
        .map(|q| report::query::range_ms(engine.timezone(), q.from, q.to))
        .unwrap_or((today_start, i64::MAX));
    let history = if config.days > 0 {
        let history = History {
            days: config.days,
            surveys_per_day: HISTORY_SURVEYS_PER_DAY,
            incidents_per_day: HISTORY_INCIDENTS_PER_DAY,
            seed: config.seed,
            report_from: report_range.0,
        };
        history::make(&engine, &history, today_start)?
    } else {
        Made::default()
    };

    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().map_err(|_| DemoError::NotBound)?,
        receipt_delay: Duration::from_millis(100),
        receipt_failure_share: 0.05,
        seed: config.seed,
        subscribers: Some(SubscribersConfig {
            // Subscribers race no timer: any delay will do.
            reply_delay: DelayRange::new(Duration::from_millis(200), Duration::from_millis(1500)),
            ack_delay: ACK_DELAY,
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
            "ack_timeout": humantime::format_duration(ACK_TIMEOUT).to_string(),
            "resolve_timeout": humantime::format_duration(RESOLVE_TIMEOUT).to_string(),
        });
        let (step, _) = engine.start(now, "escalation", event, Some(&format!("inc-{i}")))?;
        incidents.push(step.conversation);
    }
    let presses = if config.restaurant {
        restaurant::press_all(&engine, now, ACK_TIMEOUT)?
    } else {
        Vec::new()
    };
    pipeline.outbox_changed();

    // Wait until nothing more can happen soon; silent subscribers never answer (their
    // surveys would close after 24 h).
    let total = (surveys.len() + incidents.len() + presses.len()) as u64;
    let bar = if progress {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed:>3} [{bar:30}] {pos}/{len} conversations closed  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let deadline = Instant::now() + MAX_WAIT;
    let mut cut_short = false;
    loop {
        // Nothing to await: quiet is the absence of events in four places.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let closed_now =
            closed(&engine, &surveys)? + closed(&engine, &incidents)? + closed(&engine, &presses)?;
        bar.set_position(closed_now as u64);
        let (quiet, waiting) = settle(&store, &smsc, &pipeline)?;
        bar.set_message(waiting);
        if quiet {
            break;
        }
        if Instant::now() > deadline {
            cut_short = true;
            break;
        }
    }
    bar.finish_and_clear();

    let counts = pipeline.counts();
    pipeline.shutdown().await;
    pool.shutdown().await;
    smsc.shutdown().await;

    let store = engine.store();
    let mut outcomes: Vec<(String, usize)> = Vec::new();
    for id in &surveys {
        let outcome = match store.conversation(*id)?.map(|c| c.status) {
            Some(crate::store::ConversationStatus::Finished { outcome }) => outcome,
            Some(crate::store::ConversationStatus::Errored { .. }) => "errored".into(),
            // The report's word for it: no valid answer yet.
            _ => "open".into(),
        };
        match outcomes.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((outcome, 1)),
        }
    }
    outcomes.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    let zone = engine.timezone();
    let build = |kind| -> Result<Option<Report>, DemoError> {
        match report::Query::parse(kind, None, None, None, today) {
            Ok(query) => {
                let scale = engine.flow(&query.flow).map(|f| f.scale.clone());
                Ok(Some(report::source::build_with(
                    store, &query, zone, scale,
                )?))
            }
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
    let audit = match build(Kind::Audit)? {
        Some(Report::Audit(r)) if config.restaurant => Some(r),
        _ => None,
    };
    // Each call as it stands (its latest record): open ones too, they count from the press.
    let incidents_recorded = Incident::latest(store.incidents(report_range.0, report_range.1)?);
    // Every call still open is today's: the history's all ended before midnight.
    let calls_open = (store.open_counts()?.into_iter())
        .find(|(flow, _)| flow == "escalation")
        .map_or(0, |(_, n)| n);
    let supervisor_recorded = (incidents_recorded.iter())
        .filter(|i| !is_button_call(i) && !is_restaurant_press(i))
        .count();
    let ratings = store.ratings(i64::MIN, i64::MAX)?;
    Ok(DemoReport {
        seed: config.seed,
        surveys_sent: surveys.len(),
        live_ratings: ratings.iter().filter(|r| r.at >= today_start).count(),
        ratings,
        survey_outcomes: outcomes,
        incidents: incidents_recorded,
        incidents_posted: incidents.len(),
        supervisor_calls: supervisor_recorded,
        restaurant_presses: if config.restaurant {
            restaurant::counts()
        } else {
            (0, 0)
        },
        calls_open,
        counts,
        cut_short,
        csi,
        incident_report,
        audit,
        html: None,
        metrics: String::new(),
        metrics_file: None,
        elapsed: Duration::ZERO,
        history,
        history_days: config.days,
    })
}

/// Whether nothing more can happen soon, and what is still awaited (for the progress bar).
///
/// Quiet means: no message in the outbox (so every MT was accepted, and the simulator planned
/// its answer and receipt before accepting it), nothing the simulator owes (MOs, receipts,
/// answers of its people), no timer due within [`HORIZON`], and the outbox still empty with
/// the service's counters unchanged after those reads (nothing slipped in between).
fn settle(
    store: &Store,
    smsc: &sim::SmscHandle,
    pipeline: &Pipeline,
) -> Result<(bool, String), DemoError> {
    let before = pipeline.counts();
    let outbox = store.outbox_len();
    let sim = smsc.stats();
    let soon = now_ms() + i64::try_from(HORIZON.as_millis()).unwrap_or(i64::MAX);
    let timers = store.due_timers(soon, 1000)?.len();
    let quiet = outbox == 0
        && sim.idle()
        && timers == 0
        && store.outbox_len() == 0
        && pipeline.counts() == before;
    let mut waiting = format!("{} MO in, {} MT out", before.mo, before.mt_accepted);
    if sim.replies_pending > 0 {
        waiting += &format!(", waiting for {} late answer(s)", sim.replies_pending);
    } else if timers > 0 {
        waiting += &format!(", waiting for {timers} escalation timer(s)");
    }
    Ok((quiet, waiting))
}

/// A staff call from a call button (event id `inc-N` live, `history-inc-…` in the history),
/// not one a low rating opened for a supervisor.
fn is_button_call(incident: &Incident) -> bool {
    (incident.fields.get("id").and_then(|id| id.as_str()))
        .is_some_and(|id| id.starts_with("inc-") || id.starts_with("history-inc-"))
}

/// A press at the restaurant's tables: a complaint, or the manager call it started (kinds
/// `complaint` and `manager_call`; the call is the escalation flow's).
fn is_restaurant_press(incident: &Incident) -> bool {
    matches!(
        incident.fields.get("kind").and_then(|k| k.as_str()),
        Some("complaint" | "manager_call")
    )
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

/// The line before the run: what is simulated, what counts, what MO and MT mean.
pub fn print_header(config: &DemoConfig, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "smsflow demo (seed {}): the built-in SMSC simulator on loopback; {} surveys and {} staff \
         calls from call buttons; simulated people answer (a rating of 1–2 also calls a \
         supervisor).\n  MO = mobile-originated, a text from a phone to the short code; MT = \
         mobile-terminated, a text smsflow sends.",
        config.seed, config.surveys, config.incidents
    )?;
    if config.restaurant {
        let (complaints, calls) = restaurant::counts();
        writeln!(
            out,
            "  A restaurant's evening too: {complaints} complaints and {calls} manager calls \
             pressed at its tables."
        )?;
    }
    if config.days > 0 {
        writeln!(
            out,
            "  First {} days of history on a fake clock, through the same flows and store, so \
             the reports have trends.",
            config.days
        )?;
    }
    Ok(())
}

/// What the demo prints: what the history holds, how the surveys and staff calls ended over
/// the reports' range (each summary line counts what the report under it counts, from the
/// history and the live part separately), the CSI and incident reports as `smsflow report`
/// tables, and where the HTML dashboard is.
pub fn print(report: &DemoReport, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let h = &report.history;
    let range = report
        .csi
        .as_ref()
        .map_or(String::new(), |r| format!("{} .. {}", r.from, r.to));
    if report.history_days > 0 {
        // The days of history inside the period each "vs" compares with.
        let period = report::query::DEFAULT_DAYS as u32;
        let previous = report.history_days.saturating_sub(period - 1).min(period);
        let compared = if previous == period {
            format!("the {period} days before them are the period each \"vs\" compares with")
        } else {
            format!(
                "the period each \"vs\" compares with holds only {previous} of its {period} days \
                 (--days {} fills it)",
                2 * period - 1
            )
        };
        writeln!(
            out,
            "History: {} days before today, {} surveys and {} staff calls from call buttons. The \
             reports below cover {range}, {compared}.",
            report.history_days, h.surveys, h.incidents
        )?;
    }
    let open = (report.survey_outcomes.iter())
        .find(|(outcome, _)| outcome == "open")
        .map_or(0, |(_, n)| *n);
    let from_history = |n: u32| {
        if report.history_days > 0 {
            format!("{n} in the history, ")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "CSI survey, {range}: {} surveys sent ({}{} posted now), {} answered with a rating ({}{} \
         now); {open} of today's still open when the demo ends (silent subscribers: the 24 h \
         answer window outlasts the demo).\n",
        h.in_report.surveys as usize + report.surveys_sent,
        from_history(h.in_report.surveys),
        report.surveys_sent,
        h.in_report.replies as usize + report.live_ratings,
        from_history(h.in_report.replies),
        report.live_ratings,
    )?;
    match &report.csi {
        Some(csi) => write!(out, "{}", report::render::table::csi(csi))?,
        None => writeln!(out, "(no CSI report)")?,
    }
    writeln!(out)?;
    let (complaints, manager_calls) = report.restaurant_presses;
    let buttons = h.in_report.incidents as usize + report.incidents_posted + manager_calls;
    let calls = buttons + report.supervisor_calls;
    let counted = (report.incident_report.as_ref()).map_or(0, |r| r.total.incidents as usize);
    let uncounted = match calls.saturating_sub(counted) {
        0 => String::new(),
        n => format!(" ({n} of them outside the report's days)"),
    };
    let open = match report.calls_open {
        0 => String::new(),
        n => format!("; {n} still open (ringing, or taken and not resolved), counted as open"),
    };
    let managers = match manager_calls {
        0 => String::new(),
        n => format!(", {n} manager calls from the restaurant's tables"),
    };
    writeln!(
        out,
        "Staff calls, {range}: {buttons} from call buttons ({}{} posted now{managers}) and {} that \
         a rating of 1–2 opened for a supervisor; the report below counts {counted} of these \
         {calls}{uncounted}{open}.\n",
        from_history(h.in_report.incidents),
        report.incidents_posted,
        report.supervisor_calls,
    )?;
    match &report.incident_report {
        Some(r) => write!(out, "{}", report::render::table::incidents(r))?,
        None => writeln!(out, "(no incident report)")?,
    }
    if let Some(audit) = &report.audit {
        writeln!(
            out,
            "\nA restaurant's evening, today at {}: {} presses of the tables' buttons, {complaints} \
             of cancel (a complaint: the manager is texted the table and the order, nobody is \
             called) and {manager_calls} of call (the manager is called, the deputy when nobody \
             answers within {} s); the audit below counts them.\n",
            restaurant::LOCATION,
            complaints + manager_calls,
            ACK_TIMEOUT.as_secs()
        )?;
        write!(out, "{}", report::render::audit::table(audit))?;
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
    if report.cut_short {
        writeln!(
            out,
            "\nStopped waiting after {} s with messages or timers still due: the numbers may \
             differ from another run with seed {}.",
            MAX_WAIT.as_secs(),
            report.seed
        )?;
    }
    writeln!(
        out,
        "\nDone in {:.1} s: {} MO in, {} MT out. `smsflow demo --seed {}` gives the same numbers again.",
        report.elapsed.as_secs_f64(),
        report.counts.mo,
        report.counts.mt_accepted,
        report.seed
    )?;
    Ok(())
}
