//! End-to-end load run of `smsflow run` as its own process, durable mode: the SMSC simulator
//! in this process, the service (the release binary, shipped survey flow, sled on disk, every
//! acknowledged MO and every 202 on the medium) in another, over loopback TCP.
//!
//! 1. N survey events are posted over HTTP, 64 in flight on keep-alive connections.
//! 2. Once every question reached the SMSC, the simulator pushes N replies ("5") at a window
//!    of W unacknowledged deliver_sm.
//!
//! Reported per phase: rate, CPU µs of the service process per event or reply (user + system
//! from /proc over the phase), latency percentiles, and the service's peak RSS. Prints
//! numbers; asserts nothing (timing has no place in tests).
//!
//! `cargo bench --bench e2e [-- --surveys N --window W --posters P --rounds R]` (defaults:
//! 20000 surveys, window 100, 64 posters, 1 round). With `--rounds R` both phases run R
//! times on the same service, new numbers each round, and the service's RSS is printed after
//! each: finished surveys should leave memory, so it stays flat from the second round on.
//!
//! `--export`: with `[export]` to a nats-server (JetStream, started here on a free port; needs
//! Debian's `nats-server`), so the reply phase's CPU includes publishing each rating, end and
//! MT status; then how long after the last thanks the stream had every event.
//! `--export-backlog`: nats-server starts only after the replies, so every event waits in the
//! store; then the drain: events published per second and service CPU per event.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smsflow::sim::{self, Mo, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// `nats-server -js` on `port` (loopback) with its store under `dir`, once it accepts.
async fn start_nats(dir: &Path, port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir.join("nats"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server (apt-get install -y nats-server)");
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// The value of the series `name` (summed over its labels) on the service's /metrics.
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return f64::NAN;
    };
    let request = "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    let mut text = String::new();
    if stream.write_all(request.as_bytes()).await.is_err()
        || stream.read_to_string(&mut text).await.is_err()
    {
        return f64::NAN;
    }
    (text.lines())
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

fn msisdn(i: usize) -> String {
    format!("99890{:07}", i)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// CPU seconds (user + system) of process `pid` so far, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// A /proc/PID/status value in MiB (VmHWM: peak RSS, VmRSS: now).
fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// One keep-alive HTTP/1.1 connection: POST, read the status and the body by its length.
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).await.expect("connect to the API");
        stream.set_nodelay(true).expect("nodelay");
        Http {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    async fn post(&mut self, path: &str, body: &str) -> u16 {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("send");
        self.buf.clear();
        loop {
            let mut chunk = [0u8; 2048];
            let n = self.stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the service closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&self.buf);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if rest.len() >= length {
                    return head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
            }
        }
    }
}

fn main() {
    let surveys = arg("--surveys", 20_000);
    let window = arg("--window", 100);
    let posters = arg("--posters", 64);
    let rounds = arg("--rounds", 1).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(surveys, window, posters, rounds));
}

async fn run(surveys: usize, window: usize, posters: usize, rounds: usize) {
    let dir = std::env::temp_dir().join(format!("smsflow-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");

    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().expect("address"),
        window: window.max(1),
        receipt_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
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

    let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let metrics: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let (export, backlog) = (flag("--export"), flag("--export-backlog"));
    let nats_port = free_port();
    let mut nats = None;
    let mut export_section = String::new();
    if export || backlog {
        export_section = format!("\n[export]\nnats_url = \"nats://127.0.0.1:{nats_port}\"\n");
    }
    if export {
        nats = Some(start_nats(&dir, nats_port).await);
        println!("export: to nats-server on port {nats_port}, JetStream on disk");
    } else if backlog {
        println!("export: to a nats-server that starts after the replies");
    }
    let config = dir.join("smsflow.toml");
    std::fs::write(
        &config,
        format!(
            "[service]\ndata_dir = \"{data}\"\nscripts_dir = \"{scripts}\"\n\n\
             [[smsc]]\nname = \"sim\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             system_id = \"smsflow\"\npassword = \"smsflow\"\nwindow = 256\n\n\
             [http]\nlisten = \"{http}\"\ntokens = []\n\n[metrics]\nlisten = \"{metrics}\"\n\
             {export_section}",
            data = dir.join("data").display(),
            scripts = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .display(),
            port = smsc.local_addr().port(),
        ),
    )
    .expect("config");
    let mut service = tokio::process::Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("smsflow run");
    let pid = service.id().expect("pid");
    while smsc.stats().sessions_bound == 0 || TcpStream::connect(http).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut last_thanks = Instant::now();
    for round in 0..rounds {
        let base = round * surveys;
        if rounds > 1 {
            println!("round {} of {rounds}", round + 1);
        }
        // 1. Events over HTTP, `posters` in flight.
        let cpu0 = cpu_seconds(pid);
        let started = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..posters {
            let next = next.clone();
            tasks.spawn(async move {
                let mut conn = Http::connect(http).await;
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= surveys {
                        return latencies;
                    }
                    let i = base + i;
                    let body = serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn(i),
                    "operator": format!("op-{}", i % 20), "channel": "call"})
                    .to_string();
                    let at = Instant::now();
                    let status = conn.post("/api/v1/flows/survey/events", &body).await;
                    assert_eq!(status, 202, "event {i}");
                    latencies.push(at.elapsed());
                }
            });
        }
        let mut latencies = Vec::with_capacity(surveys);
        while let Some(done) = tasks.join_next().await {
            latencies.extend(done.expect("poster"));
        }
        let posted = started.elapsed();
        let event_cpu = cpu_seconds(pid) - cpu0;
        latencies.sort();
        println!("events: {surveys} over HTTP, {posters} in flight, each on disk before its 202");
        println!(
            "  accepted          {:>9.0} /s  ({:.2} s)",
            surveys as f64 / posted.as_secs_f64(),
            posted.as_secs_f64()
        );
        println!(
            "  service CPU       {:>9.1} µs per event",
            event_cpu * 1e6 / surveys as f64
        );
        println!(
            "  latency           p50 {:.1} ms, p99 {:.1} ms",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
        while questions.load(std::sync::atomic::Ordering::Relaxed) < base + surveys {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "  questions sent    {:.2} s after the first post; service RSS {:.0} MiB with {surveys} open",
            started.elapsed().as_secs_f64(),
            rss_mib(pid, "VmRSS:")
        );

        // 2. Replies at window W.
        let mut injected_at = Vec::with_capacity(surveys);
        let mut acks = JoinSet::new();
        let cpu0 = cpu_seconds(pid);
        let started = Instant::now();
        for i in 0..surveys {
            while acks.len() >= window {
                acks.join_next().await;
            }
            injected_at.push(Instant::now());
            let delivery = smsc
                .inject_mo(Mo {
                    source: msisdn(base + i),
                    destination: "5700".into(),
                    text: "5".into(),
                })
                .expect("inject");
            acks.spawn(async move {
                let status = delivery.outcome().await.expect("outcome");
                assert!(status.is_ok(), "{status:?}");
            });
        }
        while acks.join_next().await.is_some() {}
        let mo_elapsed = started.elapsed();
        while thanked.lock().unwrap().len() < base + surveys
            && started.elapsed() < Duration::from_secs(600)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let reply_cpu = cpu_seconds(pid) - cpu0;
        let thanked = thanked.lock().unwrap().clone();
        last_thanks = thanked.values().max().copied().unwrap_or(started);
        let mut latencies: Vec<Duration> = (0..surveys)
            .filter_map(|i| Some(*thanked.get(&msisdn(base + i))? - injected_at[i]))
            .collect();
        latencies.sort();
        let replies_elapsed = last_thanks - started;
        println!(
            "replies: {surveys} at window {window}, each MO on disk before its deliver_sm_resp"
        );
        println!(
            "  MO acknowledged   {:>9.0} /s  ({:.2} s)",
            surveys as f64 / mo_elapsed.as_secs_f64(),
            mo_elapsed.as_secs_f64()
        );
        println!(
            "  replies thanked   {:>9.0} /s  ({:.2} s, {} of {surveys})",
            (thanked.len() - base) as f64 / replies_elapsed.as_secs_f64(),
            replies_elapsed.as_secs_f64(),
            thanked.len() - base
        );
        println!(
            "  service CPU       {:>9.1} µs per reply",
            reply_cpu * 1e6 / surveys as f64
        );
        println!(
            "  reply latency     p50 {:.1} ms, p99 {:.1} ms (MO injected → thanks accepted)",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99)
        );
        println!("  service peak RSS  {:.0} MiB", rss_mib(pid, "VmHWM:"));
        if rounds > 1 {
            println!(
                "  service RSS now   {:.0} MiB with {} surveys finished",
                rss_mib(pid, "VmRSS:"),
                base + surveys
            );
        }
    }

    // 3. The export: caught up, or the backlog drained once NATS is there.
    if export || backlog {
        let pending = || metric(metrics, "smsflow_export_pending");
        let published = || metric(metrics, "smsflow_export_events_total");
        if backlog {
            // Every event is derived once the last step ran; the gauge refreshes twice a second.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let waiting = pending().await;
            let rss = rss_mib(pid, "VmRSS:");
            nats = Some(start_nats(&dir, nats_port).await);
            while published().await == 0.0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (cpu0, started) = (cpu_seconds(pid), Instant::now());
            while pending().await > 0.0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (elapsed, cpu) = (started.elapsed(), cpu_seconds(pid) - cpu0);
            println!(
                "export backlog: {waiting} events waited in the store (service RSS {rss:.0} MiB)"
            );
            println!(
                "  published         {:>9.0} /s  ({:.2} s from the first ack)",
                waiting / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
            println!(
                "  service CPU       {:>9.1} µs per event",
                cpu * 1e6 / waiting
            );
        } else {
            while pending().await > 0.0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            println!(
                "export: {} events on the stream {:.2} s after the last thanks",
                published().await,
                last_thanks.elapsed().as_secs_f64()
            );
        }
    }

    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(30), service.wait()).await;
    collector.abort();
    drop(nats);
    smsc.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
