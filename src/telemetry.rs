//! Logging: `RUST_LOG` filters (default `info`), `AUTHD_LOG_FORMAT=json` gives JSON lines.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing to stdout; a second call (tests) leaves the first in
/// place.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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
}

/// For one-shot commands whose stdout is their answer (`authd keys list --json`): log lines,
/// warnings and up by default, go to stderr.
pub fn init_for_command() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
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
