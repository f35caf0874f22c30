//! `[[webhook]]`: where flows hand work to other systems (a Service Desk, a ticketing system, a
//! chat), by name: a flow calls `notify("servicedesk", payload)`.
//!
//! Checked when the config is read, like the SMSC's keys: a name that is empty, repeated or not
//! `[A-Za-z0-9_-]`, a URL that is not `http://` or `https://` with a host, a `secret_env` naming
//! an unset variable, or a `tls_ca` that is no PEM stops the start with the key and the file
//! (a timeout out of range too, checked in `bounds` with the other ranges). Errors are `(key, message)` relative to the `[[webhook]]`; the caller
//! adds `webhook[i].`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Secret, duration};

/// One `[[webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// What flows call it by (`notify(name, payload)`), unique, letters, digits, `_` and `-`.
    /// Required: no default.
    pub name: String,
    /// Where the POST goes: `http://` or `https://`, with a host. Required.
    pub url: String,
    /// An environment variable holding the shared secret: every POST then carries
    /// `X-Smsflow-Signature: sha256=<hex HMAC-SHA256 of the body>`. Read when the config is
    /// loaded; unset (or empty) is an error. Default none: unsigned.
    pub secret_env: Option<String>,
    /// How long one attempt may take, connect to the end of the response. Default `"10s"`.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// For `https://`: PEM file of the CAs that may sign the receiver's certificate. Default
    /// `""`: the system's trust store. The certificate is always verified.
    pub tls_ca: PathBuf,
    /// What the checks resolved: the URL's parts, the secret, the TLS config.
    #[serde(skip)]
    resolved: Option<Resolved>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            name: String::new(),
            url: String::new(),
            secret_env: None,
            timeout: Duration::from_secs(10),
            tls_ca: PathBuf::new(),
            resolved: None,
        }
    }
}

/// A checked webhook: what the delivery worker needs.
#[derive(Clone)]
pub struct Resolved {
    pub uri: hyper::Uri,
    pub host: String,
    pub port: u16,
    /// `Some` for `https://`: the client config and the name to verify.
    pub tls: Option<crate::tls::ClientTls>,
    pub secret: Option<Secret>,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("uri", &self.uri)
            .field("tls", &self.tls.is_some())
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

impl WebhookConfig {
    /// The checked URL, secret and TLS config (set by the config's checks; `None` only for a
    /// value built in code that skipped them).
    pub fn resolved(&self) -> Option<&Resolved> {
        self.resolved.as_ref()
    }

    /// A webhook for tests and tools: `url` is checked as a file's would be.
    pub fn new(name: &str, url: &str, secret: Option<&str>) -> Result<WebhookConfig, String> {
        let mut config = WebhookConfig {
            name: name.to_owned(),
            url: url.to_owned(),
            secret_env: secret.map(|_| "SECRET".to_owned()),
            ..WebhookConfig::default()
        };
        let env = |_: &str| secret.map(str::to_owned);
        check(&mut config, &[], &env).map_err(|(key, message)| format!("{key}: {message}"))?;
        Ok(config)
    }
}

/// Checks `webhook` (after the `before` ones) and resolves its URL, secret and TLS.
pub(super) fn check(
    webhook: &mut WebhookConfig,
    before: &[WebhookConfig],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (&'static str, String)> {
    let name = &webhook.name;
    if name.is_empty() {
        return Err((
            "name",
            "missing or empty (flows call a webhook by its name, e.g. name = \"servicedesk\")"
                .to_owned(),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err((
            "name",
            format!("\"{name}\" has characters other than letters, digits, _ and -"),
        ));
    }
    if let Some(first) = before.iter().position(|w| w.name == *name) {
        return Err((
            "name",
            format!("duplicate webhook name \"{name}\" (also webhook[{first}])"),
        ));
    }
    let (uri, host, port, https) = parse_url(&webhook.url).map_err(|m| ("url", m))?;
    let tls = if https {
        let roots = if webhook.tls_ca.as_os_str().is_empty() {
            crate::tls::system_roots()
        } else {
            crate::tls::roots_from_file(&webhook.tls_ca)
        }
        .map_err(|e| ("tls_ca", e.to_string()))?;
        let config =
            crate::tls::client_config(roots, None).map_err(|e| ("tls_ca", e.to_string()))?;
        let server_name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
            (
                "url",
                format!("\"{host}\" cannot be checked against a certificate"),
            )
        })?;
        Some(crate::tls::ClientTls {
            config,
            server_name,
            hints: Default::default(),
        })
    } else {
        if !webhook.tls_ca.as_os_str().is_empty() {
            return Err((
                "tls_ca",
                "is set but the url is http:// (use https://, or remove tls_ca)".to_owned(),
            ));
        }
        None
    };
    let secret = match &webhook.secret_env {
        None => None,
        Some(var) => match env(var) {
            Some(value) if !value.is_empty() => Some(Secret(value)),
            Some(_) => {
                return Err((
                    "secret_env",
                    format!("environment variable \"{var}\" is empty (a signature needs a secret)"),
                ));
            }
            None => {
                return Err((
                    "secret_env",
                    format!(
                        "environment variable \"{var}\" is not set (export it, or remove \
                         secret_env to send unsigned)"
                    ),
                ));
            }
        },
    };
    webhook.resolved = Some(Resolved {
        uri,
        host,
        port,
        tls,
        secret,
    });
    Ok(())
}

/// `http://host[:port]/path?query` or `https://...`: the URI, host, port and whether TLS.
fn parse_url(url: &str) -> Result<(hyper::Uri, String, u16, bool), String> {
    let https = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "\"{url}\" must start with http:// or https:// (e.g. \"https://desk.example/api\")"
            ));
        }
    };
    let uri: hyper::Uri = url.parse().map_err(|e| {
        format!("\"{url}\" is not a URL ({e}; e.g. \"http://127.0.0.1:9000/incidents\")")
    })?;
    let host = match uri.host() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        _ => return Err(format!("\"{url}\" has no host")),
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "\"{url}\" carries credentials; use secret_env to sign requests instead"
        ));
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((uri, host, port, https))
}

/// The webhook names of `webhooks`, for the flow engine.
pub fn names(webhooks: &[WebhookConfig]) -> Vec<String> {
    webhooks.iter().map(|w| w.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(url: &str) -> Result<WebhookConfig, String> {
        WebhookConfig::new("servicedesk", url, None)
    }

    #[test]
    fn urls_are_parsed_with_default_ports() {
        let w = checked("http://127.0.0.1:9000/incidents?x=1").unwrap();
        let r = w.resolved().unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.tls.is_none()),
            ("127.0.0.1", 9000, true)
        );
        assert_eq!(r.uri.path_and_query().unwrap().as_str(), "/incidents?x=1");
        assert_eq!(
            checked("http://desk.example/")
                .unwrap()
                .resolved()
                .unwrap()
                .port,
            80
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("desk.example/api", "must start with http:// or https://"),
            ("ftp://desk.example/", "must start with http://"),
            ("http://", "not a URL"),
            ("http://user:pw@desk.example/", "credentials"),
        ] {
            let e = checked(url).unwrap_err();
            assert!(e.starts_with("url: ") && e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn names_and_secrets_are_checked() {
        let e = WebhookConfig::new("service desk", "http://x/", None).unwrap_err();
        assert!(e.contains("letters, digits"), "{e}");
        let mut w = WebhookConfig {
            name: "a".into(),
            url: "http://x/".into(),
            secret_env: Some("SD_SECRET".into()),
            ..WebhookConfig::default()
        };
        let e = check(&mut w, &[], &|_| None).unwrap_err();
        assert_eq!(e.0, "secret_env");
        assert!(e.1.contains("\"SD_SECRET\" is not set"), "{}", e.1);
        check(&mut w, &[], &|_| Some("s3cret".into())).unwrap();
        assert_eq!(
            w.resolved().unwrap().secret.as_ref().unwrap().expose(),
            "s3cret"
        );
        let e = check(&mut w.clone(), std::slice::from_ref(&w), &|_| {
            Some("s".into())
        })
        .unwrap_err();
        assert!(e.1.contains("duplicate webhook name \"a\""), "{}", e.1);
    }
}
