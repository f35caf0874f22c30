//! The demo's history: days of simulated surveys and staff calls run through the same engine
//! and store as the live part, on a fake clock, so the dashboard has trends to draw and an
//! anomaly to find.
//!
//! Nothing goes over SMPP here: each step's messages are taken from the outbox and recorded
//! as accepted and (mostly) delivered, as the SMSC would have; subscribers answer with the
//! simulator's replies; staff answer `OK` and later `ГОТОВО`, or let the call escalate;
//! timers fire when the fake
//! clock passes them. One operator (`op-31`) is a little worse than the others, and one week
//! (the second to last) is bad for everyone, so the report has something to show.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::flow::engine::{EngineError, FlowEngine};
use crate::sim::SplitMix64;
use crate::sim::handsets::COMMENTS;
use crate::store::{Millis, OutboxOutcome, PartState, StoreError};

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;
const DAY: Millis = 24 * HOUR;

/// How much history to make.
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub days: u32,
    pub surveys_per_day: u32,
    pub incidents_per_day: u32,
    pub seed: u64,
    /// Where the reports the demo prints begin: [`Made::in_report`] counts from here.
    pub report_from: Millis,
}

/// What the history holds, for the demo's summary lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Made {
    pub surveys: u32,
    /// Subscribers' answers (every one a rating).
    pub replies: u32,
    /// Staff calls from call buttons.
    pub incidents: u32,
    /// OKs from staff, supervisors' included.
    pub acknowledgements: u32,
    /// Of the above, what happened from [`History::report_from`] on: what the reports count
    /// of the history.
    pub in_report: InReport,
}

/// The part of the history inside the reports' range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InReport {
    pub surveys: u32,
    pub replies: u32,
    pub incidents: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One thing that happens at a moment of the fake clock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    Survey {
        key: String,
        msisdn: String,
        operator: &'static str,
        channel: &'static str,
    },
    /// A subscriber's or a staff member's SMS.
    Reply {
        from: String,
        text: String,
    },
    Incident {
        key: String,
        index: u32,
    },
}

/// Runs `history` through `engine`, ending before `until` (the live part's start).
pub fn make(engine: &FlowEngine, history: &History, until: Millis) -> Result<Made, HistoryError> {
    let mut rng = SplitMix64::new(history.seed ^ 0x6869_7374);
    let mut made = Made::default();
    let first_day = until - Millis::from(history.days) * DAY;
    // Scheduled by time, then by the order they were planned (equal times keep it).
    let mut queue: BinaryHeap<Reverse<(Millis, u64, Happening)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut plan = |queue: &mut BinaryHeap<_>, at: Millis, what: Happening| {
        order += 1;
        queue.push(Reverse((at, order, what)));
    };
    for day in 0..history.days {
        let start = first_day + Millis::from(day) * DAY;
        for i in 0..history.surveys_per_day {
            let operator = OPERATORS[(i as usize) % OPERATORS.len()];
            let at = start + 8 * HOUR + (rng.next_u64() % (11 * HOUR as u64)) as Millis;
            let msisdn = format!("99893{:07}", day * 1000 + i);
            plan(
                &mut queue,
                at,
                Happening::Survey {
                    key: format!("history-{day}-{i}"),
                    msisdn: msisdn.clone(),
                    operator,
                    channel: CHANNELS[(i as usize / OPERATORS.len()) % CHANNELS.len()],
                },
            );
            // Three in four answer, within half an hour.
            if rng.next_f64() < 0.75 {
                let bad_week = day + 14 >= history.days && day + 7 < history.days;
                let (score, text) = reply(&mut rng, operator == "op-31", bad_week);
                let answered = at + MINUTE + (rng.next_u64() % (30 * MINUTE as u64)) as Millis;
                plan(
                    &mut queue,
                    answered,
                    Happening::Reply { from: msisdn, text },
                );
                // A 1–2 calls the supervisor (the demo's survey setting), who mostly takes it.
                if score <= 2 && rng.next_f64() < 0.6 {
                    let taken = answered + (2 + rng.next_u64() % 6) as Millis * MINUTE;
                    plan(
                        &mut queue,
                        taken,
                        Happening::Reply {
                            from: SUPERVISOR.to_owned(),
                            text: "OK".to_owned(),
                        },
                    );
                    let done = taken + (5 + rng.next_u64() % 20) as Millis * MINUTE;
                    plan(
                        &mut queue,
                        done,
                        Happening::Reply {
                            from: SUPERVISOR.to_owned(),
                            text: DONE.to_owned(),
                        },
                    );
                }
            }
        }
        for i in 0..history.incidents_per_day {
            let index = day * 100 + i;
            let at = start + 7 * HOUR + (rng.next_u64() % (14 * HOUR as u64)) as Millis;
            plan(
                &mut queue,
                at,
                Happening::Incident {
                    key: format!("history-inc-{day}-{i}"),
                    index,
                },
            );
            // Level 1 takes most calls within a minute or two; some escalate; a few nobody
            // takes.
            let roll = rng.next_f64();
            let (level, delay) = if roll < 0.7 {
                (1, 20 + rng.next_u64() % 100)
            } else if roll < 0.92 {
                (2, 190 + rng.next_u64() % 120)
            } else {
                (0, 0)
            };
            if level > 0 {
                let taken = at + delay as Millis * 1000;
                plan(
                    &mut queue,
                    taken,
                    Happening::Reply {
                        from: staff(index, level),
                        text: "OK".to_owned(),
                    },
                );
                // Done within the quarter hour: the call is resolved.
                let done = taken + (2 + rng.next_u64() % 12) as Millis * MINUTE;
                plan(
                    &mut queue,
                    done,
                    Happening::Reply {
                        from: staff(index, level),
                        text: DONE.to_owned(),
                    },
                );
            }
        }
    }
    while let Some(Reverse((at, _, what))) = queue.pop() {
        catch_up(engine, &mut rng, at)?;
        match what {
            Happening::Survey {
                key,
                msisdn,
                operator,
                channel,
            } => {
                let event = serde_json::json!({
                    "id": key, "msisdn": msisdn, "operator": operator, "channel": channel,
                    "comment": true,
                });
                engine.start(at, "survey", event, Some(&key))?;
                made.surveys += 1;
                made.in_report.surveys += u32::from(at >= history.report_from);
            }
            Happening::Reply { from, text } => {
                engine.reply(at, &from, &text, at)?;
                match text.as_str() {
                    "OK" => made.acknowledgements += 1,
                    DONE => {}
                    _ => {
                        made.replies += 1;
                        made.in_report.replies += u32::from(at >= history.report_from);
                    }
                }
            }
            Happening::Incident { key, index } => {
                let (name, location) = BUTTONS[index as usize % BUTTONS.len()];
                let event = serde_json::json!({
                    "id": key,
                    "button": {"id": 500 + index, "name": name, "location": location, "type": 102},
                    "concentrator": {"host": "NURSE-PC-3", "ip": "10.0.0.17", "user": "station"},
                    "levels": [[staff(index, 1)], [staff(index, 2)]],
                    "ack_timeout": "3m",
                });
                engine.start(at, "escalation", event, Some(&key))?;
                made.incidents += 1;
                made.in_report.incidents += u32::from(at >= history.report_from);
            }
        }
        deliver_outbox(engine, &mut rng, at)?;
    }
    catch_up(engine, &mut rng, until - 1)?;
    Ok(made)
}

const OPERATORS: [&str; 5] = ["op-11", "op-17", "op-23", "op-31", "op-42"];
const CHANNELS: [&str; 4] = ["call", "chat", "ticket", "order"];
const BUTTONS: [(&str, &str); 4] = [
    ("Палата 315", "терапевтическое отделение"),
    ("Палата 204", "хирургия"),
    ("Стол 7", "ресторан, зал 1"),
    ("Касса 2", "магазин"),
];

/// What staff answer when a call is done (escalation.rhai's resolve stage).
const DONE: &str = "ГОТОВО";

/// The first supervisor of the demo's survey setting.
const SUPERVISOR: &str = "998977000001";

/// The staff member called at `level` for incident `index`: each place has its own nurse (or
/// waiter) on level 1 and a senior on level 2.
fn staff(index: u32, level: u32) -> String {
    format!("998914{level}{:05}", index as usize % BUTTONS.len())
}

/// A subscriber's answer and its score: mostly 4–5, lower for the worse operator and in the
/// bad week.
fn reply(rng: &mut SplitMix64, worse: bool, bad_week: bool) -> (usize, String) {
    let weights: [u32; 5] = match (worse, bad_week) {
        (_, true) => [25, 25, 25, 15, 10],
        (true, false) => [8, 12, 25, 30, 25],
        (false, false) => [2, 3, 10, 35, 50],
    };
    let index = rng.weighted(weights.iter().copied());
    let score = index + 1;
    if rng.next_f64() < 0.4
        && let Some(comment) = COMMENTS.get(index).and_then(|c| rng.pick(c))
    {
        return (score, (*comment).to_owned());
    }
    (score, score.to_string())
}

/// Fires every timer due by `now` and delivers what the steps sent.
fn catch_up(engine: &FlowEngine, rng: &mut SplitMix64, now: Millis) -> Result<(), HistoryError> {
    loop {
        let fired = engine.fire_due_timers(now)?;
        deliver_outbox(engine, rng, now)?;
        if fired.is_empty() {
            return Ok(());
        }
    }
}

/// Every queued message accepted by the "SMSC" and 95 % of them delivered.
fn deliver_outbox(
    engine: &FlowEngine,
    rng: &mut SplitMix64,
    now: Millis,
) -> Result<(), HistoryError> {
    let store = engine.store();
    loop {
        let batch = store.outbox(256)?;
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes: Vec<OutboxOutcome> = batch
            .into_iter()
            .map(|message| OutboxOutcome {
                smsc_ids: vec![format!("history-{}", message.id)],
                message,
                status: crate::store::MessageStatus::Sent,
                at: now,
            })
            .collect();
        store.outbox_finished(&outcomes)?;
        for o in &outcomes {
            let state = if rng.next_f64() < 0.95 {
                PartState::Delivered
            } else {
                PartState::Undeliverable
            };
            store.apply_receipt(&o.smsc_ids, state, now)?;
        }
    }
}
