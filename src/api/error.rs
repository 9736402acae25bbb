//! API errors: JSON `{"code", "message"}` with the right status, from every failure the
//! engine, store and extractors can produce. Nothing here is a 500 unless the server itself
//! is at fault.

use crate::engine::{AnswerError, RestartError, StartError};
use crate::plugins::AddError;
use crate::workflow::Problems;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Every validation problem with its path, for `invalid_definition` and `invalid_input`.
    pub problems: Option<Problems>,
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable code, such as `not_found` or `conflict`.
    code: &'static str,
    /// What is wrong and how to fix it.
    message: String,
    /// Every validation problem with its path (`invalid_definition`, `invalid_input`,
    /// `invalid_schedule`, import conflicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<Problems>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            problems: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    pub fn invalid(code: &'static str, problems: Problems) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: problems.to_string(),
            problems: Some(problems),
        }
    }

    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!("internal error: {error:#}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{error:#}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            problems: self.problems,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::internal(error)
    }
}

impl From<AnswerError> for ApiError {
    fn from(error: AnswerError) -> Self {
        let message = error.to_string();
        match error {
            AnswerError::UnknownRun(_) => ApiError::not_found(message),
            AnswerError::UnknownStep(_) | AnswerError::NotWaiting(_) => ApiError::conflict(message),
            AnswerError::UnknownSignal(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_signal", message)
            }
            AnswerError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_answer", message),
            AnswerError::NotAssigned(_) => ApiError::new(StatusCode::FORBIDDEN, "not_assigned", message),
            AnswerError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<StartError> for ApiError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::Invalid(problems) => ApiError::invalid("invalid_input", problems),
            StartError::KeyReused(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            StartError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<RestartError> for ApiError {
    fn from(error: RestartError) -> Self {
        let message = error.to_string();
        match error {
            RestartError::UnknownRun(_) | RestartError::UnknownVersion(_) => ApiError::not_found(message),
            RestartError::NotRestartable(_) => ApiError::conflict(message),
            RestartError::Start(e) => e.into(),
            RestartError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<crate::engine::RetryError> for ApiError {
    fn from(error: crate::engine::RetryError) -> Self {
        use crate::engine::RetryError;
        let message = error.to_string();
        match error {
            RetryError::UnknownRun(_) | RetryError::UnknownVersion(_) => ApiError::not_found(message),
            RetryError::NotRetryable(_) => ApiError::conflict(message),
            RetryError::Invalid(_) => ApiError::bad_request(message),
            RetryError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl From<AddError> for ApiError {
    fn from(error: AddError) -> Self {
        let message = error.to_string();
        match error {
            AddError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_plugin", message),
            AddError::Conflict(_) => ApiError::conflict(message),
            AddError::Store(e) => ApiError::internal(e),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::unsupported_media("send the body as JSON with `Content-Type: application/json`")
            }
            JsonRejection::BytesRejection(b) => bytes_rejection(b),
            other => ApiError::bad_request(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        bytes_rejection(rejection)
    }
}

fn bytes_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the body is larger than the server's limit (weft serve --body-limit)",
        )
    } else {
        ApiError::bad_request(format!("cannot read the body: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query: {}", rejection.body_text()))
    }
}
