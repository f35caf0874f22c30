//! `kill -9` in the middle of a reply burst: the service binary against the simulator, 200
//! surveys, 200 replies at a window of 50, SIGKILL after half of them were injected, a restart
//! on the same data directory, and the simulator redelivering whatever was not acknowledged.
//!
//! Exactly-once holds for ratings: every reply is rated once. Messages to subscribers are
//! at-least-once: a thanks whose submit_sm was written before the kill but whose acceptance
//! was not yet recorded on disk is sent again after the restart (the SMSC may or may not have
//! had it; smsflow cannot ask). That is at most the thanks in flight, one per reply in the
//! window: 0 to 23 of 200 over eleven runs. The test bounds them by the window and prints how
//! many there were.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smsflow::sim::{Mo, Submitted};
use smsflow::store::Store;
use tokio::task::JoinSet;

use crate::http::raw;
use crate::run::{
    ServiceSetup, ratings_by_subscriber, simulator_and_service, spawn_service, stop_with_sigterm,
};
use crate::util::{WAIT, until, until_ready};

const SURVEYS: usize = 200;
const WINDOW: usize = 50;
const QUESTION: &str = "Спасибо за ваш звонок. Оцените";
const THANKS: &str = "Спасибо за вашу оценку!";

/// The outbox's budget in these tests: one session's window (64, `[[smsc]] window`'s
/// default): what one `kill -9` may send again at most, in parts.
const BUDGET: usize = 64;

/// Parts submitted again: every copy of a text to the same number after its first, counted
/// by its parts.
fn resent_parts(submitted: &[Submitted]) -> usize {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut resent = 0;
    for m in submitted {
        let n = seen.entry((&m.destination, &m.text)).or_default();
        if *n > 0 {
            resent += m.message_ids.len().max(1);
        }
        *n += 1;
    }
    resent
}

/// Every message the simulator is given, gathered (a lag fails the test).
fn collect(
    smsc: &smsflow::sim::SmscHandle,
) -> (Arc<Mutex<Vec<Submitted>>>, tokio::task::JoinHandle<()>) {
    let submitted: Arc<Mutex<Vec<Submitted>>> = Arc::default();
    let collector = tokio::spawn({
        let submitted = submitted.clone();
        let mut rx = smsc.submitted();
        async move {
            loop {
                match rx.recv().await {
                    Ok(m) => submitted.lock().unwrap().push(m),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        panic!("missed {n} submitted messages")
                    }
                    Err(_) => return,
                }
            }
        }
    });
    (submitted, collector)
}

fn msisdn(i: usize) -> String {
    format!("99893{:07}", i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_reply_and_rates_each_once() {
    // Ready before the first event: nothing is submitted before the collector listens.
    let (smsc, _dir, setup, mut service) = simulator_and_service("crash").await;
    let ServiceSetup {
        config, data, http, ..
    } = setup;
    let (submitted, collector) = collect(&smsc);
    let count = |prefix: &str| {
        let mut per: HashMap<String, usize> = HashMap::new();
        for m in submitted.lock().unwrap().iter() {
            if m.text.starts_with(prefix) {
                *per.entry(m.destination.clone()).or_default() += 1;
            }
        }
        per
    };

    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    for i in 0..SURVEYS {
        let body = serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn(i),
            "operator": "op-1", "channel": "call"});
        let resp = raw(
            http,
            "POST",
            "/api/v1/flows/survey/events",
            &json,
            Some(body.to_string().as_bytes()),
        )
        .await;
        assert_eq!(resp.status, 202, "{}", resp.json);
    }
    until(
        || count(QUESTION).len() == SURVEYS,
        "every survey question sent",
    )
    .await;

    // Replies at a window of 50; SIGKILL once half were injected, then a restart.
    let mut outcomes = JoinSet::new();
    for i in 0..SURVEYS {
        if i == SURVEYS / 2 {
            service.start_kill().unwrap();
            let status = service.wait().await.unwrap();
            assert!(!status.success(), "killed, not exited: {status:?}");
            service = spawn_service(&config);
        }
        while outcomes.len() >= WINDOW {
            outcomes.join_next().await.unwrap().unwrap();
        }
        let delivery = smsc
            .inject_mo(Mo {
                source: msisdn(i),
                destination: "5700".into(),
                text: format!("{} ", 1 + i % 5),
            })
            .unwrap();
        outcomes.spawn(async move {
            let status = tokio::time::timeout(WAIT, delivery.outcome())
                .await
                .expect("every reply is acknowledged in the end")
                .unwrap();
            assert!(status.is_ok(), "{status:?}");
        });
    }
    while let Some(done) = outcomes.join_next().await {
        done.unwrap();
    }
    until(
        || count(THANKS).len() == SURVEYS,
        "every subscriber thanked",
    )
    .await;

    // A clean stop, then the store tells what was rated.
    stop_with_sigterm(&mut service).await;
    let by_subscriber = ratings_by_subscriber(&Store::open(&data).unwrap());
    assert_eq!(by_subscriber.len(), SURVEYS, "one rating per reply");
    for i in 0..SURVEYS {
        assert_eq!(
            by_subscriber.get(msisdn(i).as_str()),
            Some(&(1 + (i % 5) as u8)),
            "subscriber {i}'s score"
        );
    }

    let thanks = count(THANKS);
    let questions = count(QUESTION);
    let duplicates: usize = thanks
        .values()
        .chain(questions.values())
        .map(|n| n - 1)
        .sum();
    let stray = submitted
        .lock()
        .unwrap()
        .iter()
        .filter(|m| !m.text.starts_with(QUESTION) && !m.text.starts_with(THANKS))
        .count();
    let resent = resent_parts(&submitted.lock().unwrap());
    println!(
        "crash test: {} ratings, {} deliver_sm redelivered by the SMSC, {duplicates} MT sent twice ({resent} parts; the budget is {BUDGET}), {stray} other MT",
        by_subscriber.len(),
        smsc.stats().mo_redelivered
    );
    assert!(resent <= BUDGET, "{resent} parts sent again after one kill");
    assert_eq!(stray, 0, "no reply was answered as a stray message");
    // Only thanks submitted but not yet recorded as accepted at the kill may go twice, and at
    // most a window of replies has thanks in flight.
    assert!(duplicates <= WINDOW, "{duplicates} messages sent twice");
    collector.abort();
    smsc.shutdown().await;
}

/// An LCG: the kill points of [`kill_9_at_20_random_points_under_mixed_load`] from a seed
/// (`SMSFLOW_CRASH_SEED`, printed), so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// Posts `i`'s survey event until it is answered 202 (the service may be down or dying:
/// the event id makes a retry safe).
async fn post_until_accepted(http: std::net::SocketAddr, i: usize) {
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let body = serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn(i),
        "operator": "op-1", "channel": "call"})
    .to_string();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            crate::http::try_raw(
                http,
                "POST",
                "/api/v1/flows/survey/events",
                &json,
                Some(body.as_bytes()),
            ),
        )
        .await;
        if let Ok(Some(resp)) = attempt
            && resp.status == 202
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {i} never accepted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The long run of the crash test: surveys opened over HTTP, replies over SMPP and new
/// events all at once, with `kill -9` at 20 random points (each followed by a restart on the
/// same data directory). Every acknowledged MO must be rated exactly once and every accepted
/// event must have its conversation. Ignored in CI for its length:
/// `cargo test --release --test protocol-tests kill_9_at_20 -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 20 kills under load (about a minute in release)"]
async fn kill_9_at_20_random_points_under_mixed_load() {
    const SURVEYS: usize = 600;
    const LATE_EVENTS: usize = 200;
    const KILLS: usize = 20;
    let seed = std::env::var("SMSFLOW_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("SMSFLOW_CRASH_SEED={seed}");
    let mut rng = Lcg(seed);
    let (smsc, _dir, setup, mut service) = simulator_and_service("crash-loop").await;
    let (submitted, collector) = collect(&smsc);
    let ServiceSetup {
        config, data, http, ..
    } = setup;
    let mut posts = JoinSet::new();
    for i in 0..SURVEYS {
        while posts.len() >= 16 {
            posts.join_next().await.unwrap().unwrap();
        }
        posts.spawn(post_until_accepted(http, i));
    }
    while let Some(done) = posts.join_next().await {
        done.unwrap();
    }

    // Replies and late events while the killer works.
    let killer = tokio::spawn(async move {
        let mut kills = 0;
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(100 + rng.next(400))).await;
            service.start_kill().unwrap();
            let status = service.wait().await.unwrap();
            assert!(!status.success(), "killed, not exited: {status:?}");
            kills += 1;
            service = spawn_service(&config);
        }
        (kills, service)
    });
    for i in SURVEYS..SURVEYS + LATE_EVENTS {
        posts.spawn(post_until_accepted(http, i));
    }
    let mut replies = JoinSet::new();
    for i in 0..SURVEYS {
        while replies.len() >= WINDOW {
            replies.join_next().await.unwrap().unwrap();
        }
        let delivery = smsc
            .inject_mo(Mo {
                source: msisdn(i),
                destination: "5700".into(),
                text: format!("{}", 1 + i % 5),
            })
            .unwrap();
        replies.spawn(async move {
            // Each kill may cost a redelivery round; the SMSC keeps trying.
            let status = tokio::time::timeout(WAIT * 3, delivery.outcome())
                .await
                .expect("every reply is acknowledged in the end")
                .unwrap();
            assert!(status.is_ok(), "{status:?}");
        });
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while let Some(done) = replies.join_next().await {
        done.unwrap();
    }
    while let Some(done) = posts.join_next().await {
        done.unwrap();
    }
    let (kills, mut service) = killer.await.unwrap();
    until_ready(http).await;

    stop_with_sigterm(&mut service).await;
    let store = Store::open(&data).unwrap();
    // Rated twice fails here, naming the subscriber.
    let by_subscriber = ratings_by_subscriber(&store);
    let lost = (0..SURVEYS)
        .filter(|&i| by_subscriber.get(msisdn(i).as_str()) != Some(&(1 + (i % 5) as u8)))
        .count();
    let events_lost = (0..SURVEYS + LATE_EVENTS)
        .filter(|i| {
            store
                .event_conversation("survey", &format!("call-{i}"))
                .unwrap()
                .is_none()
        })
        .count();
    let resent = resent_parts(&submitted.lock().unwrap());
    println!(
        "crash loop: {kills} kills, {} ratings, {lost} replies lost, 0 rated twice, {events_lost} events lost, {} deliver_sm redelivered, {resent} parts sent again ({:.1} a kill; the budget is {BUDGET})",
        by_subscriber.len(),
        smsc.stats().mo_redelivered,
        resent as f64 / kills.max(1) as f64
    );
    assert_eq!((lost, events_lost), (0, 0));
    assert!(
        resent <= kills * BUDGET,
        "{resent} parts sent again in {kills} kills"
    );
    collector.abort();
    smsc.shutdown().await;
}
