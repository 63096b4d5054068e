//! Errors in the shape Confluent's Schema Registry reports them.
//!
//! Confluent answers every failure with a JSON body `{"error_code": N, "message": "..."}`
//! where `error_code` refines the HTTP status (40401 = subject not found, 42201 = invalid
//! schema, ...). Clients such as `schema_registry_converter` and Confluent's own
//! serializers branch on those codes, so every error this server produces goes through
//! [`RegistryError`] and is rendered exactly that way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api::json_response;

/// Every failure the registry can report to a client.
///
/// Each variant maps to one Confluent error code; the `Display` text is the `message`
/// Confluent uses for it, so logs and HTTP bodies read the same.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// 40401: the subject has no (live) versions.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402: the subject exists but not this version.
    #[error("Version {0} not found.")]
    VersionNotFound(u32),
    /// 40403: no schema with this id, or the posted schema is not under the subject.
    #[error("{}", match .0 { Some(id) => format!("Schema {id} not found"), None => "Schema not found".to_owned() })]
    SchemaNotFound(Option<u32>),
    /// 40404: soft-deleting a subject that is already soft-deleted.
    #[error("Subject '{0}' was soft deleted.Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405: permanent delete of a subject that was not soft-deleted first.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406: soft-deleting a version that is already soft-deleted.
    #[error("Subject '{0}' Version {1} was soft deleted.Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, u32),
    /// 40407: permanent delete of a version that was not soft-deleted first.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    /// 40408: `GET /config/{subject}` for a subject without its own level.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// 40101: a write without the writer's credentials (see [`crate::auth`]).
    #[error(
        "Unauthorized: changing the registry needs the writer's credentials (HTTP basic auth)"
    )]
    Unauthorized,
    /// 409: the schema breaks the subject's compatibility rule.
    #[error("{0}")]
    IncompatibleSchema(String),
    /// 42201: the schema does not parse, is empty, has a bad reference or an unsupported type.
    #[error("{0}")]
    InvalidSchema(String),
    /// 42202: a version path segment that is neither a positive integer nor `latest`.
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    /// 42203: an unknown compatibility level in a config update.
    #[error("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")]
    InvalidCompatibilityLevel,
    /// 42206: deleting a version another schema still references.
    #[error("{0}")]
    ReferenceExists(String),
    /// 400: the request body is not the JSON we expect.
    #[error("{0}")]
    BadRequest(String),
    /// 404 with code 404: no such route (Jersey's generic answer in Confluent).
    #[error("HTTP 404 Not Found")]
    NotFound,
    /// 405 with code 405: the route exists, the method does not.
    #[error("HTTP 405 Method Not Allowed")]
    MethodNotAllowed,
    /// 50001: the backing data file could not be written (state is left unchanged).
    #[error("{0}")]
    Store(String),
}

impl RegistryError {
    /// The HTTP status Confluent uses for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::SubjectNotFound(_)
            | Self::VersionNotFound(_)
            | Self::SchemaNotFound(_)
            | Self::SubjectSoftDeleted(_)
            | Self::SubjectNotSoftDeleted(_)
            | Self::VersionSoftDeleted(..)
            | Self::VersionNotSoftDeleted(..)
            | Self::SubjectCompatibilityNotConfigured(_)
            | Self::NotFound => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::IncompatibleSchema(_) => StatusCode::CONFLICT,
            Self::InvalidSchema(_)
            | Self::InvalidVersion(_)
            | Self::InvalidCompatibilityLevel
            | Self::ReferenceExists(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The Confluent `error_code` for this error.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted(..) => 40406,
            Self::VersionNotSoftDeleted(..) => 40407,
            Self::SubjectCompatibilityNotConfigured(_) => 40408,
            Self::Unauthorized => 40101,
            Self::IncompatibleSchema(_) => 409,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibilityLevel => 42203,
            Self::ReferenceExists(_) => 42206,
            Self::BadRequest(_) => 400,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Store(_) => 50001,
        }
    }
}

/// The JSON body of an error response, field names as Confluent spells them.
#[derive(Debug, Serialize)]
struct ErrorBody {
    /// Confluent's refined error code (see [`RegistryError::error_code`]).
    error_code: u32,
    /// Human-readable explanation.
    message: String,
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, code = self.error_code(), "request rejected");
        }
        json_response(
            status,
            &ErrorBody {
                error_code: self.error_code(),
                message: self.to_string(),
            },
        )
    }
}

/// Renders an error and its `source()` chain on one line, so nested causes
/// (e.g. "field 'x' does not match: long cannot be read as int") are not lost.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
