//! Reports at scale, and from the store: 100 000 ratings computed from raw data, the same
//! report from a store on disk, and the report from the tallies equal to the one from the
//! raw records. The data sets are `tests.rs`'.

use jiff::civil::date;
use jiff::tz::TimeZone;

use super::csi::{self, CsiOptions};
use super::query::{Grouping, Query, day_start};
use super::{CsiData, SurveySend};

use super::tests::{Rng, csi_of, november, rating, zone};

/// Not a benchmark, a guard: the report over 100k ratings (plus as many sends) is computed
/// from raw data in well under a few seconds even in a debug build. The measured time is
/// printed (`cargo test --lib report_of_100k -- --nocapture`).
#[test]
fn report_of_100k_ratings() {
    let ops = ["op-11", "op-17", "op-23", "op-31", "op-42"];
    let comments = [
        "",
        "Долго ждать на линии",
        "Вежливый оператор, спасибо",
        "Xizmat juda yaxshi",
        "",
    ];
    let zone = zone();
    let start = day_start(&zone, date(2026, 9, 1));
    let mut rng = Rng(42);
    let mut data = CsiData::default();
    for i in 0..100_000i64 {
        let at = start + i * 77_760; // 100k over 90 days
        let op = ops[rng.below(5) as usize];
        let score = rng.score([4, 9, 20, 50, 100]);
        data.ratings.push(rating(
            at,
            score,
            op,
            "call",
            comments[rng.below(5) as usize],
        ));
        data.sends.push(SurveySend {
            at,
            operator: op.into(),
            channel: "call".into(),
            delivered: true,
        });
    }
    let began = std::time::Instant::now();
    let q = Query {
        from: date(2026, 9, 1),
        ..november(Grouping::Operator)
    };
    let r = csi_of(&data, &q);
    let elapsed = began.elapsed();
    println!("CSI report over 100k ratings + 100k sends: {elapsed:?}");
    assert_eq!(r.total.responses, 100_000);
    assert!(elapsed < std::time::Duration::from_secs(30), "{elapsed:?}");
}

/// The store side of the same measurement: 100k rated survey conversations (each with its
/// question in the timeline) in a sled store, then the CSI report of the last 30 of 90 days.
/// Ignored by default (seeding takes a while in a debug build); run with
/// `cargo test --lib report_from_store_100k -- --ignored --nocapture`.
#[test]
#[ignore]
fn report_from_store_100k() {
    use crate::store::{Commit, Conversation, ConversationStatus, Direction, Store, TimelineEntry};
    let store = Store::temporary().unwrap();
    let zone = zone();
    let start = day_start(&zone, date(2026, 9, 1));
    let ops = ["op-11", "op-17", "op-23", "op-31", "op-42"];
    let mut rng = Rng(7);
    let seeding = std::time::Instant::now();
    for i in 0..100_000u64 {
        let at = start + i as i64 * 77_760;
        let op = ops[rng.below(5) as usize];
        let id = i + 1;
        let mut commit = Commit {
            conversation: Some(Conversation {
                id,
                flow: "survey".into(),
                flow_version: "v".into(),
                state: serde_json::json!({"msisdn": "998901234567", "operator": op,
                                          "channel": "call", "comment": true}),
                parties: vec![],
                status: ConversationStatus::Finished {
                    outcome: "rated".into(),
                },
                created_at: at,
                updated_at: at,
                ..Default::default()
            }),
            ..Commit::default()
        };
        commit.timeline.push((
            id,
            TimelineEntry {
                at,
                direction: Direction::Out,
                party: "998901234567".into(),
                text: "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу".into(),
                status: "delivered".into(),
                message_id: Some(id),
            },
        ));
        commit.ratings.push(rating(
            at + 60_000,
            rng.score([4, 9, 20, 50, 100]),
            op,
            "call",
            if i % 4 == 0 {
                "Долго ждать на линии"
            } else {
                ""
            },
        ));
        store.commit(commit).unwrap();
    }
    println!("seeded 100k conversations in {:?}", seeding.elapsed());
    let q = Query {
        from: date(2026, 11, 1),
        ..november(Grouping::Operator)
    };
    let began = std::time::Instant::now();
    let data = super::source::csi_data(&store, &q, &zone).unwrap();
    let loaded = began.elapsed();
    let r = csi_of(&data, &q);
    println!(
        "CSI report from the store, 30 of 90 days: load {loaded:?} ({} ratings, {} sends of the \
         history window), total {:?}",
        data.ratings.len(),
        data.sends.len(),
        began.elapsed()
    );
    assert!(r.total.responses > 30_000);
}

/// The report from the store's tallies is the report from its raw records: 400 surveys over
/// October and November through the store's own write paths (question queued, its outcome,
/// receipts delivered, undeliverable or none, a rating with or without a comment, or no
/// answer), compared document to document for every grouping, across a checkpoint and a
/// restart in another zone (which recounts the tallies).
#[test]
fn the_report_from_tallies_equals_the_report_from_raw_records() {
    use super::source::{csi_data, csi_records};
    use crate::store::{
        Commit, Conversation, ConversationStatus, Direction, OutMessage, OutboxOutcome, PartState,
        Store, TimelineEntry,
    };
    // sled lets go of a dropped store's lock through deferred reclamation, which can lag.
    let open_in = |dir: &std::path::Path, zone: &TimeZone| {
        for _ in 0..100 {
            match Store::open_in(dir, zone) {
                Err(crate::store::StoreError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => return other.unwrap(),
            }
        }
        panic!("{} stays locked", dir.display())
    };
    let zone = zone();
    let dir = std::env::temp_dir().join(format!("smsflow-report-tallies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    drop(open_in(&dir, &TimeZone::UTC));
    let store = open_in(&dir, &zone);
    let start = day_start(&zone, date(2026, 10, 1));
    let ops = ["op-11", "op-17", "op-23", "(none)", ""];
    let mut rng = Rng(11);
    for i in 0..400u64 {
        let id = 1_000 + i;
        let at = start + (i as i64) * 13_000_000 + rng.below(3_600_000) as i64;
        let op = ops[rng.below(5) as usize];
        let channel = ["call", "chat"][rng.below(2) as usize];
        let mut c = Conversation {
            id,
            flow: "survey".into(),
            flow_version: "v".into(),
            state: serde_json::json!({"operator": op, "channel": channel}),
            parties: vec!["998901234567".into()],
            created_at: at,
            updated_at: at,
            ..Default::default()
        };
        let question = OutMessage {
            id: 10_000 + i,
            conversation: id,
            to: "998901234567".into(),
            text: "Оцените".into(),
            created_at: at,
            flow: "survey".into(),
            opening: true,
        };
        store
            .commit(Commit {
                conversation: Some(c.clone()),
                timeline: vec![(
                    id,
                    TimelineEntry {
                        at,
                        direction: Direction::Out,
                        party: "998901234567".into(),
                        text: "Оцените".into(),
                        status: crate::store::TimelineStatus::Queued,
                        message_id: Some(question.id),
                    },
                )],
                outbox: vec![question.clone()],
                ..Commit::default()
            })
            .unwrap();
        let smsc_id = format!("m{i}");
        store
            .outbox_finished(&[OutboxOutcome {
                message: question,
                status: "sent".into(),
                smsc_ids: vec![smsc_id.clone()],
                at: 0,
            }])
            .unwrap();
        match rng.below(10) {
            0 => {}
            1 => {
                store
                    .apply_receipt(&[smsc_id], PartState::Undeliverable, 0)
                    .unwrap();
            }
            _ => {
                store
                    .apply_receipt(&[smsc_id], PartState::Delivered, 0)
                    .unwrap();
            }
        }
        if i == 200 {
            store.checkpoint().unwrap();
        }
        let answered = at + 60_000 + rng.below(86_400_000) as i64;
        c.updated_at = answered;
        let mut finish = Commit::default();
        if rng.below(10) < 7 {
            c.status = ConversationStatus::Finished {
                outcome: "rated".into(),
            };
            let comment = if rng.below(3) == 0 {
                "долго ждать, но вежливо"
            } else {
                ""
            };
            let mut r = rating(
                answered,
                rng.score([5, 10, 25, 55, 100]),
                op,
                channel,
                comment,
            );
            r.conversation = id;
            finish.ratings.push(r);
        } else {
            c.status = ConversationStatus::Finished {
                outcome: "no_response".into(),
            };
        }
        finish.conversation = Some(c);
        store.commit(finish).unwrap();
    }
    store.flush_sync().unwrap();
    let compare = |store: &Store| {
        for by in [
            Grouping::Operator,
            Grouping::Channel,
            Grouping::Day,
            Grouping::Week,
        ] {
            let q = november(by);
            let tallied = csi_data(store, &q, &zone).unwrap();
            assert!(!tallied.tallies.is_empty(), "the tallies are used");
            let raw = csi_records(store, &q, &zone).unwrap();
            assert!(raw.tallies.is_empty());
            let a = serde_json::to_value(csi_of(&tallied, &q)).unwrap();
            let b = serde_json::to_value(csi_of(&raw, &q)).unwrap();
            assert_eq!(a, b, "by {by:?}");
        }
    };
    compare(&store);
    // Reopened in UTC the tallies are recounted, and still agree (in UTC).
    drop(store);
    let utc = open_in(&dir, &TimeZone::UTC);
    for by in [Grouping::Operator, Grouping::Day] {
        let q = november(by);
        let tallied = csi_data(&utc, &q, &TimeZone::UTC).unwrap();
        assert!(!tallied.tallies.is_empty());
        let raw = csi_records(&utc, &q, &TimeZone::UTC).unwrap();
        assert_eq!(
            serde_json::to_value(csi::compute(
                &q,
                &TimeZone::UTC,
                &tallied,
                &CsiOptions::default()
            ))
            .unwrap(),
            serde_json::to_value(csi::compute(
                &q,
                &TimeZone::UTC,
                &raw,
                &CsiOptions::default()
            ))
            .unwrap(),
            "UTC, by {by:?}"
        );
    }
    drop(utc);
    let store = open_in(&dir, &zone);
    compare(&store);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
