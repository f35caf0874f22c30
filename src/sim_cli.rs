//! The simulator's command line: `smsflow smsc` (its options) and `smsflow sim mo|messages`,
//! the client of its control port (`smsflow smsc --control ADDR`, see
//! [`smsflow::sim::control`]): a text from a phone by hand, and what the service sent.
//!
//! Exit codes as everywhere: 0 ok, 1 the job failed (the port cannot be reached, the MO was
//! not acknowledged), 2 bad usage (including what the port refused as bad input).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use smsflow::report::remote::{self, RemoteError};
use smsflow::sim::{SimConfig, SubscribersConfig};

/// The examples of `smsflow smsc --help`.
pub const SMSC_EXAMPLES: &str = "\
Examples:
  smsflow smsc --subscribers               127.0.0.1:2775, account smsflow/smsflow
  smsflow smsc --subscribers --control 127.0.0.1:2776   and MOs by hand: smsflow sim mo
  smsflow smsc --listen 0.0.0.0:2775 --system-id acme --password secret --seed 7
  smsflow smsc --tls-cert server.pem --tls-key server.key --tls-client-ca ca.pem";

/// The examples of `smsflow sim --help`.
pub const SIM_EXAMPLES: &str = "\
Examples:
  smsflow sim mo --from 998901111111 \"OK 100\"          a nurse takes call 100
  smsflow sim messages --to 998901234567              what the service sent that number

Both talk to `smsflow smsc --control ADDR` (default http://127.0.0.1:2776).";

/// What `smsflow smsc` takes; turned into a [`SimConfig`] before anything starts.
#[derive(Debug, Args)]
pub struct SmscArgs {
    /// Address to accept ESME connections on.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: SocketAddr,
    /// The system_id ESMEs must bind with.
    #[arg(long, default_value = "smsflow")]
    system_id: String,
    /// The password ESMEs must bind with.
    #[arg(long, default_value = "smsflow")]
    password: String,
    /// Play subscribers and staff who answer surveys (on the scale each question names) and
    /// staff calls.
    #[arg(long)]
    subscribers: bool,
    /// Open an HTTP control port here: POST /mo {"from","text"} sends an MO to the bound
    /// ESME, GET /messages lists what it submitted (`smsflow sim` is its client).
    #[arg(long, value_name = "ADDR")]
    pub control: Option<SocketAddr>,
    /// How long after a submit_sm its delivery receipt comes, e.g. `200ms`, `2s`.
    #[arg(long, default_value = "200ms")]
    receipt_delay: humantime::Duration,
    /// Seed of every random choice (receipt outcomes, subscriber replies).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve SMPP over TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by a CA in this PEM file (mutual TLS).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
}

impl SmscArgs {
    /// The simulator's config; the TLS files are read here, so a bad one is a usage error
    /// before anything listens.
    pub fn to_config(&self) -> Result<SimConfig, smsflow::tls::TlsError> {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(smsflow::tls::server_config_from_files(
                cert,
                key,
                self.tls_client_ca.as_deref(),
            )?),
            // clap's `requires` makes one without the other a usage error.
            _ => None,
        };
        Ok(SimConfig {
            listen: self.listen,
            system_id: self.system_id.clone(),
            password: self.password.clone(),
            receipt_delay: self.receipt_delay.into(),
            seed: self.seed,
            subscribers: self.subscribers.then(SubscribersConfig::default),
            tls,
            ..SimConfig::default()
        })
    }
}

/// `smsflow sim`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Send a text from a phone to the service through the simulator (an MO), and say whether
    /// the service acknowledged it.
    #[command(after_help = "\
Examples:
  smsflow sim mo --from 998901234567 \"5 спасибо\"
  smsflow sim mo --from 998901111111 \"OK 100\" --control http://127.0.0.1:2776
  smsflow sim mo --from 998901234567 --to 5701 \"STOP\"

Exit 0 once the service acknowledged it, 1 when it did not within --wait (the simulator keeps
it queued) or refused it, 2 for bad input.")]
    Mo(MoArgs),
    /// List what the service sent through the simulator (oldest first): time, number, parts,
    /// encoding, what became of it, the text.
    #[command(after_help = "\
Examples:
  smsflow sim messages
  smsflow sim messages --to 998901234567 --limit 5
  smsflow sim messages -f json | jq '.messages[].text'")]
    Messages(MessagesArgs),
}

/// `--control`, shared by the `sim` commands.
#[derive(Debug, Args)]
pub struct ControlArg {
    /// The simulator's control port (`smsflow smsc --control ADDR`).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:2776")]
    control: String,
}

/// `smsflow sim mo`.
#[derive(Debug, Args)]
pub struct MoArgs {
    /// The phone the text comes from (MSISDN, digits).
    #[arg(long, value_name = "MSISDN")]
    from: String,
    /// The short code it goes to.
    #[arg(long, value_name = "CODE", default_value = "5700")]
    to: String,
    /// How long to wait for the service to acknowledge it (at most 60s).
    #[arg(long, default_value = "10s")]
    wait: humantime::Duration,
    /// The text, as the phone sends it.
    text: String,
    #[command(flatten)]
    control: ControlArg,
}

/// `smsflow sim messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    /// Only the messages to this number.
    #[arg(long, value_name = "MSISDN")]
    to: Option<String>,
    /// The newest this many (1–1000).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// The output format.
    #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
    #[command(flatten)]
    control: ControlArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    /// One line per message, for a terminal.
    Table,
    /// What GET /messages answers.
    Json,
}

/// Why a `sim` command failed: the message and the exit code.
struct Failed(String, u8);

pub fn run(command: SimCommand) -> ExitCode {
    let (name, result) = match command {
        SimCommand::Mo(args) => ("mo", mo(&args)),
        SimCommand::Messages(args) => ("messages", messages(&args)),
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failed(message, code)) => {
            eprintln!("smsflow sim {name}: {message}");
            ExitCode::from(code)
        }
    }
}

fn mo(args: &MoArgs) -> Result<String, Failed> {
    let addr = control_address(&args.control.control)?;
    let body = serde_json::json!({"from": args.from, "text": args.text, "to": args.to});
    let wait = Duration::from(args.wait);
    let path = format!("/mo?wait={}", humantime::format_duration(wait)).replace(' ', "");
    // The port answers within `wait`; a little more for the exchange itself.
    let timeout = wait + Duration::from_secs(5);
    let answer = remote::post(addr, &path, None, &body.to_string(), timeout)
        .map_err(|e| refused(e, &args.control.control))?;
    let answer: serde_json::Value = serde_json::from_str(&answer)
        .map_err(|e| Failed(format!("the control port answered no JSON: {e}"), 1))?;
    let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
    let parts = answer["parts"].as_u64().unwrap_or(1);
    let sent = format!(
        "{} → {}: {:?} ({parts} part{})",
        text("from"),
        text("to"),
        text("text"),
        if parts == 1 { "" } else { "s" }
    );
    match text("outcome").as_str() {
        "acknowledged" => Ok(format!("{sent} acknowledged by the service (ESME_ROK)\n")),
        _ => Err(Failed(format!("{sent}: {}", text("detail")), 1)),
    }
}

fn messages(args: &MessagesArgs) -> Result<String, Failed> {
    let addr = control_address(&args.control.control)?;
    let mut path = format!("/messages?limit={}", args.limit);
    if let Some(to) = &args.to {
        // Digits only (the port says so otherwise): nothing to escape but a leading +.
        path.push_str(&format!("&to={}", to.replace('+', "%2B")));
    }
    let answer = remote::get(addr, &path, None).map_err(|e| refused(e, &args.control.control))?;
    if matches!(args.format, ListFormat::Json) {
        return Ok(answer + "\n");
    }
    let answer: serde_json::Value = serde_json::from_str(&answer)
        .map_err(|e| Failed(format!("the control port answered no JSON: {e}"), 1))?;
    let mut out = String::new();
    let listed = answer["messages"].as_array().cloned().unwrap_or_default();
    if listed.is_empty() {
        out.push_str("(no messages yet)\n");
    }
    for m in &listed {
        let s = |key: &str| m[key].as_str().unwrap_or_default();
        let at = s("at").replace('T', " ");
        out.push_str(&format!(
            "{}Z {} → {} {} ×{} {}: {}\n",
            at.get(..19).unwrap_or(&at),
            s("from"),
            s("to"),
            s("encoding"),
            m["parts"].as_u64().unwrap_or(1),
            s("status"),
            s("text")
        ));
    }
    if answer["missed"].as_u64().is_some_and(|n| n > 0) {
        out.push_str(&format!(
            "({} messages came too fast to be listed)\n",
            answer["missed"]
        ));
    }
    Ok(out)
}

/// The socket address of a control-port URL: `http://HOST:PORT`, or `HOST:PORT`.
fn control_address(url: &str) -> Result<SocketAddr, Failed> {
    let bad = |why: &str| Failed(format!("--control {url:?}: {why}"), 2);
    if url.starts_with("https://") {
        return Err(bad("the control port speaks plain HTTP (http://HOST:PORT)"));
    }
    let host_port = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if host_port.contains('/') {
        return Err(bad("give only http://HOST:PORT, no path"));
    }
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| bad("not HOST:PORT (e.g. http://127.0.0.1:2776)"))
}

/// What a failed exchange with the control port means for the user.
fn refused(error: RemoteError, url: &str) -> Failed {
    match error {
        RemoteError::Status { status, detail, .. } if (400..500).contains(&status) => {
            Failed(detail, 2)
        }
        RemoteError::Connect { source, .. } => Failed(
            format!(
                "cannot reach the simulator's control port at {url}: {source} (is `smsflow smsc \
                 --control ADDR` running there?)"
            ),
            1,
        ),
        other => Failed(other.to_string(), 1),
    }
}
