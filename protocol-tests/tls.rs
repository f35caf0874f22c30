//! SMPP over TLS and HTTPS, with certificates made at run time (rcgen; none is committed):
//! the ESME pool against the simulator serving TLS (CA verification, mutual TLS, a wrong name,
//! an untrusted CA), `smsflow smsc --tls-*` and `smsflow run` with TLS to the SMSC and HTTPS
//! on the API and metrics, and bad TLS files as config errors (exit 2).
//!
//! Failures are awaited as events where there is one (a submit's answer, an MO's outcome, the
//! process's exit) and polled with [`until`] where the state belongs to another task (a slot's
//! connect attempts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use smsflow::esme::{InboundMessage, Pool, PoolConfig, tls_connector};
use smsflow::sim::{self, Mo, SimConfig, SmscHandle};
use smsflow::smpp::text::{self, MessageBody};
use smsflow::tls::{ClientTls, Identity, Origin, SmscTrust};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::run::{ServiceSetup, service_setup, stop_with_sigterm};
use crate::util::{TempDir, WAIT, until};

/// A test PKI in a temp dir: a CA with a server certificate for `127.0.0.1` and `localhost`
/// and a client certificate, and a second, untrusted CA with a server certificate of its own;
/// [`Pki::issue`] makes more.
pub struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    rogue: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = TempDir::new(&format!("tls-{name}"));
        let pki = Pki {
            dir,
            ca: Self::ca("smsflow test CA"),
            rogue: Self::ca("somebody else's CA"),
        };
        for (file, issuer) in [("ca.pem", &pki.ca), ("rogue-ca.pem", &pki.rogue)] {
            std::fs::write(pki.path(file), issuer.pem()).unwrap();
        }
        let server = ["127.0.0.1", "localhost"];
        pki.issue(
            "server",
            false,
            &server,
            ExtendedKeyUsagePurpose::ServerAuth,
            |_| {},
        );
        pki.issue(
            "client",
            false,
            &["esme.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            |_| {},
        );
        pki.issue(
            "rogue-server",
            true,
            &server,
            ExtendedKeyUsagePurpose::ServerAuth,
            |_| {},
        );
        pki
    }

    /// `stem.pem` and `stem.key`: a certificate for `names` with `usage`, signed by the test
    /// CA (or the rogue one), after `edit` (dates, say).
    pub fn issue(
        &self,
        stem: &str,
        rogue: bool,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        edit: impl FnOnce(&mut CertificateParams),
    ) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let issuer = if rogue { &self.rogue } else { &self.ca };
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(self.path(&format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{stem}.key")), key.serialize_pem()).unwrap();
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The server side: `stem` is `server` or `rogue-server`; `client_ca` requires client
    /// certificates from the test CA.
    pub fn server_config(&self, stem: &str, client_ca: bool) -> Arc<rustls::ServerConfig> {
        let ca = self.path("ca.pem");
        smsflow::tls::server_config_from_files(
            &self.path(&format!("{stem}.pem")),
            &self.path(&format!("{stem}.key")),
            client_ca.then_some(ca.as_path()),
        )
        .unwrap()
    }

    /// The ESME side as `[[smsc]]` builds it: trusts the test CA, checks `server_name`,
    /// presents the client certificate when `client_cert`.
    pub fn client_tls(&self, server_name: &str, client_cert: bool) -> ClientTls {
        let trust = SmscTrust::ca_file(&self.path("ca.pem")).unwrap();
        smsc_tls(
            trust,
            server_name,
            client_cert.then(|| self.identity("client")),
        )
    }

    /// The certificate and key of `stem` (`client`, `rogue-client`) as what we present.
    pub fn identity(&self, stem: &str) -> Identity {
        let key = self.path(&format!("{stem}.key"));
        Identity::load(
            &self.path(&format!("{stem}.pem")),
            (&std::fs::read(&key).unwrap(), Origin::File(key)),
        )
        .unwrap()
    }
}

/// The ESME's TLS for `trust` and `server_name`, the way `[[smsc]]` builds it.
pub fn smsc_tls(trust: SmscTrust, server_name: &str, identity: Option<Identity>) -> ClientTls {
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    ClientTls::for_smsc(trust, identity, name).unwrap()
}

pub(crate) async fn tls_simulator(server: Arc<rustls::ServerConfig>) -> SmscHandle {
    sim::start(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay: Duration::from_millis(20),
        tls: Some(server),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// One transceiver to `addr` over TLS, retrying quickly.
pub(crate) fn tls_pool(addr: SocketAddr, tls: ClientTls) -> (Pool, mpsc::Receiver<InboundMessage>) {
    let connector = tls_connector("sim", addr.ip().to_string(), addr.port(), tls);
    let mut config = PoolConfig::new("sim", connector);
    config.reconnect_min = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    Pool::start(config, 64)
}

/// Waits until the pool's only slot has failed and tried again (so the first failure is in
/// its status), then returns that status.
pub(crate) async fn failed_twice(pool: &Pool) -> smsflow::esme::SlotStatus {
    until(
        || pool.status()[0].connect_attempts >= 2,
        "a second attempt",
    )
    .await;
    pool.status().remove(0)
}

/// A survey both ways over TLS verified against the test CA: the question as submit_sm, the
/// subscriber's answer as deliver_sm acknowledged by the ESME, the receipt after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esme_binds_over_tls_with_ca_verification_and_exchanges_a_survey() {
    let pki = Pki::new("survey");
    let smsc = tls_simulator(pki.server_config("server", false)).await;
    let (pool, mut inbound) = tls_pool(smsc.local_addr(), pki.client_tls("127.0.0.1", false));
    let mut submitted = smsc.submitted();

    let question = "Оцените, пожалуйста, нашу работу по шкале от 1 до 5";
    let sent = tokio::time::timeout(WAIT, pool.send_text("998901234567", question))
        .await
        .expect("bound and answered in time")
        .unwrap();
    assert_eq!(sent.message_ids.len(), 1);
    let seen = submitted.recv().await.unwrap();
    assert_eq!(
        (seen.destination.as_str(), seen.text.as_str()),
        ("998901234567", question)
    );

    let delivery = smsc
        .inject_mo(Mo {
            source: "998901234567".into(),
            destination: "5700".into(),
            text: "5 отлично".into(),
        })
        .unwrap();
    // The receipt of the question and the answer, in whichever order they come.
    let (mut answer, mut receipt) = (None, None);
    while answer.is_none() || receipt.is_none() {
        let message = tokio::time::timeout(WAIT, inbound.recv())
            .await
            .expect("an inbound message in time")
            .expect("pool alive");
        match &message.inbound.receipt {
            Some(r) => receipt = Some(r.clone().unwrap().message_id),
            None => {
                answer = Some(text::decode(
                    message.inbound.data_coding,
                    &message.inbound.payload,
                ))
            }
        }
        message.ack.ack();
    }
    assert!(
        delivery.outcome().await.unwrap().is_ok(),
        "the ESME took the MO"
    );
    assert_eq!(receipt.as_deref(), Some(sent.message_ids[0].as_str()));
    assert_eq!(answer, Some(MessageBody::Text("5 отлично".into())));

    let stats = smsc.stats();
    assert_eq!(
        (stats.binds_accepted, stats.tls_handshakes_failed),
        (1, 0),
        "{stats:?}"
    );
    pool.shutdown().await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_binds_with_a_client_certificate_and_fails_without_one() {
    let pki = Pki::new("mtls");
    let smsc = tls_simulator(pki.server_config("server", true)).await;

    let (with_cert, _inbound) = tls_pool(smsc.local_addr(), pki.client_tls("127.0.0.1", true));
    tokio::time::timeout(WAIT, with_cert.send_text("998901234567", "1"))
        .await
        .expect("bound with the client certificate")
        .unwrap();
    with_cert.shutdown().await;

    let (without, _inbound) = tls_pool(smsc.local_addr(), pki.client_tls("127.0.0.1", false));
    let status = failed_twice(&without).await;
    let error = status.last_error.unwrap_or_default();
    // TLS 1.3: our side finishes its handshake; the SMSC's alert comes with the first read.
    assert_eq!(
        error,
        "connection lost: the SMSC requires a client certificate (mutual TLS) and we presented \
         none; set tls_cert and tls_key (or tls_key_env) to the certificate the carrier issued \
         for this account"
    );
    assert_eq!((status.bound, status.binds), (false, 0));
    let stats = smsc.stats();
    assert_eq!(
        stats.binds_accepted, 1,
        "only the session with a certificate bound"
    );
    assert!(stats.tls_handshakes_failed >= 1, "{stats:?}");
    without.shutdown().await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_server_name_fails_the_connect_with_a_clear_error_and_no_bind() {
    let pki = Pki::new("name");
    let smsc = tls_simulator(pki.server_config("server", false)).await;
    let (pool, _inbound) = tls_pool(
        smsc.local_addr(),
        pki.client_tls("smsc.wrong.example", false),
    );
    let status = failed_twice(&pool).await;
    let error = status.last_error.unwrap_or_default();
    assert_eq!(
        error,
        "TLS handshake with sim failed: name mismatch: the SMSC's certificate presents \
         \"127.0.0.1\", \"localhost\", expected \"smsc.wrong.example\"; set tls_server_name to \
         one of the names it presents"
    );
    assert_eq!((status.bound, status.binds), (false, 0));
    assert_eq!(smsc.stats().binds_accepted, 0);
    pool.shutdown().await;
    smsc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_fails_the_connect() {
    let pki = Pki::new("rogue");
    let smsc = tls_simulator(pki.server_config("rogue-server", false)).await;
    let (pool, _inbound) = tls_pool(smsc.local_addr(), pki.client_tls("127.0.0.1", false));
    let status = failed_twice(&pool).await;
    let error = status.last_error.unwrap_or_default();
    assert_eq!(
        error,
        format!(
            "TLS handshake with sim failed: unknown issuer: the SMSC's certificate is not signed \
             by a CA in tls_ca \"{}\" (\"smsflow test CA\"); tls_ca must be the CA that signed \
             it: ask the carrier for it (`openssl s_client -connect {} -showcerts` shows it)",
            pki.path("ca.pem").display(),
            smsc.local_addr()
        )
    );
    assert_eq!((status.bound, smsc.stats().binds_accepted), (false, 0));
    pool.shutdown().await;
    smsc.shutdown().await;
}

/// `smsflow smsc --tls-cert --tls-key` serves TLS; a key file that is no key is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsc_command_serves_tls_and_refuses_a_bad_key_file() {
    let pki = Pki::new("smsc-cli");
    let mut smsc = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["smsc", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.path("server.pem"))
        .arg("--tls-key")
        .arg(pki.path("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(smsc.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the simulator says where it listens")
        .unwrap()
        .unwrap();
    // "smsflow smsc listening on 127.0.0.1:PORT over TLS (system_id smsflow)"
    let addr: SocketAddr = line
        .strip_prefix("smsflow smsc listening on ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.contains("over TLS"), "{line}");
    let (pool, _inbound) = tls_pool(addr, pki.client_tls("localhost", false));
    tokio::time::timeout(WAIT, pool.send_text("998901234567", "5"))
        .await
        .expect("bound over TLS to the smsc command")
        .unwrap();
    pool.shutdown().await;
    smsc.kill().await.unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_smsflow"))
        .args(["smsc", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.path("server.pem"))
        .arg("--tls-key")
        .arg(pki.path("server.pem"))
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.pem\" holds no private key"),
        "{stderr}"
    );
}

/// Adds `lines` at the top of the `[table]` (or `[[table]]`) of the config at `path`.
pub(crate) fn add_to_table(path: &std::path::Path, header: &str, lines: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let header = format!("{header}\n");
    assert!(text.contains(&header), "no {header} in\n{text}");
    std::fs::write(path, text.replacen(&header, &format!("{header}{lines}"), 1)).unwrap();
}

/// An HTTP/1.1 request over TLS trusting the test CA only; the status and the body.
pub(crate) async fn https(
    pki: &Pki,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let roots = smsflow::tls::roots_from_file(&pki.path("ca.pem")).unwrap();
    let connector =
        tokio_rustls::TlsConnector::from(smsflow::tls::client_config(roots, None).unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the listener speaks TLS with a certificate from the test CA");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The server closes after answering (Connection: close); a missing close_notify is fine.
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    (status, body.to_owned())
}

/// `smsflow run` configured for SMPP over TLS (CA file, mutual TLS with the key in an
/// environment variable) and HTTPS on the API and metrics: a survey event posted over HTTPS
/// becomes the question at the SMSC, the answer is rated, and plain HTTP is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_over_tls_to_the_smsc_with_https_api_and_metrics() {
    run_over_tls_round("run").await;
}

/// The test above, under `name` (the SIGTERM loop repeats it).
pub(crate) async fn run_over_tls_round(name: &str) {
    let pki = Pki::new(name);
    let smsc = tls_simulator(pki.server_config("server", true)).await;
    let dir = TempDir::new(&format!("{name}-tls"));
    let setup: ServiceSetup = service_setup(dir.path(), smsc.local_addr().port(), &[]);
    let q = |file: &str| format!("{:?}", pki.path(file).display().to_string());
    add_to_table(
        &setup.config,
        "[[smsc]]",
        &format!(
            "tls = true\ntls_ca = {}\ntls_server_name = \"localhost\"\ntls_cert = {}\n\
             tls_key_env = \"SMSFLOW_TEST_TLS_KEY\"\n",
            q("ca.pem"),
            q("client.pem")
        ),
    );
    let https_keys = format!(
        "tls_cert = {}\ntls_key = {}\n",
        q("server.pem"),
        q("server.key")
    );
    add_to_table(&setup.config, "[http]", &https_keys);
    add_to_table(&setup.config, "[metrics]", &https_keys);
    // run.rs's spawn_service, plus the key in this child's environment only.
    let mut service = {
        let key = std::fs::read_to_string(pki.path("client.key")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_smsflow"));
        command
            .args(["run", "--config"])
            .arg(&setup.config)
            .env("SMSFLOW_TEST_TLS_KEY", key);
        crate::run::spawn_logged(command, &setup.config)
    };

    // Ready (bound over mutual TLS) as seen over HTTPS.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if TcpStream::connect(setup.http).await.is_ok()
            && https(&pki, setup.http, "GET", "/readyz", "").await.0 == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never ready over HTTPS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut submitted = smsc.submitted();
    let event = r#"{"id": "call-tls", "msisdn": "998901234567", "operator": "op-1", "channel": "call", "comment": false}"#;
    let (status, body) = https(
        &pki,
        setup.http,
        "POST",
        "/api/v1/flows/survey/events",
        event,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let question = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        question.text.starts_with("Спасибо за ваш звонок"),
        "{}",
        question.text
    );
    assert!(
        crate::util::send_mo(&smsc, "998901234567", "4")
            .await
            .is_ok()
    );
    let thanks = tokio::time::timeout(WAIT, submitted.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        thanks.text.starts_with("Спасибо за вашу оценку!"),
        "{}",
        thanks.text
    );

    let (status, metrics) = https(&pki, setup.metrics, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("smsflow_sessions_bound{smsc=\"sim\"} 1"),
        "{metrics}"
    );
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let plain = crate::http::try_raw(setup.http, "GET", "/healthz", &[], None).await;
    assert!(plain.is_none(), "plain HTTP answered on the HTTPS listener");

    stop_with_sigterm(&mut service).await;
    assert_eq!(smsc.stats().sessions_bound, 0, "unbound before exit");
    smsc.shutdown().await;
}

/// A TLS file that cannot be read stops `smsflow run` with exit 2 naming the key and file.
#[tokio::test]
async fn run_with_a_missing_ca_file_exits_2_naming_the_key_and_the_file() {
    let config = "[[smsc]]\nname = \"x\"\npassword = \"p\"\ntls = true\n\
                  tls_ca = \"/nonexistent/carrier-ca.pem\"\n";
    let (code, stderr) = crate::run::run_refused("run-tls-bad", config).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "smsflow.toml:5: smsc[0].tls_ca: cannot read \"/nonexistent/carrier-ca.pem\""
        ),
        "{stderr}"
    );
}
