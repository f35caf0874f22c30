//! The `smsflow` binary: parses the command line and hands off to the library.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use smsflow::sim::{self, SimConfig, SubscribersConfig};

mod store_cli;

/// SMS surveys and staff-call escalation over SMPP.
#[derive(Debug, Parser)]
#[command(name = "smsflow", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the embedded default scenario against the built-in SMSC simulator.
    Demo {
        /// Number of simulated surveys.
        #[arg(long, default_value_t = 50)]
        surveys: u32,
        /// Number of simulated staff-call incidents.
        #[arg(long, default_value_t = 5)]
        incidents: u32,
    },
    /// Run the service: bind to the SMSC, run the flows, serve the HTTP API.
    Run {
        /// The config file (default: ./smsflow.toml if present, else built-in defaults).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Start on a store that lost commits (disk damage), sealed as it is: the missing
        /// steps are lost for good and messages already sent may be sent again.
        #[arg(long)]
        accept_data_loss: bool,
    },
    /// Run the built-in SMSC simulator as a standalone server, for trying `run` by hand.
    Smsc(SmscArgs),
    /// Compile every flow, check its hooks and run the test_* functions inside the scripts.
    Check {
        /// A directory of flow scripts (`*.rhai`), or one of them (default: service.scripts_dir).
        #[arg(long)]
        scripts: Option<std::path::PathBuf>,
        /// Time zone of local_hour() and quiet hours in the tests (default: service.timezone).
        #[arg(long)]
        timezone: Option<String>,
        /// The config file (default: ./smsflow.toml if present, else built-in defaults).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Print a report: the CSI survey (`csi`) or staff calls and escalation (`incidents`).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Check, back up or restore the store (service.data_dir).
    #[command(subcommand)]
    Store(store_cli::StoreCommand),
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Customer satisfaction: responses, averages, groups, comments, anomalies.
    Csi(ReportArgs),
    /// Staff calls: acknowledged, escalated, time to ack.
    Incidents(ReportArgs),
}

/// What both reports take.
#[derive(Debug, Args)]
struct ReportArgs {
    /// First day, YYYY-MM-DD, in service.timezone (default: 29 days before --to).
    #[arg(long)]
    from: Option<String>,
    /// Last day, inclusive (default: today).
    #[arg(long)]
    to: Option<String>,
    /// Rows: day, week, month, or operator, channel (csi), location, button (incidents).
    #[arg(long)]
    by: Option<String>,
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    format: FormatArg,
    /// Write to this file instead of standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// The config file (default: ./smsflow.toml if present, else built-in defaults).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Table,
    Csv,
    Json,
    Html,
    Xlsx,
}

impl From<FormatArg> for smsflow::report::render::Format {
    fn from(f: FormatArg) -> Self {
        use smsflow::report::render::Format;
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Csv => Format::Csv,
            FormatArg::Json => Format::Json,
            FormatArg::Html => Format::Html,
            FormatArg::Xlsx => Format::Xlsx,
        }
    }
}

/// What `smsflow smsc` takes; turned into a [`SimConfig`] before anything starts.
#[derive(Debug, Args)]
struct SmscArgs {
    /// Address to accept ESME connections on.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: SocketAddr,
    /// The system_id ESMEs must bind with.
    #[arg(long, default_value = "smsflow")]
    system_id: String,
    /// The password ESMEs must bind with.
    #[arg(long, default_value = "smsflow")]
    password: String,
    /// Play subscribers and staff who answer surveys and escalations.
    #[arg(long)]
    subscribers: bool,
    /// How long after a submit_sm its delivery receipt comes, e.g. `200ms`, `2s`.
    #[arg(long, default_value = "200ms")]
    receipt_delay: humantime::Duration,
    /// Seed of every random choice (receipt outcomes, subscriber replies).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Serve SMPP over TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by a CA in this PEM file (mutual TLS).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_client_ca: Option<std::path::PathBuf>,
}

impl SmscArgs {
    /// The simulator's config; the TLS files are read here, so a bad one is a usage error
    /// before anything listens.
    fn into_config(self) -> Result<SimConfig, smsflow::tls::TlsError> {
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
            system_id: self.system_id,
            password: self.password,
            receipt_delay: self.receipt_delay.into(),
            seed: self.seed,
            subscribers: self.subscribers.then(SubscribersConfig::default),
            tls,
            ..SimConfig::default()
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { surveys, incidents } => run_demo(surveys, incidents),
        Command::Smsc(args) => match args.into_config() {
            Ok(config) => run_smsc(config),
            Err(error) => {
                eprintln!("smsflow smsc: {error}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            config,
            accept_data_loss,
        } => run_service(config.as_deref(), accept_data_loss),
        Command::Check {
            scripts,
            timezone,
            config,
        } => run_check(scripts, timezone, config),
        Command::Report(command) => run_report(command),
        Command::Store(command) => store_cli::run(command),
    }
}

/// `smsflow report`: exit 2 for bad usage or a bad config, 1 when the report cannot be made.
fn run_report(command: ReportCommand) -> ExitCode {
    use smsflow::report::{Kind, cli};
    let (kind, args) = match command {
        ReportCommand::Csi(args) => (Kind::Csi, args),
        ReportCommand::Incidents(args) => (Kind::Incidents, args),
    };
    let config = match smsflow::config::Config::discover(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(2);
        }
    };
    let format = smsflow::report::render::Format::from(args.format);
    if format.is_binary() && args.out.is_none() && std::io::stdout().is_terminal() {
        eprintln!("smsflow report: xlsx is a binary file: add --out FILE");
        return ExitCode::from(2);
    }
    let request = cli::Request {
        kind,
        from: args.from,
        to: args.to,
        by: args.by,
        format,
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let (bytes, origin) = match cli::run(&request, &config, now) {
        Ok(done) => done,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    if let cli::Origin::Service(addr) = &origin {
        eprintln!("smsflow report: the store is in use; the running service at {addr} answered");
    }
    let written = match &args.out {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| (path.display().to_string(), e)),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| ("standard output".to_owned(), e))
        }
    };
    match written {
        Ok(()) => {
            if let Some(path) = &args.out {
                eprintln!("smsflow report: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err((what, error)) => {
            eprintln!("smsflow report: cannot write {what}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `smsflow run`: exit 2 for a bad config (the message names file, line and key), 1 when the
/// service fails, 0 after a clean stop on SIGINT/SIGTERM.
fn run_service(config: Option<&std::path::Path>, accept_data_loss: bool) -> ExitCode {
    let config = match smsflow::config::Config::discover(config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow run: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smsflow run: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let stop = async {
        if let Err(error) = shutdown_signal().await {
            tracing::error!("cannot wait for signals: {error}");
            std::future::pending::<()>().await;
        }
    };
    let options = smsflow::service::run::RunOptions { accept_data_loss };
    match runtime.block_on(smsflow::service::run::run_with(config, options, stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("smsflow run: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// `smsflow demo`: the whole product on loopback; prints the summaries.
fn run_demo(surveys: u32, incidents: u32) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smsflow demo: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = smsflow::service::demo::DemoConfig {
        surveys,
        incidents,
        seed: 7,
    };
    println!(
        "smsflow demo: built-in SMSC on loopback, {surveys} surveys and {incidents} staff calls; simulated people answer"
    );
    let progress = std::io::stderr().is_terminal();
    match runtime.block_on(smsflow::service::demo::run(config, progress)) {
        Ok(report) => {
            let mut out = std::io::stdout();
            if smsflow::service::demo::print(&report, &mut out).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("smsflow demo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `smsflow check`: exit 0 when every script compiles and every test passes, 1 otherwise,
/// 2 for bad usage or a bad config.
fn run_check(
    scripts: Option<std::path::PathBuf>,
    timezone: Option<String>,
    config: Option<std::path::PathBuf>,
) -> ExitCode {
    let config = match smsflow::config::Config::discover(config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow check: {error}");
            return ExitCode::from(2);
        }
    };
    let zone = match timezone {
        None => config.service.timezone.clone(),
        Some(name) => match jiff::tz::TimeZone::get(&name) {
            Ok(zone) => zone,
            Err(error) => {
                eprintln!("smsflow check: unknown time zone {name:?}: {error}");
                return ExitCode::from(2);
            }
        },
    };
    let scripts = scripts.unwrap_or(config.service.scripts_dir);
    let is_script = scripts.is_file() && scripts.extension().is_some_and(|x| x == "rhai");
    if !scripts.is_dir() && !is_script {
        eprintln!(
            "smsflow check: {} is neither a directory of flow scripts nor a .rhai file",
            scripts.display()
        );
        return ExitCode::from(2);
    }
    let webhooks = smsflow::config::webhook::names(&config.webhook);
    let report = smsflow::flow::check::run_configured(&scripts, zone, &webhooks);
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    match smsflow::flow::check::print(&report, &mut std::io::stdout(), color) {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Runs the simulator until SIGINT or SIGTERM, then unbinds every session.
fn run_smsc(config: SimConfig) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smsflow smsc: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let smsc = match sim::start(config).await {
            Ok(smsc) => smsc,
            Err(error) => {
                eprintln!("smsflow smsc: {error}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "smsflow smsc listening on {}{} (system_id {})",
            smsc.local_addr(),
            if smsc.config().tls.is_some() {
                " over TLS"
            } else {
                ""
            },
            smsc.config().system_id
        );
        if let Err(error) = shutdown_signal().await {
            eprintln!("smsflow smsc: cannot wait for signals: {error}");
        }
        smsc.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Logs to stderr with MSISDNs redacted (see [`smsflow::logging`]); `RUST_LOG` overrides the
/// default `info`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    if smsflow::logging::redaction_enabled() {
        builder
            .with_writer(smsflow::logging::Redacting(std::io::stderr))
            .init();
    } else {
        builder.with_writer(std::io::stderr).init();
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
