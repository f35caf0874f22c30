//! The HTTP API over real sockets on loopback: every route and status code, spoken with a
//! tiny hand-written HTTP/1.1 client (no TLS stack in the test build).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use smsflow::flow::check;
use smsflow::flow::engine::{EngineConfig, FlowEngine};
use smsflow::http::{ApiState, serve};
use smsflow::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub(crate) const TOKEN: &str = "s3cret-token";
const MSISDN: &str = "998901234567";

/// The API on loopback over a temporary store (also for `find.rs`).
pub(crate) struct Server {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) engine: Arc<FlowEngine>,
    ready: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The shipped flows on a temporary store.
pub(crate) fn shipped_engine() -> Arc<FlowEngine> {
    let (engine, errors) = FlowEngine::new(
        Store::temporary().unwrap(),
        EngineConfig {
            scripts_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")),
            ..EngineConfig::default()
        },
    );
    assert!(errors.is_empty(), "{errors:?}");
    Arc::new(engine)
}

impl Server {
    pub(crate) async fn start(tokens: &[&str]) -> Server {
        let engine = shipped_engine();
        let ready = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let state = ApiState {
            store: engine.store().clone(),
            engine: engine.clone(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            number_tokens: Vec::new(),
            ready: {
                let ready = ready.clone();
                Arc::new(move || ready.load(Ordering::SeqCst))
            },
            start: smsflow::http::direct_start(engine.clone()),
            on_accepted: {
                let accepted = accepted.clone();
                Arc::new(move || {
                    accepted.fetch_add(1, Ordering::SeqCst);
                })
            },
            // Daytime in Tashkent: no quiet hours in the way of the survey's question.
            now: Arc::new(|| check::START),
            buttons: smsflow::config::ButtonRoutes::shipped(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            engine,
            ready,
            accepted,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
        }
        if body.is_some() {
            headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        raw(self.addr, method, path, &headers, body.map(str::as_bytes)).await
    }

    async fn post(&self, path: &str, body: &str) -> Resp {
        self.call("POST", path, None, Some(body)).await
    }

    async fn get(&self, path: &str) -> Resp {
        self.call("GET", path, None, None).await
    }

    fn outbox(&self) -> Vec<(String, String)> {
        let messages = self.engine.store().outbox(usize::MAX).unwrap();
        messages.into_iter().map(|m| (m.to, m.text)).collect()
    }
}

pub struct Resp {
    pub status: u16,
    pub head: String,
    /// The body as text; `json` is it parsed when the response says it is JSON.
    pub body: String,
    pub json: Value,
}

impl Resp {
    /// The JSON error shape every failure must have.
    pub(crate) fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.json);
        assert_eq!(self.json["error"], error, "{}", self.json);
        assert!(self.json["detail"].is_string(), "{}", self.json);
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
    }
}

/// One request on a fresh connection (`Connection: close`), the response read to its end.
pub async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Resp {
    try_raw(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|| panic!("no complete response to {method} {path}"))
}

/// `body` posted as JSON to the events of `flow` with `auth` headers, answered 202; the
/// answer.
pub async fn post_event(
    addr: std::net::SocketAddr,
    flow: &str,
    auth: &[(String, String)],
    body: &str,
) -> Resp {
    let mut headers = auth.to_vec();
    headers.push(("Content-Type".to_owned(), "application/json".to_owned()));
    let path = format!("/api/v1/flows/{flow}/events");
    let resp = raw(addr, "POST", &path, &headers, Some(body.as_bytes())).await;
    assert_eq!(resp.status, 202, "{}", resp.json);
    resp
}

/// [`raw`] for a server that may be down or dying: `None` when the connection is refused or
/// the response is cut short.
pub async fn try_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> Option<Resp> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (413) and close before reading a big body: a failed write or a
    // reset after the response arrived is fine, the response is what we check.
    let _ = stream.write_all(&bytes).await;
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let is_json = head
        .to_ascii_lowercase()
        .contains("content-type: application/json");
    let json = if body.is_empty() || !is_json {
        Value::Null
    } else {
        // A JSON body cut short is no complete response.
        serde_json::from_str(body).ok()?
    };
    Some(Resp {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
        json,
    })
}

const SURVEY: &str = "/api/v1/flows/survey/events";
const ESCALATION: &str = "/api/v1/flows/escalation/events";

fn survey(id: &str, msisdn: &str) -> String {
    json!({"id": id, "msisdn": msisdn, "operator": "op-17", "channel": "call"}).to_string()
}

#[tokio::test]
async fn a_survey_event_starts_a_conversation_and_queues_the_question() {
    let server = Server::start(&[]).await;
    let r = server.post(SURVEY, &survey("call-7781", MSISDN)).await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["duplicate"], false);
    assert!(r.json.get("queued").is_none(), "bound: nothing waits");
    assert!(r.json["conversation"].is_u64());
    let outbox = server.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, MSISDN);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_id_again_is_the_first_conversation_and_sends_nothing() {
    let server = Server::start(&[]).await;
    let first = server.post(SURVEY, &survey("call-1", MSISDN)).await;
    let again = server.post(SURVEY, &survey("call-1", MSISDN)).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.json["conversation"], first.json["conversation"]);
    assert_eq!(again.json["duplicate"], true);
    assert_eq!(server.outbox().len(), 1);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);

    // A numeric id is a key too.
    let body = json!({"id": 42, "msisdn": "998907654321"}).to_string();
    let first = server.post(SURVEY, &body).await;
    let again = server.post(SURVEY, &body).await;
    assert_eq!(first.json["duplicate"], false);
    assert_eq!(again.json["duplicate"], true);
    assert_eq!(again.json["conversation"], first.json["conversation"]);
    assert_eq!(server.outbox().len(), 2);
}

/// An id reused with another body is a 409 naming the first conversation, not a silent
/// duplicate; the same body with its keys in another order is still the same event.
#[tokio::test]
async fn the_same_id_with_another_body_is_a_409_conflict() {
    let server = Server::start(&[]).await;
    let body =
        r#"{"id": "call-9", "msisdn": "998901234567", "operator": "op-1", "channel": "call"}"#;
    let first = server.post(SURVEY, body).await;
    assert_eq!(first.status, 202);
    let reordered =
        r#"{"channel": "call", "operator": "op-1", "msisdn": "+998901234567", "id": "call-9"}"#;
    let again = server.post(SURVEY, reordered).await;
    assert_eq!(
        (again.status, &again.json["duplicate"]),
        (202, &json!(true))
    );
    let other = server.post(SURVEY, &survey("call-9", "998907777777")).await;
    other.assert_error(409, "conflict");
    assert_eq!(other.json["conversation"], first.json["conversation"]);
    assert!(other.json["detail"].as_str().unwrap().contains("call-9"));
    assert_eq!(server.outbox().len(), 1, "nothing sent for the conflict");
}

/// Labels the reports group by must be strings: a map or a number is refused at the edge.
#[tokio::test]
async fn operator_and_channel_must_be_strings() {
    let server = Server::start(&[]).await;
    for body in [
        json!({"msisdn": MSISDN, "operator": {"name": "op-1"}, "channel": "call"}),
        json!({"msisdn": MSISDN, "operator": "op-1", "channel": 7}),
    ] {
        let r = server.post(SURVEY, &body.to_string()).await;
        r.assert_error(422, "invalid event");
        assert!(
            r.json["detail"]
                .as_str()
                .unwrap()
                .contains("must be a string")
        );
    }
    assert!(server.outbox().is_empty());
}

#[tokio::test]
async fn an_unknown_flow_is_404_naming_the_flows() {
    let server = Server::start(&[]).await;
    let r = server
        .post("/api/v1/flows/x/events", &survey("1", MSISDN))
        .await;
    r.assert_error(404, "unknown flow");
    assert_eq!(
        r.json["detail"],
        "no flow named \"x\" (flows: alert, complaint, escalation, inbox, nps, survey)"
    );
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let server = Server::start(&[]).await;
    server
        .post(SURVEY, "{\"id\": ")
        .await
        .assert_error(400, "bad request");
    let r = server.post(SURVEY, "[1, 2]").await;
    r.assert_error(400, "bad request");
    assert!(r.json["detail"].as_str().unwrap().contains("an array"));
    let r = server
        .post(SURVEY, &json!({"id": true, "msisdn": MSISDN}).to_string())
        .await;
    r.assert_error(400, "bad request");
    assert!(r.json["detail"].as_str().unwrap().contains("\"id\""));
    assert!(server.outbox().is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let server = Server::start(&[]).await;
    let headers = [("Content-Type".to_owned(), "text/plain".to_owned())];
    let r = raw(server.addr, "POST", SURVEY, &headers, Some(b"{}")).await;
    r.assert_error(415, "unsupported media type");
}

#[tokio::test]
async fn a_bad_msisdn_is_422_and_a_plus_is_stripped() {
    let server = Server::start(&[]).await;
    let r = server.post(SURVEY, &survey("a", "99890-CALL-ME")).await;
    r.assert_error(422, "invalid event");
    assert!(r.json["detail"].as_str().unwrap().contains("msisdn"));
    let r = server
        .post(SURVEY, &json!({"id": "n", "msisdn": 998}).to_string())
        .await;
    r.assert_error(422, "invalid event");
    assert!(server.outbox().is_empty());

    let r = server.post(SURVEY, &survey("b", "+998901234567")).await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(server.outbox()[0].0, MSISDN);
    let id = r.json["conversation"].as_u64().unwrap();
    let state = server
        .engine
        .store()
        .conversation(id)
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state["msisdn"], MSISDN, "the flow saw the number without +");
}

#[tokio::test]
async fn escalation_levels_must_be_msisdns() {
    let server = Server::start(&[]).await;
    let bad = json!({"id": "inc-1", "levels": [["998901111111"], ["998902222222", "nurse"]]});
    let r = server.post(ESCALATION, &bad.to_string()).await;
    r.assert_error(422, "invalid event");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("levels\"[1][1]")
    );
    let flat = json!({"id": "inc-2", "levels": ["998901111111"]});
    server
        .post(ESCALATION, &flat.to_string())
        .await
        .assert_error(422, "invalid event");
    assert!(server.outbox().is_empty());

    let good = json!({
        "id": "inc-5512",
        "button": {"id": 12, "name": "Палата 315", "location": "терапевтическое отделение", "type": 102},
        "levels": [["+998901111111"], ["998902222222"]],
        "ack_timeout": "3m",
    });
    let r = server.post(ESCALATION, &good.to_string()).await;
    assert_eq!(r.status, 202, "{}", r.json);
    let outbox = server.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, "998901111111");
}

#[tokio::test]
async fn a_failing_hook_is_422_with_the_errored_conversation() {
    let server = Server::start(&[]).await;
    // A level of 51 staff: the hook hits the per-hook send limit.
    let level: Vec<String> = (0..51).map(|i| format!("9989011{i:05}")).collect();
    let event = json!({"id": "inc-0", "button": {"name": "Палата 1"}, "levels": [level]});
    let r = server.post(ESCALATION, &event.to_string()).await;
    r.assert_error(422, "flow error");
    let detail = r.json["detail"].as_str().unwrap();
    assert!(detail.contains("more than 50 messages"), "{}", r.json);
    let id = r.json["conversation"].as_u64().unwrap();
    let c = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.json["status"], "errored");
    assert!(c.json["error"].as_str().unwrap().contains("more than 50"));
    assert!(server.outbox().is_empty(), "the failed hook sent nothing");
}

/// The flow's declared event fields are checked before anything is created: 422 naming the
/// field.
#[tokio::test]
async fn an_event_without_a_required_field_is_422_and_creates_nothing() {
    let server = Server::start(&[]).await;
    for (flow, event, detail) in [
        (SURVEY, json!({"operator": "op-1"}), "msisdn: missing"),
        (
            SURVEY,
            json!({"msisdn": MSISDN, "comment": "yes"}),
            "comment: must be true or false",
        ),
        (
            ESCALATION,
            json!({"id": "inc-1", "levels": []}),
            "button: missing",
        ),
        (
            ESCALATION,
            json!({"button": {}, "levels": []}),
            "levels: must be a non-empty array",
        ),
    ] {
        let r = server.post(flow, &event.to_string()).await;
        r.assert_error(422, "invalid event");
        let got = r.json["detail"].as_str().unwrap();
        assert!(got.starts_with(detail), "{event}: {got}");
    }
    assert!(
        server.engine.store().conversation_ids().unwrap().is_empty(),
        "nothing created"
    );
    assert!(server.outbox().is_empty());
}

#[tokio::test]
async fn not_bound_the_event_is_queued() {
    let server = Server::start(&[]).await;
    server.ready.store(false, Ordering::SeqCst);
    let r = server.post(SURVEY, &survey("q", MSISDN)).await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["queued"], true);
    assert_eq!(server.outbox().len(), 1, "kept until a session binds");
}

#[tokio::test]
async fn api_routes_need_a_token_probes_do_not() {
    let server = Server::start(&["other", TOKEN]).await;
    for token in [None, Some("wrong"), Some("s3cret-tokeN")] {
        let r = server
            .call("POST", SURVEY, token, Some(&survey("t", MSISDN)))
            .await;
        r.assert_error(401, "unauthorized");
        assert!(r.head.contains("www-authenticate: Bearer"), "{}", r.head);
    }
    server
        .call("GET", "/api/v1/conversations/1", None, None)
        .await
        .assert_error(401, "unauthorized");
    assert!(server.outbox().is_empty());

    let r = server
        .call("POST", SURVEY, Some(TOKEN), Some(&survey("t", MSISDN)))
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let id = r.json["conversation"].as_u64().unwrap();
    let r = server
        .call(
            "GET",
            &format!("/api/v1/conversations/{id}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(server.get("/healthz").await.status, 200);
    assert_eq!(server.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn a_conversation_shows_state_timeline_and_timers() {
    let server = Server::start(&[]).await;
    let r = server.post(SURVEY, &survey("call-9", MSISDN)).await;
    let id = r.json["conversation"].as_u64().unwrap();
    let c = server.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(c.status, 200, "{}", c.json);
    let j = &c.json;
    assert_eq!(j["id"], id);
    assert_eq!(j["flow"], "survey");
    assert!(j["flow_version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(j["status"], "open");
    assert_eq!(j["parties"], json!([MSISDN]));
    assert_eq!(j["state"]["operator"], "op-17");
    let created = j["created_at"].as_str().unwrap();
    assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
    assert_eq!(
        created.parse::<jiff::Timestamp>().unwrap().as_millisecond(),
        check::START
    );
    assert!(j["updated_at"].is_string());
    let timeline = j["timeline"].as_array().unwrap();
    let question = &server.outbox()[0].1;
    assert!(
        timeline.iter().any(|e| e["direction"] == "out"
            && e["party"] == MSISDN
            && e["text"] == question.as_str()
            && e["status"].is_string()
            && e["at"].is_string()),
        "{timeline:?}"
    );
    for timer in j["timers"].as_array().unwrap() {
        assert!(
            timer["name"].is_string() && timer["due"].is_string(),
            "{timer}"
        );
    }
}

#[tokio::test]
async fn conversation_ids_unknown_404_non_numeric_400() {
    let server = Server::start(&[]).await;
    let r = server.get("/api/v1/conversations/987654").await;
    r.assert_error(404, "unknown conversation");
    server
        .get("/api/v1/conversations/abc")
        .await
        .assert_error(400, "bad request");
}

#[tokio::test]
async fn healthz_always_readyz_follows_the_binds() {
    let server = Server::start(&[TOKEN]).await;
    let r = server.get("/healthz").await;
    assert_eq!((r.status, r.json.clone()), (200, json!({"status": "ok"})));
    assert_eq!(server.get("/readyz").await.status, 200);
    server.ready.store(false, Ordering::SeqCst);
    let r = server.get("/readyz").await;
    r.assert_error(503, "not ready");
    assert_eq!(r.json["detail"], "no SMSC session is bound");
    assert_eq!(server.get("/healthz").await.status, 200);
    server.ready.store(true, Ordering::SeqCst);
    assert_eq!(server.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let server = Server::start(&[]).await;
    server.get("/nope").await.assert_error(404, "not found");
    server
        .get("/api/v2/whatever")
        .await
        .assert_error(404, "not found");
    server
        .get(SURVEY)
        .await
        .assert_error(405, "method not allowed");
    server
        .post("/healthz", "{}")
        .await
        .assert_error(405, "method not allowed");
}

#[tokio::test]
async fn a_body_over_64_kib_is_413() {
    let server = Server::start(&[]).await;
    let big = json!({"id": "big", "msisdn": MSISDN, "pad": "x".repeat(100 * 1024)}).to_string();
    server
        .post(SURVEY, &big)
        .await
        .assert_error(413, "payload too large");
    assert!(server.outbox().is_empty());
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let mut server = Server::start(&[]).await;
    assert_eq!(server.get("/healthz").await.status, 200);
    let _ = server.stop.take().unwrap().send(());
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), &mut server.task)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(TcpStream::connect(server.addr).await.is_err());
}
