//! `POST /api/v1/store/backup` `{"dir": "/abs/path"}`: a backup of the running service's
//! store (`smsflow store backup` asks for one here when the service holds sled's lock).
//!
//! Behind the same bearer tokens as the rest of `/api`: a token holder can make the service
//! write a file into any new or empty directory it may write to. Answers 200 with what the
//! backup holds, 400 for a malformed body, 409 when the directory is not empty or is inside
//! the store, 422 for a relative path (the service's working directory is not the caller's),
//! 500 when writing fails.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::store::backup::BackupError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupRequest {
    /// Where to write the backup: absolute, new or empty.
    dir: PathBuf,
}

pub(super) async fn backup(
    State(state): State<Arc<ApiState>>,
    body: Result<axum::Json<BackupRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let axum::Json(BackupRequest { dir }) = body?;
    if !dir.is_absolute() {
        return Err(ApiError::Invalid(format!(
            "dir: {} is not an absolute path",
            dir.display()
        )));
    }
    let store = state.store.clone();
    let written = tokio::task::spawn_blocking(move || store.backup(&dir))
        .await
        .map_err(|e| ApiError::Internal(format!("the backup task failed: {e}")))?;
    match written {
        Ok(info) => {
            tracing::info!(file = %info.file.display(), seq = info.last, entries = info.entries, "store: backup written");
            let body = json!({
                "file": info.file,
                "checkpoint": info.checkpoint,
                "seq": info.last,
                "entries": info.entries,
                "bytes": info.bytes,
            });
            Ok((StatusCode::OK, axum::Json(body)).into_response())
        }
        Err(e @ (BackupError::NotEmpty { .. } | BackupError::InsideStore { .. })) => {
            let body = json!({"error": "conflict", "detail": e.to_string()});
            Ok((StatusCode::CONFLICT, axum::Json(body)).into_response())
        }
        Err(BackupError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
