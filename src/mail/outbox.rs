//! The outbox worker: delivers queued mails, retries failures with exponential backoff, and
//! wakes at once when a request queues a mail.

use super::queries::{Mail, QueuedMail};
use crate::db::Store;
use crate::metrics::Metrics;
use chrono::Utc;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Mails taken per round.
const BATCH: u64 = 32;
/// How long a claimed mail is hidden from other workers while one delivery attempt runs.
const LEASE: Duration = Duration::from_secs(120);
/// Bound on one SMTP conversation (lettre's own timeout covers only the connect).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry delays double from the first to the last.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);
/// Even with nothing queued, look again this often (another replica may have queued a mail).
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Why a delivery attempt failed.
enum SendError {
    /// This mail can never be delivered as it is: the server refused the recipient for good
    /// (5xx with a 5.1.x status, such as an unknown user) or the address cannot be written into
    /// a message.
    Permanent(anyhow::Error),
    /// Worth another try later: connection refused, timeout, a 4xx answer.
    Transient(anyhow::Error),
}

/// Where mails go.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// AUTHD_MAIL_TO_LOG (development): each mail, with its link, is written to the log instead.
    Log,
}

/// What became of a mail that left the outbox.
enum Delivered {
    /// Accepted by the SMTP server.
    Sent,
    /// Written to the log (AUTHD_MAIL_TO_LOG): nobody received it.
    Logged,
}

impl Transport {
    /// SMTP for a URL such as `smtp://127.0.0.1:2525` or `smtps://user:pass@host`; the log only
    /// when asked for (the settings check refuses neither and both).
    pub fn from_settings(url: Option<&SecretString>, mail_to_log: bool) -> anyhow::Result<Self> {
        match url {
            Some(url) => Ok(Self::Smtp(Self::smtp(url).map_err(|why| {
                crate::config::SettingsError::new(format!("AUTHD_SMTP_URL: {why}"))
            })?)),
            None if mail_to_log => Ok(Self::Log),
            None => Err(crate::config::SettingsError::new(
                "no way to send mail: set AUTHD_SMTP_URL or AUTHD_MAIL_TO_LOG=true",
            )
            .into()),
        }
    }

    fn smtp(url: &SecretString) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
            .map_err(|e| crate::config::smtp_url_problem(&e, url))?;
        Ok(transport.timeout(Some(Duration::from_secs(10))).build())
    }

    async fn send(&self, from: &Mailbox, mail: &Mail) -> Result<Delivered, SendError> {
        match self {
            Self::Log => {
                tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.body, "mail (not sent: AUTHD_MAIL_TO_LOG)");
                Ok(Delivered::Logged)
            }
            Self::Smtp(transport) => {
                let permanent =
                    |e: &dyn std::fmt::Display| SendError::Permanent(anyhow::anyhow!("{e}"));
                let to = mail.to.parse::<Mailbox>().map_err(|e| permanent(&e))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(&mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| permanent(&e))?;
                match tokio::time::timeout(SEND_TIMEOUT, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(Delivered::Sent),
                    Ok(Err(e)) if refuses_recipient(&e) => Err(permanent(&e)),
                    Ok(Err(e)) => Err(SendError::Transient(e.into())),
                    Err(_) => Err(SendError::Transient(anyhow::anyhow!(
                        "SMTP conversation timed out"
                    ))),
                }
            }
        }
    }
}

/// Delivers the outbox until told to stop.
pub struct OutboxWorker {
    store: Store,
    transport: Transport,
    from: Mailbox,
    metrics: Arc<Metrics>,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        transport: Transport,
        from: &str,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("AUTHD_MAIL_FROM is not a mailbox: {e}"))?;
        Ok(Self {
            store,
            transport,
            from,
            metrics,
        })
    }

    /// Runs until `shutdown` turns true. The mail being sent then finishes; what is left stays
    /// queued for the next start (or another replica).
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let pause = match self.deliver_due(&shutdown).await {
                Ok(()) => self.until_next_due().await,
                Err(err) => {
                    tracing::warn!(error = %err, "mail outbox round failed; trying again soon");
                    FIRST_RETRY
                }
            };
            tokio::select! {
                _ = self.store.mail_queued() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => break,
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        tracing::debug!("mail outbox worker stopped");
    }

    /// Delivers what is due, stopping between mails once shutdown has begun.
    async fn deliver_due(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        loop {
            let due = self.store.due_mails(Utc::now(), BATCH).await?;
            let full = due.len() as u64 == BATCH;
            for queued in due {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                self.deliver(queued).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn deliver(&self, queued: QueuedMail) -> anyhow::Result<()> {
        let lease_until = Utc::now() + LEASE;
        if !self.store.claim_mail(&queued, lease_until).await? {
            return Ok(()); // another worker has it
        }
        match self.transport.send(&self.from, &queued.mail).await {
            Ok(Delivered::Sent) => {
                self.store.remove_mail(queued.id).await?;
                self.metrics.mail_sent();
                tracing::info!(to = %queued.mail.to, subject = %queued.mail.subject, "mail delivered");
            }
            Ok(Delivered::Logged) => {
                self.store.remove_mail(queued.id).await?;
                self.metrics.mail_logged();
            }
            Err(SendError::Permanent(err)) => {
                // Retrying cannot help; keeping it would only retry it forever.
                self.store.remove_mail(queued.id).await?;
                self.metrics.mail_undeliverable();
                tracing::error!(to = %queued.mail.to, subject = %queued.mail.subject, error = %err, "mail refused for good; dropped");
            }
            Err(SendError::Transient(err)) => {
                let attempt = queued.attempts.saturating_add(1);
                let delay = backoff(attempt);
                let retry_at = Utc::now() + delay;
                self.metrics.mail_failed();
                tracing::warn!(to = %queued.mail.to, attempt, retry_in_secs = delay.as_secs(), error = %err, "mail delivery failed; will retry");
                self.store
                    .mail_failed(queued.id, retry_at, &err.to_string())
                    .await?;
            }
        }
        Ok(())
    }

    async fn until_next_due(&self) -> Duration {
        match self.store.next_mail_due().await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(IDLE_POLL),
            Ok(None) => IDLE_POLL,
            Err(_) => FIRST_RETRY,
        }
    }
}

/// A final answer about this recipient: a 5xx carrying an RFC 3463 addressing status (5.1.x,
/// such as 5.1.1 user unknown). Other 5xx answers (a blocked greeting, rejected credentials, a
/// sender the relay refuses) are about the relay or its settings; once those are fixed every
/// queued mail must still go out, so they are retried like any other failure.
fn refuses_recipient(error: &lettre::transport::smtp::Error) -> bool {
    let text = error.to_string();
    error.is_permanent()
        && text
            .split_once("): ")
            .is_some_and(|(_, reply)| reply.trim_start().starts_with("5.1."))
}

/// 1 s, 2 s, 4 s … up to five minutes.
fn backoff(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    FIRST_RETRY.saturating_mul(1 << exponent).min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(30), MAX_RETRY);
        assert_eq!(backoff(i32::MAX), MAX_RETRY);
    }
}
