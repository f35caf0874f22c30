//! `smsflow.toml`: the service's configuration, parsed and checked before anything starts.
//!
//! This module owns the file's schema (one serde struct per table, every default written on
//! its field), where a config comes from ([`Config::discover`]: `--config FILE`, else
//! `./smsflow.toml`, else [`Config::defaults`]) and every check that can be made without the
//! network: names, ranges, SMPP 3.4 field limits, time zones, socket addresses, secrets taken
//! from the environment. It fails fast with one [`ConfigError`] that reads like
//! `smsflow.toml:12: smsc[0].windw: unknown key (did you mean `window`?)`.
//!
//! It must not start anything, open sockets or touch the store; and it never falls back
//! silently: a `--config` file that is missing is an error, not the defaults.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::DeTable;

mod bounds;
pub mod buttons;
mod de;
pub mod export;
mod http;
mod smsc;
mod spans;
mod tls;
mod validate;
pub mod webhook;

pub use buttons::{ButtonRoutes, ButtonsConfig};
pub use export::ExportConfig;
pub use http::{BODY_LIMIT, HttpConfig, ListenerLimits, MetricsConfig, SAMPLE_TOKEN};
pub use smsc::{Bind, SmscConfig};
pub use smsc::{MAX_ADDRESS_RANGE, MAX_PASSWORD, MAX_SOURCE_ADDR, MAX_SYSTEM_ID, MAX_SYSTEM_TYPE};
pub use webhook::WebhookConfig;

use de::{duration, size, timezone};
use spans::{Spans, describe, line_of};

/// The file `run`, `check` and `report` read when no `--config` is given, if it exists.
pub const DEFAULT_FILE: &str = "smsflow.toml";

/// The whole checked configuration. Every table is optional in the file; `smsflow run` also
/// needs one `[[smsc]]` ([`Config::require_smsc`]), while `report`, `store` and `check` work
/// without (a manager's laptop has no SMPP account).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[service]`: where data and scripts live, the reports' time zone.
    #[serde(default)]
    pub service: ServiceConfig,
    /// `[[smsc]]`: the carriers. `smsflow run` needs at least one ([`Config::require_smsc`]);
    /// [`Config::defaults`] has one at 127.0.0.1:2775 (the built-in simulator's address).
    #[serde(default)]
    pub smsc: Vec<SmscConfig>,
    /// `[http]`: the API and dashboard listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// `[metrics]`: the Prometheus listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[[webhook]]`: zero or more receivers flows `notify` by name. Default none.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    /// `[export]`: every conversation event to NATS JetStream. Default none (no export).
    #[serde(default)]
    pub export: Option<ExportConfig>,
    /// `[buttons]`: button type (and action) → flow, for `POST /api/v1/buttons`. Default the
    /// shipped routes (101 → complaint, 102 → escalation, 103 → alert); see
    /// [`Config::button_routes`].
    #[serde(default)]
    pub buttons: ButtonsConfig,
    /// The routes in effect once checked: what [`Config::button_routes`] returns.
    #[serde(skip)]
    resolved_buttons: ButtonRoutes,
    /// Where it came from, for messages: `None` for the built-in defaults or text given
    /// without a path.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// `[service]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// The sled database directory. Default `"data"`, relative to the working directory, so a
    /// first `smsflow run` keeps its state next to its config.
    pub data_dir: PathBuf,
    /// The `*.rhai` flows; a flow's name is its file stem, and edits are hot-reloaded.
    /// Default `"scripts"`, where the shipped flows live in a checkout.
    pub scripts_dir: PathBuf,
    /// The IANA time zone report periods (days, weeks, months) are cut in. Default
    /// `"Asia/Tashkent"`, the 5700 service's zone. Checked against the bundled tz database
    /// when the file is read, so a typo fails at start, not in the first report.
    #[serde(deserialize_with = "timezone")]
    pub timezone: jiff::tz::TimeZone,
    /// How long after its acknowledgement an MO sent again (same sender, content and SMSC
    /// reference) is taken for a redelivery and not processed again. Default 10 minutes.
    #[serde(deserialize_with = "duration")]
    pub redelivery_window: Duration,
    /// How long a stop (SIGTERM, Ctrl-C) may take: HTTP requests, submits, webhook posts and
    /// exports in flight finish within it; whatever still runs then is abandoned with a WARN
    /// saying what it waited for, the SMSC still gets its unbind and the store its flush (a
    /// few seconds each), and `run` exits with 3. Default 20 s, under systemd's 90 s.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Room to keep free on the disk of `data_dir`. With less, nothing more is written and
    /// new steps are refused (HTTP 503 with `Retry-After`, MOs left for the SMSC to
    /// redeliver) until there is room again; then the service resumes by itself. Default
    /// 64 MiB; 0 turns the check off.
    #[serde(deserialize_with = "size")]
    pub min_free_space: usize,
    /// This node's name, in every exported event and its `Nats-Msg-Id`: unique among the
    /// nodes that export to one stream. Default the host name.
    pub node: String,
}

/// See [`ServiceConfig::redelivery_window`].
pub const DEFAULT_REDELIVERY_WINDOW: Duration = Duration::from_secs(600);
/// See [`ServiceConfig::min_free_space`].
pub const DEFAULT_MIN_FREE_SPACE: usize = 64 << 20;
/// See [`ServiceConfig::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            data_dir: PathBuf::from("data"),
            scripts_dir: PathBuf::from("scripts"),
            timezone: default_timezone(),
            redelivery_window: DEFAULT_REDELIVERY_WINDOW,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            min_free_space: DEFAULT_MIN_FREE_SPACE,
            node: export::host_name(),
        }
    }
}

fn default_timezone() -> jiff::tz::TimeZone {
    // The tz database is compiled in (`tzdb-bundle-always` in Cargo.toml), so this name
    // always resolves; `defaults_without_a_file` checks it. A silent UTC fallback would move
    // every report period by five hours.
    jiff::tz::TimeZone::get("Asia/Tashkent").expect("the bundled tzdb has Asia/Tashkent")
}

/// A secret read from the file or the environment; `Debug` never prints it, so a logged
/// config does not leak SMSC passwords.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the bind PDU.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// A config that cannot be used, with where: `path:line: key: message`, the way ripgrep
/// reports its config errors. `main` maps it to exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub path: Option<PathBuf>,
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted path of the key, e.g. `smsc[0].window`, when the error is about one.
    pub key: Option<String>,
    /// What is wrong, lowercase, quoting the input and suggesting a fix.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(path), Some(line)) => write!(f, "{}:{line}: ", path.display())?,
            (Some(path), None) => write!(f, "{}: ", path.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and checks `text`. `path` is only used in messages; `env` reads the variables
    /// named by `password_env` (tests inject a map, [`Config::load`] passes the process
    /// environment).
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let error = |line, key, message| ConfigError {
            path: path.map(Path::to_path_buf),
            line,
            key,
            message,
        };
        // The spanned document tells every error where it is; syntax errors surface here.
        let document = DeTable::parse(text).map_err(|e| {
            error(
                e.span().map(|s| line_of(text, s.start)),
                None,
                e.message().to_owned(),
            )
        })?;
        let spans = Spans::new(text, document.get_ref());
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => spans.at(&span),
                None => (None, None),
            };
            let (key, message) = describe(e.message(), key);
            error(line, key, message)
        })?;
        config.source = path.map(Path::to_path_buf);
        config
            .check(env, &|key| spans.written(key).map(str::to_owned))
            .map_err(|(key, message)| {
                let line = spans.line(&key);
                error(line, Some(key), message)
            })?;
        Ok(config)
    }

    /// Reads and checks the file at `path`; `password_env` reads the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_with(path, &process_env)
    }

    /// `--config FILE` if given; else `./smsflow.toml` if present; else [`Config::defaults`].
    /// Never falls back silently when a given file is missing: that is an error naming it.
    /// [`Config::source`] says which one was used.
    pub fn discover(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        // An empty base keeps paths as the user typed them ("smsflow.toml:3: ...").
        discover_in(Path::new(""), explicit, &process_env)
    }

    /// The config `smsflow run` uses without a file: one SMSC named `default` at
    /// 127.0.0.1:2775 with system_id/password `smsflow`/`smsflow` (what `smsflow smsc`
    /// accepts), and every other key at its documented default.
    pub fn defaults() -> Config {
        let password = Secret("smsflow".to_owned());
        Config {
            service: ServiceConfig::default(),
            smsc: vec![SmscConfig {
                name: "default".to_owned(),
                password: Some(password.clone()),
                resolved_password: password,
                ..SmscConfig::default()
            }],
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            webhook: Vec::new(),
            export: None,
            buttons: ButtonsConfig::default(),
            resolved_buttons: ButtonRoutes::shipped(),
            source: None,
        }
    }

    /// Which flow a button press goes to (`[buttons]` over the shipped routes).
    pub fn button_routes(&self) -> &ButtonRoutes {
        &self.resolved_buttons
    }

    /// What `smsflow run` needs beyond a valid file: an SMSC to bind to. Checked apart from
    /// the file's own checks, because the commands that only read the store (`report`,
    /// `store`) must work from a config without one.
    pub fn require_smsc(&self) -> Result<(), ConfigError> {
        if !self.smsc.is_empty() {
            return Ok(());
        }
        Err(ConfigError {
            path: self.source.clone(),
            line: None,
            key: Some("smsc".to_owned()),
            message: "no [[smsc]] table: `smsflow run` needs one to bind to (add one with at \
                      least `name` and `password`, see smsflow.example.toml)"
                .to_owned(),
        })
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load_with(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: Some(path.to_path_buf()),
        line: None,
        key: None,
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "config file not found (check the --config path)".to_owned()
        } else {
            format!("cannot read config file: {e}")
        },
    })?;
    Config::from_toml(&text, Some(path), env)
}

/// [`Config::discover`] relative to `dir` instead of the working directory, so tests need
/// not change the process's cwd.
fn discover_in(
    dir: &Path,
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    if let Some(path) = explicit {
        return load_with(&dir.join(path), env);
    }
    let path = dir.join(DEFAULT_FILE);
    match std::fs::metadata(&path) {
        Ok(_) => load_with(&path, env),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::defaults()),
        // Present but unreadable: using the defaults would hide the operator's file.
        Err(e) => Err(ConfigError {
            path: Some(path),
            line: None,
            key: None,
            message: format!("cannot read config file: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests;
