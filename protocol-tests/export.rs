//! `[export]` against a real nats-server (Debian `nats-server`), started by each test on a free
//! loopback port with JetStream in a temp dir: every event on the stream once, a `kill -9` of
//! smsflow mid-burst, NATS stopped and restarted under load, and two nodes' report from the
//! stream equal to the sum of theirs.
//!
//! Without `nats-server` on the PATH the tests say so and pass as skipped, unless
//! `SMSFLOW_REQUIRE_NATS=1` (what `.ci/run` sets): then a missing server fails them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde_json::{Value, json};
use smsflow::sim::{Mo, SmscHandle};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use crate::http::raw;
use crate::run::{
    ServiceSetup, free_port, service_setup, simulator, spawn_service, stop_with_sigterm,
};
use crate::util::{TempDir, WAIT, until, until_ready};

/// A nats-server with JetStream on 127.0.0.1, its store in a temp dir.
struct Nats {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Nats {
    /// Starts one, or `None` (after saying so) when `nats-server` is not installed.
    async fn start(name: &str) -> Option<Nats> {
        if which("nats-server").is_none() {
            let required = std::env::var("SMSFLOW_REQUIRE_NATS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "nats-server is not installed but SMSFLOW_REQUIRE_NATS=1: apt-get install -y nats-server"
            );
            eprintln!(
                "\n*** SKIPPED {name}: nats-server is not installed (apt-get install -y nats-server) ***\n"
            );
            return None;
        }
        let dir = TempDir::new(&format!("nats-{name}"));
        let port = free_port();
        let child = spawn_nats(port, &dir.0).await;
        Some(Nats { child, port, dir })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGTERM) and waits until it is gone.
    async fn stop(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("nats-server stops on SIGTERM")
            .unwrap();
    }

    /// Starts it again on the same port and store.
    async fn restart(&mut self) {
        self.child = spawn_nats(self.port, &self.dir.0).await;
    }
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// `nats-server -js` on `port`, returned once it logged that it is ready.
async fn spawn_nats(port: u16, store: &std::path::Path) -> Child {
    let mut child = Command::new(which("nats-server").unwrap())
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Server is ready") {
                return;
            }
        }
        panic!("nats-server exited before it was ready");
    });
    ready.await.expect("nats-server ready");
    // Keep reading, so a chatty server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Everything on the stream: (`Nats-Msg-Id`, subject, JSON), in stream order.
async fn stream_messages(url: &str) -> Vec<(String, String, Value)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let Ok(stream) = js.get_stream("SMSFLOW").await else {
        return Vec::new();
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: "smsflow.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 {
        return out;
    }
    let mut messages = consumer.messages().await.unwrap();
    while let Some(message) = tokio::time::timeout(WAIT, messages.next()).await.unwrap() {
        let message = message.unwrap();
        let id = (message.headers.as_ref())
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let json: Value = serde_json::from_slice(&message.payload).unwrap();
        out.push((id, message.subject.to_string(), json));
        if message.info().unwrap().pending == 0 {
            break;
        }
    }
    out
}

type Messages = Vec<(String, String, Value)>;

/// Waits until the stream holds `n` events of `kind`; returns every message.
async fn until_on_stream(url: &str, kind: &str, n: usize) -> Messages {
    until_stream(url, &format!("{n} {kind} events"), |all| {
        all.iter().filter(|(_, _, e)| e["kind"] == kind).count() >= n
    })
    .await
}

/// Waits until what the stream holds passes `done` (no event tells the test when another
/// process published); returns every message.
async fn until_stream(url: &str, what: &str, done: impl Fn(&Messages) -> bool) -> Messages {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let all = stream_messages(url).await;
        if done(&all) {
            return all;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} on the stream ({} messages)",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many questions (opening MTs) the stream says were accepted.
fn questions_sent(all: &Messages) -> usize {
    (all.iter())
        .filter(|(_, _, e)| e["kind"] == "mt" && e["opening"] == true && e["status"] == "sent")
        .count()
}

/// Checks what holds of any stream: ids unique, each naming its node, kind and conversation,
/// the subject its kind, and every node's seqs 1..=n without a gap (nothing lost).
fn check_stream(all: &[(String, String, Value)]) {
    let mut ids = BTreeSet::new();
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (id, subject, e) in all {
        assert!(ids.insert(id.clone()), "{id} twice on the stream");
        assert_eq!(id, e["id"].as_str().unwrap());
        assert_eq!(subject, &format!("smsflow.{}", e["kind"].as_str().unwrap()));
        let node = e["node"].as_str().unwrap().to_owned();
        let named = format!(
            "{node}:{}:{}:",
            e["kind"].as_str().unwrap(),
            e["conversation"]
        );
        assert!(id.starts_with(&named), "{id} is not {named}…");
        seqs.entry(node)
            .or_default()
            .push(e["seq"].as_u64().unwrap());
    }
    for (node, mut seqs) in seqs {
        seqs.sort_unstable();
        let n = seqs.len() as u64;
        assert_eq!(
            seqs,
            (1..=n).collect::<Vec<_>>(),
            "node {node}'s seqs have a gap"
        );
    }
}

/// Scores on the stream by subscriber; none may be there twice.
fn ratings(all: &[(String, String, Value)]) -> HashMap<String, u64> {
    let mut by = HashMap::new();
    for (_, _, e) in all.iter().filter(|(_, _, e)| e["kind"] == "rating") {
        let msisdn = e["msisdn"].as_str().unwrap().to_owned();
        let first = by.insert(msisdn.clone(), e["score"].as_u64().unwrap());
        assert!(first.is_none(), "{msisdn}'s rating twice on the stream");
    }
    by
}

fn msisdn(node: usize, i: usize) -> String {
    format!("9989{node}{i:07}")
}

/// A simulator and `smsflow run` as node `node` exporting to `nats`.
async fn node(name: &str, node: &str, nats: &str) -> (SmscHandle, TempDir, ServiceSetup, Child) {
    let smsc = simulator().await;
    let dir = TempDir::new(name);
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let config = std::fs::read_to_string(&setup.config).unwrap().replacen(
        "timezone = \"Asia/Tashkent\"\n",
        &format!("timezone = \"Asia/Tashkent\"\nnode = \"{node}\"\n"),
        1,
    );
    let config = format!("{config}\n[export]\nnats_url = \"{nats}\"\n");
    std::fs::write(&setup.config, config).unwrap();
    let service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    (smsc, dir, setup, service)
}

async fn post(setup: &ServiceSetup, flow: &str, body: Value) {
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let path = format!("/api/v1/flows/{flow}/events");
    let body = body.to_string();
    let r = raw(setup.http, "POST", &path, &json, Some(body.as_bytes())).await;
    assert_eq!(r.status, 202, "{}", r.json);
}

/// Surveys `range` of node `n` (operator `op-<i % 3>`), posted one after another.
async fn surveys(setup: &ServiceSetup, n: usize, range: std::ops::Range<usize>) {
    for i in range {
        let body = json!({"id": format!("call-{n}-{i}"), "msisdn": msisdn(n, i),
            "operator": format!("op-{}", i % 3), "channel": "call"});
        post(setup, "survey", body).await;
    }
}

/// Replies `1 + i % 5` for `range`, `window` at a time; returns once each was acknowledged.
async fn replies(smsc: &SmscHandle, n: usize, range: std::ops::Range<usize>, window: usize) {
    replies_counted(smsc, n, range, window, &AtomicUsize::new(0)).await;
}

/// [`replies`], counting in `acked` the ones acknowledged so far.
async fn replies_counted(
    smsc: &SmscHandle,
    n: usize,
    range: std::ops::Range<usize>,
    window: usize,
    acked: &AtomicUsize,
) {
    let mut outcomes = JoinSet::new();
    for i in range {
        while outcomes.len() >= window {
            outcomes.join_next().await.unwrap().unwrap();
            acked.fetch_add(1, Ordering::Relaxed);
        }
        outcomes.spawn(reply(smsc.clone(), n, i));
    }
    while let Some(done) = outcomes.join_next().await {
        done.unwrap();
        acked.fetch_add(1, Ordering::Relaxed);
    }
}

async fn reply(smsc: SmscHandle, n: usize, i: usize) {
    let delivery = smsc
        .inject_mo(Mo {
            source: msisdn(n, i),
            destination: "5700".into(),
            text: format!("{}", 1 + i % 5),
        })
        .unwrap();
    let status = tokio::time::timeout(WAIT, delivery.outcome())
        .await
        .expect("every reply is acknowledged in the end")
        .unwrap();
    assert!(status.is_ok(), "{status:?}");
}

/// `smsflow_export_pending` from the service's /metrics.
async fn pending(setup: &ServiceSetup) -> f64 {
    let text = raw(setup.metrics, "GET", "/metrics", &[], None).await.body;
    let line = (text.lines())
        .find(|l| l.starts_with("smsflow_export_pending "))
        .unwrap_or_else(|| panic!("no smsflow_export_pending in\n{text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until `smsflow_export_pending` passes `done` (another process's gauge: nothing to
/// await).
async fn until_pending(setup: &ServiceSetup, done: impl Fn(f64) -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(pending(setup).await) {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_stream_once() {
    let Some(nats) = Nats::start("once").await else {
        return;
    };
    let (smsc, _dir, setup, mut service) = node("export-once", "tash-1", &nats.url()).await;
    surveys(&setup, 1, 0..20).await;
    replies(&smsc, 1, 0..20, 20).await;
    // 20 questions and 20 thanks, each accepted and delivered; 20 ratings and ends.
    until_on_stream(&nats.url(), "mt", 80).await;
    let all = until_on_stream(&nats.url(), "conversation", 20).await;
    stop_with_sigterm(&mut service).await;
    check_stream(&all);
    let by = ratings(&all);
    assert_eq!(by.len(), 20);
    for i in 0..20 {
        assert_eq!(by[&msisdn(1, i)], 1 + (i % 5) as u64, "subscriber {i}");
    }
    let of = |kind: &'static str| all.iter().filter(move |(_, _, e)| e["kind"] == kind);
    for (_, _, e) in of("conversation") {
        assert_eq!(
            (e["flow"].as_str(), e["outcome"].as_str()),
            (Some("survey"), Some("rated"))
        );
        assert_eq!(e["short_code"], "5700");
    }
    // Each question: accepted, then delivered, with what the report keys its send by.
    let questions: Vec<&Value> = of("mt")
        .map(|(_, _, e)| e)
        .filter(|e| e["opening"] == true)
        .collect();
    let statuses: BTreeSet<(String, String)> = (questions.iter())
        .map(|e| {
            (
                e["to"].as_str().unwrap().to_owned(),
                e["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 40, "{statuses:?}");
    assert!(questions.iter().all(|e| e["survey"]["channel"] == "call"));
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_puts_every_rating_on_the_stream_exactly_once() {
    const SURVEYS: usize = 200;
    let Some(nats) = Nats::start("kill9").await else {
        return;
    };
    let (smsc, _dir, setup, mut service) = node("export-kill9", "tash-1", &nats.url()).await;
    surveys(&setup, 2, 0..SURVEYS).await;
    replies(&smsc, 2, 0..SURVEYS / 4, 25).await;
    // Replies still coming in and events still being published when the process dies:
    // after 40 of the burst's 150 were acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (smsc, acked) = (smsc.clone(), acked.clone());
        async move { replies_counted(&smsc, 2, SURVEYS / 4..SURVEYS, 10, &acked).await }
    });
    until(
        || acked.load(Ordering::Relaxed) >= 40,
        "40 replies of the burst",
    )
    .await;
    service.start_kill().unwrap();
    assert!(!service.wait().await.unwrap().success(), "killed");
    let mut service = spawn_service(&setup.config);
    burst.await.unwrap();

    let all = until_on_stream(&nats.url(), "rating", SURVEYS).await;
    check_stream(&all);
    let by = ratings(&all);
    for i in 0..SURVEYS {
        assert_eq!(
            by.get(&msisdn(2, i)),
            Some(&(1 + (i % 5) as u64)),
            "subscriber {i}"
        );
    }
    let metrics = raw(setup.metrics, "GET", "/metrics", &[], None).await.body;
    let republished: f64 = (metrics.lines())
        .filter(|l| l.starts_with("smsflow_export_events_total") && l.contains("duplicate"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    println!(
        "export kill -9: {} events on the stream, {republished} republished after the restart and dropped by the stream",
        all.len()
    );
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_under_load_leaves_a_backlog_that_drains_when_it_is_back() {
    let Some(mut nats) = Nats::start("down").await else {
        return;
    };
    let (smsc, _dir, setup, mut service) = node("export-down", "tash-1", &nats.url()).await;
    surveys(&setup, 3, 0..30).await;
    replies(&smsc, 3, 0..30, 10).await;
    until_on_stream(&nats.url(), "rating", 30).await;

    nats.stop().await;
    // The service goes on: surveys answered, replies acknowledged, events kept.
    surveys(&setup, 3, 30..60).await;
    replies(&smsc, 3, 30..60, 10).await;
    // 30 ratings, 30 ends and the MT statuses of 30 questions and thanks wait.
    until_pending(&setup, |n| n >= 60.0, "a backlog while NATS is down").await;

    nats.restart().await;
    let all = until_on_stream(&nats.url(), "rating", 60).await;
    check_stream(&all);
    assert_eq!(ratings(&all).len(), 60);
    until_pending(&setup, |n| n == 0.0, "the backlog drains").await;
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

/// `smsflow ARGS` as a process, which must succeed; its standard output.
async fn smsflow(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "smsflow {args:?}: {stderr}");
    out.stdout
}

/// `smsflow report KIND --format json` with `args`.
async fn report(kind: &str, args: &[&str]) -> Value {
    let head = ["report", kind, "--format", "json", "--from", "2020-01-01"];
    serde_json::from_slice(&smsflow(&[&head[..], args].concat()).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_stream_report_the_sum_of_theirs() {
    let Some(nats) = Nats::start("two").await else {
        return;
    };
    let url = nats.url();
    let (smsc_a, _a, a, mut service_a) = node("export-a", "tash-1", &url).await;
    let (smsc_b, _b, b, mut service_b) = node("export-b", "sam-1", &url).await;
    let ((), ()) = tokio::join!(
        async {
            surveys(&a, 4, 0..12).await;
            replies(&smsc_a, 4, 0..10, 5).await;
        },
        async {
            surveys(&b, 5, 0..7).await;
            replies(&smsc_b, 5, 0..7, 5).await;
        },
    );
    // An incident on each node, resolved by its cancel button (that records it).
    for setup in [&a, &b] {
        let press = json!({"id": "inc-1", "button": {"id": 12, "name": "Палата 315",
            "location": "терапия", "type": 102}, "levels": [["998901111111"]], "ack_timeout": "3m"});
        post(setup, "escalation", press).await;
        post(setup, "escalation", json!({"id": "inc-1", "resolve": true})).await;
    }
    until_on_stream(&url, "rating", 17).await;
    until_on_stream(&url, "incident", 2).await;
    until_on_stream(&url, "conversation", 19).await;
    until_stream(&url, "19 questions sent", |all| questions_sent(all) >= 19).await;
    stop_with_sigterm(&mut service_a).await;
    stop_with_sigterm(&mut service_b).await;
    check_stream(&stream_messages(&url).await);

    let config = |s: &ServiceSetup| s.config.display().to_string();
    let (ca, cb) = (config(&a), config(&b));
    let local_a = report("csi", &["--config", &ca]).await;
    let local_b = report("csi", &["--config", &cb]).await;
    let both = report("csi", &["--config", &ca, "--source", &url]).await;
    let total = |r: &Value, k: &str| r["total"][k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    for key in ["surveys_sent", "responses"] {
        assert_eq!(
            total(&both, key),
            total(&local_a, key) + total(&local_b, key),
            "{key}"
        );
    }
    assert_eq!(total(&both, "surveys_sent"), 19);
    assert_eq!(total(&both, "responses"), 17);
    for score in ["1", "2", "3", "4", "5"] {
        let d = |r: &Value| r["total"]["distribution"][score].as_u64().unwrap();
        assert_eq!(d(&both), d(&local_a) + d(&local_b), "score {score}");
    }
    let groups = |r: &Value| -> BTreeMap<String, (u64, u64)> {
        (r["groups"].as_array().unwrap().iter())
            .map(|g| {
                let n = |k: &str| g[k].as_u64().unwrap();
                (
                    g["key"].as_str().unwrap().to_owned(),
                    (n("surveys_sent"), n("responses")),
                )
            })
            .collect()
    };
    let mut summed = groups(&local_a);
    for (key, (sent, responses)) in groups(&local_b) {
        let g = summed.entry(key).or_default();
        g.0 += sent;
        g.1 += responses;
    }
    assert_eq!(groups(&both), summed, "per operator");

    let incidents = |r: &Value| {
        r["total"]["incidents"]
            .as_u64()
            .unwrap_or_else(|| panic!("{r}"))
    };
    let inc_both = report("incidents", &["--config", &ca, "--source", &url]).await;
    let inc_a = report("incidents", &["--config", &ca]).await;
    let inc_b = report("incidents", &["--config", &cb]).await;
    assert_eq!(incidents(&inc_both), incidents(&inc_a) + incidents(&inc_b));
    assert_eq!(incidents(&inc_both), 2);
    smsc_a.shutdown().await;
    smsc_b.shutdown().await;
}

/// Needs no nats-server: a `--source` that is not NATS is bad usage, one nobody answers
/// on a failed job, each said in one line.
#[tokio::test]
async fn report_source_errors_say_what_is_wrong() {
    let dir = TempDir::new("export-source-errors");
    let config = dir.path().join("smsflow.toml");
    std::fs::write(&config, "[service]\ntimezone = \"Asia/Tashkent\"\n").unwrap();
    let port = free_port();
    for (source, code, says) in [
        (
            "http://127.0.0.1:4222",
            2,
            "--source: \"http://127.0.0.1:4222\": not nats:// or tls://",
        ),
        (
            &format!("nats://127.0.0.1:{port}"),
            1,
            "cannot connect to NATS",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .args(["report", "csi", "--source", source, "--config"])
            .arg(&config)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// The node is lost after its last backup: the backup still queued events the node then
/// published, and the node went on to hand out conversation ids and seqs the backup knows
/// nothing of. A standby restored from it under the same name republishes the first (the
/// stream drops them) and hands out those ids again for new surveys (whose events are new).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_restored_from_a_backup_loses_and_doubles_no_rating() {
    let Some(mut nats) = Nats::start("standby").await else {
        return;
    };
    let url = nats.url();
    let (smsc, dir, setup, mut service) = node("export-standby", "tash-1", &url).await;
    surveys(&setup, 6, 0..10).await;
    replies(&smsc, 6, 0..10, 10).await;
    until_on_stream(&url, "rating", 10).await;
    nats.stop().await;
    surveys(&setup, 6, 10..20).await;
    replies(&smsc, 6, 10..20, 10).await;
    let (backup, config) = (
        dir.path().join("backup"),
        setup.config.display().to_string(),
    );
    let backup = backup.to_str().unwrap();
    smsflow(&["store", "backup", backup, "--config", &config]).await;
    nats.restart().await;
    until_on_stream(&url, "rating", 20).await;
    surveys(&setup, 6, 20..25).await;
    replies(&smsc, 6, 20..25, 5).await;
    until_on_stream(&url, "rating", 25).await;
    service.start_kill().unwrap();
    service.wait().await.unwrap();

    smsflow(&["store", "restore", backup, "--config", &config]).await;
    let mut standby = spawn_service(&setup.config);
    until_ready(setup.http).await;
    surveys(&setup, 6, 25..30).await;
    replies(&smsc, 6, 25..30, 5).await;
    let all = until_on_stream(&url, "rating", 30).await;
    let by = ratings(&all);
    for i in 0..30 {
        assert_eq!(
            by.get(&msisdn(6, i)),
            Some(&(1 + (i % 5) as u64)),
            "subscriber {i}"
        );
    }
    stop_with_sigterm(&mut standby).await;
    smsc.shutdown().await;
}
