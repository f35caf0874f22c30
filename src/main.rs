//! The `smsflow` binary: parses the command line and hands off to the library.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use smsflow::sim::{self, SimConfig};

use cli::{CheckArgs, Cli, ColorWhen, Command, DemoArgs, ReportCommand, ResponsesArgs, RunArgs};

mod cli;
mod config_arg;
mod sim_cli;
mod store_cli;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // clap prints help and usage errors while parsing: it needs --color before that.
    let color = ColorWhen::from_args(&args);
    let mut command = Cli::command().color(color.clap());
    let matches = command.clone().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit());
    match cli.command {
        Command::Demo(args) => run_demo(args),
        Command::Smsc(args) => match args.to_config() {
            Ok(config) => run_smsc(config, args.control, cli.color),
            Err(error) => {
                eprintln!("smsflow smsc: {error}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) if args.check_config => check_config(args.config.path.as_deref()),
        Command::Run(args) => run_service(args, cli.color),
        Command::Check(args) => run_check(args, cli.color),
        Command::Report(command) => run_report(command),
        Command::Sim(command) => sim_cli::run(command),
        Command::Store(command) => store_cli::run(command),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut command, "smsflow", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

/// `smsflow report`: exit 2 for bad usage or a bad config, 1 when the report cannot be made.
fn run_report(command: ReportCommand) -> ExitCode {
    use smsflow::report::{Kind, cli};
    let (kind, by, flow, args) = match command {
        ReportCommand::Csi(args) => (
            Kind::Csi,
            crate::cli::by_name(args.by),
            Some(args.flow),
            args.report,
        ),
        ReportCommand::Incidents(args) if args.open => return run_open_calls(args),
        ReportCommand::Incidents(args) => (
            Kind::Incidents,
            crate::cli::by_name(args.by),
            None,
            args.report,
        ),
        ReportCommand::Audit(args) => {
            (Kind::Audit, crate::cli::by_name(args.by), None, args.report)
        }
        ReportCommand::Responses(args) => return run_responses(args),
    };
    let config = match smsflow::config::Config::discover(args.config.path.as_deref()) {
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
        by: Some(by),
        flow,
        format,
        source: args.source,
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let (bytes, origin) = match cli::run(&request, &config, now) {
        Ok(done) => done,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    note_origin(&origin);
    write_output(args.out.as_deref(), without_bom(&bytes, args.no_bom))
}

/// `smsflow report responses`: exit 2 for bad usage or a bad config, 1 when the feed cannot be
/// read.
fn run_responses(args: ResponsesArgs) -> ExitCode {
    use smsflow::report::cli;
    let config = match smsflow::config::Config::discover(args.config.path.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(2);
        }
    };
    let request = cli::FeedRequest {
        from: args.from,
        to: args.to,
        operator: args.operator,
        channel: args.channel,
        score: args.score,
        flow: args.flow,
        limit: args.limit,
        cursor: args.cursor,
        full_numbers: args.full_numbers,
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let rendered = cli::responses(&request, &config, now).and_then(|(page, origin)| {
        let format = smsflow::report::render::Format::from(args.format);
        smsflow::report::render::responses::render(&page, format)
            .map(|bytes| (bytes, origin))
            .map_err(|e| cli::CliError::Usage(e.to_string()))
    });
    emit(rendered, args.out.as_deref(), args.no_bom)
}

/// `smsflow report incidents --open`: the calls not over yet, from the store or the running
/// service; exit 2 for bad usage, 1 when they cannot be read.
fn run_open_calls(args: crate::cli::IncidentsArgs) -> ExitCode {
    use smsflow::report::cli;
    let args_report = args.report;
    let config = match smsflow::config::Config::discover(args_report.config.path.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(2);
        }
    };
    if args_report.source.is_some() || args_report.from.is_some() || args_report.to.is_some() {
        eprintln!(
            "smsflow report: --open lists the calls open now: it takes no --from, --to or --source"
        );
        return ExitCode::from(2);
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let format = smsflow::report::render::Format::from(args_report.format);
    let rendered = cli::open_calls(&config, now, args.full_numbers).and_then(|(page, origin)| {
        smsflow::report::render::responses::open_calls(&page, format)
            .map(|bytes| (bytes, origin))
            .map_err(|e| cli::CliError::Usage(e.to_string()))
    });
    emit(rendered, args_report.out.as_deref(), args_report.no_bom)
}

/// Writes a rendered page (saying where it was read from), or says why there is none, with
/// the error's exit code.
fn emit(
    rendered: Result<(Vec<u8>, smsflow::report::cli::Origin), smsflow::report::cli::CliError>,
    out: Option<&Path>,
    no_bom: bool,
) -> ExitCode {
    let (bytes, origin) = match rendered {
        Ok(done) => done,
        Err(error) => {
            eprintln!("smsflow report: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    note_origin(&origin);
    write_output(out, without_bom(&bytes, no_bom))
}

/// `bytes` without a leading UTF-8 byte order mark when `no_bom`.
fn without_bom(bytes: &[u8], no_bom: bool) -> &[u8] {
    match bytes.strip_prefix(smsflow::report::render::csv::BOM.as_bytes()) {
        Some(rest) if no_bom => rest,
        _ => bytes,
    }
}

/// Where a report came from, on stderr, when it was not simply the store.
fn note_origin(origin: &smsflow::report::cli::Origin) {
    use smsflow::report::cli::Origin;
    match origin {
        Origin::Service(addr) => {
            eprintln!(
                "smsflow report: the store is in use; the running service at {addr} answered"
            );
        }
        Origin::NoStore(dir) => eprintln!(
            "smsflow report: nothing recorded yet in {} (service.data_dir): the report is empty",
            dir.display()
        ),
        Origin::Stream {
            servers,
            nodes,
            events,
            duplicates,
        } => eprintln!(
            "smsflow report: {events} events from {} node(s) ({}) on NATS {servers}{}",
            nodes.len(),
            nodes.join(", "),
            match duplicates {
                0 => String::new(),
                n => format!("; {n} republished events counted once"),
            }
        ),
        Origin::Store => {}
    }
}

/// Writes a report to `out` or standard output.
fn write_output(out: Option<&Path>, bytes: &[u8]) -> ExitCode {
    let written = match out {
        Some(path) => std::fs::write(path, bytes).map_err(|e| (path.display().to_string(), e)),
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| ("standard output".to_owned(), e))
        }
    };
    match written {
        Ok(()) => {
            if let Some(path) = out {
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
fn run_service(args: RunArgs, color: ColorWhen) -> ExitCode {
    let config = match smsflow::config::Config::discover(args.config.path.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow run: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(color);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smsflow run: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let longest = smsflow::service::shutdown::longest(config.service.shutdown_timeout);
    let stop = async move {
        if let Err(error) = shutdown_signal().await {
            tracing::error!("cannot wait for signals: {error}");
            std::future::pending::<()>().await;
        }
        watch_the_stop(longest);
    };
    let options = smsflow::service::run::RunOptions {
        accept_data_loss: args.accept_data_loss,
    };
    let result = runtime.block_on(smsflow::service::run::run_with(config, options, stop));
    // Tasks still running (abandoned parts, blocking reads) are cancelled, not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("smsflow run: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Once a stop began: a second SIGINT/SIGTERM ends the process at once, and so does the stop
/// taking longer than `longest` (the bounded stop itself hanging), both with exit 3. The
/// store needs neither to be consistent: whatever was acknowledged is on disk.
fn watch_the_stop(longest: std::time::Duration) {
    use smsflow::service::shutdown::EXIT_STOP_TIMED_OUT;
    tokio::spawn(async {
        if shutdown_signal().await.is_ok() {
            eprintln!("smsflow run: a second signal: exiting now, without finishing the stop");
            std::process::exit(EXIT_STOP_TIMED_OUT.into());
        }
    });
    let watchdog = std::thread::Builder::new()
        .name("smsflow-stop-watchdog".into())
        .spawn(move || {
            std::thread::sleep(longest);
            eprintln!(
                "smsflow run: the stop is still not over after {}; exiting",
                humantime::format_duration(longest)
            );
            std::process::exit(EXIT_STOP_TIMED_OUT.into());
        });
    if let Err(error) = watchdog {
        tracing::warn!("cannot start the stop's watchdog: {error}");
    }
}

/// `smsflow run --check-config`: what `run` checks before it opens anything, and a summary of
/// what it would run with; exit 0, or 2 with the message naming file, line and key.
fn check_config(path: Option<&Path>) -> ExitCode {
    let checked = smsflow::config::Config::discover(path).and_then(|config| {
        config.require_smsc()?;
        Ok(config)
    });
    let config = match checked {
        Ok(config) => config,
        Err(error) => {
            eprintln!("smsflow run: {error}");
            return ExitCode::from(2);
        }
    };
    let scripts = &config.service.scripts_dir;
    let flows = match std::fs::read_dir(scripts) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "rhai"))
            .count(),
        Err(_) => 0,
    };
    let source = config
        .source
        .as_ref()
        .map_or("the built-in defaults".to_owned(), |p| {
            p.display().to_string()
        });
    if flows == 0 {
        // What `run` would refuse (exit 2) once it got that far.
        eprintln!(
            "smsflow run: {source}: service.scripts_dir: no flows (*.rhai) in {}",
            scripts.display()
        );
        return ExitCode::from(2);
    }
    println!("{source}: ok");
    for smsc in &config.smsc {
        let tls = if smsc.tls { ", TLS" } else { "" };
        println!(
            "  smsc {}: {}:{}{tls}, system_id {}, {} session(s)",
            smsc.name, smsc.host, smsc.port, smsc.system_id, smsc.sessions
        );
    }
    println!(
        "  data in {}, {flows} flow file(s) in {}, reports in {}",
        config.service.data_dir.display(),
        scripts.display(),
        config
            .service
            .timezone
            .iana_name()
            .unwrap_or("the configured zone"),
    );
    println!(
        "  HTTP API on {}, metrics on {}",
        config.http.listen, config.metrics.listen
    );
    println!("The flows themselves: smsflow check");
    ExitCode::SUCCESS
}

/// `smsflow demo`: the whole product on loopback; prints the summaries.
fn run_demo(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("smsflow demo: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config = smsflow::service::demo::DemoConfig {
        surveys: args.surveys,
        incidents: args.incidents,
        seed: args.seed,
        days: args.days,
        restaurant: !args.no_restaurant,
    };
    if smsflow::service::demo::print_header(&config, &mut std::io::stdout()).is_err() {
        return ExitCode::FAILURE;
    }
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
fn run_check(args: CheckArgs, color: ColorWhen) -> ExitCode {
    let CheckArgs {
        scripts,
        timezone,
        config,
    } = args;
    let config = match smsflow::config::Config::discover(config.path.as_deref()) {
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
    let color = color.enabled(std::io::stdout().is_terminal());
    match smsflow::flow::check::print(&report, &mut std::io::stdout(), color) {
        Ok(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Runs the simulator (and its control port on `control`) until SIGINT or SIGTERM, then
/// unbinds every session.
fn run_smsc(config: SimConfig, control: Option<SocketAddr>, color: ColorWhen) -> ExitCode {
    init_tracing(color);
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
        let control = match control {
            None => None,
            Some(addr) => match sim::control::serve(smsc.clone(), addr).await {
                Ok(port) => {
                    println!(
                        "smsflow smsc control port on http://{} (POST /mo, GET /messages; \
                         `smsflow sim mo --control http://{} --from MSISDN TEXT`)",
                        port.local_addr(),
                        port.local_addr()
                    );
                    Some(port)
                }
                Err(error) => {
                    eprintln!("smsflow smsc: the control port: {error}");
                    smsc.shutdown().await;
                    return ExitCode::FAILURE;
                }
            },
        };
        if let Err(error) = shutdown_signal().await {
            eprintln!("smsflow smsc: cannot wait for signals: {error}");
        }
        if let Some(port) = control {
            port.shutdown().await;
        }
        smsc.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// Logs to stderr with MSISDNs redacted (see [`smsflow::logging`]); `RUST_LOG` overrides the
/// default `info`.
fn init_tracing(color: ColorWhen) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(color.enabled(std::io::stderr().is_terminal()));
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
