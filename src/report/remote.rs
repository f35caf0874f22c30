//! Asks a running smsflow for a report over its HTTP API: `smsflow report` uses this when the
//! service holds the store (sled locks it), then renders the JSON locally; `smsflow store
//! backup` likewise asks the service for a backup.
//!
//! A minimal HTTP/1.1 GET over a blocking socket, enough for our own server on loopback
//! (`Connection: close`, `Content-Length` or chunked bodies); no TLS, no redirects. Pulling in
//! an HTTP client crate for one loopback request would double the dependency tree.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::query::Query;

/// How long to wait for the service to connect and to answer.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Why the service could not give the report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("cannot reach the service at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading the answer of {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the service at {addr} answered something that is not HTTP: {detail}")]
    Malformed { addr: SocketAddr, detail: String },
    /// The service answered with an error status; `detail` is its JSON error's detail.
    #[error("the service at {addr} answered {status}: {detail}")]
    Status {
        addr: SocketAddr,
        status: u16,
        detail: String,
    },
}

/// The address to call for a service listening on `listen` (an unspecified address such as
/// 0.0.0.0 is reached on loopback).
pub fn connect_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The API path of `query`'s report.
pub fn path(query: &Query) -> String {
    let mut path = format!(
        "/api/v1/reports/{}?from={}&to={}&by={}",
        query.kind.name(),
        query.from,
        query.to,
        query.by.name()
    );
    if query.kind == super::query::Kind::Csi {
        // Flow names are letters, digits, - and _ (Query::for_flow): nothing to escape.
        path.push_str(&format!("&flow={}", query.flow));
    }
    path
}

/// GETs `path` from `addr` with the bearer `token`; the body of a 2xx answer.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<String, RemoteError> {
    request(addr, "GET", path, token, None, TIMEOUT)
}

/// POSTs the JSON `body` to `path` on `addr`, waiting up to `timeout` for the answer (a
/// backup of a big store takes a while); the body of a 2xx answer.
pub fn post(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &str,
    timeout: Duration,
) -> Result<String, RemoteError> {
    request(addr, "POST", path, token, Some(body), timeout)
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
    timeout: Duration,
) -> Result<String, RemoteError> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .map_err(|source| RemoteError::Connect { addr, source })?;
    let io = |source| RemoteError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n"
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let (status, body) =
        parse_response(&raw).map_err(|detail| RemoteError::Malformed { addr, detail })?;
    let body = String::from_utf8_lossy(&body).into_owned();
    if !(200..300).contains(&status) {
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_owned();
                let detail = v.get("detail").and_then(|d| d.as_str()).unwrap_or("");
                Some(format!("{error}: {detail}"))
            })
            .unwrap_or(body);
        return Err(RemoteError::Status {
            addr,
            status,
            detail,
        });
    }
    Ok(body)
}

/// Status and body of a complete HTTP/1.1 response.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the response head")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\"}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (400, b"{\"a\"}".to_vec()));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn unspecified_listen_addresses_are_called_on_loopback() {
        let a = connect_address("0.0.0.0:8080".parse().unwrap());
        assert_eq!(a.to_string(), "127.0.0.1:8080");
        let b = connect_address("10.0.0.5:8080".parse().unwrap());
        assert_eq!(b.to_string(), "10.0.0.5:8080");
    }
}
