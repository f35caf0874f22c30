//! The checks serde cannot make: names unique, secrets resolved from the environment,
//! SMPP field lengths, TLS material loaded, listeners apart.

use std::time::Duration;

use super::{Config, MAX_ADDRESS_RANGE, MAX_PASSWORD, MAX_SOURCE_ADDR, MAX_SYSTEM_ID};
use super::{MAX_SYSTEM_TYPE, Secret, bounds, export, tls, webhook};

impl Config {
    /// Checks what serde cannot and resolves `password_env`. The error is the key's dotted
    /// path and the message, which quotes a value as `written` in the file.
    pub(super) fn check(
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

/// A duration for a message: as the file writes `key`, else as we would.
fn shown_duration(written: bounds::Written, key: &str, value: Duration) -> String {
    bounds::shown(written(key), || {
        format!("\"{}\"", bounds::duration_text(value))
    })
}
