//! The command line exactly as the user types it (clap), with the examples each `--help`
//! shows. `main.rs` turns these into library calls; nothing here starts anything.
//!
//! Conventions, after cargo and ripgrep: every subcommand's help ends with examples; the
//! common options have short forms (`-c` config, `-f` format, `-o` out); choices are value
//! enums, so `--help` lists them with their default; colour only on a terminal unless
//! `--color` says otherwise.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config_arg::ConfigArg;
use crate::{sim_cli, store_cli};

/// SMS surveys and staff-call escalation over SMPP.
#[derive(Debug, Parser)]
#[command(name = "smsflow", version, about, after_help = ROOT_EXAMPLES)]
pub struct Cli {
    /// When to colour the output (help, `check` results, logs): `auto` is only on a terminal
    /// and without NO_COLOR.
    #[arg(
        long,
        value_enum,
        global = true,
        default_value_t = ColorWhen::Auto,
        value_name = "WHEN",
        // Last in every command's help, after what the command itself takes.
        display_order = 1000
    )]
    pub color: ColorWhen,
    #[command(subcommand)]
    pub command: Command,
}

const ROOT_EXAMPLES: &str = "\
Examples:
  smsflow demo                         the whole product on loopback, ~21 s, prints the reports
  smsflow smsc --subscribers --control 127.0.0.1:2776
                                       an SMSC to try `run` against, with simulated people
  smsflow run -c smsflow.toml          the service
  smsflow sim mo --from 998901111111 \"OK 100\"
                                       a phone's text by hand, through smsc's control port
  smsflow report csi -f html -o csi.html
  smsflow completions bash > ~/.local/share/bash-completion/completions/smsflow

Exit codes: 0 ok, 1 the job failed, 2 bad usage or bad config.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded default scenario against the built-in SMSC simulator.
    #[command(after_help = DEMO_EXAMPLES)]
    Demo(DemoArgs),
    /// Run the service: bind to the SMSC, run the flows, serve the HTTP API.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Run the built-in SMSC simulator as a standalone server, for trying `run` by hand.
    #[command(after_help = sim_cli::SMSC_EXAMPLES)]
    Smsc(sim_cli::SmscArgs),
    /// Drive a running simulator by hand: a text from a phone (`mo`), what the service sent
    /// (`messages`).
    #[command(subcommand, after_help = sim_cli::SIM_EXAMPLES)]
    Sim(sim_cli::SimCommand),
    /// Compile every flow, check its hooks and run the test_* functions inside the scripts.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// Print a report: the CSI survey (`csi`), staff calls and escalation (`incidents`), or the
    /// response feed (`responses`).
    #[command(subcommand, after_help = REPORT_EXAMPLES)]
    Report(ReportCommand),
    /// Check, back up or restore the store (service.data_dir).
    #[command(subcommand, after_help = store_cli::EXAMPLES)]
    Store(store_cli::StoreCommand),
    /// Print a shell completion script to standard output.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const DEMO_EXAMPLES: &str = "\
Examples:
  smsflow demo                             50 surveys, 5 staff calls, seed 7
  smsflow demo --surveys 200 --incidents 20
  smsflow demo --seed 8                    other people, other answers; the same again with 8

The same seed gives the same numbers: who answers, what, and which level takes each call.";

const RUN_EXAMPLES: &str = "\
Examples:
  smsflow run                              ./smsflow.toml if present, else the defaults
  smsflow run -c /etc/smsflow/smsflow.toml
  smsflow run -c smsflow.toml --check-config   validate the config and exit (0 ok, 2 bad)
  RUST_LOG=debug smsflow run               more log";

const CHECK_EXAMPLES: &str = "\
Examples:
  smsflow check                            every flow in service.scripts_dir
  smsflow check --scripts scripts/survey.rhai
  smsflow check -c smsflow.toml --timezone UTC";

const REPORT_EXAMPLES: &str = "\
Examples:
  smsflow report csi                       last 30 days by operator, as a table
  smsflow report incidents --by week -f csv
  smsflow report responses --score 1 --from 2026-11-01";

const CSI_EXAMPLES: &str = "\
Examples:
  smsflow report csi                       last 30 days by operator, as a table
  smsflow report csi --from 2026-11-01 --to 2026-11-30 --by week -f xlsx -o nov.xlsx
  smsflow report csi --by channel -f json | jq .total

Reads service.data_dir; while a running service holds the store, asks its HTTP API.
A data dir with nothing recorded yet gives an empty report.";

const INCIDENTS_EXAMPLES: &str = "\
Examples:
  smsflow report incidents                 last 30 days by location, as a table
  smsflow report incidents --by button -f html -o calls.html
  smsflow report incidents --by week -f json | jq .total.median_ack_seconds
  smsflow report incidents --open          the calls ringing or taken and not resolved, now";

const AUDIT_EXAMPLES: &str = "\
Examples:
  smsflow report audit                     last 30 days by location: complaints, manager calls
  smsflow report audit --by button         which tables complain, and how fast the manager came
  smsflow report audit --by week -f xlsx -o audit.xlsx
  smsflow report audit -f json | jq .heatmap    complaints by weekday and hour";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  smsflow completions bash > ~/.local/share/bash-completion/completions/smsflow
  smsflow completions zsh > ~/.zfunc/_smsflow
  smsflow completions fish > ~/.config/fish/completions/smsflow.fish";

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour a stream that `is_terminal` or not.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            // https://no-color.org: set and not empty means no colour.
            ColorWhen::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    /// clap's setting for the help and error texts.
    pub fn clap(self) -> clap::ColorChoice {
        match self {
            ColorWhen::Auto => clap::ColorChoice::Auto,
            ColorWhen::Always => clap::ColorChoice::Always,
            ColorWhen::Never => clap::ColorChoice::Never,
        }
    }

    /// `--color` as typed before clap parses anything, so `--help` and usage errors honour it
    /// too (clap renders them while parsing). The last one given wins, as with clap.
    pub fn from_args(args: &[std::ffi::OsString]) -> ColorWhen {
        let mut when = ColorWhen::Auto;
        let mut args = args.iter().skip(1).map(|a| a.to_string_lossy());
        while let Some(arg) = args.next() {
            if arg == "--" {
                break;
            }
            let value = match arg.strip_prefix("--color") {
                Some("") => args.next().map(|v| v.into_owned()),
                Some(rest) => rest.strip_prefix('=').map(str::to_owned),
                None => None,
            };
            if let Some(parsed) = value.and_then(|v| ColorWhen::from_str(&v, false).ok()) {
                when = parsed;
            }
        }
        when
    }
}

/// `smsflow demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of simulated surveys.
    #[arg(long, default_value_t = 50)]
    pub surveys: u32,
    /// Number of staff calls posted by call buttons (a rating of 1–2 also calls a supervisor).
    #[arg(long, default_value_t = 5)]
    pub incidents: u32,
    /// Seed of every choice the simulated people and the SMSC make.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Days of simulated history before today, so the dashboard has trends and each "vs"
    /// a whole previous period: with today, the reports' 30 days and the 30 before (0: none).
    #[arg(long, default_value_t = smsflow::service::demo::DEFAULT_HISTORY_DAYS)]
    pub days: u32,
    /// Leave out the restaurant's evening (complaints and manager calls at its tables, and
    /// the service quality audit of them).
    #[arg(long)]
    pub no_restaurant: bool,
}

/// `smsflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Read and check the config (TLS files, secrets from the environment, an [[smsc]] to
    /// bind to, flows in scripts_dir), print what it found and exit: 0 ok, 2 bad.
    #[arg(long)]
    pub check_config: bool,
    /// Start on a store that lost commits (disk damage), sealed as it is: the missing
    /// steps are lost for good and messages already sent may be sent again.
    #[arg(long)]
    pub accept_data_loss: bool,
}

/// `smsflow check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A directory of flow scripts (`*.rhai`), or one of them (default: service.scripts_dir).
    #[arg(long, value_name = "PATH")]
    pub scripts: Option<PathBuf>,
    /// Time zone of local_hour() and quiet hours in the tests (default: service.timezone).
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Customer satisfaction: responses, averages, groups, comments, anomalies.
    #[command(after_help = CSI_EXAMPLES)]
    Csi(CsiArgs),
    /// Staff calls: acknowledged, escalated, time to ack.
    #[command(after_help = INCIDENTS_EXAMPLES)]
    Incidents(IncidentsArgs),
    /// The service quality audit of restaurants and shops: complaints, manager calls, time
    /// until the manager came, calls not answered, by hour and weekday.
    #[command(after_help = AUDIT_EXAMPLES)]
    Audit(AuditArgs),
    /// The response feed: each rating with its comment, operator, channel and time, newest
    /// first.
    #[command(after_help = RESPONSES_EXAMPLES)]
    Responses(ResponsesArgs),
}

const RESPONSES_EXAMPLES: &str = "\
Examples:
  smsflow report responses --from 2026-11-01 --score 1      every rating of 1 since November
  smsflow report responses --operator op-17 --limit 20 -f json | jq .next
  smsflow report responses --channel chat -f csv -o chat.csv

Numbers are masked (99890*****67) unless --full-numbers.";

/// `smsflow report responses`.
#[derive(Debug, Args)]
pub struct ResponsesArgs {
    /// First day, YYYY-MM-DD, in service.timezone (default: the first rating).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last day, inclusive (default: the newest rating).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only this operator's ratings.
    #[arg(long)]
    pub operator: Option<String>,
    /// Only this channel's (call, chat, ticket, order).
    #[arg(long)]
    pub channel: Option<String>,
    /// Only this score.
    #[arg(long)]
    pub score: Option<u8>,
    /// Only this flow's ratings.
    #[arg(long)]
    pub flow: Option<String>,
    /// Rows of one page (1–500); without it, every row.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Go on from the page that printed this cursor.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Whole MSISDNs instead of masked ones (99890*****67).
    #[arg(long)]
    pub full_numbers: bool,
    /// The output format (the dashboard and the XLSX report carry the newest responses).
    #[arg(short = 'f', long, value_enum, default_value_t = FeedFormatArg::Table)]
    pub format: FeedFormatArg,
    /// CSV without the UTF-8 byte order mark.
    #[arg(long)]
    pub no_bom: bool,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// The formats of the response feed: rows, so no charts.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FeedFormatArg {
    /// Text for a terminal.
    Table,
    /// One row per rating.
    Csv,
    /// `{"items": [...], "next": CURSOR}`, what GET /api/v1/responses answers.
    Json,
}

impl From<FeedFormatArg> for smsflow::report::render::Format {
    fn from(f: FeedFormatArg) -> Self {
        use smsflow::report::render::Format;
        match f {
            FeedFormatArg::Table => Format::Table,
            FeedFormatArg::Csv => Format::Csv,
            FeedFormatArg::Json => Format::Json,
        }
    }
}

/// `smsflow report csi`.
#[derive(Debug, Args)]
pub struct CsiArgs {
    /// What the rows are.
    #[arg(long, value_enum, default_value_t = CsiBy::Operator)]
    pub by: CsiBy,
    /// The survey flow (its scale decides the numbers: CSAT, NPS or CES).
    #[arg(long, value_name = "FLOW", default_value = "survey")]
    pub flow: String,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `smsflow report incidents`.
#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// What the rows are.
    #[arg(long, value_enum, default_value_t = IncidentsBy::Location)]
    pub by: IncidentsBy,
    /// Instead of the report: the calls not over yet, newest first (ringing, or taken and not
    /// resolved), with button, location, level, who took it and age; table, csv or json.
    #[arg(long)]
    pub open: bool,
    /// With --open: whole MSISDNs of who took each call instead of masked ones.
    #[arg(long, requires = "open")]
    pub full_numbers: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `smsflow report audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// What the rows are.
    #[arg(long, value_enum, default_value_t = IncidentsBy::Location)]
    pub by: IncidentsBy,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// The rows of the CSI report (`report::query::Kind::Csi`'s groupings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CsiBy {
    /// One row per day.
    Day,
    /// One row per ISO week (Monday to Sunday).
    Week,
    Month,
    /// The survey event's `operator`.
    Operator,
    /// The survey event's `channel`: call, chat, ticket, order.
    Channel,
}

/// The rows of the incident report and of the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncidentsBy {
    Day,
    /// One row per ISO week (Monday to Sunday).
    Week,
    Month,
    /// The button's `location`.
    Location,
    /// The button's name.
    Button,
}

/// The name `report::Query` takes for a `--by` value.
pub fn by_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        // Every variant above has a name; none is skipped.
        .unwrap_or_default()
}

/// What both reports take besides `--by`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// First day, YYYY-MM-DD, in service.timezone (default: 29 days before --to).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last day, inclusive (default: today).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// The output format.
    #[arg(short = 'f', long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// CSV without the UTF-8 byte order mark (which Excel needs to read Cyrillic right).
    #[arg(long)]
    pub no_bom: bool,
    /// Write to this file instead of standard output (xlsx needs it on a terminal).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Report on the events every node exported to NATS JetStream instead of the local
    /// store: nats://HOST:PORT (comma-separated for a cluster); the stream and subjects are
    /// [export]'s.
    #[arg(long, value_name = "URL")]
    pub source: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Text for a terminal, 100 columns.
    Table,
    /// A total row, then one row per group (with a UTF-8 byte order mark for Excel).
    Csv,
    /// The document the HTTP API answers.
    Json,
    /// A self-contained page with SVG charts (what GET /reports serves).
    Html,
    /// A workbook: a sheet per section and a trend chart.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every command's help ends with examples that run the command itself.
    #[test]
    fn every_help_has_examples_of_its_command() {
        fn walk(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name()).trim().to_owned();
            let help = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(help.starts_with("Examples:\n"), "{path}: {help:?}");
            // `smsflow` alone is the root; `help` is clap's own.
            let usage = path.replace("smsflow", "").trim().to_owned();
            assert!(
                help.lines()
                    .skip(1)
                    .any(|l| l.contains(&format!("smsflow {usage}").trim().to_owned())),
                "{path}: no example runs it: {help}"
            );
            for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "");
    }

    #[test]
    fn by_values_are_the_report_groupings_with_their_defaults() {
        use smsflow::report::Kind;
        let names =
            |kind: Kind| -> Vec<&str> { kind.groupings().iter().map(|g| g.name()).collect() };
        let csi: Vec<String> = CsiBy::value_variants()
            .iter()
            .map(|&v| by_name(v))
            .collect();
        assert_eq!(csi, names(Kind::Csi));
        let inc: Vec<String> = IncidentsBy::value_variants()
            .iter()
            .map(|&v| by_name(v))
            .collect();
        assert_eq!(inc, names(Kind::Incidents));
        let parsed = Cli::try_parse_from(["smsflow", "report", "csi"]).unwrap();
        let Command::Report(ReportCommand::Csi(args)) = parsed.command else {
            panic!("csi");
        };
        assert_eq!(by_name(args.by), Kind::Csi.default_grouping().name());
        let parsed = Cli::try_parse_from(["smsflow", "report", "incidents"]).unwrap();
        let Command::Report(ReportCommand::Incidents(args)) = parsed.command else {
            panic!("incidents");
        };
        assert_eq!(by_name(args.by), Kind::Incidents.default_grouping().name());
    }

    #[test]
    fn short_flags_for_the_common_options() {
        let parsed = Cli::try_parse_from([
            "smsflow", "report", "csi", "-c", "a.toml", "-f", "csv", "-o", "r.csv",
        ])
        .unwrap();
        let Command::Report(ReportCommand::Csi(args)) = parsed.command else {
            panic!("csi");
        };
        assert_eq!(args.report.config.path, Some(PathBuf::from("a.toml")));
        assert!(matches!(args.report.format, FormatArg::Csv));
        assert_eq!(args.report.out, Some(PathBuf::from("r.csv")));
        let parsed = Cli::try_parse_from(["smsflow", "run", "-c", "b.toml"]).unwrap();
        let Command::Run(args) = parsed.command else {
            panic!("run");
        };
        assert_eq!(args.config.path, Some(PathBuf::from("b.toml")));
    }

    #[test]
    fn color_is_read_before_parsing() {
        let args = |a: &[&str]| -> Vec<std::ffi::OsString> { a.iter().map(|s| s.into()).collect() };
        assert_eq!(
            ColorWhen::from_args(&args(&["smsflow", "--help"])),
            ColorWhen::Auto
        );
        assert_eq!(
            ColorWhen::from_args(&args(&["smsflow", "check", "--color", "never"])),
            ColorWhen::Never
        );
        assert_eq!(
            ColorWhen::from_args(&args(&["smsflow", "--color=always", "run"])),
            ColorWhen::Always
        );
        assert_eq!(
            ColorWhen::from_args(&args(&["smsflow", "--", "--color=always"])),
            ColorWhen::Auto
        );
        assert!(!ColorWhen::Auto.enabled(false));
        assert!(ColorWhen::Always.enabled(false));
        assert!(!ColorWhen::Never.enabled(true));
    }
}
