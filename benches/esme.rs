//! End-to-end ESME throughput over loopback TCP against the built-in simulator, ours side by
//! side with rusmppc (rusmpp's tokio client) as the reference:
//!
//! - submit_sm/s at window 1, 10 and 100 (one session; `window` submits outstanding at most,
//!   kept full by as many concurrent callers);
//! - MO intake: deliver_sm acknowledged per second (the application acks each at once).
//!
//! `cargo bench --bench esme [-- N]` prints messages/s and the ratio ours / rusmppc; it asserts
//! nothing. N (default 200 000) is the submit count at window 100; smaller windows send less.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{Npi, Ton};
use smsflow::esme::{Pool, PoolConfig, tcp_connector};
use smsflow::sim::{self, Mo, SimConfig, SmscHandle};
use smsflow::smpp::encode::{self, Address, ShortMessage};

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let smsc = sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            window: 1000,
            response_timeout: Duration::from_secs(60),
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");

        println!(
            "{:<28} {:>14} {:>14} {:>8}",
            "", "smsflow msg/s", "rusmppc msg/s", "ratio"
        );
        for (window, count) in [(1, n / 20), (10, n / 4), (100, n)] {
            let ours = submit_ours(&smsc, window, count).await;
            let theirs = submit_rusmppc(&smsc, window, count).await;
            row(&format!("submit_sm, window {window}"), ours, theirs);
        }
        let mos = n / 2;
        let ours = intake_ours(&smsc, mos).await;
        let theirs = intake_rusmppc(&smsc, mos).await;
        row("deliver_sm acked (MO intake)", ours, theirs);
        smsc.shutdown().await;
    });
}

fn row(name: &str, ours: f64, theirs: f64) {
    println!(
        "{name:<28} {ours:>14.0} {theirs:>14.0} {:>7.2}x",
        ours / theirs
    );
}

fn rate(count: u32, elapsed: Duration) -> f64 {
    f64::from(count) / elapsed.as_secs_f64()
}

fn submit_command() -> rusmpp::Command {
    encode::submit_sm(
        0,
        &ShortMessage::new(
            Address::short_code("5700"),
            Address::international("998901234567"),
            0,
            b"Thank you for your rating!",
        ),
    )
    .expect("valid submit_sm")
}

async fn bound_pool(
    smsc: &SmscHandle,
    window: usize,
) -> (
    Arc<Pool>,
    tokio::sync::mpsc::Receiver<smsflow::esme::InboundMessage>,
) {
    let addr = smsc.local_addr();
    let mut config = PoolConfig::new("bench", tcp_connector(addr.ip().to_string(), addr.port()));
    config.session.window = window;
    config.session.response_timeout = Duration::from_secs(60);
    config.registered_delivery = false;
    let (pool, inbound) = Pool::start(config, 4096);
    while pool.bound() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (Arc::new(pool), inbound)
}

/// `window` callers each submit `count / window` messages one after another, so the session
/// has `window` outstanding at all times.
async fn submit_ours(smsc: &SmscHandle, window: usize, count: u32) -> f64 {
    let (pool, _inbound) = bound_pool(smsc, window).await;
    let per_caller = count / window as u32;
    let started = Instant::now();
    let callers: Vec<_> = (0..window)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    pool.submit(submit_command()).await.expect("accepted");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    let elapsed = started.elapsed();
    pool.shutdown().await;
    rate(per_caller * window as u32, elapsed)
}

async fn rusmppc_client(
    smsc: &SmscHandle,
) -> (
    rusmppc::Client,
    impl futures_util::Stream<Item = rusmppc::Event> + Unpin + Send + use<>,
) {
    let addr = smsc.local_addr();
    let (client, events) = rusmppc::ConnectionBuilder::new()
        .response_timeout(Duration::from_secs(60))
        .connect(format!("smpp://{addr}"))
        .await
        .expect("rusmppc connects");
    client
        .bind_transceiver(
            BindTransceiver::builder()
                .system_id(COctetString::from_str("smsflow").expect("ascii"))
                .password(COctetString::from_str("smsflow").expect("ascii"))
                .system_type(COctetString::empty())
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build(),
        )
        .await
        .expect("rusmppc binds");
    (client, events)
}

fn rusmppc_submit() -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::NetworkSpecific)
        .source_addr(COctetString::from_str("5700").expect("ascii"))
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str("998901234567").expect("ascii"))
        .short_message(OctetString::from_str("Thank you for your rating!").expect("fits"))
        .build()
}

async fn submit_rusmppc(smsc: &SmscHandle, window: usize, count: u32) -> f64 {
    let (client, events) = rusmppc_client(smsc).await;
    let drain = tokio::spawn(events.for_each(|_| async {}));
    let per_caller = count / window as u32;
    let started = Instant::now();
    let callers: Vec<_> = (0..window)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_caller {
                    client.submit_sm(rusmppc_submit()).await.expect("accepted");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    let elapsed = started.elapsed();
    let _ = client.unbind().await;
    let _ = client.close_and_wait().await;
    drain.abort();
    rate(per_caller * window as u32, elapsed)
}

/// Injects `count` MOs and waits until our pool has acknowledged them all.
async fn intake_ours(smsc: &SmscHandle, count: u32) -> f64 {
    let (pool, mut inbound) = bound_pool(smsc, 100).await;
    let before = smsc.stats().mo_delivered;
    let started = Instant::now();
    let injector = inject(smsc, count);
    let mut received = 0;
    while received < count {
        let message = inbound.recv().await.expect("inbound");
        message.ack.ack();
        received += 1;
    }
    injector.await.expect("injector");
    wait_delivered(smsc, before + u64::from(count)).await;
    let elapsed = started.elapsed();
    pool.shutdown().await;
    rate(count, elapsed)
}

async fn intake_rusmppc(smsc: &SmscHandle, count: u32) -> f64 {
    let (client, mut events) = rusmppc_client(smsc).await;
    let before = smsc.stats().mo_delivered;
    let started = Instant::now();
    let injector = inject(smsc, count);
    let mut received = 0;
    while received < count {
        if let Some(rusmppc::Event::Incoming(command)) = events.next().await
            && command.id() == rusmpp::CommandId::DeliverSm
        {
            client
                .deliver_sm_resp(command.sequence_number(), DeliverSmResp::default())
                .await
                .expect("ack");
            received += 1;
        }
    }
    injector.await.expect("injector");
    wait_delivered(smsc, before + u64::from(count)).await;
    let elapsed = started.elapsed();
    let _ = client.unbind().await;
    let _ = client.close_and_wait().await;
    rate(count, elapsed)
}

fn inject(smsc: &SmscHandle, count: u32) -> tokio::task::JoinHandle<()> {
    let smsc = smsc.clone();
    tokio::spawn(async move {
        for i in 0..count {
            // The handle is not needed: completion is read from the simulator's counters.
            let _delivery = smsc
                .inject_mo(Mo {
                    source: format!("99890{:07}", i % 10_000_000),
                    destination: "5700".into(),
                    text: "5".into(),
                })
                .expect("inject");
            if i % 1024 == 0 {
                tokio::task::yield_now().await;
            }
        }
    })
}

/// The simulator counts an MO delivered when the deliver_sm_resp arrives.
async fn wait_delivered(smsc: &SmscHandle, total: u64) {
    while smsc.stats().mo_delivered < total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
