//! A full disk is back-pressure, not a dead end (issue 26): with less room than
//! `[service] min_free_space` the service writes nothing and refuses new steps (HTTP 503 with
//! `Retry-After`, MOs left for the SMSC to redeliver), and when room returns it goes on by
//! itself, with no restart: every reply rated once, every thanks sent once, every event one
//! conversation.

use std::collections::HashMap;
use std::time::Duration;

use crate::http::raw;
use crate::run::{service_setup, simulator, spawn_service, stop_with_sigterm};
use crate::shutdown::Tmpfs;
use crate::util::{TempDir, WAIT, until_ready};

fn event(i: usize) -> String {
    format!(
        r#"{{"id": "full-{i}", "msisdn": "99890{i:07}", "operator": "op-1", "channel": "call"}}"#
    )
}

async fn post(http: std::net::SocketAddr, i: usize) -> crate::http::Resp {
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    let body = event(i);
    raw(
        http,
        "POST",
        "/api/v1/flows/survey/events",
        &headers,
        Some(body.as_bytes()),
    )
    .await
}

async fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let text = raw(addr, "GET", "/metrics", &[], None).await.body;
    (text.lines())
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_back_pressure_and_the_service_resumes_when_room_returns() {
    let Some(disk) = Tmpfs::mount("disk-full", "48m") else {
        return;
    };
    let smsc = simulator().await;
    let mut submitted = smsc.submitted();
    let dir = TempDir::new("disk-full");
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let config = config.replace(
        &format!("data_dir = \"{}\"", setup.data.display()),
        &format!(
            "data_dir = \"{}\"\nmin_free_space = \"8MiB\"",
            disk.path().join("data").display()
        ),
    );
    std::fs::write(&setup.config, config).unwrap();
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;

    // Twenty surveys asked while there is room.
    for i in 0..20 {
        assert_eq!(post(setup.http, i).await.status, 202);
    }
    let mut questions = 0;
    while questions < 20 {
        let m = tokio::time::timeout(WAIT, submitted.recv())
            .await
            .unwrap()
            .unwrap();
        questions += usize::from(m.text.starts_with("Спасибо за ваш звонок"));
    }

    // The disk fills up, leaving 4 MiB: under the reserve.
    let room = fs2::available_space(disk.path()).unwrap();
    let filler = disk.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = room.saturating_sub(4 << 20);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        std::io::Write::write_all(&mut file, &chunk[..n]).unwrap();
        left -= n as u64;
    }
    drop(file);

    // New events are refused with 503 and Retry-After, naming the reserve.
    let mut refused = Vec::new();
    for i in 20..30 {
        let resp = post(setup.http, i).await;
        assert!(
            resp.status == 503 || resp.status == 202,
            "{}: {}",
            resp.status,
            resp.json
        );
        if resp.status == 503 {
            assert!(
                resp.head.to_ascii_lowercase().contains("retry-after"),
                "{}",
                resp.head
            );
            assert!(
                resp.json["detail"]
                    .as_str()
                    .unwrap()
                    .contains("min_free_space"),
                "{}",
                resp.json
            );
            refused.push(i);
        }
    }
    assert!(!refused.is_empty(), "a full disk refuses new events");
    assert_eq!(metric(setup.metrics, "smsflow_store_disk_full").await, 1.0);
    // The customers answer meanwhile: the SMSC is told to try again later, and keeps trying.
    let replies: Vec<_> = (0..20)
        .map(|i| {
            smsc.inject_mo(smsflow::sim::Mo {
                source: format!("99890{i:07}"),
                destination: "5700".into(),
                text: "4".into(),
            })
            .unwrap()
        })
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while smsc.stats().mo_redelivered == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the SMSC is told to redeliver"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Room again: no restart, everything goes on.
    std::fs::remove_file(&filler).unwrap();
    for reply in replies {
        let status = tokio::time::timeout(WAIT, reply.outcome())
            .await
            .unwrap()
            .unwrap();
        assert!(status.is_ok(), "{status:?}");
    }
    for i in refused {
        let resp = post(setup.http, i).await;
        assert_eq!(resp.status, 202, "{}", resp.json);
    }
    let mut thanks: HashMap<String, usize> = HashMap::new();
    let mut asked: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while thanks.len() < 20 || asked.len() < 10 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(left, submitted.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "thanks {} of 20, new questions {} of 10",
                    thanks.len(),
                    asked.len()
                )
            })
            .unwrap();
        if m.text.starts_with("Спасибо за вашу оценку") {
            *thanks.entry(m.destination).or_default() += 1;
        } else if m.text.starts_with("Спасибо за ваш звонок") {
            *asked.entry(m.destination).or_default() += 1;
        }
    }
    assert_eq!(metric(setup.metrics, "smsflow_store_disk_full").await, 0.0);
    stop_with_sigterm(&mut service).await;
    // Nothing more went out, and nothing twice.
    while let Ok(m) = submitted.try_recv() {
        if m.text.starts_with("Спасибо") {
            panic!(
                "sent again after everything was sent once: {} {}",
                m.destination, m.text
            );
        }
    }
    assert!(thanks.values().all(|n| *n == 1), "{thanks:?}");
    assert!(asked.values().all(|n| *n == 1), "{asked:?}");
    // The questions asked before the disk filled up were not asked again.
    assert!(
        (0..20).all(|i| !asked.contains_key(&format!("99890{i:07}"))),
        "{asked:?}"
    );
    let store = crate::util::open_store(&disk.path().join("data"));
    let ratings = crate::run::ratings_by_subscriber(&store);
    assert_eq!(ratings.len(), 20);
    smsc.shutdown().await;
}
