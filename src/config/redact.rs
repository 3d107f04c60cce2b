//! Database and SMTP URLs may carry passwords: these keep them out of logs and error messages.

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret, SecretString};

/// A URL fit for logs and errors: user and password hidden, and any `password` parameter too.
pub fn redact(url: &SecretString) -> String {
    let raw = url.expose_secret();
    let shown = match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &raw[..scheme_end], &raw[at + 1..])
        }
        _ => raw.to_owned(),
    };
    scrub(&shown, url)
}

/// `text` (a driver's error message, say) with every secret part of `url` replaced by `***`:
/// the password of its user-info and the values of `password`-like query parameters, both as
/// written and percent-decoded. Works on URLs too malformed to parse.
pub fn scrub(text: &str, url: &SecretString) -> String {
    let raw = url.expose_secret();
    let mut secrets: Vec<String> = Vec::new();
    if let Some((_, rest)) = raw.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let userinfo = authority
            .rsplit_once('@')
            .map(|(info, _)| info)
            .unwrap_or_default();
        // The password is everything after the first `:` of the user-info; a malformed URL
        // may have an `@` or `/` in it, so take the widest reading too.
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password.to_owned());
        }
        if let Some((_, password)) = rest.rfind('@').and_then(|at| rest[..at].split_once(':')) {
            secrets.push(password.to_owned());
        }
    }
    if let Some((_, query)) = raw.split_once('?') {
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && key.to_ascii_lowercase().contains("password")
            {
                secrets.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = secrets
        .iter()
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    secrets.extend(decoded);
    // Longest first, so a secret that contains another is replaced whole.
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in &secrets {
        out = out.replace(secret.as_str(), "***");
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_credentials() {
        let url = SecretString::from("postgres://app:hunter2@db:5432/auth");
        assert_eq!(redact(&url), "postgres://***@db:5432/auth");
        assert_eq!(
            redact(&SecretString::from("sqlite://a.db")),
            "sqlite://a.db"
        );
    }

    #[test]
    fn scrub_cuts_passwords_out_of_any_text() {
        let url = SecretString::from("postgres://app:p%40ss@db:5x/auth?sslpassword=kp&x=1");
        let text = "bad url postgres://app:p%40ss@db:5x/auth (p@ss) key kp";
        let clean = scrub(text, &url);
        assert!(
            !clean.contains("p%40ss") && !clean.contains("p@ss") && !clean.contains("kp"),
            "{clean}"
        );
        assert_eq!(
            redact(&SecretString::from("postgres://u@h/d?password=secret")),
            "postgres://***@h/d?password=***"
        );
    }

    #[test]
    fn scrub_decodes_escapes_and_keeps_broken_ones_as_written() {
        let url = SecretString::from("postgres://app:caf%C3%A9%zz%4@db/auth");
        let text = "auth failed for caf%C3%A9%zz%4 (café%zz%4)";
        assert_eq!(scrub(text, &url), "auth failed for *** (***)");
    }
}
