//! Store commit cost: what one conversation step costs in `Store::commit`, without the flush
//! (the service batches durability across steps).
//!
//! `cargo bench --bench store`. The store is a real directory under the temp dir; sled's
//! background flusher runs as it does in the service.
//!
//! What to expect (2-core shared box, load 2-5): `survey_step_rated` ~60-75 µs of thread CPU,
//! 70-120 µs wall; an empty commit 2-5 µs. The cost is sled 0.34's: each write inside a
//! transaction is ~8-12 µs (a read of the old value, then the insert; appends at a tree's
//! right edge split nodes often), and encoding plus index upkeep is a few percent. Fewer
//! writes per step is the lever, not faster code around them.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use smsflow::store::{
    Commit, Conversation, Direction, OutMessage, Rating, Store, TimelineEntry, Timer,
};

const ASK: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, \
    где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";
const THANKS: &str =
    "Спасибо за вашу оценку! Мы ценим ваш отзыв и постараемся улучшить наше обслуживание.";
const REPLY: &str = "4. Оператор был вежлив, но долго пришлось ждать на линии.";
/// Open conversations the steps cycle through.
const POPULATION: u64 = 1_000;

fn msisdn(id: u64) -> String {
    format!("99890{:07}", id % 10_000_000)
}

fn conversation(id: u64, at: i64) -> Conversation {
    Conversation {
        id,
        flow: "survey".into(),
        flow_version: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        state: json!({"event": {"id": format!("call-{id}"), "msisdn": msisdn(id),
            "operator": "op-17", "channel": "call", "comment": true}, "not_understood": 0}),
        parties: vec![msisdn(id)],
        event_key: Some(format!("call-{id}")),
        created_at: at,
        updated_at: at,
        ..Default::default()
    }
}

/// The first step: an HTTP event opens a survey, asks, and sets the 24 h expiry.
fn start(store: &Store, id: u64, at: i64) -> Commit {
    let out = store.next_id().expect("next_id");
    Commit {
        conversation: Some(conversation(id, at)),
        timers_set: vec![Timer {
            conversation: id,
            name: "expire".into(),
            due: at + 86_400_000,
        }],
        timeline: vec![(
            id,
            TimelineEntry {
                at,
                direction: Direction::Out,
                party: msisdn(id),
                text: ASK.into(),
                status: "queued".into(),
                message_id: Some(out),
            },
        )],
        outbox: vec![OutMessage {
            id: out,
            conversation: id,
            to: msisdn(id),
            text: ASK.into(),
            created_at: at,
            flow: "survey".into(),
            opening: true,
        }],
        event_key: Some(("survey".into(), format!("call-{id}"), id)),
        ..Commit::default()
    }
}

/// The rated reply: state update, the MO and the thanks on the timeline, the thanks in the
/// outbox, the expiry moved, a rating.
fn rated(store: &Store, id: u64, at: i64) -> Commit {
    let out = store.next_id().expect("next_id");
    let mut c = conversation(id, 0);
    c.state["score"] = json!(4);
    c.updated_at = at;
    Commit {
        conversation: Some(c),
        timers_set: vec![Timer {
            conversation: id,
            name: "expire".into(),
            due: at + 60_000,
        }],
        timeline: vec![(
            id,
            TimelineEntry {
                at,
                direction: Direction::In,
                party: msisdn(id),
                text: REPLY.into(),
                status: "received".into(),
                message_id: None,
            },
        )],
        outbox: vec![OutMessage {
            id: out,
            conversation: id,
            to: msisdn(id),
            text: THANKS.into(),
            created_at: at,
            flow: "survey".into(),
            opening: true,
        }],
        ratings: vec![Rating {
            conversation: id,
            flow: "survey".into(),
            at,
            msisdn: msisdn(id),
            score: 4,
            operator: "op-17".into(),
            channel: "call".into(),
            comment: "Оператор был вежлив, но долго пришлось ждать на линии.".into(),
        }],
        ..Commit::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("smsflow-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = Store::open(&dir).expect("open");
        for id in 1..=POPULATION {
            store.commit(start(&store, id, 0)).expect("commit");
        }
        let mut group = c.benchmark_group("store_commit");
        let mut at = 1;
        group.bench_function("survey_step_rated", |b| {
            b.iter_batched(
                || {
                    at += 1;
                    rated(&store, 1 + at as u64 % POPULATION, at)
                },
                |commit| store.commit(black_box(commit)).expect("commit"),
                criterion::BatchSize::SmallInput,
            )
        });
        let mut id = POPULATION;
        group.bench_function("survey_start", |b| {
            b.iter_batched(
                || {
                    id += 1;
                    start(&store, id, id as i64)
                },
                |commit| store.commit(black_box(commit)).expect("commit"),
                criterion::BatchSize::SmallInput,
            )
        });
        group.finish();
        store.flush_sync().expect("flush");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
