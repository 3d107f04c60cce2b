//! The `authd` binary: parse and check the command line, hand over to the library.
//!
//! Exit codes: 0 done, 1 failed while running (the cause is in the log), 2 bad command line or
//! settings (the message is on stderr, once, naming the variable or flag that was set).

use authd::commands::healthcheck;
use authd::config::{self, CliError, Command, IntrospectClientCommand, LogFormat, SettingsError};
use authd::grpc::client_auth;
use authd::{app, telemetry};
use std::process::ExitCode;

const BAD_SETTINGS: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let loaded = match config::parse_args(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(CliError::Usage(err)) => {
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(BAD_SETTINGS));
        }
        Err(CliError::Invalid(err)) => return bad_settings(&err),
    };
    if let Command::Healthcheck(settings) = &loaded.cli.command {
        // No logging: one line on stderr and exit 1 is what a container runtime shows for a
        // failed check.
        return match healthcheck::run(settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("authd healthcheck: {}", telemetry::error_chain(&err));
                ExitCode::FAILURE
            }
        };
    }
    match &loaded.cli.command {
        Command::Serve(settings) => telemetry::init(settings.log_format),
        Command::Keys(_) | Command::Import(_) => telemetry::init_for_command(),
        _ => telemetry::init(LogFormat::Text),
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let result = match loaded.cli.command {
        Command::Serve(settings) => match app::Application::build(*settings).await {
            Ok(app) => app.run_until(app::shutdown_signal()).await,
            Err(err) => Err(err),
        },
        Command::Migrate(database) => app::migrate(&database).await,
        Command::IntrospectClient(IntrospectClientCommand::New { client_id }) => {
            client_auth::new_credential(&client_id).map(|text| print!("{text}"))
        }
        Command::Keys(command) => authd::commands::keys::run(command).await,
        Command::Import(args) => authd::commands::import::run(*args).await,
        Command::Healthcheck(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<SettingsError>() {
            Some(settings) => bad_settings(settings),
            None => {
                tracing::error!("{}", telemetry::error_chain(&err));
                ExitCode::FAILURE
            }
        },
    }
}

/// Each problem on a line of its own on stderr, and exit code 2.
fn bad_settings(err: &SettingsError) -> ExitCode {
    for line in err.to_string().lines() {
        eprintln!("authd: {line}");
    }
    ExitCode::from(BAD_SETTINGS)
}
