//! Signing key rows. What the rows mean (which key signs, which are published, when one is
//! retired) is the key life cycle's (`keys`): the store reads rows and applies the
//! changes it decides, under one lock, so replicas and the CLI change keys one at a time.

use crate::db::entity::signing_key;
use crate::db::{SIGNING_KEY_LOCK, Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// A key as stored, without its private half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub kid: String,
    pub algorithm: String,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// Id of the key-encryption key that sealed the private half; `None`: in the clear.
    pub sealed_with: Option<String>,
}

/// A key as stored: its private half as the row holds it (sealed or not; empty once retired).
#[derive(Clone)]
pub struct KeyRow {
    pub meta: KeyMeta,
    pub private_key: Vec<u8>,
}

/// One change to the keys, decided by the life cycle.
pub enum KeyChange {
    Insert {
        meta: KeyMeta,
        private_key: Vec<u8>,
        public_key: Vec<u8>,
    },
    /// The key signs from `at` (a `next` key brought forward).
    Activate { kid: String, at: DateTime<Utc> },
    /// The key leaves the JWK Set and loses its private half.
    Retire { kid: String, at: DateTime<Utc> },
    /// The private half sealed anew (or stored in the clear: `sealed_with` `None`).
    Reseal {
        kid: String,
        private_key: Vec<u8>,
        sealed_with: Option<String>,
    },
}

impl Store {
    /// Every key, retired ones too, in the order they were made to sign.
    pub async fn signing_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        read_rows(&self.db).await
    }

    /// The keys that are not retired, without their private halves: what a replica compares
    /// with the key ring it holds, cheaply, on every reload tick.
    /// In `kid` order (byte order, whatever the database's collation).
    pub async fn live_signing_keys(&self) -> Result<Vec<KeyMeta>, StoreError> {
        let rows = signing_key::Entity::find()
            .select_only()
            .columns([
                signing_key::Column::Kid,
                signing_key::Column::Algorithm,
                signing_key::Column::CreatedAt,
                signing_key::Column::ActivatesAt,
                signing_key::Column::RetiredAt,
                signing_key::Column::SealedWith,
            ])
            .filter(signing_key::Column::RetiredAt.is_null())
            .into_tuple::<(
                String,
                String,
                DateTime<Utc>,
                Option<DateTime<Utc>>,
                Option<DateTime<Utc>>,
                Option<String>,
            )>()
            .all(&self.db)
            .await?;
        let mut keys: Vec<KeyMeta> = rows
            .into_iter()
            .map(
                |(kid, algorithm, created_at, activates_at, retired_at, sealed_with)| KeyMeta {
                    kid,
                    algorithm,
                    created_at,
                    activates_at: activates_at.unwrap_or(created_at),
                    retired_at,
                    sealed_with,
                },
            )
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        Ok(keys)
    }

    /// Reads every key and applies what `decide` makes of them, as one step that replicas and
    /// the CLI take in turn (PostgreSQL: an advisory lock; SQLite: the write lock, taken
    /// first). Nothing is written when `decide` fails.
    pub async fn change_signing_keys<T>(
        &self,
        decide: impl FnOnce(&[KeyRow]) -> anyhow::Result<(Vec<KeyChange>, T)>,
    ) -> anyhow::Result<T> {
        let txn = self.key_lock().await?;
        let rows = read_rows(&txn).await?;
        let (changes, outcome) = decide(&rows)?;
        if changes.is_empty() {
            txn.rollback().await.map_err(StoreError::from)?;
            return Ok(outcome);
        }
        for change in changes {
            apply(&txn, change).await?;
        }
        txn.commit().await.map_err(StoreError::from)?;
        Ok(outcome)
    }

    async fn key_lock(&self) -> Result<DatabaseTransaction, StoreError> {
        if let Some(locked) = self.exclusive(SIGNING_KEY_LOCK).await? {
            return Ok(locked);
        }
        let txn = self.begin().await?;
        // SQLite: a write first takes the database's write lock for the whole step.
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::Kid,
                Expr::col(signing_key::Column::Kid),
            )
            .filter(signing_key::Column::Kid.eq(""))
            .exec(&txn)
            .await?;
        Ok(txn)
    }
}

async fn read_rows<C: ConnectionTrait>(db: &C) -> Result<Vec<KeyRow>, StoreError> {
    let rows = signing_key::Entity::find()
        .order_by_asc(signing_key::Column::ActivatesAt)
        .order_by_asc(signing_key::Column::CreatedAt)
        .order_by_asc(signing_key::Column::Kid)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| KeyRow {
            meta: KeyMeta {
                activates_at: row.activates_at.unwrap_or(row.created_at),
                kid: row.kid,
                algorithm: row.algorithm,
                created_at: row.created_at,
                retired_at: row.retired_at,
                sealed_with: row.sealed_with,
            },
            private_key: row.private_key,
        })
        .collect())
}

async fn apply(txn: &DatabaseTransaction, change: KeyChange) -> Result<(), StoreError> {
    match change {
        KeyChange::Insert {
            meta,
            private_key,
            public_key,
        } => {
            signing_key::Entity::insert(signing_key::ActiveModel {
                kid: Set(meta.kid),
                algorithm: Set(meta.algorithm),
                private_key: Set(private_key),
                public_key: Set(public_key),
                created_at: Set(meta.created_at),
                activates_at: Set(Some(meta.activates_at)),
                retired_at: Set(meta.retired_at),
                sealed_with: Set(meta.sealed_with),
            })
            .exec_without_returning(txn)
            .await?;
        }
        KeyChange::Activate { kid, at } => {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::ActivatesAt, Expr::value(at))
                .filter(signing_key::Column::Kid.eq(kid))
                .exec(txn)
                .await?;
        }
        KeyChange::Retire { kid, at } => {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::RetiredAt, Expr::value(at))
                .col_expr(
                    signing_key::Column::PrivateKey,
                    Expr::value(Vec::<u8>::new()),
                )
                .col_expr(
                    signing_key::Column::SealedWith,
                    Expr::value(Option::<String>::None),
                )
                .filter(signing_key::Column::Kid.eq(kid))
                .filter(signing_key::Column::RetiredAt.is_null())
                .exec(txn)
                .await?;
        }
        KeyChange::Reseal {
            kid,
            private_key,
            sealed_with,
        } => {
            signing_key::Entity::update_many()
                .col_expr(signing_key::Column::PrivateKey, Expr::value(private_key))
                .col_expr(signing_key::Column::SealedWith, Expr::value(sealed_with))
                .filter(signing_key::Column::Kid.eq(kid))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}
