//! Tables (printed as text, written as markdown) and the machine they were measured on.

use std::fmt::Write as _;
use std::process::Command;

/// One result table: printed while the bench runs, and written to RESULTS.md.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Text under the table (how it was measured, what to read from it).
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            ..Table::default()
        }
    }

    /// Adds a row and prints it at once (long scenarios show progress).
    pub fn row(&mut self, cells: Vec<String>) {
        if self.rows.is_empty() {
            println!("\n{}", self.title);
            println!("  {}", self.header.join(" | "));
        }
        println!("  {}", cells.join(" | "));
        self.rows.push(cells);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The table as GitHub markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        // Columns of figures are right-aligned, columns of words left-aligned.
        let numeric = |i: usize| {
            !self.rows.is_empty()
                && self.rows.iter().all(|r| {
                    r.get(i)
                        .and_then(|c| c.chars().next())
                        .is_some_and(|c| c.is_ascii_digit() || c == '-')
                })
        };
        let _ = writeln!(
            out,
            "|{}",
            (0..self.header.len())
                .map(|i| if numeric(i) { "---:|" } else { "---|" })
                .collect::<String>()
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        out.push('\n');
        out
    }
}

/// What the figures were measured on.
#[derive(Clone, Debug)]
pub struct Machine {
    pub nproc: String,
    pub cpu: String,
    pub memory: String,
    pub rustc: String,
    pub date: String,
    pub commit: String,
    /// Uncommitted changes to what the bench is built from (`src/`, `benches/`, the
    /// manifest), or `clean`.
    pub tree: String,
    pub load: String,
}

fn run(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The uncommitted changes (relative to `HEAD`) to the files the benches are built from.
fn working_tree() -> String {
    // Not `run`: its trim would eat the first line's status column.
    let Some(status) = Command::new("git")
        .args(["status", "--porcelain", "--"])
        .args(["src", "benches", "Cargo.toml", "Cargo.lock"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    else {
        return "unknown".into();
    };
    let files: Vec<&str> = status
        .lines()
        .filter_map(|l| l.get(3..))
        .filter(|f| !f.starts_with("benches/results/"))
        .collect();
    if files.is_empty() {
        "clean (`src/`, `benches/`, manifest)".into()
    } else {
        format!("uncommitted changes: {}", files.join(", "))
    }
}

/// The 1-minute load average now.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kb: f64 = m
                    .lines()
                    .find(|l| l.starts_with("MemTotal"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                Some(format!("{:.0} GiB", kb / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: run("nproc", &[]),
            cpu,
            memory,
            rustc: run("rustc", &["--version"]),
            date: run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            // A run from an exported tree (no `.git`) is told what it was built from.
            commit: std::env::var("SLATES_BENCH_COMMIT")
                .unwrap_or_else(|_| run("git", &["rev-parse", "--short", "HEAD"])),
            tree: std::env::var("SLATES_BENCH_TREE").unwrap_or_else(|_| working_tree()),
            load: load_average(),
        }
    }

    /// A one-line description for the chart.
    pub fn line(&self) -> String {
        format!(
            "{} × {}, {}, {}",
            self.nproc, self.cpu, self.rustc, self.date
        )
    }

    pub fn markdown(&self, load_at_end: &str) -> String {
        format!(
            "| | |\n|---|---|\n| CPU | {} |\n| cores (`nproc`) | {} |\n| memory | {} |\n\
             | rustc | {} |\n| date | {} |\n| commit | {} |\n| working tree | {} |\n\
             | load average (1 min) at start / end | {} / {} |\n",
            self.cpu,
            self.nproc,
            self.memory,
            self.rustc,
            self.date,
            self.commit,
            self.tree,
            self.load,
            load_at_end
        )
    }
}
