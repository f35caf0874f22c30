//! The store's operations through the binary: a damaged data directory stops `smsflow run`
//! and `smsflow report` with what is missing, `--accept-data-loss` starts anyway; `smsflow
//! store verify|backup|restore`, a backup taken over HTTP from a running service.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use smsflow::sim::{self, SimConfig};
use smsflow::store::{
    Commit, Conversation, ConversationStatus, Damage, OutMessage, OutboxOutcome, Rating, Store,
    StoreError,
};
use tokio::process::Command;

use crate::http::raw;
use crate::run::{
    ratings_by_subscriber, service_setup, spawn_service, spawn_service_with, stop_with_sigterm,
};
use crate::util::{TempDir, WAIT, send_mo, until_ready};

const SURVEYS: u64 = 300;

/// A rated survey as the service leaves it: created with its question queued, the question
/// sent, then finished with a rating.
pub(crate) fn rated_survey(store: &Store, id: u64) -> Result<(), StoreError> {
    let at = 1_767_225_600_000 + id as i64 * 60_000;
    let msisdn = format!("99890{id:07}");
    let mut c = Conversation {
        id,
        flow: "survey".into(),
        flow_version: "test".into(),
        state: serde_json::json!({"operator": "op-1", "channel": "call"}),
        parties: vec![msisdn.clone()],
        event_key: Some(format!("call-{id}")),
        created_at: at,
        updated_at: at,
        ..Default::default()
    };
    let question = OutMessage {
        id: 1_000_000 + id,
        conversation: id,
        to: msisdn.clone(),
        text: "Оцените".into(),
        created_at: at,
        flow: "survey".into(),
        opening: true,
    };
    store.commit(Commit {
        conversation: Some(c.clone()),
        outbox: vec![question.clone()],
        event_key: Some(("survey".into(), format!("call-{id}"), id)),
        ..Commit::default()
    })?;
    store.outbox_finished(&[OutboxOutcome {
        message: question,
        status: "sent".into(),
        smsc_ids: vec![format!("m{id}")],
        at: 0,
    }])?;
    c.status = ConversationStatus::Finished {
        outcome: "rated".into(),
    };
    c.updated_at = at + 1_000;
    store.commit(Commit {
        conversation: Some(c),
        ratings: vec![Rating {
            conversation: id,
            flow: "survey".into(),
            at: at + 1_000,
            msisdn,
            score: 1 + (id % 5) as u8,
            operator: "op-1".into(),
            channel: "call".into(),
            comment: String::new(),
        }],
        ..Commit::default()
    })
}

/// Overwrites 4 KiB at offset 64 KiB of sled's `db` file in `data` with noise from `seed`.
fn damage_db(data: &Path, seed: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut x = seed;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(data.join("db"))
        .unwrap();
    f.seek(SeekFrom::Start(64 * 1024)).unwrap();
    f.write_all(&noise).unwrap();
    f.sync_all().unwrap();
}

/// A store in `data` with [`SURVEYS`] rated surveys, written in bursts of 30 (one flush
/// each), then 4 KiB of noise at 64 KiB of sled's file, until sled takes the noise for the
/// end of its log ([`Damage::Behind`]): where the noise lands in sled's segments varies from
/// run to run (it may hit dead space, or make sled unable to open the store at all).
fn behind_store(data: &Path) -> (u64, u64) {
    for attempt in 0..20 {
        let _ = std::fs::remove_dir_all(data);
        {
            let store = crate::util::open_store(data);
            for id in 1..=SURVEYS {
                rated_survey(&store, id).unwrap();
                if id % 30 == 0 {
                    store.flush_sync().unwrap();
                }
                if id % [100, 1_000][attempt % 2] == 0 {
                    store.checkpoint().unwrap();
                }
            }
        }
        damage_db(data, attempt as u64 + 1);
        // Reopened in the same process: sled's lock may outlive the handle for a moment.
        let mut opened = Store::open(data);
        for _ in 0..300 {
            if !matches!(opened, Err(StoreError::Locked { .. })) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            opened = Store::open(data);
        }
        match opened {
            Err(StoreError::DataLoss {
                damage: Damage::Behind { recovered, sealed },
                ..
            }) => return (recovered, sealed),
            Err(StoreError::DataLoss { .. }) | Ok(_) => continue,
            Err(other) => panic!("{other}"),
        }
    }
    panic!("20 damaged stores and none where sled cut its log short");
}

/// `smsflow ARGS` to the end, killed after [`WAIT`] (a service that started when it should
/// not have would never exit).
pub(crate) async fn smsflow(args: &[&str], config: &Path) -> std::process::Output {
    let child = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("smsflow exits")
        .unwrap()
}

async fn simulator() -> sim::SmscHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_report_refuse_a_damaged_store_and_accept_data_loss_starts_it() {
    let smsc = simulator().await;
    let dir = TempDir::new("damaged-run");
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let (recovered, sealed) = behind_store(&setup.data);

    for args in [&["run"][..], &["report", "csi"]] {
        let out = smsflow(args, &setup.config).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let expected = format!(
            "recovered commits up to {recovered} but {sealed} were made durable: {} commits \
             (conversations, ratings, outbox changes) are missing",
            sealed - recovered
        );
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(
            stderr.contains("smsflow store restore DIR")
                && stderr.contains("smsflow run --accept-data-loss"),
            "{args:?}: {stderr}"
        );
    }

    // Accepted: it starts, sealed where it is, and the next plain start is clean.
    let mut service = spawn_service_with(&setup.config, &["--accept-data-loss"]);
    until_ready(setup.http).await;
    stop_with_sigterm(&mut service).await;
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_over_http_from_a_running_service_restores_and_verifies() {
    const SURVEYS: usize = 20;
    let smsc = simulator().await;
    let dir = TempDir::new("backup-http");
    let setup = service_setup(dir.path(), smsc.local_addr().port(), &["t0ken"]);
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    let auth = ("Authorization".to_owned(), "Bearer t0ken".to_owned());
    let json = [
        auth.clone(),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ];
    for i in 0..SURVEYS {
        let msisdn = format!("99894{i:07}");
        let body = serde_json::json!({"id": format!("call-{i}"), "msisdn": msisdn,
            "operator": "op-1", "channel": "call"});
        let resp = raw(
            setup.http,
            "POST",
            "/api/v1/flows/survey/events",
            &json,
            Some(body.to_string().as_bytes()),
        )
        .await;
        assert_eq!(resp.status, 202, "{}", resp.json);
        // Acknowledged only once the rating is on disk.
        assert!(send_mo(&smsc, &msisdn, "4").await.is_ok());
    }

    // The route is behind the tokens, wants an absolute path and a new or empty directory.
    let route = "/api/v1/store/backup";
    let body = |dir: &str| serde_json::json!({ "dir": dir }).to_string();
    let no_token = [json[1].clone()];
    let resp = raw(
        setup.http,
        "POST",
        route,
        &no_token,
        Some(body("/tmp/x").as_bytes()),
    )
    .await;
    assert_eq!(resp.status, 401, "{}", resp.json);
    let resp = raw(
        setup.http,
        "POST",
        route,
        &json,
        Some(body("relative").as_bytes()),
    )
    .await;
    assert_eq!(resp.status, 422, "{}", resp.json);
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(taken.join("something")).unwrap();
    let resp = raw(
        setup.http,
        "POST",
        route,
        &json,
        Some(body(&taken.display().to_string()).as_bytes()),
    )
    .await;
    assert_eq!(resp.status, 409, "{}", resp.json);

    // The CLI finds the store locked and asks the service.
    let backup_dir = dir.path().join("backup");
    let backup_arg = backup_dir.display().to_string();
    let out = smsflow(&["store", "backup", &backup_arg], &setup.config).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("written by the running service"),
        "{stdout}"
    );
    for args in [&["store", "verify"][..], &["store", "restore", &backup_arg]] {
        let out = smsflow(args, &setup.config).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("in use by a running"), "{args:?}: {stderr}");
    }
    stop_with_sigterm(&mut service).await;

    // Stopped: restore over the live store, then verify it.
    let out = smsflow(&["store", "restore", &backup_arg], &setup.config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no problems found"), "{stdout}");
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("data.before-restore-")
        });
    assert!(aside.is_some(), "the store that was there is kept");
    let out = smsflow(&["store", "verify"], &setup.config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("no problems found"), "{stdout}");
    let ratings = ratings_by_subscriber(&Store::open(&setup.data).unwrap());
    assert_eq!(
        ratings.len(),
        SURVEYS,
        "every acknowledged rating is in the backup"
    );
    smsc.shutdown().await;
}
