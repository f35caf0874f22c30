//! Prometheus metrics: SPEC.md's names in one place ([`RECORDED`], with each one's type,
//! labels and help text), their histogram buckets, the series registered at zero when the
//! service starts, and the exporter `smsflow run` serves on `[metrics] listen`.
//!
//! Code records through the `metrics` facade with the constants below; until a recorder is
//! installed (tests, `check`, library users) every call is a no-op. The process metrics
//! (`process_*`, listed by [`all`]) are not recorded: they are read from `/proc` at each
//! scrape.

mod process;
mod render;

use std::ops::RangeInclusive;
use std::sync::OnceLock;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
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
/// `{flow, status}`: the submit stage of MT messages, [`MT_SUBMIT_STATUSES`]: each message
/// counted once, when its submit is over (`accepted` by the SMSC, or `failed` for good).
/// Retries and receipts are the next stages' counters, so `sum()` counts messages once.
pub const MT_MESSAGES: &str = "smsflow_mt_messages_total";
/// `{flow}`: submit attempts that got no answer or a temporary error and are sent again
/// (attempts, not messages: one message may be retried many times).
pub const MT_RETRIES: &str = "smsflow_mt_retries_total";
/// `{flow, status}`: the receipt stage, [`MT_RECEIPT_STATUSES`]: each accepted message counted
/// once, when its final receipt arrives (all parts `delivered`, or one `undeliverable`).
pub const MT_RECEIPTS: &str = "smsflow_mt_receipts_total";
/// `{flow, hook}`: hooks that failed (the conversation stops with the error).
pub const FLOW_ERRORS: &str = "smsflow_flow_errors_total";
/// `log()`, `print()` and `debug()` lines of a flow dropped by the log limits.
pub const FLOW_LOG_DROPPED: &str = "smsflow_flow_log_dropped_total";
/// `{flow, score}`: ratings recorded, by survey flow (scores of different scales are different
/// answers: a CSAT 5 is the top, an NPS 5 a detractor).
pub const RATINGS: &str = "smsflow_ratings_total";
/// `{level}`: incidents that escalated past the first level, by the level that finally took the
/// call (`none` when nobody did).
pub const ESCALATIONS: &str = "smsflow_escalations_total";
/// `{flow}`: open conversations.
pub const CONVERSATIONS_OPEN: &str = "smsflow_conversations_open";
/// `{state}`: staff calls not over yet: `ringing` (nobody took it yet) and `acknowledged`
/// (taken, not resolved).
pub const INCIDENTS_OPEN: &str = "smsflow_incidents_open";
/// 1 while the disk has less room than `[service] min_free_space` (nothing is written, new
/// steps are refused), else 0.
pub const STORE_DISK_FULL: &str = "smsflow_store_disk_full";
/// `{level}`: seconds from an incident to the OK that took it, by the level that took it.
pub const ACK_SECONDS: &str = "smsflow_ack_seconds";
/// `{flow, outcome}`: conversations that ended, by the outcome the script gave (`error` when a
/// hook failed).
pub const CONVERSATIONS_FINISHED: &str = "smsflow_conversations_finished_total";
/// `{flow, stage}`: the surveys of each survey flow (one that declares `fn scale()`) by how far
/// they got, [`FUNNEL_STAGES`]: `sent` (question accepted by the SMSC), `delivered` (its
/// receipt), `replied`, then `rated` / `not_understood`, or `expired` (no answer in time).
pub const SURVEY_FUNNEL: &str = "smsflow_survey_funnel_total";
/// Messages waiting in the durable outbox.
pub const OUTBOX_PENDING: &str = "smsflow_outbox_pending";
/// `{flow, result}`: flow file loads and reloads, [`RELOAD_RESULTS`].
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

/// `{kind, result}`: events handed to JetStream (`[export]`) by what came of them:
/// `published` (stored by the stream), `duplicate` (the stream had its `Nats-Msg-Id`
/// already: a retry after a restart), `dropped` (larger than the server's max_payload;
/// logged, never retried).
pub const EXPORT_EVENTS: &str = "smsflow_export_events_total";
/// Export events waiting in the store for JetStream's ack.
pub const EXPORT_PENDING: &str = "smsflow_export_pending";
/// Export attempts that failed (NATS unreachable, no ack in time, no stream): each is
/// retried after a pause, the events stay in the store.
pub const EXPORT_FAILURES: &str = "smsflow_export_failures_total";
/// Kinds and results of [`EXPORT_EVENTS`], registered at zero.
pub const EXPORT_KINDS: [&str; 4] = ["rating", "incident", "conversation", "mt"];
pub const EXPORT_RESULTS: [&str; 3] = ["published", "duplicate", "dropped"];

/// Incomplete concatenated MOs released early because the reassembly bounds were reached.
pub const MO_EVICTED: &str = "smsflow_mo_reassembly_evicted_total";
/// `{listener}`: HTTP connections closed at once because every open one was busy at the
/// listener's `max_connections`.
pub const HTTP_CONNECTIONS_REFUSED: &str = "smsflow_http_connections_refused_total";
/// `{route, status}`: HTTP API requests answered, by the route template they matched
/// (`/api/v1/conversations/{id}`; [`UNMATCHED_ROUTE`] for none) and status code.
pub const HTTP_REQUESTS: &str = "smsflow_http_requests_total";
/// `{route, status}`: from a request's head read to its response's head, as [`HTTP_REQUESTS`].
pub const HTTP_REQUEST_DURATION: &str = "smsflow_http_request_duration_seconds";
/// `{version}`: 1, with the version of this build.
pub const BUILD_INFO: &str = "smsflow_build_info";
/// 1 once a read met damage in the store (`store/damage.rs`): it takes no more steps.
pub const STORE_DAMAGED: &str = "smsflow_store_damaged";

/// The `route` of a request that matched no route: raw paths would be one series per typo.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// `status` of [`MT_MESSAGES`].
pub const MT_SUBMIT_STATUSES: [&str; 2] = ["accepted", "failed"];
/// `status` of [`MT_RECEIPTS`].
pub const MT_RECEIPT_STATUSES: [&str; 2] = ["delivered", "undeliverable"];
/// `stage` of [`SURVEY_FUNNEL`].
pub const FUNNEL_STAGES: [&str; 6] = [
    "sent",
    "delivered",
    "replied",
    "rated",
    "not_understood",
    "expired",
];
/// `result` of [`FLOW_RELOADS`] (SPEC.md "Hot reload").
pub const RELOAD_RESULTS: [&str; 3] = ["ok", "compile_error", "test_failed"];
/// `hook` of [`FLOW_ERRORS`].
pub const HOOKS: [&str; 5] = [
    "on_event",
    "on_reply",
    "on_timer",
    "on_delivery",
    "on_update",
];
/// `listener` of [`HTTP_CONNECTIONS_REFUSED`].
pub const LISTENERS: [&str; 2] = ["api", "metrics"];

/// What a metric is, for the exposition's `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// The Prometheus type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric `/metrics` serves: docs/metrics.md and the exporter's help texts follow
/// these.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// In the order every call site gives them.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric the code records ([`all`] adds the `process_*` ones).
#[rustfmt::skip]
pub const RECORDED: &[Metric] = &[
    m(PDUS, Counter, &["smsc", "direction", "command"],
        "SMPP PDUs read (direction=in) and written (direction=out), by command"),
    m(SESSIONS_BOUND, Gauge, &["smsc"], "SMPP sessions bound now"),
    m(WINDOW_IN_FLIGHT, Gauge, &["smsc"], "SMPP requests awaiting a response"),
    m(SUBMIT_LATENCY, Histogram, &["smsc"], "submit_sm to its submit_sm_resp"),
    m(THROTTLED, Counter, &["smsc"],
        "ESME_RTHROTTLED responses from the SMSC (the submit is resent after a pause)"),
    m(MO_REDELIVERED, Counter, &["smsc"],
        "MO messages the SMSC delivered again after they were stored (processed once)"),
    m(MO_MESSAGES, Counter, &["flow"],
        "MO messages handled, by the flow they went to (none: no conversation and no inbox)"),
    m(MO_EVICTED, Counter, &[],
        "incomplete concatenated MOs released early: reassembly over its message or byte bound"),
    m(MT_MESSAGES, Counter, &["flow", "status"],
        "MT messages whose submit is over, once each: accepted by the SMSC or failed for good"),
    m(MT_RETRIES, Counter, &["flow"],
        "MT submit attempts sent again after no answer or a temporary error"),
    m(MT_RECEIPTS, Counter, &["flow", "status"],
        "accepted MT messages by their final receipt, once each: delivered or undeliverable"),
    m(OUTBOX_PENDING, Gauge, &[], "MT messages waiting in the durable outbox"),
    m(FLOW_ERRORS, Counter, &["flow", "hook"], "flow hooks that failed"),
    m(FLOW_LOG_DROPPED, Counter, &["flow"],
        "log lines of a flow's hooks dropped: over 20 per hook call or 600 a minute per flow"),
    m(FLOW_RELOADS, Counter, &["flow", "result"],
        "flow file loads: ok, compile_error, test_failed (the last good version keeps running)"),
    m(FLOW_INFO, Gauge, &["flow", "version"], "1 for the version of each flow that runs now"),
    m(CONVERSATIONS_OPEN, Gauge, &["flow"], "open conversations"),
    m(STORE_DISK_FULL, Gauge, &[],
        "1 while the disk has less room than [service] min_free_space: new steps refused"),
    m(INCIDENTS_OPEN, Gauge, &["state"],
        "staff calls not over yet: ringing (nobody took it yet), acknowledged (not resolved)"),
    m(CONVERSATIONS_FINISHED, Counter, &["flow", "outcome"],
        "conversations ended, by the outcome the flow gave (error: a hook failed)"),
    m(RATINGS, Counter, &["flow", "score"], "ratings recorded, by survey flow and score"),
    m(SURVEY_FUNNEL, Counter, &["flow", "stage"],
        "surveys that reached each stage: sent, delivered, replied, rated, not_understood, expired"),
    m(ESCALATIONS, Counter, &["level"],
        "incidents that escalated, by the level that took the call (none: nobody did)"),
    m(ACK_SECONDS, Histogram, &["level"],
        "incident to acknowledgement, by the level that took the call"),
    m(WEBHOOK_DELIVERIES, Counter, &["webhook", "result"],
        "webhook delivery attempts: delivered, retried, refused, given_up"),
    m(WEBHOOKS_PENDING, Gauge, &[], "webhook calls waiting in the durable queue"),
    m(EXPORT_EVENTS, Counter, &["kind", "result"],
        "events handed to NATS JetStream: published, duplicate, dropped"),
    m(EXPORT_PENDING, Gauge, &[], "export events waiting in the store for JetStream's ack"),
    m(EXPORT_FAILURES, Counter, &[], "export attempts that failed and wait to be retried"),
    m(HTTP_REQUESTS, Counter, &["route", "status"],
        "HTTP API requests answered, by route template and status"),
    m(HTTP_REQUEST_DURATION, Histogram, &["route", "status"],
        "HTTP API request head to response head, by route template and status"),
    m(HTTP_CONNECTIONS_REFUSED, Counter, &["listener"],
        "HTTP connections refused: every open one busy at max_connections"),
    m(BUILD_INFO, Gauge, &["version"], "1, labelled with the version of this build"),
    m(STORE_DAMAGED, Gauge, &[],
        "1 once a read met damage in the store: it takes no more steps until a restore"),
];

/// Every metric `/metrics` serves: [`RECORDED`], then the process metrics.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    RECORDED.iter().chain(process::METRICS)
}

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

/// HTTP buckets: a probe answers in well under a millisecond, an event waits for its fsync
/// (milliseconds), a month's report over many ratings can take seconds.
const HTTP_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
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

/// The process-wide recorder's handle; renders `/metrics`.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl Exporter {
    /// The Prometheus text, the process metrics included: families sorted by name and series
    /// by labels, so two scrapes list the same series in the same order.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        process::render(&mut text);
        render::sorted(&text)
    }
}

/// Installs the process-wide Prometheus recorder (once; later calls return the same
/// exporter), describes every metric and registers the series that need no configuration
/// ([`register_start`]).
pub fn install() -> Exporter {
    static EXPORTER: OnceLock<Exporter> = OnceLock::new();
    EXPORTER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SUBMIT_LATENCY.into()), &LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .set_buckets_for_metric(Matcher::Full(ACK_SECONDS.into()), &ACK_BUCKETS)
                .expect("the bucket list is not empty")
                .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.into()), &HTTP_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            register_start();
            Exporter { handle }
        })
        .clone()
}

/// Registers the series whose labels are fixed (or absent), at zero, so `/metrics` shows them
/// from the start: `increase()` and `rate()` need a series before its first event, and an
/// alert on `== 0` needs the series to exist. Per-SMSC series are registered by the SMPP
/// pool ([`crate::esme`]), per-flow ones by [`register_flow`].
pub fn register_start() {
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(STORE_DAMAGED).increment(0.0);
    counter!(ESCALATIONS, "level" => "none").increment(0);
    // Every incident starts at level 1, so its histogram is there before the first OK.
    let _ = metrics::histogram!(ACK_SECONDS, "level" => "1");
    counter!(MO_MESSAGES, "flow" => "none").increment(0);
    counter!(MO_EVICTED).increment(0);
    gauge!(OUTBOX_PENDING).increment(0.0);
    gauge!(STORE_DISK_FULL).set(0.0);
    for state in ["ringing", "acknowledged"] {
        gauge!(INCIDENTS_OPEN, "state" => state).increment(0.0);
    }
    for listener in LISTENERS {
        counter!(HTTP_CONNECTIONS_REFUSED, "listener" => listener).increment(0);
    }
}

/// Registers at zero the series of one flow (loaded now, or with conversations still open).
/// A survey flow's ratings and funnel are [`register_survey`]'s, when it loads: `_scores` is
/// no longer read (the callers still pass the flow's scale).
pub fn register_flow(flow: &str, _scores: RangeInclusive<u8>) {
    let f = || flow.to_owned();
    for hook in HOOKS {
        counter!(FLOW_ERRORS, "flow" => f(), "hook" => hook).increment(0);
    }
    for status in MT_SUBMIT_STATUSES {
        counter!(MT_MESSAGES, "flow" => f(), "status" => status).increment(0);
    }
    counter!(MT_RETRIES, "flow" => f()).increment(0);
    for status in MT_RECEIPT_STATUSES {
        counter!(MT_RECEIPTS, "flow" => f(), "status" => status).increment(0);
    }
    counter!(MO_MESSAGES, "flow" => f()).increment(0);
    counter!(FLOW_LOG_DROPPED, "flow" => f()).increment(0);
    counter!(CONVERSATIONS_FINISHED, "flow" => f(), "outcome" => "error").increment(0);
    gauge!(CONVERSATIONS_OPEN, "flow" => f()).increment(0.0);
    for result in RELOAD_RESULTS {
        counter!(FLOW_RELOADS, "flow" => f(), "result" => result).increment(0);
    }
}

/// Registers at zero the series of a survey flow (one that declares `fn scale()`), when a
/// version of it goes live: its funnel stages and the scores of its scale. Flows that record
/// no ratings (escalation, inbox) get neither.
pub fn register_survey(flow: &str, scores: RangeInclusive<u8>) {
    for stage in FUNNEL_STAGES {
        counter!(SURVEY_FUNNEL, "flow" => flow.to_owned(), "stage" => stage).increment(0);
    }
    for score in scores {
        counter!(RATINGS, "flow" => flow.to_owned(), "score" => score.to_string()).increment(0);
    }
}

/// Counts one load of flow file `flow` with `result` (one of [`RELOAD_RESULTS`]); the other
/// results of that flow start at zero, so a new file's first failure shows as an increase.
pub fn flow_loaded(flow: &str, result: &'static str) {
    for other in RELOAD_RESULTS {
        let n = u64::from(other == result);
        counter!(FLOW_RELOADS, "flow" => flow.to_owned(), "result" => other).increment(n);
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

/// Registers [`EXPORT_EVENTS`] per kind and result, the backlog and the failures at zero,
/// with `[export]` or without (a dashboard shows 0, not "no data").
pub fn register_export() {
    for kind in EXPORT_KINDS {
        for result in EXPORT_RESULTS {
            metrics::counter!(EXPORT_EVENTS, "kind" => kind, "result" => result).increment(0);
        }
    }
    metrics::counter!(EXPORT_FAILURES).increment(0);
    metrics::gauge!(EXPORT_PENDING).set(0.0);
}

fn describe() {
    for metric in RECORDED {
        let (name, help) = (metric.name, metric.help);
        match metric.kind {
            Kind::Counter => describe_counter!(name, help),
            Kind::Gauge => describe_gauge!(name, help),
            // Every histogram measures seconds (the names say so).
            Kind::Histogram => describe_histogram!(name, Unit::Seconds, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in names: counters end in `_total`, histograms in their unit.
    #[test]
    fn names_follow_the_prometheus_conventions() {
        for metric in all() {
            let prefix = metric.name.split('_').next();
            assert!(
                prefix == Some("smsflow") || prefix == Some("process"),
                "{}",
                metric.name
            );
            match metric.kind {
                Kind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
                Kind::Histogram => assert!(metric.name.ends_with("_seconds"), "{}", metric.name),
                Kind::Gauge => assert!(!metric.name.ends_with("_total"), "{}", metric.name),
            }
        }
        let mut names: Vec<_> = all().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all().count(), "a metric is listed twice");
    }

    /// docs/metrics.md has a row per metric, with its type and every label.
    #[test]
    fn the_docs_list_every_metric_with_its_type_and_labels() {
        let doc = include_str!("../docs/metrics.md");
        for metric in all() {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", metric.name)))
                .unwrap_or_else(|| panic!("no docs/metrics.md row for {}", metric.name));
            assert!(row.contains(metric.kind.name()), "{row}");
            for label in metric.labels {
                assert!(row.contains(&format!("`{label}`")), "{row}: no {label}");
            }
        }
    }
}
