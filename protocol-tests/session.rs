//! The ESME pool against a scripted in-memory SMSC, on tokio's paused clock: window, response
//! timeout, throttling, wrong password, link cut mid-window, inbound acks, unbind on shutdown.
//!
//! The SMSC side uses our own codec over `tokio::io::duplex`, so time only moves when every
//! task is waiting (no sleeps, no real sockets, no flakiness).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use smsflow::esme::connection::Io;
use smsflow::esme::pool::Connector;
use smsflow::esme::{Pool, PoolConfig, SubmitError};
use smsflow::smpp::{
    codec::FrameCodec,
    decode,
    encode::{self, Address, BindMode, ShortMessage},
    pdu::{CommandId, CommandStatus, Pdu},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

/// How the fake SMSC behaves; shared by all its connections.
#[derive(Debug, Default)]
struct Script {
    /// Answer binds with this status instead of ESME_ROK.
    bind_status: Option<CommandStatus>,
    /// Answer the next N submit_sm with ESME_RTHROTTLED.
    throttle: usize,
    /// Never answer submit_sm (to test response timeouts).
    silent: bool,
    /// Hold submit_sm responses until `release` is notified.
    hold: bool,
}

/// What the fake SMSC saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Connected(Instant),
    Bind,
    /// A submit it accepted: the destination and the id it gave.
    Accepted {
        to: String,
        id: String,
    },
    Throttled {
        to: String,
    },
    InFlight(usize),
    Ack {
        sequence_number: u32,
        status: CommandStatus,
    },
    Unbind,
}

#[derive(Clone)]
struct Smsc {
    script: Arc<Mutex<Script>>,
    seen: mpsc::UnboundedSender<Seen>,
    release: Arc<Notify>,
    /// Drops the current connection abruptly when notified.
    cut: Arc<Notify>,
    /// Frames to push to the most recent connection (deliver_sm etc.).
    push: Arc<Mutex<Option<mpsc::UnboundedSender<bytes::Bytes>>>>,
    next_id: Arc<Mutex<u32>>,
}

impl Smsc {
    fn new(script: Script) -> (Smsc, mpsc::UnboundedReceiver<Seen>) {
        let (seen, rx) = mpsc::unbounded_channel();
        let smsc = Smsc {
            script: Arc::new(Mutex::new(script)),
            seen,
            release: Arc::new(Notify::new()),
            cut: Arc::new(Notify::new()),
            push: Arc::new(Mutex::new(None)),
            next_id: Arc::new(Mutex::new(0)),
        };
        (smsc, rx)
    }

    fn connector(&self) -> Connector {
        let smsc = self.clone();
        Arc::new(move || {
            let smsc = smsc.clone();
            Box::pin(async move {
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                tokio::spawn(smsc.serve(theirs));
                Ok(Box::new(ours) as Box<dyn Io>)
            })
        })
    }

    async fn serve(self, mut io: DuplexStream) {
        let _ = self.seen.send(Seen::Connected(Instant::now()));
        let (push_tx, mut push_rx) = mpsc::unbounded_channel();
        *self.push.lock().unwrap() = Some(push_tx);
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut held: Vec<(u32, String)> = Vec::new();
        loop {
            tokio::select! {
                read = io.read_buf(&mut buf) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                }
                Some(frame) = push_rx.recv() => {
                    let _ = io.write_all(&frame).await;
                    continue;
                }
                () = self.cut.notified() => return,
                () = self.release.notified() => {
                    for (seq, to) in held.drain(..) {
                        let frame = self.accept(seq, to);
                        let _ = io.write_all(&frame).await;
                    }
                    continue;
                }
            }
            while let Ok(Some(frame)) = codec.decode(&mut buf) {
                let cmd = decode(&frame).expect("the ESME sends valid frames");
                let seq = cmd.sequence_number();
                let reply = match cmd.pdu {
                    Pdu::BindTransceiver(_) | Pdu::BindTransmitter(_) | Pdu::BindReceiver(_) => {
                        let _ = self.seen.send(Seen::Bind);
                        let status = self
                            .script
                            .lock()
                            .unwrap()
                            .bind_status
                            .unwrap_or(CommandStatus::ESME_ROK);
                        let mode = match cmd.command_id() {
                            CommandId::BindTransmitter => BindMode::Transmitter,
                            CommandId::BindReceiver => BindMode::Receiver,
                            _ => BindMode::Transceiver,
                        };
                        Some(encode::to_frame(
                            &encode::bind_resp(mode, seq, status, "FAKE").unwrap(),
                        ))
                    }
                    Pdu::SubmitSm(sm) => {
                        let to = sm.destination_addr.to_str_lossy().into_owned();
                        let mut script = self.script.lock().unwrap();
                        if script.throttle > 0 {
                            script.throttle -= 1;
                            let _ = self.seen.send(Seen::Throttled { to });
                            Some(encode::to_frame(
                                &encode::submit_sm_resp(seq, CommandStatus::ESME_RTHROTTLED, "")
                                    .unwrap(),
                            ))
                        } else if script.silent {
                            None
                        } else if script.hold {
                            held.push((seq, to));
                            let _ = self.seen.send(Seen::InFlight(held.len()));
                            None
                        } else {
                            drop(script);
                            Some(self.accept(seq, to))
                        }
                    }
                    Pdu::DeliverSmResp(_) => {
                        let _ = self.seen.send(Seen::Ack {
                            sequence_number: seq,
                            status: cmd.command_status(),
                        });
                        None
                    }
                    Pdu::EnquireLink => Some(encode::to_frame(&encode::enquire_link_resp(seq))),
                    Pdu::Unbind => {
                        let _ = self.seen.send(Seen::Unbind);
                        let mut resp = encode::unbind_resp(seq);
                        resp.sequence_number = seq;
                        let _ = io.write_all(&encode::to_frame(&resp)).await;
                        return;
                    }
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = io.write_all(&reply).await;
                }
            }
        }
    }

    fn accept(&self, seq: u32, to: String) -> bytes::Bytes {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        let id = format!("{:X}", *next);
        let _ = self.seen.send(Seen::Accepted { to, id: id.clone() });
        encode::to_frame(&encode::submit_sm_resp(seq, CommandStatus::ESME_ROK, &id).unwrap())
    }

    fn push_deliver(&self, seq: u32, text: &[u8]) {
        let mut command = encode::deliver_sm(
            0,
            &ShortMessage::new(
                Address::international("998901234567"),
                Address::short_code("5700"),
                0,
                text,
            ),
        )
        .unwrap();
        command.sequence_number = seq;
        let push = self.push.lock().unwrap();
        push.as_ref()
            .expect("a connection is up")
            .send(encode::to_frame(&command))
            .unwrap();
    }
}

fn pool_config(smsc: &Smsc, window: usize) -> PoolConfig {
    let mut config = PoolConfig::new("fake", smsc.connector());
    config.session.window = window;
    config
}

fn submit_to(to: &str) -> rusmpp::Command {
    encode::submit_sm(
        0,
        &ShortMessage::new(
            Address::short_code("5700"),
            Address::international(to),
            0,
            b"Thanks!",
        ),
    )
    .unwrap()
}

/// Waits for the next event matching `pred`, skipping others.
async fn next_matching(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    pred: impl Fn(&Seen) -> bool,
) -> Seen {
    loop {
        let event = seen.recv().await.expect("the fake smsc is alive");
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn window_full_makes_callers_wait_and_drops_nothing() {
    let (smsc, mut seen) = Smsc::new(Script {
        hold: true,
        ..Script::default()
    });
    let (pool, _inbound) = Pool::start(pool_config(&smsc, 2), 16);
    let pool = Arc::new(pool);
    let mut calls = Vec::new();
    for i in 0..5 {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            pool.submit(submit_to(&format!("99890000000{i}"))).await
        }));
    }
    // The SMSC never sees more than the window outstanding; it releases as they pile up.
    let mut max_in_flight = 0;
    let mut accepted = 0;
    while accepted < 5 {
        match seen.recv().await.unwrap() {
            Seen::InFlight(n) => {
                max_in_flight = max_in_flight.max(n);
                if n == 2 {
                    smsc.release.notify_one();
                }
            }
            Seen::Accepted { .. } => accepted += 1,
            _ => {}
        }
        // The last one may be alone in the window.
        if accepted == 4 {
            smsc.release.notify_one();
        }
    }
    assert_eq!(max_in_flight, 2);
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.unwrap().expect("every submit is answered"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "five distinct message ids");
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn response_timeout_is_reported() {
    let (smsc, _seen) = Smsc::new(Script {
        silent: true,
        ..Script::default()
    });
    let (pool, _inbound) = Pool::start(pool_config(&smsc, 4), 16);
    let started = Instant::now();
    let result = pool.submit(submit_to("998901234567")).await;
    assert_eq!(
        result,
        Err(SubmitError::TimedOut {
            after: Duration::from_secs(10)
        })
    );
    assert!(started.elapsed() >= Duration::from_secs(10));
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn throttled_message_arrives_exactly_once_later() {
    let (smsc, mut seen) = Smsc::new(Script {
        throttle: 3,
        ..Script::default()
    });
    let (pool, _inbound) = Pool::start(pool_config(&smsc, 4), 16);
    let started = Instant::now();
    let id = pool.submit(submit_to("998901234567")).await.unwrap();
    // 100 + 200 + 400 ms of back-off before the fourth attempt.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    pool.shutdown().await;
    let mut accepted = Vec::new();
    let mut throttled = 0;
    while let Ok(event) = seen.try_recv() {
        match event {
            Seen::Accepted { to, id } => accepted.push((to, id)),
            Seen::Throttled { .. } => throttled += 1,
            _ => {}
        }
    }
    assert_eq!(throttled, 3);
    assert_eq!(
        accepted,
        [("998901234567".to_owned(), id)],
        "accepted exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_password_backs_off_long_and_says_why() {
    let (smsc, mut seen) = Smsc::new(Script {
        bind_status: Some(CommandStatus::ESME_RINVPASWD),
        ..Script::default()
    });
    let mut config = pool_config(&smsc, 4);
    config.reconnect_min = Duration::from_secs(1);
    config.reconnect_max = Duration::from_secs(60);
    let (pool, _inbound) = Pool::start(config, 16);
    let mut attempts = Vec::new();
    while attempts.len() < 4 {
        if let Seen::Connected(at) = seen.recv().await.unwrap() {
            attempts.push(at);
        }
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    for gap in &gaps {
        assert!(*gap >= Duration::from_secs(30), "no storm: {gaps:?}");
    }
    let status = pool.status();
    let error = status[0].last_error.clone().unwrap();
    assert!(error.contains("ESME_RINVPASWD"), "{error}");
    assert!(error.contains("check system_id and password"), "{error}");
    assert_eq!(pool.bound(), 0);
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unreachable_smsc_backoff_grows() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let log = attempts.clone();
    let connector: Connector = Arc::new(move || {
        log.lock().unwrap().push(Instant::now());
        Box::pin(async {
            Err::<Box<dyn Io>, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "refused",
            ))
        })
    });
    let mut config = PoolConfig::new("down", connector);
    config.reconnect_min = Duration::from_secs(1);
    config.reconnect_max = Duration::from_secs(60);
    let (pool, _inbound) = Pool::start(config, 16);
    tokio::time::sleep(Duration::from_secs(200)).await;
    pool.shutdown().await;
    let attempts = attempts.lock().unwrap().clone();
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // Equal jitter: each gap lies in [step/2, step] with the step doubling 1, 2, 4, ... 60.
    let mut step = 1.0f64;
    for gap in &gaps {
        assert!(*gap >= step / 2.0 - 1e-6 && *gap <= step + 1e-6, "{gaps:?}");
        step = (step * 2.0).min(60.0);
    }
    assert!(gaps.len() >= 6, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn link_cut_mid_window_reports_in_flight_and_resends_the_queued() {
    let (smsc, mut seen) = Smsc::new(Script {
        hold: true,
        ..Script::default()
    });
    let mut config = pool_config(&smsc, 3);
    config.reconnect_min = Duration::from_millis(100);
    let (pool, _inbound) = Pool::start(config, 16);
    let pool = Arc::new(pool);
    let mut calls = Vec::new();
    for i in 0..5 {
        let pool = pool.clone();
        calls.push(tokio::spawn(async move {
            pool.submit(submit_to(&format!("99890000000{i}"))).await
        }));
    }
    // Three fill the window, two wait in the queue; then the link is cut.
    next_matching(&mut seen, |s| *s == Seen::InFlight(3)).await;
    smsc.script.lock().unwrap().hold = false;
    smsc.cut.notify_one();
    let mut results = HashMap::new();
    for (i, call) in calls.into_iter().enumerate() {
        results.insert(i, call.await.unwrap());
    }
    let lost = results
        .values()
        .filter(|r| **r == Err(SubmitError::LinkLost))
        .count();
    let ok = results.values().filter(|r| r.is_ok()).count();
    assert_eq!(
        lost, 3,
        "the three in flight are reported, not silently dropped: {results:?}"
    );
    assert_eq!(
        ok, 2,
        "the two queued went out on the new link: {results:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn inbound_is_acked_only_by_the_application() {
    let (smsc, mut seen) = Smsc::new(Script::default());
    let (pool, mut inbound) = Pool::start(pool_config(&smsc, 4), 16);
    next_matching(&mut seen, |s| *s == Seen::Bind).await;
    while pool.bound() == 0 {
        tokio::task::yield_now().await;
    }
    smsc.push_deliver(900, b"5");
    smsc.push_deliver(901, b"4 ok");
    let first = inbound.recv().await.unwrap();
    let second = inbound.recv().await.unwrap();
    assert_eq!(&first.inbound.payload[..], b"5");
    assert_eq!(first.inbound.source_addr, "998901234567");
    second.ack.ack();
    drop(first); // not stored: the SMSC must deliver it again
    let acks: Vec<Seen> = vec![
        next_matching(&mut seen, |s| matches!(s, Seen::Ack { .. })).await,
        next_matching(&mut seen, |s| matches!(s, Seen::Ack { .. })).await,
    ];
    assert_eq!(
        acks,
        [
            Seen::Ack {
                sequence_number: 901,
                status: CommandStatus::ESME_ROK
            },
            Seen::Ack {
                sequence_number: 900,
                status: CommandStatus::ESME_RX_T_APPN
            },
        ]
    );
    pool.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_in_flight_then_unbinds() {
    let (smsc, mut seen) = Smsc::new(Script {
        hold: true,
        ..Script::default()
    });
    let (pool, _inbound) = Pool::start(pool_config(&smsc, 4), 16);
    let pool = Arc::new(pool);
    let submit = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.submit(submit_to("998901234567")).await })
    };
    next_matching(&mut seen, |s| *s == Seen::InFlight(1)).await;
    let shutdown = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.shutdown().await })
    };
    tokio::task::yield_now().await;
    // Still waiting for the response: no unbind yet.
    assert!(seen.try_recv().is_err());
    smsc.release.notify_one();
    assert!(
        submit.await.unwrap().is_ok(),
        "the in-flight submit completes"
    );
    next_matching(&mut seen, |s| *s == Seen::Unbind).await;
    shutdown.await.unwrap();
}
