//! Logging: `RUST_LOG` filters (default `info`), `AUTHD_LOG_FORMAT=json` gives JSON lines.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stdout; a second call (tests) leaves the first in
/// place.
pub fn init(format: LogFormat) {
    let (filter, refused) = filter_or("info");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour only for people at a terminal, never into files and log collectors.
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    warn_if_refused(refused);
}

/// The filter `RUST_LOG` gives, or `default` when it is unset or not a filter; with the text and
/// the reason in the second case, so that it can be said once logging works.
fn filter_or(default: &str) -> (EnvFilter, Option<(String, String)>) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(raw) if !raw.trim().is_empty() => match EnvFilter::builder().parse(&raw) {
            Ok(filter) => (filter, None),
            Err(err) => (EnvFilter::new(default), Some((raw, err.to_string()))),
        },
        _ => (EnvFilter::new(default), None),
    }
}

fn warn_if_refused(refused: Option<(String, String)>) {
    if let Some((raw, why)) = refused {
        tracing::warn!(
            rust_log = %raw,
            "RUST_LOG is not a log filter ({why}); logging with the default filter instead"
        );
    }
}

/// For one-shot commands whose stdout is their answer (`authd keys list --json`): log lines,
/// warnings and up by default, go to stderr.
pub fn init_for_command() {
    let (filter, refused) = filter_or("warn");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    warn_if_refused(refused);
}

/// An error and its causes on one line, `outer: cause: root`, leaving out a cause whose text the
/// line already holds (drivers often repeat their source's message in their own).
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[test]
    fn repeated_causes_are_said_once() {
        let root = anyhow::anyhow!("connection refused");
        let driver = root.context("error communicating with database: connection refused");
        let ours = driver.context("connecting to the database postgres://***@db/auth");
        assert_eq!(
            error_chain(&ours),
            "connecting to the database postgres://***@db/auth: error communicating with database: connection refused"
        );
    }
}
