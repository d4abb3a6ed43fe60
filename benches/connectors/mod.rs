//! What the connector load programs (`benches/kafka.rs`, `benches/postgres.rs`,
//! `benches/s3.rs`) share: the record count, the build being measured, the machine's load,
//! percentiles, the peak memory of the server and its plugins, and an optional `perf record`
//! of the server while a figure is taken.
//!
//! They drive the `culvert` binary through the end-to-end harness (`tests/harness.rs`,
//! included by path): `cargo bench` builds that binary with the bench profile (release), so
//! the server measured is the optimised one; [`describe_build`] says which binary it is.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo test --benches` runs bench targets without `--bench`: they do nothing then.
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The record count: `CULVERT_BENCH_RECORDS`, else `default`.
pub fn records(default: usize) -> usize {
    std::env::var("CULVERT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// The server binary the harness starts and its build; fails on a debug build, whose
/// figures mean nothing (set `CULVERT_BENCH_ALLOW_DEBUG=1` to look anyway).
pub fn describe_build() -> String {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_culvert"));
    let profile = binary
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|p| p.to_str())
        .unwrap_or("?")
        .to_owned();
    let optimised = !cfg!(debug_assertions) && profile == "release";
    assert!(
        optimised || std::env::var_os("CULVERT_BENCH_ALLOW_DEBUG").is_some(),
        "{} is not a release build: run this with `cargo bench`",
        binary.display()
    );
    format!(
        "server {} ({} build), load average {}",
        binary.display(),
        if optimised { "release" } else { "debug" },
        load()
    )
}

/// The 1, 5 and 15-minute load averages (`/proc/loadavg`).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The `p` quantile (0..=1) of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted: &[i128], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1e6
}

/// Wall-clock nanoseconds since the Unix epoch (what `opencdc.readAt` holds).
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// Poll `condition` (a file, a broker, a metric: none notifies) every `every` until it
/// holds; panics after `limit` naming `what`.
pub fn poll(what: &str, limit: Duration, every: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// The peak resident memory (the kernel's `VmHWM`) of a server and of its plugin processes
/// (its children), in MiB. Read it while the pipeline still runs: a plugin's figure is gone
/// once its process exits.
#[derive(Debug, Clone, Copy)]
pub struct PeakRss {
    pub server_mib: f64,
    /// The sum of the children's peaks (0 when no plugin process runs).
    pub plugins_mib: f64,
}

impl PeakRss {
    /// The peaks of `pid` and of every process whose parent it is.
    pub fn of(pid: u32) -> PeakRss {
        let children: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|child| parent(*child) == Some(pid))
            .collect();
        PeakRss {
            server_mib: vm_hwm_mib(pid).expect("the server runs"),
            plugins_mib: children.into_iter().filter_map(vm_hwm_mib).sum(),
        }
    }
}

impl std::fmt::Display for PeakRss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peak RSS server {:.1} MiB", self.server_mib)?;
        if self.plugins_mib > 0.0 {
            write!(f, " + plugin {:.1} MiB", self.plugins_mib)?;
        }
        Ok(())
    }
}

/// A process's parent (`/proc/PID/stat`'s fourth field; the command name before it is in
/// parentheses and may hold spaces).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A process's `VmHWM` in MiB (`None` once it has exited).
fn vm_hwm_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Counts the whole lines appended to a file, reading only what is new each time.
pub struct LineCounter {
    path: PathBuf,
    offset: u64,
    lines: usize,
}

impl LineCounter {
    pub fn new(path: PathBuf) -> LineCounter {
        LineCounter {
            path,
            offset: 0,
            lines: 0,
        }
    }

    /// Whole lines in the file now.
    pub fn count(&mut self) -> usize {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return self.lines;
        };
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut new = Vec::new();
        file.read_to_end(&mut new).unwrap();
        self.offset += new.len() as u64;
        self.lines += new.iter().filter(|b| **b == b'\n').count();
        self.lines
    }
}

/// `perf record -g` of a process while a figure is taken, when `CULVERT_BENCH_PERF` names a
/// directory (`<dir>/<name>.perf.data`; read with `perf report -i`). Ends on drop.
pub struct Profile(Option<Child>);

impl Profile {
    pub fn start(pid: u32, name: &str) -> Profile {
        let Some(dir) = std::env::var_os("CULVERT_BENCH_PERF") else {
            return Profile(None);
        };
        std::fs::create_dir_all(&dir).unwrap();
        let out = PathBuf::from(dir).join(format!("{name}.perf.data"));
        let child = Command::new("perf")
            .args(["record", "-g", "-q", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("perf on the PATH");
        // Samples are taken once perf has opened its events: wait for those.
        let events = format!("/proc/{}/fd", child.id());
        poll(
            "perf to attach",
            Duration::from_secs(30),
            Duration::from_millis(10),
            || {
                std::fs::read_dir(&events).is_ok_and(|fds| {
                    fds.filter_map(Result::ok)
                        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                        .any(|link| link.to_string_lossy().contains("perf_event"))
                })
            },
        );
        eprintln!("perf record of pid {pid} into {}", out.display());
        Profile(Some(child))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            // SIGINT: perf writes its data and exits.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}
