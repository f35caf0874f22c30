//! The TLS keys of `smsflow.toml`: `[[smsc]] tls*` and `[http]` / `[metrics]`
//! `tls_cert` / `tls_key`, checked and loaded when the config is read, so a missing file, a
//! file that is no PEM, a certificate without its key or a key that is not the certificate's
//! stops `smsflow run` at start (exit 2, naming the key and the file) rather than at the
//! first handshake.
//!
//! Paths are taken as written: relative ones from the working directory, like `data_dir`.
//! Errors are `(key, message)` with the key relative to its table; the caller adds the table.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::ServerName;

use super::SmscConfig;
use crate::tls::{self, ClientTls, Identity, Origin, Pin, SmscTrust, TlsError};

/// What the ESME needs for `[[smsc]]` `smsc`: `None` without `tls = true`. The error's key
/// may carry an index (`tls_pin_sha256[1]`), so it is owned.
pub(super) fn smsc(
    smsc: &SmscConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ClientTls>, (String, String)> {
    let set = |path: &Path| !path.as_os_str().is_empty();
    fn at(key: &str) -> impl Fn(TlsError) -> (String, String) + '_ {
        move |e| (key.to_owned(), e.to_string())
    }
    if !smsc.tls {
        // Any TLS key without `tls = true` means the operator believes the link is encrypted.
        let stray = [
            ("tls_ca", set(&smsc.tls_ca)),
            ("tls_server_name", !smsc.tls_server_name.is_empty()),
            ("tls_pin_sha256", !smsc.tls_pin_sha256.is_empty()),
            ("tls_cert", set(&smsc.tls_cert)),
            ("tls_key", set(&smsc.tls_key)),
            ("tls_key_env", smsc.tls_key_env.is_some()),
        ];
        if let Some((key, _)) = stray.into_iter().find(|(_, set)| *set) {
            return Err((
                key.to_owned(),
                format!("is set but tls = false (set tls = true, or remove {key})"),
            ));
        }
        return Ok(None);
    }
    let name = if smsc.tls_server_name.is_empty() {
        ("host", smsc.host.as_str())
    } else {
        ("tls_server_name", smsc.tls_server_name.as_str())
    };
    let server_name = ServerName::try_from(name.1.to_owned()).map_err(|_| {
        (
            name.0.to_owned(),
            format!(
                "\"{}\" is not a DNS name or IP address the SMSC's certificate could be \
                 checked against",
                name.1
            ),
        )
    })?;
    let pins = smsc
        .tls_pin_sha256
        .iter()
        .enumerate()
        .map(|(i, text)| Pin::parse(text).map_err(|e| (format!("tls_pin_sha256[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let ca = if set(&smsc.tls_ca) {
        let certs = tls::read_certificates(&smsc.tls_ca).map_err(at("tls_ca"))?;
        Some((smsc.tls_ca.clone(), certs))
    } else {
        None
    };
    let key = match (set(&smsc.tls_key), &smsc.tls_key_env) {
        (true, Some(_)) => {
            return Err((
                "tls_key_env".to_owned(),
                "both tls_key and tls_key_env are set (keep one)".to_owned(),
            ));
        }
        (true, None) => Some((
            "tls_key",
            tls::read(&smsc.tls_key).map_err(at("tls_key"))?,
            Origin::File(smsc.tls_key.clone()),
        )),
        (false, Some(var)) => match env(var) {
            Some(pem) => Some(("tls_key_env", pem.into_bytes(), Origin::Env(var.clone()))),
            None => {
                return Err((
                    "tls_key_env".to_owned(),
                    format!(
                        "environment variable \"{var}\" is not set (export it with the PEM \
                         key, or set tls_key to the key's file instead)"
                    ),
                ));
            }
        },
        (false, None) => None,
    };
    let identity = match (set(&smsc.tls_cert), key) {
        (false, None) => None,
        (true, None) => {
            return Err((
                "tls_key".to_owned(),
                "tls_cert is set without its private key (set tls_key = \"FILE\" or \
                 tls_key_env = \"VARIABLE\")"
                    .to_owned(),
            ));
        }
        (false, Some((key, _, _))) => {
            return Err((
                "tls_cert".to_owned(),
                format!(
                    "{key} is set without a client certificate (set tls_cert = \"FILE\", or \
                     remove {key})"
                ),
            ));
        }
        (true, Some((key, pem, origin))) => Some(Identity {
            certs: tls::read_certificates(&smsc.tls_cert).map_err(at("tls_cert"))?,
            key: tls::parse_private_key(&pem, origin).map_err(at(key))?,
            origin: Origin::File(smsc.tls_cert.clone()),
        }),
    };
    let trust = SmscTrust { ca, pins };
    ClientTls::for_smsc(trust, identity, server_name)
        .map(Some)
        .map_err(|e| match e {
            // A key that is not the certificate's: the key is what to fix.
            TlsError::Identity { .. } if smsc.tls_key_env.is_some() => at("tls_key_env")(e),
            TlsError::Identity { .. } => at("tls_key")(e),
            TlsError::BadCa { .. } | TlsError::BadValidity { .. } | TlsError::NoSystemRoots => {
                at("tls_ca")(e)
            }
            other => at("tls")(other),
        })
}

/// HTTPS for a listener table (`[http]`, `[metrics]`): `None` when neither key is set.
pub(super) fn server(
    cert: &Path,
    key: &Path,
) -> Result<Option<Arc<ServerConfig>>, (&'static str, String)> {
    match (!cert.as_os_str().is_empty(), !key.as_os_str().is_empty()) {
        (false, false) => Ok(None),
        (true, false) => Err((
            "tls_key",
            "tls_cert is set without its private key (set tls_key = \"FILE\")".to_owned(),
        )),
        (false, true) => Err((
            "tls_cert",
            "tls_key is set without a certificate (set tls_cert = \"FILE\", or remove tls_key)"
                .to_owned(),
        )),
        (true, true) => {
            let certs = tls::read_certificates(cert).map_err(|e| ("tls_cert", e.to_string()))?;
            let pem = tls::read(key).map_err(|e| ("tls_key", e.to_string()))?;
            let key_der = tls::parse_private_key(&pem, Origin::File(key.to_path_buf()))
                .map_err(|e| ("tls_key", e.to_string()))?;
            let identity = Identity {
                certs,
                key: key_der,
                origin: Origin::File(cert.to_path_buf()),
            };
            tls::server_config(identity, None)
                .map(Some)
                .map_err(|e| ("tls_key", e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };

    use crate::config::{Config, ConfigError};

    /// A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate, as PEM
    /// files in a fresh directory (made at test time: no key is ever committed).
    struct Pki {
        dir: PathBuf,
        client_key_pem: String,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let dir = std::env::temp_dir()
                .join(format!("smsflow-config-tls-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let leaf = |names: &[&str], usage| {
                let mut params =
                    CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                        .unwrap();
                params.extended_key_usages = vec![usage];
                let key = KeyPair::generate().unwrap();
                let cert = params.signed_by(&key, &ca).unwrap();
                (cert.pem(), key.serialize_pem())
            };
            let (server, server_key) = leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
            let (client, client_key) = leaf(&["esme"], ExtendedKeyUsagePurpose::ClientAuth);
            for (file, pem) in [
                ("ca.pem", ca.pem()),
                ("server.pem", server),
                ("server.key", server_key),
                ("client.pem", client),
                ("client.key", client_key.clone()),
            ] {
                std::fs::write(dir.join(file), pem).unwrap();
            }
            Pki {
                dir,
                client_key_pem: client_key,
            }
        }

        fn path(&self, file: &str) -> String {
            self.dir.join(file).display().to_string()
        }

        /// A config with one TLS `[[smsc]]` plus `extra` lines in its table.
        fn smsc(&self, extra: &str) -> String {
            format!(
                "[[smsc]]\nname = \"a\"\npassword = \"p\"\ntls = true\ntls_ca = {:?}\n{extra}",
                self.path("ca.pem")
            )
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_toml(text, Some(std::path::Path::new("smsflow.toml")), env)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn error(text: &str) -> ConfigError {
        match parse(text, &no_env) {
            Ok(_) => panic!("expected an error for\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn tls_with_a_ca_file_verifies_the_host_or_the_server_name() {
        let pki = Pki::new("ca");
        let config = parse(&pki.smsc(""), &no_env).unwrap();
        let tls = config.smsc[0].tls().expect("tls loaded");
        assert_eq!(
            format!("{:?}", tls.server_name),
            "IpAddress(V4(Ipv4Addr([127, 0, 0, 1])))"
        );
        let config = parse(&pki.smsc("tls_server_name = \"smsc.example\"\n"), &no_env).unwrap();
        let tls = config.smsc[0].tls().unwrap();
        assert_eq!(tls.server_name.to_str(), "smsc.example");
        assert!(Config::defaults().smsc[0].tls().is_none());
    }

    #[test]
    fn client_certificate_with_a_key_file_or_a_key_from_the_environment() {
        let pki = Pki::new("mtls");
        let cert = format!("tls_cert = {:?}\n", pki.path("client.pem"));
        let with_file = format!("{cert}tls_key = {:?}\n", pki.path("client.key"));
        let config = parse(&pki.smsc(&with_file), &no_env).unwrap();
        assert!(
            config.smsc[0]
                .tls()
                .unwrap()
                .config
                .client_auth_cert_resolver
                .has_certs()
        );

        let with_env = format!("{cert}tls_key_env = \"SMSC_TLS_KEY\"\n");
        let key = pki.client_key_pem.clone();
        let env = move |var: &str| (var == "SMSC_TLS_KEY").then(|| key.clone());
        let config = parse(&pki.smsc(&with_env), &env).unwrap();
        assert!(
            config.smsc[0]
                .tls()
                .unwrap()
                .config
                .client_auth_cert_resolver
                .has_certs()
        );
        assert!(
            !format!("{config:?}").contains("PRIVATE KEY"),
            "Debug leaks the key"
        );

        let e = error(&pki.smsc(&with_env));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_key_env"));
        assert!(e.message.contains("\"SMSC_TLS_KEY\" is not set"), "{e}");
    }

    #[test]
    fn a_certificate_without_its_key_or_a_key_without_certificate_names_the_missing_key() {
        let pki = Pki::new("half");
        let e = error(&pki.smsc(&format!("tls_cert = {:?}\n", pki.path("client.pem"))));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_key"));
        assert!(
            e.message
                .starts_with("tls_cert is set without its private key"),
            "{e}"
        );
        let e = error(&pki.smsc(&format!("tls_key = {:?}\n", pki.path("client.key"))));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_cert"));
        assert!(
            e.message
                .starts_with("tls_key is set without a client certificate"),
            "{e}"
        );
        let both = format!(
            "tls_cert = {:?}\ntls_key = {:?}\ntls_key_env = \"K\"\n",
            pki.path("client.pem"),
            pki.path("client.key")
        );
        assert_eq!(
            error(&pki.smsc(&both)).key.as_deref(),
            Some("smsc[0].tls_key_env")
        );
    }

    #[test]
    fn unreadable_or_invalid_pem_names_the_key_the_file_and_the_line() {
        let pki = Pki::new("bad");
        let text = "[[smsc]]\nname = \"a\"\npassword = \"p\"\ntls = true\ntls_ca = \"/nonexistent/ca.pem\"\n";
        let e = error(text);
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_ca"));
        assert_eq!(e.line, Some(5));
        assert!(
            e.to_string()
                .starts_with("smsflow.toml:5: smsc[0].tls_ca: cannot read \"/nonexistent/ca.pem\""),
            "{e}"
        );
        // A key where a certificate belongs.
        let text = text.replace("/nonexistent/ca.pem", &pki.path("server.key"));
        let e = error(&text);
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_ca"));
        assert!(
            e.message.contains("server.key\" holds no certificate"),
            "{e}"
        );
        // A certificate where the key belongs.
        let swapped = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            pki.path("client.pem"),
            pki.path("client.pem")
        );
        let e = error(&pki.smsc(&swapped));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_key"));
        assert!(
            e.message.contains("client.pem\" holds no private key"),
            "{e}"
        );
        // Another certificate's key.
        let mismatched = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            pki.path("client.pem"),
            pki.path("server.key")
        );
        let e = error(&pki.smsc(&mismatched));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_key"));
        assert!(e.message.contains("cannot be used together"), "{e}");
    }

    #[test]
    fn tls_keys_without_tls_true_and_a_bad_server_name_are_refused() {
        let e = error("[[smsc]]\nname = \"a\"\npassword = \"p\"\ntls_ca = \"ca.pem\"\n");
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_ca"));
        assert!(e.message.contains("tls = false"), "{e}");
        let pki = Pki::new("name");
        let e = error(&pki.smsc("tls_server_name = \"not a name\"\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_server_name"));
    }

    #[test]
    fn a_malformed_pin_names_its_key_index_and_line() {
        let pki = Pki::new("pins");
        let good = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        let text = pki.smsc(&format!(
            "tls_pin_sha256 = [\n  \"{good}\",\n  \"q6urq6s=\",\n]\n"
        ));
        let e = error(&text);
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_pin_sha256[1]"));
        assert_eq!(e.line, Some(8), "{e}");
        assert!(
            e.to_string().starts_with(
                "smsflow.toml:8: smsc[0].tls_pin_sha256[1]: \"q6urq6s=\" is 5 bytes of base64, \
                 not the 32 of a SHA-256 digest"
            ),
            "{e}"
        );
        let e = error(&pki.smsc("tls_pin_sha256 = [\"sha256 of the key\"]\n"));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_pin_sha256[0]"));
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("is not base64"), "{e}");

        // Pins without tls = true, like every other TLS key.
        let e = error(&format!(
            "[[smsc]]\nname = \"a\"\npassword = \"p\"\ntls_pin_sha256 = [\"{good}\"]\n"
        ));
        assert_eq!(e.key.as_deref(), Some("smsc[0].tls_pin_sha256"));
        assert!(e.message.contains("tls = false"), "{e}");
    }

    #[test]
    fn pins_without_tls_ca_load_without_the_system_store() {
        let good = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
        let text = format!(
            "[[smsc]]\nname = \"a\"\npassword = \"p\"\ntls = true\ntls_pin_sha256 = [\"{good}\"]\n"
        );
        let config = parse(&text, &no_env).unwrap();
        let tls = config.smsc[0].tls().unwrap();
        assert!(tls.hints.ca_file.is_none());
    }

    #[test]
    fn https_for_http_and_metrics() {
        let pki = Pki::new("https");
        let base = "[[smsc]]\nname = \"a\"\npassword = \"p\"\n";
        let table = |section: &str| {
            format!(
                "{base}[{section}]\ntls_cert = {:?}\ntls_key = {:?}\n",
                pki.path("server.pem"),
                pki.path("server.key")
            )
        };
        let config = parse(&table("http"), &no_env).unwrap();
        assert!(config.http.tls().is_some() && config.metrics.tls().is_none());
        let config = parse(&table("metrics"), &no_env).unwrap();
        assert!(config.metrics.tls().is_some() && config.http.tls().is_none());

        let e = error(&format!(
            "{base}[http]\ntls_cert = {:?}\n",
            pki.path("server.pem")
        ));
        assert_eq!(e.key.as_deref(), Some("http.tls_key"));
        let e = error(&format!(
            "{base}[metrics]\ntls_key = {:?}\n",
            pki.path("server.key")
        ));
        assert_eq!(e.key.as_deref(), Some("metrics.tls_cert"));
        let e = error(&format!(
            "{base}[http]\ntls_cert = \"/nonexistent/api.pem\"\ntls_key = {:?}\n",
            pki.path("server.key")
        ));
        assert_eq!(e.key.as_deref(), Some("http.tls_cert"));
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("/nonexistent/api.pem"), "{e}");
    }
}
