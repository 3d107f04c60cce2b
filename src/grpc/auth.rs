//! `auth.v1.AuthService` handlers.

use super::client::TrustedProxies;
use super::client_auth::ClientAuth;
use super::pb::{self, auth_service_server::AuthService as AuthServiceRpc};
use crate::accounts::Accounts;
use crate::crypto::keys::KeyRing;
use crate::domain::{LoginOutcome, TokenPair, UserView};
use crate::revocations::RevocationFeed;
use crate::sessions::{Introspection, Sessions};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The OAuth token type of authd's access tokens (RFC 6749 §5.1), in TokenResponse and Introspect.
const TOKEN_TYPE: &str = "Bearer";
/// WatchRevocations' response header: the cursor of the last backlog entry (0 for none), so a
/// verifier knows when it has caught up.
pub const BACKLOG_END_HEADER: &str = "x-authd-backlog-end";

pub struct AuthGrpc {
    sessions: Arc<Sessions>,
    accounts: Arc<Accounts>,
    revocations: RevocationFeed,
    keys: Arc<KeyRing>,
    proxies: TrustedProxies,
    /// Who may call Introspect.
    introspect_callers: Arc<ClientAuth>,
}

impl AuthGrpc {
    pub fn new(
        sessions: Arc<Sessions>,
        accounts: Arc<Accounts>,
        revocations: RevocationFeed,
        keys: Arc<KeyRing>,
        proxies: TrustedProxies,
        introspect_callers: Arc<ClientAuth>,
    ) -> Self {
        Self {
            sessions,
            accounts,
            revocations,
            keys,
            proxies,
            introspect_callers,
        }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl AuthServiceRpc for AuthGrpc {
    async fn signup(&self, request: Request<pb::SignupRequest>) -> Reply<pb::SignupResponse> {
        let client = self.proxies.client_info(&request);
        let r = request.into_inner();
        let user = self
            .accounts
            .signup(&r.email, &r.password, &r.name, &client)
            .await?;
        Ok(Response::new(pb::SignupResponse {
            user: Some(user.into()),
        }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::TokenResponse> {
        let client = self.proxies.client_info(&request);
        let r = request.into_inner();
        let outcome = self
            .sessions
            .login(&r.email, &r.password, &r.client_id, client)
            .await?;
        Ok(Response::new(match outcome {
            LoginOutcome::Tokens(pair) => pair.into(),
            LoginOutcome::MfaRequired(challenge) => pb::TokenResponse {
                mfa_required: true,
                mfa_token: challenge.mfa_token,
                mfa_factors: challenge.factors.iter().map(|f| (*f).to_owned()).collect(),
                mfa_expires_in: i64::try_from(challenge.expires_in.as_secs()).unwrap_or(i64::MAX),
                ..Default::default()
            },
        }))
    }

    async fn verify_mfa(&self, request: Request<pb::VerifyMfaRequest>) -> Reply<pb::TokenResponse> {
        let client = self.proxies.client_info(&request);
        let r = request.into_inner();
        let pair = self
            .sessions
            .verify_mfa(&r.mfa_token, &r.code, &r.recovery_code, client)
            .await?;
        Ok(Response::new(pair.into()))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Reply<pb::TokenResponse> {
        let client = self.proxies.client_info(&request);
        let pair = self
            .sessions
            .refresh(&request.into_inner().refresh_token, &client)
            .await?;
        Ok(Response::new(pair.into()))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        let client = self.proxies.client_info(&request);
        let r = request.into_inner();
        self.sessions
            .logout(&r.refresh_token, r.all_sessions, &client)
            .await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn verify_email(
        &self,
        request: Request<pb::VerifyEmailRequest>,
    ) -> Reply<pb::VerifyEmailResponse> {
        let client = self.proxies.client_info(&request);
        let user = self
            .accounts
            .verify_email(&request.into_inner().token, &client)
            .await?;
        Ok(Response::new(pb::VerifyEmailResponse {
            user: Some(user.into()),
        }))
    }

    async fn resend_verification(
        &self,
        request: Request<pb::ResendVerificationRequest>,
    ) -> Reply<pb::ResendVerificationResponse> {
        let client = self.proxies.client_info(&request);
        self.accounts
            .resend_verification(&request.into_inner().email, &client)
            .await?;
        Ok(Response::new(pb::ResendVerificationResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Reply<pb::RequestPasswordResetResponse> {
        let client = self.proxies.client_info(&request);
        self.accounts
            .request_password_reset(&request.into_inner().email, &client)
            .await?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Reply<pb::ResetPasswordResponse> {
        let client = self.proxies.client_info(&request);
        let r = request.into_inner();
        self.accounts
            .reset_password(&r.token, &r.new_password, &client)
            .await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Reply<pb::IntrospectResponse> {
        // A bad token is an answer (active=false); a caller that is not let in is an error.
        self.introspect_callers.authorize_grpc(&request)?;
        let answer = match self
            .sessions
            .introspect(&request.into_inner().token)
            .await?
        {
            Introspection::Inactive => pb::IntrospectResponse::default(),
            Introspection::Active(c) => pb::IntrospectResponse {
                active: true,
                aud: c.aud.to_vec(),
                sub: c.sub,
                email: c.email,
                sid: c.sid,
                jti: c.jti,
                iss: c.iss,
                exp: c.exp,
                iat: c.iat,
                email_verified: c.email_verified,
                token_type: TOKEN_TYPE.to_owned(),
                client_id: c.client_id.unwrap_or_default(),
                amr: c.amr,
                ext_id: c.ext_id.unwrap_or_default(),
            },
        };
        Ok(Response::new(answer))
    }

    type WatchRevocationsStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Revocation, Status>> + Send>>;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Reply<Self::WatchRevocationsStream> {
        // Who may watch is who may introspect: both tell which sessions are live.
        self.introspect_callers.authorize_grpc(&request)?;
        let watch = self
            .revocations
            .watch(request.into_inner().after_cursor)
            .await?;
        let stream = tokio_stream::StreamExt::map(watch.stream, |item| match item {
            Ok(r) => Ok(pb::Revocation {
                cursor: r.cursor,
                session_id: r.session_id.to_string(),
                user_id: r.user_id.to_string(),
                revoked_at: Some(timestamp(r.revoked_at)),
                not_after: Some(timestamp(r.not_after)),
            }),
            Err(err) => Err(Status::from(err)),
        });
        let mut response = Response::new(Box::pin(stream) as Self::WatchRevocationsStream);
        response
            .metadata_mut()
            .insert(BACKLOG_END_HEADER, watch.backlog_end.into());
        Ok(response)
    }

    async fn get_jwks(&self, _request: Request<pb::GetJwksRequest>) -> Reply<pb::GetJwksResponse> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: self.keys.jwks_json().to_string(),
        }))
    }
}

pub(super) fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

impl From<UserView> for pb::User {
    fn from(user: UserView) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email,
            name: user.name,
            email_verified: user.email_verified,
            created_at: Some(timestamp(user.created_at)),
            ext_id: user.ext_id.unwrap_or_default(),
            mfa_enabled: user.mfa_enabled,
        }
    }
}

impl From<TokenPair> for pb::TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: TOKEN_TYPE.to_owned(),
            expires_in: i64::try_from(pair.expires_in.as_secs()).unwrap_or(i64::MAX),
            refresh_expires_in: i64::try_from(pair.refresh_expires_in.as_secs())
                .unwrap_or(i64::MAX),
            user: Some(pair.user.into()),
            mfa_required: false,
            mfa_token: String::new(),
            mfa_factors: Vec::new(),
            mfa_expires_in: 0,
        }
    }
}
