//! A damaged data directory through `smsflow run` as a process (issue 27, item 1): zeros,
//! random bytes and truncation at several offsets of sled's `db`, of its `conf` and snapshot,
//! and of `smsflow.seal`, each on a copy of one store of a few hundred conversations made
//! through the service. Each case either refuses to start (exit 1, the documented message on
//! one line, no panic on stderr), or starts, and then either everything reads back whole or
//! the first read that meets the damage reports it: `/readyz` 503 saying why,
//! `smsflow_store_damaged` 1, one ERROR naming `smsflow store verify` and `smsflow store
//! restore`. Never a 500, and never an event id posted again taken for a new event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Resp, raw};
use crate::run::{
    ServiceSetup, service_log, setup_in, shipped_scripts_in, sigterm, simulator, spawn_service,
};
use crate::util::{TempDir, WAIT, send_mo, until_ready};

/// Conversations of the `note` flow, closed at once: their records are read only when asked
/// for, so damage to them shows after the start.
const NOTES: usize = 20;
/// Survey events; the first [`RATED`] of them get their rating, the rest stay open.
const SURVEYS: usize = 300;
const RATED: usize = 250;
/// Survey events posted after a restart (sled writes its snapshot at the second open).
const LATER: usize = 20;
/// Cases run at once (each its own `smsflow run`).
const PARALLEL: usize = 4;

/// A flow whose conversations keep a note from their event and finish at once.
const NOTE_FLOW: &str = r#"
fn on_event(event) {
    this.note = event.note;
    finish("noted");
}
"#;

/// What an event id posted was answered with.
#[derive(Debug, Clone)]
struct Event {
    flow: &'static str,
    body: String,
    conversation: u64,
}

/// The store every case starts from: its data directory and what went into it.
struct Made {
    _dir: TempDir,
    scripts: PathBuf,
    data: PathBuf,
    events: Vec<Event>,
}

fn note_body(i: usize) -> String {
    json!({"id": format!("note-{i}"), "note": marker(i)}).to_string()
}

/// The note of note `i`: bytes found nowhere else in the store.
fn marker(i: usize) -> String {
    format!("zz-note-{i:03}-zz")
}

fn survey_body(i: usize) -> String {
    json!({"id": format!("call-{i}"), "msisdn": msisdn(i), "operator": "op-1", "channel": "call"})
        .to_string()
}

fn msisdn(i: usize) -> String {
    format!("99893{i:07}")
}

async fn post(http: std::net::SocketAddr, flow: &str, body: &str) -> Resp {
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    let path = format!("/api/v1/flows/{flow}/events");
    raw(http, "POST", &path, &headers, Some(body.as_bytes())).await
}

/// `body` posted to `flow`, answered 202 with a new conversation.
async fn posted(setup: &ServiceSetup, flow: &'static str, body: String) -> Event {
    let resp = post(setup.http, flow, &body).await;
    assert_eq!(resp.status, 202, "{}", resp.json);
    assert_eq!(resp.json["duplicate"], false, "{}", resp.json);
    Event {
        flow,
        conversation: resp.json["conversation"].as_u64().unwrap(),
        body,
    }
}

/// Makes the store through the service: notes, surveys (most rated by a reply), a clean
/// stop, a restart with a few more surveys, a clean stop.
async fn make(smsc: &smsflow::sim::SmscHandle) -> Made {
    let dir = TempDir::new("damage-made");
    let scripts = shipped_scripts_in(dir.path());
    std::fs::write(scripts.join("note.rhai"), NOTE_FLOW).unwrap();
    let setup = setup_in(dir.path(), smsc.local_addr().port(), &scripts);
    let mut events = Vec::new();
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    for i in 0..NOTES {
        events.push(posted(&setup, "note", note_body(i)).await);
    }
    for i in 0..SURVEYS {
        events.push(posted(&setup, "survey", survey_body(i)).await);
    }
    for i in 0..RATED {
        // Acknowledged once the rating is on disk.
        assert!(send_mo(smsc, &msisdn(i), "4").await.is_ok());
    }
    assert!(sigterm(&mut service).await.success());
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    for i in SURVEYS..SURVEYS + LATER {
        events.push(posted(&setup, "survey", survey_body(i)).await);
    }
    assert!(sigterm(&mut service).await.success());
    Made {
        data: setup.data.clone(),
        scripts,
        events,
        _dir: dir,
    }
}

/// Where in a file the damage goes.
#[derive(Debug, Clone, Copy)]
enum At {
    Byte(u64),
    /// A fraction of the file's length, rounded down to 4 KiB.
    Part(f64),
    /// This many bytes before its end.
    End(u64),
}

/// What is done to a file.
#[derive(Debug, Clone)]
enum Harm {
    Zeros(At, usize),
    Noise(At, usize, u64),
    Truncate(At),
    Remove,
    /// Every occurrence of these bytes zeroed (the record that holds them, in every copy).
    ZeroText(String),
}

/// One file of the data directory (`snap.*` for sled's snapshot) and what is done to it.
#[derive(Debug, Clone)]
struct Case {
    file: &'static str,
    harm: Harm,
}

impl Case {
    fn name(&self) -> String {
        format!("{} {:?}", self.file, self.harm)
    }
}

fn cases() -> Vec<Case> {
    use At::*;
    use Harm::*;
    let db = |harm| Case { file: "db", harm };
    let mut cases = vec![
        db(Zeros(Byte(0), 4096)),
        db(Zeros(Byte(64 << 10), 4096)),
        db(Zeros(Byte(512 << 10), 4096)),
        db(Zeros(Byte(1 << 20), 4096)),
        db(Zeros(Byte(2 << 20), 4096)),
        db(Zeros(Part(0.5), 4096)),
        db(Zeros(Part(0.75), 4096)),
        db(Zeros(End(8192), 4096)),
        db(Noise(Byte(0), 4096, 1)),
        db(Noise(Byte(64 << 10), 4096, 2)),
        db(Noise(Byte(1 << 20), 4096, 3)),
        db(Noise(Part(0.33), 4096, 4)),
        db(Noise(Part(0.66), 4096, 5)),
        db(Noise(Byte(300_000), 512, 6)),
        db(Truncate(Byte(64 << 10))),
        db(Truncate(Byte(1 << 20))),
        db(Truncate(Part(0.5))),
        db(Truncate(End(4096))),
        // A closed conversation's record: nothing reads it at the start.
        db(ZeroText(marker(7))),
        // An event id: the idempotency index is read whole at the start.
        db(ZeroText("call-150".into())),
    ];
    for harm in [
        Zeros(Byte(0), 1024),
        Noise(Byte(0), 1024, 7),
        Truncate(Byte(0)),
        Truncate(Byte(100)),
    ] {
        cases.push(Case {
            file: "smsflow.seal",
            harm,
        });
    }
    for harm in [
        Zeros(Byte(0), 62),
        Noise(Byte(0), 62, 8),
        Truncate(Byte(30)),
    ] {
        cases.push(Case { file: "conf", harm });
    }
    for harm in [Noise(Byte(100), 200, 9), Truncate(Part(0.5)), Remove] {
        cases.push(Case {
            file: "snap.*",
            harm,
        });
    }
    cases
}

/// The file `pattern` names in `data` (`snap.*`: sled's snapshot).
fn file_in(data: &Path, pattern: &str) -> PathBuf {
    match pattern.strip_suffix('*') {
        None => data.join(pattern),
        Some(prefix) => (std::fs::read_dir(data).unwrap())
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {pattern} in {}", data.display())),
    }
}

/// `len` bytes of a fixed LCG stream from `seed`.
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

fn harm(data: &Path, case: &Case) {
    let path = file_in(data, case.file);
    if matches!(case.harm, Harm::Remove) {
        std::fs::remove_file(&path).unwrap();
        return;
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let offset = |at: At| -> usize {
        let len = bytes.len() as u64;
        let at = match at {
            At::Byte(b) => b,
            At::Part(f) => ((len as f64 * f) as u64) & !4095,
            At::End(n) => len.saturating_sub(n),
        };
        (at.min(len)) as usize
    };
    match &case.harm {
        Harm::Zeros(at, n) => {
            let from = offset(*at);
            let to = (from + n).min(bytes.len());
            bytes[from..to].fill(0);
        }
        Harm::Noise(at, n, seed) => {
            let from = offset(*at);
            let to = (from + n).min(bytes.len());
            bytes[from..to].copy_from_slice(&noise(*seed, to - from));
        }
        Harm::Truncate(at) => bytes.truncate(offset(*at)),
        Harm::ZeroText(text) => {
            let text = text.as_bytes();
            let mut found = 0;
            let mut at = 0;
            while let Some(i) = (bytes[at..].windows(text.len())).position(|w| w == text) {
                bytes[at + i..at + i + text.len()].fill(0);
                at += i + text.len();
                found += 1;
            }
            assert!(
                found > 0,
                "{}: the text is nowhere in {}",
                case.name(),
                path.display()
            );
        }
        Harm::Remove => unreachable!(),
    }
    std::fs::write(&path, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What became of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Refused,
    Whole,
    /// Started, and a read met the damage.
    Damaged,
}

/// `smsflow run` on a copy of `made` with `case` done to it; panics naming the case when it
/// does anything but refuse, read back whole, or report the damage.
async fn run_case(made: Arc<Made>, smsc_port: u16, case: Case) -> Outcome {
    let dir = TempDir::new("damage-case");
    let setup = setup_in(dir.path(), smsc_port, &made.scripts);
    copy_dir(&made.data, &setup.data);
    harm(&setup.data, &case);
    let name = case.name();
    let mut service = spawn_service(&setup.config);
    let log = || std::fs::read_to_string(service_log(&setup.config)).unwrap_or_default();
    // Started (ready, or already damaged: that is a 503 too), or exited.
    let deadline = tokio::time::Instant::now() + WAIT;
    let started = loop {
        if let Some(exit) = service.try_wait().unwrap() {
            break Err(exit);
        }
        if let Some(r) = crate::http::try_raw(setup.http, "GET", "/readyz", &[], None).await
            && (r.status == 200 || r.json["error"] == "store damaged")
        {
            break Ok(());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: neither started nor exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if let Err(exit) = started {
        let log = log();
        assert_eq!(exit.code(), Some(1), "{name}: {log}");
        refusal(&name, &log);
        return Outcome::Refused;
    }
    let outcome = read_everything(&name, &setup, &made.events).await;
    let log = log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    let metrics = raw(setup.metrics, "GET", "/metrics", &[], None).await.body;
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("smsflow_store_damaged "))
        .unwrap_or_else(|| panic!("{name}: no smsflow_store_damaged in /metrics"))
        .to_owned();
    let readyz = raw(setup.http, "GET", "/readyz", &[], None).await;
    match outcome {
        Outcome::Damaged => {
            readyz.assert_error(503, "store damaged");
            let detail = readyz.json["detail"].as_str().unwrap_or_default();
            assert!(says_what_to_do(detail), "{name}: /readyz says {detail}");
            assert_eq!(gauge, "1", "{name}");
            assert_eq!(errors.len(), 1, "{name}: one ERROR, not {errors:#?}");
            assert!(
                errors[0].contains("is damaged (reading "),
                "{name}: {}",
                errors[0]
            );
            assert!(says_what_to_do(errors[0]), "{name}: {}", errors[0]);
            // Nothing new is taken.
            let new = post(setup.http, "survey", &survey_body(9_999)).await;
            new.assert_error(503, "store damaged");
        }
        _ => {
            assert_eq!(readyz.status, 200, "{name}: {}", readyz.json);
            assert_eq!(gauge, "0", "{name}");
            assert!(errors.is_empty(), "{name}: {errors:#?}");
        }
    }
    assert!(!panicked(&log), "{name}: {log}");
    let exit = sigterm(&mut service).await;
    assert!(exit.success(), "{name}: {exit:?}\n{}", log);
    outcome
}

/// Whether the panic hook printed (a panic's own line, or a backtrace).
fn panicked(log: &str) -> bool {
    let hook = |l: &str| l.starts_with("thread '") && l.contains(" panicked at ");
    log.lines()
        .any(|l| hook(l) || l.contains("stack backtrace"))
}

/// Names the way out: check, then restore.
fn says_what_to_do(text: &str) -> bool {
    text.contains("`smsflow store verify`") && text.contains("`smsflow store restore DIR`")
}

/// A refusal: `smsflow run: ...` on one line saying what to do, and no panic on stderr.
fn refusal(name: &str, log: &str) {
    assert!(!panicked(log), "{name}: {log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(last.starts_with("smsflow run: "), "{name}: {log}");
    assert!(last.contains("smsflow store restore DIR"), "{name}: {last}");
    let damage = [
        "is damaged",
        "were made durable",
        "reads back",
        "is missing commits",
    ];
    assert!(damage.iter().any(|d| last.contains(d)), "{name}: {last}");
}

/// Every conversation listed and read, every event posted again: whole, or damage
/// reported as such. Never a 500, never an event id taken for a new one.
async fn read_everything(name: &str, setup: &ServiceSetup, events: &[Event]) -> Outcome {
    let mut damaged = false;
    let mut seen = |resp: &Resp, what: &str| -> bool {
        let ok = resp.status == 200;
        let is_damage = resp.status == 503 && resp.json["error"] == "store damaged";
        assert!(
            ok || is_damage,
            "{name}: {what}: {} {}",
            resp.status,
            resp.body
        );
        damaged |= is_damage;
        ok
    };
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=500&cursor={c}"),
            None => "/api/v1/conversations?limit=500".to_owned(),
        };
        let page = raw(setup.http, "GET", &path, &[], None).await;
        if !seen(&page, "the list") {
            break;
        }
        listed += page.json["conversations"].as_array().map_or(0, Vec::len);
        match &page.json["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            _ => break,
        }
    }
    let mut read = 0;
    for e in events {
        let path = format!("/api/v1/conversations/{}", e.conversation);
        if seen(&raw(setup.http, "GET", &path, &[], None).await, &path) {
            read += 1;
        }
    }
    let report = raw(setup.http, "GET", "/api/v1/reports/csi", &[], None).await;
    seen(&report, "the CSI report");
    for e in events {
        let again = post(setup.http, e.flow, &e.body).await;
        if again.status == 202 {
            assert_eq!(
                again.json["duplicate"], true,
                "{name}: {} posted again was taken for a new event: {}",
                e.body, again.json
            );
            assert_eq!(again.json["conversation"], e.conversation, "{name}");
        } else {
            again.assert_error(503, "store damaged");
            damaged = true;
        }
    }
    if damaged {
        return Outcome::Damaged;
    }
    assert_eq!(
        listed,
        events.len(),
        "{name}: conversations missing, unreported"
    );
    assert_eq!(read, events.len(), "{name}");
    Outcome::Whole
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_data_dir_is_refused_or_reported_never_served_silently() {
    let smsc = simulator().await;
    let port = smsc.local_addr().port();
    let made = Arc::new(make(&smsc).await);
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut outcomes = Vec::new();
    for batch in cases.chunks(PARALLEL) {
        let runs: Vec<_> = (batch.iter().cloned())
            .map(|case| tokio::spawn(run_case(made.clone(), port, case)))
            .collect();
        for (case, run) in batch.iter().zip(runs) {
            match run.await {
                Ok(outcome) => outcomes.push((case.name(), outcome)),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }
    for (name, outcome) in &outcomes {
        println!("{outcome:?}\t{name}");
    }
    // The two aimed at live data (the records that hold them: a note, an event id) are
    // reported when read, or refused when sled's layout put them where the start reads.
    // Where the rest land varies with sled's segments.
    for aimed in [marker(7), "call-150".to_owned()] {
        let (_, outcome) = outcomes.iter().find(|(n, _)| n.contains(&aimed)).unwrap();
        assert_ne!(*outcome, Outcome::Whole, "{aimed}");
    }
    smsc.shutdown().await;
}
