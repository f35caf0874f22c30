//! Flow engine throughput: `survey.on_reply` hook calls per second, each with its store commit
//! (rating, thanks in the outbox, conversation finished, timer cancelled), on a sled store on
//! disk. For scale it also times the same hook without the store (the Rhai call alone).
//!
//! `cargo bench --bench flow [-- N]` prints calls/s; it asserts nothing.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::Dynamic;
use smsflow::flow::api::{Lookup, NoLookup};
use smsflow::flow::budget::LogRate;
use smsflow::flow::engine::{EngineConfig, FlowEngine, Routed};
use smsflow::flow::runner::{self, CallInput, Hook, Limits};
use smsflow::store::Store;

const T0: i64 = smsflow::flow::check::START;

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let dir = std::env::temp_dir().join(format!("smsflow-bench-flow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (engine, errors) = FlowEngine::new(
        Store::open(dir.join("db")).expect("store opens"),
        EngineConfig {
            scripts_dir: Some(scripts),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");

    let started = Instant::now();
    for i in 0..n {
        let event =
            serde_json::json!({"msisdn": msisdn(i), "operator": "op-17", "channel": "call"});
        engine
            .start(T0, "survey", event, None)
            .expect("survey starts");
    }
    report("survey.on_event + commit", n, started);

    let started = Instant::now();
    for i in 0..n {
        let routed = engine
            .reply(
                T0 + 60_000,
                &msisdn(i),
                "4. Оператор был вежлив, но долго пришлось ждать",
                T0 + 60_000,
            )
            .expect("reply");
        assert!(matches!(routed, Routed::Conversation(ref r) if r.finished.is_some()));
    }
    report("survey.on_reply + commit", n, started);
    engine.store().flush_sync().expect("flush");

    // The hook alone, no store: what the commit costs by comparison.
    let rhai = runner::engine(Limits::default());
    let survey = engine.flow("survey").expect("survey loaded");
    let lookup: Arc<dyn Lookup> = Arc::new(NoLookup);
    let started = Instant::now();
    for i in 0..n {
        let mut state = rhai::serde::to_dynamic(serde_json::json!({
            "msisdn": msisdn(i), "operator": "op-17", "channel": "call", "comment": true, "not_understood": 0
        }))
        .expect("state");
        let msg = rhai::serde::to_dynamic(
            serde_json::json!({"from": msisdn(i), "text": "5", "received_at": T0}),
        )
        .expect("msg");
        let input = CallInput {
            now: T0,
            timezone: jiff::tz::TimeZone::UTC,
            lookup: lookup.clone(),
            reply_code: None,
            webhooks: Vec::new().into(),
            log_rate: Arc::new(Mutex::new(LogRate::new(T0))),
        };
        runner::call_hook(&rhai, &survey, &Hook::Reply(msg), &mut state, input).expect("hook");
        let _: &Dynamic = &state;
    }
    report("survey.on_reply, hook only", n, started);
    let _ = std::fs::remove_dir_all(&dir);
}

fn msisdn(i: u64) -> String {
    format!("99890{:07}", i)
}

fn report(what: &str, n: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<32} {:>10.0} calls/s  ({:.1} µs each)",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}
