//! `/metrics` of `smsflow run` against the simulator: every metric of `smsflow::metrics` from
//! the start, the labelled counters at 0 before any traffic, every metric and label the
//! shipped Grafana dashboard and alert rules use, MT stages that count a message once, HTTP
//! requests by route template, and the same series order on every scrape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use smsflow::metrics::Kind;

use crate::http::{post_event, raw};
use crate::run::{simulator_and_service, stop_with_sigterm};
use crate::util::WAIT;

/// What one scrape exposes: each sample name's label names, and each family's type.
struct Exposition {
    labels: BTreeMap<String, BTreeSet<String>>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_owned(), kind.to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                let end = line.find(['{', ' ']).unwrap_or(line.len());
                let names = labels.entry(line[..end].to_owned()).or_default();
                if line[end..].starts_with('{') {
                    names.extend(label_names(&line[end + 1..]));
                }
            }
        }
        Exposition { labels, types }
    }

    fn has(&self, metric: &str, label: &str) -> bool {
        self.labels.get(metric).is_some_and(|l| l.contains(label))
    }
}

/// The label names of `a="1",b="x}"} 3` (values may hold braces and commas).
fn label_names(mut rest: &str) -> Vec<String> {
    let mut names = Vec::new();
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_owned());
        let mut escaped = false;
        let close = after
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .expect("a closed label value")
            .0;
        rest = &after[close + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

/// The metrics (each with the labels its selector matches on) and the grouping labels
/// (`by`, `without`, `on`, `ignoring`) of one PromQL expression. A scanner for the PromQL the
/// shipped files use, not a parser: strings, ranges, numbers and `$variables` are skipped.
#[derive(Debug, Default)]
struct Uses {
    metrics: Vec<(String, Vec<String>)>,
    grouping: Vec<String>,
}

const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 5] = ["offset", "bool", "and", "or", "unless"];

fn scan(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut uses = Uses::default();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && ident(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if c == '$' || c.is_ascii_digit() {
            i += 1;
            word(&mut i);
        } else if ident(c) {
            let name = word(&mut i);
            skip_space(&mut i);
            let next = chars.get(i).copied();
            if GROUPING.contains(&name.as_str()) && next == Some('(') {
                let close = i + chars[i..]
                    .iter()
                    .position(|&c| c == ')')
                    .expect("a closed list");
                let list: String = chars[i + 1..close].iter().collect();
                uses.grouping.extend(
                    (list.split(',').map(str::trim))
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
                i = close + 1;
            } else if next == Some('(')
                || AGGREGATIONS.contains(&name.as_str())
                || KEYWORDS.contains(&name.as_str())
                || GROUPING.contains(&name.as_str())
            {
                // A function, an aggregation (its `by` comes next) or an operator.
            } else {
                let mut matched = Vec::new();
                if next == Some('{') {
                    i += 1;
                    loop {
                        skip_space(&mut i);
                        if chars.get(i) == Some(&'}') {
                            i += 1;
                            break;
                        }
                        matched.push(word(&mut i));
                        while chars[i] != '"' {
                            i += 1;
                        }
                        i += 1;
                        while chars[i] != '"' {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                        i += 1;
                        skip_space(&mut i);
                        if chars.get(i) == Some(&',') {
                            i += 1;
                        }
                    }
                }
                uses.metrics.push((name, matched));
            }
        } else {
            i += 1;
        }
    }
    uses
}

/// `{{label}}` in a Grafana legend, `{{ $labels.label }}` in an alert's annotation.
fn template_labels(text: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap_or_default().trim();
        let inner = inner.split('|').next().unwrap_or_default().trim();
        if let Some(label) = inner.strip_prefix("$labels.") {
            labels.push(label.to_owned());
        } else if !inner.starts_with('$') && !inner.is_empty() {
            labels.push(inner.to_owned());
        }
    }
    labels
}

/// Where an expression came from, the expression, and the labels its legend or annotations
/// name.
struct Query {
    origin: String,
    expr: String,
    shown: Vec<String>,
}

fn dashboard_queries(path: &Path) -> (Vec<Query>, Vec<(String, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    let mut panels = dashboard["panels"].as_array().unwrap().clone();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().cloned().unwrap_or_default());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(Query {
                origin: format!("panel {:?}", panel["title"]),
                expr: target["expr"].as_str().unwrap().to_owned(),
                shown: template_labels(target["legendFormat"].as_str().unwrap_or_default()),
            });
        }
    }
    // Variables: label_values(metric, label).
    let mut variables = Vec::new();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = var["definition"].as_str() {
            let args = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("variable {query}: only label_values() is checked"));
            let (metric, label) = args.split_once(',').unwrap();
            variables.push((metric.trim().to_owned(), label.trim().to_owned()));
        }
    }
    (queries, variables)
}

/// Each rule's `expr` (inline or a block scalar) and its annotations' labels, read line by
/// line: the file is plain YAML with no anchors or flow style.
fn alert_queries(path: &Path) -> Vec<Query> {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut queries: Vec<Query> = Vec::new();
    let mut alert = String::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            alert = name.to_owned();
        } else if let Some(value) = trimmed.strip_prefix("expr: ") {
            let expr = if matches!(value, "|" | "|-" | ">" | ">-") {
                (lines[n + 1..].iter())
                    .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                value.to_owned()
            };
            queries.push(Query {
                origin: format!("alert {alert}"),
                expr,
                shown: Vec::new(),
            });
        } else if trimmed.contains("$labels.") {
            let query = queries.last_mut().expect("annotations follow their expr");
            query.shown.extend(template_labels(trimmed));
        }
    }
    queries
}

/// Prometheus' own series, not smsflow's: the scrape's `up`, with the target's labels.
const PROMETHEUS_OWN: &str = "up";
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Every metric and label `query` uses exists in `exposed`; the problems found.
fn check(exposed: &Exposition, query: &Query) -> Vec<String> {
    let uses = scan(&query.expr);
    let mut problems = Vec::new();
    let where_ = |what: String| format!("{}: {what} (in {})", query.origin, query.expr);
    if uses.metrics.is_empty() {
        problems.push(where_("no metric found".into()));
    }
    let own = uses.metrics.iter().any(|(m, _)| m == PROMETHEUS_OWN);
    for (metric, matched) in &uses.metrics {
        if metric == PROMETHEUS_OWN {
            continue;
        }
        if !exposed.labels.contains_key(metric) {
            problems.push(where_(format!("no {metric} in /metrics")));
        }
        for label in matched {
            if !exposed.has(metric, label) {
                problems.push(where_(format!("{metric} has no label {label}")));
            }
        }
    }
    for label in uses.grouping.iter().chain(&query.shown) {
        let found = (uses.metrics.iter()).any(|(m, _)| exposed.has(m, label))
            || (own && TARGET_LABELS.contains(&label.as_str()));
        if !found {
            problems.push(where_(format!("no metric of it has the label {label}")));
        }
    }
    problems
}

async fn scrape(setup: &crate::run::ServiceSetup) -> String {
    let resp = raw(setup.metrics, "GET", "/metrics", &[], None).await;
    assert_eq!(resp.status, 200);
    resp.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_every_metric_is_there_with_its_counters_at_zero_and_the_contrib_files_match() {
    // A webhook configured (nothing calls it): its delivery counters are there at zero too.
    let webhook = "\n[[webhook]]\nname = \"helpdesk\"\nurl = \"http://127.0.0.1:9/hook\"\n";
    let (smsc, _dir, setup, mut service) =
        crate::run::simulator_and_service_with("metrics-start", webhook).await;
    let text = scrape(&setup).await;
    let exposed = Exposition::parse(&text);

    for metric in smsflow::metrics::all() {
        assert_eq!(
            exposed.types.get(metric.name).map(String::as_str),
            Some(metric.kind.name()),
            "{} in\n{text}",
            metric.name
        );
        let sample = match metric.kind {
            Kind::Histogram => format!("{}_bucket", metric.name),
            _ => metric.name.to_owned(),
        };
        for label in metric.labels {
            assert!(exposed.has(&sample, label), "{sample} has no {label}");
        }
    }

    // Labelled counters whose label values are known at start are there at 0 (per smsc, per
    // loaded flow, the fixed values). The flows' own tests ran at load: they count nothing.
    let mut zero = vec![
        "smsflow_mo_redelivered_total{smsc=\"sim\"} 0".to_owned(),
        "smsflow_throttled_total{smsc=\"sim\"} 0".to_owned(),
        "smsflow_pdus_total{smsc=\"sim\",direction=\"in\",command=\"generic_nack\"} 0".to_owned(),
        "smsflow_pdus_total{smsc=\"sim\",direction=\"out\",command=\"unbind\"} 0".to_owned(),
        "smsflow_mo_messages_total{flow=\"none\"} 0".to_owned(),
        "smsflow_mo_reassembly_evicted_total 0".to_owned(),
        "smsflow_escalations_total{level=\"none\"} 0".to_owned(),
        "smsflow_ack_seconds_count{level=\"1\"} 0".to_owned(),
        "smsflow_http_connections_refused_total{listener=\"api\"} 0".to_owned(),
        "smsflow_http_connections_refused_total{listener=\"metrics\"} 0".to_owned(),
        "smsflow_outbox_pending 0".to_owned(),
        format!(
            "smsflow_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ];
    // Per survey flow (its script declares fn scale()): the funnel, and the scores of its scale.
    for (flow, scores) in [("survey", 1..=5), ("nps", 0..=10)] {
        for stage in smsflow::metrics::FUNNEL_STAGES {
            zero.push(format!(
                "smsflow_survey_funnel_total{{flow=\"{flow}\",stage=\"{stage}\"}} 0"
            ));
        }
        for score in scores {
            zero.push(format!(
                "smsflow_ratings_total{{flow=\"{flow}\",score=\"{score}\"}} 0"
            ));
        }
    }
    for flow in ["survey", "nps", "escalation", "inbox"] {
        for hook in smsflow::metrics::HOOKS {
            zero.push(format!(
                "smsflow_flow_errors_total{{flow=\"{flow}\",hook=\"{hook}\"}} 0"
            ));
        }
        for status in smsflow::metrics::MT_SUBMIT_STATUSES {
            zero.push(format!(
                "smsflow_mt_messages_total{{flow=\"{flow}\",status=\"{status}\"}} 0"
            ));
        }
        for status in smsflow::metrics::MT_RECEIPT_STATUSES {
            zero.push(format!(
                "smsflow_mt_receipts_total{{flow=\"{flow}\",status=\"{status}\"}} 0"
            ));
        }
        zero.push(format!("smsflow_mt_retries_total{{flow=\"{flow}\"}} 0"));
        zero.push(format!("smsflow_mo_messages_total{{flow=\"{flow}\"}} 0"));
        zero.push(format!(
            "smsflow_conversations_finished_total{{flow=\"{flow}\",outcome=\"error\"}} 0"
        ));
        zero.push(format!(
            "smsflow_flow_reloads_total{{flow=\"{flow}\",result=\"ok\"}} 1"
        ));
        for result in ["compile_error", "test_failed"] {
            zero.push(format!(
                "smsflow_flow_reloads_total{{flow=\"{flow}\",result=\"{result}\"}} 0"
            ));
        }
    }
    for needle in &zero {
        assert!(
            text.contains(&format!("\n{needle}\n")),
            "no {needle} in\n{text}"
        );
    }
    assert!(
        !text.contains("smsflow_conversations_finished_total{flow=\"survey\",outcome=\"rated\"}"),
        "a flow's load-time tests counted as traffic:\n{text}"
    );
    // Flows that record no ratings have no rating or funnel series.
    for line in text.lines().filter(|l| {
        l.starts_with("smsflow_ratings_total{") || l.starts_with("smsflow_survey_funnel_total{")
    }) {
        assert!(
            line.contains("flow=\"survey\"") || line.contains("flow=\"nps\""),
            "{line}"
        );
    }

    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let (mut queries, variables) = dashboard_queries(&contrib.join("grafana/smsflow.json"));
    assert!(queries.len() > 20, "{} panel queries", queries.len());
    let alerts = alert_queries(&contrib.join("prometheus/alerts.yml"));
    assert!(alerts.len() >= 7, "{} alert rules", alerts.len());
    queries.extend(alerts);
    let mut problems: Vec<String> = queries.iter().flat_map(|q| check(&exposed, q)).collect();
    for (metric, label) in variables {
        if !exposed.has(&metric, &label) {
            problems.push(format!(
                "variable label_values({metric}, {label}): no such label"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

/// `/metrics` once it contains `needle` (a counter another task moves: no event to await).
pub(crate) async fn scrape_until(setup: &crate::run::ServiceSetup, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(setup).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {needle} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of the samples of `metric` whose labels contain all of `with` (also for `soak.rs`).
pub(crate) fn total(text: &str, metric: &str, with: &[&str]) -> f64 {
    (text.lines())
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survey_counts_each_mt_once_per_stage_and_http_by_route_template() {
    let (smsc, _dir, setup, mut service) = simulator_and_service("metrics-traffic").await;
    let mut submitted = smsc.submitted();
    let body = r#"{"id": "m-1", "msisdn": "998901234567", "operator": "op-1", "channel": "call"}"#;
    let resp = post_event(setup.http, "survey", &[], body).await;
    let id = resp.json["conversation"].as_u64().unwrap();
    tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    let conversation = format!("/api/v1/conversations/{id}");
    assert_eq!(
        raw(setup.http, "GET", &conversation, &[], None)
            .await
            .status,
        200
    );
    let missing = raw(setup.http, "GET", "/api/v1/conversations/987654", &[], None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        raw(setup.http, "GET", "/no/such/route", &[], None)
            .await
            .status,
        404
    );

    // The question's receipt comes 10 ms after its submit; the scrape shows it soon after.
    let delivered = "smsflow_mt_receipts_total{flow=\"survey\",status=\"delivered\"} 1\n";
    let text = scrape_until(&setup, delivered).await;
    // One question: one message at each stage, so sums count it once.
    let survey = "flow=\"survey\"";
    assert_eq!(
        total(&text, "smsflow_mt_messages_total", &[survey]),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(&text, "smsflow_mt_receipts_total", &[survey]),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(&text, "smsflow_mt_retries_total", &[survey]),
        0.0,
        "{text}"
    );
    assert_eq!(
        total(
            &text,
            "smsflow_survey_funnel_total",
            &[survey, "stage=\"sent\""]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(&text, "smsflow_survey_funnel_total", &["stage=\"sent\""]),
        1.0,
        "only the survey's question: {text}"
    );

    for (route, status) in [
        ("/api/v1/flows/{flow}/events", "202"),
        ("/api/v1/conversations/{id}", "200"),
        ("/api/v1/conversations/{id}", "404"),
        ("unmatched", "404"),
    ] {
        let labels = format!("{{route=\"{route}\",status=\"{status}\"}}");
        let count = format!("smsflow_http_requests_total{labels} 1\n");
        assert!(text.contains(&count), "no {count} in\n{text}");
        let timed = format!("smsflow_http_request_duration_seconds_count{labels} 1\n");
        assert!(text.contains(&timed), "no {timed} in\n{text}");
    }
    assert!(
        !text.contains(&format!("{conversation}\"")),
        "a raw path as a label:\n{text}"
    );

    // Families sorted by name, and a second scrape lists the same series in the same order.
    let families: Vec<&str> = (text.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let mut sorted = families.clone();
    sorted.sort_unstable();
    assert_eq!(families, sorted);
    let series = |text: &str| -> Vec<String> {
        (text.lines())
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    assert_eq!(series(&text), series(&scrape(&setup).await));

    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

#[test]
fn the_scanner_finds_metrics_matchers_and_grouping() {
    let uses = scan(
        r#"histogram_quantile(0.99, sum by (le, smsc) (rate(smsflow_submit_latency_seconds_bucket{smsc=~"$smsc", x="a}b"}[$__rate_interval]))) > 2 and on() up offset 1d"#,
    );
    let names: Vec<&str> = uses.metrics.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["smsflow_submit_latency_seconds_bucket", "up"]);
    assert_eq!(uses.metrics[0].1, ["smsc", "x"]);
    assert_eq!(uses.grouping, ["le", "smsc"]);
    assert_eq!(
        label_names(r#"route="/c/{id}",status="200"} 4"#),
        ["route", "status"]
    );
    assert_eq!(
        template_labels("{{ $labels.smsc }} at {{ $value | humanize }}, {{flow}}"),
        ["smsc", "flow"]
    );
}
