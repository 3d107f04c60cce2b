//! A server under test: a child process of the harness (authd's release binary or the Node.js
//! peer), its pid for `/proc`, and its output in a log file.

use crate::procfs;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct Server {
    pub name: String,
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
}

impl Server {
    /// Starts `command` with its stdout and stderr in `log_dir/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> anyhow::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let out =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        command
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        let pid = child.id().context("the server has no pid")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            log,
        })
    }

    /// A reader of this server's CPU time, for [`crate::measure::run`].
    pub fn cpu(&self) -> impl Fn() -> anyhow::Result<Duration> + Sync + use<> {
        let pid = self.pid;
        move || procfs::cpu_time(pid)
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        procfs::rss_kib(self.pid)
    }

    /// Fails with the end of the log if the process has exited.
    pub fn still_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            anyhow::bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
