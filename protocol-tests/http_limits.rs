//! The HTTP listener against hostile and careless clients on real sockets: half-open
//! requests that never finish their headers, idle keep-alive connections, slow bodies, huge
//! request targets, and a flood when the process is short of file descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smsflow::config::{BODY_LIMIT, ListenerLimits};
use smsflow::flow::check;
use smsflow::http::{ApiState, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::http::{raw, shipped_engine, try_raw};
use crate::run::service_setup;
use crate::util::{TempDir, WAIT};

/// The API with `limits` on a free loopback port, no tokens.
async fn server(limits: ListenerLimits) -> SocketAddr {
    let engine = shipped_engine();
    let state = ApiState {
        store: engine.store().clone(),
        engine: engine.clone(),
        tokens: Vec::new(),
        number_tokens: Vec::new(),
        ready: Arc::new(|| true),
        start: smsflow::http::direct_start(engine.clone()),
        on_accepted: Arc::new(|| {}),
        now: Arc::new(|| check::START),
        buttons: smsflow::config::ButtonRoutes::shipped(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let forever = std::future::pending();
    tokio::spawn(serve_with(
        listener, None, state, limits, BODY_LIMIT, forever,
    ));
    addr
}

/// A request whose headers never end: what a slowloris client leaves behind.
async fn half_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    stream
}

/// Reads until the server closes `stream` (a 408 it may send first included).
async fn closed_by_server(mut stream: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_requests_cannot_starve_healthz_and_are_closed_in_time() {
    let addr = server(ListenerLimits {
        max_connections: 32,
        header_read_timeout: Duration::from_millis(500),
        ..ListenerLimits::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(half_open(addr).await);
    }
    // At the cap every newcomer closed the idlest: the prober gets in.
    let r = raw(addr, "GET", "/healthz", &[], None).await;
    assert_eq!(r.status, 200);
    // And every half-open socket is closed: evicted, or at the header-read timeout.
    for stream in idle {
        let answer = closed_by_server(stream).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let addr = server(ListenerLimits {
        header_read_timeout: Duration::from_millis(300),
        ..ListenerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive, then nothing: the server closes it.
    closed_by_server(stream).await;
}

#[tokio::test]
async fn a_body_slower_than_the_request_timeout_gets_a_json_503() {
    let addr = server(ListenerLimits {
        request_timeout: Duration::from_millis(300),
        ..ListenerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = "POST /api/v1/flows/survey/events HTTP/1.1\r\nHost: test\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8(closed_by_server(stream).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"error\":\"request timeout\""), "{answer}");
}

#[tokio::test]
async fn when_every_connection_is_busy_a_newcomer_is_refused_at_once() {
    let addr = server(ListenerLimits {
        max_connections: 3,
        request_timeout: Duration::from_secs(30),
        ..ListenerLimits::default()
    })
    .await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        // Headers complete, body awaited: the request is being answered once the server
        // says 100 Continue.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = "POST /api/v1/flows/survey/events HTTP/1.1\r\nHost: test\r\n\
                    Content-Type: application/json\r\nContent-Length: 100\r\n\
                    Expect: 100-continue\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", &buf[..n]);
        busy.push(stream);
    }
    let r = try_raw(addr, "GET", "/healthz", &[], None).await;
    assert!(
        r.is_none(),
        "a fourth connection is closed without an answer"
    );
    drop(busy);
    // Room again once they go.
    let mut answered = false;
    for _ in 0..1000 {
        if try_raw(addr, "GET", "/healthz", &[], None).await.is_some() {
            answered = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(answered);
}

#[tokio::test]
async fn a_request_target_over_8_kib_gets_a_json_414() {
    let addr = server(ListenerLimits::default()).await;
    let path = format!("/api/v1/conversations/1?x={}", "a".repeat(10_000));
    let r = raw(addr, "GET", &path, &[], None).await;
    assert_eq!(r.status, 414);
    assert_eq!(r.json["error"], "uri too long");
    assert!(r.json["detail"].as_str().unwrap().contains("8192"));
}

/// The probe: `ulimit -n 256` and 372 half-open requests against `smsflow run`.
/// The listener closes the idlest to make room, so `/healthz` still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_256_descriptors_372_half_open_requests_leave_healthz_answering() {
    let dir = TempDir::new("http-fd-flood");
    // No SMSC needed: /healthz answers whether bound or not.
    let setup = service_setup(dir.path(), 9, &[]);
    let mut service = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" run --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_smsflow"))
        .arg(&setup.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let healthz = || try_raw(setup.http, "GET", "/healthz", &[], None);
    tokio::time::timeout(WAIT, async {
        while healthz().await.is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the service starts");
    let mut flood = Vec::new();
    for _ in 0..372 {
        flood.push(half_open(setup.http).await);
    }
    let answered = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(r) = healthz().await {
                return r.status;
            }
        }
    })
    .await
    .expect("/healthz answers under the flood");
    assert_eq!(answered, 200);
    assert!(service.try_wait().unwrap().is_none(), "still running");
    drop(flood);
}
