//! The use cases' one error: every feature returns `AuthError`, and `grpc::status` maps it to a
//! status in one exhaustive match.

use crate::db::StoreError;
use crate::domain::FieldViolation;
use std::time::Duration;

/// Why a use case refused or failed. The gRPC layer maps each variant to exactly one status.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid request")]
    InvalidInput(Vec<FieldViolation>),
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Wrong password or unknown email: one answer for both.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("refresh token is invalid, expired or already used")]
    InvalidRefreshToken,
    /// ChangePassword: the password given as current is not (or no longer) the account's.
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// An AccountService caller whose token was good a moment ago no longer is: its session
    /// or user ended meanwhile.
    #[error("access token is invalid, expired or of an ended session")]
    InvalidAccessToken,
    /// A session that is not the caller's, does not exist or has ended: one answer for all.
    #[error("no such session")]
    SessionNotFound,
    /// VerifyMfa: an `mfa_token` that is unknown, expired, spent or worn out by wrong codes.
    #[error("mfa_token is invalid, expired or already used; log in again")]
    InvalidMfaToken,
    /// A second-factor code that is wrong or already used.
    #[error("the code is wrong or already used")]
    InvalidMfaCode,
    /// The second factor is not in the state the call needs (on, off, enrollment begun).
    #[error("{0}")]
    SecondFactorState(&'static str),
    #[error("email address is not verified")]
    EmailNotVerified,
    /// A verification or reset token that is unknown, expired or spent.
    #[error("token is invalid, expired or already used")]
    InvalidOneTimeToken { field: &'static str },
    #[error("too many attempts; try again later")]
    RateLimited { retry_after: Duration },
    #[error("service temporarily unavailable")]
    Unavailable(#[source] StoreError),
    /// WatchRevocations from a cursor this database never gave out (it was replaced).
    #[error(
        "after_cursor is ahead of every revocation this database has (latest {latest}); start again from 0"
    )]
    CursorAhead { latest: i64 },
    /// A WatchRevocations caller fell too far behind the live revocations.
    #[error("reading revocations too slowly; resume with after_cursor {resume_after}")]
    WatchTooSlow { resume_after: i64 },
    /// This process holds as many revocation streams as it serves.
    #[error("too many revocation streams on this authd; retry later or on another replica")]
    TooManyStreams,
    /// authd is stopping: a long-lived call ends so the caller moves to another replica.
    #[error("authd is shutting down; resume with after_cursor {resume_after}")]
    ShuttingDown { resume_after: i64 },
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => Self::Unavailable(err),
            StoreError::Conflict(_) | StoreError::Query(_) => Self::Unexpected(err.into()),
        }
    }
}

impl From<Vec<FieldViolation>> for AuthError {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidInput(violations)
    }
}
