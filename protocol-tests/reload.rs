//! The operators' loop: a flow file goes live only when its own tests pass, at a hot reload
//! and at start; `smsflow check` reports per file, a broken file once, the others still run;
//! `smsflow run` refuses to start with no flows or a failing one it cannot fall back from.

use std::path::Path;
use std::process::Command;

use smsflow::flow::check;
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::flow::runner::FlowError;
use smsflow::store::Store;

use crate::flows::bump_mtime;
use crate::util::{TempDir, open_store};

/// A flow whose test checks the text it asks with.
fn flow(ask: &str, expected: &str) -> String {
    named("f", ask, expected)
}

fn named(name: &str, ask: &str, expected: &str) -> String {
    format!(
        r#"
fn on_event(e) {{ send(e.msisdn, "{ask}"); }}
fn test_asks() {{
    t_event("{name}", #{{msisdn: "998901234567"}});
    t_assert_eq(t_sent()[0].text, "{expected}");
}}
"#
    )
}

fn gated(store: Store, dir: &Path) -> (FlowEngine, Vec<FlowError>) {
    FlowEngine::new(
        store,
        EngineConfig {
            scripts_dir: Some(dir.to_owned()),
            gate: Some(check::gate),
            functions: check::register,
            ..EngineConfig::default()
        },
    )
}

fn asks(engine: &FlowEngine) -> String {
    let (step, _) =
        (engine.start(0, "f", serde_json::json!({"msisdn": "998901234567"}), None)).unwrap();
    step.outbox[0].text.clone()
}

#[test]
fn a_reload_whose_tests_fail_never_goes_live_and_one_that_passes_does() {
    let dir = TempDir::new("gate-reload");
    let file = dir.path().join("f.rhai");
    std::fs::write(&file, flow("v1", "v1")).unwrap();
    let (engine, errors) = gated(Store::temporary().unwrap(), dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let v1 = engine.flow("f").unwrap().version.clone();

    // Compiles, but its own test fails: refused, v1 still sends.
    std::fs::write(&file, flow("v2 typo", "v2")).unwrap();
    bump_mtime(&file);
    let errors = engine.reload();
    assert_eq!(errors.len(), 1);
    let error = errors[0].to_string();
    assert!(
        error.contains("f.rhai: reload refused: test_asks failed"),
        "{error}"
    );
    assert_eq!(engine.flow("f").unwrap().version, v1);
    assert_eq!(asks(&engine), "v1");

    // Fixed: live.
    std::fs::write(&file, flow("v2", "v2")).unwrap();
    bump_mtime(&file);
    assert!(engine.reload().is_empty());
    assert_ne!(engine.flow("f").unwrap().version, v1);
    assert_eq!(asks(&engine), "v2");
}

#[test]
fn at_start_a_failing_file_falls_back_on_the_version_that_last_passed() {
    let dir = TempDir::new("gate-start");
    let data = TempDir::new("gate-start-data");
    let file = dir.path().join("f.rhai");
    std::fs::write(&file, flow("v1", "v1")).unwrap();
    {
        let (_engine, errors) = gated(Store::open(data.path()).unwrap(), dir.path());
        assert!(errors.is_empty());
    }
    std::fs::write(&file, flow("v2 typo", "v2")).unwrap();
    let store = open_store(data.path());
    let (engine, errors) = gated(store, dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(asks(&engine), "v1", "the stored good version runs");
    // Without one (a fresh store), nothing of it runs.
    let (engine, errors) = gated(Store::temporary().unwrap(), dir.path());
    assert_eq!(errors.len(), 1);
    assert!(engine.flow("f").is_none());
}

#[test]
fn check_reports_a_broken_file_once_and_still_runs_the_others() {
    let dir = TempDir::new("check-files");
    std::fs::write(dir.path().join("a.rhai"), named("a", "hi", "hi")).unwrap();
    std::fs::write(
        dir.path().join("b.rhai"),
        "fn on_event(e) { send(e.msisdn, \"x\") \n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.rhai"), named("c", "yo", "no")).unwrap();
    let report = check::run(dir.path(), jiff::tz::TimeZone::UTC);
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].origin().ends_with("b.rhai"));
    let tests: Vec<(&str, bool)> = (report.tests.iter())
        .map(|t| (t.flow.as_str(), t.failure.is_none()))
        .collect();
    assert_eq!(tests, [("a", true), ("c", false)]);
    let mut out = Vec::new();
    assert!(!check::print(&report, &mut out, false).unwrap());
    let out = String::from_utf8(out).unwrap();
    assert!(out.trim_end().ends_with("1 passed, 2 failed"), "{out}");
    // Grouped by file, in file order, the compile error under its file.
    let a = out.find("a.rhai").unwrap();
    let b = out.find("b.rhai\n").unwrap();
    let c = out.find("c.rhai").unwrap();
    assert!(a < b && b < c, "{out}");

    // One file: only its tests (its neighbours still load for it).
    let report = check::run(&dir.path().join("a.rhai"), jiff::tz::TimeZone::UTC);
    assert!(report.passed(), "{:?}", report.errors);
    assert_eq!(report.tests.len(), 1);
    let exit = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["check", "--scripts"])
        .arg(dir.path().join("a.rhai"))
        .output()
        .unwrap();
    assert!(
        exit.status.success(),
        "{}",
        String::from_utf8_lossy(&exit.stdout)
    );
}

/// The gate's test runs are not the service's traffic: loading the shipped flows, whose tests
/// rate and finish conversations, counts one load each and no rating, conversation or funnel
/// stage.
#[test]
fn the_gates_test_runs_count_nothing_but_the_load() {
    let dir = TempDir::new("gate-metrics");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for file in std::fs::read_dir(shipped).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let (engine, errors) =
        metrics::with_local_recorder(&recorder, || gated(Store::temporary().unwrap(), dir.path()));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(engine.flow("survey").is_some());
    let text = handle.render();
    assert!(
        text.contains("smsflow_flow_reloads_total{flow=\"survey\",result=\"ok\"} 1"),
        "{text}"
    );
    // A survey flow going live registers its ratings and funnel at zero; nothing counts more.
    for name in [
        smsflow::metrics::RATINGS,
        smsflow::metrics::CONVERSATIONS_FINISHED,
        smsflow::metrics::SURVEY_FUNNEL,
        smsflow::metrics::MT_MESSAGES,
    ] {
        let counted = (text.lines())
            .filter(|l| l.starts_with(name))
            .find(|l| !l.ends_with(" 0"));
        assert!(counted.is_none(), "the tests counted {counted:?}:\n{text}");
    }
    assert!(
        text.contains("smsflow_ratings_total{flow=\"nps\",score=\"10\"} 0"),
        "{text}"
    );
}

/// `smsflow run` exits 2 when there is nothing to run, or a file fails with no good version
/// to fall back on.
#[test]
fn run_refuses_no_flows_and_a_failing_flow_with_exit_2() {
    let dir = TempDir::new("run-no-flows");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    let config = dir.path().join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{}\"\nscripts_dir = \"{}\"\n[[smsc]]\nname = \"a\"\npassword = \"x\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("data").display(),
            scripts.display()
        ),
    )
    .unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
            .args(["run", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no flows in"), "{stderr}");
    std::fs::write(scripts.join("f.rhai"), flow("typo", "ok")).unwrap();
    let (code, stderr) = run();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("reload refused: test_asks failed"),
        "{stderr}"
    );
}
