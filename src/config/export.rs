//! `[export]`: every conversation event to NATS JetStream (SPEC.md "Export"), and the
//! `[service] node` name each event carries.
//!
//! Checked when the config is read: server URLs that are not `nats://` (or `tls://`) with a
//! host, a stream name JetStream refuses, a subject prefix with wildcards or empty tokens, a
//! replica count out of range (a retention under an hour: `bounds`). Errors are `(key,
//! message)` relative to the table.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// How long the stream keeps events when it is created: a year of reports and their
/// trends, with a margin.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

/// `[export]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// The NATS servers, comma-separated (`nats://user:password@host:4222`; `tls://` for
    /// TLS). Default `"nats://127.0.0.1:4222"`.
    pub nats_url: String,
    /// The JetStream stream, created when missing. Default `"SMSFLOW"`.
    pub stream: String,
    /// Events go to `<subject_prefix>.<kind>`. Default `"smsflow"`.
    pub subject_prefix: String,
    /// The stream's `max_age` when smsflow creates it. Default `"400d"`.
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    /// The stream's replicas when smsflow creates it: 1, or 3 on a 3-node cluster.
    /// Default `1`.
    pub replicas: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            stream: "SMSFLOW".to_owned(),
            subject_prefix: "smsflow".to_owned(),
            max_age: DEFAULT_MAX_AGE,
            replicas: 1,
        }
    }
}

impl ExportConfig {
    /// The servers of `nats_url`, one per comma.
    pub fn servers(&self) -> Vec<String> {
        servers(&self.nats_url)
    }

    /// The subjects the stream holds: `<subject_prefix>.>`.
    pub fn subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}

/// `url` split at commas, trimmed.
pub fn servers(url: &str) -> Vec<String> {
    (url.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `servers` for a log line or a message: each without its user and password
/// (`nats://***@host:4222`).
pub fn redacted(servers: &[String]) -> String {
    let one = |server: &String| match server.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let host = rest.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://***@{host}")
        }
        _ => server.clone(),
    };
    servers.iter().map(one).collect::<Vec<_>>().join(",")
}

/// Checks `[export]`.
pub fn check(export: &ExportConfig) -> Result<(), (String, String)> {
    let err = |key: &str, message: String| Err((key.to_owned(), message));
    let servers = export.servers();
    if servers.is_empty() {
        return err(
            "nats_url",
            "no server (write it like \"nats://127.0.0.1:4222\")".into(),
        );
    }
    for server in &servers {
        if let Err(why) = check_server(server) {
            let shown = redacted(std::slice::from_ref(server));
            return err("nats_url", format!("\"{shown}\": {why}"));
        }
    }
    if let Err(why) = check_stream(&export.stream) {
        return err("stream", format!("\"{}\": {why}", export.stream));
    }
    if let Err(why) = check_prefix(&export.subject_prefix) {
        return err(
            "subject_prefix",
            format!("\"{}\": {why}", export.subject_prefix),
        );
    }
    if !(1..=5).contains(&export.replicas) {
        return err(
            "replicas",
            format!(
                "{} is out of range (1–5, JetStream's limit)",
                export.replicas
            ),
        );
    }
    Ok(())
}

fn check_server(server: &str) -> Result<(), String> {
    let rest = (server.strip_prefix("nats://"))
        .or_else(|| server.strip_prefix("tls://"))
        .ok_or("not nats:// or tls://")?;
    let host = rest.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("no host".into());
    }
    server
        .parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// JetStream stream names: no whitespace, `.`, `*`, `>`, path separators.
fn check_stream(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name.len() > 64 {
        return Err("longer than 64 characters");
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err("JetStream names have no spaces, '.', '*', '>', '/' or '\\'");
    }
    Ok(())
}

/// Subject tokens: dot-separated, none empty, no wildcards or whitespace.
fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    let bad =
        |t: &str| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '*' || c == '>');
    if prefix.split('.').any(bad) {
        return Err("subject tokens are dot-separated, none empty, without '*', '>' or spaces");
    }
    Ok(())
}

/// The host name: `[service] node`'s default.
pub fn host_name() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    (from_file("/proc/sys/kernel/hostname"))
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "smsflow".to_owned())
}

/// Checks `[service] node`: part of every `Nats-Msg-Id`, so no whitespace.
pub fn check_node(node: &str) -> Result<(), (String, String)> {
    if node.is_empty()
        || node.len() > 64
        || node.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err((
            "service.node".to_owned(),
            format!("\"{node}\": 1–64 characters without spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_streams_and_prefixes_are_checked() {
        let ok = ExportConfig::default();
        assert_eq!(check(&ok), Ok(()));
        let with = |f: fn(&mut ExportConfig)| {
            let mut c = ExportConfig::default();
            f(&mut c);
            check(&c).map_err(|(key, _)| key)
        };
        assert_eq!(
            with(|c| c.nats_url = "nats://a:4222, nats://b:4222".into()),
            Ok(())
        );
        assert_eq!(
            with(|c| c.nats_url = "http://a:4222".into()),
            Err("nats_url".into())
        );
        assert_eq!(
            with(|c| c.nats_url = "nats://:4222".into()),
            Err("nats_url".into())
        );
        assert_eq!(with(|c| c.nats_url = " , ".into()), Err("nats_url".into()));
        assert_eq!(with(|c| c.stream = "SMS.FLOW".into()), Err("stream".into()));
        assert_eq!(
            with(|c| c.subject_prefix = "a..b".into()),
            Err("subject_prefix".into())
        );
        assert_eq!(
            with(|c| c.subject_prefix = "a.*".into()),
            Err("subject_prefix".into())
        );
        assert_eq!(with(|c| c.subject_prefix = "tenant.5700".into()), Ok(()));
        assert_eq!(with(|c| c.replicas = 0), Err("replicas".into()));
        let servers = servers("nats://smsflow:s3cret@n1:4222,nats://n2:4222");
        assert_eq!(redacted(&servers), "nats://***@n1:4222,nats://n2:4222");
        assert!(check_node("node 1").is_err());
        assert!(check_node(&host_name()).is_ok());
    }
}
