//! The signing key settings (algorithm, life cycle, sealing at rest) that `serve` and the
//! `authd keys` commands share, and reading a key-encryption key.

use super::error::SettingsError;
use super::values::parse_duration;
use crate::crypto::keys::SigningAlg;
use crate::crypto::seal::Sealer;
use clap::Args;
use clap::builder::TypedValueParser;
use secrecy::SecretString;
use std::{path::PathBuf, time::Duration};

/// Signing keys: algorithm, life cycle, and sealing at rest. See README, "Signing keys".
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    /// Algorithm of new signing keys (`EdDSA`, `ES256` or `RS256`); a change takes effect at
    /// the next rotation.
    #[arg(
        long,
        env = "AUTHD_SIGNING_ALG",
        default_value = "EdDSA",
        value_parser = clap::builder::PossibleValuesParser::new(SigningAlg::NAMES)
            .map(|name| SigningAlg::from_name(&name).unwrap_or(SigningAlg::EdDSA))
    )]
    pub signing_alg: SigningAlg,
    /// A new key is in the JWK Set this long before it signs: at least as long as verifiers
    /// and sidecars cache the set (Envoy 10 min by default, Istio 20 min).
    #[arg(long, env = "AUTHD_KEY_PUBLISH_LEAD", default_value = "20m", value_parser = parse_duration)]
    pub key_publish_lead: Duration,
    /// Automatic rotation: a new key signs this long after the last one started; `0` = off.
    #[arg(long, env = "AUTHD_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = parse_duration)]
    pub key_rotation_interval: Duration,
    /// How often each replica reads the keys again, so a rotation or retirement made by another
    /// replica or the CLI is in force everywhere within this long.
    #[arg(long, env = "AUTHD_KEY_RELOAD_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub key_reload_interval: Duration,
    /// Seals private keys at rest (AES-256-GCM): 32 bytes as 64 hex digits or base64. Unset:
    /// keys are stored in the clear.
    #[arg(long, env = "AUTHD_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<SecretString>,
    /// A file holding the key-encryption key (for secrets mounted as files).
    #[arg(
        long,
        env = "AUTHD_KEY_ENCRYPTION_KEY_FILE",
        conflicts_with = "key_encryption_key"
    )]
    pub key_encryption_key_file: Option<PathBuf>,
}

impl KeySettings {
    /// The key-encryption key, when one is set.
    pub fn sealer(&self) -> Result<Option<Sealer>, SettingsError> {
        read_sealer(
            self.key_encryption_key.as_ref(),
            self.key_encryption_key_file.as_deref(),
            "AUTHD_KEY_ENCRYPTION_KEY",
        )
    }
}

/// A key-encryption key from a setting or a file named by one; errors name the setting, never
/// the value.
pub fn read_sealer(
    value: Option<&SecretString>,
    file: Option<&std::path::Path>,
    setting: &str,
) -> Result<Option<Sealer>, SettingsError> {
    let text = match (value, file) {
        (Some(value), _) => value.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(|err| {
                SettingsError::new(format!(
                    "{setting}_FILE: cannot read {}: {err}",
                    path.display()
                ))
            })?,
        (None, None) => return Ok(None),
    };
    Sealer::parse(&text)
        .map(Some)
        .map_err(|err| SettingsError::new(format!("{setting}: {err}")))
}
