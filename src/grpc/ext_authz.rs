//! `envoy.service.auth.v3.Authorization/Check`: Envoy's (and Istio's) external authorization on
//! authd's gRPC port. The token check is the Introspect use case: a valid access token of a live
//! session lets the request through with the caller's identity in three request headers;
//! anything else is a denial that Envoy turns into HTTP 401. Callers are let in by the same rule
//! as Introspect (`AUTHD_INTROSPECT_CLIENTS` / mTLS).
//!
//! How the identity headers reach the upstream, from Envoy's ext_authz filter source
//! (`source/extensions/filters/http/ext_authz/ext_authz.cc`, `Filter::onComplete`, the same order
//! in every version read, 1.1x to the current one): on OK it first applies `ok_response.headers`
//! (an `OVERWRITE_IF_EXISTS_OR_ADD` entry becomes `setCopy`, which drops *every* value the
//! request had under that name, duplicates included, then adds ours), and only then
//! `headers_to_remove`. A name in `headers_to_remove` would therefore delete the value authd just
//! set: the upstream would get no identity at all. So the three names are overwritten, never
//! listed for removal; the overwrite is what keeps a client-sent `x-authd-user-id` from reaching
//! the upstream. The deprecated `append` field is left unset, which the Envoy versions that
//! still read it (before `append_action`) also take as "overwrite".

use super::client_auth::ClientAuth;
use super::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use super::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    authorization_server::Authorization, check_response::HttpResponse,
};
use super::envoy::r#type::v3::{HttpStatus, StatusCode};
use crate::sessions::{Introspection, Sessions};
use authd_verifier::{AccessClaims, MAX_TOKEN_LEN, Refusal, bearer_value};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

/// The user id (`sub`) of the token, set on the request Envoy lets through.
pub const USER_ID_HEADER: &str = "x-authd-user-id";
/// The session id (`sid`).
pub const SESSION_ID_HEADER: &str = "x-authd-session-id";
/// The email the token names.
pub const EMAIL_HEADER: &str = "x-authd-email";
/// The challenge of every denial (RFC 6750 §3), as the contract has it.
pub const CHALLENGE: &str = r#"Bearer error="invalid_token""#;

/// The longest `authorization` value looked at: the scheme, a space and the longest token the
/// verifier accepts. A longer one is refused before any parsing.
const MAX_AUTHORIZATION: usize = MAX_TOKEN_LEN + "Bearer ".len();

/// The `Check` handler.
pub struct ExtAuthzGrpc {
    service: Arc<Sessions>,
    callers: Arc<ClientAuth>,
}

impl ExtAuthzGrpc {
    pub fn new(service: Arc<Sessions>, callers: Arc<ClientAuth>) -> Self {
        Self { service, callers }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzGrpc {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // A caller that is not let in is an RPC error (Envoy then applies its own
        // failure_mode_allow / status_on_error); a bad token is an answer.
        self.callers.authorize_grpc(&request)?;
        let request = request.into_inner();
        let token = match authorization(&request).and_then(bearer_value) {
            Ok(token) => token,
            Err(refusal) => return Ok(Response::new(deny(&refusal.to_string()))),
        };
        // Only a database outage is an error, and it stays one (UNAVAILABLE): never a 401, which
        // would log the caller out, nor an OK.
        let answer = match self.service.introspect(token).await? {
            Introspection::Active(claims) => allow(&claims),
            Introspection::Inactive => deny("access token not active"),
        };
        Ok(Response::new(answer))
    }
}

/// The one `authorization` value of the request, from `attributes.request.http`: the `headers`
/// map (keys lower-case, duplicates merged by Envoy) or, with `encode_raw_headers`, the
/// `header_map` list (`raw_value`, duplicates kept). Names compare case-insensitively; two
/// values are ambiguous and refused, like an oversized one.
fn authorization(request: &CheckRequest) -> Result<&[u8], Refusal> {
    let Some(http) = request
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
    else {
        return Err(Refusal::Missing);
    };
    let from_map = http
        .headers
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_bytes()));
    let from_list = http.header_map.iter().flat_map(|map| {
        map.headers.iter().map(|h| {
            let value = if h.raw_value.is_empty() {
                h.value.as_bytes()
            } else {
                h.raw_value.as_slice()
            };
            (h.key.as_str(), value)
        })
    });
    let mut values = from_map
        .chain(from_list)
        .filter(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value);
    let value = values.next().ok_or(Refusal::Missing)?;
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION {
        return Err(Refusal::Malformed);
    }
    Ok(value)
}

/// OK, with the identity set on the request.
fn allow(claims: &AccessClaims) -> CheckResponse {
    CheckResponse {
        status: Some(rpc_status(Code::Ok, "")),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers: vec![
                overwrite(USER_ID_HEADER, &claims.sub),
                overwrite(SESSION_ID_HEADER, &claims.sid),
                overwrite(EMAIL_HEADER, &claims.email),
            ],
            // Not the three names: Envoy removes after it sets (see the module docs).
            headers_to_remove: Vec::new(),
            response_headers_to_add: Vec::new(),
        })),
    }
}

/// UNAUTHENTICATED, which Envoy answers with HTTP 401 and the Bearer challenge.
fn deny(message: &str) -> CheckResponse {
    CheckResponse {
        status: Some(rpc_status(Code::Unauthenticated, message)),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: StatusCode::Unauthorized.into(),
            }),
            headers: vec![overwrite("www-authenticate", CHALLENGE)],
            body: String::new(),
        })),
    }
}

/// The header `name: value`, replacing every value the request or answer had under that name.
fn overwrite(name: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
    }
}

fn rpc_status(code: Code, message: &str) -> tonic_types::Status {
    tonic_types::Status {
        code: code.into(),
        message: message.to_owned(),
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::envoy::config::core::v3::HeaderMap;
    use crate::grpc::envoy::service::auth::v3::{AttributeContext, attribute_context};

    fn request(map: &[(&str, &str)], list: &[(&str, &[u8])]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(attribute_context::Request {
                    http: Some(attribute_context::HttpRequest {
                        headers: map
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                        header_map: (!list.is_empty()).then(|| HeaderMap {
                            headers: list
                                .iter()
                                .map(|(k, v)| HeaderValue {
                                    key: (*k).to_owned(),
                                    value: String::new(),
                                    raw_value: v.to_vec(),
                                })
                                .collect(),
                        }),
                    }),
                }),
            }),
        }
    }

    fn token(request: &CheckRequest) -> Result<&str, Refusal> {
        authorization(request).and_then(bearer_value)
    }

    #[test]
    fn the_token_is_read_from_either_header_form_in_any_scheme_case() {
        let map = request(&[("authorization", "bearer abc"), ("x-other", "1")], &[]);
        assert_eq!(token(&map), Ok("abc"));
        let list = request(&[], &[("authorization", b"BEARER  abc ")]);
        assert_eq!(token(&list), Ok("abc"));
        let mixed_case_name = request(&[("Authorization", "Bearer abc")], &[]);
        assert_eq!(token(&mixed_case_name), Ok("abc"));
    }

    #[test]
    fn missing_foreign_ambiguous_and_oversized_values_are_refused() {
        assert_eq!(token(&CheckRequest::default()), Err(Refusal::Missing));
        assert_eq!(token(&request(&[], &[])), Err(Refusal::Missing));
        let basic = request(&[("authorization", "Basic YTpi")], &[]);
        assert_eq!(token(&basic), Err(Refusal::Missing));
        let twice = request(
            &[],
            &[
                ("authorization", b"Bearer a"),
                ("authorization", b"Bearer b"),
            ],
        );
        assert_eq!(token(&twice), Err(Refusal::Malformed));
        let both_forms = request(
            &[("authorization", "Bearer a")],
            &[("authorization", b"Bearer a")],
        );
        assert_eq!(token(&both_forms), Err(Refusal::Malformed));
        let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            token(&request(&[("authorization", &huge)], &[])),
            Err(Refusal::Malformed)
        );
        let binary = request(&[], &[("authorization", b"Bearer \xff\x00")]);
        assert_eq!(token(&binary), Err(Refusal::Malformed));
    }

    #[test]
    fn a_denial_is_unauthenticated_with_401_and_the_challenge() {
        let answer = deny("no");
        assert_eq!(answer.status.as_ref().map(|s| s.code), Some(16));
        let Some(HttpResponse::DeniedResponse(denied)) = answer.http_response else {
            panic!("not a denial")
        };
        assert_eq!(denied.status.map(|s| s.code), Some(401));
        let header = denied.headers[0].header.as_ref().unwrap();
        assert_eq!(
            (header.key.as_str(), header.value.as_str()),
            ("www-authenticate", CHALLENGE)
        );
    }
}
