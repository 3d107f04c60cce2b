//! Why a token was refused. The layer logs the reason at debug level, never the token, and a
//! refused caller sees the short message.

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `authorization: Bearer …` header.
    #[error("access token required: send authorization: Bearer <token>")]
    Missing,
    /// Not a compact JWS, too long (over 8 KiB), bad base64 or JSON, or a `crit` header.
    #[error("malformed access token")]
    Malformed,
    /// The `typ` header is not `at+jwt` (or `application/at+jwt`).
    #[error("not an access token (typ must be at+jwt)")]
    Type,
    /// The `alg` header is not on the allow-list or is not the key's own algorithm.
    #[error("access token algorithm not accepted")]
    Algorithm,
    /// No `kid`, or a `kid` that is not in the JWK Set (after the rate-limited refetch).
    #[error("access token signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify with the key named by `kid`.
    #[error("access token signature invalid")]
    Signature,
    /// `exp` has passed (beyond the leeway).
    #[error("access token expired")]
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("access token not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("access token issuer not accepted")]
    Issuer,
    /// None of the token's audiences is one of ours.
    #[error("access token audience not accepted")]
    Audience,
    /// A required claim is missing or of the wrong form.
    #[error("access token claims invalid")]
    Claims,
    /// Remote mode: authd says the token is not active (logged out, revoked, expired…).
    #[error("access token not active")]
    Inactive,
    /// Revocation-aware local mode: the token's session has ended (logout, password change,
    /// revoked session…), as authd's revocation stream said.
    #[error("access token's session has ended")]
    Revoked,
    /// No keys yet, or authd unreachable: the caller may retry.
    #[error("token verification unavailable, retry later")]
    Unavailable,
}

impl Refusal {
    /// Whether the refusal is about the verifier, not the token (the caller may retry).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable)
    }
}
