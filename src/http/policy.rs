//! What every answer of the API listener carries, and what is refused before the body is read.
//!
//! Conversations, reports and the dashboard hold customers' numbers and comments, so no
//! answer may be kept by a browser or a proxy cache (`Cache-Control: no-store`), framed by
//! another site (`frame-ancestors 'none'`, `X-Frame-Options: DENY`) or sniffed into another
//! type. The dashboard is one self-contained page: inline `<style>` and `style=""`, inline
//! SVG, a GET form to `/reports`, no script, no image, font or other fetch; its policy allows
//! exactly that, so a comment that ever got past the HTML escaping still could not run.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The dashboard's needs and nothing more; for JSON answers it forbids everything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers of the module documentation to every response.
pub(super) async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A body declared larger than `max_body` gets its 413 now, before a byte of it is read
/// (waiting for it would hold the connection until the request timeout), with
/// `Connection: close`: the rest of the body will not be read.
pub(super) async fn declared_length(
    State(max_body): State<usize>,
    req: Request,
    next: Next,
) -> Response {
    let declared = (req.headers().get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > max_body as u64 => {
            let mut response = ApiError::TooLarge(format!(
                "the body is declared as {length} bytes (Content-Length), http.max_body allows \
                 {max_body}"
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
        _ => next.run(req).await,
    }
}
