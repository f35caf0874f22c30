//! The HTTP API's request metrics ([`crate::metrics::HTTP_REQUESTS`] and
//! [`crate::metrics::HTTP_REQUEST_DURATION`]): one middleware around every route, labelling a
//! request by the route template it matched, never by its raw path, which would make a series
//! per conversation id.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics as names;

/// Counts and times `req` once its response head is ready (a streamed body is not waited
/// for; the API's bodies are whole).
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(
        || names::UNMATCHED_ROUTE.to_owned(),
        |p| p.as_str().to_owned(),
    );
    let response = next.run(req).await;
    let status = response.status().as_str().to_owned();
    metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => route.clone(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(names::HTTP_REQUESTS, "route" => route, "status" => status).increment(1);
    response
}
