//! Instructions per request, counted by valgrind's callgrind: a figure that does not move
//! with the load of a shared machine, unlike time.
//!
//! The bench binary runs itself under callgrind in its profile mode ([`run_profile`]:
//! log in once, then send `n` requests in a plain loop) twice, with two request counts;
//! the difference of the two totals over the difference of the counts is the cost of one
//! request, set-up and tear-down excluded. Under valgrind the CPU's SHA extensions are not
//! offered, so SHA-256 runs in software there (about 3,400 instructions of the figure).

use std::process::Command;

use super::{Kind, Tab};

/// The environment variable that selects the profile mode and its system.
pub const PROFILE: &str = "SLATES_BENCH_PROFILE";
/// How many requests the profile mode sends (default 100,000).
pub const PROFILE_N: &str = "SLATES_BENCH_PROFILE_N";

/// Whether `valgrind` and `callgrind_control` can be run (scenario 1b's instruction
/// counts, scenario 4's cache misses). In CI (`CI=true`) their absence is an error: the
/// counts are part of the report.
pub fn available() -> bool {
    let runs = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = runs("valgrind", "--version") && runs("callgrind_control", "-h");
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("valgrind is required in CI for the benches' counts: run .ci/install-valgrind");
    }
    found
}

/// If this process was started in the profile mode (`SLATES_BENCH_PROFILE=<system id>`),
/// runs it and returns `true`: `n` requests of that system in a plain loop, so that a
/// profiler (callgrind, perf) sees the hot path without a harness around it.
pub fn run_profile() -> bool {
    let Ok(id) = std::env::var(PROFILE) else {
        return false;
    };
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.id() == id)
        .unwrap_or_else(|| panic!("unknown system {id:?}"));
    let n: u64 = std::env::var(PROFILE_N)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    super::current_thread().block_on(async {
        let tab = Tab::login(kind, "ada").await;
        for _ in 0..n {
            std::hint::black_box(tab.me().await);
        }
    });
    println!("{n} requests of {}", kind.label());
    true
}

/// Instructions of one request of `kind`: this binary in profile mode under callgrind,
/// with `n1` and then `n2` requests. `None` if valgrind failed.
pub fn ir_per_request(kind: Kind, n1: u64, n2: u64) -> Option<f64> {
    let total = |n: u64| -> Option<u64> {
        let out = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(std::env::current_exe().ok()?)
            .env(PROFILE, kind.id())
            .env(PROFILE_N, n.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "callgrind of {} failed: {}",
                kind.label(),
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        // "==1234== I   refs:      61,868,834"
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.contains("refs:"))?;
        line.rsplit(' ').next()?.replace(',', "").parse().ok()
    };
    let (a, b) = (total(n1)?, total(n2)?);
    Some(b.saturating_sub(a) as f64 / (n2 - n1) as f64)
}
