//! The `habits` binary: settings from the environment, logs to stdout, serve until SIGTERM or
//! Ctrl-C.
//!
//! Exit codes: 0 stopped cleanly (or `--help` printed), 1 failed while starting or running (the
//! cause is in the log), 2 bad settings or arguments (one line per problem on stderr, naming the
//! variable).

use habits::{App, Settings};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "--help" || arg == "-h" {
            print!("{}", habits::settings::USAGE);
            return ExitCode::SUCCESS;
        }
        eprintln!(
            "habits: takes no arguments (got {arg:?}); settings are environment variables, see --help"
        );
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(err) => {
            for line in err.to_string().lines() {
                eprintln!("habits: {line}");
            }
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let result = match App::build(settings).await {
        Ok(app) => app.run_until(habits::shutdown_signal()).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{}", error_chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
