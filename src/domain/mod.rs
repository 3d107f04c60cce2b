//! Validated values. Input from callers is parsed into these types once, at the edge of a use
//! case; everything behind that works with values that are known to be well-formed.

mod amr;
mod app_url;
mod client_id;
mod email;
mod ids;
mod name;
mod password;
mod time;
mod views;

pub use amr::AuthMethods;
pub use app_url::app_url;
pub use client_id::{CLIENT_ID_MAX_LEN, ClientId};
pub use email::Email;
pub use ids::{SessionId, UserId};
pub use name::DisplayName;
pub use password::{Password, PasswordPolicy};
pub use time::after;
pub use views::{Caller, ClientInfo, LoginOutcome, MfaChallenge, SessionView, TokenPair, UserView};

/// One reason a request field was refused; becomes a `google.rpc.BadRequest` field violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: &'static str,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self {
            field,
            description: description.into(),
        }
    }
}

/// Collects the violations of every field of a request, so a caller learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Keeps the parsed value, or records why it was refused.
    pub fn check<T>(&mut self, parsed: Result<T, FieldViolation>) -> Option<T> {
        parsed.map_err(|v| self.0.push(v)).ok()
    }

    /// `Ok` with the values when nothing was refused.
    pub fn finish<T>(self, values: Option<T>) -> Result<T, Vec<FieldViolation>> {
        match values {
            Some(values) if self.0.is_empty() => Ok(values),
            _ => Err(self.0),
        }
    }
}
