//! How long one hook call can take under the script limits (issue 26: with one thread owning
//! the service's state, a hook's time is everyone's pause). Runs hostile hooks — an endless
//! loop, work per operation on the largest string and array a script may hold, deep
//! recursion, a state at its size limit — and the shipped flows' hooks, on the engine the
//! service runs, and prints each one's time (median and worst of the runs, thread CPU time
//! and wall) and how it ended.
//!
//! `cargo bench --bench hooks [-- RUNS [NAME]]` (default 20 runs; NAME: only the hooks whose
//! name contains it); it asserts nothing.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rhai::Dynamic;
use smsflow::flow::api::NoLookup;
use smsflow::flow::budget::LogRate;
use smsflow::flow::runner::{self, CallInput, Hook, Limits};

const T0: i64 = smsflow::flow::check::START;

/// Hostile `on_event` bodies: each is stopped by a limit, or does the most one hook may.
const HOSTILE: &[(&str, &str)] = &[
    ("endless loop", "loop { }"),
    (
        "endless loop with work",
        "let n = 0; loop { n += 1; let s = `${n}`; }",
    ),
    (
        "scan a 60 KiB string per operation",
        "let s = \"\"; for i in 0..6000 { s += \"xxxxxxxxxx\"; } loop { if s.contains(\"y\") { break; } }",
    ),
    (
        "sort a 10 000-item array per operation",
        "let a = []; for i in 0..10000 { a.push(10000 - i); } loop { a.sort(); a.reverse(); }",
    ),
    (
        "copy a 10 000-item array per operation",
        "let a = []; for i in 0..10000 { a.push(i); } loop { let b = a + []; }",
    ),
    (
        "map of 10 000 keys per operation",
        "let m = #{}; for i in 0..10000 { m[`k${i}`] = i; } loop { let k = m.keys(); }",
    ),
    ("recursion to the call depth", "deep(0);"),
    (
        "state at its size limit",
        "let s = \"\"; for i in 0..6000 { s += \"xxxxxxxxxx\"; } for i in 0..20 { this[`s${i}`] = s; }",
    ),
];

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let only: Option<String> = std::env::args()
        .skip(1)
        .find(|a| a.parse::<usize>().is_err() && a != "--bench");
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    let engine = runner::engine(Limits::default());
    println!(
        "{:<40} {:>10} {:>10} {:>10}  ended",
        "hook", "cpu med", "cpu max", "wall max"
    );
    for (name, body) in HOSTILE.iter().filter(|(name, _)| wanted(name)) {
        let source = format!("fn deep(n) {{ deep(n + 1) }}\nfn on_event(event) {{ {body} }}\n");
        let flow = runner::compile(&engine, "hostile", "hostile.rhai", &source).expect("compiles");
        time(&engine, &flow, name, runs, || {
            Hook::Event(rhai::serde::to_dynamic(serde_json::json!({"id": "x"})).unwrap())
        });
    }
    let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for (file, event) in [
        (
            "survey.rhai",
            serde_json::json!({"msisdn": "998901234567", "operator": "op-17", "channel": "call"}),
        ),
        (
            "escalation.rhai",
            serde_json::json!({"id": "c-1", "button": {"id": 1, "name": "Палата 315", "location": "терапия", "type": 102},
                               "levels": [(0..10).map(|i| format!("99891000{i:04}")).collect::<Vec<_>>(),
                                          (0..10).map(|i| format!("99892000{i:04}")).collect::<Vec<_>>()]}),
        ),
        (
            "alert.rhai",
            serde_json::json!({"id": "a-1", "button": {"id": 9, "name": "Склад", "location": "двор", "type": 103},
                               "phones": (0..49).map(|i| format!("99893000{i:04}")).collect::<Vec<_>>()}),
        ),
    ] {
        if !wanted(file) {
            continue;
        }
        let flow = runner::compile_file(&engine, &scripts.join(file)).expect("shipped flow");
        time(&engine, &flow, &format!("{file} on_event"), runs, || {
            Hook::Event(rhai::serde::to_dynamic(event.clone()).unwrap())
        });
    }
}

fn time(
    engine: &rhai::Engine,
    flow: &runner::CompiledFlow,
    name: &str,
    runs: usize,
    hook: impl Fn() -> Hook,
) {
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    let mut ended = String::new();
    for _ in 0..runs {
        let mut state = Dynamic::from_map(Default::default());
        let input = CallInput {
            now: T0,
            timezone: jiff::tz::TimeZone::UTC,
            lookup: Arc::new(NoLookup),
            reply_code: None,
            webhooks: Vec::new().into(),
            log_rate: Arc::new(Mutex::new(LogRate::new(T0))),
        };
        let hook = hook();
        let (c0, w0) = (thread_cpu(), Instant::now());
        let result = runner::call_hook(engine, flow, &hook, &mut state, input);
        cpu.push(thread_cpu() - c0);
        wall.push(w0.elapsed().as_secs_f64());
        ended = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                let e = e.to_string();
                e.rsplit(": ")
                    .next()
                    .unwrap_or(&e)
                    .chars()
                    .take(70)
                    .collect()
            }
        };
    }
    cpu.sort_by(f64::total_cmp);
    wall.sort_by(f64::total_cmp);
    let ms = |s: f64| format!("{:.2} ms", s * 1e3);
    println!(
        "{name:<40} {:>10} {:>10} {:>10}  {ended}",
        ms(cpu[cpu.len() / 2]),
        ms(cpu[cpu.len() - 1]),
        ms(wall[wall.len() - 1])
    );
}

/// This thread's CPU time, seconds.
fn thread_cpu() -> f64 {
    smsflow::flow::sandbox::thread_cpu().as_secs_f64()
}
