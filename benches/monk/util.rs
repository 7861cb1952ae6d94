//! Timing and reporting helpers shared by the benchmark suites.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary built for this benchmark, or the one `MONK_BENCH_MONKCTL` names (an older build,
/// for a before/after figure).
pub fn monkctl() -> PathBuf {
    std::env::var_os("MONK_BENCH_MONKCTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_monkctl")))
}

/// A `monkctl --data-dir DIR` command with a clean environment.
pub fn monk(data: &Path) -> Command {
    let mut c = Command::new(monkctl());
    c.env_remove("DATABASE_URL")
        .env_remove("MONK_DATA_DIR")
        .env_remove("MONK_CONFIG")
        .arg("--data-dir")
        .arg(data);
    c
}

/// Runs a command and panics with its stderr when it fails.
pub fn run_ok(c: &mut Command) -> std::process::Output {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed(), v)
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Prints one figure: monkctl's time, the baseline's, the ratio, and the target.
pub fn report(figure: &str, monk: Duration, baseline_name: &str, baseline: Duration, target: &str) {
    let ratio = monk.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    println!(
        "{figure:<58} monkctl {:>10.1} ms | {baseline_name:<34} {:>10.1} ms | ratio {ratio:>6.2}x | target {target}",
        monk.as_secs_f64() * 1e3,
        baseline.as_secs_f64() * 1e3,
    );
}

/// Prints a single figure with no baseline (an absolute target such as a latency).
pub fn report_abs(figure: &str, value: Duration, target: &str) {
    println!(
        "{figure:<58} monkctl {:>10.1} ms | target {target}",
        value.as_secs_f64() * 1e3
    );
}

/// Peak resident memory of this process's children so far, in MiB (Linux `getrusage`-like via /proc).
pub fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A fresh scratch directory under `target/bench-data/NAME`.
pub fn scratch(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}

/// Flushes every dirty page of the system, so that one figure does not pay for the writes of the
/// one before it.
pub fn settle() {
    let _ = Command::new("sync").status();
}

/// Runs a command to its end, sampling its peak resident memory (VmHWM) while it runs.
pub fn measured(c: &mut Command) -> (Duration, f64) {
    let t = Instant::now();
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut peak: f64 = 0.0;
    loop {
        if let Some(m) = peak_rss_mib_of(pid) {
            peak = peak.max(m);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let elapsed = t.elapsed();
            if !status.success() {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut err));
                panic!("{c:?} failed: {err}");
            }
            return (elapsed, peak);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
