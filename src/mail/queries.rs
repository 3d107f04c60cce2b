use crate::db::entity::mail_outbox;
use crate::db::{Store, StoreError};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// A mail to send: what the outbox holds until the worker delivers it.
#[derive(Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Mail {
    // The body holds a one-time link: show who and what, never the link.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A mail waiting in the outbox.
pub struct QueuedMail {
    pub id: uuid::Uuid,
    pub mail: Mail,
    pub attempts: i32,
}

impl Store {
    /// Queues a mail inside the caller's transaction, so it exists exactly when its cause does.
    pub(crate) async fn enqueue_mail<C: ConnectionTrait>(
        db: &C,
        mail: &Mail,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        mail_outbox::Entity::insert(mail_outbox::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            recipient: Set(mail.to.clone()),
            subject: Set(mail.subject.clone()),
            body: Set(mail.body.clone()),
            created_at: Set(now),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
        })
        .exec_without_returning(db)
        .await?;
        Ok(())
    }

    /// Queues a mail that has no other write to go with.
    pub async fn queue_mail(&self, mail: &Mail, now: DateTime<Utc>) -> Result<(), StoreError> {
        Self::enqueue_mail(&self.db, mail, now).await?;
        self.mail_committed();
        Ok(())
    }

    /// Tells the outbox worker that a queued mail is committed, so it goes out at once. Every
    /// method that queues a mail calls this after its commit; a wake-up given while the worker
    /// is busy is kept for its next wait.
    pub(crate) fn mail_committed(&self) {
        self.outbox.notify_one();
    }

    /// Waits until a mail has been queued since the last wait (for the outbox worker).
    pub async fn mail_queued(&self) {
        self.outbox.notified().await;
    }

    /// Mails whose next attempt is due, oldest first.
    pub async fn due_mails(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let rows = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| QueuedMail {
                id: row.id,
                mail: Mail {
                    to: row.recipient,
                    subject: row.subject,
                    body: row.body,
                },
                attempts: row.attempts,
            })
            .collect())
    }

    /// Takes a mail for one delivery attempt until `lease_until`: counts the attempt and hides
    /// the row from other workers (other replicas too). `false` if another worker took it first.
    pub async fn claim_mail(
        &self,
        mail: &QueuedMail,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let claimed = mail_outbox::Entity::update_many()
            .col_expr(
                mail_outbox::Column::Attempts,
                Expr::value(mail.attempts.saturating_add(1)),
            )
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(lease_until))
            .filter(mail_outbox::Column::Id.eq(mail.id))
            .filter(mail_outbox::Column::Attempts.eq(mail.attempts))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// A delivered (or undeliverable) mail leaves the outbox at once: its body holds a one-time
    /// link.
    pub async fn remove_mail(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        mail_outbox::Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(())
    }

    /// Schedules another attempt and remembers why this one failed.
    pub async fn mail_failed(
        &self,
        id: uuid::Uuid,
        retry_at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(retry_at))
            .col_expr(
                mail_outbox::Column::LastError,
                Expr::value(error.to_owned()),
            )
            .filter(mail_outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// When the earliest queued mail is due, if any is queued.
    pub async fn next_mail_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = mail_outbox::Entity::find()
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .one(&self.db)
            .await?;
        Ok(next.map(|row| row.next_attempt_at))
    }

    /// Mails not yet delivered.
    pub async fn queued_mail_count(&self) -> Result<u64, StoreError> {
        Ok(mail_outbox::Entity::find().count(&self.db).await?)
    }
}
