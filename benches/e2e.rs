//! End-to-end load run of the service pipeline, durable mode: the SMSC simulator, the ESME
//! pool, the pipeline and the flow engine with the shipped survey flow, on a sled store on
//! disk (every acknowledged MO flushed), all in this process over loopback TCP.
//!
//! 1. N surveys are opened (as the HTTP API would) and their questions sent.
//! 2. The simulator pushes N replies ("5") at a window of W unacknowledged deliver_sm.
//! 3. Reported: MO/s (acknowledged deliver_sm), replies/s (thank-you messages the simulator
//!    accepted), p50/p99 reply latency (MO injected → thanks accepted) and peak RSS.
//!
//! Prints numbers; asserts nothing (timing has no place in tests).
//!
//! `cargo bench --bench e2e [-- --surveys N --window W]` (defaults: 20000 surveys, window 100)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsflow::esme::{Pool, PoolConfig, tcp_connector};
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::service::pipeline::{Pipeline, now_ms};
use smsflow::sim::{self, Mo, SimConfig};
use smsflow::store::Store;
use tokio::task::JoinSet;

const THANKS: &str = "Спасибо за вашу оценку!";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn msisdn(i: usize) -> String {
    format!("99890{:07}", i)
}

/// Peak resident set size of this process (the simulator included), from /proc.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let surveys = arg("--surveys", 20_000);
    let window = arg("--window", 100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(surveys, window));
}

async fn run(surveys: usize, window: usize) {
    let dir = std::env::temp_dir().join(format!("smsflow-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(dir.join("data")).expect("store");
    let (engine, errors) = FlowEngine::new(
        store,
        EngineConfig {
            scripts_dir: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    let engine = Arc::new(engine);

    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        window: window.max(1),
        receipt_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    // Thanks accepted by the simulator, by subscriber.
    let thanked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let questions = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let collector = tokio::spawn({
        let thanked = thanked.clone();
        let questions = questions.clone();
        let mut rx = smsc.submitted();
        async move {
            loop {
                match rx.recv().await {
                    Ok(m) if m.text.starts_with(THANKS) => {
                        thanked
                            .lock()
                            .unwrap()
                            .insert(m.destination, Instant::now());
                    }
                    Ok(_) => {
                        questions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("warning: the collector missed {n} submitted messages");
                    }
                    Err(_) => return,
                }
            }
        }
    });

    let addr = smsc.local_addr();
    let mut config = PoolConfig::new("sim", tcp_connector(addr.ip().to_string(), addr.port()));
    config.session.window = 256;
    let (pool, inbound) = Pool::start(config, 8192);
    let pool = Arc::new(pool);
    let pipeline = Pipeline::start(engine.clone(), vec![pool.clone()], inbound);
    while pool.bound() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 1. Open the surveys.
    let started = Instant::now();
    for i in 0..surveys {
        let event = serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn(i),
            "operator": format!("op-{}", i % 20), "channel": "call"});
        engine
            .start(now_ms(), "survey", event, Some(&format!("call-{i}")))
            .expect("survey starts");
        if i % 1024 == 0 {
            pipeline.outbox_changed();
        }
    }
    pipeline.outbox_changed();
    while questions.load(std::sync::atomic::Ordering::Relaxed) < surveys {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = started.elapsed();
    println!(
        "opened {surveys} surveys in {:.2} s ({:.0} surveys/s, questions accepted by the SMSC)",
        opened.as_secs_f64(),
        surveys as f64 / opened.as_secs_f64()
    );

    // 2. Replies at window W.
    let mut injected_at = Vec::with_capacity(surveys);
    let mut acks = JoinSet::new();
    let started = Instant::now();
    let mut last_ack = started;
    for i in 0..surveys {
        while acks.len() >= window {
            if let Some(Ok(at)) = acks.join_next().await {
                last_ack = last_ack.max(at);
            }
        }
        injected_at.push(Instant::now());
        let delivery = smsc
            .inject_mo(Mo {
                source: msisdn(i),
                destination: "5700".into(),
                text: "5".into(),
            })
            .expect("inject");
        acks.spawn(async move {
            let status = delivery.outcome().await.expect("outcome");
            assert!(status.is_ok(), "{status:?}");
            Instant::now()
        });
    }
    while let Some(done) = acks.join_next().await {
        last_ack = last_ack.max(done.expect("ack task"));
    }
    let mo_elapsed = last_ack - started;
    loop {
        if thanked.lock().unwrap().len() >= surveys {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            eprintln!("gave up waiting for every thanks");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let thanked = thanked.lock().unwrap().clone();
    let last_thanks = thanked.values().max().copied().unwrap_or(started);
    let mut latencies: Vec<Duration> = (0..surveys)
        .filter_map(|i| Some(*thanked.get(&msisdn(i))? - injected_at[i]))
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let replies_elapsed = last_thanks - started;
    println!("replies: {surveys} at window {window}, durable (flush before every ack batch)");
    println!(
        "  MO acknowledged   {:>9.0} /s  ({:.2} s)",
        surveys as f64 / mo_elapsed.as_secs_f64(),
        mo_elapsed.as_secs_f64()
    );
    println!(
        "  replies thanked   {:>9.0} /s  ({:.2} s, {} of {surveys})",
        thanked.len() as f64 / replies_elapsed.as_secs_f64(),
        replies_elapsed.as_secs_f64(),
        thanked.len()
    );
    println!(
        "  reply latency     p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50),
        pct(0.99)
    );
    if let Some(rss) = peak_rss_mib() {
        println!("  peak RSS          {rss:.0} MiB (service and simulator together)");
    }
    let counts = pipeline.counts();
    println!(
        "  pipeline          {} MO, {} MT accepted, {} retried, {} script errors",
        counts.mo, counts.mt_accepted, counts.mt_retried, counts.script_errors
    );

    pipeline.shutdown().await;
    pool.shutdown().await;
    collector.abort();
    smsc.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
