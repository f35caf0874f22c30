//! One webhook POST over HTTP/1.1, with hyper's client connection (already in the build
//! through axum): TCP, TLS for `https://` (the receiver's certificate always verified), the
//! request, the status. One connection per attempt: webhooks are a few calls a minute, and a
//! fresh connection never meets one the receiver half-closed.
//!
//! Headers: `Content-Type: application/json`, `Idempotency-Key: <conversation>-<n>` (the same
//! on every attempt), `X-Smsflow-Signature: sha256=<hex HMAC-SHA256 of the body>` when the
//! webhook has a secret, `X-Smsflow-Attempt: <n>` and `User-Agent: smsflow/<version>`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::policy::Attempt;
use crate::config::webhook::Resolved;
use crate::store::WebhookCall;

/// Response body bytes read (and thrown away) at most: a receiver's answer is not ours to keep.
const MAX_RESPONSE: usize = 64 * 1024;

/// The signature header's value for `body` under `secret`: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in tag.as_ref() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// POSTs `call` to `target` as attempt `attempt`, within `timeout` from connect to the end of
/// the response.
pub async fn post(
    target: &Resolved,
    timeout: Duration,
    call: &WebhookCall,
    attempt: u32,
) -> Attempt {
    match tokio::time::timeout(timeout, exchange(target, call, attempt)).await {
        Ok(Ok(status)) => Attempt::Answered(status),
        Ok(Err(why)) => Attempt::Failed(why),
        Err(_) => Attempt::Failed(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn exchange(target: &Resolved, call: &WebhookCall, attempt: u32) -> Result<u16, String> {
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = match &target.tls {
        None => Box::new(tcp),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = (connector.connect(tls.server_name.clone(), tcp).await)
                .map_err(|e| format!("TLS handshake with {} failed: {e}", target.host))?;
            Box::new(stream)
        }
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection's driver ends with the exchange (or with this attempt's timeout).
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = send(&mut sender, target, call, attempt).await;
    driver.abort();
    result
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    target: &Resolved,
    call: &WebhookCall,
    attempt: u32,
) -> Result<u16, String> {
    let body = Bytes::from(call.body.clone().into_bytes());
    let path = target
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = target
        .uri
        .authority()
        .map_or_else(|| target.host.clone(), |a| a.as_str().to_owned());
    let mut request = hyper::Request::post(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("smsflow/", env!("CARGO_PKG_VERSION")))
        .header("Idempotency-Key", call.idempotency_key())
        .header("X-Smsflow-Attempt", attempt.to_string());
    if let Some(secret) = &target.secret {
        let signed = signature(secret.expose().as_bytes(), &body);
        let value = HeaderValue::from_str(&signed).map_err(|e| e.to_string())?;
        request = request.header("X-Smsflow-Signature", value);
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response =
        (sender.send_request(request).await).map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status().as_u16();
    // Read the answer (bounded) so the receiver sees its response taken; its content is
    // not used.
    let mut body = response.into_body();
    let mut read = 0;
    while read < MAX_RESPONSE {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    #[test]
    fn the_signature_is_hex_hmac_sha256() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
