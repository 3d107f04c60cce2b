//! The one place where use-case errors become gRPC statuses. The match is exhaustive with no
//! catch-all arm, so a new error variant cannot silently become INTERNAL.

use crate::error::AuthError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

impl From<AuthError> for Status {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::InvalidInput(violations) => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field, &v.description);
                }
                let summary = violations
                    .iter()
                    .map(|v| format!("{} {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                Status::with_error_details(Code::InvalidArgument, summary, details)
            }
            AuthError::InvalidOneTimeToken { field } => Status::with_error_details(
                Code::InvalidArgument,
                message.clone(),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            AuthError::EmailTaken => Status::already_exists(message),
            AuthError::InvalidCredentials
            | AuthError::InvalidRefreshToken
            | AuthError::WrongCurrentPassword
            | AuthError::InvalidAccessToken
            | AuthError::InvalidMfaToken
            | AuthError::InvalidMfaCode => Status::unauthenticated(message),
            AuthError::SecondFactorState(_) => Status::failed_precondition(message),
            AuthError::SessionNotFound => Status::not_found(message),
            AuthError::EmailNotVerified => Status::permission_denied(message),
            AuthError::RateLimited { retry_after } => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(retry_after)),
            ),
            AuthError::CursorAhead { .. } => Status::out_of_range(message),
            AuthError::WatchTooSlow { .. } => Status::resource_exhausted(message),
            AuthError::TooManyStreams => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
            ),
            AuthError::ShuttingDown { .. } => Status::unavailable(message),
            AuthError::Unavailable(cause) => {
                tracing::error!(error = ?anyhow::Error::from(cause), "database unavailable");
                Status::unavailable(message)
            }
            AuthError::Unexpected(cause) => {
                tracing::error!(error = ?cause, "unexpected error");
                Status::internal(message)
            }
        }
    }
}
