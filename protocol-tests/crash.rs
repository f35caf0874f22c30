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

use smsflow::sim::{self, Mo, SimConfig, Submitted};
use smsflow::store::Store;
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::http::raw;
use crate::run::{ServiceSetup, service_setup, spawn_service};
use crate::util::{TempDir, WAIT, until, until_ready};

const SURVEYS: usize = 200;
const WINDOW: usize = 50;
const QUESTION: &str = "Спасибо за ваш звонок. Оцените";
const THANKS: &str = "Спасибо за вашу оценку!";

fn msisdn(i: usize) -> String {
    format!("99893{:07}", i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_burst_loses_no_reply_and_rates_each_once() {
    let smsc = sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(10),
        retry_delay: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap();
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
    let count = |prefix: &str| {
        let mut per: HashMap<String, usize> = HashMap::new();
        for m in submitted.lock().unwrap().iter() {
            if m.text.starts_with(prefix) {
                *per.entry(m.destination.clone()).or_default() += 1;
            }
        }
        per
    };

    let dir = TempDir::new("crash");
    let ServiceSetup {
        config, data, http, ..
    } = service_setup(dir.path(), smsc.local_addr().port(), &[]);

    let mut service = spawn_service(&config);
    until_ready(http).await;
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
    let pid = service.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    assert!(service.wait().await.unwrap().success());
    let store = Store::open(&data).unwrap();
    let ratings = store.ratings(i64::MIN, i64::MAX).unwrap();
    assert_eq!(ratings.len(), SURVEYS, "one rating per reply");
    let mut by_subscriber: HashMap<&str, u8> = HashMap::new();
    for r in &ratings {
        assert!(
            by_subscriber.insert(&r.msisdn, r.score).is_none(),
            "{} rated twice",
            r.msisdn
        );
    }
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
    println!(
        "crash test: {} ratings, {} deliver_sm redelivered by the SMSC, {duplicates} MT sent twice, {stray} other MT",
        ratings.len(),
        smsc.stats().mo_redelivered
    );
    assert_eq!(stray, 0, "no reply was answered as a stray message");
    // Only thanks submitted but not yet recorded as accepted at the kill may go twice, and at
    // most a window of replies has thanks in flight.
    assert!(duplicates <= WINDOW, "{duplicates} messages sent twice");
    collector.abort();
    smsc.shutdown().await;
}
