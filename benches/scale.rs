//! The store at scale, straight through its API (no SMPP, no HTTP):
//!
//! 1. `--open N` (default 1 000 000): N survey conversations opened as the survey flow's
//!    event step writes them (state, timer, question in the timeline and the outbox, event key,
//!    the question's outcome with its SMSC id), then the process's RSS.
//! 2. `--ratings M` (default 10 000 000): M ratings written over 90 days (20 operators, two
//!    channels, 5 % with a comment), then a 30-day CSI report by operator from the tallies,
//!    and the same from the raw records.
//!
//! Prints numbers; asserts nothing. `cargo bench --bench scale [-- --open N --ratings M]`
//! (0 skips a part).

use std::time::Instant;

use smsflow::report::csi::{self, CsiOptions};
use smsflow::report::query::day_start;
use smsflow::report::source;
use smsflow::report::{Grouping, Kind, Query};
use smsflow::store::{
    Commit, Conversation, Direction, OutMessage, OutboxOutcome, Rating, Store, TimelineEntry, Timer,
};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let open = arg("--open", 1_000_000);
    let ratings = arg("--ratings", 10_000_000);
    let zone = jiff::tz::TimeZone::get("Asia/Tashkent").expect("bundled tzdb");
    if open > 0 {
        open_conversations(open, &zone);
    }
    if ratings > 0 {
        report_over(ratings, &zone);
    }
}

fn open_conversations(n: usize, zone: &jiff::tz::TimeZone) {
    let dir = std::env::temp_dir().join(format!("smsflow-scale-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir, zone).expect("store");
    let before = rss_mib();
    let started = Instant::now();
    let now = 1_790_000_000_000i64;
    for i in 0..n as u64 {
        let id = store.next_id().expect("id");
        let msisdn = format!("99890{:07}", i);
        let question = OutMessage {
            id: store.next_id().expect("id"),
            conversation: id,
            to: msisdn.clone(),
            text: "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, \
                   где 1 - очень плохо, 5 - отлично. Ваш отзыв важен для нас!"
                .into(),
            created_at: now,
            flow: "survey".into(),
            opening: true,
        };
        let conversation = Conversation {
            id,
            flow: "survey".into(),
            flow_version: "2d91efb0c8a4e6f1d2b3a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809".into(),
            state: serde_json::json!({"msisdn": msisdn, "operator": format!("op-{}", i % 20),
                "channel": "call", "comment": true, "not_understood": 0}),
            parties: vec![msisdn.clone()],
            event_key: Some(format!("call-{i}")),
            created_at: now,
            updated_at: now,
            ..Default::default()
        };
        store
            .commit(Commit {
                timers_set: vec![Timer {
                    conversation: id,
                    name: "expire".into(),
                    due: now + 86_400_000,
                }],
                timeline: vec![(
                    id,
                    TimelineEntry {
                        at: now,
                        direction: Direction::Out,
                        party: msisdn.clone(),
                        text: question.text.clone(),
                        status: "queued".into(),
                        message_id: Some(question.id),
                    },
                )],
                outbox: vec![question.clone()],
                event_key: Some(("survey".into(), format!("call-{i}"), id)),
                conversation: Some(conversation),
                ..Commit::default()
            })
            .expect("commit");
        store
            .outbox_finished(&[OutboxOutcome {
                message: question,
                status: "sent".into(),
                smsc_ids: vec![format!("{:x}", 0x5000_0000u64 + i)],
                at: 0,
            }])
            .expect("outcome");
    }
    store.checkpoint().expect("checkpoint");
    let open = store.open_conversations(None).expect("open").len();
    println!(
        "open: {open} survey conversations in {:.1} s ({:.1} µs each); RSS {:.0} MiB ({:.0} MiB before)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e6 / n as f64,
        rss_mib(),
        before
    );
    drop(store);
    let started = Instant::now();
    let store = Store::open_in(&dir, zone).expect("reopen");
    println!(
        "  reopened in {:.1} s, {} open; RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        store.open_conversations(None).expect("open").len(),
        rss_mib()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn report_over(n: usize, zone: &jiff::tz::TimeZone) {
    let dir = std::env::temp_dir().join(format!("smsflow-scale-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_in(&dir, zone).expect("store");
    let first = jiff::civil::date(2026, 9, 1);
    let start = day_start(zone, first);
    let span = 90 * 86_400_000i64;
    let started = Instant::now();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let per_commit = 100;
    for chunk in 0..n.div_ceil(per_commit) {
        let mut commit = Commit::default();
        for j in 0..per_commit.min(n - chunk * per_commit) {
            let i = (chunk * per_commit + j) as u64;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            commit.ratings.push(Rating {
                conversation: i + 1,
                flow: "survey".into(),
                at: start + (i as i64 * span / n as i64),
                msisdn: "998901234567".into(),
                score: [5, 5, 5, 4, 4, 3, 2, 1, 5, 4][(x % 10) as usize],
                operator: format!("op-{}", x % 20),
                channel: if x.is_multiple_of(3) { "chat" } else { "call" }.into(),
                comment: if x.is_multiple_of(20) {
                    "Оператор был вежлив, но долго пришлось ждать на линии.".into()
                } else {
                    String::new()
                },
            });
        }
        store.commit(commit).expect("commit");
    }
    store.checkpoint().expect("checkpoint");
    println!(
        "ratings: {n} written in {:.1} s ({:.2} µs each); RSS {:.0} MiB",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e6 / n as f64,
        rss_mib()
    );
    let query = Query {
        kind: Kind::Csi,
        from: jiff::civil::date(2026, 10, 31),
        to: jiff::civil::date(2026, 11, 29),
        by: Grouping::Operator,
        flow: "survey".to_owned(),
    };
    for (name, from_tallies) in [("tallies", true), ("raw records", false)] {
        let started = Instant::now();
        let data = if from_tallies {
            source::csi_data(&store, &query, zone)
        } else {
            source::csi_records(&store, &query, zone)
        }
        .expect("data");
        let loaded = started.elapsed();
        let report = csi::compute(&query, zone, &data, &CsiOptions::default());
        println!(
            "  30-day CSI report by operator from the {name}: {:.1} ms ({:.1} ms reading; {} responses, {} groups, {} comments read)",
            started.elapsed().as_secs_f64() * 1e3,
            loaded.as_secs_f64() * 1e3,
            report.total.responses,
            report.groups.len(),
            data.comments.len()
                + data
                    .ratings
                    .iter()
                    .filter(|r| !r.comment.is_empty())
                    .count(),
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
