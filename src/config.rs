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
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::de::{DeTable, DeValue};

mod bounds;
pub mod buttons;
pub mod export;
mod tls;
pub mod webhook;

pub use buttons::{ButtonRoutes, ButtonsConfig};
pub use export::ExportConfig;
pub use webhook::WebhookConfig;

/// The file `run`, `check` and `report` read when no `--config` is given, if it exists.
pub const DEFAULT_FILE: &str = "smsflow.toml";

/// SMPP 3.4 §5.2: `system_id` is a C-Octet String of at most 16 octets, NUL included.
pub const MAX_SYSTEM_ID: usize = 15;
/// SMPP 3.4 §5.2: `password` is at most 9 octets, NUL included.
pub const MAX_PASSWORD: usize = 8;
/// SMPP 3.4 §5.2: `system_type` is at most 13 octets, NUL included.
pub const MAX_SYSTEM_TYPE: usize = 12;
/// SMPP 3.4 §5.2: `address_range` is at most 41 octets, NUL included.
pub const MAX_ADDRESS_RANGE: usize = 40;
/// SMPP 3.4 §5.2: `source_addr` is at most 21 octets, NUL included.
pub const MAX_SOURCE_ADDR: usize = 20;

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

/// How an SMSC is bound: SMPP 3.4 §4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bind {
    /// One `bind_transceiver` per session: submits and deliveries on one link.
    Transceiver,
    /// A `bind_transmitter` plus a `bind_receiver` per session, for SMSCs without
    /// transceiver support.
    Pair,
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

/// One `[[smsc]]`: a carrier's SMSC and how smsflow binds to it.
///
/// `Default` is the SPEC's values with an empty `name` and no password: a file must set
/// `name` and exactly one of `password` / `password_env`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmscConfig {
    /// The label in logs and metrics (`smsc="playmobile"`). Required in a file and unique;
    /// no default, because two carriers must never share one.
    pub name: String,
    /// The SMSC's host name or IP. Default `"127.0.0.1"`, where `smsflow smsc` listens.
    pub host: String,
    /// The SMSC's TCP port, 1..=65535. Default `2775`, the port IANA assigns to SMPP.
    #[serde(deserialize_with = "port")]
    pub port: u16,
    /// `system_id` of the bind, at most 15 characters (SMPP 3.4). Default `"smsflow"`.
    pub system_id: String,
    /// The bind password in clear, at most 8 characters (SMPP 3.4). No default in a file:
    /// set this or `password_env`, never both.
    pub password: Option<Secret>,
    /// The name of an environment variable holding the password, so the secret stays out of
    /// the file. Read once when the config is loaded; unset is an error.
    pub password_env: Option<String>,
    /// `system_type` of the bind, at most 12 characters. Default `""`: most SMSCs ignore it.
    pub system_type: String,
    /// `"transceiver"` or `"pair"` (one transmitter + one receiver). Default
    /// `"transceiver"`: one link per session, supported by every SMSC we know of.
    pub bind: Bind,
    /// Parallel binds to this SMSC, at least 1. Default `1`: carriers limit binds per
    /// account, so more is opt-in.
    pub sessions: u32,
    /// Maximum unacknowledged requests per session, at least 1. Default `64`, a common
    /// carrier limit that keeps a 100 ms link busy at several hundred submits per second.
    pub window: u32,
    /// `submit_sm` per second cap for this SMSC across its sessions, `0` = no cap. Default
    /// `0`: set it to the contract's rate so the SMSC does not throttle us.
    pub tps: u32,
    /// How often an idle session sends `enquire_link`. Default `"30s"`, well under the
    /// usual 60 s idle timeout of SMSCs and NATs.
    #[serde(deserialize_with = "duration")]
    pub enquire_link_interval: Duration,
    /// How long a request may wait for its response before it is failed. Default `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub response_timeout: Duration,
    /// First reconnect delay after a lost bind; doubled up to `reconnect_max`. Default `"1s"`.
    #[serde(deserialize_with = "duration")]
    pub reconnect_min: Duration,
    /// Longest reconnect delay, at least `reconnect_min`. Default `"60s"`, so an SMSC that
    /// comes back is found within a minute without hammering it while it is down.
    #[serde(deserialize_with = "duration")]
    pub reconnect_max: Duration,
    /// SMPP over TLS (carriers usually offer it on port 3550). Default `false`. With `true`
    /// the SMSC's certificate is always verified, against `tls_ca` for `tls_server_name`;
    /// there is no switch to turn that off. Without `true`, any other `tls_*` key is an error.
    pub tls: bool,
    /// PEM file of the CA certificates that may sign the SMSC's certificate, read when the
    /// config is loaded. Default `""`: the system's trust store.
    pub tls_ca: PathBuf,
    /// The name the SMSC's certificate must be valid for (a DNS name or an IP address).
    /// Default `""`: `host`. Set it when `host` is an IP the certificate does not list.
    pub tls_server_name: String,
    /// Pins of the SMSC's key: base64 of the SHA-256 of its certificate's
    /// SubjectPublicKeyInfo. Default `[]`: none. When set, the SMSC's certificate must carry
    /// one of these keys; without `tls_ca` the pins alone are the trust, so a carrier that
    /// renews a self-signed certificate under the same key keeps working (see
    /// [`crate::tls::verify`]).
    pub tls_pin_sha256: Vec<String>,
    /// PEM client certificate (chain) for SMSCs that require mutual TLS. Default `""`: none.
    /// Needs `tls_key` or `tls_key_env`.
    pub tls_cert: PathBuf,
    /// The PEM private key of `tls_cert`. Default `""`.
    pub tls_key: PathBuf,
    /// The name of an environment variable holding the PEM private key instead of `tls_key`,
    /// so the key stays out of files. Read once when the config is loaded.
    pub tls_key_env: Option<String>,
    /// `address_range` of the bind: which MO destinations this ESME serves, at most 40
    /// characters. Default `"5700"`, the short code.
    pub address_range: String,
    /// `source_addr` of MT messages, at most 20 characters. Default `"5700"`, the short code.
    pub source_addr: String,
    /// `source_addr_ton` of MT messages. Default `3` (network specific), what carriers expect
    /// for a short code.
    pub source_addr_ton: u8,
    /// `source_addr_npi` of MT messages. Default `0` (unknown), paired with TON 3.
    pub source_addr_npi: u8,
    /// Ask for delivery receipts on MT messages. Default `true`: the flows and the timeline
    /// use them to tell delivered from lost messages.
    pub registered_delivery: bool,
    /// The password after `password_env` was read; what [`SmscConfig::password`] returns.
    #[serde(skip)]
    resolved_password: Secret,
    /// The loaded TLS material when `tls = true`; what [`SmscConfig::tls`] returns.
    #[serde(skip)]
    resolved_tls: Option<crate::tls::ClientTls>,
}

impl Default for SmscConfig {
    fn default() -> Self {
        SmscConfig {
            name: String::new(),
            host: "127.0.0.1".to_owned(),
            port: 2775,
            system_id: "smsflow".to_owned(),
            password: None,
            password_env: None,
            system_type: String::new(),
            bind: Bind::Transceiver,
            sessions: 1,
            window: 64,
            tps: 0,
            enquire_link_interval: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(60),
            tls: false,
            tls_ca: PathBuf::new(),
            tls_server_name: String::new(),
            tls_pin_sha256: Vec::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            tls_key_env: None,
            address_range: "5700".to_owned(),
            source_addr: "5700".to_owned(),
            source_addr_ton: 3,
            source_addr_npi: 0,
            registered_delivery: true,
            resolved_password: Secret::default(),
            resolved_tls: None,
        }
    }
}

impl SmscConfig {
    /// The bind password: `password`, or the value of `password_env` read at load time.
    pub fn password(&self) -> &str {
        self.resolved_password.expose()
    }

    /// The TLS config and server name when `tls = true` (loaded and checked with the file).
    pub fn tls(&self) -> Option<&crate::tls::ClientTls> {
        self.resolved_tls.as_ref()
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the API and the `/reports` dashboard. Default `"127.0.0.1:8080"`: loopback
    /// only, so nothing is exposed until an operator chooses to.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Tokens accepted on `/api` and `/reports`; an empty list means no auth. Default
    /// `["change-me"]`, the SPEC's placeholder: replace it before listening beyond loopback.
    /// With `tokens_env`, the tokens read from that variable.
    pub tokens: Vec<Secret>,
    /// A variable holding comma-separated tokens, read at load time instead of `tokens`.
    pub tokens_env: Option<String>,
    /// Tokens (each also one of `tokens`) whose requests see whole MSISDNs in the response
    /// feed (`GET /api/v1/responses`); every other request sees them masked
    /// (`99890*****67`). Default `[]`.
    pub number_tokens: Vec<Secret>,
    /// Request bodies over this get 413. Default `"64KiB"`.
    #[serde(deserialize_with = "size")]
    pub max_body: usize,
    /// Connections open at once; at the cap the idlest is closed for a newcomer. Default 512.
    pub max_connections: usize,
    /// How long a connection may take to send a request's headers, and how long an idle
    /// keep-alive connection stays. Default `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// How long a request may take from its headers to the response. Default `"30s"`.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// PEM certificate (chain) to serve the API over HTTPS. Default `""`: plain HTTP, fine on
    /// loopback; beyond it requests carry MSISDNs and tokens, so set this and `tls_key`.
    pub tls_cert: PathBuf,
    /// The PEM private key of `tls_cert`. Default `""`.
    pub tls_key: PathBuf,
    /// The server config when both are set; what [`HttpConfig::tls`] returns.
    #[serde(skip)]
    resolved_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl HttpConfig {
    /// The HTTPS config when `tls_cert` and `tls_key` are set (loaded with the file).
    pub fn tls(&self) -> Option<&std::sync::Arc<rustls::ServerConfig>> {
        self.resolved_tls.as_ref()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = crate::http::Limits::default();
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens: vec![Secret(SAMPLE_TOKEN.to_owned())],
            tokens_env: None,
            number_tokens: Vec::new(),
            max_body: crate::http::BODY_LIMIT,
            max_connections: limits.max_connections,
            header_read_timeout: limits.header_read_timeout,
            request_timeout: limits.request_timeout,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            resolved_tls: None,
        }
    }
}

impl HttpConfig {
    /// The listener's limits these keys set.
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            ..crate::http::Limits::default()
        }
    }

    /// Whether the SPEC's sample token is among the tokens.
    pub fn has_sample_token(&self) -> bool {
        self.tokens.iter().any(|t| t.expose() == SAMPLE_TOKEN)
    }
}

/// The documented sample token: accepted, but warned about at start.
pub const SAMPLE_TOKEN: &str = "change-me";

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of `GET /metrics` (Prometheus text format). Default `"127.0.0.1:9100"`,
    /// loopback, the node-exporter convention.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// PEM certificate (chain) to serve `/metrics` over HTTPS. Default `""`: plain HTTP.
    pub tls_cert: PathBuf,
    /// The PEM private key of `tls_cert`. Default `""`.
    pub tls_key: PathBuf,
    /// The server config when both are set; what [`MetricsConfig::tls`] returns.
    #[serde(skip)]
    resolved_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl MetricsConfig {
    /// The HTTPS config when `tls_cert` and `tls_key` are set (loaded with the file).
    pub fn tls(&self) -> Option<&std::sync::Arc<rustls::ServerConfig>> {
        self.resolved_tls.as_ref()
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            resolved_tls: None,
        }
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

    /// Checks what serde cannot and resolves `password_env`. The error is the key's dotted
    /// path and the message, which quotes a value as `written` in the file.
    fn check(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        written: bounds::Written,
    ) -> Result<(), (String, String)> {
        for i in 0..self.smsc.len() {
            let key = |k: &str| format!("smsc[{i}].{k}");
            let (before, rest) = self.smsc.split_at_mut(i);
            let smsc = &mut rest[0];
            if smsc.name.is_empty() {
                return Err((
                    key("name"),
                    "missing or empty (give each [[smsc]] a name, e.g. name = \"playmobile\")"
                        .to_owned(),
                ));
            }
            if let Some(first) = before.iter().position(|s| s.name == smsc.name) {
                return Err((
                    key("name"),
                    format!(
                        "duplicate smsc name \"{}\" (also smsc[{first}]; give each [[smsc]] its \
                         own name)",
                        smsc.name
                    ),
                ));
            }
            if smsc.port == 0 {
                return Err((
                    key("port"),
                    "port 0 is out of range (use 1..=65535)".to_owned(),
                ));
            }
            if smsc.reconnect_min > smsc.reconnect_max {
                return Err((
                    key("reconnect_min"),
                    format!(
                        "{} is longer than reconnect_max {} (make reconnect_min <= \
                         reconnect_max)",
                        shown_duration(written, &key("reconnect_min"), smsc.reconnect_min),
                        shown_duration(written, &key("reconnect_max"), smsc.reconnect_max),
                    ),
                ));
            }
            // The PEM files are read now: a bad one stops the start, not the first connect.
            smsc.resolved_tls = tls::smsc(smsc, env).map_err(|(k, message)| (key(&k), message))?;
            let password = match (&smsc.password, &smsc.password_env) {
                (Some(_), Some(_)) => {
                    return Err((
                        key("password_env"),
                        "both password and password_env are set (keep one)".to_owned(),
                    ));
                }
                (None, None) => {
                    return Err((
                        key("password"),
                        "missing (set password = \"...\" or password_env = \"VARIABLE\")"
                            .to_owned(),
                    ));
                }
                (Some(password), None) => password.clone(),
                (None, Some(var)) => match env(var) {
                    Some(value) => Secret(value),
                    None => {
                        return Err((
                            key("password_env"),
                            format!(
                                "environment variable \"{var}\" is not set (export it, or set \
                                 password instead)"
                            ),
                        ));
                    }
                },
            };
            let limits = [
                ("system_id", smsc.system_id.as_str(), MAX_SYSTEM_ID),
                ("password", password.expose(), MAX_PASSWORD),
                ("system_type", smsc.system_type.as_str(), MAX_SYSTEM_TYPE),
                (
                    "address_range",
                    smsc.address_range.as_str(),
                    MAX_ADDRESS_RANGE,
                ),
                ("source_addr", smsc.source_addr.as_str(), MAX_SOURCE_ADDR),
            ];
            for (field, value, max) in limits {
                let len = value.chars().count();
                if len > max {
                    // The password's value is not quoted: it is a secret.
                    let shown = if field == "password" {
                        String::new()
                    } else {
                        format!("\"{value}\" ")
                    };
                    let field = if field == "password" && smsc.password_env.is_some() {
                        "password_env"
                    } else {
                        field
                    };
                    return Err((
                        key(field),
                        format!(
                            "{shown}is {len} characters, SMPP 3.4 allows at most {max} (ask \
                             the carrier for a shorter one)"
                        ),
                    ));
                }
            }
            smsc.resolved_password = password;
        }
        if let Some(var) = &self.http.tokens_env {
            let explicit = !self.http.tokens.is_empty() && !self.http.has_sample_token();
            if explicit {
                return Err((
                    "http.tokens_env".to_owned(),
                    "both tokens and tokens_env are set (keep one)".to_owned(),
                ));
            }
            let Some(value) = env(var) else {
                return Err((
                    "http.tokens_env".to_owned(),
                    format!(
                        "environment variable \"{var}\" is not set (export it with \
                         comma-separated tokens, or set tokens instead)"
                    ),
                ));
            };
            self.http.tokens = (value.split(','))
                .map(|t| Secret(t.trim().to_owned()))
                .filter(|t| !t.0.is_empty())
                .collect();
            if self.http.tokens.is_empty() {
                return Err((
                    "http.tokens_env".to_owned(),
                    format!("environment variable \"{var}\" holds no token"),
                ));
            }
        }
        for i in 0..self.webhook.len() {
            let (before, rest) = self.webhook.split_at_mut(i);
            webhook::check(&mut rest[0], before, env)
                .map_err(|(k, message)| (format!("webhook[{i}].{k}"), message))?;
        }
        export::check_node(&self.service.node)?;
        if let Some(e) = &self.export {
            export::check(e).map_err(|(k, message)| (format!("export.{k}"), message))?;
        }
        bounds::check(self, written)?;
        self.resolved_buttons =
            (self.buttons.resolve()).map_err(|(k, message)| (format!("buttons.{k}"), message))?;
        for (i, token) in self.http.tokens.iter().enumerate() {
            if token.expose().trim().is_empty() {
                return Err((
                    format!("http.tokens[{i}]"),
                    "empty token (remove it; an empty list means no auth)".to_owned(),
                ));
            }
        }
        for (i, token) in self.http.number_tokens.iter().enumerate() {
            if !self.http.tokens.contains(token) {
                return Err((
                    format!("http.number_tokens[{i}]"),
                    "not one of http.tokens (a token that sees numbers must also be accepted)"
                        .to_owned(),
                ));
            }
        }
        self.http.resolved_tls = tls::server(&self.http.tls_cert, &self.http.tls_key)
            .map_err(|(k, message)| (format!("http.{k}"), message))?;
        self.metrics.resolved_tls = tls::server(&self.metrics.tls_cert, &self.metrics.tls_key)
            .map_err(|(k, message)| (format!("metrics.{k}"), message))?;
        if self.http.listen == self.metrics.listen && self.http.listen.port() != 0 {
            return Err((
                "metrics.listen".to_owned(),
                format!(
                    "\"{}\" is also http.listen (give metrics its own port)",
                    self.metrics.listen
                ),
            ));
        }
        Ok(())
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

/// Rewrites serde's messages in smsflow's voice; `key` is where the span pointed.
fn describe(message: &str, key: Option<String>) -> (Option<String>, String) {
    // serde's `unknown_field`: "unknown field `windw`, expected one of `a`, `b`" (or
    // "expected `a`", or "there are no fields").
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let suggestion = known
            .iter()
            .map(|k| (strsim::levenshtein(field, k), *k))
            .filter(|(d, _)| *d <= 2)
            .min();
        let hint = match suggestion {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None if known.is_empty() => "remove it".to_owned(),
            None => format!("expected one of {}", quote_list(&known)),
        };
        // The span points at the key itself; without one, name the key from the message.
        let key = key.or_else(|| Some(field.to_owned()));
        return (key, format!("unknown key ({hint})"));
    }
    // serde's `unknown_variant`: "unknown variant `trx`, expected `transceiver` or `pair`".
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((value, expected)) = rest.split_once("`, expected ")
    {
        return (key, format!("unknown value \"{value}\" (use {expected})"));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let key = Some(match key {
            Some(table) => format!("{table}.{field}"),
            None => field.to_owned(),
        });
        return (key, "missing key".to_owned());
    }
    (key, message.trim_end().to_owned())
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    1 + text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Where each key of the document is: its dotted path, the key's span and the value's span.
struct Spans<'t> {
    text: &'t str,
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'t> Spans<'t> {
    fn new(text: &'t str, document: &DeTable<'_>) -> Self {
        let mut spans = Spans {
            text,
            entries: Vec::new(),
        };
        spans.table("", document);
        spans
    }

    fn table(&mut self, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            self.entries.push((path.clone(), key.span(), value.span()));
            self.value(&path, key.span(), value.get_ref());
        }
    }

    fn value(&mut self, path: &str, key_span: Range<usize>, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.table(path, table),
            DeValue::Array(array) => {
                for (i, item) in array.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    // An array of tables' element spans its `[[header]]`; for a key inside
                    // an inline array the key's own line is the best anchor.
                    let span = if item.span().is_empty() {
                        key_span.clone()
                    } else {
                        item.span()
                    };
                    self.entries
                        .push((item_path.clone(), span.clone(), span.clone()));
                    self.value(&item_path, span, item.get_ref());
                }
            }
            _ => {}
        }
    }

    /// The line and key path of an error span: the key whose name is the span, else the
    /// narrowest value that contains it.
    fn at(&self, span: &Range<usize>) -> (Option<usize>, Option<String>) {
        let line = Some(line_of(self.text, span.start));
        if let Some((path, _, _)) = self.entries.iter().find(|(_, k, _)| k == span) {
            return (line, Some(path.clone()));
        }
        let narrowest = self
            .entries
            .iter()
            .filter(|(_, _, v)| v.start <= span.start && span.end <= v.end)
            .min_by_key(|(_, _, v)| v.len());
        (line, narrowest.map(|(path, _, _)| path.clone()))
    }

    /// The value of `path` as the file writes it (`"400d"` with its quotes, `1024`), if the
    /// file has the key.
    fn written(&self, path: &str) -> Option<&'t str> {
        let (_, _, value) = self.entries.iter().find(|(p, _, _)| p == path)?;
        self.text.get(value.clone())
    }

    /// The line of `path`, or of its nearest parent present in the file (a key that was
    /// left out is reported at its table).
    fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some((_, k, _)) = self.entries.iter().find(|(p, _, _)| p == path) {
                return Some(line_of(self.text, k.start));
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;
    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration string like \"500ms\", \"30s\", \"3m\" or \"24h\"")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            humantime::parse_duration(text).map_err(|e| {
                E::custom(format!(
                    "invalid duration \"{text}\": {e} (write it like \"500ms\", \"30s\", \"3m\" \
                     or \"24h\")"
                ))
            })
        }
    }
    deserializer.deserialize_str(DurationVisitor)
}

fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    let value = i64::deserialize(deserializer)?;
    u16::try_from(value)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| de::Error::custom(format!("port {value} is out of range (use 1..=65535)")))
}

/// A byte size: a number of bytes, or a string like `"64KiB"`, `"1MiB"`, `"512B"`. One too
/// large to count saturates, so the key's range check says it is out of range.
fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"64KiB\" or \"1MiB\"")
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<usize, E> {
            u64::try_from(n)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .map_err(|_| E::custom(format!("{n} is not a size ({SIZE_HINT})")))
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<usize, E> {
            parse_size(text)
                .ok_or_else(|| E::custom(format!("\"{text}\" is not a size ({SIZE_HINT})")))
        }
    }
    deserializer.deserialize_any(SizeVisitor)
}

const SIZE_HINT: &str = "write a number of bytes or e.g. \"64KiB\", \"1MiB\" or \"4096B\"";

/// Digits and a unit; `None` if it is not that, `usize::MAX` if it is more than that.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        "TiB" | "TB" | "T" => 1 << 40,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    // All digits: a parse error can only be overflow.
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes));
    Some(
        bytes
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or(usize::MAX),
    )
}

/// A duration for a message: as the file writes `key`, else as we would.
fn shown_duration(written: bounds::Written, key: &str, value: Duration) -> String {
    bounds::shown(written(key), || {
        format!("\"{}\"", bounds::duration_text(value))
    })
}

fn socket_addr<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid socket address \"{text}\" (write IP:PORT, e.g. \"127.0.0.1:8080\" or \
             \"[::1]:8080\")"
        ))
    })
}

fn timezone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<jiff::tz::TimeZone, D::Error> {
    let name = String::deserialize(deserializer)?;
    jiff::tz::TimeZone::get(&name).map_err(|_| {
        de::Error::custom(format!(
            "unknown time zone \"{name}\" (use an IANA name such as \"Asia/Tashkent\" or \
             \"UTC\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "smsflow.toml";
    const EXAMPLE: &str = include_str!("../smsflow.example.toml");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Some(Path::new(FILE)), &no_env)
    }

    fn error(text: &str) -> ConfigError {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(e) => e,
        }
    }

    const MINIMAL: &str = "[[smsc]]\nname = \"a\"\npassword = \"secret\"\n";

    #[test]
    fn defaults_without_a_file() {
        let config = Config::defaults();
        assert_eq!(config.service.data_dir, Path::new("data"));
        assert_eq!(config.service.scripts_dir, Path::new("scripts"));
        assert_eq!(config.service.timezone.iana_name(), Some("Asia/Tashkent"));
        assert_eq!(config.smsc.len(), 1);
        let smsc = &config.smsc[0];
        assert_eq!((smsc.host.as_str(), smsc.port), ("127.0.0.1", 2775));
        assert_eq!(
            (smsc.system_id.as_str(), smsc.password()),
            ("smsflow", "smsflow")
        );
        assert_eq!(smsc.bind, Bind::Transceiver);
        assert_eq!((smsc.sessions, smsc.window, smsc.tps), (1, 64, 0));
        assert_eq!(smsc.enquire_link_interval, Duration::from_secs(30));
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(config.source, None);
        // The defaults must pass the same checks as a file.
        let mut checked = config.clone();
        assert_eq!(checked.check(&no_env, &|_| None), Ok(()));
        assert_eq!(checked.smsc[0].password(), "smsflow");
    }

    #[test]
    fn minimal_file_takes_the_documented_defaults() {
        let config = parse(MINIMAL).unwrap();
        let smsc = &config.smsc[0];
        assert_eq!(smsc.password(), "secret");
        assert_eq!(smsc.reconnect_max, Duration::from_secs(60));
        assert_eq!(
            (smsc.address_range.as_str(), smsc.source_addr_ton),
            ("5700", 3)
        );
        assert!(smsc.registered_delivery);
        assert_eq!(config.http.tokens, vec![Secret("change-me".to_owned())]);
        assert_eq!(config.source.as_deref(), Some(Path::new(FILE)));
    }

    #[test]
    fn example_file_parses_with_all_values() {
        let config = Config::from_toml(EXAMPLE, Some(Path::new("smsflow.example.toml")), &no_env)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.service.data_dir, Path::new("data"));
        assert_eq!(config.service.scripts_dir, Path::new("scripts"));
        assert_eq!(config.service.timezone.iana_name(), Some("Asia/Tashkent"));
        let smsc = &config.smsc[0];
        assert_eq!(smsc.name, "playmobile");
        assert_eq!((smsc.host.as_str(), smsc.port), ("127.0.0.1", 2775));
        assert_eq!(
            (smsc.system_id.as_str(), smsc.password()),
            ("smsflow", "smsflow")
        );
        assert_eq!(smsc.system_type, "");
        assert_eq!(smsc.bind, Bind::Transceiver);
        assert_eq!((smsc.sessions, smsc.window, smsc.tps), (1, 64, 0));
        assert_eq!(smsc.enquire_link_interval, Duration::from_secs(30));
        assert_eq!(smsc.response_timeout, Duration::from_secs(10));
        assert_eq!(smsc.reconnect_min, Duration::from_secs(1));
        assert_eq!(smsc.reconnect_max, Duration::from_secs(60));
        assert!(!smsc.tls);
        assert_eq!(
            (smsc.address_range.as_str(), smsc.source_addr.as_str()),
            ("5700", "5700")
        );
        assert_eq!((smsc.source_addr_ton, smsc.source_addr_npi), (3, 0));
        assert!(smsc.registered_delivery);
        assert_eq!(config.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.http.tokens, vec![Secret("change-me".to_owned())]);
        assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9100");
    }

    #[test]
    fn example_file_sets_every_key_of_the_schema() {
        // Every key the example sets explicitly, so the example cannot drift from the schema:
        // a key missing from the structs fails `example_file_parses_with_all_values`, a key
        // missing from the example fails here.
        let document = DeTable::parse(EXAMPLE).unwrap();
        let spans = Spans::new(EXAMPLE, document.get_ref());
        let smsc_keys = [
            "name",
            "host",
            "port",
            "system_id",
            "password",
            "system_type",
            "bind",
            "sessions",
            "window",
            "tps",
            "enquire_link_interval",
            "response_timeout",
            "reconnect_min",
            "reconnect_max",
            "tls",
            "tls_ca",
            "tls_server_name",
            "tls_pin_sha256",
            "tls_cert",
            "tls_key",
            "address_range",
            "source_addr",
            "source_addr_ton",
            "source_addr_npi",
            "registered_delivery",
        ];
        let mut expected: Vec<String> = [
            "service.data_dir",
            "service.scripts_dir",
            "service.timezone",
            "http.listen",
            "http.tokens",
            "metrics.listen",
        ]
        .iter()
        .map(|k| k.to_string())
        .collect();
        expected.extend(smsc_keys.iter().map(|k| format!("smsc[0].{k}")));
        for key in expected {
            assert!(
                spans.entries.iter().any(|(path, _, _)| *path == key),
                "{key} missing"
            );
        }
        // password_env is there, commented out; so are the keys that need files to exist.
        assert!(EXAMPLE.contains("# password_env = \"SMSC_PASSWORD\""));
        for commented in [
            "# tls_key_env = \"SMSC_TLS_KEY\"",
            "# tls_cert = \"/etc/smsflow/api.pem\"",
            "# tls_key = \"/etc/smsflow/api.key\"",
            "# tls_cert = \"/etc/smsflow/metrics.pem\"",
            "# tls_key = \"/etc/smsflow/metrics.key\"",
            "# [[webhook]]",
            "# name = \"servicedesk\"",
            "# url = \"http://127.0.0.1:9000/incidents\"",
            "# secret_env = \"SD_SECRET\"",
            "# timeout = \"10s\"",
            "# tls_ca = \"\"",
        ] {
            assert!(EXAMPLE.contains(commented), "{commented} missing");
        }
    }

    #[test]
    fn unknown_key_nested_names_file_line_key_and_suggestion() {
        let e = error("[[smsc]]\nname = \"a\"\npassword = \"x\"\nwindw = 10\n");
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("smsc[0].windw"));
        assert_eq!(
            e.to_string(),
            "smsflow.toml:4: smsc[0].windw: unknown key (did you mean `window`?)"
        );
    }

    #[test]
    fn unknown_key_at_top_level() {
        let e = error(&format!(
            "{MINIMAL}\n[metrix]\nlisten = \"127.0.0.1:9100\"\n"
        ));
        assert_eq!(
            e.to_string(),
            "smsflow.toml:5: metrix: unknown key (did you mean `metrics`?)"
        );
        let e = error(&format!("colour = 1\n{MINIMAL}"));
        assert_eq!(e.line, Some(1));
        assert_eq!(e.key.as_deref(), Some("colour"));
        assert!(
            e.message.contains("expected one of `service`, `smsc`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_in_a_table() {
        let e = error(&format!("[service]\ntimezon = \"UTC\"\n{MINIMAL}"));
        assert_eq!(
            e.to_string(),
            "smsflow.toml:2: service.timezon: unknown key (did you mean `timezone`?)"
        );
    }

    #[test]
    fn bad_duration_names_the_key() {
        let e = error(&format!("{MINIMAL}response_timeout = \"10 parsecs\"\n"));
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("smsc[0].response_timeout"));
        assert!(
            e.message.starts_with("invalid duration \"10 parsecs\""),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}reconnect_min = 5\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].reconnect_min"));
        assert!(e.message.contains("a duration string like"), "{e}");
    }

    #[test]
    fn bad_bind_value() {
        let e = error(&format!("{MINIMAL}bind = \"trx\"\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].bind"));
        assert_eq!(e.line, Some(4));
        assert_eq!(
            e.to_string(),
            "smsflow.toml:4: smsc[0].bind: unknown value \"trx\" (use `transceiver` or `pair`)"
        );
        let config = parse(&format!("{MINIMAL}bind = \"pair\"\n")).unwrap();
        assert_eq!(config.smsc[0].bind, Bind::Pair);
    }

    #[test]
    fn missing_password_and_password_env() {
        let e = error("[[smsc]]\nname = \"a\"\n");
        assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("password_env"), "{e}");
    }

    #[test]
    fn both_password_and_password_env() {
        let e = error(&format!("{MINIMAL}password_env = \"P\"\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].password_env"));
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn password_env_set_and_unset() {
        let text = "[[smsc]]\nname = \"a\"\npassword_env = \"SMSC_PASSWORD\"\n";
        let env = |name: &str| (name == "SMSC_PASSWORD").then(|| "s3cret".to_owned());
        let config = Config::from_toml(text, Some(Path::new(FILE)), &env).unwrap();
        assert_eq!(config.smsc[0].password(), "s3cret");
        assert!(
            !format!("{config:?}").contains("s3cret"),
            "Debug leaks the password"
        );

        let e = error(text);
        assert_eq!(
            e.to_string(),
            "smsflow.toml:3: smsc[0].password_env: environment variable \"SMSC_PASSWORD\" is \
             not set (export it, or set password instead)"
        );
        let long = |_: &str| Some("123456789".to_owned());
        let e = Config::from_toml(text, Some(Path::new(FILE)), &long).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("smsc[0].password_env"));
        assert!(
            !e.message.contains("123456789"),
            "the message leaks the password"
        );
    }

    #[test]
    fn duplicate_smsc_names() {
        let e = error(&format!("{MINIMAL}\n{MINIMAL}"));
        assert_eq!(e.line, Some(6));
        assert_eq!(e.key.as_deref(), Some("smsc[1].name"));
        assert!(e.message.contains("duplicate smsc name \"a\""), "{e}");
    }

    #[test]
    fn no_smsc_is_a_valid_file_that_run_refuses() {
        // `report` and `store` read such a file; `run` has nothing to bind to.
        let config = parse("[service]\ndata_dir = \"d\"\n").unwrap();
        assert!(config.smsc.is_empty());
        let e = config.require_smsc().unwrap_err();
        assert_eq!(e.key.as_deref(), Some("smsc"));
        assert_eq!(e.path.as_deref(), Some(Path::new(FILE)));
        assert!(
            e.to_string().starts_with("smsflow.toml: smsc: no [[smsc]]"),
            "{e}"
        );
        assert!(Config::defaults().require_smsc().is_ok());
        assert!(parse(MINIMAL).unwrap().require_smsc().is_ok());
    }

    #[test]
    fn bad_timezone() {
        let e = error(&format!(
            "[service]\ntimezone = \"Asia/Tashkient\"\n{MINIMAL}"
        ));
        assert_eq!(
            e.to_string(),
            "smsflow.toml:2: service.timezone: unknown time zone \"Asia/Tashkient\" (use an \
             IANA name such as \"Asia/Tashkent\" or \"UTC\")"
        );
    }

    #[test]
    fn reconnect_min_above_reconnect_max() {
        let e = error(&format!(
            "{MINIMAL}reconnect_min = \"2m\"\nreconnect_max = \"1m\"\n"
        ));
        assert_eq!(e.line, Some(4));
        assert_eq!(e.key.as_deref(), Some("smsc[0].reconnect_min"));
        assert!(
            e.message
                .contains("\"2m\" is longer than reconnect_max \"1m\""),
            "{e}"
        );
    }

    #[test]
    fn system_id_too_long() {
        let e = error(&format!("{MINIMAL}system_id = \"a-very-long-system\"\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].system_id"));
        assert!(e.message.contains("at most 15"), "{e}");
        let e = error("[[smsc]]\nname = \"a\"\npassword = \"123456789\"\n");
        assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
        assert!(
            e.message.contains("at most 8") && !e.message.contains("123456789"),
            "{e}"
        );
    }

    #[test]
    fn ranges_and_addresses() {
        let e = error(&format!("{MINIMAL}port = 70000\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].port"));
        assert!(e.message.contains("port 70000 is out of range"), "{e}");
        let e = error(&format!("{MINIMAL}port = 0\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].port"));
        let e = error(&format!("{MINIMAL}window = 0\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].window"));
        let e = error(&format!("{MINIMAL}sessions = 0\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].sessions"));
        let e = error(&format!("{MINIMAL}[http]\nlisten = \"localhost:80\"\n"));
        assert_eq!(e.key.as_deref(), Some("http.listen"));
        assert!(e.message.contains("\"localhost:80\""), "{e}");
        let e = error(&format!("{MINIMAL}[metrics]\nlisten = \"9100\"\n"));
        assert_eq!(e.key.as_deref(), Some("metrics.listen"));
        let e = error(&format!("{MINIMAL}[http]\ntokens = [\"ok\", \"\"]\n"));
        assert_eq!(e.key.as_deref(), Some("http.tokens[1]"));
        assert_eq!(e.line, Some(5));
        let config = parse(&format!("{MINIMAL}[http]\ntokens = []\n")).unwrap();
        assert!(config.http.tokens.is_empty());
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = error("[[smsc]]\nname = \"a\npassword = \"x\"\n");
        assert_eq!(e.path.as_deref(), Some(Path::new(FILE)));
        assert_eq!(e.line, Some(2));
    }

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("smsflow-config-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn discover_explicit_missing_file_is_an_error_naming_it() {
        let dir = TempDir::new("explicit-missing");
        let e = discover_in(&dir.0, Some(Path::new("prod.toml")), &no_env).unwrap_err();
        assert_eq!(e.path, Some(dir.0.join("prod.toml")));
        assert!(
            e.to_string()
                .ends_with("prod.toml: config file not found (check the --config path)"),
            "{e}"
        );
        // Even when ./smsflow.toml exists: a given file never falls back to another one.
        std::fs::write(dir.0.join(DEFAULT_FILE), MINIMAL).unwrap();
        assert!(discover_in(&dir.0, Some(Path::new("prod.toml")), &no_env).is_err());
    }

    #[test]
    fn discover_without_a_file_uses_defaults() {
        let dir = TempDir::new("defaults");
        let config = discover_in(&dir.0, None, &no_env).unwrap();
        assert_eq!(config.source, None);
        assert_eq!(config.smsc[0].name, "default");
        assert_eq!(config.smsc[0].password(), "smsflow");
    }

    #[test]
    fn discover_prefers_local_smsflow_toml_then_explicit() {
        let dir = TempDir::new("local");
        std::fs::write(dir.0.join(DEFAULT_FILE), MINIMAL).unwrap();
        let config = discover_in(&dir.0, None, &no_env).unwrap();
        assert_eq!(config.source, Some(dir.0.join(DEFAULT_FILE)));
        assert_eq!(config.smsc[0].name, "a");

        std::fs::write(dir.0.join("other.toml"), MINIMAL.replace("\"a\"", "\"b\"")).unwrap();
        let config = discover_in(&dir.0, Some(Path::new("other.toml")), &no_env).unwrap();
        assert_eq!(config.smsc[0].name, "b");

        // A broken local file is reported, not replaced by the defaults.
        std::fs::write(dir.0.join(DEFAULT_FILE), "[[smsc]]\nname = \"a\"\n").unwrap();
        let e = discover_in(&dir.0, None, &no_env).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("smsc[0].password"));
    }

    #[test]
    fn values_that_cannot_work_are_refused_naming_the_key_and_range() {
        for (line, key, range) in [
            (
                "enquire_link_interval = \"0s\"",
                "smsc[0].enquire_link_interval",
                "\"1s\" to \"1h\"",
            ),
            (
                "response_timeout = \"0s\"",
                "smsc[0].response_timeout",
                "\"100ms\" to \"5m\"",
            ),
            ("sessions = 100000", "smsc[0].sessions", "1 to 64"),
            ("window = 1000000000", "smsc[0].window", "1 to 10000"),
            ("window = 0", "smsc[0].window", "1 to 10000"),
        ] {
            let e = error(&format!("{MINIMAL}{line}\n"));
            assert_eq!(e.key.as_deref(), Some(key), "{line}");
            assert!(
                e.message.contains(&format!("allowed {range}")),
                "{line}: {e}"
            );
        }
        for (line, key) in [
            (
                "[service]\nredelivery_window = \"0s\"",
                "service.redelivery_window",
            ),
            (
                "[http]\nheader_read_timeout = \"1h\"",
                "http.header_read_timeout",
            ),
            ("[http]\nmax_connections = 0", "http.max_connections"),
            ("[http]\nmax_body = \"1GiB\"", "http.max_body"),
            ("[http]\nmax_body = \"64MiB\"", "http.max_body"),
        ] {
            let e = error(&format!("{MINIMAL}{line}\n"));
            assert_eq!(e.key.as_deref(), Some(key), "{line}: {e}");
        }
        let config = parse(&format!("{MINIMAL}[http]\nmax_body = \"1MiB\"\n")).unwrap();
        assert_eq!(config.http.max_body, 1024 * 1024);
        let config = parse(&format!("{MINIMAL}[http]\nmax_body = 4096\n")).unwrap();
        assert_eq!(config.http.max_body, 4096);
    }

    #[test]
    fn export_and_node_are_checked_naming_the_key_and_line() {
        let config = parse(&format!(
            "[service]\nnode = \"tash-1\"\n{MINIMAL}[export]\n\
             nats_url = \"nats://n1:4222, nats://n2:4222\"\nreplicas = 3\n"
        ))
        .unwrap();
        let export = config.export.expect("[export] is there");
        assert_eq!(export.servers(), ["nats://n1:4222", "nats://n2:4222"]);
        assert_eq!((export.stream.as_str(), export.replicas), ("SMSFLOW", 3));
        assert_eq!(config.service.node, "tash-1");
        assert!(
            parse(MINIMAL).unwrap().export.is_none(),
            "no export by default"
        );

        let e = error(&format!("{MINIMAL}[export]\nstream = \"SMS.FLOW\"\n"));
        assert_eq!(
            (e.key.as_deref(), e.line),
            (Some("export.stream"), Some(5)),
            "{e}"
        );
        let e = error(&format!("{MINIMAL}[export]\nnats = \"nats://x:4222\"\n"));
        assert!(e.to_string().contains("export.nats: unknown key"), "{e}");
        let e = error("[service]\nnode = \"tash 1\"\n");
        assert_eq!(e.key.as_deref(), Some("service.node"), "{e}");
    }

    #[test]
    fn webhooks_are_checked_naming_the_key_and_line() {
        let text = format!(
            "{MINIMAL}[[webhook]]\nname = \"servicedesk\"\nurl = \"http://127.0.0.1:9000/in\"\n\
             secret_env = \"SD_SECRET\"\ntimeout = \"3s\"\n"
        );
        let env = |name: &str| (name == "SD_SECRET").then(|| "s3cret".to_owned());
        let config = Config::from_toml(&text, Some(Path::new(FILE)), &env).unwrap();
        let w = &config.webhook[0];
        assert_eq!(
            (w.name.as_str(), w.timeout),
            ("servicedesk", Duration::from_secs(3))
        );
        let r = w.resolved().unwrap();
        assert_eq!(
            (r.port, r.secret.as_ref().map(Secret::expose)),
            (9000, Some("s3cret"))
        );
        let e = error(&text);
        assert_eq!(e.key.as_deref(), Some("webhook[0].secret_env"));
        assert_eq!(e.line, Some(7), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[webhook]]\nname = \"x\"\nurl = \"x\"\n"
        ));
        assert_eq!(e.key.as_deref(), Some("webhook[0].url"), "{e}");
        let e = error(&format!(
            "{MINIMAL}[[webhook]]\nname = \"x\"\nurl = \"http://x/\"\ntimeout = \"10m\"\n"
        ));
        assert!(
            e.to_string()
                .contains("webhook[0].timeout: \"10m\" is out of range"),
            "{e}"
        );
    }

    #[test]
    fn button_routes_are_checked_naming_the_key_and_line() {
        let c =
            parse("[buttons]\n104 = { call = \"escalation\", cancel = \"complaint\" }\n").unwrap();
        let routes = c.button_routes();
        assert_eq!(routes.flow(104, buttons::Action::Cancel), Ok("complaint"));
        assert_eq!(routes.flow(101, buttons::Action::Call), Ok("complaint"));
        let e = error("[buttons]\n101 = \"complaint\"\n\"x1\" = \"alert\"\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key.as_deref(), Some("buttons.x1"), "{e}");
        let e = error("[buttons]\n101 = { cal = \"complaint\" }\n");
        assert!(e.to_string().contains("unknown action `cal`"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn tokens_from_the_environment() {
        let env = |var: &str| (var == "API_TOKENS").then(|| " one, two ,".to_owned());
        let text = format!("{MINIMAL}[http]\ntokens_env = \"API_TOKENS\"\n");
        let config = Config::from_toml(&text, None, &env).unwrap();
        let tokens: Vec<&str> = config.http.tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["one", "two"]);
        assert!(!config.http.has_sample_token());
        let e = error(&format!("{MINIMAL}[http]\ntokens_env = \"NOPE\"\n"));
        assert_eq!(e.key.as_deref(), Some("http.tokens_env"));
        let both = format!("{MINIMAL}[http]\ntokens = [\"x\"]\ntokens_env = \"API_TOKENS\"\n");
        let e = Config::from_toml(&both, None, &env).unwrap_err();
        assert!(e.message.contains("both tokens and tokens_env"), "{e}");
    }
}
