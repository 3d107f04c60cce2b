//! What the use cases hand back and take in besides validated input: plain values, no behaviour,
//! shared by every feature and the edge.

use super::{SessionId, UserId};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Where a call comes from: for the session record, the throttle and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: String,
    pub ip: String,
}

/// Who is calling: the user and session of a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// A user as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    /// The user's id in the app they were imported from.
    pub ext_id: Option<String>,
    /// Login needs the second factor.
    pub mfa_enabled: bool,
}

/// What Login and Refresh hand back.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
    pub refresh_expires_in: Duration,
    pub user: UserView,
}

/// A session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: String,
    pub ip: String,
    /// The session of the access token that asked.
    pub current: bool,
}

/// What Login hands back when a second factor is needed.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    pub mfa_token: String,
    pub expires_in: Duration,
    pub factors: &'static [&'static str],
}

/// What Login ends in.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// No second factor: the session has started.
    Tokens(TokenPair),
    /// The password was right; VerifyMfa with this challenge gives the tokens.
    MfaRequired(MfaChallenge),
}
