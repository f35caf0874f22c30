//! SIGTERM always ends `smsflow run` (issue 30): idle HTTPS keep-alive connections and a TLS
//! handshake left half done do not hold the stop, and the SMSC still gets its unbind; a part
//! that hangs past `[service] shutdown_timeout` is abandoned, named in the log, and the exit
//! code says so (3); a disk that filled up does not hang the stop. The SMSC is node `smpp`
//! (a third-party implementation) over TLS, which reports the unbind it receives.
//!
//! `sigterm_loop_under_load` (ignored; README "How we test") repeats the stops 50 times with
//! the CPU kept busy, the way a CI machine running other builds is.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::interop::NodePeer;
use crate::run::{ServiceSetup, service_log, service_setup, sigterm, spawn_logged};
use crate::tls::{Pki, add_to_table, https};
use crate::util::{TempDir, WAIT};

/// node `smpp` as the SMSC, over TLS with the test PKI's server certificate; its port.
async fn node_smsc_over_tls(pki: &Pki) -> (NodePeer, u16) {
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let args = ["--tls-cert", path_str(&cert), "--tls-key", path_str(&key)];
    let mut smsc = NodePeer::spawn("smsc.js", &args).await;
    let listening = smsc.event("listening", |e| e["event"] == "listening").await;
    assert_eq!(listening["tls"], true, "{listening}");
    let port = listening["port"].as_u64().unwrap() as u16;
    (smsc, port)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// `smsflow run` in `dir` bound to `port` over TLS (the test CA), with HTTPS on the API and
/// metrics, `shutdown_timeout` as given, and `extra` appended to the config.
fn https_service(dir: &Path, pki: &Pki, port: u16, timeout: &str, extra: &str) -> ServiceSetup {
    let setup = service_setup(dir, port, &[]);
    let q = |file: &str| format!("{:?}", path_str(&pki.path(file)));
    add_to_table(
        &setup.config,
        "[[smsc]]",
        &format!(
            "tls = true\ntls_ca = {}\ntls_server_name = \"localhost\"\n",
            q("ca.pem")
        ),
    );
    let keys = format!(
        "tls_cert = {}\ntls_key = {}\n",
        q("server.pem"),
        q("server.key")
    );
    add_to_table(&setup.config, "[http]", &keys);
    add_to_table(&setup.config, "[metrics]", &keys);
    add_to_table(
        &setup.config,
        "[service]",
        &format!("shutdown_timeout = {timeout:?}\n"),
    );
    let mut config = std::fs::read_to_string(&setup.config).unwrap();
    config.push_str(extra);
    std::fs::write(&setup.config, config).unwrap();
    setup
}

fn spawn(setup: &ServiceSetup) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsflow"));
    command.args(["run", "--config"]).arg(&setup.config);
    spawn_logged(command, &setup.config)
}

/// Waits for `/readyz` 200 over HTTPS: bound to the SMSC.
async fn until_ready_over_https(pki: &Pki, http: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if TcpStream::connect(http).await.is_ok()
            && https(pki, http, "GET", "/readyz", "").await.0 == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready over HTTPS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTPS connection that asked for `path`, got its answer, and stays open (keep-alive)
/// doing nothing.
async fn idle_https(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let roots = smsflow::tls::roots_from_file(&pki.path("ca.pem")).unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(smsflow::tls::client_config(roots, None).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // The whole answer: its head, then as many body bytes as it declares.
    loop {
        let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = (head.lines())
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return tls;
            }
        }
    }
}

/// A TCP connection that began a TLS handshake and stopped: a record header announcing a
/// ClientHello, and no more.
async fn half_done_handshake(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
        .await
        .unwrap();
    tcp
}

/// One round of the first test: a bound service with idle HTTPS connections on both
/// listeners and half-done handshakes; SIGTERM ends it with exit 0 and the SMSC's unbind.
async fn stop_with_idle_https_round(name: &str) {
    let pki = Pki::new(name);
    let (mut smsc, port) = node_smsc_over_tls(&pki).await;
    let dir = TempDir::new(name);
    let setup = https_service(dir.path(), &pki, port, "10s", "");
    let mut service = spawn(&setup);
    until_ready_over_https(&pki, setup.http).await;
    smsc.event("bound", |e| e["event"] == "bound").await;

    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(idle_https(&pki, setup.http, "/healthz").await);
    }
    idle.push(idle_https(&pki, setup.metrics, "/metrics").await);
    let half = [
        half_done_handshake(setup.http).await,
        half_done_handshake(setup.metrics).await,
    ];

    let exit = sigterm(&mut service).await;
    let log = std::fs::read_to_string(service_log(&setup.config)).unwrap_or_default();
    assert_eq!(
        exit.code(),
        Some(0),
        "a stop within shutdown_timeout; log:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("abandoning"), "{log}");
    smsc.pdu("unbind").await;
    drop((idle, half));
    smsc.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_https_connections_and_half_done_handshakes_exits_0_after_the_unbind() {
    stop_with_idle_https_round("stop-idle-https").await;
}

/// A webhook receiver that reads the request and never answers: the delivery hangs until its
/// 60 s timeout, past the 1 s `shutdown_timeout`. The stop abandons it, says so, still
/// unbinds and flushes, and `smsflow run` exits 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_hanging_past_shutdown_timeout_is_abandoned_named_and_exit_is_3() {
    let receiver = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/incidents", receiver.local_addr().unwrap());
    let (got, request) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut conn, _) = receiver.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let _ = got.send(());
        // Holds the connection open, answering nothing.
        std::future::pending::<()>().await;
        drop(conn);
    });
    let pki = Pki::new("stop-hung-webhook");
    let (mut smsc, port) = node_smsc_over_tls(&pki).await;
    let dir = TempDir::new("stop-hung-webhook");
    let webhook =
        format!("\n[[webhook]]\nname = \"servicedesk\"\nurl = \"{url}\"\ntimeout = \"60s\"\n");
    let setup = https_service(dir.path(), &pki, port, "1s", &webhook);
    let mut service = spawn(&setup);
    until_ready_over_https(&pki, setup.http).await;

    let event = r#"{"id": "inc-1", "button": {"id": 1, "name": "Палата 1", "location": "ward"},
                    "levels": [["998901111111"]]}"#;
    let (status, body) = https(
        &pki,
        setup.http,
        "POST",
        "/api/v1/flows/escalation/events",
        event,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    tokio::time::timeout(WAIT, request)
        .await
        .expect("the Service Desk is called")
        .unwrap();

    let exit = sigterm(&mut service).await;
    let log = std::fs::read_to_string(service_log(&setup.config)).unwrap_or_default();
    assert_eq!(exit.code(), Some(3), "{log}");
    assert!(
        log.contains("shutdown_timeout (1s) is over; abandoning webhooks (1 webhook deliveries waiting for their receiver's answer)"),
        "{log}"
    );
    assert!(
        log.contains("smsflow run: stopped after shutdown_timeout (1s) abandoning webhooks"),
        "{log}"
    );
    smsc.pdu("unbind").await;
    smsc.quit().await;
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; `None` (and a loud
/// line) where this process may not mount, unless `SMSFLOW_REQUIRE_TMPFS=1` (CI, as root),
/// where that fails the test.
pub(crate) struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub(crate) fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = TempDir::new(name);
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("SMSFLOW_REQUIRE_TMPFS").as_deref() != Ok("1"),
                    "SMSFLOW_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted: {why}"
                );
                eprintln!(
                    "*** SKIPPED {name}: cannot mount a tmpfs to fill ({why}); run the tests as \
                     root (CI does, with SMSFLOW_REQUIRE_TMPFS=1) ***"
                );
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The disk fills up under a running service (events answered 500 once its store cannot
/// write): SIGTERM still ends it, with exit 1 and the reason, instead of hanging in sled's
/// close (which waits forever for a buffer a failed write left behind).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_after_the_disk_filled_up_ends_the_process_and_says_why() {
    stop_after_the_disk_filled_up("stop-enospc").await;
}

async fn stop_after_the_disk_filled_up(name: &str) {
    let Some(disk) = Tmpfs::mount(name, "16m") else {
        return;
    };
    let smsc = crate::run::simulator().await;
    let dir = TempDir::new(name);
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let data = disk.path().join("data");
    let config = config.replace(
        &format!("data_dir = \"{}\"", setup.data.display()),
        &format!(
            // No reserve: the disk filling up under sled (another process took the room),
            // which the reserve cannot prevent.
            "data_dir = \"{}\"\nshutdown_timeout = \"5s\"\nmin_free_space = 0",
            data.display()
        ),
    );
    std::fs::write(&setup.config, config).unwrap();
    let mut service = crate::run::spawn_service(&setup.config);
    crate::util::until_ready(setup.http).await;

    // All but a little of the disk, in a file (written, so tmpfs counts it).
    let room = fs2::available_space(disk.path()).unwrap();
    let mut filler = std::fs::File::create(disk.path().join("filler")).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = room.saturating_sub(192 * 1024);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        std::io::Write::write_all(&mut filler, &chunk[..n]).unwrap();
        left -= n as u64;
    }
    drop(filler);
    // Sixteen posters at once until the store refuses (sled's writes fail under them: the
    // way its close came to hang).
    let posters: Vec<_> = (0..16)
        .map(|p| {
            let http = setup.http;
            tokio::spawn(async move {
                for i in 0..500 {
                    let body = format!(
                        r#"{{"id": "full-{p}-{i}", "msisdn": "998{p:02}{i:07}", "operator": "op-1", "channel": "call"}}"#
                    );
                    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
                    let path = "/api/v1/flows/survey/events";
                    let resp =
                        crate::http::raw(http, "POST", path, &headers, Some(body.as_bytes())).await;
                    if resp.status != 202 {
                        return Some(resp.status);
                    }
                }
                None
            })
        })
        .collect();
    let mut refused = Vec::new();
    for poster in posters {
        refused.extend(poster.await.unwrap());
    }
    assert!(
        !refused.is_empty() && refused.iter().all(|s| *s >= 500),
        "a full disk refuses events: {refused:?}"
    );

    let exit = sigterm(&mut service).await;
    let log = std::fs::read_to_string(service_log(&setup.config)).unwrap_or_default();
    assert_eq!(exit.code(), Some(1), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    smsc.shutdown().await;
}

/// Keeps both cores busy until dropped: the load of a CI machine building beside the tests.
struct Burners {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Burners {
    fn start(n: usize) -> Burners {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                })
            })
            .collect();
        Burners { stop, threads }
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The SIGTERM scenarios, `SMSFLOW_SIGTERM_LOOP` times (default 50), with two busy threads
/// beside them. A round that does not exit fails with the service's stacks and log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "50 stops under load, a few minutes: run by hand (README, How we test)"]
async fn sigterm_loop_under_load() {
    let rounds: usize = std::env::var("SMSFLOW_SIGTERM_LOOP")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let _burners = Burners::start(2);
    for round in 0..rounds {
        stop_with_idle_https_round(&format!("stop-loop-{round}")).await;
        stop_after_the_disk_filled_up(&format!("stop-loop-full-{round}")).await;
        crate::tls::run_over_tls_round(&format!("stop-loop-tls-{round}")).await;
        eprintln!(
            "sigterm loop: round {} of {rounds} stopped cleanly",
            round + 1
        );
    }
}
