//! AccountService as a signed-in user meets it: the profile, and around the service what the
//! server says about it (health, reflection, metrics). Calls carry `authorization: Bearer …`
//! with an access token from a real login; the verifier layer in front of the service checks
//! it the way Introspect does.
//!
//! - `refused`: calls without a good token of a live session;
//! - `sessions`: listing and ending one's own sessions, and only one's own;
//! - `password`: ChangePassword.

use crate::bad_input::violations;
use crate::helpers::{TestApp, code};
use authd::pb::{self, account_service_client::AccountServiceClient};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

mod password;
mod refused;
mod sessions;

/// An AccountService client that sends one `authorization` header with every call.
#[derive(Clone)]
pub struct Account {
    client: AccountServiceClient<Channel>,
    authorization: Option<String>,
}

impl Account {
    /// Calls with `authorization: Bearer <access_token>`.
    pub fn new(app: &TestApp, access_token: &str) -> Self {
        Self::with_header(app, Some(&format!("Bearer {access_token}")))
    }

    /// Calls with this `authorization` header, or none.
    pub fn with_header(app: &TestApp, authorization: Option<&str>) -> Self {
        Self::on(channel(app, None), authorization)
    }

    /// Calls over a channel of the test's own.
    pub fn on(channel: Channel, authorization: Option<&str>) -> Self {
        Self {
            client: AccountServiceClient::new(channel),
            authorization: authorization.map(str::to_owned),
        }
    }

    fn authed<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("ascii header"));
        }
        request
    }

    pub async fn profile(&self) -> Result<pb::User, Status> {
        let request = self.authed(pb::GetProfileRequest {});
        let answer = self.client.clone().get_profile(request).await?;
        Ok(answer.into_inner().user.expect("a user"))
    }

    pub async fn update_name(&self, name: &str) -> Result<pb::User, Status> {
        let request = self.authed(pb::UpdateProfileRequest { name: name.into() });
        let answer = self.client.clone().update_profile(request).await?;
        Ok(answer.into_inner().user.expect("a user"))
    }

    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), Status> {
        let request = self.authed(pb::ChangePasswordRequest {
            current_password: current.into(),
            new_password: new.into(),
        });
        self.client.clone().change_password(request).await?;
        Ok(())
    }

    pub async fn sessions(&self) -> Result<Vec<pb::Session>, Status> {
        let request = self.authed(pb::ListSessionsRequest {});
        let answer = self.client.clone().list_sessions(request).await?;
        Ok(answer.into_inner().sessions)
    }

    pub async fn revoke(&self, session_id: &str) -> Result<(), Status> {
        let request = self.authed(pb::RevokeSessionRequest {
            session_id: session_id.into(),
        });
        self.client.clone().revoke_session(request).await?;
        Ok(())
    }

    pub async fn begin_totp(&self) -> Result<pb::BeginTotpEnrollmentResponse, Status> {
        let request = self.authed(pb::BeginTotpEnrollmentRequest {});
        Ok(self
            .client
            .clone()
            .begin_totp_enrollment(request)
            .await?
            .into_inner())
    }

    /// ConfirmTotp: the recovery codes.
    pub async fn confirm_totp(&self, code: &str) -> Result<Vec<String>, Status> {
        let request = self.authed(pb::ConfirmTotpRequest { code: code.into() });
        let answer = self.client.clone().confirm_totp(request).await?;
        Ok(answer.into_inner().recovery_codes)
    }

    pub async fn disable_totp(&self, password: &str, code: &str) -> Result<(), Status> {
        let request = self.authed(pb::DisableTotpRequest {
            password: password.into(),
            code: code.into(),
        });
        self.client.clone().disable_totp(request).await?;
        Ok(())
    }

    /// RegenerateRecoveryCodes: the new codes.
    pub async fn regenerate(&self, password: &str, code: &str) -> Result<Vec<String>, Status> {
        let request = self.authed(pb::RegenerateRecoveryCodesRequest {
            password: password.into(),
            code: code.into(),
        });
        let answer = self
            .client
            .clone()
            .regenerate_recovery_codes(request)
            .await?;
        Ok(answer.into_inner().recovery_codes)
    }

    /// Every RPC once, with harmless input, and the code of each answer.
    pub async fn every_call(&self) -> Vec<(&'static str, Code)> {
        vec![
            ("GetProfile", code(self.profile().await)),
            ("UpdateProfile", code(self.update_name("Someone").await)),
            (
                "ChangePassword",
                code(
                    self.change_password(crate::helpers::PASSWORD, "a brand new passphrase")
                        .await,
                ),
            ),
            ("ListSessions", code(self.sessions().await)),
            (
                "RevokeSession",
                code(self.revoke(&uuid::Uuid::now_v7().to_string()).await),
            ),
            ("BeginTotpEnrollment", code(self.begin_totp().await)),
            ("ConfirmTotp", code(self.confirm_totp("123456").await)),
            (
                "DisableTotp",
                code(self.disable_totp(crate::helpers::PASSWORD, "").await),
            ),
            (
                "RegenerateRecoveryCodes",
                code(self.regenerate(crate::helpers::PASSWORD, "").await),
            ),
        ]
    }
}

/// A lazy channel to the gRPC port, sending `user_agent` if given.
pub fn channel(app: &TestApp, user_agent: Option<&str>) -> Channel {
    let mut endpoint = Endpoint::from_shared(format!("http://{}", app.grpc_addr)).unwrap();
    if let Some(user_agent) = user_agent {
        endpoint = endpoint.user_agent(user_agent).unwrap();
    }
    endpoint.connect_lazy()
}

/// The `sid` claim of an access token (read, not checked).
pub fn session_of(access_token: &str) -> String {
    let (_, claims) = crate::tokens::parts(access_token);
    claims["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_profile_is_the_caller_and_the_name_changes_as_at_signup() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("Ada@Example.com").await;
    let other = app.signup_verified_login("bob@example.com").await;
    let ada = Account::new(&app, &tokens.access_token);

    let profile = ada.profile().await.unwrap();
    assert_eq!(
        Some(&profile),
        tokens.user.as_ref(),
        "the user of the login"
    );
    assert_eq!(profile.email, "ada@example.com");
    assert!(profile.email_verified);
    assert!(profile.created_at.is_some());

    let renamed = ada.update_name("  Ada Lovelace  ").await.unwrap();
    assert_eq!(renamed.name, "Ada Lovelace", "trimmed, as at signup");
    assert_eq!(
        (renamed.id.as_str(), renamed.email.as_str()),
        (profile.id.as_str(), profile.email.as_str())
    );
    assert_eq!(ada.profile().await.unwrap().name, "Ada Lovelace");
    let bob = Account::new(&app, &other.access_token);
    assert_eq!(
        bob.profile().await.unwrap().name,
        "Test User",
        "bob is untouched"
    );

    for bad in [
        String::new(),
        " \t ".to_owned(),
        "n".repeat(201),
        "Ada\u{7}".to_owned(),
        "Ada\nLovelace".to_owned(),
        "Ada\u{202E}nimda".to_owned(),
        "Ada\u{200B}".to_owned(),
        // Far past any name, well under the message limit: refused by the rule, not the wire.
        "n".repeat(1024 * 1024),
    ] {
        let refused = ada.update_name(&bad).await;
        assert_eq!(
            violations(refused),
            ["name"],
            "{:?}",
            &bad[..bad.len().min(20)]
        );
    }
    // Past the message limit the wire refuses it before any handler runs.
    assert_eq!(
        code(ada.update_name(&"n".repeat(5 * 1024 * 1024)).await),
        Code::ResourceExhausted
    );
    assert_eq!(
        ada.profile().await.unwrap().name,
        "Ada Lovelace",
        "nothing was changed by the refusals"
    );
}

#[tokio::test]
async fn health_serves_the_account_service_and_says_not_serving_at_shutdown() {
    let app = TestApp::spawn_with(&["--shutdown-grace", "2s"]).await;
    let mut health = HealthClient::new(channel(&app, None));
    let name = "auth.v1.AccountService";
    let check = health
        .check(HealthCheckRequest {
            service: name.into(),
        })
        .await
        .expect("the name is known to health")
        .into_inner();
    assert_eq!(check.status(), ServingStatus::Serving);

    let mut watch = health
        .watch(HealthCheckRequest {
            service: name.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let stopping = tokio::spawn(app.stop());
    let next = tokio::time::timeout(Duration::from_secs(1), watch.message())
        .await
        .expect("NOT_SERVING pushed at once")
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    stopping.await.unwrap();
}

#[tokio::test]
async fn reflection_describes_the_account_service_and_its_methods() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn().await;
    let mut client = ServerReflectionClient::new(channel(&app, None));
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let outbound = tokio_stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "auth.v1.AccountService".into(),
        )),
    ]);
    let mut answers = client
        .server_reflection_info(outbound)
        .await
        .expect("reflection needs no token")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "auth.v1.AccountService"),
        "{names:?}"
    );

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a file descriptor");
    };
    use prost::Message;
    let file = prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].as_slice())
        .unwrap();
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "AccountService")
        .expect("AccountService in its file");
    let methods: Vec<(&str, &str, &str)> = service
        .method
        .iter()
        .map(|m| (m.name(), m.input_type(), m.output_type()))
        .collect();
    assert_eq!(
        methods,
        [
            (
                "GetProfile",
                ".auth.v1.GetProfileRequest",
                ".auth.v1.GetProfileResponse"
            ),
            (
                "UpdateProfile",
                ".auth.v1.UpdateProfileRequest",
                ".auth.v1.UpdateProfileResponse"
            ),
            (
                "ChangePassword",
                ".auth.v1.ChangePasswordRequest",
                ".auth.v1.ChangePasswordResponse"
            ),
            (
                "ListSessions",
                ".auth.v1.ListSessionsRequest",
                ".auth.v1.ListSessionsResponse"
            ),
            (
                "RevokeSession",
                ".auth.v1.RevokeSessionRequest",
                ".auth.v1.RevokeSessionResponse"
            ),
            (
                "BeginTotpEnrollment",
                ".auth.v1.BeginTotpEnrollmentRequest",
                ".auth.v1.BeginTotpEnrollmentResponse"
            ),
            (
                "ConfirmTotp",
                ".auth.v1.ConfirmTotpRequest",
                ".auth.v1.ConfirmTotpResponse"
            ),
            (
                "DisableTotp",
                ".auth.v1.DisableTotpRequest",
                ".auth.v1.DisableTotpResponse"
            ),
            (
                "RegenerateRecoveryCodes",
                ".auth.v1.RegenerateRecoveryCodesRequest",
                ".auth.v1.RegenerateRecoveryCodesResponse"
            ),
        ]
    );
}

#[tokio::test]
async fn a_refused_call_is_counted_as_unauthenticated() {
    let mut app = TestApp::spawn().await;
    let tokens = app.signup_verified_login("counted@example.com").await;
    let series = |code: &str| {
        format!(
            "grpc_server_handled_total{{grpc_type=\"unary\",grpc_service=\"auth.v1.AccountService\",\
             grpc_method=\"GetProfile\",grpc_code=\"{code}\"}}"
        )
    };
    let count = |body: &str, code: &str| -> f64 {
        let wanted = series(code);
        body.lines()
            .find_map(|line| line.strip_prefix(&wanted))
            .unwrap_or_else(|| panic!("no {wanted} in:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    };
    let before = app.http_get("/metrics").await.body;
    assert_eq!(
        count(&before, "UNAUTHENTICATED"),
        0.0,
        "every series exists from the start"
    );

    let nobody = Account::new(&app, "not-a-token");
    assert_eq!(code(nobody.profile().await), Code::Unauthenticated);
    assert_eq!(code(nobody.profile().await), Code::Unauthenticated);
    Account::new(&app, &tokens.access_token)
        .profile()
        .await
        .unwrap();

    let after = app.http_get("/metrics").await.body;
    assert_eq!(count(&after, "UNAUTHENTICATED"), 2.0);
    assert_eq!(count(&after, "OK"), 1.0);
}
