//! `[http]` and `[metrics]`: the two listeners, their tokens, limits and TLS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::de::{duration, size, socket_addr};

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
    pub(super) resolved_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl HttpConfig {
    /// The HTTPS config when `tls_cert` and `tls_key` are set (loaded with the file).
    pub fn tls(&self) -> Option<&std::sync::Arc<rustls::ServerConfig>> {
        self.resolved_tls.as_ref()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        let limits = ListenerLimits::default();
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tokens: vec![Secret(SAMPLE_TOKEN.to_owned())],
            tokens_env: None,
            number_tokens: Vec::new(),
            max_body: BODY_LIMIT,
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
    pub fn limits(&self) -> ListenerLimits {
        ListenerLimits {
            max_connections: self.max_connections,
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            ..ListenerLimits::default()
        }
    }

    /// Whether the SPEC's sample token is among the tokens.
    pub fn has_sample_token(&self) -> bool {
        self.tokens.iter().any(|t| t.expose() == SAMPLE_TOKEN)
    }
}

/// Event bodies are small JSON objects; anything bigger is a mistake or an attack. The
/// default of `http.max_body`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What one listener allows. Defaults: SPEC's `[http]` keys of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From the connection's start, or the end of the previous response, to the last header
    /// of the next request: a connection idle this long is closed (hyper runs this timer
    /// while waiting for a request head, so it is the keep-alive idle timeout too).
    pub header_read_timeout: Duration,
    /// From the headers to the response (a slow body upload included): 503 after it.
    pub request_timeout: Duration,
    /// How long a stop may take at most (see the module documentation).
    pub stop_grace: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(10),
        }
    }
}

impl ListenerLimits {
    /// `/metrics`: a scraper or two, short requests.
    pub fn metrics() -> ListenerLimits {
        ListenerLimits {
            max_connections: 64,
            ..ListenerLimits::default()
        }
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
    pub(super) resolved_tls: Option<std::sync::Arc<rustls::ServerConfig>>,
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
