//! `smsflow check`: compile every flow, check its hooks, and run the `test_*` functions inside
//! each script against a fake clock and a fake SMSC.
//!
//! Each test gets a fresh in-memory store and engine over the same scripts directory, a clock
//! at a fixed instant, and these functions (only available under `check`):
//!
//! | function | does |
//! |---|---|
//! | `t_event(flow, event)` | post an event; returns the conversation id (the event's `id` is its idempotency key; an event that joins an open conversation returns that one) |
//! | `t_reply(from, text)` | an MO from `from`; returns the conversation it went to |
//! | `t_advance(duration)` | move the clock, firing due timers in order |
//! | `t_set_local_time("2026-11-23T23:30")` | set the clock to a local time in the service's zone |
//! | `t_deliver(to, status)` | a delivery receipt (`"delivered"`, `"undeliverable"`, ...) for the last message to `to` |
//! | `t_sent()`, `t_sent_to(msisdn)` | messages the fake SMSC got: `#{to, text}` / texts |
//! | `t_ratings()`, `t_incidents()` | what was recorded (an incident: each call's latest record) |
//! | `t_conversation(id)` | `#{status, outcome, state, code, parties}` |
//! | `t_webhook(name)` | configure a `[[webhook]]` of that name for the rest of the test (none is, at first) |
//! | `t_notified()` | what `notify` queued: `#{webhook, key, payload}` (`key` is the `Idempotency-Key`) |
//! | `t_assert(condition, message)`, `t_assert_eq(actual, expected)` | fail the test |

use std::path::Path;
use std::sync::{Arc, Mutex};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use crate::store::{ConversationStatus, OutMessage, Store};

use super::api::{Millis, duration_of};
use super::engine::{EngineConfig, FlowEngine, Routed};
use super::runner::{self, CompiledFlow, FlowError};

mod output;

pub use output::print;

/// Where the fake clock starts: Monday 2026-11-23 10:00 UTC (daytime in Tashkent too).
pub const START: Millis = 1_795_428_000_000;

/// Rounds of timer firing one `t_advance` may take before the test fails as runaway.
const MAX_TIMER_ROUNDS: usize = 10_000;

/// The result of one script test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    /// The file it is in (`scripts/survey.rhai`).
    pub origin: String,
    pub flow: String,
    pub test: String,
    /// `None` when it passed.
    pub failure: Option<String>,
    /// The texts the fake SMSC got, in order (what `send` produced): `check` shows what each
    /// costs in SMS.
    pub sent: Vec<String>,
    /// What the test's scripts `print()`ed (and `debug()`ed), shown when it fails.
    pub printed: Vec<String>,
}

/// Everything `check` found, in file order, each file's tests in definition order.
#[derive(Debug, Default)]
pub struct Report {
    /// Scripts that did not compile or have bad hooks, once each.
    pub errors: Vec<FlowError>,
    pub tests: Vec<TestOutcome>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.tests.iter().all(|t| t.failure.is_none())
    }

    /// Tests that failed plus files that did not load.
    pub fn failed(&self) -> usize {
        self.errors.len() + self.tests.iter().filter(|t| t.failure.is_some()).count()
    }
}

/// The state of one running test, reached by the `t_*` functions through the call's tag.
struct Harness {
    engine: Arc<FlowEngine>,
    now: Mutex<Millis>,
    sent: Mutex<Vec<OutMessage>>,
}

#[derive(Clone)]
struct HarnessHandle(Arc<Harness>);

type Res<T> = Result<T, Box<EvalAltResult>>;

fn fail(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

fn harness(ctx: &NativeCallContext) -> Res<Arc<Harness>> {
    ctx.tag()
        .and_then(|tag| tag.clone().try_cast::<HarnessHandle>())
        .map(|h| h.0)
        .ok_or_else(|| fail("t_* functions only work in test_* functions under `smsflow check`"))
}

impl Harness {
    fn now(&self) -> Millis {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes what the engine put in the outbox, as the fake SMSC.
    fn collect_outbox(&self) -> Res<()> {
        let store = self.engine.store();
        let messages = store.outbox(usize::MAX).map_err(|e| fail(e.to_string()))?;
        let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
        store.outbox_done(&ids).map_err(|e| fail(e.to_string()))?;
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(messages);
        Ok(())
    }

    /// Moves the clock to `until`, firing every timer due on the way at its due time.
    fn advance_to(&self, until: Millis) -> Res<()> {
        for _ in 0..MAX_TIMER_ROUNDS {
            let next = self
                .engine
                .store()
                .next_timer_due()
                .map_err(|e| fail(e.to_string()))?;
            let at = match next {
                Some(due) if due <= until => due.max(self.now()),
                _ => break,
            };
            *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
            self.engine
                .fire_due_timers(at)
                .map_err(|e| fail(e.to_string()))?;
        }
        if self
            .engine
            .store()
            .next_timer_due()
            .map_err(|e| fail(e.to_string()))?
            .is_some_and(|due| due <= until)
        {
            return Err(fail(format!(
                "timers kept firing {MAX_TIMER_ROUNDS} times without the clock reaching the end (a timer set again with no delay?)"
            )));
        }
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = until;
        self.collect_outbox()
    }
}

fn to_dynamic<T: serde::Serialize>(value: &T) -> Res<Dynamic> {
    rhai::serde::to_dynamic(value)
}

fn json_of(value: &Dynamic) -> Res<serde_json::Value> {
    rhai::serde::from_dynamic(value)
}

/// Registers the `t_*` functions (they fail outside `check`).
pub fn register(engine: &mut Engine) {
    engine.register_fn(
        "t_event",
        |ctx: NativeCallContext, flow: &str, event: Map| -> Res<i64> {
            let h = harness(&ctx)?;
            let event = json_of(&Dynamic::from_map(event))?;
            let key = event.get("id").and_then(|k| k.as_str()).map(str::to_owned);
            let (result, _duplicate) = h
                .engine
                .start(h.now(), flow, event, key.as_deref())
                .map_err(|e| fail(e.to_string()))?;
            h.collect_outbox()?;
            if let Some(error) = result.error {
                return Err(fail(format!("on_event failed: {error}")));
            }
            Ok(result.conversation as i64)
        },
    );
    engine.register_fn(
        "t_reply",
        |ctx: NativeCallContext, from: &str, text: &str| -> Res<i64> {
            let h = harness(&ctx)?;
            let now = h.now();
            let routed = h
                .engine
                .reply(now, from, text, now)
                .map_err(|e| fail(e.to_string()))?;
            h.collect_outbox()?;
            let (id, error) = match routed {
                Routed::Conversation(r) | Routed::Inbox(r) => (r.conversation, r.error),
                Routed::Unsolicited(id) => (id, None),
            };
            if let Some(error) = error {
                return Err(fail(format!("on_reply failed: {error}")));
            }
            Ok(id as i64)
        },
    );
    engine.register_fn(
        "t_advance",
        |ctx: NativeCallContext, by: Dynamic| -> Res<()> {
            let h = harness(&ctx)?;
            let by = duration_of(&by)?;
            let until = h
                .now()
                .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
            h.advance_to(until)
        },
    );
    engine.register_fn(
        "t_set_local_time",
        |ctx: NativeCallContext, local: &str| -> Res<()> {
            let h = harness(&ctx)?;
            let civil: jiff::civil::DateTime = local
                .parse()
                .map_err(|e| fail(format!("t_set_local_time: {local:?}: {e}")))?;
            let zone = h.engine.timezone().clone();
            let at = civil
                .to_zoned(zone)
                .map_err(|e| fail(format!("t_set_local_time: {e}")))?
                .timestamp()
                .as_millisecond();
            *h.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
            Ok(())
        },
    );
    engine.register_fn(
        "t_deliver",
        |ctx: NativeCallContext, to: &str, status: &str| -> Res<()> {
            let h = harness(&ctx)?;
            let last = h
                .sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .rev()
                .find(|m| m.to == to)
                .cloned()
                .ok_or_else(|| fail(format!("t_deliver: nothing was sent to {to}")))?;
            h.engine
                .delivery(h.now(), last.conversation, to, status, Some(last.id))
                .map_err(|e| fail(e.to_string()))?;
            h.collect_outbox()
        },
    );
    engine.register_fn("t_sent", |ctx: NativeCallContext| -> Res<Array> {
        let h = harness(&ctx)?;
        let sent = h.sent.lock().unwrap_or_else(|p| p.into_inner());
        Ok(sent
            .iter()
            .map(|m| {
                let mut map = Map::new();
                map.insert("to".into(), m.to.clone().into());
                map.insert("text".into(), m.text.clone().into());
                Dynamic::from_map(map)
            })
            .collect())
    });
    engine.register_fn(
        "t_sent_to",
        |ctx: NativeCallContext, to: &str| -> Res<Array> {
            let h = harness(&ctx)?;
            let sent = h.sent.lock().unwrap_or_else(|p| p.into_inner());
            Ok(sent
                .iter()
                .filter(|m| m.to == to)
                .map(|m| m.text.clone().into())
                .collect())
        },
    );
    engine.register_fn("t_ratings", |ctx: NativeCallContext| -> Res<Array> {
        let h = harness(&ctx)?;
        let ratings = h
            .engine
            .store()
            .ratings(i64::MIN, i64::MAX)
            .map_err(|e| fail(e.to_string()))?;
        ratings
            .iter()
            .map(|r| {
                to_dynamic(&serde_json::json!({
                    "score": r.score, "operator": r.operator, "channel": r.channel,
                    "comment": r.comment, "msisdn": r.msisdn,
                }))
            })
            .collect()
    });
    engine.register_fn("t_incidents", |ctx: NativeCallContext| -> Res<Array> {
        let h = harness(&ctx)?;
        let incidents = h
            .engine
            .store()
            .incidents(i64::MIN, i64::MAX)
            .map_err(|e| fail(e.to_string()))?;
        // Each call as it stands: its latest record.
        (crate::store::Incident::latest(incidents).iter())
            .map(|i| to_dynamic(&i.fields))
            .collect()
    });
    engine.register_fn(
        "t_conversation",
        |ctx: NativeCallContext, id: i64| -> Res<Map> {
            let h = harness(&ctx)?;
            let conversation = h
                .engine
                .store()
                .conversation(id as u64)
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| fail(format!("t_conversation: no conversation {id}")))?;
            let (status, outcome) = match &conversation.status {
                ConversationStatus::Open => ("open", Dynamic::UNIT),
                ConversationStatus::Finished { outcome } => ("finished", outcome.clone().into()),
                ConversationStatus::Errored { error } => ("errored", error.clone().into()),
            };
            let mut map = Map::new();
            map.insert("status".into(), status.into());
            map.insert("outcome".into(), outcome);
            map.insert("state".into(), to_dynamic(&conversation.state)?);
            map.insert(
                "code".into(),
                conversation
                    .reply_code
                    .map_or(Dynamic::UNIT, |c| i64::from(c).into()),
            );
            map.insert("parties".into(), to_dynamic(&conversation.parties)?);
            Ok(map)
        },
    );
    engine.register_fn(
        "t_webhook",
        |ctx: NativeCallContext, name: &str| -> Res<()> {
            let h = harness(&ctx)?;
            let mut names = h.engine.webhooks().to_vec();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
            h.engine.set_webhooks(names);
            Ok(())
        },
    );
    engine.register_fn("t_notified", |ctx: NativeCallContext| -> Res<Array> {
        let h = harness(&ctx)?;
        let calls = h.engine.store().webhooks_after(0, usize::MAX);
        calls
            .iter()
            .map(|c| {
                let body: serde_json::Value =
                    serde_json::from_str(&c.body).map_err(|e| fail(e.to_string()))?;
                to_dynamic(&serde_json::json!({
                    "webhook": c.webhook, "key": c.idempotency_key(), "payload": body["payload"],
                }))
            })
            .collect()
    });
    engine.register_fn("t_assert", |condition: bool, message: &str| -> Res<()> {
        if condition {
            Ok(())
        } else {
            Err(fail(format!("assertion failed: {message}")))
        }
    });
    engine.register_fn(
        "t_assert_eq",
        |actual: Dynamic, expected: Dynamic| -> Res<()> {
            // Compared as JSON so arrays and maps compare deeply and 35 equals 35.0.
            let (a, e) = (json_of(&actual)?, json_of(&expected)?);
            let same = a == e || matches!((a.as_f64(), e.as_f64()), (Some(x), Some(y)) if x == y);
            if same {
                Ok(())
            } else {
                Err(fail(format!("expected {e}, got {a}")))
            }
        },
    );
}

/// Runs `check` over `path`: a directory of `*.rhai` flows, or one of them (the flows beside
/// it are loaded too, since flows start each other, but only its tests run). A file that does
/// not compile is reported once; the other files' tests run without it. No `[[webhook]]` is
/// configured: see [`run_configured`].
pub fn run(path: &Path, timezone: jiff::tz::TimeZone) -> Report {
    run_configured(path, timezone, &[])
}

/// [`run`] with the `[[webhook]]` names of the config: a `notify("name", ...)` naming another
/// is an error of its file (its tests still run, on their own `t_webhook`s).
pub fn run_configured(path: &Path, timezone: jiff::tz::TimeZone, webhooks: &[String]) -> Report {
    let mut report = Report::default();
    let (dir, only) = if path.is_file() {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        (
            dir.unwrap_or(Path::new(".")).to_owned(),
            Some(path.to_owned()),
        )
    } else {
        (path.to_owned(), None)
    };
    let paths = match super::engine::script_paths(&dir) {
        Ok(paths) => paths,
        Err(e) => {
            report.errors.push(FlowError::Read {
                path: dir,
                message: e.to_string(),
            });
            return report;
        }
    };
    let selected = |p: &Path| only.as_ref().is_none_or(|o| same_file(o, p));
    let mut compiler = runner::engine(runner::Limits::default());
    register(&mut compiler);
    let mut flows = Vec::new();
    let mut chosen = Vec::new();
    for path in &paths {
        match runner::compile_file(&compiler, path) {
            Ok(flow) => {
                let flow = Arc::new(flow);
                if selected(path) {
                    if let Err(e) = flow.check_webhooks(webhooks) {
                        report.errors.push(e);
                    }
                    chosen.push(flow.clone());
                }
                flows.push(flow);
            }
            Err(e) if selected(path) => report.errors.push(e),
            // Another file's error is its own report's business; its flow is just missing.
            Err(_) => {}
        }
    }
    for flow in &chosen {
        for test in &flow.tests {
            let ((result, sent), printed) =
                runner::capturing_prints(|| run_test(&flows, &timezone, &flow.name, test));
            report.tests.push(TestOutcome {
                origin: flow.origin.clone(),
                flow: flow.name.clone(),
                test: test.clone(),
                failure: result.err(),
                sent,
                printed,
            });
        }
    }
    report
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The reload gate ([`Gate`](super::engine::Gate)): runs `candidate`'s own tests beside the
/// `others` running now. The first failure, as (test, why), keeps the candidate out.
pub fn gate(
    candidate: &Arc<CompiledFlow>,
    others: &[Arc<CompiledFlow>],
    timezone: &jiff::tz::TimeZone,
) -> Result<(), (String, String)> {
    let mut flows: Vec<Arc<CompiledFlow>> = (others.iter())
        .filter(|f| f.name != candidate.name)
        .cloned()
        .collect();
    flows.push(candidate.clone());
    for test in &candidate.tests {
        let (result, _sent) = run_test(&flows, timezone, &candidate.name, test);
        result.map_err(|why| (test.clone(), why))?;
    }
    Ok(())
}

/// One test on a fresh engine and store holding `flows`, on the fake clock; with the texts
/// it sent, passed or not.
fn run_test(
    flows: &[Arc<CompiledFlow>],
    timezone: &jiff::tz::TimeZone,
    flow: &str,
    test: &str,
) -> (Result<(), String>, Vec<String>) {
    let store = match Store::temporary() {
        Ok(store) => store,
        Err(e) => return (Err(e.to_string()), Vec::new()),
    };
    let (engine, _) = FlowEngine::new(
        store,
        EngineConfig {
            scripts_dir: None,
            timezone: timezone.clone(),
            functions: register,
            ..EngineConfig::default()
        },
    );
    for f in flows {
        engine.install_tested(f.clone());
    }
    let engine = Arc::new(engine);
    let Some(compiled) = engine.flow(flow) else {
        return (Err(format!("flow {flow} did not load")), Vec::new());
    };
    let harness = Arc::new(Harness {
        engine: engine.clone(),
        now: Mutex::new(START),
        sent: Mutex::new(Vec::new()),
    });
    let handle = HarnessHandle(harness.clone());
    let result = runner::call_plain(engine.rhai(), &compiled, test, Dynamic::from(handle))
        .map(|_| ())
        .map_err(|e| e.to_string());
    let sent = harness.sent.lock().unwrap_or_else(|p| p.into_inner());
    (result, sent.iter().map(|m| m.text.clone()).collect())
}
