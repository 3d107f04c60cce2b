use super::entity::signing_key;
use super::{Store, StoreError};
use crate::crypto::keys::StoredKey;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

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

    pub async fn insert_signing_key(
        &self,
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
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }
}
