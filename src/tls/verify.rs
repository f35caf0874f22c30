//! How the ESME decides to trust an SMSC's certificate: webpki's chain check, plus the two
//! ways carriers hand out trust that webpki alone refuses or cannot express.
//!
//! - **A certificate given as `tls_ca` is pinned.** A server certificate byte-identical to one
//!   in the `tls_ca` file is accepted without a chain: the operator vouched for exactly these
//!   bytes. This is what `openssl req -x509` makes (self-signed, basicConstraints CA:TRUE),
//!   which webpki refuses as `CaUsedAsEndEntity` and OpenSSL-based SMSC clients (Kannel)
//!   accept.
//! - **`tls_pin_sha256` pins the key**: base64 of the SHA-256 of the certificate's
//!   SubjectPublicKeyInfo, so a carrier that renews its certificate under the same key keeps
//!   working.
//!
//! How they combine, each key the operator set being a requirement:
//!
//! | `tls_ca` | `tls_pin_sha256` | the SMSC's certificate must |
//! |---|---|---|
//! | `""` | none | chain to the system's trust store |
//! | a file | none | chain to a CA in the file, or be one of its certificates |
//! | a file | pins | do that, and carry a pinned key |
//! | `""` | pins | carry a pinned key (the pins are the trust; the system store is not asked) |
//!
//! Whatever the path, the certificate must be valid for the server name and within its dates.
//! The handshake's own signature is always checked against the presented certificate's key,
//! so a pin or a copied certificate is useless without the matching private key.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

use super::x509::{self, Validity};

/// A key pin: the SHA-256 of a SubjectPublicKeyInfo (the HPKP / `curl --pinnedpubkey` pin),
/// written in base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki: &[u8]) -> Pin {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        let mut pin = [0; 32];
        pin.copy_from_slice(digest.as_ref());
        Pin(pin)
    }

    /// The pin of a DER certificate's key; `None` if webpki cannot parse it.
    pub fn of_certificate(cert: &CertificateDer<'_>) -> Option<Pin> {
        let parsed = ParsedCertificate::try_from(cert).ok()?;
        Some(Pin::of_spki(&parsed.subject_public_key_info()))
    }

    /// A pin as written in `tls_pin_sha256`. The error says what is wrong, for the config
    /// layer to prefix with the key.
    pub fn parse(text: &str) -> Result<Pin, String> {
        let how = "make it with `openssl x509 -in smsc.pem -noout -pubkey | openssl pkey -pubin \
                   -outform der | openssl dgst -sha256 -binary | base64`";
        if let Some(rest) = text.strip_prefix("sha256//") {
            return Err(format!(
                "\"{text}\" has curl's \"sha256//\" prefix; write only the base64: \"{rest}\""
            ));
        }
        match BASE64.decode(text.trim()) {
            Ok(bytes) => match <[u8; 32]>::try_from(bytes.as_slice()) {
                Ok(pin) => Ok(Pin(pin)),
                Err(_) => Err(format!(
                    "\"{text}\" is {} bytes of base64, not the 32 of a SHA-256 digest (44 \
                     characters ending in \"=\"); {how}",
                    bytes.len()
                )),
            },
            Err(e) => Err(format!("\"{text}\" is not base64 ({e}); {how}")),
        }
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&BASE64.encode(self.0))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// The SMSC's certificate carries a key none of `tls_pin_sha256` names. Reaches rustls as
/// `CertificateError::Other`, so the handshake ends with a `certificate_unknown` alert.
#[derive(Debug, thiserror::Error)]
#[error("the certificate's key has the pin {presented}, which is not in tls_pin_sha256")]
pub struct PinMismatch {
    pub presented: Pin,
}

/// A `tls_ca` certificate accepted as the server's own when presented byte for byte.
#[derive(Debug)]
struct Pinned {
    der: CertificateDer<'static>,
    validity: Validity,
}

/// The [`ServerCertVerifier`] of SMPP over TLS (see the module doc for the rules).
#[derive(Debug)]
pub struct SmscVerifier {
    /// webpki over the trust roots; `None` when pins alone are the trust.
    chain: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<Pinned>,
    pins: Vec<Pin>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SmscVerifier {
    /// `chain` checks chains to the roots (`None`: no chain accepted, only pins); `tls_ca`
    /// are the certificates of the `tls_ca` file, accepted when presented as they are.
    /// `None` if a `tls_ca` certificate has no readable validity (webpki took it as a root,
    /// but it cannot be pinned).
    pub fn new(
        chain: Option<Arc<WebPkiServerVerifier>>,
        tls_ca: &[CertificateDer<'static>],
        pins: Vec<Pin>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Result<SmscVerifier, usize> {
        let pinned = tls_ca
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let validity = x509::validity(der).ok_or(i)?;
                Ok(Pinned {
                    der: der.clone(),
                    validity,
                })
            })
            .collect::<Result<_, usize>>()?;
        Ok(SmscVerifier {
            chain,
            pinned,
            pins,
            algorithms,
        })
    }

    /// What webpki does not check on a certificate accepted without a chain: its name (by
    /// webpki's own rules) and its dates.
    fn check_unchained(
        end_entity: &CertificateDer<'_>,
        validity: Validity,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if now.as_secs() < validity.not_before.as_secs() {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before: validity.not_before,
            }
            .into());
        }
        if now.as_secs() > validity.not_after.as_secs() {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after: validity.not_after,
            }
            .into());
        }
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

impl ServerCertVerifier for SmscVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if !self.pins.is_empty() {
            let parsed = ParsedCertificate::try_from(end_entity)?;
            let presented = Pin::of_spki(&parsed.subject_public_key_info());
            if !self.pins.contains(&presented) {
                return Err(Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(PinMismatch { presented })),
                )));
            }
        }
        if let Some(pinned) = self.pinned.iter().find(|p| p.der[..] == end_entity[..]) {
            return Self::check_unchained(end_entity, pinned.validity, server_name, now);
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => {
                // Pins alone: the key matched above.
                let validity = x509::validity(end_entity)
                    .ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
                Self::check_unchained(end_entity, validity, server_name, now)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::RootCertStore;

    use super::*;

    /// 2026-01-01T00:00:00Z; the certificates below are valid 2025-01-01 to 2027-01-01.
    const NOW: u64 = 1_767_225_600;

    fn at(seconds: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds))
    }

    fn dated(names: &[&str]) -> CertificateParams {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2027, 1, 1);
        params
    }

    /// What `openssl req -x509 -subj /CN=localhost -addext subjectAltName=DNS:localhost`
    /// makes: self-signed, CA:TRUE, valid for localhost.
    fn self_signed_ca_true() -> (CertificateDer<'static>, KeyPair) {
        let mut params = dated(&["localhost"]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().der().clone(), key)
    }

    /// A CA named `name` and a server certificate for localhost it signed.
    fn ca_and_leaf(name: &str) -> (CertificateDer<'static>, CertificateDer<'static>) {
        let mut params = dated(&[]);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let leaf = dated(&["localhost"])
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        (ca.der().clone(), leaf.der().clone())
    }

    fn verifier(tls_ca: &[CertificateDer<'static>], pins: Vec<Pin>) -> SmscVerifier {
        let provider = crate::tls::provider();
        let chain = (!tls_ca.is_empty()).then(|| {
            let mut roots = RootCertStore::empty();
            for cert in tls_ca {
                roots.add(cert.clone()).unwrap();
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap()
        });
        SmscVerifier::new(
            chain,
            tls_ca,
            pins,
            provider.signature_verification_algorithms,
        )
        .unwrap()
    }

    fn verify(
        verifier: &SmscVerifier,
        cert: &CertificateDer<'_>,
        name: &str,
        now: u64,
    ) -> Result<(), Error> {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(cert, &[], &name, &[], at(now))
            .map(|_| ())
    }

    fn is_pin_mismatch(result: Result<(), Error>) -> Option<Pin> {
        match result {
            Err(Error::InvalidCertificate(CertificateError::Other(other))) => {
                other.0.downcast_ref::<PinMismatch>().map(|m| m.presented)
            }
            _ => None,
        }
    }

    #[test]
    fn a_self_signed_ca_certificate_given_as_tls_ca_is_accepted_as_presented() {
        let (cert, _key) = self_signed_ca_true();
        // webpki alone refuses it: the reason this verifier exists.
        let webpki = verifier(std::slice::from_ref(&cert), Vec::new())
            .chain
            .unwrap();
        let refused = webpki
            .verify_server_cert(
                &cert,
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                at(NOW),
            )
            .unwrap_err();
        assert!(
            format!("{refused:?}").contains("CaUsedAsEndEntity"),
            "{refused:?}"
        );

        let verifier = verifier(std::slice::from_ref(&cert), Vec::new());
        assert_eq!(verify(&verifier, &cert, "localhost", NOW), Ok(()));
    }

    #[test]
    fn a_pinned_certificate_still_has_its_name_and_dates_checked() {
        let (cert, _key) = self_signed_ca_true();
        let verifier = verifier(std::slice::from_ref(&cert), Vec::new());
        assert!(matches!(
            verify(&verifier, &cert, "smsc.example", NOW),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForNameContext { .. }
            ))
        ));
        // 2027-01-02 and 2024-12-31.
        let expired = verify(&verifier, &cert, "localhost", 1_798_848_000);
        assert!(
            matches!(
                expired,
                Err(Error::InvalidCertificate(CertificateError::ExpiredContext { not_after, .. }))
                    if not_after.as_secs() == 1_798_761_600
            ),
            "{expired:?}"
        );
        assert!(matches!(
            verify(&verifier, &cert, "localhost", 1_735_603_200),
            Err(Error::InvalidCertificate(
                CertificateError::NotValidYetContext { .. }
            ))
        ));
    }

    #[test]
    fn a_ca_certificate_not_in_tls_ca_is_refused_as_webpki_does() {
        let (cert, _key) = self_signed_ca_true();
        let (other_ca, _leaf) = ca_and_leaf("other CA");
        let refused = verify(&verifier(&[other_ca], Vec::new()), &cert, "localhost", NOW);
        assert!(
            format!("{refused:?}").contains("CaUsedAsEndEntity"),
            "{refused:?}"
        );
    }

    #[test]
    fn pins_alone_trust_the_key_and_still_check_name_and_dates() {
        let (cert, _key) = self_signed_ca_true();
        let pin = Pin::of_certificate(&cert).unwrap();
        let verifier = verifier(&[], vec![Pin([7; 32]), pin]);
        assert_eq!(verify(&verifier, &cert, "localhost", NOW), Ok(()));
        assert!(verify(&verifier, &cert, "smsc.example", NOW).is_err());
        assert!(verify(&verifier, &cert, "localhost", 1_798_848_000).is_err());

        // Another key: refused, naming the pin it has.
        let (other, _key) = self_signed_ca_true();
        assert_eq!(
            is_pin_mismatch(verify(&verifier, &other, "localhost", NOW)),
            Pin::of_certificate(&other)
        );
    }

    #[test]
    fn a_renewed_certificate_under_a_pinned_key_is_trusted() {
        let (cert, key) = self_signed_ca_true();
        let verifier = verifier(&[], vec![Pin::of_certificate(&cert).unwrap()]);
        let mut params = dated(&["localhost"]);
        params.not_after = rcgen::date_time_ymd(2028, 1, 1);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let renewed = params.self_signed(&key).unwrap().der().clone();
        assert_ne!(renewed, cert);
        assert_eq!(verify(&verifier, &renewed, "localhost", NOW), Ok(()));
    }

    #[test]
    fn pins_with_tls_ca_need_both_the_chain_and_the_key() {
        let (ca, leaf) = ca_and_leaf("carrier CA");
        let pin = Pin::of_certificate(&leaf).unwrap();
        let both = verifier(std::slice::from_ref(&ca), vec![pin]);
        assert_eq!(verify(&both, &leaf, "localhost", NOW), Ok(()));

        // Chains, but another key.
        let other_pin = verifier(std::slice::from_ref(&ca), vec![Pin([1; 32])]);
        assert_eq!(
            is_pin_mismatch(verify(&other_pin, &leaf, "localhost", NOW)),
            Some(pin)
        );

        // The right key, but not signed by tls_ca.
        let (other_ca, _) = ca_and_leaf("other CA");
        let unchained = verifier(&[other_ca], vec![pin]);
        assert!(matches!(
            verify(&unchained, &leaf, "localhost", NOW),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ));
    }

    #[test]
    fn pins_are_base64_of_32_bytes() {
        let pin = Pin([0xab; 32]);
        let text = pin.to_string();
        assert_eq!(text, "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=");
        assert_eq!(Pin::parse(&text), Ok(pin));
        let short = Pin::parse("q6urq6s=").unwrap_err();
        assert!(
            short.starts_with("\"q6urq6s=\" is 5 bytes of base64, not the 32 of a SHA-256"),
            "{short}"
        );
        assert!(
            short.contains("openssl dgst -sha256 -binary | base64"),
            "{short}"
        );
        let bad = Pin::parse("not a pin!").unwrap_err();
        assert!(bad.starts_with("\"not a pin!\" is not base64 ("), "{bad}");
        let curl = Pin::parse(&format!("sha256//{text}")).unwrap_err();
        assert!(curl.contains("write only the base64: \"q6ur"), "{curl}");
    }
}
