//! What the in-process benchmarks share: an authd started in this process on a fresh SQLite
//! file (or `AUTHD_BENCH_DATABASE_URL`), with production hash cost and the given extra flags.

use authd::app::Application;
use authd::config::{Cli, Command};
use clap::Parser;
use tonic::transport::Channel;

/// A running in-process authd.
pub struct Bench {
    pub channel: Channel,
    /// `sqlite` or `postgres`, for the report.
    pub backend: &'static str,
    /// The gRPC port, `http://127.0.0.1:…`.
    #[allow(dead_code, reason = "only some benches connect clients of their own")]
    pub url: String,
    database_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Bench {
    pub async fn start(extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let database_url = std::env::var("AUTHD_BENCH_DATABASE_URL").unwrap_or_else(|_| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            )
        });
        Self::start_on(dir, &database_url, extra).await
    }

    /// A second authd (a replica) on the database of `self`.
    #[allow(dead_code, reason = "only some benches run replicas")]
    pub async fn replica(&self, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(tempfile::tempdir()?, &self.database_url, extra).await
    }

    async fn start_on(
        dir: tempfile::TempDir,
        database_url: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let database_url = database_url.to_owned();
        let mut args = vec![
            "authd",
            "serve",
            "--database-url",
            &database_url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            // Benches measure calls, not mail delivery; nothing reads these logs.
            "--mail-to-log",
            "true",
            "--shutdown-grace",
            "0s",
        ];
        args.extend_from_slice(extra);
        let Command::Serve(settings) = Cli::try_parse_from(args)?.command else {
            anyhow::bail!("not a serve command");
        };
        let app = Application::build(*settings).await?;
        let url = format!("http://{}", app.grpc_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(url.clone())?.connect().await?;
        let backend = if database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        Ok(Self {
            channel,
            backend,
            url,
            database_url,
            stop,
            server,
            _dir: dir,
        })
    }

    /// Stops the server and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await?
    }
}
