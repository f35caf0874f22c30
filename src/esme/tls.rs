//! SMPP over TLS: a [`Connector`] that opens TCP to the SMSC and runs the TLS handshake on it,
//! verifying the SMSC's certificate (a chain to the configured roots, valid for the server
//! name) and presenting ours when the config has one.
//!
//! A handshake that fails is a failed connect like a refused one: the pool backs off and tries
//! again. Its error is a [`HandshakeError`], so the pool can tell a certificate problem (which
//! needs an operator) from a network one, and the message names the SMSC, the cause and the fix
//! ([`crate::tls::explain`]): `TLS handshake with playmobile failed: unknown issuer: the SMSC's
//! certificate is not signed by a CA in tls_ca "/etc/smsflow/carrier-ca.pem" …`.

use std::sync::Arc;

use tokio_rustls::TlsConnector;

use super::connection::{CONNECT_TIMEOUT, Io};
use super::connection::{Connector, connect_tcp};
use crate::tls::{ClientTls, explain};

/// The TLS handshake with an SMSC failed (after TCP connected): an untrusted or wrong
/// certificate, a name it is not valid for, no common protocol version, or the SMSC refusing
/// to go on.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with {smsc} failed: {reason}")]
pub struct HandshakeError {
    /// The `[[smsc]]` name.
    pub smsc: Arc<str>,
    /// The cause and what to do about it, for the operator.
    pub reason: String,
    pub source: std::io::Error,
}

impl HandshakeError {
    /// Whether a connector's error is one of these.
    pub fn is(error: &std::io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<HandshakeError>())
    }
}

/// A connector for SMPP over TLS to `host:port`; `smsc` names it in errors.
pub fn tls_connector(smsc: &str, host: String, port: u16, tls: ClientTls) -> Connector {
    let smsc: Arc<str> = smsc.into();
    let connector = TlsConnector::from(tls.config);
    let (server_name, hints) = (tls.server_name, tls.hints);
    Arc::new(move || {
        let target = format!("{host}:{port}");
        let (smsc, connector, server_name, hints) = (
            smsc.clone(),
            connector.clone(),
            server_name.clone(),
            hints.clone(),
        );
        Box::pin(async move {
            let tcp = connect_tcp(&target).await?;
            let handshake = connector.connect(server_name, tcp);
            let source = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => return Ok(Box::new(stream) as Box<dyn Io>),
                Ok(Err(source)) => source,
                Err(_) => std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no TLS answer within {} s", CONNECT_TIMEOUT.as_secs()),
                ),
            };
            let reason = explain::handshake(&source, &hints, &target);
            Err(std::io::Error::other(HandshakeError {
                smsc,
                reason,
                source,
            }))
        })
    })
}
