//! Throughput smoke check of the SMSC simulator, the load generator of the service's benches:
//! how many submit_sm it answers per second, and how many MO deliver_sm it gets acknowledged,
//! over loopback TCP against a pipelining ESME in the same process. Prints rates; asserts
//! nothing (timing has no place in tests).
//!
//! `cargo bench --bench sim [-- SUBMITS]`

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use smsflow::sim::{self, Mo, SimConfig};
use smsflow::smpp::encode::{self, Address, BindMode, BindParams, ShortMessage};
use smsflow::smpp::{CommandId, CommandStatus, FrameCodec, decode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

/// submit_sm written per batch before reading the answers (the ESME's window).
const BATCH: u32 = 512;
const CONNECTIONS: u32 = 2;

fn main() {
    let submits: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(400_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let smsc = sim::start(SimConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            window: 1000,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");

        let started = Instant::now();
        let per_connection = submits / CONNECTIONS;
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|_| tokio::spawn(submit_load(smsc.local_addr(), per_connection)))
            .collect();
        for task in tasks {
            task.await.expect("load task");
        }
        report(
            "submit_sm answered",
            per_connection * CONNECTIONS,
            started.elapsed(),
        );

        let mos = submits / 4;
        let mut esme = connect(smsc.local_addr(), BindMode::Receiver).await;
        let started = Instant::now();
        let injector = tokio::spawn({
            let smsc = smsc.clone();
            async move {
                for i in 0..mos {
                    let mo = Mo {
                        source: "998901234567".into(),
                        destination: "5700".into(),
                        text: format!("5 rahmat {i}"),
                    };
                    // Dropping the handle is fine: the counters tell the outcome.
                    drop(smsc.inject_mo(mo).expect("injects"));
                    if i % 1024 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        });
        let mut acked = 0;
        let mut out = BytesMut::new();
        while acked < mos {
            for frame in esme.read_frames().await {
                let command = decode(&frame).expect("decodes");
                assert_eq!(command.command_id(), CommandId::DeliverSm);
                encode::write_command(
                    &encode::deliver_sm_resp(command.sequence_number(), CommandStatus::ESME_ROK),
                    &mut out,
                );
                acked += 1;
            }
            esme.stream.write_all_buf(&mut out).await.expect("write");
        }
        injector.await.expect("injector");
        report("MO deliver_sm acknowledged", mos, started.elapsed());
        println!("{:?}", smsc.stats());
        drop(esme);
        smsc.shutdown().await;
    });
}

fn report(what: &str, count: u32, took: Duration) {
    println!(
        "{what}: {count} in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        f64::from(count) / took.as_secs_f64()
    );
}

struct Esme {
    stream: TcpStream,
    codec: FrameCodec,
    rbuf: BytesMut,
}

impl Esme {
    async fn read_frames(&mut self) -> Vec<bytes::Bytes> {
        let mut frames = Vec::new();
        while frames.is_empty() {
            let n = self.stream.read_buf(&mut self.rbuf).await.expect("read");
            assert!(n > 0, "simulator closed the connection");
            while let Some(frame) = self.codec.decode(&mut self.rbuf).expect("framing") {
                frames.push(frame);
            }
        }
        frames
    }
}

async fn connect(addr: std::net::SocketAddr, mode: BindMode) -> Esme {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let params = BindParams {
        system_id: "smsflow",
        password: "smsflow",
        system_type: "",
        addr_ton: 3,
        addr_npi: 0,
        address_range: "5700",
    };
    let bind = encode::to_frame(&encode::bind(mode, 1, &params).expect("bind"));
    stream.write_all(&bind).await.expect("write");
    let mut esme = Esme {
        stream,
        codec: FrameCodec::default(),
        rbuf: BytesMut::with_capacity(64 * 1024),
    };
    let resp = esme.read_frames().await;
    assert_eq!(
        decode(&resp[0]).expect("decodes").command_status(),
        CommandStatus::ESME_ROK
    );
    esme
}

async fn submit_load(addr: std::net::SocketAddr, count: u32) {
    let mut esme = connect(addr, BindMode::Transmitter).await;
    let message = ShortMessage::new(
        Address::short_code("5700"),
        Address::international("998901234567"),
        0,
        b"Thank you for your call. Please rate us from 1 to 5.",
    );
    let template = encode::to_frame(&encode::submit_sm(0, &message).expect("submit_sm"));
    let mut out = BytesMut::with_capacity(template.len() * BATCH as usize);
    let mut seq = 1u32;
    let mut answered = 0;
    while answered < count {
        let batch = BATCH.min(count - answered);
        for _ in 0..batch {
            seq += 1;
            let start = out.len();
            out.extend_from_slice(&template);
            out[start + 12..start + 16].copy_from_slice(&seq.to_be_bytes());
        }
        esme.stream.write_all_buf(&mut out).await.expect("write");
        out.advance(out.len());
        let mut got = 0;
        while got < batch {
            for frame in esme.read_frames().await {
                let command = decode(&frame).expect("decodes");
                assert_eq!(command.command_id(), CommandId::SubmitSmResp);
                assert_eq!(command.command_status(), CommandStatus::ESME_ROK);
                got += 1;
            }
        }
        answered += batch;
    }
}
