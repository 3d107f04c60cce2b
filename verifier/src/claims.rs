//! The access token's claims: the wire form authd signs ([`AccessClaims`]) and the typed form a
//! protected handler reads ([`Claims`]).

use crate::Refusal;
use serde::{Deserialize, Serialize};

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token, exactly as authd signs them. Nothing secret: anyone holding
/// the token can read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: authd's `AUTHD_ISSUER`.
    pub iss: String,
    /// Subject: the user id (a UUID).
    pub sub: String,
    /// Audience: authd's `AUTHD_AUDIENCE`.
    pub aud: Audience,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// Session id (a UUID).
    pub sid: String,
    /// The OAuth client the token was issued to (RFC 9068 §2.2). Optional when read, so that
    /// tokens issued before the claim existed still verify until they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user's email address.
    pub email: String,
    /// Whether the user has verified that address.
    pub email_verified: bool,
    /// How the session's login was authenticated (RFC 8176): `pwd`, and `otp` after a second
    /// factor. Absent from tokens issued before the claim existed, which were password logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The user's id in the app they were imported from, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_id: Option<String>,
}

/// `aud` is a string for one audience and an array for several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialised as a string.
    One(String),
    /// Several audiences, serialised as an array.
    Many(Vec<String>),
}

impl Audience {
    /// Every audience, in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(aud) => vec![aud.clone()],
            Self::Many(auds) => auds.clone(),
        }
    }

    /// Whether `aud` is one of them.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(one) => one == aud,
            Self::Many(many) => many.iter().any(|a| a == aud),
        }
    }
}

/// What a verified token says, as the layer puts it into the request extensions
/// (`http::Request::extensions`, which tonic copies into `tonic::Request::extensions`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims {
    /// The user (`sub`).
    pub user_id: uuid::Uuid,
    /// The session the token belongs to (`sid`).
    pub session_id: uuid::Uuid,
    /// The user's email address.
    pub email: String,
    /// Whether the user has verified that address.
    pub email_verified: bool,
    /// Expiry (`exp`), unix seconds.
    pub expires_at: i64,
    /// Issued at (`iat`), unix seconds.
    pub issued_at: i64,
    /// The token id (`jti`).
    pub token_id: String,
    /// The OAuth client the token was issued to, when the token names one.
    pub client_id: Option<String>,
    /// The issuer (`iss`).
    pub issuer: String,
    /// The token's audiences (`aud`).
    pub audience: Vec<String>,
    /// How the login was authenticated (`amr`, RFC 8176): `pwd`, `otp`.
    pub methods: Vec<String>,
    /// The user's id in the app they were imported from (`ext_id`), when there is one.
    pub ext_id: Option<String>,
}

impl Claims {
    /// Whether the login passed a second factor (`amr` holds `otp`): what a handler asks before a
    /// sensitive call (PERMISSION_DENIED when it did not).
    pub fn has_second_factor(&self) -> bool {
        self.methods.iter().any(|m| m == "otp")
    }
}

impl TryFrom<AccessClaims> for Claims {
    type Error = Refusal;

    /// `sub` and `sid` must be UUIDs; anything else is [`Refusal::Claims`].
    fn try_from(claims: AccessClaims) -> Result<Self, Refusal> {
        let user_id = uuid::Uuid::try_parse(&claims.sub).map_err(|_| Refusal::Claims)?;
        let session_id = uuid::Uuid::try_parse(&claims.sid).map_err(|_| Refusal::Claims)?;
        let audience = match claims.aud {
            Audience::One(one) => vec![one],
            Audience::Many(many) => many,
        };
        Ok(Self {
            user_id,
            session_id,
            email: claims.email,
            email_verified: claims.email_verified,
            expires_at: claims.exp,
            issued_at: claims.iat,
            token_id: claims.jti,
            client_id: claims.client_id,
            issuer: claims.iss,
            audience,
            methods: claims.amr,
            ext_id: claims.ext_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(sub: &str, sid: &str) -> AccessClaims {
        AccessClaims {
            iss: "http://authd".into(),
            sub: sub.into(),
            aud: Audience::Many(vec!["a".into(), "b".into()]),
            exp: 2,
            iat: 1,
            jti: "j".into(),
            sid: sid.into(),
            client_id: None,
            email: "a@example.com".into(),
            email_verified: true,
            amr: Vec::new(),
            ext_id: None,
        }
    }

    #[test]
    fn audience_is_a_string_or_an_array() -> Result<(), serde_json::Error> {
        assert_eq!(
            serde_json::from_str::<Audience>(r#""authd""#)?,
            Audience::One("authd".into())
        );
        let many: Audience = serde_json::from_str(r#"["a","b"]"#)?;
        assert_eq!(many.to_vec(), ["a", "b"]);
        assert!(many.contains("b") && !many.contains("c"));
        assert_eq!(serde_json::to_string(&Audience::One("x".into()))?, r#""x""#);
        Ok(())
    }

    #[test]
    fn client_id_is_optional_on_the_wire() -> Result<(), serde_json::Error> {
        let claims = access("s", "t");
        let json = serde_json::to_string(&claims)?;
        assert!(!json.contains("client_id"), "{json}");
        assert_eq!(serde_json::from_str::<AccessClaims>(&json)?, claims);
        Ok(())
    }

    #[test]
    fn typed_claims_need_uuid_subject_and_session() {
        let (user, session) = (uuid::Uuid::from_u128(7), uuid::Uuid::from_u128(8));
        let claims = Claims::try_from(access(&user.to_string(), &session.to_string()));
        let claims = claims.unwrap();
        assert_eq!((claims.user_id, claims.session_id), (user, session));
        assert_eq!(claims.audience, ["a", "b"]);
        assert_eq!(claims.expires_at, 2);
        assert_eq!(
            Claims::try_from(access("not-a-uuid", &session.to_string())),
            Err(Refusal::Claims)
        );
        assert_eq!(
            Claims::try_from(access(&user.to_string(), "")),
            Err(Refusal::Claims)
        );
    }
}
