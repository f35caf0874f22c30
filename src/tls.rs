//! TLS material: PEM files turned into rustls configs, for the three places smsflow speaks TLS:
//! the ESME to a carrier's SMSC (a client, with a client certificate when the carrier wants
//! mutual TLS), the built-in simulator (a server that may require client certificates), and
//! HTTPS on `[http]` and `[metrics]` (a server).
//!
//! Owns: reading PEM certificates and private keys (every error names the file, or the
//! environment variable a key came from), the trust roots (a CA file, or the system's store),
//! and building `ClientConfig` / `ServerConfig` on one crypto provider (ring, see Cargo.toml).
//!
//! Must not: open sockets (the callers do), or offer a way to skip verification: a client
//! always checks the peer's certificate (its chain, or a pin the operator gave) and name, a
//! server that asks for client certificates always checks them.
//!
//! - [`verify`]: what makes an SMSC's certificate trusted (chain, the `tls_ca` certificate
//!   itself, `tls_pin_sha256`);
//! - [`explain`]: a failed handshake as a sentence with its cause and fix;
//! - `x509`: the few certificate fields webpki does not hand out (dates, common name).

pub mod explain;
pub mod verify;
mod x509;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use explain::Hints;
pub use verify::{Pin, SmscVerifier};

/// Why TLS material cannot be used. Each message names where the material came from, so the
/// config layer only has to add the key (`smsc[0].tls_ca: ...`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read \"{}\": {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not well-formed PEM (a BEGIN without END, bad base64).
    #[error("{origin} is not valid PEM: {detail}")]
    Pem { origin: Origin, detail: String },
    /// Well-formed PEM, but not what was asked for (a key file given as a certificate, an
    /// encrypted key).
    #[error("{origin} holds no {what} ({hint})")]
    Missing {
        origin: Origin,
        what: &'static str,
        hint: &'static str,
    },
    /// A CA certificate that cannot be a trust anchor (its DER does not parse).
    #[error("{origin}: unusable CA certificate: {source}")]
    BadCa {
        origin: Origin,
        source: rustls::Error,
    },
    /// A certificate whose validity dates cannot be read, so it cannot be pinned.
    #[error("{origin}: certificate {index} has no readable validity dates (is it X.509 v3 DER?)")]
    BadValidity { origin: Origin, index: usize },
    /// `tls_ca = ""` on a host with no CA certificates in its store.
    #[error(
        "no CA certificates in the system store (install the ca-certificates package, or set \
         tls_ca to the carrier's CA file)"
    )]
    NoSystemRoots,
    /// rustls refused the certificate and key together, e.g. a key that is not the
    /// certificate's.
    #[error("{origin} and its key cannot be used together: {source}")]
    Identity {
        origin: Origin,
        source: rustls::Error,
    },
    /// rustls refused the config as a whole (no protocol version the provider supports).
    #[error("cannot build the TLS config: {0}")]
    Config(String),
}

/// Where PEM text came from, for messages: a file, or an environment variable (whose value,
/// a private key, is never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "\"{}\"", path.display()),
            Origin::Env(var) => write!(f, "environment variable \"{var}\""),
        }
    }
}

/// A certificate chain and its private key: what one side presents.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Where the chain came from, for messages.
    pub origin: Origin,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("origin", &self.origin)
            .field("certs", &self.certs.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A chain from the PEM file `cert` and a key from `key` (PEM text and where it came from).
    pub fn load(cert: &Path, key: (&[u8], Origin)) -> Result<Identity, TlsError> {
        Ok(Identity {
            certs: read_certificates(cert)?,
            key: parse_private_key(key.0, key.1)?,
            origin: Origin::File(cert.to_path_buf()),
        })
    }
}

/// What the ESME needs to open TLS to one SMSC: the config, the name the SMSC's certificate
/// must be valid for, and what was configured, for the sentence a failed handshake logs.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub hints: Arc<Hints>,
}

/// What an SMSC's certificate is checked against (see [`verify`]).
#[derive(Debug, Default)]
pub struct SmscTrust {
    /// `tls_ca`: the file and its certificates; `None`: the system's trust store (unless
    /// there are pins, which are then the only trust).
    pub ca: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// `tls_pin_sha256`.
    pub pins: Vec<Pin>,
}

impl SmscTrust {
    /// The CA certificates of the PEM file at `path`, no pins.
    pub fn ca_file(path: &Path) -> Result<SmscTrust, TlsError> {
        Ok(SmscTrust {
            ca: Some((path.to_path_buf(), read_certificates(path)?)),
            pins: Vec::new(),
        })
    }
}

impl ClientTls {
    /// TLS to an SMSC: its certificate checked by [`SmscVerifier`] against `trust` and for
    /// `server_name`; `identity` presented when the SMSC wants mutual TLS. TLS 1.2 and 1.3.
    pub fn for_smsc(
        trust: SmscTrust,
        identity: Option<Identity>,
        server_name: ServerName<'static>,
    ) -> Result<ClientTls, TlsError> {
        let provider = provider();
        let (roots, ca_certs, ca_file) = match trust.ca {
            Some((path, certs)) => {
                let mut roots = RootCertStore::empty();
                for cert in &certs {
                    roots.add(cert.clone()).map_err(|source| TlsError::BadCa {
                        origin: Origin::File(path.clone()),
                        source,
                    })?;
                }
                let names = certs.iter().filter_map(|c| x509::subject_common_name(c));
                let ca_file = (path, names.collect());
                (Some(roots), certs, Some(ca_file))
            }
            // Pins alone are the trust: the system's store is not asked.
            None if !trust.pins.is_empty() => (None, Vec::new(), None),
            None => (Some(system_roots()?), Vec::new(), None),
        };
        let chain = roots
            .map(|roots| {
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))
            })
            .transpose()?;
        let origin = ca_file.as_ref().map(|(path, _)| Origin::File(path.clone()));
        let verifier = SmscVerifier::new(
            chain,
            &ca_certs,
            trust.pins,
            provider.signature_verification_algorithms,
        )
        .map_err(|index| TlsError::BadValidity {
            origin: origin.expect("only tls_ca certificates are pinned"),
            index: index + 1,
        })?;
        let hints = Hints {
            ca_file,
            client_cert: match &identity {
                Some(Identity {
                    origin: Origin::File(path),
                    ..
                }) => Some(path.clone()),
                _ => None,
            },
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match identity {
            Some(Identity { certs, key, origin }) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|source| TlsError::Identity { origin, source })?,
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
            hints: Arc::new(hints),
        })
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The one crypto provider of every config (explicit, so a second provider pulled in by some
/// other crate can never make rustls pick one at random or panic).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a file whole, naming it on failure.
pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` block of the PEM file at `path`, in order; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let origin = Origin::File(path.to_path_buf());
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&origin, e))?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            origin,
            what: "certificate",
            hint: "expected a \"-----BEGIN CERTIFICATE-----\" block",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) in PEM text.
pub fn parse_private_key(pem: &[u8], origin: Origin) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(TlsError::Missing {
            origin,
            what: "private key",
            hint: "expected \"-----BEGIN PRIVATE KEY-----\" or an RSA/EC key; an encrypted key \
                   must be decrypted first, e.g. with `openssl pkey`",
        }),
        Err(e) => Err(pem_error(&origin, e)),
    }
}

/// The CA certificates of the PEM file at `path` as trust roots.
pub fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            origin: Origin::File(path.to_path_buf()),
            source,
        })?;
    }
    Ok(roots)
}

/// The system's trust store (what `update-ca-certificates` manages on Debian). Certificates
/// in it that webpki cannot parse are skipped, as every TLS client does; none at all is an
/// error, because every handshake would then fail.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::debug!(%error, "skipping part of the system CA store");
    }
    let mut roots = RootCertStore::empty();
    let (added, skipped) = roots.add_parsable_certificates(found.certs);
    if skipped > 0 {
        tracing::debug!(added, skipped, "system CA certificates webpki cannot use");
    }
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

/// A client config that verifies the server against `roots` and, when `identity` is given,
/// presents it for mutual TLS. TLS 1.2 and 1.3.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        Some(Identity { certs, key, origin }) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|source| TlsError::Identity { origin, source })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A server config presenting `identity`; with `client_roots`, every client must present a
/// certificate that chains to them (mutual TLS).
pub fn server_config(
    identity: Identity,
    client_roots: Option<RootCertStore>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let Identity { certs, key, origin } = identity;
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Identity { origin, source })?;
    Ok(Arc::new(config))
}

/// A server config from two PEM files, the way `[http]`, `[metrics]` and `smsflow smsc` name
/// them.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let identity = Identity::load(cert, (&read(key)?, Origin::File(key.to_path_buf())))?;
    let client_roots = client_ca.map(roots_from_file).transpose()?;
    server_config(identity, client_roots)
}

fn pem_error(origin: &Origin, error: pem::Error) -> TlsError {
    // pem's own messages print the offending line as a byte array; say it in words.
    let detail = match error {
        pem::Error::MissingSectionEnd { .. } => "a \"-----BEGIN\" block has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed \"-----BEGIN\" line".into(),
        pem::Error::Base64Decode(e) => format!("bad base64 in a block: {e}"),
        other => other.to_string(),
    };
    TlsError::Pem {
        origin: origin.clone(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("smsflow-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = read_certificates(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read \"/nonexistent/ca.pem\": "),
            "{e}"
        );
    }

    #[test]
    fn text_without_certificates_is_refused() {
        let path = temp("empty.pem", b"just some text\n");
        let e = read_certificates(&path).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_broken_block_is_not_valid_pem() {
        let path = temp("broken.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = read_certificates(&path).unwrap_err();
        assert!(
            e.to_string()
                .contains("is not valid PEM: a \"-----BEGIN\" block has no END"),
            "{e}"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_certificate_is_no_private_key_and_the_env_value_is_not_printed() {
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = parse_private_key(pem, Origin::Env("SMSC_TLS_KEY".into())).unwrap_err();
        assert_eq!(
            e.to_string().split(" (").next(),
            Some("environment variable \"SMSC_TLS_KEY\" holds no private key")
        );
        assert!(!e.to_string().contains("AAAA"));
    }
}
