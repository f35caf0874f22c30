//! A failed TLS handshake with an SMSC, said as a sentence an operator can act on: what is
//! wrong and what to change (a key of `[[smsc]]`, or what to ask the carrier for), instead of
//! rustls' Debug values (`invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`).
//!
//! Every sentence is listed in docs/config.md ("What a failed handshake says"); the tests
//! below and protocol-tests/tls.rs hold each one.

use std::io;
use std::path::PathBuf;

use rustls::pki_types::UnixTime;
use rustls::{AlertDescription, CertificateError, Error};

use super::verify::PinMismatch;

/// What the operator configured for one SMSC, for the hints.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `tls_ca`'s file and the common names of its certificates; `None`: the system's store.
    pub ca_file: Option<(PathBuf, Vec<String>)>,
    /// `tls_cert`, when we present a client certificate.
    pub client_cert: Option<PathBuf>,
}

impl Hints {
    /// "tls_ca "/etc/smsflow/ca.pem" (Carrier CA)" or "the system's trust store".
    fn trust(&self) -> String {
        match &self.ca_file {
            None => "the system's trust store".to_owned(),
            Some((path, names)) if names.is_empty() => format!("tls_ca \"{}\"", path.display()),
            Some((path, names)) => format!(
                "tls_ca \"{}\" ({})",
                path.display(),
                names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Why the handshake with the SMSC at `target` (`host:port`) failed, from the connector's error.
pub fn handshake(error: &io::Error, hints: &Hints, target: &str) -> String {
    match rustls_error(error) {
        Some(error) => tls(error, Some(hints), target),
        None => match error.kind() {
            io::ErrorKind::TimedOut => format!(
                "{error} from {target}: is it the SMSC's TLS port? (a plain SMPP port waits for \
                 a bind and never answers TLS)"
            ),
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => format!(
                "{target} closed the connection during the TLS handshake ({error}): is it the \
                 SMSC's TLS port, and does the carrier accept connections from this host?"
            ),
            _ => error.to_string(),
        },
    }
}

/// A read or write error of an established session: a TLS alert the SMSC sent once the
/// handshake was done as a sentence (with TLS 1.3 a refused client certificate arrives so,
/// with the first read), any other error as it is.
pub fn session_error(error: &io::Error) -> String {
    match rustls_error(error) {
        Some(error @ Error::AlertReceived(_)) => tls(error, None, "the SMSC"),
        _ => error.to_string(),
    }
}

fn rustls_error(error: &io::Error) -> Option<&Error> {
    error.get_ref()?.downcast_ref::<Error>()
}

/// `hints` is `None` after the handshake, where we no longer know what we configured.
fn tls(error: &Error, hints: Option<&Hints>, target: &str) -> String {
    match error {
        Error::InvalidCertificate(cause) => {
            certificate(cause, hints.cloned().unwrap_or_default(), target)
        }
        Error::AlertReceived(description) => alert(*description, hints),
        Error::NoCertificatesPresented => {
            "the SMSC presented no certificate; ask the carrier to configure one on its TLS port"
                .to_owned()
        }
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. }
        | Error::PeerSentOversizedRecord => format!(
            "{target} does not answer in TLS ({error}): is it the SMSC's TLS port? Carriers \
             usually offer SMPP over TLS on 3550 and plain SMPP on 2775 (set tls = false for a \
             plain port)"
        ),
        Error::PeerIncompatible(why) => format!(
            "the SMSC's TLS is incompatible with ours ({why:?}): it may offer only TLS 1.0 or \
             1.1, which we refuse as insecure; ask the carrier for TLS 1.2 or later"
        ),
        Error::PeerMisbehaved(why) => format!(
            "the SMSC broke the TLS protocol ({why:?}); ask the carrier to check its TLS server"
        ),
        other => other.to_string(),
    }
}

fn certificate(cause: &CertificateError, hints: Hints, target: &str) -> String {
    let show_chain = format!("`openssl s_client -connect {target} -showcerts` shows it");
    match cause {
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the SMSC's certificate expired on {} (it is now {}); the carrier must renew it, or, \
             if that date is not past, this host's clock is wrong",
            date(*not_after),
            date(*time)
        ),
        CertificateError::Expired => "the SMSC's certificate has expired; the carrier must renew \
                                      it, or this host's clock is wrong"
            .to_owned(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the SMSC's certificate is not valid until {} (it is now {}); check this host's \
             clock, or ask the carrier to fix the certificate's start date",
            date(*not_before),
            date(*time)
        ),
        CertificateError::NotValidYet => "the SMSC's certificate is not valid yet; check this \
                                          host's clock"
            .to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let names: Vec<String> = presented.iter().map(|n| name(n)).collect();
            if names.is_empty() {
                format!(
                    "name mismatch: the SMSC's certificate presents no DNS name or IP address \
                     (its subjectAltName is empty), expected \"{}\"; ask the carrier for a \
                     certificate that lists the name you connect to",
                    expected.to_str()
                )
            } else {
                format!(
                    "name mismatch: the SMSC's certificate presents {}, expected \"{}\"; set \
                     tls_server_name to one of the names it presents",
                    names.join(", "),
                    expected.to_str()
                )
            }
        }
        CertificateError::UnknownIssuer => format!(
            "unknown issuer: the SMSC's certificate is not signed by a CA in {}; tls_ca must \
             be the CA that signed it: ask the carrier for it ({show_chain})",
            hints.trust()
        ),
        CertificateError::BadSignature => format!(
            "the SMSC's certificate chain has a bad signature (a certificate was not signed by \
             the CA it names); ask the carrier to check its chain ({show_chain})"
        ),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the SMSC's certificate is signed with an algorithm we do not accept (such as \
             SHA-1); ask the carrier for one signed with SHA-256 or better"
                .to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the SMSC's certificate is not meant for a TLS server (its extendedKeyUsage lacks \
             serverAuth); ask the carrier for a server certificate"
                .to_owned()
        }
        CertificateError::BadEncoding => {
            "the SMSC's certificate is not valid DER; ask the carrier to check it".to_owned()
        }
        CertificateError::Other(other) => {
            if let Some(mismatch) = other.0.downcast_ref::<PinMismatch>() {
                return format!(
                    "pin mismatch: the SMSC's certificate has a key with the SPKI pin \"{}\", \
                     which is not in tls_pin_sha256; if the carrier changed its key, confirm \
                     this pin with them and add it",
                    mismatch.presented
                );
            }
            match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => format!(
                    "the SMSC's certificate is a CA certificate (basicConstraints CA:TRUE, as \
                     `openssl req -x509` makes) and not in {}; to trust exactly this \
                     certificate, give it as tls_ca, or ask the carrier for a server \
                     certificate signed by its CA",
                    hints.trust()
                ),
                Some(webpki::Error::EndEntityUsedAsCa) => format!(
                    "the SMSC's chain uses a server certificate as a CA; ask the carrier to \
                     fix its chain ({show_chain})"
                ),
                _ => format!(
                    "the SMSC's certificate was refused ({other}); ask the carrier to check it \
                     ({show_chain})"
                ),
            }
        }
        other => format!(
            "the SMSC's certificate was refused ({other}); ask the carrier to check it \
             ({show_chain})"
        ),
    }
}

fn alert(description: AlertDescription, hints: Option<&Hints>) -> String {
    let ours = match hints.and_then(|h| h.client_cert.as_deref()) {
        Some(path) => format!("our client certificate \"{}\"", path.display()),
        None => "our client certificate (tls_cert)".to_owned(),
    };
    let no_client_cert = hints.is_some_and(|h| h.client_cert.is_none());
    match description {
        AlertDescription::CertificateRequired => {
            "the SMSC requires a client certificate (mutual TLS) and we presented none; set \
             tls_cert and tls_key (or tls_key_env) to the certificate the carrier issued for \
             this account"
                .to_owned()
        }
        AlertDescription::HandshakeFailure if no_client_cert => {
            "the SMSC refused the handshake (alert HandshakeFailure): it may want a client \
             certificate (set tls_cert and tls_key), or share no cipher suite with us (TLS 1.2 \
             and 1.3 with AES-GCM or ChaCha20-Poly1305)"
                .to_owned()
        }
        AlertDescription::HandshakeFailure => format!(
            "the SMSC refused the handshake (alert HandshakeFailure): it may refuse {}, or \
             share no cipher suite with us (TLS 1.2 and 1.3 with AES-GCM or ChaCha20-Poly1305)",
            ours
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied
            if no_client_cert =>
        {
            format!(
                "the SMSC refused the handshake (alert {description:?}) and we presented no \
                 client certificate; if the carrier wants mutual TLS, set tls_cert and tls_key"
            )
        }
        AlertDescription::UnknownCA => format!(
            "the SMSC does not trust the CA that signed {}; ask the carrier which CA it \
             accepts, or for a certificate it issues",
            ours
        ),
        AlertDescription::CertificateExpired => format!(
            "the SMSC says {} has expired or is not valid yet; renew it (`openssl x509 -in FILE \
             -noout -dates` shows its dates)",
            ours
        ),
        AlertDescription::CertificateRevoked => format!(
            "the SMSC says {} is revoked; ask the carrier for a new one",
            ours
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied => format!(
            "the SMSC refused {} (alert {description:?}); ask the carrier whether it is the one \
             registered for this account",
            ours
        ),
        AlertDescription::ProtocolVersion | AlertDescription::InsufficientSecurity => format!(
            "the SMSC accepts no TLS version or cipher suite we offer (alert {description:?}; \
             we offer TLS 1.2 and 1.3 and refuse older ones as insecure); ask the carrier for \
             TLS 1.2 or later"
        ),
        AlertDescription::UnrecognisedName => {
            "the SMSC does not serve the name we asked for (alert UnrecognisedName); set \
             tls_server_name to the name the carrier gave for its SMSC"
                .to_owned()
        }
        other => format!("the SMSC ended the TLS handshake with the alert {other:?}"),
    }
}

/// A webpki presented name (`DnsName("a.example")`, `IpAddress(10.0.0.1)`) as the operator
/// would write it in tls_server_name.
fn name(presented: &str) -> String {
    let bare = presented
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        });
    match bare {
        Some(name) => format!("\"{name}\""),
        None => presented.to_owned(),
    }
}

/// A UTC date for messages: `2026-03-01 12:00:00 UTC`.
pub fn date(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{} s after 1970", time.as_secs()))
}

#[cfg(test)]
mod tests {
    //! The sentences real handshakes cannot easily produce here (an SMSC offering only TLS 1.0,
    //! a SHA-1 signature, a revoked client certificate); protocol-tests/tls.rs and interop.rs
    //! hold the others through real handshakes.

    use std::sync::Arc;

    use rustls::{OtherError, PeerIncompatible};

    use super::*;

    const TARGET: &str = "smpp.carrier.example:3550";

    fn hints(client_cert: bool) -> Hints {
        Hints {
            ca_file: Some((
                PathBuf::from("/etc/smsflow/carrier-ca.pem"),
                vec!["Carrier Root CA".to_owned()],
            )),
            client_cert: client_cert.then(|| PathBuf::from("/etc/smsflow/esme.pem")),
        }
    }

    fn said(error: Error, client_cert: bool) -> String {
        handshake(
            &io::Error::new(io::ErrorKind::InvalidData, error),
            &hints(client_cert),
            TARGET,
        )
    }

    fn certificate_error(cause: CertificateError) -> String {
        said(Error::InvalidCertificate(cause), false)
    }

    #[test]
    fn certificate_problems_the_verifier_reports() {
        assert_eq!(
            certificate_error(CertificateError::UnknownIssuer),
            "unknown issuer: the SMSC's certificate is not signed by a CA in tls_ca \
             \"/etc/smsflow/carrier-ca.pem\" (\"Carrier Root CA\"); tls_ca must be the CA that \
             signed it: ask the carrier for it (`openssl s_client -connect \
             smpp.carrier.example:3550 -showcerts` shows it)"
        );
        let mut system = hints(false);
        system.ca_file = None;
        let unknown = handshake(
            &io::Error::new(
                io::ErrorKind::InvalidData,
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
            ),
            &system,
            TARGET,
        );
        assert!(
            unknown.contains("not signed by a CA in the system's trust store"),
            "{unknown}"
        );
        assert_eq!(
            certificate_error(CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_767_225_600)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    1_735_689_600
                )),
            }),
            "the SMSC's certificate expired on 2025-01-01 00:00:00 UTC (it is now 2026-01-01 \
             00:00:00 UTC); the carrier must renew it, or, if that date is not past, this \
             host's clock is wrong"
        );
        let presented = vec![
            "DnsName(\"smpp.carrier.example\")".into(),
            "IpAddress(10.1.2.3)".into(),
        ];
        assert_eq!(
            certificate_error(CertificateError::NotValidForNameContext {
                expected: rustls::pki_types::ServerName::try_from("10.1.2.4").unwrap(),
                presented,
            }),
            "name mismatch: the SMSC's certificate presents \"smpp.carrier.example\", \
             \"10.1.2.3\", expected \"10.1.2.4\"; set tls_server_name to one of the names it \
             presents"
        );
        let ca = certificate_error(CertificateError::Other(OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        ))));
        assert_eq!(
            ca,
            "the SMSC's certificate is a CA certificate (basicConstraints CA:TRUE, as `openssl \
             req -x509` makes) and not in tls_ca \"/etc/smsflow/carrier-ca.pem\" (\"Carrier \
             Root CA\"); to trust exactly this certificate, give it as tls_ca, or ask the \
             carrier for a server certificate signed by its CA"
        );
        for (cause, start) in [
            (
                CertificateError::BadSignature,
                "the SMSC's certificate chain has a bad signature",
            ),
            (
                CertificateError::UnsupportedSignatureAlgorithmContext {
                    signature_algorithm_id: vec![],
                    supported_algorithms: vec![],
                },
                "the SMSC's certificate is signed with an algorithm we do not accept",
            ),
            (
                CertificateError::InvalidPurpose,
                "the SMSC's certificate is not meant for a TLS server",
            ),
            (
                CertificateError::BadEncoding,
                "the SMSC's certificate is not valid DER",
            ),
            (
                CertificateError::Revoked,
                "the SMSC's certificate was refused (Revoked); ask the carrier",
            ),
        ] {
            let said = certificate_error(cause);
            assert!(said.starts_with(start), "{said}");
        }
        let other = certificate_error(CertificateError::Other(OtherError(Arc::new(
            webpki::Error::EndEntityUsedAsCa,
        ))));
        assert!(
            other.starts_with("the SMSC's chain uses a server certificate as a CA"),
            "{other}"
        );
    }

    #[test]
    fn alerts_the_smsc_sends_about_our_client_certificate() {
        let alert = |a, cert| said(Error::AlertReceived(a), cert);
        assert_eq!(
            alert(AlertDescription::HandshakeFailure, false),
            "the SMSC refused the handshake (alert HandshakeFailure): it may want a client \
             certificate (set tls_cert and tls_key), or share no cipher suite with us (TLS 1.2 \
             and 1.3 with AES-GCM or ChaCha20-Poly1305)"
        );
        assert!(
            alert(AlertDescription::HandshakeFailure, true)
                .contains("it may refuse our client certificate \"/etc/smsflow/esme.pem\""),
        );
        assert_eq!(
            alert(AlertDescription::BadCertificate, false),
            "the SMSC refused the handshake (alert BadCertificate) and we presented no client \
             certificate; if the carrier wants mutual TLS, set tls_cert and tls_key"
        );
        assert_eq!(
            alert(AlertDescription::BadCertificate, true),
            "the SMSC refused our client certificate \"/etc/smsflow/esme.pem\" (alert \
             BadCertificate); ask the carrier whether it is the one registered for this account"
        );
        assert!(
            alert(AlertDescription::CertificateExpired, true).starts_with(
                "the SMSC says our client certificate \"/etc/smsflow/esme.pem\" has expired"
            )
        );
        assert!(
            alert(AlertDescription::CertificateRevoked, true)
                .ends_with("is revoked; ask the carrier for a new one")
        );
        assert!(
            alert(AlertDescription::ProtocolVersion, false)
                .starts_with("the SMSC accepts no TLS version or cipher suite we offer")
        );
        assert!(
            alert(AlertDescription::UnrecognisedName, false)
                .contains("set tls_server_name to the name the carrier gave")
        );
        assert_eq!(
            alert(AlertDescription::DecodeError, false),
            "the SMSC ended the TLS handshake with the alert DecodeError"
        );
    }

    #[test]
    fn protocol_and_network_failures_point_at_the_port() {
        let incompatible = said(
            Error::PeerIncompatible(PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig),
            false,
        );
        assert!(
            incompatible.contains("it may offer only TLS 1.0 or 1.1, which we refuse"),
            "{incompatible}"
        );
        assert_eq!(
            said(Error::NoCertificatesPresented, false),
            "the SMSC presented no certificate; ask the carrier to configure one on its TLS port"
        );
        let timeout = handshake(
            &io::Error::new(io::ErrorKind::TimedOut, "no TLS answer within 10 s"),
            &hints(false),
            TARGET,
        );
        assert_eq!(
            timeout,
            "no TLS answer within 10 s from smpp.carrier.example:3550: is it the SMSC's TLS \
             port? (a plain SMPP port waits for a bind and never answers TLS)"
        );
        // Not TLS at all: any other I/O error is passed on as it is.
        let refused = handshake(
            &io::Error::new(io::ErrorKind::PermissionDenied, "denied"),
            &hints(false),
            TARGET,
        );
        assert_eq!(refused, "denied");
        assert_eq!(
            session_error(&io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by peer"
            )),
            "reset by peer"
        );
    }
}
