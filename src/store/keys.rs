use super::entity::signing_key;
use super::{SIGNING_KEY_LOCK, Store, StoreError};
use crate::crypto::keys::StoredKey;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

/// The only algorithm keys are made for today; the column leaves room for ES256 and RS256.
const ALGORITHM: &str = "EdDSA";

impl Store {
    /// Keys that are not retired, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAt.is_null())
            .filter(signing_key::Column::Algorithm.eq(ALGORITHM))
            .order_by_asc(signing_key::Column::CreatedAt)
            .order_by_asc(signing_key::Column::Kid)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| StoredKey {
                kid: row.kid,
                private_pkcs8_der: row.private_key,
                public_key: row.public_key,
            })
            .collect())
    }

    /// Stores `make()`'s key if no usable key exists yet, as one step that replicas starting
    /// together take in turn, so exactly one key is created. The new key's id if this call
    /// created it.
    pub async fn create_first_signing_key(
        &self,
        make: impl FnOnce() -> anyhow::Result<StoredKey>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<String>> {
        let txn = match self.exclusive(SIGNING_KEY_LOCK).await? {
            Some(locked) => locked,
            None => {
                let txn = self.db.begin().await.map_err(StoreError::from)?;
                // SQLite: a write first takes the database's write lock for the whole check.
                signing_key::Entity::update_many()
                    .col_expr(
                        signing_key::Column::Kid,
                        Expr::col(signing_key::Column::Kid),
                    )
                    .filter(signing_key::Column::Kid.eq(""))
                    .exec(&txn)
                    .await
                    .map_err(StoreError::from)?;
                txn
            }
        };
        let existing = signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAt.is_null())
            .filter(signing_key::Column::Algorithm.eq(ALGORITHM))
            .count(&txn)
            .await
            .map_err(StoreError::from)?;
        if existing > 0 {
            return Ok(None);
        }
        let key = make()?;
        insert(&txn, &key, now).await?;
        txn.commit().await.map_err(StoreError::from)?;
        Ok(Some(key.kid))
    }
}

async fn insert<C: ConnectionTrait>(
    db: &C,
    key: &StoredKey,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    signing_key::Entity::insert(signing_key::ActiveModel {
        kid: Set(key.kid.clone()),
        algorithm: Set(ALGORITHM.to_owned()),
        private_key: Set(key.private_pkcs8_der.clone()),
        public_key: Set(key.public_key.clone()),
        created_at: Set(now),
        retired_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}
