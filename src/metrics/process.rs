//! The standard `process_*` metrics of the Prometheus client libraries, read from `/proc/self`
//! at each scrape. Linux only: elsewhere the files do not exist and the metrics are left out.
//!
//! A reader of four small files, not a crate: `procfs` is well kept, but it is an API for all of
//! /proc (with rustix and linux-raw-sys) where these seven numbers need a few lines of parsing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second of the times in /proc/<pid>/stat. The kernel reports them in USER_HZ,
/// which is 100 on every architecture Linux runs on today (Prometheus' Go procfs assumes the
/// same, rather than calling sysconf).
const USER_HZ: f64 = 100.0;

/// Encodes the process metrics on each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(seconds) = stats.cpu_seconds {
            let metric = ConstCounter::new(seconds);
            metric.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                MetricType::Counter,
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                stats.max_fds,
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(Unit::Seconds),
                stats.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                None,
                stats.threads,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(value) = value {
                ConstGauge::new(value).encode(encoder.encode_descriptor(
                    name,
                    help,
                    unit.as_ref(),
                    MetricType::Gauge,
                )?)?;
            }
        }
        Ok(())
    }
}

/// What /proc/self tells; `None` where a file could not be read or parsed.
#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    start_time_seconds: Option<f64>,
    threads: Option<f64>,
}

impl ProcessStats {
    fn read() -> Self {
        let text = |path: &str| std::fs::read_to_string(path).ok();
        let mut stats = Self::default();
        if let Some(stat) = text("/proc/self/stat") {
            stats.apply_stat(&stat, text("/proc/stat").as_deref().and_then(boot_time));
        }
        stats.resident_bytes = text("/proc/self/status")
            .as_deref()
            .and_then(resident_bytes);
        stats.max_fds = text("/proc/self/limits").as_deref().and_then(max_fds);
        stats.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|entries| entries.count() as f64);
        stats
    }

    /// Fields of /proc/self/stat (proc(5)); the command name in parentheses may itself hold
    /// spaces and parentheses, so the fields are counted from its last `)`.
    fn apply_stat(&mut self, stat: &str, boot_time: Option<f64>) {
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return;
        };
        // rest[0] is field 3 (state).
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            self.cpu_seconds = Some((utime + stime) / USER_HZ);
        }
        self.threads = field(20);
        if let (Some(start), Some(boot)) = (field(22), boot_time) {
            self.start_time_seconds = Some(boot + start / USER_HZ);
        }
        self.virtual_bytes = field(23);
    }
}

/// `btime` of /proc/stat: the boot time, seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of /proc/self/status, given in kB.
fn resident_bytes(status: &str) -> Option<f64> {
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(value * 1024.0)
}

/// The soft limit of `Max open files` in /proc/self/limits; none when unlimited.
fn max_fds(limits: &str) -> Option<f64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        // A command name with spaces and a parenthesis, as a process may give itself.
        let stat = "4242 (authd (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 7 0 \
                    12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0";
        let mut stats = ProcessStats::default();
        stats.apply_stat(stat, Some(1_700_000_000.0));
        assert_eq!(stats.cpu_seconds, Some(3.0));
        assert_eq!(stats.threads, Some(7.0));
        let start = stats.start_time_seconds.unwrap();
        assert!((start - 1_700_000_123.45).abs() < 1e-3, "{start}");
        assert_eq!(stats.virtual_bytes, Some(104_857_600.0));

        let mut garbled = ProcessStats::default();
        garbled.apply_stat("no parenthesis here", Some(1.0));
        assert_eq!(garbled, ProcessStats::default());
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        assert_eq!(
            resident_bytes("Name:\tauthd\nVmRSS:\t    2048 kB\nThreads:\t7\n"),
            Some(2_097_152.0)
        );
        assert_eq!(resident_bytes("Name:\tauthd\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_fds(limits), Some(1024.0));
        assert_eq!(
            max_fds("Max open files            unlimited            unlimited            files"),
            None
        );
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000.0)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read_from_proc() {
        let stats = ProcessStats::read();
        assert!(stats.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(stats.resident_bytes.is_some_and(|b| b > 0.0));
        assert!(stats.virtual_bytes.is_some_and(|b| b > 0.0));
        assert!(stats.open_fds.is_some_and(|n| n >= 3.0));
        assert!(stats.threads.is_some_and(|n| n >= 1.0));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats
                .start_time_seconds
                .is_some_and(|t| t <= now + 1.0 && t > now - 86_400.0 * 365.0),
            "{stats:?}"
        );
    }
}
