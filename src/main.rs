//! The `authd` binary: parse the command line, hand over to the library.

use authd::config::{Cli, Command, IntrospectClientCommand, LogFormat};
use authd::grpc::client_auth;
use authd::{healthcheck, startup, telemetry};
use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(settings) => {
            telemetry::init(settings.log_format);
            match startup::Application::build(*settings).await {
                Ok(app) => app.run_until(startup::shutdown_signal()).await,
                Err(err) => Err(err),
            }
        }
        Command::Migrate(database) => {
            telemetry::init(LogFormat::Text);
            startup::migrate(&database).await
        }
        Command::IntrospectClient(IntrospectClientCommand::New { client_id }) => {
            client_auth::new_credential(&client_id).map(|text| print!("{text}"))
        }
        Command::Healthcheck(settings) => {
            // One line on stderr and exit 1: what a container runtime shows for a failed check.
            return match healthcheck::run(&settings).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("authd healthcheck: {err:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("authd: {err:#}");
            ExitCode::FAILURE
        }
    }
}
