//! What users do at once, against `smsflow run` as a process: a contact center posting events
//! from many agents while a burst of survey replies comes in over SMPP.

use smsflow::sim::Mo;
use smsflow::store::Store;
use tokio::task::JoinSet;

use crate::http::raw;
use crate::run::{ServiceSetup, ratings_by_subscriber, simulator_and_service, stop_with_sigterm};
use crate::util::WAIT;

const SURVEYS: usize = 2_000;
const POSTERS: usize = 256;
const MO_WINDOW: usize = 100;

fn msisdn(i: usize) -> String {
    format!("99894{:07}", i)
}

fn event(i: usize) -> Vec<u8> {
    serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn(i),
        "operator": format!("op-{}", i % 7), "channel": "call"})
    .to_string()
    .into_bytes()
}

async fn post_event(http: std::net::SocketAddr, i: usize) -> u16 {
    let json = [("Content-Type".to_owned(), "application/json".to_owned())];
    let resp = tokio::time::timeout(
        WAIT,
        raw(
            http,
            "POST",
            "/api/v1/flows/survey/events",
            &json,
            Some(&event(i)),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("event {i} answered in time (the service hangs?)"));
    resp.status
}

/// Regression: 32 concurrent posts (8 while replies flowed) hung the whole service for good,
/// `/healthz` included: sled 0.34 deadlocks on concurrent asynchronous flushes (spacejam/sled#1308),
/// which the HTTP handler, the MO acker and the outbox all called. Every flush now goes
/// through the store's one flusher thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_concurrent_event_posts_during_an_mo_burst_all_answered_and_rated_once() {
    let (smsc, _dir, setup, mut service) = simulator_and_service("concurrency").await;
    let ServiceSetup { data, http, .. } = setup;

    // The surveys the replies answer, opened by 32 posters at once.
    let mut posts = JoinSet::new();
    for i in 0..SURVEYS {
        while posts.len() >= 32 {
            assert_eq!(posts.join_next().await.unwrap().unwrap(), 202);
        }
        posts.spawn(post_event(http, i));
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 202);
    }

    // Now, all at once: 256 new events, and the 2 000 replies at a window of 100.
    for i in SURVEYS..SURVEYS + POSTERS {
        posts.spawn(post_event(http, i));
    }
    let mut replies = JoinSet::new();
    for i in 0..SURVEYS {
        while replies.len() >= MO_WINDOW {
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
            let status = tokio::time::timeout(WAIT, delivery.outcome())
                .await
                .unwrap_or_else(|_| panic!("reply {i} acknowledged in time (the service hangs?)"))
                .unwrap();
            assert!(status.is_ok(), "reply {i}: {status:?}");
        });
    }
    let mut answered = 0;
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 202, "every concurrent post accepted");
        answered += 1;
    }
    assert_eq!(answered, POSTERS);
    while let Some(done) = replies.join_next().await {
        done.unwrap();
    }
    let health = tokio::time::timeout(WAIT, raw(http, "GET", "/healthz", &[], None))
        .await
        .expect("/healthz answers after the burst");
    assert_eq!(health.status, 200);

    // A clean stop, then the store says what was rated and started.
    stop_with_sigterm(&mut service).await;
    let store = Store::open(&data).unwrap();
    let by_subscriber = ratings_by_subscriber(&store);
    assert_eq!(by_subscriber.len(), SURVEYS, "one rating per reply");
    for i in 0..SURVEYS {
        assert_eq!(
            by_subscriber.get(msisdn(i).as_str()),
            Some(&(1 + (i % 5) as u8)),
            "subscriber {i}'s score"
        );
    }
    for i in 0..SURVEYS + POSTERS {
        assert!(
            store
                .event_conversation("survey", &format!("call-{i}"))
                .unwrap()
                .is_some(),
            "event {i} started its conversation"
        );
    }
    smsc.shutdown().await;
}
