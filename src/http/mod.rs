//! The HTTP API (SPEC.md "HTTP API"): business systems post events that start conversations,
//! operators read a conversation's state, timeline and timers and the reports (JSON, or the
//! `/reports` dashboard page), and orchestrators probe `/healthz` and `/readyz`.
//!
//! This module owns the routes, token auth (`auth.rs`), the listener's limits (`serve.rs`),
//! the request metrics (`telemetry.rs`),
//! validation of event bodies (MSISDNs) and
//! the mapping of every failure to a JSON error `{"error": "...", "detail": "..."}`, axum's
//! own rejections (bad JSON, wrong content type, too large, unknown route, wrong method)
//! included. It does no SMPP: an accepted event's messages land in the store's outbox and
//! [`ApiState::on_accepted`] tells the service to drain it.
//!
//! Routes and statuses:
//!
//! | route | statuses |
//! |---|---|
//! | `POST /api/v1/buttons` (`buttons.rs`: a press to the flow `[buttons]` names for its type and action) | as the events route, and 422 for a type or action with no route |
//! | `POST /api/v1/flows/{flow}/events` | 202 (`"joined": true` when an open conversation took it), 400, 401, 404, 409 (the id again with another body its conversation cannot take), 413, 415, 422, 503 (store overloaded, or every reply code taken, with `Retry-After`) |
//! | `GET /api/v1/conversations/{id}` | 200, 400, 401, 404 |
//! | `GET /api/v1/conversations?msisdn=&flow=&status=&from=&to=&limit=&cursor=` (`find.rs`) | 200, 400, 401 |
//! | `GET /api/v1/flows/{flow}/events/{id}` (`find.rs`) | 200, 401, 404 |
//! | `GET /api/v1/reports/csi`, `/api/v1/reports/incidents`, `/api/v1/reports/audit` | 200, 400, 401 |
//! | `POST /api/v1/store/backup` (`store.rs`) | 200, 400, 401, 409, 422, 500 |
//! | `GET /reports` (HTML dashboard; the tokens as Basic auth passwords, for browsers) | 200, 400, 401 |
//! | `GET /healthz` | 200 |
//! | `GET /readyz` | 200, 503 |
//!
//! Duplicates (the same event `"id"` again) answer 202 like the first time, with
//! `"duplicate": true`: SPEC.md gives one status for the route, and a client retrying after a
//! timeout should not need a second success path. When no SMSC session is bound the event is
//! still accepted (the outbox keeps its messages until a session binds) and the 202 says
//! `"queued": true`; we always queue. An event answered 503 (with `Retry-After`) found the
//! store behind the disk ([`crate::store::MAX_UNWRITTEN`]): nothing was started.

mod auth;
mod buttons;
mod dashboard;
mod find;
mod json;
pub mod listener;
mod policy;
mod responses;
mod store;
mod telemetry;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::config::{BODY_LIMIT, ListenerLimits};
use crate::flow::api::normalize_msisdn;
use crate::flow::engine::{Accepted, EngineError, FlowEngine, Started, StepResult};
use crate::report::{self, Kind, Report};
use crate::store::{ConversationId, Direction, Millis, Store, StoreError, TimelineEntry, Timer};

pub use buttons::warn_unloaded_routes;

/// What the handlers need from the rest of the service. Closures rather than the pool and the
/// pipeline themselves, so tests can inject readiness and a clock without SMPP.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<FlowEngine>,
    /// The engine's store: events are made durable on it, conversations and reports read
    /// from it.
    pub store: Store,
    /// Tokens accepted on `/api` and `/reports`; empty = no auth (SPEC.md `http.tokens`).
    pub tokens: Vec<String>,
    /// Tokens that see whole MSISDNs in the response feed (`http.number_tokens`).
    pub number_tokens: Vec<String>,
    /// true while at least one SMSC session is bound (the pool's `bound() > 0`)
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Hands an event to the service's core (the one writer of steps): `(now, flow, event,
    /// id)`, answered once its step is durable.
    pub start: Starter,
    /// called after an event was accepted so the webhooks are drained now
    pub on_accepted: Arc<dyn Fn() + Send + Sync>,
    /// clock in ms (tests inject a fixed one)
    pub now: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Which flow `POST /api/v1/buttons` gives a press to (`[buttons]`).
    pub buttons: crate::config::ButtonRoutes,
}

/// What [`ApiState::start`] answers.
pub type EventFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Accepted> + Send>>;

/// What [`ApiState::start`] is.
pub type Starter = Arc<dyn Fn(i64, String, Value, Option<String>) -> EventFuture + Send + Sync>;

/// An [`ApiState::start`] for an API served without the service's core (tests of the HTTP
/// layer alone): the engine's step on a blocking thread, then the store's flush.
pub fn direct_start(engine: Arc<FlowEngine>) -> Starter {
    Arc::new(move |now, flow, event, key| {
        let engine = engine.clone();
        Box::pin(async move {
            let store = engine.store().clone();
            let started = tokio::task::spawn_blocking(move || {
                engine.start(now, &flow, event, key.as_deref())
            })
            .await
            .map_err(|e| EngineError::NotDurable {
                disk_full: false,
                detail: format!("the flow engine task failed: {e}"),
            })??;
            store.flush().await.map_err(|e| EngineError::NotDurable {
                disk_full: Store::is_disk_full(&e),
                detail: e.to_string(),
            })?;
            Ok(started)
        })
    })
}

/// Every way a request fails. `Display` is the short `"error"` of the JSON body; the
/// `"detail"` says what exactly was wrong and, where it helps, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized")]
    Unauthorized(&'static str),
    #[error("bad request")]
    BadRequest(String),
    #[error("unknown flow")]
    UnknownFlow(String),
    #[error("unknown conversation")]
    UnknownConversation(ConversationId),
    #[error("unknown event")]
    UnknownEvent(String),
    #[error("not found")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("payload too large")]
    TooLarge(String),
    #[error("uri too long")]
    UriTooLong(String),
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid (a bad MSISDN, a flow that cannot start from events).
    #[error("invalid event")]
    Invalid(String),
    /// The flow's hook failed: the conversation exists (errored), so its id is in the body.
    #[error("flow error")]
    FlowFailed {
        conversation: ConversationId,
        detail: String,
    },
    /// The event's id already started a conversation from another body.
    #[error("conflict")]
    Conflict {
        conversation: ConversationId,
        detail: String,
    },
    #[error("not ready")]
    NotReady,
    /// A read met damage in the store, or it did before: it takes no more steps (see
    /// `store/damage.rs`); the detail says what to do.
    #[error("store damaged")]
    StoreDamaged(String),
    /// The store is behind the disk (see `StoreError::Overloaded`): nothing was started;
    /// the client retries after `Retry-After`.
    #[error("overloaded")]
    Overloaded(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownFlow(_)
            | ApiError::UnknownConversation(_)
            | ApiError::UnknownEvent(_)
            | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) | ApiError::FlowFailed { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotReady | ApiError::Overloaded(_) | ApiError::StoreDamaged(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn detail(&self) -> String {
        match self {
            ApiError::Unauthorized(why) => (*why).to_owned(),
            ApiError::BadRequest(d)
            | ApiError::UnknownFlow(d)
            | ApiError::UnknownEvent(d)
            | ApiError::NoRoute(d)
            | ApiError::MethodNotAllowed(d)
            | ApiError::TooLarge(d)
            | ApiError::UriTooLong(d)
            | ApiError::UnsupportedMediaType(d)
            | ApiError::Invalid(d)
            | ApiError::Overloaded(d)
            | ApiError::StoreDamaged(d)
            | ApiError::Internal(d) => d.clone(),
            ApiError::FlowFailed { detail, .. } | ApiError::Conflict { detail, .. } => {
                detail.clone()
            }
            ApiError::UnknownConversation(id) => format!("no conversation with id {id}"),
            ApiError::NotReady => "no SMSC session is bound".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!("HTTP {status}: {}", self.detail());
        }
        let mut body = json!({"error": self.to_string(), "detail": self.detail()});
        if let ApiError::FlowFailed { conversation, .. } | ApiError::Conflict { conversation, .. } =
            &self
        {
            body["conversation"] = json!(conversation);
        }
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self, ApiError::Overloaded(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    /// Keeps axum's status for size and content type; everything else about the body is a 400.
    fn from(rejection: JsonRejection) -> ApiError {
        let detail = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge("the body is larger than http.max_body allows".to_owned())
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(detail),
            _ => ApiError::BadRequest(detail),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<report::QueryError> for ApiError {
    fn from(error: report::QueryError) -> ApiError {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<StoreError> for ApiError {
    /// A damaged store is a 503 that says so (the store logged it once); the rest a 500.
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Damaged { .. } => ApiError::StoreDamaged(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::Store(e @ StoreError::Damaged { .. }) => e.into(),
            EngineError::UnknownFlow { .. } => ApiError::UnknownFlow(error.to_string()),
            EngineError::MissingHook { .. } => {
                ApiError::Invalid(format!("{error}: this flow cannot be started by an event"))
            }
            EngineError::InvalidEvent { detail, .. } => ApiError::Invalid(detail),
            EngineError::Store(StoreError::Overloaded(_) | StoreError::DiskFull(_))
            | EngineError::NoReplyCode { .. } => ApiError::Overloaded(error.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A JSON object body; every rejection becomes an [`ApiError`] (so a JSON error body).
struct EventBody(Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for EventBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(json::Unique(value)) =
            axum::Json::<json::Unique>::from_request(req, state).await?;
        match value {
            Value::Object(map) => Ok(EventBody(map)),
            other => Err(ApiError::BadRequest(format!(
                "the event must be a JSON object, not {}",
                kind(&other)
            ))),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The API's routes on `state`; see the module documentation. Bodies over `max_body`
/// bytes get 413.
pub fn router(state: ApiState, max_body: usize) -> Router {
    let state = Arc::new(state);
    let api = Router::new()
        .route("/api/v1/flows/{flow}/events", post(post_event))
        .route("/api/v1/buttons", post(buttons::press))
        .route(
            "/api/v1/flows/{flow}/events/{id}",
            get(find::event_conversation),
        )
        .route("/api/v1/conversations", get(find::find_conversations))
        .route("/api/v1/conversations/{id}", get(get_conversation))
        .route("/api/v1/reports/csi", get(csi_report))
        .route("/api/v1/reports/incidents", get(incident_report))
        .route("/api/v1/reports/audit", get(audit_report))
        .route("/api/v1/responses", get(responses::responses))
        .route("/api/v1/incidents", get(responses::open_calls))
        .route("/api/v1/store/backup", post(store::backup))
        // `route_layer`: an unknown /api path is a 404, not a 401 that hides the typo.
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::api));
    let dashboard = Router::new()
        .route("/reports", get(dashboard::dashboard))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::dashboard,
        ));
    Router::new()
        .merge(api)
        .merge(dashboard)
        .route("/", get(dashboard::home))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            max_body,
            policy::declared_length,
        ))
        .layer(middleware::from_fn(uri_limit))
        .layer(middleware::from_fn(policy::headers))
        // Outermost, so what the inner layers answer (414, 413) is counted too.
        .layer(middleware::from_fn(telemetry::track))
        .with_state(state)
}

/// Serves [`router`] on `listener` with the default [`ListenerLimits`] until `shutdown` completes,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        listener,
        None,
        state,
        ListenerLimits::default(),
        BODY_LIMIT,
        shutdown,
    )
    .await
}

/// [`serve`] over TLS with `tls`, within `limits`, bodies up to `max_body` bytes.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: ApiState,
    limits: ListenerLimits,
    max_body: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(state, max_body);
    listener::serve(listener, tls, router, limits, "api", shutdown).await
}

/// Longer request targets get a JSON 414 here. (Past hyper's own limit, 64 KiB, hyper
/// answers 414 itself, with an empty body: it does not let a server shape that answer.)
pub const MAX_URI: usize = 8 * 1024;

async fn uri_limit(req: Request, next: Next) -> Response {
    let len = req.uri().to_string().len();
    if len > MAX_URI {
        return ApiError::UriTooLong(format!(
            "the request target is {len} bytes, at most {MAX_URI} are accepted"
        ))
        .into_response();
    }
    next.run(req).await
}

// ---- events ---------------------------------------------------------------------------------

async fn post_event(
    State(state): State<Arc<ApiState>>,
    flow: Result<Path<String>, PathRejection>,
    body: Result<EventBody, ApiError>,
) -> Result<Response, ApiError> {
    let Path(flow) = flow?;
    let EventBody(event) = body?;
    let answer = start_event(&state, flow, event).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(answer)).into_response())
}

/// Starts a conversation of `flow` from `event` (or hands it to the one it joins), makes it
/// durable and answers what the 202 says: `{"conversation", "duplicate"}`, with `"joined"`
/// and `"queued"` when true. The per-flow route and `POST /api/v1/buttons` share it.
pub(super) async fn start_event(
    state: &ApiState,
    flow: String,
    mut event: Map<String, Value>,
) -> Result<Value, ApiError> {
    if state.engine.flow(&flow).is_none() {
        let known: Vec<_> = state
            .engine
            .flows()
            .iter()
            .map(|f| f.name.clone())
            .collect();
        return Err(ApiError::UnknownFlow(format!(
            "no flow named {flow:?} (flows: {})",
            known.join(", ")
        )));
    }
    let key = event_key(&event)?;
    normalize_event(&mut event)?;

    // Accepted means on disk: a crash after the 202 must not lose the event (and its SMS
    // must not leave before the conversation that sent it is durable). The core answers once
    // the group commit covering the step is; concurrent requests share one.
    let now = (state.now)();
    let (result, started) =
        match (state.start)(now, flow.clone(), Value::Object(event), key.clone()).await {
            Ok(done) => done,
            // Two requests with the same id raced twice over: the other one's conversation.
            Err(EngineError::Store(StoreError::EventKeyTaken { conversation, .. })) => (
                StepResult {
                    conversation,
                    flow,
                    ..StepResult::default()
                },
                Started::Duplicate,
            ),
            // The step waits in memory and is written once there is room; a retry of the
            // event is then its duplicate, answered 202 once on disk.
            Err(
                e @ EngineError::NotDurable {
                    disk_full: true, ..
                },
            ) => {
                return Err(ApiError::Overloaded(e.to_string()));
            }
            Err(e @ EngineError::NotDurable { .. }) => {
                return Err(ApiError::Internal(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
    match started {
        Started::Duplicate => return Ok(accepted(result.conversation, true, false)),
        Started::Conflict => {
            return Err(ApiError::Conflict {
                conversation: result.conversation,
                detail: format!(
                    "event id {:?} already started conversation {} with another body, and that \
                     conversation takes no update now (its flow has no on_update, or it has \
                     finished); use a new id for a new event",
                    key.unwrap_or_default(),
                    result.conversation
                ),
            });
        }
        Started::New | Started::Joined => {}
    }
    // Its messages and webhook calls are durable now: send them (a wake-up too many is cheap).
    (state.on_accepted)();
    if let Some(error) = result.error {
        return Err(ApiError::FlowFailed {
            conversation: result.conversation,
            detail: error.to_string(),
        });
    }
    let queued = !result.outbox.is_empty() && !(state.ready)();
    let mut answer = accepted(result.conversation, false, queued);
    if started == Started::Joined {
        answer["joined"] = json!(true);
    }
    if !result.started.is_empty() {
        // What the event's conversation started (a manager call from a restaurant's button).
        answer["started"] = json!(result.started);
    }
    Ok(answer)
}

/// `queued` only appears when true, so the usual answer is exactly SPEC.md's example.
fn accepted(conversation: ConversationId, duplicate: bool, queued: bool) -> Value {
    let mut body = json!({"conversation": conversation, "duplicate": duplicate});
    if queued {
        body["queued"] = json!(true);
    }
    body
}

/// The idempotency key: the event's `"id"`, a string or a number (`7` and `"7"` are the same
/// key). No `"id"`: every post starts a new conversation.
fn event_key(event: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match event.get("id") {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "\"id\" must be a non-empty string or a number, not {}",
            match other {
                Value::String(_) => "an empty string",
                other => kind(other),
            }
        ))),
    }
}

/// Checks the MSISDNs the shipped flows read (`"msisdn"`, `"levels"`, `"phones"`) and strips
/// their `+`,
/// so a typo is a 422 now rather than an errored conversation later.
fn normalize_event(event: &mut Map<String, Value>) -> Result<(), ApiError> {
    // Labels reports group by: a map or a number here would be stored and counted as given.
    for field in TEXT_FIELDS {
        match event.get(field) {
            None | Some(Value::String(_) | Value::Null) => {}
            Some(other) => {
                return Err(ApiError::Invalid(format!(
                    "\"{field}\" must be a string, not {}",
                    kind(other)
                )));
            }
        }
    }
    if let Some(value) = event.get_mut("msisdn") {
        *value = Value::String(msisdn(value, "\"msisdn\"")?);
    }
    if let Some(levels) = event.get_mut("levels") {
        let Value::Array(levels) = levels else {
            return Err(ApiError::Invalid(format!(
                "\"levels\" must be an array of arrays of MSISDNs, not {}",
                kind(levels)
            )));
        };
        for (i, level) in levels.iter_mut().enumerate() {
            let Value::Array(numbers) = level else {
                return Err(ApiError::Invalid(format!(
                    "\"levels\"[{i}] must be an array of MSISDNs, not {}",
                    kind(level)
                )));
            };
            for (j, number) in numbers.iter_mut().enumerate() {
                *number = Value::String(msisdn(number, &format!("\"levels\"[{i}][{j}]"))?);
            }
        }
    }
    if let Some(phones) = event.get_mut("phones") {
        let Value::Array(phones) = phones else {
            return Err(ApiError::Invalid(format!(
                "\"phones\" must be an array of MSISDNs, not {}",
                kind(phones)
            )));
        };
        for (i, number) in phones.iter_mut().enumerate() {
            *number = Value::String(msisdn(number, &format!("\"phones\"[{i}]"))?);
        }
    }
    Ok(())
}

/// Event fields that must be strings when present.
const TEXT_FIELDS: [&str; 2] = ["operator", "channel"];

fn msisdn(value: &Value, field: &str) -> Result<String, ApiError> {
    let normalized = value.as_str().and_then(normalize_msisdn);
    normalized.ok_or_else(|| {
        ApiError::Invalid(format!(
            "{field} is not an MSISDN: {value} (international digits, 5 to 15, optional +)"
        ))
    })
}

// ---- conversations --------------------------------------------------------------------------

async fn get_conversation(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let id: ConversationId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("conversation id {id:?} is not a number")))?;
    let store = state.store.clone();
    let body = tokio::task::spawn_blocking(move || conversation_json(&store, id))
        .await
        .map_err(|e| ApiError::Internal(format!("the store task failed: {e}")))??;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

fn conversation_json(store: &Store, id: ConversationId) -> Result<Value, ApiError> {
    let conversation = store
        .conversation(id)?
        .ok_or(ApiError::UnknownConversation(id))?;
    let timeline = store.timeline(id)?;
    let timers = store.timers_of(id)?;
    let mut body = find::summary_json(&conversation);
    body["flow_version"] = json!(conversation.flow_version);
    if let Some(code) = conversation.reply_code {
        body["reply_code"] = json!(code);
    }
    body["state"] = conversation.state;
    body["timeline"] = json!(timeline.iter().map(timeline_json).collect::<Vec<_>>());
    body["timers"] = json!(timers.iter().map(timer_json).collect::<Vec<_>>());
    Ok(body)
}

fn timeline_json(entry: &TimelineEntry) -> Value {
    json!({
        "at": rfc3339(entry.at),
        "direction": match entry.direction {
            Direction::In => "in",
            Direction::Out => "out",
        },
        "party": entry.party,
        "text": entry.text,
        "status": entry.status,
    })
}

fn timer_json(timer: &Timer) -> Value {
    json!({"name": timer.name, "due": rfc3339(timer.due)})
}

/// RFC 3339 in UTC; a time jiff cannot represent (never written by us) shows as the raw ms.
fn rfc3339(ms: Millis) -> Value {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => json!(t.to_string()),
        Err(_) => json!(ms),
    }
}

// ---- reports --------------------------------------------------------------------------------

/// Query pairs of a report request; a malformed query string is a 400.
pub(super) type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

async fn csi_report(
    State(state): State<Arc<ApiState>>,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    report_json(&state, Kind::Csi, pairs).await
}

async fn incident_report(
    State(state): State<Arc<ApiState>>,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    report_json(&state, Kind::Incidents, pairs).await
}

async fn audit_report(
    State(state): State<Arc<ApiState>>,
    pairs: Pairs,
) -> Result<Response, ApiError> {
    report_json(&state, Kind::Audit, pairs).await
}

/// The JSON document of a report (the same as `smsflow report --format json`).
async fn report_json(state: &ApiState, kind: Kind, pairs: Pairs) -> Result<Response, ApiError> {
    let Query(pairs) = pairs?;
    let query = report::Query::from_pairs(kind, &pairs, today(state))?;
    let report = build_report(state, query).await?;
    Ok((StatusCode::OK, axum::Json(report.to_json())).into_response())
}

/// Today in the service's time zone: the default end of a report.
pub(super) fn today(state: &ApiState) -> jiff::civil::Date {
    report::query::today(state.engine.timezone(), (state.now)())
}

/// Reads the store off the async threads (a report scans ratings and conversations). A CSI
/// report of a flow that neither runs nor ran is a 400 naming the ones there are.
pub(super) async fn build_report(
    state: &ApiState,
    query: report::Query,
) -> Result<Report, ApiError> {
    let (store, engine) = (state.store.clone(), state.engine.clone());
    // The running engine knows the flow's scale even before its live script is stored.
    let scale = engine.flow(&query.flow).map(|f| f.scale.clone());
    find::blocking(move || {
        query.check_flow(&find::known_flows(&engine, &store)?)?;
        report::source::build_with(&store, &query, engine.timezone(), scale).map_err(ApiError::from)
    })
    .await
}

// ---- probes and the rest --------------------------------------------------------------------

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    if let Some(damage) = state.store.damage() {
        return Err(ApiError::StoreDamaged(damage));
    }
    if (state.ready)() {
        Ok((StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response())
    } else {
        Err(ApiError::NotReady)
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute(format!("no route {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
