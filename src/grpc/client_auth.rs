//! Who may call Introspect (and, later, Envoy's `Check`): RFC 7662 §2.1 wants the introspection
//! endpoint to authenticate its callers. A caller is let in by a service credential named in
//! `AUTHD_INTROSPECT_CLIENTS`, sent as `authorization: Basic base64(client_id:secret)` (client
//! authentication as in RFC 6749 §2.3.1), or by a client certificate that mTLS verified. With
//! neither configured the endpoint stays open, as it was.
//!
//! Only the SHA-256 of each secret is configured: secrets are 256 random bits, so a fast hash is
//! enough and no password hashing is needed. Digests are compared in constant time, and an
//! unknown client id costs the same comparison as a known one.

use crate::config::IntrospectSettings;
use crate::crypto::token::{IssuedToken, TokenDigest};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose::STANDARD};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::fmt::Write;
use std::net::SocketAddr;
use subtle::{Choice, ConstantTimeEq};
use tonic::{Request, Status};

/// The setting, as start-up errors name it.
const SETTING: &str = "AUTHD_INTROSPECT_CLIENTS (--introspect-clients)";
/// Longest client id.
const MAX_CLIENT_ID: usize = 64;
/// Longest `authorization` value looked at; a real one is under 150 characters.
const MAX_AUTHORIZATION: usize = 1024;
/// Base64 with or without padding: clients differ.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The configured callers of Introspect.
pub struct ClientAuth {
    /// Client id → SHA-256 of its secret; `None` when the setting is unset.
    clients: Option<HashMap<String, TokenDigest>>,
    /// Client certificates are required by the TLS handshake and verified there.
    mtls: bool,
    /// Compared against when the client id is unknown, so that costs the same; random, so
    /// nothing matches it.
    decoy: TokenDigest,
}

/// Who a let-in caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Neither credentials nor mTLS are configured: anyone may call.
    Anyone,
    /// A client named in `AUTHD_INTROSPECT_CLIENTS`.
    Client(String),
    /// A client whose certificate mTLS verified.
    Certificate,
}

/// Why a caller is refused. The messages go to the caller: they never say whether a client id
/// exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    #[error("client authentication required: send authorization: Basic base64(client_id:secret)")]
    Missing,
    #[error("invalid client credentials")]
    Invalid,
}

impl ClientAuth {
    /// From the setting; `mtls` tells whether the gRPC port requires verified client
    /// certificates. A malformed setting is an error that names it and echoes none of it.
    pub fn from_settings(settings: &IntrospectSettings, mtls: bool) -> anyhow::Result<Self> {
        let clients = settings
            .introspect_clients
            .as_ref()
            .map(|raw| parse_clients(raw.expose_secret()))
            .transpose()?;
        let decoy = IssuedToken::generate()?.digest;
        Ok(Self {
            clients,
            mtls,
            decoy,
        })
    }

    /// Whether anyone may call (nothing configured).
    pub fn is_open(&self) -> bool {
        self.clients.is_none() && !self.mtls
    }

    /// Whether service credentials are configured.
    pub fn has_credentials(&self) -> bool {
        self.clients.is_some()
    }

    /// Lets a gRPC caller in or says why not. The one check every protected RPC calls.
    pub fn authorize<T>(&self, request: &Request<T>) -> Result<Caller, CallerError> {
        let verified_certificate = request.peer_certs().is_some_and(|certs| !certs.is_empty());
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|value| value.as_bytes());
        self.authorize_parts(authorization, verified_certificate)
    }

    /// [`Self::authorize`] as a gRPC status: UNAUTHENTICATED with a short message.
    pub fn authorize_grpc<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.authorize(request).map_err(|err| {
            tracing::info!(reason = ?err, "introspection caller refused");
            Status::unauthenticated(err.to_string())
        })
    }

    /// The check itself, on the `authorization` value (if any) and whether the connection
    /// carries a client certificate that the TLS handshake verified.
    pub fn authorize_parts(
        &self,
        authorization: Option<&[u8]>,
        verified_certificate: bool,
    ) -> Result<Caller, CallerError> {
        if self.is_open() {
            return Ok(Caller::Anyone);
        }
        // Only an mTLS handshake asks for (and verifies) client certificates.
        if self.mtls && verified_certificate {
            return Ok(Caller::Certificate);
        }
        let Some(clients) = &self.clients else {
            return Err(CallerError::Missing);
        };
        let authorization = authorization.ok_or(CallerError::Missing)?;
        let (client_id, secret) = basic_credentials(authorization).ok_or(CallerError::Invalid)?;
        let presented = TokenDigest::of(&secret);
        let (expected, known) = match clients.get(&client_id) {
            Some(digest) => (digest, Choice::from(1)),
            None => (&self.decoy, Choice::from(0)),
        };
        let matches = expected.0.ct_eq(&presented.0) & known;
        if bool::from(matches) {
            Ok(Caller::Client(client_id))
        } else {
            Err(CallerError::Invalid)
        }
    }
}

/// `Basic base64(client_id:secret)` → (client id, secret); `None` for anything else.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    if value.len() > MAX_AUTHORIZATION {
        return None;
    }
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASIC.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (client_id, secret) = decoded.split_once(':')?;
    Some((client_id.to_owned(), secret.to_owned()))
}

/// Parses `id:hex,id:hex`. Errors say which entry is wrong by its position, never its text: a
/// secret pasted in place of its digest must not reach the log.
fn parse_clients(raw: &str) -> anyhow::Result<HashMap<String, TokenDigest>> {
    let mut clients = HashMap::new();
    let entries = raw.split(',').map(str::trim).filter(|e| !e.is_empty());
    for (index, entry) in entries.enumerate() {
        let position = index + 1;
        let (client_id, digest) = entry.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("{SETTING}: entry {position} is not `client_id:sha256-hex`")
        })?;
        if !is_client_id(client_id) {
            anyhow::bail!(
                "{SETTING}: entry {position} has an invalid client id (1 to {MAX_CLIENT_ID} \
                 letters, digits, `.`, `_` or `-`)"
            );
        }
        let digest = parse_digest(digest).ok_or_else(|| {
            anyhow::anyhow!(
                "{SETTING}: entry {position} does not end in 64 hex digits (the SHA-256 of the \
                 secret, as `authd introspect-client new ID` prints it; never the secret itself)"
            )
        })?;
        if clients.insert(client_id.to_owned(), digest).is_some() {
            anyhow::bail!("{SETTING}: entry {position} repeats the client id `{client_id}`");
        }
    }
    if clients.is_empty() {
        anyhow::bail!("{SETTING} is set but names no client; unset it to leave Introspect open");
    }
    Ok(clients)
}

fn is_client_id(id: &str) -> bool {
    (1..=MAX_CLIENT_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_digest(hex: &str) -> Option<TokenDigest> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(TokenDigest(digest))
}

fn to_hex(digest: &TokenDigest) -> String {
    digest
        .0
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// `authd introspect-client new ID`: a fresh secret and what to do with it, as text to print.
/// The secret is shown here once and stored nowhere.
pub fn new_credential(client_id: &str) -> anyhow::Result<String> {
    if !is_client_id(client_id) {
        anyhow::bail!(
            "the client id must be 1 to {MAX_CLIENT_ID} letters, digits, `.`, `_` or `-`"
        );
    }
    let issued = IssuedToken::generate()?;
    let basic = STANDARD.encode(format!("{client_id}:{}", issued.secret));
    Ok(format!(
        "client id: {client_id}\n\
         secret:    {secret}\n\
         \n\
         The secret is shown only now; give it to the calling service, which sends\n  \
         authorization: Basic {basic}\n\
         Add this entry to AUTHD_INTROSPECT_CLIENTS (comma-separated with any others):\n  \
         {client_id}:{digest}\n",
        secret = issued.secret,
        digest = to_hex(&issued.digest),
    ))
}

/// What to warn about at start: Introspect reachable by anyone beyond loopback, or client
/// secrets travelling in clear text.
pub fn exposure_warnings(grpc_addr: SocketAddr, auth: &ClientAuth, tls: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if grpc_addr.ip().is_loopback() {
        return warnings;
    }
    if auth.is_open() {
        warnings.push(format!(
            "Introspect answers anyone who can reach {grpc_addr}: set AUTHD_INTROSPECT_CLIENTS \
             or AUTHD_TLS_CLIENT_CA (RFC 7662 §2.1)"
        ));
    }
    if auth.has_credentials() && !tls {
        warnings.push(format!(
            "Introspect client secrets cross the network in clear text to {grpc_addr}: set \
             AUTHD_TLS_CERT and AUTHD_TLS_KEY"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secrecy::SecretString;

    fn auth(clients: Option<&str>, mtls: bool) -> anyhow::Result<ClientAuth> {
        ClientAuth::from_settings(
            &IntrospectSettings {
                introspect_clients: clients.map(SecretString::from),
            },
            mtls,
        )
    }

    fn basic(id: &str, secret: &str) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))).into_bytes()
    }

    /// A credential as the subcommand makes it: (secret, setting entry).
    fn credential(id: &str) -> (String, String) {
        let out = new_credential(id).unwrap_or_default();
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("secret:"))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let entry = out
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{id}:")))
            .unwrap_or_default()
            .to_owned();
        (secret, entry)
    }

    #[test]
    fn the_printed_entry_admits_the_printed_secret() -> anyhow::Result<()> {
        let (secret, entry) = credential("tls");
        assert_eq!(secret.len(), 43, "256 bits in base64url");
        let (other_secret, other_entry) = credential("other");
        let auth = auth(Some(&format!("{entry}, {other_entry}")), false)?;
        assert_eq!(
            auth.authorize_parts(Some(&basic("tls", &secret)), false),
            Ok(Caller::Client("tls".into()))
        );
        assert_eq!(
            auth.authorize_parts(Some(&basic("other", &other_secret)), false),
            Ok(Caller::Client("other".into()))
        );
        // One client's secret does not open another's id.
        assert_eq!(
            auth.authorize_parts(Some(&basic("tls", &other_secret)), false),
            Err(CallerError::Invalid)
        );
        assert_eq!(
            auth.authorize_parts(Some(&basic("nobody", &secret)), false),
            Err(CallerError::Invalid)
        );
        assert_eq!(auth.authorize_parts(None, false), Err(CallerError::Missing));
        // A certificate counts only where mTLS verifies it.
        assert_eq!(auth.authorize_parts(None, true), Err(CallerError::Missing));
        Ok(())
    }

    #[test]
    fn mtls_alone_admits_verified_certificates_only() -> anyhow::Result<()> {
        let auth = auth(None, true)?;
        assert!(!auth.is_open());
        assert_eq!(auth.authorize_parts(None, true), Ok(Caller::Certificate));
        assert_eq!(auth.authorize_parts(None, false), Err(CallerError::Missing));
        Ok(())
    }

    #[test]
    fn nothing_configured_is_open() -> anyhow::Result<()> {
        let auth = auth(None, false)?;
        assert_eq!(auth.authorize_parts(None, false), Ok(Caller::Anyone));
        Ok(())
    }

    #[test]
    fn basic_variants() {
        let (id, secret) = ("svc", "s3cr:et");
        let encoded = STANDARD.encode(format!("{id}:{secret}"));
        let unpadded = encoded.trim_end_matches('=');
        for value in [
            format!("Basic {encoded}"),
            format!("basic {encoded}"),
            format!("BASIC  {unpadded} "),
        ] {
            assert_eq!(
                basic_credentials(value.as_bytes()),
                Some((id.to_owned(), secret.to_owned())),
                "{value}"
            );
        }
        for value in [
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode([0xff, b':', 0xfe])),
            format!("Basic {}", "A".repeat(MAX_AUTHORIZATION)),
        ] {
            assert_eq!(basic_credentials(value.as_bytes()), None, "{value}");
        }
    }

    #[test]
    fn malformed_settings_name_the_setting_and_echo_nothing() {
        let secret = "q7Vb2m0h5YJzG1xkKcT9aWnR3dLs8fUe4oPiQyNwBvA";
        let digest = "a".repeat(64);
        for raw in [
            secret.to_owned(),
            format!("tls:{secret}"),
            format!("{secret}:{digest}x"),
            format!("tls:{}", "g".repeat(64)),
            format!("bad id:{digest}"),
            format!("tls:{digest},tls:{digest}"),
            " , ".to_owned(),
            String::new(),
        ] {
            let err = match auth(Some(&raw), false) {
                Ok(_) => panic!("`{raw}` must be refused"),
                Err(err) => format!("{err:#}"),
            };
            assert!(err.contains("AUTHD_INTROSPECT_CLIENTS"), "{err}");
            assert!(!err.contains(secret), "{err}");
            assert!(!err.contains(&digest), "{err}");
        }
    }

    #[test]
    fn the_subcommand_refuses_ids_that_break_the_setting() {
        for id in ["", "a:b", "a,b", "a b", &"x".repeat(65)] {
            assert!(new_credential(id).is_err(), "{id}");
        }
    }

    #[test]
    fn warnings_only_beyond_loopback() -> anyhow::Result<()> {
        let (_, entry) = credential("svc");
        let open = auth(None, false)?;
        let creds = auth(Some(&entry), false)?;
        let local: SocketAddr = "127.0.0.1:50051".parse()?;
        let public: SocketAddr = "0.0.0.0:50051".parse()?;
        assert!(exposure_warnings(local, &open, false).is_empty());
        assert_eq!(exposure_warnings(public, &open, true).len(), 1);
        assert_eq!(exposure_warnings(public, &creds, false).len(), 1);
        assert!(exposure_warnings(public, &creds, true).is_empty());
        assert!(exposure_warnings(public, &auth(None, true)?, true).is_empty());
        Ok(())
    }

    proptest! {
        #[test]
        fn garbage_authorization_never_gets_in(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (_, entry) = credential("svc");
            let auth = auth(Some(&entry), false).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(auth.authorize_parts(Some(&raw), false).is_err());
        }
    }
}
