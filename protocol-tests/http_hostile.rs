//! The HTTP API against careless and hostile clients, round two (issue 27 item 7), over real
//! sockets: a declared body far over `max_body` is refused before it is sent, a body that
//! names a key twice is refused naming it, and no answer holding customer data may be
//! cached, framed or sniffed; the dashboard still renders under its Content-Security-Policy
//! in headless Chromium (skipped loudly when there is none, required with
//! `SMSFLOW_REQUIRE_CHROMIUM=1`).

use smsflow::flow::check;
use smsflow::store::{Commit, Rating};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::http::Server;
use crate::util::{TempDir, WAIT};

const SURVEY: &str = "/api/v1/flows/survey/events";

/// Everything the server sends on `stream` until it closes it.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server answers and closes");
    String::from_utf8_lossy(&received).into_owned()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A client that declares a terabyte and sends none of it gets the 413 at once, not a 503
/// when the request timeout (30 s) runs out; with `Expect: 100-continue` it is told not to
/// send the body at all (no `100 Continue` first).
#[tokio::test]
async fn a_declared_length_over_max_body_is_a_413_before_the_body() {
    let server = Server::start(&[]).await;
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {SURVEY} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Content-Length: 999999999999\r\n{expect}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = until_closed(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{expect}: {answer}");
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert_eq!(header(head, "connection"), Some("close"), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "payload too large");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("999999999999") && detail.contains("65536"),
            "{detail}"
        );
    }
    // A client that sends its megabyte anyway: the 413 is read, not destroyed by a reset
    // when the server closes with the body unread.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST {SURVEY} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        1 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; 1 << 20]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(matches!(read, Ok(Ok(_))), "{read:?} after {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A declared length within the limit is read as usual.
    let ok = server
        .call(
            "POST",
            SURVEY,
            None,
            Some(r#"{"id": "fits", "msisdn": "998901234567"}"#),
        )
        .await;
    assert_eq!(ok.status, 202, "{}", ok.json);
}

/// `{"msisdn": A, "msisdn": B}` is B to serde_json and maybe A to the system that sent it:
/// refused with 400 naming the key and where it is; nothing started.
#[tokio::test]
async fn a_key_named_twice_is_a_400_naming_it() {
    let server = Server::start(&[]).await;
    let cases = [
        (
            SURVEY,
            r#"{"id": "d-1", "msisdn": "998901234567", "msisdn": "998907654321"}"#,
            r#"duplicate key "msisdn" in the body"#,
        ),
        (
            SURVEY,
            r#"{"id": "d-2", "msisdn": "998901234567", "\u0069d": "d-3"}"#,
            r#"duplicate key "id" in the body"#,
        ),
        (
            "/api/v1/flows/escalation/events",
            r#"{"id": "d-4", "button": {"id": 1, "name": "Палата 1", "name": "Палата 2"},
                "levels": [["998901111111"]]}"#,
            r#"duplicate key "name" in "button""#,
        ),
    ];
    for (path, body, needle) in cases {
        let resp = server.call("POST", path, None, Some(body)).await;
        resp.assert_error(400, "bad request");
        let detail = resp.json["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{detail}");
    }
    assert!(server.engine.store().outbox(usize::MAX).unwrap().is_empty());
    let found = server
        .call("GET", "/api/v1/flows/survey/events/d-1", None, None)
        .await;
    assert_eq!(found.status, 404, "{}", found.json);
}

/// The policy headers every answer carries: the dashboard, the JSON with numbers and
/// comments, and the errors alike.
#[tokio::test]
async fn reports_answers_with_customer_data_are_not_cached_framed_or_sniffed() {
    let server = Server::start(&[]).await;
    let started = server
        .call(
            "POST",
            SURVEY,
            None,
            Some(r#"{"id": "h-1", "msisdn": "998901234567"}"#),
        )
        .await;
    let id = started.json["conversation"].as_u64().unwrap();
    for path in [
        "/reports".to_owned(),
        "/reports?from=nonsense".to_owned(),
        format!("/api/v1/conversations/{id}"),
        "/api/v1/conversations?msisdn=998901234567".to_owned(),
        "/api/v1/responses".to_owned(),
        "/api/v1/reports/csi".to_owned(),
        "/api/v1/conversations/999999".to_owned(),
    ] {
        let resp = server.call("GET", &path, None, None).await;
        let head = &resp.head;
        assert_eq!(
            header(head, "cache-control"),
            Some("no-store"),
            "{path}: {head}"
        );
        assert_eq!(header(head, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(head, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let csp = header(head, "content-security-policy").unwrap_or_default();
        for directive in ["default-src 'none'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("script-src"), "{path}: {csp}");
    }
}

/// Chromium, if installed; else a loud skip (a failure with `SMSFLOW_REQUIRE_CHROMIUM=1`).
fn chromium(test: &str) -> Option<std::path::PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(crate::export::which);
    if found.is_none() {
        let required = std::env::var("SMSFLOW_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "no Chromium but SMSFLOW_REQUIRE_CHROMIUM=1: apt-get install -y chromium"
        );
        eprintln!("\n*** SKIPPED {test}: no Chromium (apt-get install -y chromium) ***\n");
    }
    found
}

/// `url` loaded in headless Chromium: the DOM it built, and what its console said about
/// the Content-Security-Policy.
async fn render(browser: &std::path::Path, profile: &TempDir, url: &str) -> (String, Vec<String>) {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .output(),
    )
    .await
    .expect("Chromium renders the page in time")
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let refused = (log.lines())
        .filter(|l| l.contains("Content Security Policy"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), refused)
}

/// One HTTP answer to every connection: `body` as HTML under the policy `csp`.
async fn serve_once_per_connection(body: String, csp: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Security-Policy: {csp}\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    });
    addr
}

/// The dashboard, with ratings and comments to draw, under its own policy: Chromium builds
/// the whole page (charts, the newest responses) and refuses nothing. The same page under
/// a policy without inline styles is refused, so the check can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_dashboard_renders_under_its_content_security_policy_in_chromium() {
    let test = "reports_dashboard_renders_under_its_content_security_policy_in_chromium";
    let Some(browser) = chromium(test) else {
        return;
    };
    let server = Server::start(&[]).await;
    let ratings = (0..6u8)
        .map(|i| Rating {
            conversation: 100 + u64::from(i),
            flow: "survey".into(),
            at: check::START - 3_600_000 - i64::from(i) * 86_400_000,
            msisdn: format!("99890123456{i}"),
            score: 1 + i % 5,
            operator: format!("op-{}", i % 2),
            channel: "call".into(),
            comment: format!("долго ждать <b>{i}</b>"),
        })
        .collect();
    server
        .engine
        .store()
        .commit(Commit {
            ratings,
            ..Commit::default()
        })
        .unwrap();
    let profile = TempDir::new("chromium-profile");
    let url = format!("http://{}/reports", server.addr);
    let (dom, refused) = render(&browser, &profile, &url).await;
    assert_eq!(refused, Vec::<String>::new(), "{dom}");
    for part in [
        "<svg",
        "Newest responses",
        "долго ждать &lt;b&gt;3&lt;/b&gt;",
        "<form",
    ] {
        assert!(dom.contains(part), "{part}: {dom}");
    }

    let page = server.call("GET", "/reports", None, None).await.body;
    let strict = serve_once_per_connection(page, "default-src 'none'").await;
    let (_, refused) = render(&browser, &profile, &format!("http://{strict}/")).await;
    assert!(
        !refused.is_empty(),
        "a policy without inline styles is refused"
    );
}
