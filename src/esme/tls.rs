//! SMPP over TLS: a [`Connector`] that opens TCP to the SMSC and runs the TLS handshake on it,
//! verifying the SMSC's certificate (a chain to the configured roots, valid for the server
//! name) and presenting ours when the config has one.
//!
//! A handshake that fails is a failed connect like a refused one: the pool backs off and tries
//! again. Its error is a [`HandshakeError`], so the pool can tell a certificate problem (which
//! needs an operator) from a network one, and the message names the SMSC and what rustls found:
//! `TLS handshake with playmobile failed: invalid peer certificate: UnknownIssuer`.

use std::sync::Arc;

use tokio_rustls::TlsConnector;

use super::connection::{CONNECT_TIMEOUT, Io};
use super::pool::{Connector, connect_tcp};
use crate::tls::ClientTls;

/// The TLS handshake with an SMSC failed (after TCP connected): an untrusted or wrong
/// certificate, a name it is not valid for, no common protocol version, or the SMSC refusing
/// to go on.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with {smsc} failed: {source}")]
pub struct HandshakeError {
    /// The `[[smsc]]` name.
    pub smsc: Arc<str>,
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
    let server_name = tls.server_name;
    Arc::new(move || {
        let target = format!("{host}:{port}");
        let (smsc, connector, server_name) = (smsc.clone(), connector.clone(), server_name.clone());
        Box::pin(async move {
            let tcp = connect_tcp(&target).await?;
            let handshake = connector.connect(server_name, tcp);
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => {
                    return Err(std::io::Error::other(HandshakeError { smsc, source }));
                }
                Err(_) => {
                    let source =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time");
                    return Err(std::io::Error::other(HandshakeError { smsc, source }));
                }
            };
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}
