//! Staff calls end to end: `smsflow run` as a process against the simulator, handing
//! incidents to a Service Desk over real HTTP (a receiver on loopback that answers what the
//! test tells it), and repeated presses and the cancel button over the API.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use smsflow::sim::{self, SimConfig};
use smsflow::store::WebhookCall;
use smsflow::webhook::client;
use smsflow::webhook::policy::Attempt;
use tokio::sync::mpsc;

use crate::http::{Server, raw};
use crate::run::{ServiceSetup, service_setup, spawn_service_in_env, stop_with_sigterm};
use crate::util::{TempDir, WAIT, next_submitted, send_mo, until_ready};

const SECRET: &str = "sd-s3cret";
const NURSE: &str = "998901111111";

/// One POST the receiver got, and what it answered.
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone)]
struct Answers {
    /// Statuses for the next requests, in order; then `then`.
    next: Arc<Mutex<VecDeque<u16>>>,
    then: Arc<Mutex<u16>>,
    seen: mpsc::UnboundedSender<Received>,
}

/// A Service Desk on 127.0.0.1: answers each POST with the next scripted status, and hands
/// the test every request it got.
struct Receiver {
    url: String,
    answers: Answers,
    seen: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(first: &[u16], then: u16) -> Receiver {
        Receiver::serve(first, then, None).await
    }

    /// [`Receiver::start`] over HTTPS with `tls` (smsflow's own listener serves it).
    async fn serve(first: &[u16], then: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let (tx, seen) = mpsc::unbounded_channel();
        let answers = Answers {
            next: Arc::new(Mutex::new(first.iter().copied().collect())),
            then: Arc::new(Mutex::new(then)),
            seen: tx,
        };
        let app = axum::Router::new()
            .route("/incidents", axum::routing::post(receive))
            .with_state(answers.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}/incidents", listener.local_addr().unwrap());
        let limits = smsflow::config::ListenerLimits::default();
        let forever = std::future::pending();
        tokio::spawn(smsflow::http::listener::serve(
            listener, tls, app, limits, "desk", forever,
        ));
        Receiver { url, answers, seen }
    }

    /// From now on, answer `status`.
    fn answer(&self, status: u16) {
        *self.answers.then.lock().unwrap() = status;
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.seen.recv())
            .await
            .expect("the service delivers")
            .unwrap()
    }
}

async fn receive(State(answers): State<Answers>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status =
        (answers.next.lock().unwrap().pop_front()).unwrap_or_else(|| *answers.then.lock().unwrap());
    let _ = answers.seen.send(Received {
        headers,
        body,
        answered: status,
    });
    StatusCode::from_u16(status).unwrap()
}

/// The hex HMAC-SHA256 of `body` under the test's secret, computed here (not with smsflow's
/// own function) so the test checks the header against the standard.
fn expected_signature(body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// `smsflow run` against a fresh simulator with `[[webhook]] servicedesk` at `receiver`.
async fn service_with_desk(
    name: &str,
    receiver: &Receiver,
) -> (sim::SmscHandle, TempDir, ServiceSetup) {
    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = TempDir::new(name);
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let mut config = std::fs::read_to_string(&setup.config).unwrap();
    config.push_str(&format!(
        "\n[[webhook]]\nname = \"servicedesk\"\nurl = \"{}\"\nsecret_env = \"SD_SECRET\"\ntimeout = \"5s\"\n",
        receiver.url
    ));
    std::fs::write(&setup.config, config).unwrap();
    (smsc, dir, setup)
}

fn incident() -> Value {
    json!({
        "id": "inc-5512",
        "button": {"id": 12, "name": "Палата 315", "location": "терапевтическое отделение", "type": 102},
        "concentrator": {"host": "NURSE-PC-3", "ip": "10.0.0.17", "user": "station"},
        "levels": [[NURSE], ["998902222222"]],
        "ack_timeout": "3m",
        "extra": {"order": "table 7: soup, tea"},
    })
}

async fn post_incident(setup: &ServiceSetup, body: &Value) -> u64 {
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let path = "/api/v1/flows/escalation/events";
    let body = body.to_string();
    let r = raw(setup.http, "POST", path, &json, Some(body.as_bytes())).await;
    assert_eq!(r.status, 202, "{}", r.json);
    r.json["conversation"].as_u64().unwrap()
}

/// SPEC.md "Webhooks": a receiver that fails the first delivery with 500 gets it again with
/// the same Idempotency-Key and a valid signature; the acknowledgement (an `OK <code>` over
/// SMPP) is the conversation's next key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_with_the_same_key_and_a_valid_signature() {
    let mut desk = Receiver::start(&[500], 200).await;
    let (smsc, _dir, setup) = service_with_desk("webhook-retry", &desk).await;
    let mut service = spawn_service_in_env(&setup.config, &[], &[("SD_SECRET", SECRET)]);
    until_ready(setup.http).await;
    let mut submitted = smsc.submitted();

    let id = post_incident(&setup, &incident()).await;
    let call = next_submitted(&mut submitted).await;
    assert_eq!(call.destination, NURSE);
    assert!(call.text.ends_with("Ответьте OK 100"), "{}", call.text);

    let first = desk.next().await;
    let second = desk.next().await;
    assert_eq!((first.answered, second.answered), (500, 200));
    for (attempt, r) in [(1, &first), (2, &second)] {
        assert_eq!(r.header("idempotency-key"), format!("{id}-1"));
        assert_eq!(r.header("x-smsflow-attempt"), attempt.to_string());
        assert_eq!(r.header("x-smsflow-signature"), expected_signature(&r.body));
        assert_eq!(r.header("content-type"), "application/json");
    }
    assert_eq!(
        first.body, second.body,
        "every attempt sends the same bytes"
    );
    let body = second.json();
    assert_eq!(
        (&body["webhook"], &body["flow"], &body["conversation"]),
        (&json!("servicedesk"), &json!("escalation"), &json!(id))
    );
    assert!(body["at"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(body["payload"]["event"], "opened");
    assert_eq!(body["payload"]["code"], 100);
    assert_eq!(body["payload"]["incident"], incident());
    let conversation = raw(
        setup.http,
        "GET",
        &format!("/api/v1/conversations/{id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(
        conversation.json["reply_code"], 100,
        "{}",
        conversation.json
    );

    // The nurse takes the call by its code; the desk hears who, at which level.
    assert!(send_mo(&smsc, NURSE, "OK 100").await.is_ok());
    let taken = next_submitted(&mut submitted).await;
    assert!(
        taken.text.ends_with("ответьте ГОТОВО 100"),
        "{}",
        taken.text
    );
    let ack = desk.next().await;
    assert_eq!(ack.header("idempotency-key"), format!("{id}-2"));
    let payload = &ack.json()["payload"];
    assert_eq!(
        (&payload["event"], &payload["by"], &payload["level"]),
        (&json!("acknowledged"), &json!(NURSE), &json!(1))
    );

    let metrics = raw(setup.metrics, "GET", "/metrics", &[], None).await.body;
    for needle in [
        "smsflow_webhook_deliveries_total{webhook=\"servicedesk\",result=\"retried\"} 1",
        "smsflow_webhook_deliveries_total{webhook=\"servicedesk\",result=\"given_up\"} 0",
        "smsflow_webhook_deliveries_total{webhook=\"servicedesk\",result=\"refused\"} 0",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

/// A call queued by a durable step, not yet delivered when `smsflow run` is killed with
/// SIGKILL, is delivered once the service is back: the same key, the same body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_pending_at_kill_9_is_delivered_after_the_restart() {
    let mut desk = Receiver::start(&[], 503).await;
    let (smsc, _dir, setup) = service_with_desk("webhook-kill", &desk).await;
    let env = [("SD_SECRET", SECRET)];
    let mut service = spawn_service_in_env(&setup.config, &[], &env);
    until_ready(setup.http).await;
    let id = post_incident(&setup, &incident()).await;
    let refused = desk.next().await;
    assert_eq!(refused.answered, 503);

    service.start_kill().unwrap();
    let status = service.wait().await.unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    // Retries it made before it died are not the delivery after the restart.
    while desk.seen.try_recv().is_ok() {}
    desk.answer(200);
    let mut service = spawn_service_in_env(&setup.config, &[], &env);
    let delivered = desk.next().await;
    assert_eq!(delivered.answered, 200);
    assert_eq!(delivered.header("idempotency-key"), format!("{id}-1"));
    assert_eq!(delivered.body, refused.body);
    assert_eq!(
        delivered.header("x-smsflow-signature"),
        expected_signature(&delivered.body)
    );
    until_ready(setup.http).await;
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

/// SPEC.md "Staff calls": a second press of the same button (a new event id) joins the open
/// incident with `"joined": true` and texts nobody; the cancel button (the first id again with
/// `"resolve": true`) resolves it; retries of either are duplicates.
#[tokio::test]
async fn a_repeated_press_joins_and_the_cancel_button_cancels_over_http() {
    let server = Server::start(&[]).await;
    let path = "/api/v1/flows/escalation/events";
    let first = server
        .call("POST", path, None, Some(&incident().to_string()))
        .await;
    assert_eq!(first.status, 202, "{}", first.json);
    let id = first.json["conversation"].clone();
    assert_eq!(server.engine.store().outbox(10).unwrap().len(), 1);

    let mut again = incident();
    again["id"] = json!("inc-5513");
    let joined = server
        .call("POST", path, None, Some(&again.to_string()))
        .await;
    assert_eq!(joined.status, 202, "{}", joined.json);
    assert_eq!(
        joined.json,
        json!({"conversation": id, "duplicate": false, "joined": true})
    );
    let retried = server
        .call("POST", path, None, Some(&again.to_string()))
        .await;
    assert_eq!(retried.json, json!({"conversation": id, "duplicate": true}));
    assert_eq!(
        server.engine.store().outbox(10).unwrap().len(),
        1,
        "nobody texted again"
    );

    let cancel = json!({"id": "inc-5512", "resolve": true}).to_string();
    let resolved = server.call("POST", path, None, Some(&cancel)).await;
    assert_eq!(resolved.json["joined"], true, "{}", resolved.json);
    let conversation =
        (server.call("GET", &format!("/api/v1/conversations/{id}"), None, None)).await;
    // Nobody had answered: cancelled at the button, not acknowledged by the concentrator.
    assert_eq!(
        conversation.json["outcome"], "cancelled",
        "{}",
        conversation.json
    );
    let timeline = conversation.json["timeline"].as_array().unwrap();
    let statuses: Vec<&str> = timeline
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"joined") && statuses.contains(&"updated"),
        "{statuses:?}"
    );
    let records = server.engine.store().incidents(i64::MIN, i64::MAX).unwrap();
    let incident = &smsflow::store::Incident::latest(records)[0];
    assert_eq!(incident.fields["repeats"], 1);
    assert_eq!(incident.fields["outcome"], "cancelled");
    assert_eq!(incident.fields["acknowledged"], false);

    let retried = server.call("POST", path, None, Some(&cancel)).await;
    assert_eq!(retried.json["duplicate"], true, "{}", retried.json);
    let late = json!({"id": "inc-5512", "resolve": true, "by": "NURSE-PC-3"}).to_string();
    server
        .call("POST", path, None, Some(&late))
        .await
        .assert_error(409, "conflict");
}

/// `https://` webhooks: the receiver's certificate is verified against `tls_ca` (the client
/// the worker uses, called directly); one from another CA fails the attempt, naming why.
#[tokio::test]
async fn an_https_receiver_is_verified_against_tls_ca() {
    let pki = crate::tls::Pki::new("webhook");
    let mut desk = Receiver::serve(&[], 200, Some(pki.server_config("server", false))).await;
    let url = desk.url.clone();
    let webhook = |ca: &str| {
        let text = format!(
            "[[smsc]]\nname = \"a\"\npassword = \"x\"\n[[webhook]]\nname = \"desk\"\n\
             url = \"{}\"\ntls_ca = \"{}\"\n",
            url,
            pki.path(ca).display()
        );
        let config = smsflow::config::Config::from_toml(&text, None, &|_| None).unwrap();
        config.webhook[0].resolved().unwrap().clone()
    };
    let call = WebhookCall {
        id: 9,
        webhook: "desk".into(),
        conversation: 4,
        flow: "escalation".into(),
        seq: 2,
        created_at: 0,
        body: r#"{"payload":{}}"#.into(),
    };
    let timeout = std::time::Duration::from_secs(10);
    let trusted = client::post(&webhook("ca.pem"), timeout, &call, 1).await;
    assert_eq!(trusted, Attempt::Answered(200));
    assert_eq!(desk.next().await.header("idempotency-key"), "4-2");
    match client::post(&webhook("rogue-ca.pem"), timeout, &call, 1).await {
        Attempt::Failed(why) => assert!(
            why.contains("TLS handshake with 127.0.0.1 failed") && why.contains("UnknownIssuer"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}
