//! What makes an SMSC's certificate trusted, and what a refused one logs. A carrier's
//! self-signed certificate made with `openssl req -x509` (basicConstraints CA:TRUE) on node
//! `smpp`'s TLS server, given as `tls_ca` or pinned by `tls_pin_sha256`, through the pool and
//! through `smsflow run`; and the sentence of each handshake failure a real handshake can
//! produce here (docs/config.md lists them all; src/tls/explain.rs tests the rest).
//!
//! Certificates are made at run time (openssl, rcgen) in temp dirs; none is committed.
//! See: issue 25 item 12, issue 27 item 8.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;

use rcgen::ExtendedKeyUsagePurpose;
use smsflow::tls::{ClientTls, Pin, SmscTrust};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::interop::{NodePeer, node_tls_smsc};
use crate::run::{run_refused, service_setup};
use crate::tls::{Pki, add_to_table, failed_twice, smsc_tls, tls_pool, tls_simulator};
use crate::util::{TempDir, WAIT, until_ready};

/// A self-signed certificate and key made exactly as carriers make theirs, `openssl req -x509
/// -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost`
/// (basicConstraints CA:TRUE, valid 30 days), as `stem.pem` and `stem.key` in `dir`.
fn openssl_self_signed(dir: &std::path::Path, stem: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "openssl no longer makes CA:TRUE certificates; the tests assume it does"
    );
    (cert, key)
}

/// The pin of the certificate at `cert` as docs/config.md says to compute it, with openssl.
fn openssl_pin(cert: &std::path::Path) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in \"$1\" -noout -pubkey | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        )
        .arg("sh")
        .arg(cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Binds over TLS with `tls` to node, submits one message and unbinds.
async fn bind_and_submit(smsc: &mut NodePeer, addr: SocketAddr, tls: ClientTls) {
    let (pool, _inbound) = tls_pool(addr, tls);
    smsc.event("bound", |e| e["event"] == "bound").await;
    let sent = tokio::time::timeout(WAIT, pool.send_text("998901234567", "5"))
        .await
        .expect("submit answered over TLS")
        .unwrap();
    assert_eq!(sent.message_ids.len(), 1);
    smsc.pdu("submit_sm").await;
    pool.shutdown().await;
    smsc.pdu("unbind").await;
}

/// Asserts that `error` begins with `start` and ends with `end` (a date or an address between).
fn assert_said(error: &str, start: &str, end: &str) {
    assert!(
        error.starts_with(start),
        "{error}\ndoes not start with\n{start}"
    );
    assert!(error.ends_with(end), "{error}\ndoes not end with\n{end}");
}

/// The error a pool with `tls` logs for its failed connects to node.
async fn refused(addr: SocketAddr, tls: ClientTls) -> String {
    let (pool, _inbound) = tls_pool(addr, tls);
    let status = failed_twice(&pool).await;
    pool.shutdown().await;
    assert!(!status.bound);
    status.last_error.unwrap_or_default()
}

/// A carrier's certificate made with `openssl req -x509` (self-signed, basicConstraints
/// CA:TRUE) on node `smpp`'s TLS server: given as tls_ca it binds, and so does its key's pin
/// alone; a wrong name, a tls_ca it is not in, and another pin are refused saying what to do.
/// See: issue 25, item 12 (rustls refused it as `CaUsedAsEndEntity`; Kannel binds to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_openssl_certificate_binds_by_tls_ca_or_pin_against_node_smsc() {
    let dir = TempDir::new("interop-openssl");
    let (cert, key) = openssl_self_signed(dir.path(), "smsc");
    let pin = openssl_pin(&cert);
    let der = smsflow::tls::read_certificates(&cert).unwrap().remove(0);
    assert_eq!(
        Pin::of_certificate(&der).map(|p| p.to_string()),
        Some(pin.clone()),
        "our pin is the one docs/config.md's openssl command computes"
    );
    let (mut smsc, addr) = node_tls_smsc(&cert, &key).await;
    let ca_file = || SmscTrust::ca_file(&cert).unwrap();

    // The certificate itself as tls_ca.
    bind_and_submit(&mut smsc, addr, smsc_tls(ca_file(), "localhost", None)).await;
    // Its key's pin alone.
    let pins = SmscTrust {
        ca: None,
        pins: vec![Pin::parse(&pin).unwrap()],
    };
    bind_and_submit(&mut smsc, addr, smsc_tls(pins, "localhost", None)).await;

    // Pinned, but the name is still checked.
    assert_eq!(
        refused(addr, smsc_tls(ca_file(), "smsc.carrier.example", None)).await,
        "TLS handshake with sim failed: name mismatch: the SMSC's certificate presents \
         \"localhost\", expected \"smsc.carrier.example\"; set tls_server_name to one of the \
         names it presents"
    );
    // A tls_ca that does not hold it: the CA:TRUE certificate is no server certificate.
    let pki = Pki::new("interop-openssl");
    assert_eq!(
        refused(addr, pki.client_tls("localhost", false)).await,
        format!(
            "TLS handshake with sim failed: the SMSC's certificate is a CA certificate \
             (basicConstraints CA:TRUE, as `openssl req -x509` makes) and not in tls_ca \"{}\" \
             (\"smsflow test CA\"); to trust exactly this certificate, give it as tls_ca, or ask \
             the carrier for a server certificate signed by its CA",
            pki.path("ca.pem").display()
        )
    );
    // Another pin, although tls_ca holds the certificate.
    let other_pin = SmscTrust {
        pins: vec![Pin::parse("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=").unwrap()],
        ..ca_file()
    };
    assert_eq!(
        refused(addr, smsc_tls(other_pin, "localhost", None)).await,
        format!(
            "TLS handshake with sim failed: pin mismatch: the SMSC's certificate has a key with \
             the SPKI pin \"{pin}\", which is not in tls_pin_sha256; if the carrier changed its \
             key, confirm this pin with them and add it"
        )
    );
    smsc.quit().await;
}

/// An expired self-signed certificate given as tls_ca is refused with its date, although it
/// is pinned byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_pinned_certificate_is_refused_with_its_date_against_node_smsc() {
    let dir = TempDir::new("interop-expired");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = rcgen::date_time_ymd(2023, 1, 1);
    params.not_after = rcgen::date_time_ymd(2024, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let (cert_path, key_path) = (dir.path().join("old.pem"), dir.path().join("old.key"));
    std::fs::write(&cert_path, params.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (smsc, addr) = node_tls_smsc(&cert_path, &key_path).await;

    let trust = SmscTrust::ca_file(&cert_path).unwrap();
    let error = refused(addr, smsc_tls(trust, "localhost", None)).await;
    assert_said(
        &error,
        "TLS handshake with sim failed: the SMSC's certificate expired on 2024-01-01 \
             00:00:00 UTC (it is now 20",
        "the carrier must renew it, or, if that date is not past, this host's clock is wrong",
    );
    smsc.quit().await;
}

/// A certificate whose start date is ahead of this host's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_not_valid_yet_is_refused_with_its_start_date() {
    let pki = Pki::new("future");
    let server = ["127.0.0.1", "localhost"];
    pki.issue(
        "future",
        false,
        &server,
        ExtendedKeyUsagePurpose::ServerAuth,
        |p| {
            p.not_before = rcgen::date_time_ymd(2090, 1, 1);
            p.not_after = rcgen::date_time_ymd(2091, 1, 1);
        },
    );
    let smsc = tls_simulator(pki.server_config("future", false)).await;
    let error = refused(smsc.local_addr(), pki.client_tls("localhost", false)).await;
    assert_said(
        &error,
        "TLS handshake with sim failed: the SMSC's certificate is not valid until \
             2090-01-01 00:00:00 UTC (it is now 20",
        "check this host's clock, or ask the carrier to fix the certificate's start date",
    );
    smsc.shutdown().await;
}

/// A certificate made for TLS clients, not servers (extendedKeyUsage clientAuth only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_made_for_clients_is_refused() {
    let pki = Pki::new("eku");
    let server = ["127.0.0.1", "localhost"];
    pki.issue(
        "for-clients",
        false,
        &server,
        ExtendedKeyUsagePurpose::ClientAuth,
        |_| {},
    );
    let smsc = tls_simulator(pki.server_config("for-clients", false)).await;
    assert_eq!(
        refused(smsc.local_addr(), pki.client_tls("localhost", false)).await,
        "TLS handshake with sim failed: the SMSC's certificate is not meant for a TLS server \
         (its extendedKeyUsage lacks serverAuth); ask the carrier for a server certificate"
    );
    smsc.shutdown().await;
}

/// `tls = true` against a plain SMPP port: our simulator without TLS drops the connection at
/// the ClientHello (no valid command_length), as a firewall refusing this host would; an SMSC
/// that answers it with generic_nack is "not TLS".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plain_smpp_port_points_at_the_port() {
    let pki = Pki::new("plain");
    let smsc = smsflow::sim::start(smsflow::sim::SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..smsflow::sim::SimConfig::default()
    })
    .await
    .unwrap();
    let addr = smsc.local_addr();
    assert_eq!(
        refused(addr, pki.client_tls("localhost", false)).await,
        format!(
            "TLS handshake with sim failed: {addr} closed the connection during the TLS \
             handshake (tls handshake eof): is it the SMSC's TLS port, and does the carrier \
             accept connections from this host?"
        )
    );
    smsc.shutdown().await;

    // generic_nack, ESME_RINVCMDLEN, to whatever the ClientHello looked like.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let nacker = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0; 16];
            let _ = socket.read_exact(&mut hello).await;
            let nack = crate::util::frame(0x8000_0000, 0x02, 0, &[]);
            let _ = socket.write_all(&nack).await;
        }
    });
    let error = refused(addr, pki.client_tls("localhost", false)).await;
    assert_said(
        &error,
        &format!(
            "TLS handshake with sim failed: {addr} does not answer in TLS (received corrupt \
             message"
        ),
        "is it the SMSC's TLS port? Carriers usually offer SMPP over TLS on 3550 and plain \
             SMPP on 2775 (set tls = false for a plain port)",
    );
    nacker.abort();
}

/// Mutual TLS with a client certificate from a CA the SMSC does not trust: with TLS 1.3 its
/// alert arrives after our side of the handshake, with the first read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_the_smsc_does_not_trust_is_named() {
    let pki = Pki::new("rogue-client");
    pki.issue(
        "rogue-client",
        true,
        &["esme.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
        |_| {},
    );
    let smsc = tls_simulator(pki.server_config("server", true)).await;
    let trust = SmscTrust::ca_file(&pki.path("ca.pem")).unwrap();
    let tls = smsc_tls(trust, "localhost", Some(pki.identity("rogue-client")));
    let (pool, _inbound) = tls_pool(smsc.local_addr(), tls);
    let status = failed_twice(&pool).await;
    assert_eq!(
        status.last_error.as_deref(),
        Some(
            "connection lost: the SMSC does not trust the CA that signed our client certificate \
             (tls_cert); ask the carrier which CA it accepts, or for a certificate it issues"
        )
    );
    assert_eq!(smsc.stats().binds_accepted, 0);
    pool.shutdown().await;
    smsc.shutdown().await;
}

/// `smsflow run` with a carrier's `openssl req -x509` certificate: `tls_ca` the certificate
/// and `tls_pin_sha256` its key binds (`/readyz` 200); another pin logs, at each attempt, an
/// ERROR naming the pin the SMSC presented, and never binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_binds_to_a_pinned_self_signed_smsc_and_logs_a_pin_mismatch() {
    let dir = TempDir::new("run-pin");
    let (cert, key) = openssl_self_signed(dir.path(), "carrier");
    let pin = openssl_pin(&cert);
    let server = smsflow::tls::server_config_from_files(&cert, &key, None).unwrap();
    let smsc = tls_simulator(server).await;
    let configure = |name: &str, pin: &str| {
        let run_dir = dir.path().join(name);
        std::fs::create_dir_all(&run_dir).unwrap();
        let setup = service_setup(&run_dir, smsc.local_addr().port(), &[]);
        let keys = format!(
            "tls = true\ntls_ca = {:?}\ntls_server_name = \"localhost\"\n\
             tls_pin_sha256 = [\"{pin}\"]\n",
            cert.display().to_string()
        );
        add_to_table(&setup.config, "[[smsc]]", &keys);
        setup
    };

    let good = configure("good", &pin);
    let mut service = crate::run::spawn_service(&good.config);
    until_ready(good.http).await;
    assert_eq!(smsc.stats().binds_accepted, 1);
    crate::run::stop_with_sigterm(&mut service).await;

    let other = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
    let bad = configure("bad", other);
    let mut service = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["run", "--config"])
        .arg(&bad.config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(service.stderr.take().unwrap()).lines();
    let expected = format!(
        "TLS handshake with sim failed: pin mismatch: the SMSC's certificate has a key with the \
         SPKI pin \"{pin}\", which is not in tls_pin_sha256; if the carrier changed its key, \
         confirm this pin with them and add it"
    );
    let line = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("pin mismatch") {
                return line;
            }
        }
        panic!("smsflow run exited without logging the pin mismatch");
    })
    .await
    .expect("the pin mismatch is logged");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&expected), "{line}");
    assert_eq!(smsc.stats().binds_accepted, 1, "the wrong pin never bound");
    service.kill().await.unwrap();
    smsc.shutdown().await;
}

/// A malformed pin stops `smsflow run` with exit 2, naming the entry and its line.
#[tokio::test]
async fn run_with_a_malformed_pin_exits_2_naming_the_entry_and_its_line() {
    let config = "[[smsc]]\nname = \"x\"\npassword = \"p\"\ntls = true\n\
                  tls_pin_sha256 = [\n  \"sha256//q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\",\n]\n";
    let (code, stderr) = run_refused("run-bad-pin", config).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "smsflow.toml:6: smsc[0].tls_pin_sha256[0]: \"sha256//q6urq6urq6urq6urq6urq6urq6urq6ur\
             q6urq6urq6s=\" has curl's \"sha256//\" prefix; write only the base64: \"q6ur"
        ),
        "{stderr}"
    );
}
