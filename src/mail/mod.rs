//! Mail: what authd sends (verification and reset links) and how it gets there. Mails are written
//! to an outbox table in the same transaction as their cause, then delivered by a background
//! worker over SMTP, retried with backoff while the server is down, so no mail is lost and no
//! request waits on the mail server.

mod outbox;
pub mod queries;

pub use outbox::{OutboxWorker, Transport};

use queries::Mail;

use std::time::Duration;

/// Writes authd's mails. Links are built from the configured application URL only, never from
/// anything in a request, so a caller cannot point a link at their own host.
#[derive(Debug, Clone)]
pub struct MailComposer {
    app_url: String,
}

impl MailComposer {
    /// Refuses an application URL that would make broken or unsafe links.
    pub fn new(app_url: &str) -> anyhow::Result<Self> {
        let app_url = crate::domain::app_url(app_url).map_err(anyhow::Error::msg)?;
        Ok(Self {
            app_url: app_url.to_owned(),
        })
    }

    pub fn verification(&self, to: &str, token: &str, valid_for: Duration) -> Mail {
        let link = format!("{}/verify-email?token={token}", self.app_url);
        Mail {
            to: to.to_owned(),
            subject: "Verify your email address".to_owned(),
            body: format!(
                "Welcome!\n\nConfirm your email address by opening this link:\n\n{link}\n\n\
                 The link works once and expires in {}.\n\n\
                 If you did not sign up, ignore this mail.\n",
                human(valid_for)
            ),
        }
    }

    pub fn password_reset(&self, to: &str, token: &str, valid_for: Duration) -> Mail {
        let link = format!("{}/reset-password?token={token}", self.app_url);
        Mail {
            to: to.to_owned(),
            subject: "Reset your password".to_owned(),
            body: format!(
                "Someone asked to reset the password of this account.\n\n\
                 Choose a new password by opening this link:\n\n{link}\n\n\
                 The link works once and expires in {}. Resetting signs you out everywhere.\n\n\
                 If it was not you, ignore this mail: your password stays as it is.\n",
                human(valid_for)
            ),
        }
    }

    /// Tells the owner of an address that someone tried to sign up with it (sent instead of an
    /// error when signup enumeration protection is on).
    pub fn signup_attempted(&self, to: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: "Someone tried to sign up with your email address".to_owned(),
            body: format!(
                "Someone tried to create an account with this email address, which already has \
                 one.\n\nIf it was you, log in instead, or choose a new password here:\n\n\
                 {}/forgot-password\n\nIf it was not you, ignore this mail: nothing has changed.\n",
                self.app_url
            ),
        }
    }

    /// Tells a user that their password was changed, so that a change they did not make is
    /// noticed.
    pub fn password_changed(&self, to: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: "Your password was changed".to_owned(),
            body: format!(
                "The password of your account was just changed, and every session was signed \
                 out.\n\nIf it was you, there is nothing to do.\n\nIf it was not you, choose a \
                 new password at once:\n\n{}/forgot-password\n",
                self.app_url
            ),
        }
    }

    /// Tells a user that their password was changed from one of their signed-in sessions
    /// (AccountService ChangePassword), which stays signed in while every other one is ended.
    pub fn password_changed_elsewhere(&self, to: &str) -> Mail {
        Mail {
            to: to.to_owned(),
            subject: "Your password was changed".to_owned(),
            body: format!(
                "The password of your account was just changed from one of your signed-in \
                 sessions, and every other session was signed out.\n\nIf it was you, there is \
                 nothing to do.\n\nIf it was not you, choose a new password at once (that signs \
                 out every session):\n\n{}/forgot-password\n",
                self.app_url
            ),
        }
    }
}

/// `90 minutes`, `24 hours`, `7 days`: how long a link lives, for people.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_come_from_the_app_url() {
        let composer = MailComposer::new("https://app.example/").unwrap_or_else(|e| panic!("{e}"));
        let mail = composer.verification("a@example.com", "TOKEN", Duration::from_secs(86_400));
        assert!(
            mail.body
                .contains("https://app.example/verify-email?token=TOKEN\n"),
            "{}",
            mail.body
        );
        assert!(mail.body.contains("expires in 1 day."));
        let reset = composer.password_reset("a@example.com", "T2", Duration::from_secs(5400));
        assert!(
            reset
                .body
                .contains("https://app.example/reset-password?token=T2\n")
        );
        assert!(reset.body.contains("expires in 90 minutes."));
        assert!(!format!("{reset:?}").contains("T2"));
    }

    #[test]
    fn app_url_must_be_http() {
        for bad in [
            "",
            "app.example",
            "ftp://app.example",
            "https://",
            "https:///path",
            "https://a b",
            "https://a?x=1",
        ] {
            assert!(MailComposer::new(bad).is_err(), "accepted {bad:?}");
        }
        assert!(MailComposer::new("http://localhost:3000").is_ok());
    }
}
