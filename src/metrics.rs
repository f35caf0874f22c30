//! Prometheus metrics: SPEC.md's names in one place, their help texts and histogram buckets,
//! and the recorder `smsflow run` serves on `[metrics] listen`.
//!
//! Code records through the `metrics` facade with the constants below; until a recorder is
//! installed (tests, `check`, library users) every call is a no-op.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `{smsc, direction, command}`: every PDU read or written; `direction` is `in` or `out`.
pub const PDUS: &str = "smsflow_pdus_total";
/// `{smsc}`: sessions bound now.
pub const SESSIONS_BOUND: &str = "smsflow_sessions_bound";
/// `{smsc}`: requests sent and not yet answered, over all sessions of the SMSC.
pub const WINDOW_IN_FLIGHT: &str = "smsflow_window_in_flight";
/// `{smsc}`: from writing a submit_sm to its submit_sm_resp.
pub const SUBMIT_LATENCY: &str = "smsflow_submit_latency_seconds";
/// `{smsc}`: ESME_RTHROTTLED answers (each one is resent after a pause).
pub const THROTTLED: &str = "smsflow_throttled_total";
/// `{flow}`: MO messages handled (a concatenated message counts once); `inbox` when no
/// conversation was waiting, `none` when there is no inbox flow either.
pub const MO_MESSAGES: &str = "smsflow_mo_messages_total";
/// `{smsc}`: MOs the SMSC delivered again after smsflow had already stored them (recognised and
/// acknowledged, not processed twice).
pub const MO_REDELIVERED: &str = "smsflow_mo_redelivered_total";
/// `{flow, status}`: MT messages by what became of them: `accepted` (submit_sm_resp OK),
/// `retried` (no answer or a temporary error; sent again later), `failed` (refused for good),
/// then from receipts `delivered` / `undeliverable`.
pub const MT_MESSAGES: &str = "smsflow_mt_messages_total";
/// `{flow, hook}`: hooks that failed (the conversation stops with the error).
pub const FLOW_ERRORS: &str = "smsflow_flow_errors_total";
/// `{score}`: ratings recorded.
pub const RATINGS: &str = "smsflow_ratings_total";
/// `{level}`: incidents that escalated past the first level, by the level that finally took the
/// call (`none` when nobody did).
pub const ESCALATIONS: &str = "smsflow_escalations_total";
/// `{flow}`: open conversations.
pub const CONVERSATIONS_OPEN: &str = "smsflow_conversations_open";
/// `{level}`: seconds from an incident to the OK that took it, by the level that took it.
pub const ACK_SECONDS: &str = "smsflow_ack_seconds";
/// `{flow, outcome}`: conversations that ended, by the outcome the script gave (`error` when a
/// hook failed).
pub const CONVERSATIONS_FINISHED: &str = "smsflow_conversations_finished_total";
/// `{stage}`: surveys by how far they got: `sent` (question accepted by the SMSC),
/// `delivered` (its receipt), `replied`, then `rated` / `not_understood`, or `expired` (no
/// answer in time).
pub const SURVEY_FUNNEL: &str = "smsflow_survey_funnel_total";
/// Messages waiting in the durable outbox.
pub const OUTBOX_PENDING: &str = "smsflow_outbox_pending";
/// `{flow, result}`: flow file loads and reloads: `ok`, `compile_error`, `test_failed`.
pub const FLOW_RELOADS: &str = "smsflow_flow_reloads_total";
/// `{flow, version}`: 1 for the version each flow runs now (0 for versions it ran before).
pub const FLOW_INFO: &str = "smsflow_flow_info";
/// `{webhook, result}`: webhook delivery attempts by what they came to: `delivered` (2xx),
/// `retried` (an error, a timeout or a 5xx; tried again after a pause), `refused` (another
/// status: not tried again), `given_up` (still failing a day after the step queued it, or its
/// `[[webhook]]` is gone from the config).
pub const WEBHOOK_DELIVERIES: &str = "smsflow_webhook_deliveries_total";
/// Webhook calls waiting in the durable queue.
pub const WEBHOOKS_PENDING: &str = "smsflow_webhooks_pending";
/// Results of [`WEBHOOK_DELIVERIES`], registered at zero per webhook.
pub const WEBHOOK_RESULTS: [&str; 4] = ["delivered", "retried", "refused", "given_up"];

/// Incomplete concatenated MOs released early because the reassembly bounds were reached.
pub const MO_EVICTED: &str = "smsflow_mo_reassembly_evicted_total";
/// `{listener}`: HTTP connections closed at once because every open one was busy at the
/// listener's `max_connections`.
pub const HTTP_CONNECTIONS_REFUSED: &str = "smsflow_http_connections_refused_total";

/// Submit latency buckets: an SMSC on the same LAN answers in a millisecond or two, a loaded
/// carrier in hundreds; `response_timeout` defaults to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Time-to-ack buckets: staff answer within seconds to a few minutes; `ack_timeout` is
/// typically 3 minutes per level.
const ACK_BUCKETS: [f64; 12] = [
    5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

/// The funnel stages a survey that ended with `outcome` passed after `delivered`.
pub fn survey_stages(outcome: &str) -> &'static [&'static str] {
    match outcome {
        "rated" => &["replied", "rated"],
        "not_understood" => &["replied", "not_understood"],
        "no_response" => &["expired"],
        _ => &[],
    }
}

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle)
/// and describes every metric, so `/metrics` lists them all from the start.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SUBMIT_LATENCY.into()), &LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .set_buckets_for_metric(Matcher::Full(ACK_SECONDS.into()), &ACK_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Registers the labelled counters that start at zero, so `/metrics` shows them (and rates
/// work) before the first error, rating or escalation: per flow and hook, per score, and the
/// "nobody took it" escalation level.
pub fn register_zeroes(flows: &[String]) {
    for flow in flows {
        for hook in [
            "on_event",
            "on_reply",
            "on_timer",
            "on_delivery",
            "on_update",
        ] {
            metrics::counter!(FLOW_ERRORS, "flow" => flow.clone(), "hook" => hook).increment(0);
        }
    }
    for score in 1..=5u8 {
        metrics::counter!(RATINGS, "score" => score.to_string()).increment(0);
    }
    metrics::counter!(ESCALATIONS, "level" => "none").increment(0);
    for stage in [
        "sent",
        "delivered",
        "replied",
        "rated",
        "not_understood",
        "expired",
    ] {
        metrics::counter!(SURVEY_FUNNEL, "stage" => stage).increment(0);
    }
}

/// Registers every `{webhook, result}` of [`WEBHOOK_DELIVERIES`] at zero, so an alert on
/// `increase(...{result="given_up"}[1h]) > 0` works before the first failure.
pub fn register_webhooks(names: &[String]) {
    for webhook in names {
        for result in WEBHOOK_RESULTS {
            metrics::counter!(WEBHOOK_DELIVERIES, "webhook" => webhook.clone(), "result" => result)
                .increment(0);
        }
    }
    metrics::gauge!(WEBHOOKS_PENDING).set(0.0);
}

fn describe() {
    describe_counter!(
        PDUS,
        "SMPP PDUs read (direction=in) and written (direction=out)"
    );
    describe_gauge!(SESSIONS_BOUND, "SMPP sessions bound now");
    describe_counter!(
        FLOW_RELOADS,
        "flow file loads: ok, compile_error, test_failed (the last good version keeps running)"
    );
    describe_gauge!(FLOW_INFO, "1 for the version of each flow that runs now");
    describe_counter!(
        MO_EVICTED,
        "incomplete concatenated MOs released early: reassembly over its message or byte bound"
    );
    describe_counter!(
        HTTP_CONNECTIONS_REFUSED,
        "HTTP connections refused: every open one busy at max_connections"
    );
    describe_gauge!(WINDOW_IN_FLIGHT, "SMPP requests awaiting a response");
    describe_histogram!(SUBMIT_LATENCY, Unit::Seconds, "submit_sm to submit_sm_resp");
    describe_counter!(THROTTLED, "ESME_RTHROTTLED responses from the SMSC");
    describe_counter!(MO_MESSAGES, "MO messages handled, by the flow they went to");
    describe_counter!(
        MO_REDELIVERED,
        "MO messages the SMSC delivered again after they were stored (processed once)"
    );
    describe_counter!(MT_MESSAGES, "MT messages by outcome");
    describe_counter!(FLOW_ERRORS, "flow hooks that failed");
    describe_counter!(RATINGS, "ratings recorded, by score");
    describe_counter!(
        ESCALATIONS,
        "incidents that escalated, by the level that took the call"
    );
    describe_gauge!(CONVERSATIONS_OPEN, "open conversations");
    describe_gauge!(OUTBOX_PENDING, "MT messages waiting in the durable outbox");
    describe_histogram!(
        ACK_SECONDS,
        Unit::Seconds,
        "incident to acknowledgement, by the level that took the call"
    );
    describe_counter!(CONVERSATIONS_FINISHED, "conversations ended, by outcome");
    describe_counter!(SURVEY_FUNNEL, "surveys that reached each stage");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "webhook delivery attempts: delivered, retried, refused, given_up"
    );
    describe_gauge!(
        WEBHOOKS_PENDING,
        "webhook calls waiting in the durable queue"
    );
}
