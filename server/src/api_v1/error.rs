//! The server API's one error shape: `{"error": {"code": "...", "message":
//! "..."}}` with the status that says whose fault it is. `code` is for the
//! calling program, `message` for the person reading its logs.
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::rooms::RoomError;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `browser_origin`, `not_found`,
    /// `conflict`, `blocked`, `too_many_requests`, `not_configured` or
    /// `internal`.
    pub code: String,
    /// What went wrong, in a sentence.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<RoomError> for ApiError {
    fn from(err: RoomError) -> Self {
        let message = err.public_message();
        match err {
            RoomError::Invalid(_) | RoomError::BadMessageId | RoomError::Refused(_) => {
                ApiError::bad_request(message)
            }
            RoomError::NoSuchRoom
            | RoomError::NoSuchMessage
            | RoomError::NoSuchReport
            | RoomError::NotInRoom(_)
            | RoomError::NotMember => ApiError::not_found(message),
            RoomError::AlreadyRemoved | RoomError::Unchanged(_) => ApiError::conflict("conflict", message),
            RoomError::UserBanned(_) | RoomError::Banned(_) => ApiError::conflict("banned", message),
            RoomError::Blocked => ApiError::new(StatusCode::BAD_REQUEST, "blocked", message),
            RoomError::TooFast | RoomError::SlowMode(_) | RoomError::Muted(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            }
            RoomError::Identity(_) => ApiError::unauthorized(message),
            RoomError::Store(_) if err.is_storage_full() => {
                tracing::error!(%err, "server API call failed: the database's storage is full");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_full", message)
            }
            RoomError::Store(_) | RoomError::Bus(_) => {
                tracing::error!(%err, "server API call failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::bad_request(format!(
            "The request body is not what this endpoint takes: {}",
            rejection.body_text()
        ))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("The address is malformed: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("The query is malformed: {}", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::DbErr;

    #[test]
    fn a_full_disk_is_a_503_that_says_so_and_other_store_failures_a_500() {
        let full = ApiError::from(RoomError::Store(DbErr::Custom("SQLite: database or disk is full".into())));
        assert_eq!((full.status, full.code), (StatusCode::SERVICE_UNAVAILABLE, "storage_full"));
        assert!(full.message.contains("storage is full"), "{}", full.message);
        let broken = ApiError::from(RoomError::Store(DbErr::Custom("connection reset".into())));
        assert_eq!((broken.status, broken.code), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
        assert!(!broken.message.contains("connection reset"), "no database detail to callers");
    }
}
