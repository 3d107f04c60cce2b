//! The habits table in SQLite, through SeaORM. Every query is scoped to one user: the user id is
//! part of each `WHERE`, so no code path can read or delete another user's rows.

use crate::input::NewHabit;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Schema, Set,
};
use std::time::Duration;
use uuid::Uuid;

/// How many habits `ListHabits` returns at most: the newest.
pub const LIST_LIMIT: u64 = 1000;

/// The `habits` table.
pub mod habit {
    use sea_orm::entity::prelude::*;

    /// One habit of one user.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "habits")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The `sub` of the access token that created it.
        #[sea_orm(indexed)]
        pub user_id: Uuid,
        pub name: String,
        pub description: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A stored habit.
pub type Habit = habit::Model;

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is busy or gone: the caller may retry.
    #[error("database unavailable")]
    Unavailable(#[source] DbErr),
    #[error("database query failed")]
    Query(#[source] DbErr),
}

impl From<DbErr> for StoreError {
    fn from(err: DbErr) -> Self {
        use sea_orm::{RuntimeErr, sqlx};
        let outage = match &err {
            DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
                matches!(
                    e.as_ref(),
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || e
                    .as_database_error()
                    .and_then(|db| db.code())
                    // SQLITE_BUSY and SQLITE_LOCKED, with their extended codes.
                    .is_some_and(|code| matches!(&*code, "5" | "6" | "261" | "262" | "517" | "773"))
            }
            _ => false,
        };
        if outage {
            Self::Unavailable(err)
        } else {
            Self::Query(err)
        }
    }
}

/// The habits database.
#[derive(Clone)]
pub struct HabitStore {
    db: DatabaseConnection,
}

impl HabitStore {
    /// Connects and creates the table and its index if they are missing. A simple service with
    /// one table needs no migration history yet; the first column change would bring one.
    pub async fn open(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(8)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(5))
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        let schema = Schema::new(db.get_database_backend());
        db.execute(
            schema
                .create_table_from_entity(habit::Entity)
                .if_not_exists(),
        )
        .await?;
        for mut index in schema.create_index_from_entity(habit::Entity) {
            db.execute(index.if_not_exists()).await?;
        }
        Ok(Self { db })
    }

    /// Stores a new habit of `user_id`.
    pub async fn create(&self, user_id: Uuid, new: &NewHabit) -> Result<Habit, StoreError> {
        let row = habit::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            name: Set(new.name().to_owned()),
            description: Set(new.description().to_owned()),
            created_at: Set(now()),
        };
        Ok(row.insert(&self.db).await?)
    }

    /// The newest habits of `user_id`, newest first, at most [`LIST_LIMIT`].
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<Habit>, StoreError> {
        Ok(habit::Entity::find()
            .filter(habit::Column::UserId.eq(user_id))
            .order_by_desc(habit::Column::CreatedAt)
            // Ids are UUIDv7, ordered by time: they break ties within one clock tick.
            .order_by_desc(habit::Column::Id)
            .limit(LIST_LIMIT)
            .all(&self.db)
            .await?)
    }

    /// Deletes habit `id` if it is one of `user_id`'s; whether it was.
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let result = habit::Entity::delete_many()
            .filter(habit::Column::Id.eq(id))
            .filter(habit::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
    }

    /// Closes the pool, so the SQLite file is released.
    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// Now, to the microsecond: what the database keeps, so a habit reads back as it was returned.
fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(dir: &tempfile::TempDir) -> HabitStore {
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("habits.db").display()
        );
        HabitStore::open(&url).await.unwrap()
    }

    fn habit(name: &str) -> NewHabit {
        NewHabit::parse(name, "").unwrap()
    }

    #[tokio::test]
    async fn every_query_is_scoped_to_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let read = store.create(ada, &habit("Read")).await.unwrap();
        store.create(bob, &habit("Run")).await.unwrap();

        let listed = store.list(ada).await.unwrap();
        assert_eq!(listed, vec![read.clone()]);
        assert!(
            !store.delete(bob, read.id).await.unwrap(),
            "bob deleted ada's habit"
        );
        assert_eq!(store.list(ada).await.unwrap().len(), 1);
        assert!(store.delete(ada, read.id).await.unwrap());
        assert!(!store.delete(ada, read.id).await.unwrap(), "deleted twice");
        assert!(store.list(ada).await.unwrap().is_empty());
        assert_eq!(store.list(bob).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn reopening_keeps_the_table_and_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let user = Uuid::now_v7();
        let store = open(&dir).await;
        let kept = store.create(user, &habit("Stretch")).await.unwrap();
        store.close().await;
        let store = open(&dir).await;
        assert_eq!(store.list(user).await.unwrap(), vec![kept]);
    }

    #[tokio::test]
    async fn the_list_is_the_newest_first_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir).await;
        let user = Uuid::now_v7();
        let total = LIST_LIMIT + 5;
        let start = now();
        // Older rows get later ids, so the order must come from created_at, not the id.
        let rows: Vec<Habit> = (0..total)
            .map(|n| Habit {
                id: Uuid::from_u128(u128::from(total - n)),
                user_id: user,
                name: format!("h{n}"),
                description: String::new(),
                created_at: start + chrono::Duration::milliseconds(i64::try_from(n).unwrap()),
            })
            .collect();
        habit::Entity::insert_many(rows.iter().cloned().map(habit::ActiveModel::from))
            .exec(&store.db)
            .await
            .unwrap();
        let listed = store.list(user).await.unwrap();
        assert_eq!(listed.len(), usize::try_from(LIST_LIMIT).unwrap());
        let newest: Vec<Habit> = rows.into_iter().rev().take(listed.len()).collect();
        assert_eq!(listed, newest);
    }
}
