//! `smsflow run` as a process: config, bind to the simulator, an HTTP event becomes an SMS,
//! the reply a rating, SIGTERM a clean exit; a bad config exits 2 naming the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use smsflow::sim::{self, SimConfig};
use tokio::process::{Child, Command};

use crate::http::{post_event, raw};
use crate::util::{TempDir, send_mo, until_ready};

use crate::util::WAIT;

pub(crate) fn free_port() -> u16 {
    // Bound and released at once: the service binds it right after (a tiny window for a clash
    // with another process, acceptable in a test).
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `smsflow run` set up in a test directory against the simulator: its config file, data
/// directory and the (free) addresses of its API and metrics.
pub(crate) struct ServiceSetup {
    pub config: PathBuf,
    pub data: PathBuf,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
}

/// Writes `smsflow.toml` in `dir` for the simulator on `smsc_port`, the shipped scripts and
/// the API `tokens` (none: no auth).
pub(crate) fn service_setup(dir: &Path, smsc_port: u16, tokens: &[&str]) -> ServiceSetup {
    let setup = ServiceSetup {
        config: dir.join("smsflow.toml"),
        data: dir.join("data"),
        http: SocketAddr::from(([127, 0, 0, 1], free_port())),
        metrics: SocketAddr::from(([127, 0, 0, 1], free_port())),
    };
    let tokens: Vec<String> = tokens.iter().map(|t| format!("{t:?}")).collect();
    let config = format!(
        r#"
[service]
data_dir = "{data}"
scripts_dir = "{scripts}"
timezone = "Asia/Tashkent"

[[smsc]]
name = "sim"
host = "127.0.0.1"
port = {smsc_port}
system_id = "smsflow"
password = "smsflow"
reconnect_min = "50ms"
reconnect_max = "500ms"

[http]
listen = "{http}"
tokens = [{tokens}]

[metrics]
listen = "{metrics}"
"#,
        data = setup.data.display(),
        scripts = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .display(),
        http = setup.http,
        metrics = setup.metrics,
        tokens = tokens.join(", "),
    );
    std::fs::write(&setup.config, config).unwrap();
    setup
}

/// A config in `dir` for the simulator on `smsc_port` running the flows in `scripts`.
pub(crate) fn setup_in(dir: &Path, smsc_port: u16, scripts: &Path) -> ServiceSetup {
    let setup = service_setup(dir, smsc_port, &[]);
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let config = std::fs::read_to_string(&setup.config).unwrap().replace(
        &format!("scripts_dir = \"{}\"", shipped.display()),
        &format!("scripts_dir = \"{}\"", scripts.display()),
    );
    std::fs::write(&setup.config, config).unwrap();
    setup
}

/// A copy of the shipped scripts in `dir/scripts` (for a test to edit or add to): its path.
pub(crate) fn shipped_scripts_in(dir: &Path) -> PathBuf {
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, scripts.join(path.file_name().unwrap())).unwrap();
    }
    scripts
}

/// `smsflow run --config config` as a child process, killed if the test drops it.
pub(crate) fn spawn_service(config: &Path) -> Child {
    spawn_service_with(config, &[])
}

/// [`spawn_service`] with more flags for `run` (`--accept-data-loss`).
pub(crate) fn spawn_service_with(config: &Path, flags: &[&str]) -> Child {
    spawn_service_in_env(config, flags, &[])
}

/// [`spawn_service_with`] with environment variables set for the child (`secret_env`).
pub(crate) fn spawn_service_in_env(config: &Path, flags: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsflow"));
    command
        .arg("run")
        .args(flags)
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied());
    spawn_logged(command, config)
}

/// Spawns `command` (a `smsflow run` of `config`), its stderr into the config's name with
/// `.log` (appended: a restart adds to it), so a test that fails can show the service's
/// own account ([`stop_with_sigterm`] does).
pub(crate) fn spawn_logged(mut command: Command, config: &Path) -> Child {
    let log = service_log(config);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = command
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().expect("just spawned");
    LOGS.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(pid, log);
    child
}

/// Where [`spawn_logged`] writes the stderr of the service of `config`.
pub(crate) fn service_log(config: &Path) -> PathBuf {
    config.with_extension("log")
}

/// The log of each service spawned, by pid.
static LOGS: std::sync::Mutex<Option<HashMap<u32, PathBuf>>> = std::sync::Mutex::new(None);

/// The simulator (receipts after 10 ms, redeliveries after 200 ms) and `smsflow run` bound
/// to it in a fresh directory named after `name`, ready.
pub(crate) async fn simulator_and_service(
    name: &str,
) -> (sim::SmscHandle, TempDir, ServiceSetup, Child) {
    simulator_and_service_with(name, "").await
}

/// [`simulator_and_service`] with `extra` appended to the config (tables such as
/// `[[webhook]]`).
pub(crate) async fn simulator_and_service_with(
    name: &str,
    extra: &str,
) -> (sim::SmscHandle, TempDir, ServiceSetup, Child) {
    let smsc = simulator().await;
    let dir = TempDir::new(name);
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    if !extra.is_empty() {
        let mut config = std::fs::read_to_string(&setup.config).unwrap();
        config.push_str(extra);
        std::fs::write(&setup.config, config).unwrap();
    }
    let service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    (smsc, dir, setup, service)
}

/// The simulator on a free port: receipts after 10 ms, redeliveries after 200 ms.
pub(crate) async fn simulator() -> sim::SmscHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(10),
        retry_delay: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// SIGTERM to `service`; returns once it exited, asserting it exited cleanly.
pub(crate) async fn stop_with_sigterm(service: &mut Child) {
    let exit = sigterm(service).await;
    assert!(exit.success(), "{exit:?}");
}

/// SIGTERM to `service` and its exit status. A service still running after [`WAIT`] fails
/// the test with what it was doing: its threads' stacks (when gdb is installed) and the end
/// of its log.
pub(crate) async fn sigterm(service: &mut Child) -> std::process::ExitStatus {
    let pid = service.id().expect("running");
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    match tokio::time::timeout(WAIT, service.wait()).await {
        Ok(exit) => exit.unwrap(),
        Err(_) => panic!(
            "smsflow run (pid {pid}) did not exit within {WAIT:?} of SIGTERM\n{}",
            what_it_does(pid)
        ),
    }
}

/// For a test that failed waiting on process `pid`: its state, its threads' stacks and the
/// end of its log.
pub(crate) fn what_it_does(pid: u32) -> String {
    let state = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("State:"))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "State: gone".to_owned());
    let stacks = std::process::Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 30",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("(no stacks: gdb: {e})"));
    let stacks: String = (stacks.lines())
        .filter(|l| l.starts_with("Thread") || l.contains("smsflow::"))
        .map(|l| format!("{l}\n"))
        .collect();
    let log = (LOGS.lock().unwrap().as_ref())
        .and_then(|logs| logs.get(&pid).cloned())
        .and_then(|path| std::fs::read_to_string(path).ok())
        .unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "{state}\n--- threads ---\n{stacks}--- last lines of its log ---\n{}",
        tail.join("\n")
    )
}

/// The ratings in `store`, by subscriber; none may be rated twice.
pub(crate) fn ratings_by_subscriber(store: &smsflow::store::Store) -> HashMap<String, u8> {
    let mut by_subscriber = HashMap::new();
    for r in store.ratings(i64::MIN, i64::MAX).unwrap() {
        assert!(
            by_subscriber.insert(r.msisdn.clone(), r.score).is_none(),
            "{} rated twice",
            r.msisdn
        );
    }
    by_subscriber
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_an_event_end_to_end_and_stops_cleanly_on_sigterm() {
    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = TempDir::new("run");
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &["t0ken"]);
    let mut service = spawn_service(&setup.config);
    let http = setup.http;
    let auth = [("Authorization".to_owned(), "Bearer t0ken".to_owned())];

    // Ready once bound to the simulator.
    until_ready(http).await;

    // An event becomes the survey question at the SMSC.
    let mut submitted = smsc.submitted();
    let body = r#"{"id": "call-1", "msisdn": "+998901234567", "operator": "op-17", "channel": "call", "comment": true}"#;
    let resp = post_event(http, "survey", &auth, body).await;
    let conversation = resp.json["conversation"].as_u64().unwrap();
    let question = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(question.destination, "998901234567");
    assert!(
        question.text.starts_with("Спасибо за ваш звонок. Оцените"),
        "{}",
        question.text
    );

    // The reply is acknowledged only once stored, then rated and thanked.
    assert!(send_mo(&smsc, "998901234567", "5 отлично").await.is_ok());
    let thanks = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        thanks.text.starts_with("Спасибо за вашу оценку!"),
        "{}",
        thanks.text
    );
    let resp = raw(
        http,
        "GET",
        &format!("/api/v1/conversations/{conversation}"),
        &auth,
        None,
    )
    .await;
    assert_eq!(resp.json["status"], "finished", "{}", resp.json);
    assert_eq!(resp.json["outcome"], "rated", "{}", resp.json);

    // Prometheus sees SPEC's metrics, with this traffic in them.
    let metrics = setup.metrics;
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let resp = raw(metrics, "GET", "/metrics", &[], None).await;
        assert_eq!(resp.status, 200);
        // Gauges read from the store are refreshed every few seconds.
        if resp
            .body
            .contains("smsflow_conversations_open{flow=\"survey\"} 0")
        {
            break resp.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", resp.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for needle in [
        // The question and the thanks are two UCS-2 messages of several parts each.
        "smsflow_pdus_total{smsc=\"sim\",direction=\"out\",command=\"submit_sm\"}",
        "smsflow_pdus_total{smsc=\"sim\",direction=\"in\",command=\"deliver_sm\"}",
        "smsflow_sessions_bound{smsc=\"sim\"} 1",
        "smsflow_window_in_flight{smsc=\"sim\"}",
        "smsflow_submit_latency_seconds_bucket{smsc=\"sim\",le=\"0.005\"}",
        "smsflow_submit_latency_seconds_count{smsc=\"sim\"}",
        "smsflow_throttled_total{smsc=\"sim\"} 0",
        "smsflow_mo_messages_total{flow=\"survey\"} 1",
        "smsflow_mt_messages_total{flow=\"survey\",status=\"accepted\"} 2",
        "smsflow_ratings_total{flow=\"survey\",score=\"5\"} 1",
        "# TYPE smsflow_flow_errors_total counter",
        "# TYPE smsflow_escalations_total counter",
    ] {
        assert!(text.contains(needle), "no {needle} in\n{text}");
    }

    // SIGTERM: unbind, flush, exit 0.
    stop_with_sigterm(&mut service).await;
    assert_eq!(smsc.stats().sessions_bound, 0, "unbound before exit");
    smsc.shutdown().await;
}

/// `smsflow run` on `config` (written to `smsflow.toml` in a fresh directory named after
/// `name`), for configs that must not start: its exit code and stderr.
pub(crate) async fn run_refused(name: &str, config: &str) -> (Option<i32>, String) {
    let dir = TempDir::new(name);
    let path = dir.path().join("smsflow.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

#[tokio::test]
async fn a_bad_config_exits_2_naming_the_file_and_key() {
    let config = "[[smsc]]\nname = \"x\"\npassword = \"p\"\nwindw = 10\n";
    let (code, stderr) = run_refused("run-bad-config", config).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("smsflow.toml:4"), "{stderr}");
    assert!(stderr.contains("windw"), "{stderr}");
    assert!(stderr.contains("window"), "{stderr}");
}
