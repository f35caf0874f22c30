//! The simulator's HTTP control port (`smsflow smsc --control ADDR`), for driving it by hand:
//! a text from any phone to the bound ESME, and what the ESME sent to phones.
//!
//! - `POST /mo` with `{"from": "998901234567", "text": "OK 100"}` (and optionally `"to"`, the
//!   short code, default `5700`): injects the MO and waits until an ESME answered it for good,
//!   or `?wait=` (default 10 s, at most 60 s) passed. The answer says what happened:
//!   `"outcome"` is `acknowledged` (200, ESME_ROK), `refused` (200, a permanent error: the
//!   SMSC drops it) or `queued` (202: nobody answered in time; it stays queued and goes to the
//!   next ESME that binds).
//! - `GET /messages?to=&limit=`: the messages ESMEs submitted (reassembled), oldest first, the
//!   last `limit` (default 100) of the [`KEPT`] newest: time, from, to, text, parts, encoding,
//!   and `status`, what became of it at the handset (`delivered`, or `undeliverable` for a
//!   number [`SimConfig::receipt_failure_share`](super::SimConfig) made unreachable).
//!
//! Bad input is a 4xx with a JSON body `{"error", "field", "detail"}` naming the field (no
//! `field` for a body that is no JSON object, an unknown field or parameter, a wrong route).
//!
//! Must not: reach into the simulator beyond [`SmscHandle`] (it is a client of the same handle
//! tests use), or keep more than [`KEPT`] messages.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Mo, SimError, SmscHandle, Submitted, lock, unreachable};
use crate::smpp::CommandStatus;

/// Messages `GET /messages` can list: the newest this many.
pub const KEPT: usize = 1000;
/// The short code an MO goes to when the request names none.
pub const DEFAULT_TO: &str = "5700";
/// How long `POST /mo` waits for the ESME's answer, by default and at most.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Characters of an MO's text at most (about 15 UCS-2 parts).
pub const MAX_TEXT_CHARS: usize = 1000;
/// Bytes of a request body at most.
const MAX_BODY: usize = 64 * 1024;
/// Rows `GET /messages` gives without `limit`.
const DEFAULT_LIMIT: usize = 100;

/// A running control port; [`ControlPort::shutdown`] stops it.
#[derive(Debug)]
pub struct ControlPort {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ControlPort {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and recording; waits for both.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            // They only end; a panic would already have been logged.
            let _ = task.await;
        }
    }
}

/// Opens the control port of `smsc` on `listen`.
pub async fn serve(smsc: SmscHandle, listen: SocketAddr) -> Result<ControlPort, SimError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: listen,
        source,
    })?;
    let stop = CancellationToken::new();
    let state = Arc::new(Port {
        log: Mutex::new(Log::default()),
        smsc,
    });
    // Subscribed before the port answers, so no message submitted after that is missed.
    let recorder = tokio::spawn(record(state.clone(), state.smsc.submitted(), stop.clone()));
    let router = Router::new()
        .route("/mo", post(post_mo))
        .route("/messages", get(messages))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state);
    let stopped = stop.clone();
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stopped.cancelled().await });
        if let Err(error) = serving.await {
            warn!(%error, "the simulator's control port stopped");
        }
    });
    info!(%local_addr, "smsc simulator control port listening");
    Ok(ControlPort {
        local_addr,
        stop,
        tasks: vec![recorder, server],
    })
}

struct Port {
    smsc: SmscHandle,
    log: Mutex<Log>,
}

/// The newest submitted messages, and how many were seen or missed.
#[derive(Default)]
struct Log {
    messages: VecDeque<Value>,
    seen: u64,
    /// Messages the recorder fell too far behind to see (a burst beyond the broadcast's
    /// capacity): counted, so a list with holes says so.
    missed: u64,
}

/// Keeps the log of what ESMEs submit until `stop`.
async fn record(
    port: Arc<Port>,
    mut submitted: broadcast::Receiver<Submitted>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = submitted.recv() => message,
        };
        let entry = match message {
            Ok(message) => entry(&port.smsc, &message),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                lock(&port.log).missed += n;
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut log = lock(&port.log);
        log.seen += 1;
        if log.messages.len() == KEPT {
            log.messages.pop_front();
        }
        log.messages.push_back(entry);
    }
}

/// What `GET /messages` shows of one submitted message.
fn entry(smsc: &SmscHandle, message: &Submitted) -> Value {
    let config = smsc.config();
    let status = if unreachable(
        config.seed,
        config.receipt_failure_share,
        &message.destination,
    ) {
        "undeliverable"
    } else {
        "delivered"
    };
    let encoding = match message.data_coding {
        0 => "GSM-7".to_owned(),
        8 => "UCS-2".to_owned(),
        other => format!("data_coding {other}"),
    };
    json!({
        "at": now_to_the_millisecond().to_string(),
        "from": message.source,
        "to": message.destination,
        "text": message.text,
        "parts": message.message_ids.len(),
        "encoding": encoding,
        "status": status,
        "receipt_requested": message.registered_delivery & 0x01 != 0,
    })
}

fn now_to_the_millisecond() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}

/// A 4xx (or 503) with `{"error", "detail"}`, and `"field"` when one field is to blame.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    field: Option<&'static str>,
    detail: String,
}

impl Refusal {
    fn bad(field: &'static str, detail: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field),
            detail,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let error = self
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase();
        let mut body = json!({"error": error, "detail": self.detail});
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        (self.status, Json(body)).into_response()
    }
}

/// `POST /mo`; see the module documentation.
async fn post_mo(
    State(port): State<Arc<Port>>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> Result<Response, Refusal> {
    let mut wait = DEFAULT_WAIT;
    for (name, value) in query(pairs)? {
        match name.as_str() {
            "wait" => wait = parse_wait(&value)?,
            _ => return Err(unknown_parameter(&name, "wait")),
        }
    }
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        field: None,
        detail: format!("the body is over {MAX_BODY} bytes"),
    })?;
    let mo = parse_mo(&body)?;
    let summary = json!({"from": mo.source, "to": mo.destination, "text": mo.text});
    let delivery = port
        .smsc
        .inject_mo(mo)
        .map_err(|e| Refusal::bad("from", e.to_string()))?;
    let parts = delivery.parts();
    let mut answer = summary;
    answer["parts"] = json!(parts);
    let status = match tokio::time::timeout(wait, delivery.outcome()).await {
        Ok(Ok(CommandStatus::ESME_ROK)) => {
            answer["outcome"] = json!("acknowledged");
            answer["status"] = json!("ESME_ROK");
            StatusCode::OK
        }
        Ok(Ok(status)) => {
            answer["outcome"] = json!("refused");
            answer["status"] = json!(status.to_string());
            answer["detail"] = json!(format!(
                "the ESME refused it for good ({status}): the SMSC drops it"
            ));
            StatusCode::OK
        }
        Ok(Err(_)) => {
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                field: None,
                detail: "the simulator is stopping".into(),
            });
        }
        Err(_) => {
            let bound = port.smsc.stats().sessions_bound;
            answer["outcome"] = json!("queued");
            answer["detail"] = json!(format!(
                "no ESME answered it within {} ({bound} session(s) bound): it stays queued and \
                 goes to the next ESME that binds",
                humantime::format_duration(wait)
            ));
            StatusCode::ACCEPTED
        }
    };
    Ok((status, Json(answer)).into_response())
}

/// The MO of a `POST /mo` body, every field checked.
fn parse_mo(body: &[u8]) -> Result<Mo, Refusal> {
    const EXAMPLE: &str = r#"{"from": "998901234567", "text": "OK 100"}"#;
    let value: Value = serde_json::from_slice(body).map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        field: None,
        detail: format!("the body is not JSON ({e}); send e.g. {EXAMPLE}"),
    })?;
    let Value::Object(fields) = value else {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            field: None,
            detail: format!("the body is not a JSON object; send e.g. {EXAMPLE}"),
        });
    };
    if let Some(name) = fields
        .keys()
        .find(|k| !["from", "text", "to"].contains(&k.as_str()))
    {
        return Err(Refusal {
            status: StatusCode::BAD_REQUEST,
            field: None,
            detail: format!("unknown field {name:?} (an MO has from, text and to)"),
        });
    }
    let string = |name: &'static str| -> Result<Option<&str>, Refusal> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(Refusal::bad(
                name,
                format!("{name} must be a string, not {other}"),
            )),
        }
    };
    let from = string("from")?.ok_or_else(|| {
        Refusal::bad(
            "from",
            format!("from is missing: the sender's MSISDN, e.g. {EXAMPLE}"),
        )
    })?;
    let from = address("from", from, "the sender's MSISDN, e.g. 998901234567")?;
    let to = address(
        "to",
        string("to")?.unwrap_or(DEFAULT_TO),
        "the short code, e.g. 5700",
    )?;
    let text = string("text")?
        .ok_or_else(|| Refusal::bad("text", format!("text is missing, e.g. {EXAMPLE}")))?;
    if text.is_empty() {
        return Err(Refusal::bad("text", "text is empty".into()));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(Refusal::bad(
            "text",
            format!("text has {chars} characters; an MO takes at most {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(Mo {
        source: from,
        destination: to,
        text: text.to_owned(),
    })
}

/// A phone number or short code: digits (a leading `+` dropped), 1 to 20 of them (SMPP's
/// address fields hold 20).
fn address(field: &'static str, value: &str, what: &str) -> Result<String, Refusal> {
    let digits = value.trim().strip_prefix('+').unwrap_or(value.trim());
    if (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits.to_owned())
    } else {
        Err(Refusal::bad(
            field,
            format!("{field} {value:?} is not 1 to 20 digits: {what}"),
        ))
    }
}

fn parse_wait(value: &str) -> Result<Duration, Refusal> {
    humantime::parse_duration(value)
        .ok()
        .filter(|wait| *wait <= MAX_WAIT)
        .ok_or_else(|| {
            Refusal::bad(
                "wait",
                format!(
                    "wait {value:?} is not a duration up to {} (e.g. 2s, 500ms)",
                    humantime::format_duration(MAX_WAIT)
                ),
            )
        })
}

/// `GET /messages`; see the module documentation.
async fn messages(
    State(port): State<Arc<Port>>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Refusal> {
    let mut to = None;
    let mut limit = DEFAULT_LIMIT;
    for (name, value) in query(pairs)? {
        match name.as_str() {
            "to" => to = Some(address("to", &value, "the number the messages went to")?),
            "limit" => {
                limit = (value.parse::<usize>().ok())
                    .filter(|n| (1..=KEPT).contains(n))
                    .ok_or_else(|| {
                        Refusal::bad(
                            "limit",
                            format!("limit {value:?} is not a whole number from 1 to {KEPT}"),
                        )
                    })?;
            }
            _ => return Err(unknown_parameter(&name, "to, limit")),
        }
    }
    let log = lock(&port.log);
    let mut listed: Vec<&Value> = (log.messages.iter().rev())
        .filter(|m| to.as_deref().is_none_or(|to| m["to"] == to))
        .take(limit)
        .collect();
    listed.reverse();
    let body = json!({
        "messages": listed,
        "seen": log.seen,
        "missed": log.missed,
        "kept": KEPT,
    });
    Ok((StatusCode::OK, Json(body)).into_response())
}

fn query(
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, Refusal> {
    let Query(pairs) = pairs.map_err(|e| Refusal {
        status: StatusCode::BAD_REQUEST,
        field: None,
        detail: e.body_text(),
    })?;
    Ok(pairs)
}

fn unknown_parameter(name: &str, takes: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        field: None,
        detail: format!("unknown parameter {name:?} (this route takes {takes})"),
    }
}

async fn no_route() -> Refusal {
    Refusal {
        status: StatusCode::NOT_FOUND,
        field: None,
        detail: "the control port has POST /mo and GET /messages".into(),
    }
}

async fn wrong_method() -> Refusal {
    Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        field: None,
        detail: "the control port has POST /mo and GET /messages".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> (Option<&'static str>, String) {
        let refusal = parse_mo(body.as_bytes()).expect_err(body);
        (refusal.field, refusal.detail)
    }

    #[test]
    fn an_mo_body_is_checked_field_by_field() {
        let mo = parse_mo(br#"{"from": "+998901234567", "text": "OK 100"}"#).unwrap();
        assert_eq!(
            (
                mo.source.as_str(),
                mo.destination.as_str(),
                mo.text.as_str()
            ),
            ("998901234567", DEFAULT_TO, "OK 100")
        );
        let mo = parse_mo(br#"{"from": "998901234567", "text": "9", "to": "1234"}"#).unwrap();
        assert_eq!(mo.destination, "1234");
        for (body, field, says) in [
            (r#"{"text": "OK"}"#, Some("from"), "from is missing"),
            (
                r#"{"from": "nurse", "text": "OK"}"#,
                Some("from"),
                "not 1 to 20 digits",
            ),
            (
                r#"{"from": 998901234567, "text": "OK"}"#,
                Some("from"),
                "must be a string",
            ),
            (
                r#"{"from": "998901234567"}"#,
                Some("text"),
                "text is missing",
            ),
            (
                r#"{"from": "998901234567", "text": ""}"#,
                Some("text"),
                "text is empty",
            ),
            (
                r#"{"from": "998901234567", "text": "OK", "to": "x"}"#,
                Some("to"),
                "not 1 to 20",
            ),
            (
                r#"{"from": "998901234567", "txt": "OK"}"#,
                None,
                "unknown field \"txt\"",
            ),
            ("from=998901234567", None, "not JSON"),
            ("[1]", None, "not a JSON object"),
        ] {
            let (got_field, detail) = refused(body);
            assert_eq!(got_field, field, "{body}: {detail}");
            assert!(detail.contains(says), "{body}: {detail}");
        }
        let long = format!(
            r#"{{"from": "998901234567", "text": "{}"}}"#,
            "я".repeat(1001)
        );
        assert!(refused(&long).1.contains("1001 characters"));
    }

    #[test]
    fn wait_is_a_bounded_duration() {
        assert_eq!(parse_wait("500ms").ok(), Some(Duration::from_millis(500)));
        assert!(parse_wait("2m").is_err());
        assert!(parse_wait("soon").is_err());
    }
}
