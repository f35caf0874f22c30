//! `[[smsc]]`: a carrier's SMSC, how smsflow binds to it, and SMPP 3.4's field limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::de::{duration, port};

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
    pub(super) resolved_password: Secret,
    /// The loaded TLS material when `tls = true`; what [`SmscConfig::tls`] returns.
    #[serde(skip)]
    pub(super) resolved_tls: Option<crate::tls::ClientTls>,
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
