//! The `authd keys` commands: the key life cycle (`keys`) run once against the
//! database, with one line of outcome on stdout. Running replicas pick the change up at their
//! next key reload (AUTHD_KEY_RELOAD_INTERVAL).

use crate::config::{KeysArgs, KeysCommand, read_sealer};
use crate::crypto::seal::Sealer;
use crate::db::{Store, connect};
use crate::keys::{self, KeyManager, KeyStatus, Retirement, Rotation, key_policy_of};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret;

/// Runs one `authd keys` command.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::NewEncryptionKey => {
            println!("{}", Sealer::generate_text()?.expose_secret());
            Ok(())
        }
        KeysCommand::List { keys, json } => {
            let store = open(&keys).await?;
            let listed = keys::list(&store, keys.access_ttl).await;
            store.close().await;
            print_list(&listed?, json);
            Ok(())
        }
        KeysCommand::Rotate(keys) => {
            let (store, manager) = manage(&keys).await?;
            let rotation = manager.rotate().await;
            store.close().await;
            match rotation? {
                Rotation::Added {
                    kid,
                    algorithm,
                    activates_at,
                } => println!(
                    "added {algorithm} key {kid}: published now, signs from {}",
                    time(activates_at)
                ),
                Rotation::AlreadyPending { kid, activates_at } => println!(
                    "key {kid} is already next (signs from {}): nothing to do",
                    time(activates_at)
                ),
            }
            Ok(())
        }
        KeysCommand::Retire { kid, keys } => {
            // A kid is a thumbprint: base64url, 43 characters. Anything else is not echoed.
            let plausible = (1..=64).contains(&kid.len())
                && kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !plausible {
                anyhow::bail!(
                    "that is not a key id: kids are base64url (A-Z a-z 0-9 - _), as `authd keys \
                     list` shows them"
                );
            }
            let (store, manager) = manage(&keys).await?;
            let retirement = manager.retire(&kid).await;
            store.close().await;
            let reload = keys.keys.key_reload_interval.as_secs_f64();
            match retirement? {
                Retirement::Retired { kid, now_signing } => {
                    println!(
                        "retired key {kid}: gone from the JWK Set; replicas refuse its tokens \
                         within {reload}s"
                    );
                    if let Some(signing) = now_signing {
                        println!("key {signing} signs from now on");
                    }
                }
                Retirement::AlreadyRetired { kid } => {
                    println!("key {kid} was already retired: nothing to do");
                }
            }
            Ok(())
        }
        KeysCommand::Reseal {
            keys,
            old_key_encryption_key,
            old_key_encryption_key_file,
        } => {
            let old = read_sealer(
                old_key_encryption_key.as_ref(),
                old_key_encryption_key_file.as_deref(),
                "AUTHD_OLD_KEY_ENCRYPTION_KEY",
            )?;
            let new = keys.keys.sealer()?;
            let store = open(&keys).await?;
            // The TOTP secrets first: were the signing keys to fail after them, a second run
            // finds the secrets under the new key already and moves on to the keys.
            let moved = async {
                let secrets = crate::mfa::reseal_totp(&store, old.as_ref(), new.as_ref()).await?;
                let keys = keys::reseal(&store, old.as_ref(), new.as_ref()).await?;
                anyhow::Ok((secrets, keys))
            }
            .await;
            store.close().await;
            let (secrets, resealed) = moved?;
            if secrets > 0 {
                println!("{secrets} TOTP secret(s) resealed");
            }
            match &new {
                Some(new) => println!(
                    "{resealed} key(s) now sealed with the key-encryption key {}; restart every \
                     replica with it",
                    new.id()
                ),
                None => println!(
                    "{resealed} key(s) now stored in the clear (AUTHD_KEY_ENCRYPTION_KEY is unset)"
                ),
            }
            Ok(())
        }
    }
}

/// The database, migrated: the commands never migrate it themselves.
async fn open(keys: &KeysArgs) -> anyhow::Result<Store> {
    let store = connect(&keys.database).await?;
    let pending = match store.pending_migrations().await {
        Ok(pending) => pending,
        Err(err) => {
            store.close().await;
            return Err(err.into());
        }
    };
    if !pending.is_empty() {
        store.close().await;
        anyhow::bail!(
            "the database lacks {} of authd's migrations: run `authd migrate` (or start `authd \
             serve`) first",
            pending.len()
        );
    }
    Ok(store)
}

/// The database and the key life cycle on it, as a replica would start it (so the same
/// checks of the key-encryption key apply).
async fn manage(keys: &KeysArgs) -> anyhow::Result<(Store, KeyManager)> {
    let sealer = keys.keys.sealer()?;
    let store = open(keys).await?;
    let policy = key_policy_of(&keys.keys, keys.access_ttl);
    match KeyManager::start(store.clone(), policy, sealer).await {
        Ok(manager) => Ok((store, manager)),
        Err(err) => {
            store.close().await;
            Err(err)
        }
    }
}

fn print_list(keys: &[KeyStatus], json: bool) {
    if json {
        for key in keys {
            let meta = &key.meta;
            let line = serde_json::json!({
                "kid": meta.kid,
                "algorithm": meta.algorithm,
                "state": key.state.name(),
                "created_at": time(meta.created_at),
                "activates_at": time(meta.activates_at),
                "published_until": key.published_until.map(time),
                "retired_at": meta.retired_at.map(time),
                "sealed_with": meta.sealed_with,
            });
            println!("{line}");
        }
        return;
    }
    println!(
        "{:<44}  {:<5}  {:<8}  {:<20}  {:<20}  {:<28}  sealed with",
        "kid", "alg", "state", "created", "signs from", "published until"
    );
    for key in keys {
        let meta = &key.meta;
        let until = match (key.published_until, meta.retired_at) {
            (_, Some(retired)) => format!("retired {}", time(retired)),
            (Some(until), None) => time(until),
            (None, None) => "-".to_owned(),
        };
        println!(
            "{:<44}  {:<5}  {:<8}  {:<20}  {:<20}  {:<28}  {}",
            meta.kid,
            meta.algorithm,
            key.state.name(),
            time(meta.created_at),
            time(meta.activates_at),
            until,
            meta.sealed_with.as_deref().unwrap_or("(in the clear)"),
        );
    }
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
