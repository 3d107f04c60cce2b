//! `auth.v1.AccountService` handlers. The service runs behind the verifier layer
//! ([`super::bearer`]), which refuses a call without a valid access token of a live session
//! and puts the token's claims into the request extensions; the handlers read the caller from
//! there.

use super::auth::timestamp;
use super::client::TrustedProxies;
use super::pb::{self, account_service_server::AccountService as AccountServiceRpc};
use crate::accounts::Accounts;
use crate::domain::{Caller, SessionView};
use crate::domain::{SessionId, UserId};
use crate::error::AuthError;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct AccountGrpc {
    accounts: Arc<Accounts>,
    proxies: TrustedProxies,
}

impl AccountGrpc {
    pub fn new(accounts: Arc<Accounts>, proxies: TrustedProxies) -> Self {
        Self { accounts, proxies }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The caller the verifier layer found. Without its claims (the service mounted without the
/// layer) every call is refused rather than served to nobody in particular.
fn caller<T>(request: &Request<T>) -> Result<Caller, AuthError> {
    let claims = request
        .extensions()
        .get::<authd_verifier::Claims>()
        .ok_or(AuthError::InvalidAccessToken)?;
    Ok(Caller {
        user_id: UserId(claims.user_id),
        session_id: SessionId(claims.session_id),
    })
}

#[tonic::async_trait]
impl AccountServiceRpc for AccountGrpc {
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Reply<pb::GetProfileResponse> {
        let user = self.accounts.profile(caller(&request)?).await?;
        Ok(Response::new(pb::GetProfileResponse {
            user: Some(user.into()),
        }))
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Reply<pb::UpdateProfileResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        let user = self
            .accounts
            .update_profile(caller, &request.into_inner().name, &client)
            .await?;
        Ok(Response::new(pb::UpdateProfileResponse {
            user: Some(user.into()),
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Reply<pb::ChangePasswordResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        let r = request.into_inner();
        self.accounts
            .change_password(caller, &r.current_password, &r.new_password, &client)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Reply<pb::ListSessionsResponse> {
        let sessions = self.accounts.sessions(caller(&request)?).await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(pb::Session::from).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Reply<pb::RevokeSessionResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        self.accounts
            .revoke_session(caller, &request.into_inner().session_id, &client)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn begin_totp_enrollment(
        &self,
        request: Request<pb::BeginTotpEnrollmentRequest>,
    ) -> Reply<pb::BeginTotpEnrollmentResponse> {
        let enrollment = self
            .accounts
            .begin_totp_enrollment(caller(&request)?)
            .await?;
        Ok(Response::new(pb::BeginTotpEnrollmentResponse {
            otpauth_uri: enrollment.otpauth_uri,
            secret: enrollment.secret,
            qr_png: enrollment.qr_png,
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Reply<pb::ConfirmTotpResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        let recovery_codes = self
            .accounts
            .confirm_totp(caller, &request.into_inner().code, &client)
            .await?;
        Ok(Response::new(pb::ConfirmTotpResponse { recovery_codes }))
    }

    async fn disable_totp(
        &self,
        request: Request<pb::DisableTotpRequest>,
    ) -> Reply<pb::DisableTotpResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        let r = request.into_inner();
        self.accounts
            .disable_totp(caller, &r.password, &r.code, &client)
            .await?;
        Ok(Response::new(pb::DisableTotpResponse {}))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Reply<pb::RegenerateRecoveryCodesResponse> {
        let (caller, client) = (caller(&request)?, self.proxies.client_info(&request));
        let r = request.into_inner();
        let recovery_codes = self
            .accounts
            .regenerate_recovery_codes(caller, &r.password, &r.code, &client)
            .await?;
        Ok(Response::new(pb::RegenerateRecoveryCodesResponse {
            recovery_codes,
        }))
    }
}

impl From<SessionView> for pb::Session {
    fn from(s: SessionView) -> Self {
        Self {
            id: s.id.to_string(),
            created_at: Some(timestamp(s.created_at)),
            last_used_at: Some(timestamp(s.last_used_at)),
            expires_at: Some(timestamp(s.expires_at)),
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        }
    }
}
