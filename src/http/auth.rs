//! Who may read and write: `http.tokens` guard `/api` and `/reports` (SPEC.md). A client
//! gives a token as `Authorization: Bearer TOKEN`, or, so a browser can open the dashboard,
//! as HTTP Basic auth whose password is a token (any user name). The scheme is
//! case-insensitive (RFC 7235 §2.1). A 401 names the scheme the route expects in
//! `WWW-Authenticate`, so a browser asks for a password on `/reports`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{ApiError, ApiState};

/// The challenge of a 401 on `/api` (RFC 6750) and on `/reports` (RFC 7617).
const BEARER_CHALLENGE: &str = "Bearer realm=\"smsflow\"";
const BASIC_CHALLENGE: &str = "Basic realm=\"smsflow\", charset=\"UTF-8\"";

/// Middleware for `/api`: a token is required when tokens are set.
pub async fn api(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    guard(&state, req, next, BEARER_CHALLENGE).await
}

/// Middleware for `/reports`: the same tokens; the challenge asks a browser for Basic auth.
pub async fn dashboard(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Response {
    guard(&state, req, next, BASIC_CHALLENGE).await
}

async fn guard(state: &ApiState, req: Request, next: Next, challenge: &'static str) -> Response {
    if state.tokens.is_empty() {
        return next.run(req).await;
    }
    let header = req.headers().get(header::AUTHORIZATION);
    let verdict = match header.map(presented) {
        None => Err(
            "an Authorization header is required: Bearer TOKEN, or Basic auth whose password is a token",
        ),
        Some(Err(why)) => Err(why),
        Some(Ok(token)) if accepted(&state.tokens, &token) => Ok(()),
        Some(Ok(_)) => Err("the token is not one of http.tokens"),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(why) => {
            let mut response = ApiError::Unauthorized(why).into_response();
            (response.headers_mut()).insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            response
        }
    }
}

/// The token an Authorization header presents, or why it presents none.
pub(super) fn presented(value: &HeaderValue) -> Result<Vec<u8>, &'static str> {
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], value[space + 1..].trim_ascii()),
        None => (value, &[][..]),
    };
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(rest.to_vec());
    }
    if scheme.eq_ignore_ascii_case(b"basic") {
        let decoded = (base64::engine::general_purpose::STANDARD.decode(rest))
            .map_err(|_| "the Basic credentials are not base64")?;
        // user:password; the password is the token, whatever the user name.
        let colon = (decoded.iter().position(|b| *b == b':'))
            .ok_or("the Basic credentials have no user:password")?;
        return Ok(decoded[colon + 1..].to_vec());
    }
    Err("the Authorization scheme must be Bearer or Basic")
}

/// Whether `presented` is one of `tokens`. Every token is compared, each in time that
/// depends only on the token's own length: neither which token was close nor how long one
/// is can be learnt by timing.
pub fn accepted(tokens: &[String], presented: &[u8]) -> bool {
    let mut ok = false;
    for token in tokens {
        ok |= constant_time_eq(presented, token.as_bytes());
    }
    ok
}

fn constant_time_eq(presented: &[u8], token: &[u8]) -> bool {
    // A length mismatch is folded into the result, not returned early.
    let mut diff = (presented.len() ^ token.len()) as u64;
    for (i, t) in token.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(0);
        diff |= u64::from(p ^ t);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn bearer_and_basic_present_a_token_whatever_the_case_of_the_scheme() {
        assert_eq!(presented(&header("Bearer abc")).unwrap(), b"abc");
        assert_eq!(presented(&header("bearer abc")).unwrap(), b"abc");
        assert_eq!(presented(&header("BEARER  abc ")).unwrap(), b"abc");
        // "ops:abc" and ":abc".
        assert_eq!(presented(&header("Basic b3BzOmFiYw==")).unwrap(), b"abc");
        assert_eq!(presented(&header("basic OmFiYw==")).unwrap(), b"abc");
        assert!(presented(&header("Basic !!")).is_err());
        assert!(presented(&header("Basic YWJj")).is_err(), "no colon");
        assert!(presented(&header("Token abc")).is_err());
    }

    #[test]
    fn only_an_exact_token_is_accepted() {
        let tokens = vec!["s3cret-token".to_owned(), "other".to_owned()];
        assert!(accepted(&tokens, b"s3cret-token"));
        assert!(accepted(&tokens, b"other"));
        for wrong in [
            &b"s3cret-toke"[..],
            b"s3cret-token!",
            b"",
            b"s3cret-tokeN",
            b"othe",
        ] {
            assert!(!accepted(&tokens, wrong), "{wrong:?}");
        }
        assert!(!accepted(&[], b""));
    }
}
