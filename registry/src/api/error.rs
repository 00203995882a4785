//! OCI distribution error responses: a status and `{"errors": [{code, message}]}`.

use crate::name::NameError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error as the distribution spec reports it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    range: Option<String>,
}

impl ApiError {
    /// An error with `status`, spec `code` and a human `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), range: None }
    }

    /// Missing or wrong credentials.
    pub fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required")
    }

    /// Valid credentials that do not allow this operation.
    pub fn denied() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "DENIED", "this token may not push")
    }

    /// A request this registry does not support.
    pub fn unsupported(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            StoreError::BlobUnknown(_) => (S::NOT_FOUND, "BLOB_UNKNOWN"),
            StoreError::ManifestUnknown(_) => (S::NOT_FOUND, "MANIFEST_UNKNOWN"),
            StoreError::NameUnknown(_) => (S::NOT_FOUND, "NAME_UNKNOWN"),
            StoreError::UploadUnknown(_) => (S::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            StoreError::DigestMismatch { .. } => (S::BAD_REQUEST, "DIGEST_INVALID"),
            StoreError::RangeMismatch { offset, .. } => {
                let mut err = ApiError::new(S::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message);
                err.range = Some(range_header(*offset));
                return err;
            }
            StoreError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            StoreError::VersionExists { .. } => (S::CONFLICT, "DENIED"),
            StoreError::ManifestInvalid(_) => (S::BAD_REQUEST, "MANIFEST_INVALID"),
            StoreError::ManifestBlobUnknown(_) => (S::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            StoreError::Name(NameError::Repository(_)) => (S::BAD_REQUEST, "NAME_INVALID"),
            StoreError::Name(NameError::Tag(_) | NameError::Reference(_)) => (S::BAD_REQUEST, "TAG_INVALID"),
            // A damaged copy is as good as none: say so, and let a push
            // of the same digest replace it.
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "refusing a corrupt blob");
                (S::NOT_FOUND, "BLOB_UNKNOWN")
            }
            StoreError::Io(_) => {
                tracing::error!(error = %e, "storage failure");
                (S::INTERNAL_SERVER_ERROR, "UNKNOWN")
            }
        };
        ApiError::new(status, code, message)
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        StoreError::Name(e).into()
    }
}

/// The `Range` header value for an upload that holds `offset` bytes.
pub fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message}]});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"toolmesh\""));
        }
        if let Some(range) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            response.headers_mut().insert(header::RANGE, range);
        }
        response
    }
}
