//! Scenario 1, with criterion: the cost of an authenticated read-only request whose handler
//! reads the user's name, through the real router (`oneshot`), memory stores, one thread.
//!
//! - slates: `CurrentUser` (token check + user slate load, done by the layer);
//! - tower-sessions 0.15: `session.get::<String>("user")`;
//! - locking session: per-session mutex held for the request, record loaded at the start;
//! - bare axum: no session layer.
//!
//! ```text
//! cargo bench --bench overhead                                     # full
//! SLATES_BENCH_QUICK=1 cargo bench --bench overhead -- --quick --noplot   # CI
//! SLATES_BENCH_PROFILE=slates cargo bench --bench overhead         # a plain loop, for callgrind
//! ```
//!
//! After criterion's own report it prints ns/request and the ratios to bare axum and to
//! tower-sessions, from criterion's mean estimates of this run.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{fmt_ns, Kind, Tab};
use criterion::Criterion;

const GROUP: &str = "scenario1";

fn bench(c: &mut Criterion, rt: &tokio::runtime::Runtime, tabs: &[Tab]) {
    let mut group = c.benchmark_group(GROUP);
    for tab in tabs {
        group.bench_function(tab.kind.id(), |b| {
            b.to_async(rt).iter(|| async {
                let status = tab.me().await;
                debug_assert_eq!(status, 200);
                black_box(status)
            })
        });
    }
    group.finish();
}

fn summary() {
    let mean = |k: Kind| common::criterion_mean_ns(GROUP, k.id());
    let (Some(bare), Some(ts)) = (mean(Kind::Bare), mean(Kind::TowerSessions)) else {
        println!(
            "(no criterion estimates found under {:?})",
            common::criterion_dir()
        );
        return;
    };
    let mut table = common::report::Table::new(
        "Scenario 1 (criterion mean): authenticated read-only request",
        &["system", "ns/request", "x bare axum", "x tower-sessions"],
    );
    for kind in Kind::ALL {
        if let Some(ns) = mean(kind) {
            table.row(vec![
                kind.label().into(),
                fmt_ns(ns),
                format!("{:.2}", ns / bare),
                format!("{:.2}", ns / ts),
            ]);
        }
    }
}

fn main() {
    if common::callgrind::run_profile() {
        return;
    }
    let rt = common::current_thread();
    let tabs: Vec<Tab> = rt.block_on(async {
        let mut tabs = Vec::new();
        for kind in Kind::ALL {
            let tab = Tab::login(kind, "ada").await;
            assert_eq!(tab.me().await, 200, "{kind:?}: /me must succeed");
            tabs.push(tab);
        }
        tabs
    });
    let mut c = Criterion::default().output_directory(&common::criterion_dir());
    if common::quick() {
        c = c
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            .sample_size(20);
    } else {
        c = c
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(6));
    }
    let mut c = c.configure_from_args();
    bench(&mut c, &rt, &tabs);
    c.final_summary();
    summary();
}
