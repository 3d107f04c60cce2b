//! What the harness reads of a server process from `/proc`: CPU time (utime + stime, all
//! threads, exited ones included) and resident memory.

use anyhow::{Context, bail};
use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux x86_64 and
/// arm64, the only value the kernel exports to user space there).
const TICKS_PER_SECOND: u64 = 100;

/// The CPU time `pid` has used so far, user and system, over all its threads.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        bail!("/proc/{pid}/stat has no command name");
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime field 15.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .context("/proc/<pid>/stat is too short")?
            .parse::<u64>()
            .context("a /proc/<pid>/stat time is not a number")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_micros(total * 1_000_000 / TICKS_PER_SECOND))
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}
