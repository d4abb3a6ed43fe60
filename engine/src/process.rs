//! The standard Prometheus process metrics (`process_*`, as every official client exports
//! them), read from `/proc/self` at each scrape. On a system without `/proc` they are
//! left out of the document. Also the live tasks of the tokio runtime a scrape runs on
//! (`culvert_tokio_alive_tasks`, tokio's stable runtime metrics).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Linux's clock tick (`USER_HZ`), fixed at 100 by its ABI on every architecture we build for.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads the process metrics at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl ProcessCollector {
    /// A collector of this process's metrics.
    pub fn new() -> Self {
        Self
    }
}

/// This process's figures, each `None` when it could not be read.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_memory_bytes: Option<i64>,
    /// Virtual memory, in bytes.
    pub virtual_memory_bytes: Option<i64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
    /// The open-files limit.
    pub max_fds: Option<i64>,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

impl ProcessStats {
    /// Read `/proc/self`.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let fields = stat.as_deref().and_then(stat_fields);
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        Self {
            cpu_seconds: fields.map(|(utime, stime, _)| (utime + stime) as f64 / TICKS_PER_SECOND),
            resident_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
            virtual_memory_bytes: status.as_deref().and_then(|s| status_kib(s, "VmSize:")),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as i64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            start_time_seconds: fields
                .zip(boot)
                .map(|((_, _, start), boot)| boot as f64 + start as f64 / TICKS_PER_SECOND),
        }
    }
}

/// `utime`, `stime` and `starttime` (fields 14, 15 and 22) of `/proc/<pid>/stat`, in ticks.
/// The command name (field 2) may hold spaces and parentheses, so fields count from the
/// last `)`.
fn stat_fields(stat: &str) -> Option<(u64, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some((field(14)?, field(15)?, field(22)?))
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: i64 = line[key.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` of `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(v) = stats.cpu_seconds {
            let metric = ConstCounter::new(v);
            metric.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        let gauges: [(&str, &str, Option<i64>); 4] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_memory_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_memory_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                ConstGauge::new(v).encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    MetricType::Gauge,
                )?)?;
            }
        }
        // The runtime this scrape runs on (the server's): its live tasks, so a soak can
        // see tasks that outlive what spawned them. Left out off a runtime.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let alive = i64::try_from(runtime.metrics().num_alive_tasks()).unwrap_or(i64::MAX);
            ConstGauge::new(alive).encode(encoder.encode_descriptor(
                "culvert_tokio_alive_tasks",
                "Tasks alive on the server's tokio runtime (spawned and not yet finished).",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Some(v) = stats.start_time_seconds {
            ConstGauge::new(v).encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1500 1000000 500";
        assert_eq!(stat_fields(stat), Some((250, 50, 1500)));
        assert_eq!(
            status_kib("Name:\tculvert\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048 * 1024)
        );
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn this_process_is_read() {
        let stats = ProcessStats::read();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(stats.resident_memory_bytes.unwrap() > 0);
            assert!(stats.open_fds.unwrap() > 0);
            assert!(stats.start_time_seconds.unwrap() > 1.0e9);
            assert!(stats.cpu_seconds.is_some());
        }
    }
}
