//! The process metrics every Prometheus client library exports (`process_*`, the names
//! dashboards and alerts for any service already use), read from Linux's `/proc` at each
//! scrape. Elsewhere there is no `/proc` and they are left out.
//!
//! Read here rather than through the `metrics-process` crate: that crate brings `procfs` and
//! its dependencies for these few numbers, and as `metrics` counters (whole numbers) it would
//! round CPU seconds down. Parsing is apart from reading, so it is tested on captured text.

use std::fmt::Write;

use super::{Kind, Metric, m};

const CPU: &str = "process_cpu_seconds_total";
const RSS: &str = "process_resident_memory_bytes";
const VIRTUAL: &str = "process_virtual_memory_bytes";
const OPEN_FDS: &str = "process_open_fds";
const MAX_FDS: &str = "process_max_fds";
const START_TIME: &str = "process_start_time_seconds";
const THREADS: &str = "process_threads";

/// The process metrics, as [`super::RECORDED`] lists the others.
#[rustfmt::skip]
pub const METRICS: &[Metric] = &[
    m(CPU, Kind::Counter, &[], "user and system CPU time spent, in seconds"),
    m(RSS, Kind::Gauge, &[], "resident memory, in bytes"),
    m(VIRTUAL, Kind::Gauge, &[], "virtual memory, in bytes"),
    m(OPEN_FDS, Kind::Gauge, &[], "open file descriptors"),
    m(MAX_FDS, Kind::Gauge, &[], "the soft limit on open file descriptors"),
    m(START_TIME, Kind::Gauge, &[], "when the process started, in seconds since the Unix epoch"),
    m(THREADS, Kind::Gauge, &[], "operating system threads"),
];

/// Clock ticks per second in `/proc/<pid>/stat`: the kernel's USER_HZ, fixed at 100 for
/// userspace on every architecture Linux supports but alpha (sysconf(_SC_CLK_TCK) without
/// libc and `unsafe`).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one read of `/proc` found.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    rss_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    start_time_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

/// Appends the process metrics to the exposition `out`; nothing where `/proc` is missing.
pub fn render(out: &mut String) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let Some(sample) = read("/proc/self/stat")
        .zip(read("/proc/self/status"))
        .and_then(|(stat, status)| {
            let mut sample = parse_stat(&stat, &status)?;
            let boot = read("/proc/stat").and_then(|s| boot_time(&s));
            let ticks = start_ticks(&stat);
            sample.start_time_seconds = boot
                .zip(ticks)
                .map(|(b, t)| b as f64 + t as f64 / TICKS_PER_SECOND);
            sample.open_fds = std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|d| d.count() as u64);
            sample.max_fds = read("/proc/self/limits").and_then(|l| max_open_files(&l));
            Some(sample)
        })
    else {
        return;
    };
    write(out, &sample);
}

fn write(out: &mut String, s: &Sample) {
    let mut family = |name: &str, value: Option<f64>| {
        let (Some(value), Some(metric)) = (value, METRICS.iter().find(|m| m.name == name)) else {
            return;
        };
        let kind = metric.kind.name();
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} {kind}\n{name} {value}\n\n",
            metric.help
        );
    };
    family(CPU, Some(s.cpu_seconds));
    family(MAX_FDS, s.max_fds.map(|n| n as f64));
    family(OPEN_FDS, s.open_fds.map(|n| n as f64));
    family(RSS, Some(s.rss_bytes as f64));
    family(START_TIME, s.start_time_seconds);
    family(THREADS, Some(s.threads as f64));
    family(VIRTUAL, Some(s.virtual_bytes as f64));
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so it ends at the last `)`): field 3 is index 0.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

/// CPU time, virtual memory and threads from `stat`; resident memory from `status` (`VmRSS`
/// is in kB, where `stat` counts pages of a size only libc knows).
fn parse_stat(stat: &str, status: &str) -> Option<Sample> {
    let fields = stat_fields(stat)?;
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime) = (field(14)?, field(15)?);
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()?;
    Some(Sample {
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        rss_bytes: rss_kb * 1024,
        virtual_bytes: field(23)?,
        threads: field(20)?,
        ..Sample::default()
    })
}

/// `starttime`, field 22: clock ticks from boot to the process's start.
fn start_ticks(stat: &str) -> Option<u64> {
    stat_fields(stat)?.get(22 - 3)?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time, seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits` (`None` when unlimited).
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a Linux 6.x host; the command name has a space and a parenthesis.
    const STAT: &str = "8192 (smsflow (x) R 8149 8149 25761 0 -1 4194304 100 0 0 0 \
        250 125 0 0 20 0 9 0 2336408 3133440 371 18446744073709551615 94198615494656";
    const STATUS: &str = "Name:\tsmsflow\nVmPeak:\t    4000 kB\nVmRSS:\t    1968 kB\nThreads:\t9\n";
    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max processes             127431               127431               processes \n\
        Max open files            20000                524288               files     \n";

    #[test]
    fn proc_text_parses_into_the_sample() {
        let sample = parse_stat(STAT, STATUS).unwrap();
        assert_eq!(sample.cpu_seconds, 3.75);
        assert_eq!(sample.rss_bytes, 1968 * 1024);
        assert_eq!(sample.virtual_bytes, 3_133_440);
        assert_eq!(sample.threads, 9);
        assert_eq!(start_ticks(STAT), Some(2_336_408));
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1796109091\nprocesses 9\n"),
            Some(1796109091)
        );
        assert_eq!(max_open_files(LIMITS), Some(20000));
        assert_eq!(
            max_open_files("Max open files  unlimited  unlimited  files\n"),
            None
        );
    }

    #[test]
    fn truncated_proc_text_gives_nothing_rather_than_wrong_numbers() {
        assert_eq!(parse_stat("8192 (smsflow) R 1 2 3", STATUS), None);
        assert_eq!(parse_stat(STAT, "Name:\tsmsflow\n"), None);
        assert_eq!(parse_stat("no parenthesis", STATUS), None);
    }

    #[test]
    fn every_family_has_help_type_and_one_sample() {
        let mut out = String::new();
        write(
            &mut out,
            &Sample {
                cpu_seconds: 1.5,
                rss_bytes: 2048,
                max_fds: None,
                ..Sample::default()
            },
        );
        assert!(
            out.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n"
            ),
            "{out}"
        );
        assert!(
            out.contains("\nprocess_resident_memory_bytes 2048\n"),
            "{out}"
        );
        assert!(
            !out.contains("process_max_fds"),
            "unknown values are left out: {out}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_measured() {
        let mut out = String::new();
        render(&mut out);
        for metric in METRICS {
            assert!(
                out.contains(&format!("\n{} ", metric.name)),
                "no {} in {out}",
                metric.name
            );
        }
    }
}
