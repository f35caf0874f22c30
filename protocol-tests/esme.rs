//! The ESME pool against the built-in simulator over real TCP: many messages both ways, every
//! one answered once. Complements `session.rs` (scripted SMSC, paused clock) with real sockets
//! and real concurrency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use smsflow::esme::{InboundMessage, Pool, PoolConfig, tcp_connector};
use smsflow::sim::{self, Mo, SimConfig, SmscHandle};
use tokio::sync::mpsc;

async fn simulator() -> SmscHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn pool(smsc: &SmscHandle, window: usize) -> (Pool, mpsc::Receiver<InboundMessage>) {
    let addr = smsc.local_addr();
    let mut config = PoolConfig::new("sim", tcp_connector(addr.ip().to_string(), addr.port()));
    config.session.window = window;
    config.sessions = 2;
    Pool::start(config, 1024)
}

/// Regression: acks handed to the driver between its wake-up and its write used to sit in the
/// buffer until the next event, so the last ack of a burst went out only with the next
/// enquire_link, after the SMSC had timed out and redelivered the message. Every MO of a burst
/// must be acknowledged with no redelivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mo_of_a_burst_is_acked_once_without_redelivery() {
    let smsc = simulator().await;
    let (pool, mut inbound) = pool(&smsc, 64).await;
    let taker = tokio::spawn(async move {
        let mut texts = Vec::new();
        while let Some(message) = inbound.recv().await {
            texts.push(String::from_utf8(message.inbound.payload.to_vec()).unwrap());
            message.ack.ack();
            if texts.len() == 500 {
                return texts;
            }
        }
        texts
    });
    let deliveries: Vec<_> = (0..500)
        .map(|i| {
            smsc.inject_mo(Mo {
                source: format!("99890{i:07}"),
                destination: "5700".into(),
                text: format!("{}", i % 5 + 1),
            })
            .unwrap()
        })
        .collect();
    // A bound against hanging, not a speed check: the burst takes milliseconds.
    let acked = tokio::time::timeout(Duration::from_secs(30), async {
        for delivery in deliveries {
            assert!(delivery.outcome().await.unwrap().is_ok());
        }
    })
    .await;
    assert!(acked.is_ok(), "MOs left unacknowledged: {:?}", smsc.stats());
    assert_eq!(taker.await.unwrap().len(), 500);
    let stats = smsc.stats();
    assert_eq!(
        (stats.mo_delivered, stats.mo_redelivered),
        (500, 0),
        "{stats:?}"
    );
    pool.shutdown().await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_submits_over_two_sessions_each_get_one_id_and_one_receipt() {
    let smsc = simulator().await;
    let (pool, mut inbound) = pool(&smsc, 50).await;
    let receipts = tokio::spawn(async move {
        let mut ids = HashSet::new();
        while ids.len() < 5000 {
            let message = inbound.recv().await.expect("pool alive");
            let receipt = message
                .inbound
                .receipt
                .clone()
                .expect("only receipts arrive");
            ids.insert(receipt.expect("receipt parses").message_id);
            message.ack.ack();
        }
        ids
    });
    let pool = Arc::new(pool);
    let callers: Vec<_> = (0..100)
        .map(|c| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let sent = pool
                        .send_text(&format!("998{c:03}{i:06}"), "Спасибо за вашу оценку!")
                        .await
                        .unwrap();
                    ids.extend(sent.message_ids);
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for caller in callers {
        for id in caller.await.unwrap() {
            assert!(ids.insert(id), "message ids are unique");
        }
    }
    assert_eq!(ids.len(), 5000);
    assert_eq!(smsc.stats().submit_sm_received, 5000, "nothing sent twice");
    assert_eq!(
        receipts.await.unwrap(),
        ids,
        "a receipt for every message id"
    );
    pool.shutdown().await;
    smsc.shutdown().await;
}
