//! The functions flow scripts can call: the contract between operators' scripts and smsflow.
//!
//! Every function records an *effect* in the hook call's context; nothing is sent, stored or
//! scheduled until the hook returns and the engine commits the effects together with the
//! conversation's new state. So a hook that fails halfway changes nothing.
//!
//! | function | does |
//! |---|---|
//! | `send(to, text)` | queue an SMS to `to` (MSISDN, digits, optional `+`); `to` becomes a party, so its replies come back to this conversation |
//! | `add_party(msisdn)` | route `msisdn`'s replies to this conversation without sending |
//! | `set_timer(name, duration)` | `on_timer(name)` after `duration` (`"30s"`, `"3m"`, `"24h"`, or seconds); same name replaces |
//! | `cancel_timer(name)` | forget a timer |
//! | `finish(outcome)` | close the conversation (`"rated"`, `"no_response"`, ...); its parties are released |
//! | `parse_rating(text, min, max)` | `#{ok, score, comment}` by the rating grammar of SPEC.md |
//! | `record_rating(map)` | store a rating: `score`, `operator`, `channel`, `comment`, optional `msisdn` |
//! | `record_incident(map)` | store an incident record (any fields) |
//! | `start_flow(name, event)` | start a conversation of another flow (e.g. a survey opening an escalation) |
//! | `now()` | the current time, milliseconds since the Unix epoch (a fake clock under `smsflow check`) |
//! | `local_hour()` | the hour (0–23) now in the service's time zone (quiet hours) |
//! | `seconds_until_local(hour)` | seconds from now until the next `hour`:00 in the service's time zone |
//! | `days_since_last(flow, msisdn)` | days since `msisdn` last had a conversation of `flow`, or `-1.0` (survey fatigue) |
//! | `opt_out(msisdn)`, `opt_in(msisdn)`, `is_opted_out(msisdn)` | the opt-out list; `send` to an opted-out number is dropped and logged |
//! | `log(text)` | a line in the service log, tagged with flow and conversation |
//! | `parse_duration(text)` | seconds in `"3m"`-style text (for durations in events) |
//! | `notify(webhook, payload)` | queue a POST of `payload` to the `[[webhook]]` of that name, durable with the step |
//! | `has_webhook(name)` | whether the config has that `[[webhook]]` (hand-offs that are optional) |
//! | `reply_code()` | this conversation's reply code (`OK 315`), or `()` when its flow declares no `fn reply_codes()` |
//! | `remove_party(msisdn)` | stop routing `msisdn`'s replies here (staff told someone else took the call) |
//!
//! Scripts cannot touch files, the network or the process: the engine has no such functions and
//! `import` resolves nothing. Each hook call is bounded in operations, CPU, memory, call depth
//! and sizes, and in what it may ask for: at most [`MAX_SENDS`] `send`s of at most
//! [`MAX_PARTS_PER_MESSAGE`] SMS parts each and [`MAX_PARTS_PER_HOOK`] together,
//! [`MAX_TIMERS`] timers, [`MAX_STARTS`] `start_flow`s, [`MAX_NOTIFIES`] `notify`s (each
//! payload at most [`MAX_PAYLOAD`] bytes of JSON) and [`MAX_RECORDS`] ratings or incidents,
//! and [`MAX_STEP_BYTES`] written in all; one more is an error naming the limit, and the
//! hook's effects are discarded. `log()` lines past their limits are dropped and counted. See
//! [`super::limits`]. `record_rating` refuses a score outside the flow's scale and fields that
//! are not strings.
//!
//! # Declared functions
//!
//! A flow may define functions smsflow reads at load time rather than calls per message:
//!
//! - `fn scale()` → `#{kind, min, max}`: what its ratings are. `kind` is `"csat"` (1–5, the
//!   shipped survey: positive 4–5, negative 1–2), `"nps"` (0–10: NPS = promoters 9–10 % −
//!   detractors 0–6 %) or `"ces"` (1–7: the share of "easy", 5–7); `min` and `max` are 0–10.
//!   `record_rating` refuses scores outside it, and the CSI report of the flow
//!   (`smsflow report csi --flow NAME`) computes what the kind means. A flow that calls
//!   `record_rating` must declare it: `smsflow check` and loading fail otherwise.
//! - `fn event_fields()` → `#{field: type}`: what an HTTP event must carry (a 422 otherwise).
//!
//! A follow-up question ("what should we improve?") is a second `send` and a state field: keep
//! the score in `this`, ask, and record the rating when the answer (its comment) comes or a
//! timer says none will; `scripts/nps.rhai` does exactly that.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};

use super::budget::{Budget, LogRate};
pub use super::limits::{
    MAX_NOTIFIES, MAX_PARTS_PER_HOOK, MAX_PARTS_PER_MESSAGE, MAX_PAYLOAD, MAX_RECORDS, MAX_SENDS,
    MAX_STARTS, MAX_STEP_BYTES, MAX_TIMERS,
};
use super::rating::parse_rating;

/// The store's clock unit, one alias for the whole service (the budget uses it too).
pub use crate::store::Millis;

/// The scores a flow's ratings may take: what `fn scale()` returns, or CSAT 1–5. The
/// reports name it in their JSON (`"scale": {"kind": "csat", "min": 1, "max": 5}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scale {
    /// `csat`, `nps` or `ces`.
    pub kind: String,
    pub min: u8,
    pub max: u8,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            kind: "csat".to_owned(),
            min: 1,
            max: 5,
        }
    }
}

impl Scale {
    /// The scale a `scale()` function returned, or why it is none.
    pub fn from_map(map: &Map) -> Result<Scale, String> {
        let kind = match map.get("kind").map(|k| k.to_string()) {
            Some(k) if ["csat", "nps", "ces"].contains(&k.as_str()) => k,
            other => {
                return Err(format!(
                    "kind must be \"csat\", \"nps\" or \"ces\", got {other:?}"
                ));
            }
        };
        let bound = |key: &str| {
            (map.get(key).and_then(|v| v.as_int().ok()))
                .and_then(|v| u8::try_from(v).ok())
                .filter(|v| *v <= 10)
                .ok_or_else(|| format!("{key} must be an integer 0..=10"))
        };
        let (min, max) = (bound("min")?, bound("max")?);
        if min >= max {
            return Err(format!("min {min} must be below max {max}"));
        }
        Ok(Scale { kind, min, max })
    }
}

/// What the host answers about the world outside the conversation.
pub trait Lookup: Send + Sync {
    fn is_opted_out(&self, msisdn: &str) -> bool;
    /// When `msisdn` last had a conversation of `flow` (created), if ever.
    fn last_conversation_at(&self, flow: &str, msisdn: &str) -> Option<Millis>;
}

/// A [`Lookup`] with no store behind it: nobody opted out, nobody surveyed before (hooks run
/// on their own, as the benches do).
pub struct NoLookup;

impl Lookup for NoLookup {
    fn is_opted_out(&self, _: &str) -> bool {
        false
    }
    fn last_conversation_at(&self, _: &str, _: &str) -> Option<Millis> {
        None
    }
}

/// A rating as a script recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRecord {
    pub score: u8,
    pub msisdn: Option<String>,
    pub operator: String,
    pub channel: String,
    pub comment: String,
}

/// Everything one hook call asked for, in call order where order matters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// (to, text)
    pub sends: Vec<(String, String)>,
    /// Parties added by `send` or `add_party`.
    pub parties: Vec<String>,
    /// (name, due)
    pub timers_set: Vec<(String, Millis)>,
    pub timers_cancelled: Vec<String>,
    pub finished: Option<String>,
    pub ratings: Vec<RatingRecord>,
    pub incidents: Vec<serde_json::Value>,
    /// (flow, event)
    pub flows_started: Vec<(String, serde_json::Value)>,
    pub opt_outs: Vec<String>,
    pub opt_ins: Vec<String>,
    /// Parties whose replies no longer route here (`remove_party`), unless added again.
    pub parties_removed: Vec<String>,
    /// (webhook, payload) of each `notify`, in call order.
    pub notifications: Vec<(String, serde_json::Value)>,
    pub logs: Vec<String>,
    /// Sends dropped because the recipient opted out.
    pub suppressed: Vec<String>,
}

/// The per-call context the host functions reach through the call's tag.
pub struct HookContext {
    pub now: Millis,
    /// The flow whose hook this is (log lines are tagged and rate-limited by it).
    pub flow: String,
    /// The flow's rating scale.
    pub scale: Scale,
    pub timezone: jiff::tz::TimeZone,
    pub lookup: Arc<dyn Lookup>,
    /// The conversation's reply code, if its flow has them.
    pub reply_code: Option<u32>,
    /// The `[[webhook]]` names `notify` accepts.
    pub webhooks: Arc<[String]>,
    pub effects: Effects,
    /// What the call has spent of the limits that count as it goes.
    pub budget: Budget,
    /// The flow's log rate, shared by its conversations.
    pub log_rate: Arc<Mutex<LogRate>>,
}

impl HookContext {
    /// Opted out as of this point of the hook: the store's list with this call's own
    /// `opt_out`/`opt_in` applied on top.
    fn opted_out(&self, msisdn: &str) -> bool {
        let msisdn = msisdn.to_owned();
        if self.effects.opt_ins.contains(&msisdn) {
            return false;
        }
        self.effects.opt_outs.contains(&msisdn) || self.lookup.is_opted_out(&msisdn)
    }

    /// The line to log for `text` (`log()`, or `print()` in a hook), cut to length, or `None`
    /// when this call's lines or the flow's rate are spent; a dropped line is counted.
    pub fn log_line(&mut self, text: &str) -> Option<String> {
        let mut rate = self.log_rate.lock().unwrap_or_else(|p| p.into_inner());
        let line = (self.budget.log_line(text)).filter(|_| rate.admit(self.now));
        if line.is_none() {
            metrics::counter!(crate::metrics::FLOW_LOG_DROPPED, "flow" => self.flow.clone())
                .increment(1);
            if let Some(dropped) = rate.dropped(self.now, 1) {
                tracing::warn!(target: "smsflow::flow", flow = %self.flow,
                    "{dropped} log lines dropped: a hook call logs at most {} lines, a flow {} \
                     a minute (smsflow_flow_log_dropped_total counts them all)",
                    super::limits::MAX_LOG_LINES, super::limits::LOG_LINES_PER_MINUTE);
            }
        }
        line
    }

    /// One more thing of `bytes` for the store (see [`Budget::charge`]).
    fn charge(&mut self, function: &str, bytes: usize) -> Res<()> {
        self.budget.charge(function, bytes).map_err(error)
    }

    /// `msisdn` is a party after this call (`send`, `add_party`), a `remove_party` before
    /// it undone.
    fn add_party(&mut self, msisdn: &str) {
        self.effects.parties_removed.retain(|m| m != msisdn);
        if !self.effects.parties.iter().any(|m| m == msisdn) {
            self.effects.parties.push(msisdn.to_owned());
        }
    }
}

/// Shared handle put in the call's tag (a `Dynamic` must be `Clone + Send + Sync`).
#[derive(Clone)]
pub struct ContextHandle(pub Arc<Mutex<HookContext>>);

impl ContextHandle {
    pub fn new(context: HookContext) -> Self {
        Self(Arc::new(Mutex::new(context)))
    }

    pub fn lock(&self) -> MutexGuard<'_, HookContext> {
        // A panic inside a host function cannot leave the context half-written in a way that
        // matters: the whole call's effects are discarded on error.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Res<T> = Result<T, Box<EvalAltResult>>;

fn error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

fn with<T>(ctx: &NativeCallContext, f: impl FnOnce(&mut HookContext) -> Res<T>) -> Res<T> {
    let handle = ctx
        .tag()
        .and_then(|tag| tag.clone().try_cast::<ContextHandle>())
        .ok_or_else(|| error("this function is only available inside a flow hook"))?;
    let mut guard = handle.lock();
    f(&mut guard)
}

/// An MSISDN as SPEC.md accepts it: international digits, a leading `+` stripped.
pub fn normalize_msisdn(raw: &str) -> Option<String> {
    let digits = raw.trim().strip_prefix('+').unwrap_or(raw.trim());
    let ok = (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.to_owned())
}

/// `"30s"`, `"3m"`, `"24h"`, `"1h 30m"` (humantime), or an integer of seconds.
pub fn duration_of(value: &Dynamic) -> Res<Duration> {
    if let Ok(seconds) = value.as_int() {
        return u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| error(format!("negative duration: {seconds}")));
    }
    let text = value.clone().into_immutable_string().map_err(|t| {
        error(format!(
            "a duration is a string like \"3m\" or seconds, not {t}"
        ))
    })?;
    humantime::parse_duration(text.trim()).map_err(|e| {
        error(format!(
            "bad duration {:?}: {e} (try \"30s\", \"3m\", \"24h\")",
            text.as_str()
        ))
    })
}

fn millis(duration: Duration) -> Millis {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn to_json(value: &Dynamic) -> Res<serde_json::Value> {
    rhai::serde::from_dynamic(value)
}

/// A string field of a map passed to `function`: absent or `()` is empty, a string is itself,
/// anything else an error (an operator as a map would be stored as given otherwise).
fn map_str(function: &str, map: &Map, key: &str) -> Res<String> {
    match map.get(key).filter(|v| !v.is_unit()) {
        None => Ok(String::new()),
        Some(v) if v.is_string() => Ok(v.to_string()),
        Some(v) => Err(error(format!(
            "{function}: `{key}` must be a string, got {}",
            v.type_name()
        ))),
    }
}

/// One more of `what` in a hook call that has `n` already, within `max`.
fn within(function: &str, n: usize, max: usize, what: &str) -> Res<()> {
    if n >= max {
        return Err(error(format!(
            "{function}: more than {max} {what} in one hook call (the per-hook limit)"
        )));
    }
    Ok(())
}

/// Registers the host API on `engine`.
pub fn register(engine: &mut Engine) {
    engine.register_fn(
        "send",
        |ctx: NativeCallContext, to: &str, text: &str| -> Res<()> {
            let to = normalize_msisdn(to).ok_or_else(|| {
                error(format!(
                    "send: {to:?} is not an MSISDN (international digits, optional +)"
                ))
            })?;
            if text.is_empty() {
                return Err(error("send: empty text"));
            }
            with(&ctx, |c| {
                within("send", c.effects.sends.len(), MAX_SENDS, "messages")?;
                if c.opted_out(&to) {
                    c.charge("send", to.len())?;
                    c.effects.suppressed.push(to);
                    return Ok(());
                }
                c.budget
                    .send(&crate::smpp::text::cost(text))
                    .map_err(error)?;
                c.charge("send", to.len() + text.len())?;
                c.add_party(&to);
                c.effects.sends.push((to, text.to_owned()));
                Ok(())
            })
        },
    );
    engine.register_fn(
        "add_party",
        |ctx: NativeCallContext, msisdn: &str| -> Res<()> {
            let msisdn = normalize_msisdn(msisdn)
                .ok_or_else(|| error(format!("add_party: {msisdn:?} is not an MSISDN")))?;
            with(&ctx, |c| {
                c.charge("add_party", msisdn.len())?;
                c.add_party(&msisdn);
                Ok(())
            })
        },
    );
    engine.register_fn(
        "remove_party",
        |ctx: NativeCallContext, msisdn: &str| -> Res<()> {
            let msisdn = normalize_msisdn(msisdn)
                .ok_or_else(|| error(format!("remove_party: {msisdn:?} is not an MSISDN")))?;
            with(&ctx, |c| {
                c.charge("remove_party", msisdn.len())?;
                c.effects.parties.retain(|m| *m != msisdn);
                if !c.effects.parties_removed.contains(&msisdn) {
                    c.effects.parties_removed.push(msisdn);
                }
                Ok(())
            })
        },
    );
    engine.register_fn(
        "notify",
        |ctx: NativeCallContext, webhook: &str, payload: Dynamic| -> Res<()> {
            let payload = to_json(&payload)?;
            let size = payload.to_string().len();
            if size > MAX_PAYLOAD {
                return Err(error(format!(
                    "notify: the payload is {size} bytes of JSON, at most {MAX_PAYLOAD} are sent"
                )));
            }
            with(&ctx, |c| {
                if !c.webhooks.iter().any(|w| w == webhook) {
                    let known = if c.webhooks.is_empty() {
                        "none is configured".to_owned()
                    } else {
                        format!("configured: {}", c.webhooks.join(", "))
                    };
                    return Err(error(format!(
                        "notify: no [[webhook]] named {webhook:?} ({known}; guard optional \
                         hand-offs with has_webhook(name))"
                    )));
                }
                within(
                    "notify",
                    c.effects.notifications.len(),
                    MAX_NOTIFIES,
                    "notifications",
                )?;
                c.charge("notify", webhook.len() + size)?;
                c.effects.notifications.push((webhook.to_owned(), payload));
                Ok(())
            })
        },
    );
    engine.register_fn(
        "has_webhook",
        |ctx: NativeCallContext, webhook: &str| -> Res<bool> {
            with(&ctx, |c| Ok(c.webhooks.iter().any(|w| w == webhook)))
        },
    );
    engine.register_fn("reply_code", |ctx: NativeCallContext| -> Res<Dynamic> {
        with(&ctx, |c| {
            Ok(c.reply_code
                .map_or(Dynamic::UNIT, |code| i64::from(code).into()))
        })
    });
    engine.register_fn(
        "set_timer",
        |ctx: NativeCallContext, name: &str, after: Dynamic| -> Res<()> {
            let after = duration_of(&after)?;
            with(&ctx, |c| {
                let due = c.now.saturating_add(millis(after));
                c.effects.timers_cancelled.retain(|n| n != name);
                c.effects.timers_set.retain(|(n, _)| n != name);
                within(
                    "set_timer",
                    c.effects.timers_set.len(),
                    MAX_TIMERS,
                    "timers",
                )?;
                c.charge("set_timer", name.len())?;
                c.effects.timers_set.push((name.to_owned(), due));
                Ok(())
            })
        },
    );
    engine.register_fn(
        "cancel_timer",
        |ctx: NativeCallContext, name: &str| -> Res<()> {
            with(&ctx, |c| {
                c.charge("cancel_timer", name.len())?;
                c.effects.timers_set.retain(|(n, _)| n != name);
                if !c.effects.timers_cancelled.iter().any(|n| n == name) {
                    c.effects.timers_cancelled.push(name.to_owned());
                }
                Ok(())
            })
        },
    );
    engine.register_fn(
        "finish",
        |ctx: NativeCallContext, outcome: &str| -> Res<()> {
            with(&ctx, |c| {
                c.charge("finish", outcome.len())?;
                c.effects.finished = Some(outcome.to_owned());
                Ok(())
            })
        },
    );
    engine.register_fn("parse_rating", |text: &str, min: i64, max: i64| -> Map {
        let range = (u8::try_from(min), u8::try_from(max));
        let parsed = match range {
            (Ok(min), Ok(max)) if min <= max => parse_rating(text, min, max),
            _ => None,
        };
        let mut map = Map::new();
        map.insert("ok".into(), parsed.is_some().into());
        map.insert(
            "score".into(),
            parsed
                .as_ref()
                .map_or(Dynamic::UNIT, |r| i64::from(r.score).into()),
        );
        map.insert(
            "comment".into(),
            parsed.map_or_else(String::new, |r| r.comment).into(),
        );
        map
    });
    engine.register_fn(
        "record_rating",
        |ctx: NativeCallContext, map: Map| -> Res<()> {
            let score = map
                .get("score")
                .and_then(|s| s.as_int().ok())
                .ok_or_else(|| error("record_rating: `score` must be an integer"))?;
            let msisdn = match map_str("record_rating", &map, "msisdn")? {
                m if m.is_empty() => None,
                m => Some(m),
            };
            let operator = map_str("record_rating", &map, "operator")?;
            let channel = map_str("record_rating", &map, "channel")?;
            let comment = map_str("record_rating", &map, "comment")?;
            with(&ctx, |c| {
                let Scale { kind, min, max } = &c.scale;
                let score = (u8::try_from(score).ok())
                    .filter(|s| (min..=max).contains(&s))
                    .ok_or_else(|| {
                        error(format!(
                            "record_rating: score {score} is outside the flow's {kind} scale \
                             {min}..={max} (see fn scale())"
                        ))
                    })?;
                within(
                    "record_rating",
                    c.effects.ratings.len(),
                    MAX_RECORDS,
                    "ratings",
                )?;
                let text = [
                    msisdn.as_deref().unwrap_or(""),
                    &operator,
                    &channel,
                    &comment,
                ];
                c.charge("record_rating", text.iter().map(|t| t.len()).sum())?;
                c.effects.ratings.push(RatingRecord {
                    score,
                    msisdn,
                    operator,
                    channel,
                    comment,
                });
                Ok(())
            })
        },
    );
    engine.register_fn(
        "record_incident",
        |ctx: NativeCallContext, map: Map| -> Res<()> {
            let value = to_json(&Dynamic::from_map(map))?;
            with(&ctx, |c| {
                within(
                    "record_incident",
                    c.effects.incidents.len(),
                    MAX_RECORDS,
                    "incidents",
                )?;
                // Stored twice: the record, and the conversation's incident as it stands.
                c.charge("record_incident", 2 * value.to_string().len())?;
                c.effects.incidents.push(value);
                Ok(())
            })
        },
    );
    engine.register_fn(
        "start_flow",
        |ctx: NativeCallContext, flow: &str, event: Map| -> Res<()> {
            let value = to_json(&Dynamic::from_map(event))?;
            with(&ctx, |c| {
                within(
                    "start_flow",
                    c.effects.flows_started.len(),
                    MAX_STARTS,
                    "flows",
                )?;
                c.charge("start_flow", flow.len() + value.to_string().len())?;
                c.effects.flows_started.push((flow.to_owned(), value));
                Ok(())
            })
        },
    );
    engine.register_fn("now", |ctx: NativeCallContext| -> Res<i64> {
        with(&ctx, |c| Ok(c.now))
    });
    engine.register_fn("local_hour", |ctx: NativeCallContext| -> Res<i64> {
        with(&ctx, |c| {
            let at = jiff::Timestamp::from_millisecond(c.now)
                .map_err(|e| error(format!("local_hour: {e}")))?;
            Ok(i64::from(at.to_zoned(c.timezone.clone()).hour()))
        })
    });
    engine.register_fn(
        "seconds_until_local",
        |ctx: NativeCallContext, hour: i64| -> Res<i64> {
            let hour = i8::try_from(hour)
                .ok()
                .filter(|h| (0..24).contains(h))
                .ok_or_else(|| error(format!("seconds_until_local: hour {hour} is not 0..=23")))?;
            with(&ctx, |c| {
                let now = jiff::Timestamp::from_millisecond(c.now)
                    .map_err(|e| error(format!("seconds_until_local: {e}")))?
                    .to_zoned(c.timezone.clone());
                let mut target = now
                    .with()
                    .hour(hour)
                    .minute(0)
                    .second(0)
                    .subsec_nanosecond(0)
                    .build()
                    .map_err(|e| error(format!("seconds_until_local: {e}")))?;
                if target <= now {
                    target = target
                        .checked_add(jiff::Span::new().days(1))
                        .map_err(|e| error(format!("seconds_until_local: {e}")))?;
                }
                Ok((target.timestamp().as_second() - now.timestamp().as_second()).max(0))
            })
        },
    );
    engine.register_fn(
        "days_since_last",
        |ctx: NativeCallContext, flow: &str, msisdn: &str| -> Res<f64> {
            let msisdn = normalize_msisdn(msisdn).unwrap_or_else(|| msisdn.to_owned());
            with(&ctx, |c| {
                Ok(c.lookup
                    .last_conversation_at(flow, &msisdn)
                    .map_or(-1.0, |at| (c.now - at) as f64 / 86_400_000.0))
            })
        },
    );
    engine.register_fn(
        "opt_out",
        |ctx: NativeCallContext, msisdn: &str| -> Res<()> {
            let msisdn = normalize_msisdn(msisdn)
                .ok_or_else(|| error(format!("opt_out: {msisdn:?} is not an MSISDN")))?;
            with(&ctx, |c| {
                c.charge("opt_out", msisdn.len())?;
                c.effects.opt_ins.retain(|m| *m != msisdn);
                c.effects.opt_outs.push(msisdn);
                Ok(())
            })
        },
    );
    engine.register_fn(
        "opt_in",
        |ctx: NativeCallContext, msisdn: &str| -> Res<()> {
            let msisdn = normalize_msisdn(msisdn)
                .ok_or_else(|| error(format!("opt_in: {msisdn:?} is not an MSISDN")))?;
            with(&ctx, |c| {
                c.charge("opt_in", msisdn.len())?;
                c.effects.opt_outs.retain(|m| *m != msisdn);
                c.effects.opt_ins.push(msisdn);
                Ok(())
            })
        },
    );
    engine.register_fn(
        "is_opted_out",
        |ctx: NativeCallContext, msisdn: &str| -> Res<bool> {
            let msisdn = normalize_msisdn(msisdn).unwrap_or_else(|| msisdn.to_owned());
            with(&ctx, |c| Ok(c.opted_out(&msisdn)))
        },
    );
    engine.register_fn("log", |ctx: NativeCallContext, text: &str| -> Res<()> {
        with(&ctx, |c| {
            if let Some(line) = c.log_line(text) {
                c.effects.logs.push(line);
            }
            Ok(())
        })
    });
    engine.register_fn("parse_duration", |value: Dynamic| -> Res<i64> {
        duration_of(&value).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
}
