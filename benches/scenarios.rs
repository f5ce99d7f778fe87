//! Scenarios 1-5 of the benchmark issue, side by side with tower-sessions 0.15, a locking
//! session and bare axum, all driven through their real routers with `oneshot`.
//!
//! ```text
//! cargo bench --bench scenarios                         # full: writes benches/results/
//! SLATES_BENCH_QUICK=1 cargo bench --bench scenarios    # CI: small sizes, writes target/bench-quick/
//! SLATES_BENCH_ONLY=4 SLATES_BENCH_SYSTEMS=slates,bare cargo bench --bench scenarios
//!                                                       # scenario 4 for those systems only
//! ```
//!
//! 1. overhead of an authenticated read-only request (ns/request, ratios);
//! 2. lost updates with K concurrent writers of one user, and the "logout undone" race;
//! 3. isolation of short requests from a long request of the same user (p50/p99);
//! 4. scale: per-request cost, simulated cache misses and memory at 1k / 100k / 1M users in
//!    the memory stores (a fresh random user on every request), and at 1k / 100k users in
//!    MongoDB with each layout;
//! 5. MongoDB round trips per authenticated request and per workflow operation;
//!    5b. point reads: `GET /me`, the token lookup and the user slate read with a handful of
//!    stored tokens and with 20,000 (2,000 in quick mode), on each layout;
//!    5c. a 64-way flood of random unknown tokens against 3,000 stored tokens;
//! 6. (issue 12, point 6) two app processes (the `counter` example) on one FerretDB: store
//!    operations of a warm `GET /me` with and without the cache, and how soon a write on one
//!    is seen on the other.
//!
//! Every figure is relative to baselines measured in the same run; nothing is asserted
//! about timing. Memory is counted by a global allocator that tracks live bytes.

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use common::chart::{self, Panel, Series};
use common::report::{load_average, Machine, Table};
use common::{current_thread, fmt_ms, fmt_ns, median, quantile, slates_app, Kind, Profile, Tab};
use http::header::COOKIE;
use http::{HeaderValue, Request};
use slates::store::{Expiry, SlateKey, TokenRecord};
use slates::store::{SlateStore as _, TokenStore as _};
use slates::{MemoryStore, SlateName, Token, Username};
use tower::ServiceExt;

/// Counts live heap bytes, for memory per token and per user slate.
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// Everything a run produced: tables for RESULTS.md, data for the chart.
#[derive(Default)]
struct Run {
    tables: Vec<Table>,
    s1: Vec<(String, f64)>,
    s2_groups: Vec<String>,
    s2: Vec<(String, Vec<Option<f64>>)>,
    s3: Vec<(String, [Duration; 4])>,
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ------------------------------------------------------------------------------ scenario 1

/// Mean ns per `/me` request over `n` sequential requests.
async fn time_me(tab: &Tab, n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(tab.me().await);
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn scenario1(run: &mut Run, quick: bool) {
    let (rounds, n) = if quick { (5, 2_000) } else { (15, 20_000) };
    let rt = current_thread();
    let tabs: Vec<Tab> = rt.block_on(async {
        let mut tabs = Vec::new();
        for kind in Kind::ALL {
            let tab = Tab::login(kind, "ada").await;
            assert_eq!(tab.me().await, 200, "{kind:?} /me");
            time_me(&tab, n / 4).await; // warm-up
            tabs.push(tab);
        }
        tabs
    });
    // Rounds interleave the systems, so that a burst of load elsewhere on the machine hits
    // all of them; the median round is reported.
    let mut samples = vec![Vec::new(); tabs.len()];
    for _ in 0..rounds {
        for (i, tab) in tabs.iter().enumerate() {
            samples[i].push(rt.block_on(time_me(tab, n)));
        }
    }
    let ns: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    let of = |k: Kind| ns[Kind::ALL.iter().position(|x| *x == k).unwrap()];
    let (bare, ts) = (of(Kind::Bare), of(Kind::TowerSessions));
    let criterion = Kind::ALL
        .iter()
        .all(|k| common::criterion_mean_ns("scenario1", k.id()).is_some());
    let mut header = vec!["system", "ns/request", "x bare axum", "x tower-sessions"];
    if criterion {
        header.push("criterion mean (overhead bench)");
    }
    let mut table = Table::new(
        "Scenario 1: authenticated read-only request (GET /me reads the user's name)",
        &header,
    );
    for (kind, ns) in Kind::ALL.iter().zip(&ns) {
        let mut row = vec![
            kind.label().to_owned(),
            fmt_ns(*ns),
            format!("{:.2}", ns / bare),
            format!("{:.2}", ns / ts),
        ];
        if let Some(c) = common::criterion_mean_ns("scenario1", kind.id()).filter(|_| criterion) {
            row.push(fmt_ns(c));
        }
        table.row(row);
        run.s1.push((kind.label().to_owned(), *ns));
    }
    table.note(format!(
        "Memory stores, one thread (`current_thread` runtime), through the real router with \
         `oneshot`; the request carries the cookie. slates checks the token (SHA-256, lookup; \
         the user slate is not read, as the handler does not ask for it); tower-sessions \
         loads the session record on `session.get(\"user\")`; the locking session takes \
         the session's mutex and deserializes its record; the floor is bare axum plus what \
         any token check must do (split the Cookie header, decode, SHA-256, one map \
         lookup). Median of {rounds} interleaved rounds of {n} requests per system."
    ));
    if criterion {
        table.note(
            "The last column is criterion's mean from the latest `cargo bench --bench overhead` \
             run (a separate process, possibly at another time).",
        );
    }
    run.tables.push(table);
    run.tables.push(scenario1_instructions(quick, &ns));
}

/// Scenario 1 in instructions (callgrind), beside the native times of the same run.
fn scenario1_instructions(quick: bool, native_ns: &[f64]) -> Table {
    let (n1, n2) = if quick { (200, 600) } else { (1_000, 3_000) };
    let mut table = Table::new(
        "Scenario 1b: instructions per request (callgrind) and native time over the floor",
        &[
            "system",
            "instructions/request",
            "x bare axum",
            "x floor",
            "native x floor",
        ],
    );
    if !common::callgrind::available() {
        table.note("SKIPPED: valgrind is not installed (`.ci/install-valgrind`).");
        println!("SKIPPED scenario 1b: valgrind is not installed");
        return table;
    }
    let ir: Vec<Option<f64>> = Kind::ALL
        .iter()
        .map(|k| common::callgrind::ir_per_request(*k, n1, n2))
        .collect();
    let at = |k: Kind| Kind::ALL.iter().position(|x| *x == k).unwrap();
    let (bare, floor) = (ir[at(Kind::Bare)], ir[at(Kind::Floor)]);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".to_owned(),
    };
    for (i, kind) in Kind::ALL.iter().enumerate() {
        table.row(vec![
            kind.label().to_owned(),
            ir[i].map_or("failed".to_owned(), |v| format!("{v:.0}")),
            ratio(ir[i], bare),
            ratio(ir[i], floor),
            format!("{:.2}", native_ns[i] / native_ns[at(Kind::Floor)]),
        ]);
    }
    table.note(format!(
        "Instructions: this bench binary run under `valgrind --tool=callgrind` with {n1} and \
         then {n2} requests of one system (after one login); the difference of the two totals \
         over {} requests. Stable on a shared machine, unlike time. Under valgrind SHA-256 \
         runs in software (about 3,400 instructions); natively it uses the CPU's SHA \
         extensions when present. The last column divides the native times of the table \
         above by the floor's.",
        n2 - n1
    ));
    table
}

// ------------------------------------------------------------------------------ scenario 2

/// The writers of scenario 2: a system and the route that adds one item.
const WRITERS: [(Kind, &str, &str); 4] = [
    (Kind::Engine, "/add", "slates (atomic $push)"),
    (Kind::Engine, "/add-cas", "slates (modify, CAS)"),
    (Kind::TowerSessions, "/add", "tower-sessions 0.15"),
    (Kind::Locking, "/add", "locking session"),
];

/// K concurrent writers on one cookie: (items kept, wall time).
async fn race(kind: Kind, route: &'static str, k: usize) -> (usize, Duration) {
    let tab = Tab::login(kind, "racer").await;
    let start = Instant::now();
    let handles: Vec<_> = (0..k)
        .map(|_| {
            let tab = tab.clone();
            tokio::spawn(async move { tab.send("POST", route).await.status() })
        })
        .collect();
    for h in handles {
        assert_eq!(h.await.unwrap(), 200, "{kind:?} {route}");
    }
    let took = start.elapsed();
    let (status, body) = tab.text("GET", "/items").await;
    assert_eq!(status, 200);
    (body.trim().parse().unwrap(), took)
}

fn scenario2(run: &mut Run, quick: bool) {
    let ks: &[usize] = if quick { &[2, 8] } else { &[2, 8, 64] };
    let rounds = if quick { 1 } else { 5 };
    let rt = multi_thread();
    let mut header: Vec<String> = vec!["system".into()];
    header.extend(ks.iter().map(|k| format!("kept, K = {k}")));
    header.push(format!("req/s at K = {}", ks[ks.len() - 1]));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(
        "Scenario 2: lost updates (K concurrent requests of one user, each adds one item)",
        &header,
    );
    run.s2_groups = ks.iter().map(|k| format!("K = {k}")).collect();
    for (kind, route, label) in WRITERS {
        let mut row = vec![label.to_owned()];
        let mut kept_pct = Vec::new();
        let mut throughput = 0.0;
        for &k in ks {
            let (mut kept, mut sent, mut time) = (0, 0, Duration::ZERO);
            for _ in 0..rounds {
                let (n, took) = rt.block_on(race(kind, route, k));
                kept += n;
                sent += k;
                time += took;
            }
            row.push(format!(
                "{kept}/{sent} ({:.0}%)",
                kept as f64 * 100.0 / sent as f64
            ));
            kept_pct.push(Some(kept as f64 * 100.0 / sent as f64));
            throughput = sent as f64 / time.as_secs_f64();
        }
        row.push(format!("{throughput:.0}"));
        table.row(row);
        run.s2.push((label.to_owned(), kept_pct));
    }
    table.note(format!(
        "Each request loads what it needs, does {} ms of simulated I/O, then adds one item \
         (slates: one atomic `$push`, or `RawSlate::modify`, a compare-and-swap retried on \
         conflict; tower-sessions and the locking session: read the list from the session, \
         push, `insert`, saved at the end of the request). {rounds} round(s) per K, a fresh \
         login per round; 2 worker threads. Throughput is requests per second of wall time \
         for the largest K.",
        common::WRITE_WORK.as_millis()
    ));
    run.tables.push(table);

    let mut race_table = Table::new(
        "Scenario 2b: \"logout undone\" (a logout races a slow request that writes)",
        &[
            "system",
            "logout answered after",
            "old cookie after logout",
            "verdict",
        ],
    );
    for kind in Kind::STATEFUL {
        let (logout_took, after) = rt.block_on(async {
            let tab = Tab::login(kind, "victim").await;
            let slow = {
                let tab = tab.clone();
                tokio::spawn(async move { tab.send("POST", "/slow-write").await.status() })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let t0 = Instant::now();
            assert_eq!(tab.send("POST", "/logout").await.status(), 200);
            let logout_took = t0.elapsed();
            let _ = slow.await.unwrap();
            (logout_took, tab.me().await)
        });
        let works = after == 200;
        race_table.row(vec![
            kind.label().into(),
            fmt_ms(logout_took),
            if works {
                "still logged in (200)".into()
            } else {
                format!("refused ({})", after.as_u16())
            },
            if works {
                "logout undone".into()
            } else if logout_took > Duration::from_millis(50) {
                "logout holds, but waited for the slow request".into()
            } else {
                "logout holds".into()
            },
        ]);
    }
    race_table.note(format!(
        "The slow request authenticates, works {} ms, then writes (slates: a workflow slate; \
         sessions: a session key). The logout starts 20 ms into it. Then the old cookie is \
         sent again.",
        common::SLOW_WRITE.as_millis()
    ));
    run.tables.push(race_table);
}

// ------------------------------------------------------------------------------ scenario 3

/// Latencies of `n` short requests issued every `pace`, with or without a long request of
/// the same user in flight.
async fn isolation(kind: Kind, with_long: bool, n: usize, pace: Duration) -> Vec<Duration> {
    let tab = Tab::login(kind, "u").await;
    for _ in 0..50 {
        tab.me().await;
    }
    let long = with_long.then(|| {
        let tab = tab.clone();
        tokio::spawn(async move {
            let t0 = Instant::now();
            let status = tab.send("GET", "/long").await.status();
            (status, t0.elapsed())
        })
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut ticks = tokio::time::interval(pace);
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        ticks.tick().await;
        let tab = tab.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let status = tab.me().await;
            (status, t0.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(n);
    for h in handles {
        let (status, took) = h.await.unwrap();
        assert_eq!(status, 200, "{kind:?} short request");
        latencies.push(took);
    }
    if let Some(long) = long {
        let (status, took) = long.await.unwrap();
        assert_eq!(status, 200, "{kind:?} long request");
        assert!(took >= common::long_hold());
    }
    latencies
}

fn scenario3(run: &mut Run, quick: bool) {
    let (n, repeats) = if quick { (100, 1) } else { (200, 3) };
    let pace = Duration::from_millis(2);
    let rt = multi_thread();
    let mut table = Table::new(
        "Scenario 3: long-request isolation (short requests of U while U's 500 ms request runs)",
        &[
            "system",
            "p50 alone",
            "p99 alone",
            "p50 during long",
            "p99 during long",
            "p50 ratio",
            "p99 ratio",
        ],
    );
    for kind in Kind::ALL {
        let (mut alone, mut during) = (Vec::new(), Vec::new());
        for _ in 0..repeats {
            alone.extend(rt.block_on(isolation(kind, false, n, pace)));
            during.extend(rt.block_on(isolation(kind, true, n, pace)));
        }
        alone.sort();
        during.sort();
        let q = [
            quantile(&alone, 0.5),
            quantile(&alone, 0.99),
            quantile(&during, 0.5),
            quantile(&during, 0.99),
        ];
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        table.row(vec![
            kind.label().into(),
            fmt_ms(q[0]),
            fmt_ms(q[1]),
            fmt_ms(q[2]),
            fmt_ms(q[3]),
            format!("{:.2}", ratio(q[2], q[0])),
            format!("{:.2}", ratio(q[3], q[1])),
        ]);
        run.s3.push((kind.label().into(), q));
    }
    table.note(format!(
        "{n} short `GET /me` requests of user U, one issued every {} ms (so they all start \
         while the long request runs), each timed from issue to response; the long request \
         (`GET /long`: reads the user, sleeps 500 ms) starts 10 ms before the first. \
         {repeats} run(s) of each, pooled; the ratio is \"during long\" over \"alone\". 2 \
         worker threads, memory stores.",
        pace.as_millis()
    ));
    run.tables.push(table);
}

// ------------------------------------------------------------------------------ scenario 4

/// A small deterministic generator for sampling users (the MongoDB scenarios').
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
struct XorShift(u64);

#[cfg_attr(not(feature = "mongodb"), allow(dead_code))]
impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[cfg_attr(not(feature = "mongodb"), allow(dead_code))] // the MongoDB scenarios'
fn cookie_of(token: &Token) -> HeaderValue {
    HeaderValue::from_str(&format!("slates={}", token.encode())).unwrap()
}

fn user_name(i: usize) -> String {
    format!("user{i}")
}

fn fmt_users(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The systems of scenario 4 (memory stores).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    Slates,
    TowerSessions,
    /// tower-sessions' memory store behind a moka cache (`benches/common/moka.rs`).
    TowerSessionsMoka,
    Bare,
}

impl Scale {
    const ALL: [Scale; 4] = [
        Scale::Slates,
        Scale::TowerSessions,
        Scale::TowerSessionsMoka,
        Scale::Bare,
    ];

    fn label(self) -> &'static str {
        match self {
            Scale::Slates => Kind::Engine.label(),
            Scale::TowerSessions => Kind::TowerSessions.label(),
            Scale::TowerSessionsMoka => "tower-sessions 0.15 + moka cache",
            Scale::Bare => Kind::Bare.label(),
        }
    }

    fn id(self) -> &'static str {
        match self {
            Scale::Slates => "slates",
            Scale::TowerSessions => "tower_sessions",
            Scale::TowerSessionsMoka => "tower_sessions_moka",
            Scale::Bare => "bare",
        }
    }

    fn from_id(id: &str) -> Option<Scale> {
        Scale::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The `Cookie` header of user `i`. Derived from `i`, not looked up: drawing a user
    /// touches no memory of the bench's own, so every cache miss counted is the system's.
    fn cookie(self, i: usize) -> HeaderValue {
        let value = match self {
            Scale::TowerSessions | Scale::TowerSessionsMoka => format!("id={}", session_id(i)),
            // Bare axum reads no cookie; it gets the same header as slates, at the same cost.
            Scale::Slates | Scale::Bare => format!("slates={}", token_text(i)),
        };
        HeaderValue::from_str(&value).unwrap()
    }
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014): a cheap, well-mixed
/// 64-bit value from a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fresh user for every request: one SplitMix64 step per draw, over the whole range.
struct Draws(u64);

impl Draws {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(1);
        ((u128::from(mix(self.0)) * n as u128) >> 64) as usize
    }
}

/// The auth token of user `i` as the cookie carries it (43 base64url characters).
fn token_text(i: usize) -> String {
    let mut bytes = [0u8; 32];
    for (k, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(((i as u64) << 2) | k as u64).to_le_bytes());
    }
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// The tower-sessions session id of user `i`.
fn session_id(i: usize) -> tower_sessions::session::Id {
    let i = (i as u64) << 1;
    tower_sessions::session::Id(((i128::from(mix(i))) << 64) | i128::from(mix(i | 1)))
}

/// One system of scenario 4 with its users in place.
struct Population {
    app: Router,
    /// Heap bytes of the tokens (with what the store keeps per user for them) and of the user
    /// slates; `None` for a system that stores both in one record.
    token_bytes: Option<usize>,
    slate_bytes: Option<usize>,
    /// Heap bytes of everything the users added (`None` for bare axum).
    total_bytes: Option<usize>,
    took: Duration,
}

/// Populates `system` with `users` users, each logged in (one live token or session) with
/// a profile.
async fn populate_scale(system: Scale, users: usize) -> Population {
    let started = Instant::now();
    let mut population = match system {
        Scale::Slates => populate_slates(users).await,
        Scale::TowerSessions => {
            populate_tower_sessions(tower_sessions::MemoryStore::default(), users).await
        }
        Scale::TowerSessionsMoka => {
            populate_tower_sessions(common::moka::cached_memory_store(), users).await
        }
        Scale::Bare => Population {
            app: common::bare_app::app(),
            token_bytes: None,
            slate_bytes: None,
            total_bytes: None,
            took: Duration::ZERO,
        },
    };
    population.took = started.elapsed();
    population
}

async fn populate_slates(users: usize) -> Population {
    let now = time::OffsetDateTime::now_utc();
    let store = MemoryStore::new();
    let engine = slates_app::with_store(store.clone()).await;
    let a0 = ALLOC.allocated();
    for i in 0..users {
        let record = TokenRecord {
            hash: Token::parse(&token_text(i)).unwrap().hash(),
            user: Username::new(&user_name(i)).unwrap(),
            created: now,
            expires: now + time::Duration::days(7),
            renewed: None,
            rotated: None,
            device: Some(slates::DeviceId::generate().unwrap()),
            // Within the last-seen interval (10 minutes) of every request timed: no request
            // writes.
            last_seen: now,
            label: "Firefox on Linux".into(),
            ip: None,
        };
        store.insert_token(&record).await.unwrap();
    }
    let a1 = ALLOC.allocated();
    for i in 0..users {
        let name = user_name(i);
        let key = SlateKey::new(Username::new(&name).unwrap(), SlateName::user());
        let doc = slates::bson::to_document(&Profile::of(&name)).unwrap();
        store
            .put_slate(&key, &doc, Expiry::Keep, now)
            .await
            .unwrap();
    }
    let a2 = ALLOC.allocated();
    Population {
        app: slates_app::app(engine),
        token_bytes: Some(a1 - a0),
        slate_bytes: Some(a2 - a1),
        total_bytes: Some(a2 - a0),
        took: Duration::ZERO,
    }
}

async fn populate_tower_sessions<S>(store: S, users: usize) -> Population
where
    S: tower_sessions::SessionStore + Clone,
{
    let expiry_date = time::OffsetDateTime::now_utc() + time::Duration::days(7);
    let a0 = ALLOC.allocated();
    for i in 0..users {
        let name = user_name(i);
        let record = tower_sessions::session::Record {
            id: session_id(i),
            data: [
                ("user".to_owned(), serde_json::json!(name)),
                (
                    "profile".to_owned(),
                    serde_json::to_value(Profile::of(&name)).unwrap(),
                ),
            ]
            .into_iter()
            .collect(),
            expiry_date,
        };
        store.save(&record).await.unwrap();
    }
    let a1 = ALLOC.allocated();
    Population {
        app: common::ts_app::with_store(store),
        token_bytes: None,
        slate_bytes: None,
        total_bytes: Some(a1 - a0),
        took: Duration::ZERO,
    }
}

/// `n` requests `GET <path>`, each with the cookie of the user `draw` picks; each must
/// answer 200.
async fn requests(
    app: &Router,
    system: Scale,
    path: &str,
    n: usize,
    draw: &mut impl FnMut() -> usize,
) {
    for _ in 0..n {
        let req = Request::get(path)
            .header(COOKIE, system.cookie(draw()))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200, "{} GET {path}", system.label());
    }
}

/// Ns per request of `samples` requests `GET <path>`.
async fn time_pass(
    app: &Router,
    system: Scale,
    path: &str,
    samples: usize,
    draw: &mut impl FnMut() -> usize,
) -> f64 {
    let start = Instant::now();
    requests(app, system, path, samples, draw).await;
    start.elapsed().as_nanos() as f64 / samples as f64
}

/// The timing of one population: ns per request of each pass, by measure. The draws go on
/// across passes: no pass replays another's users.
struct Timing {
    users: usize,
    any_user: Draws,
    /// 1,000 users of the population, and the draws among them.
    active: (Vec<usize>, Draws),
    profile: Vec<f64>,
    me: Vec<f64>,
    profile_active: Vec<f64>,
}

impl Timing {
    fn new(users: usize) -> Self {
        let mut pick = Draws(!ANY_USER_SEED);
        let active = (0..1_000.min(users)).map(|_| pick.below(users)).collect();
        Timing {
            users,
            any_user: Draws(ANY_USER_SEED),
            active: (active, pick),
            profile: Vec::new(),
            me: Vec::new(),
            profile_active: Vec::new(),
        }
    }

    /// One pass of each measure, recorded unless it is the warm-up.
    async fn pass(&mut self, app: &Router, system: Scale, samples: usize, record: bool) {
        let (users, any) = (self.users, &mut self.any_user);
        let profile = time_pass(app, system, "/profile", samples, &mut || any.below(users)).await;
        let me = time_pass(app, system, "/me", samples, &mut || any.below(users)).await;
        let (active, pick) = &mut self.active;
        let mut active_user = || active[pick.below(active.len())];
        let profile_active = time_pass(app, system, "/profile", samples, &mut active_user).await;
        if record {
            self.profile.push(profile);
            self.me.push(me);
            self.profile_active.push(profile_active);
        }
    }
}

/// The seed of the "any user" draws (the valgrind run draws the same users).
const ANY_USER_SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// The cache simulated by valgrind: this machine's (lscpu: 32 KiB L1i and 48 KiB L1d per
/// core, a 32 MiB 16-way L3 as the last level), given explicitly so that every machine
/// simulates the same one (valgrind's detection reads 512 MiB here, through the VM's cpuid).
const CACHE_SIM: [&str; 3] = ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=33554432,16,64"];

/// The functions whose requests are counted; callgrind names them by their path.
const PROBES: [&str; 2] = ["scenarios::probe_profile", "scenarios::probe_me"];

/// Simulated last-level cache misses per request, `GET /profile` then `GET /me`, each with a
/// fresh random user: this bench runs itself under `valgrind --tool=callgrind
/// --cache-sim=yes` with instrumentation off while it populates (a few times slower than
/// native), switches it on (`callgrind_control -i on`), warms the simulated caches with
/// `warm` requests, then counts misses (instruction and data, reads and writes) over
/// `measured` requests of each route ([`probe_profile`], [`probe_me`]: `--toggle-collect`
/// of each, read as the inclusive cost of its call).
fn ll_misses(
    system: Scale,
    users: usize,
    warm: usize,
    measured: usize,
) -> Result<[f64; 2], String> {
    let dir = std::env::temp_dir();
    let stem = format!("slates-s4-{}-{}-{users}", std::process::id(), system.id());
    let out = dir.join(format!("{stem}.callgrind"));
    let log = dir.join(format!("{stem}.log"));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = std::process::Command::new("valgrind")
        .args(["--tool=callgrind", "--cache-sim=yes", "--instr-atstart=no"])
        .args(CACHE_SIM)
        .args(PROBES.map(|probe| format!("--toggle-collect={probe}")))
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg(exe)
        .env(
            "SLATES_BENCH_PROBE",
            format!("{},{users},{warm},{measured}", system.id()),
        )
        .env("SLATES_BENCH_ONLY", "4")
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("valgrind did not start: {e}"))?;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    if !status.success() {
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log_text.lines().rev().take(15).collect();
        return Err(format!(
            "valgrind run failed ({status}): {}",
            tail.join(" | ")
        ));
    }
    let _ = std::fs::remove_file(&log);
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .ok_or("no events line in callgrind's output")?
        .split_whitespace()
        .collect();
    let per_request = |probe: &str| -> Result<f64, String> {
        let counts = inclusive_counts(&text, probe)
            .ok_or(format!("no call of {probe} in callgrind's output"))?;
        // Callgrind leaves out trailing zero counts.
        let count = |name: &str| {
            events
                .iter()
                .position(|e| *e == name)
                .map(|i| counts.get(i).copied().unwrap_or(0))
                .ok_or(format!("no {name} event in callgrind's output"))
        };
        if count("Ir")? < measured as u64 {
            return Err(format!("callgrind counted nothing in {probe}"));
        }
        let misses = count("ILmr")? + count("DLmr")? + count("DLmw")?;
        Ok(misses as f64 / measured as f64)
    };
    Ok([per_request(PROBES[0])?, per_request(PROBES[1])?])
}

/// The counts of the calls to `function` in a callgrind output file, callees included: the
/// cost line under each `cfn=` arc to it (its first field is the position).
fn inclusive_counts(text: &str, function: &str) -> Option<Vec<u64>> {
    // A name is given once, with its id; later mentions give the id alone.
    let id = text.lines().find_map(|line| {
        let named = line.strip_prefix("cfn=").or(line.strip_prefix("fn="))?;
        let (id, name) = named.split_once(' ')?;
        (name == function).then_some(id)
    })?;
    let mut counts: Vec<u64> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(callee) = line.strip_prefix("cfn=") else {
            continue;
        };
        if callee.split(' ').next() != Some(id) {
            continue;
        }
        let (Some(_calls), Some(cost)) = (lines.next(), lines.next()) else {
            break;
        };
        for (i, n) in cost.split_whitespace().skip(1).enumerate() {
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] += n.parse::<u64>().unwrap_or(0);
        }
    }
    (!counts.is_empty()).then_some(counts)
}

/// The child side of [`ll_misses`] (`SLATES_BENCH_PROBE=<system>,<users>,<warm>,<measured>`).
fn probe_child(spec: &str) {
    let parts: Vec<&str> = spec.split(',').collect();
    let [system, users, warm, measured] = parts[..] else {
        panic!("SLATES_BENCH_PROBE={spec}: expected <system>,<users>,<warm>,<measured>");
    };
    let system = Scale::from_id(system).expect("SLATES_BENCH_PROBE: unknown system");
    let [users, warm, measured] = [users, warm, measured].map(|n| n.parse::<usize>().unwrap());
    let rt = current_thread();
    let population = rt.block_on(populate_scale(system, users));
    let mut draws = Draws(ANY_USER_SEED);
    let mut any_user = || draws.below(users);
    callgrind_instrumentation_on();
    rt.block_on(requests(
        &population.app,
        system,
        "/profile",
        warm,
        &mut any_user,
    ));
    probe_profile(&rt, &population.app, system, measured, &mut any_user);
    probe_me(&rt, &population.app, system, measured, &mut any_user);
}

/// Asks callgrind to instrument from now on. `callgrind_control` reaches this process
/// through valgrind's gdbserver, which answers while the process runs code: spin until it
/// has.
fn callgrind_instrumentation_on() {
    let mut control = std::process::Command::new("callgrind_control")
        .args(["-i", "on", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("callgrind_control (valgrind's) is needed");
    let status = loop {
        if let Some(status) = control.try_wait().unwrap() {
            break status;
        }
        std::hint::spin_loop();
    };
    assert!(status.success(), "callgrind_control -i on failed: {status}");
}

/// The `GET /profile` requests whose cache misses are counted ([`PROBES`]).
#[inline(never)]
fn probe_profile(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    system: Scale,
    n: usize,
    draw: &mut impl FnMut() -> usize,
) {
    rt.block_on(requests(app, system, "/profile", n, draw));
}

/// The `GET /me` requests whose cache misses are counted ([`PROBES`]).
#[inline(never)]
fn probe_me(
    rt: &tokio::runtime::Runtime,
    app: &Router,
    system: Scale,
    n: usize,
    draw: &mut impl FnMut() -> usize,
) {
    rt.block_on(requests(app, system, "/me", n, draw));
}

fn scenario4_memory(run: &mut Run, quick: bool) {
    if let Ok(spec) = std::env::var("SLATES_BENCH_PROBE") {
        probe_child(&spec);
        std::process::exit(0);
    }
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let passes = if quick { (2_000, 3) } else { (20_000, 5) };
    let (warm, measured) = if quick {
        (1_000, 1_000)
    } else {
        (40_000, 10_000)
    };
    let valgrind = common::callgrind::available();
    let rt = current_thread();
    let mut profile = Table::new(
        "Scenario 4: scale, memory stores: GET /profile (token check and profile read)",
        &[
            "system",
            "users (= live tokens)",
            "ns/request, any user",
            "x 1k",
            "ns/request, 1k active users",
            "LL misses/request, any user",
            "heap per token",
            "heap per user slate",
            "heap per user, total",
            "populated in",
        ],
    );
    let mut me = Table::new(
        "Scenario 4: scale, memory stores: GET /me (token check only)",
        &[
            "system",
            "users (= live tokens)",
            "ns/request, any user",
            "x 1k",
            "LL misses/request, any user",
        ],
    );
    let b = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} B"));
    // `SLATES_BENCH_SYSTEMS=slates,bare`: only those systems (their ids, `Scale::id`).
    let systems: Option<Vec<Scale>> = std::env::var("SLATES_BENCH_SYSTEMS").ok().map(|v| {
        v.split(',')
            .map(|id| Scale::from_id(id.trim()).expect("SLATES_BENCH_SYSTEMS: unknown system"))
            .collect()
    });
    let cases: Vec<(Scale, usize)> = Scale::ALL
        .into_iter()
        .filter(|system| systems.as_ref().is_none_or(|s| s.contains(system)))
        .flat_map(|system| {
            // Bare axum keeps nothing per user: one size says it all.
            let sizes = if system == Scale::Bare {
                &sizes[..1]
            } else {
                sizes
            };
            sizes.iter().map(move |&users| (system, users))
        })
        .collect();
    // Every system at every size is held at once and timed in turns, pass after pass, so that
    // the load of the (shared) machine weighs on all of them alike.
    let populations: Vec<Population> = cases
        .iter()
        .map(|&(system, users)| rt.block_on(populate_scale(system, users)))
        .collect();
    let mut timings: Vec<Timing> = cases.iter().map(|&(_, users)| Timing::new(users)).collect();
    for round in 0..=passes.1 {
        for ((&(system, _), population), timing) in cases.iter().zip(&populations).zip(&mut timings)
        {
            rt.block_on(timing.pass(&population.app, system, passes.0, round > 0));
        }
    }
    let heaps: Vec<([String; 3], Duration)> = populations
        .iter()
        .zip(&cases)
        .map(|(p, &(_, users))| {
            let per = |bytes: Option<usize>| b(bytes.map(|b| b as f64 / users as f64));
            let heap = [per(p.token_bytes), per(p.slate_bytes), per(p.total_bytes)];
            (heap, p.took)
        })
        .collect();
    drop(populations);
    // Each system's first size, the base of its "x 1k".
    let mut base: Option<(Scale, f64, f64)> = None;
    for ((&(system, users), mut timing), (heap, took)) in cases.iter().zip(timings).zip(heaps) {
        let ns = median(&mut timing.profile);
        let ns_me = median(&mut timing.me);
        let ns_active = median(&mut timing.profile_active);
        let misses = match valgrind.then(|| ll_misses(system, users, warm, measured)) {
            None => ["-".to_owned(), "-".to_owned()],
            Some(Ok(m)) => m.map(|m| format!("{m:.2}")),
            Some(Err(e)) => {
                eprintln!("scenario 4: {} at {users} users: {e}", system.label());
                ["failed".to_owned(), "failed".to_owned()]
            }
        };
        let [misses_profile, misses_me] = misses;
        if base.is_none_or(|(s, ..)| s != system) {
            base = Some((system, ns, ns_me));
        }
        let (_, base, base_me) = base.expect("set above");
        let label = system.label().to_owned();
        let users = if system == Scale::Bare {
            "-".to_owned()
        } else {
            fmt_users(users)
        };
        let mut row = vec![
            label.clone(),
            users.clone(),
            fmt_ns(ns),
            format!("{:.2}", ns / base),
            fmt_ns(ns_active),
            misses_profile,
        ];
        row.extend(heap);
        row.push(format!("{:.1} s", took.as_secs_f64()));
        profile.row(row);
        me.row(vec![
            label,
            users,
            fmt_ns(ns_me),
            format!("{:.2}", ns_me / base_me),
            misses_me,
        ]);
    }
    profile.note(format!(
        "Each user has one live token and a user slate (a profile: name, time zone, 3 \
         permissions, 3 panels); for tower-sessions, one session record holding `user` and the \
         same profile; the moka variant puts tower-sessions' `CachingSessionStore` with a moka \
         cache of {} sessions (the figure of `tower-sessions-moka-store`'s example) in front of \
         its memory store (`benches/common/moka.rs`). `GET /profile` answers the profile's \
         display name: slates checks the token and reads the user slate into a struct \
         (`CurrentUser::profile`), tower-sessions loads the session and reads `profile`, bare \
         axum answers a name it has. Every request carries the cookie of a user drawn at \
         random, afresh, from the whole population (\"any user\"), or from a fixed set of \
         1,000 of them (\"1k active users\": the same work on a working set that fits in \
         cache); {} requests a pass, median of {} passes after a warm-up pass, one thread, \
         every system at every size held at once and timed in turns, pass after pass (the \
         machine is shared: its load weighs on all alike). A cookie is derived from the \
         user's number, not stored, so that drawing a user reads no memory (formatting it is \
         part of every figure, bare axum's too).",
        common::moka::CAPACITY,
        passes.0,
        passes.1,
    ));
    profile.note(format!(
        "LL misses: simulated last-level cache misses per request (instruction and data, reads \
         and writes) by `valgrind --tool=callgrind --cache-sim=yes {}`: the bench runs itself \
         under callgrind with instrumentation off while it populates, switches it on, warms the \
         simulated caches with {warm} requests, and counts {measured} more of each route (any \
         user). Heap bytes are live bytes counted by a global allocator (after populating, \
         minus before, per user; hash table slack included; malloc's own few bytes per \
         allocation are not). Tokens were last seen at population, within the 10-minute \
         last-seen interval, so no request writes.{}",
        CACHE_SIM.join(" "),
        if valgrind {
            ""
        } else {
            " valgrind was not found: no misses measured (`.ci/install-valgrind`)."
        }
    ));
    me.note(
        "The same populations, draws and valgrind runs as the table above; `GET /me` answers \
         the username: slates checks the token only, tower-sessions loads the session and \
         reads `user`.",
    );
    run.tables.push(profile);
    run.tables.push(me);
}

// ------------------------------------------------------------------- scenarios 4 and 5: MongoDB

#[cfg(feature = "mongodb")]
mod mongo_scenarios {
    use super::*;
    use common::mongo::{self, CommandCounter, Server};
    use slates::bson::{doc, Document};
    use slates::{Engine, Layout, MongoStore};

    fn layout_name(layout: Layout) -> &'static str {
        match layout {
            Layout::CollectionPerUser => "collection per user",
            _ => "single collection",
        }
    }

    /// Populates `users` users, each with one live token; every `slate_every`-th of them
    /// (users 0, `slate_every`, 2 × `slate_every`, ...: spread over the token collection, so
    /// that their tokens sit anywhere in it) also gets a user slate. The first user goes
    /// through the store (the documents the store
    /// writes are the templates); the rest are bulk copies of them, with the `_id` shapes and
    /// collection names the store uses (checked at the end: the last token and user slate
    /// written are read back through the store). Stops at `budget`; returns the users
    /// populated and the tokens.
    async fn populate(
        slates: &Engine,
        db: &slates::mongodb::Database,
        layout: Layout,
        users: usize,
        slate_every: usize,
        budget: Duration,
    ) -> (usize, Vec<Token>) {
        let started = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let tokens: Vec<Token> = (0..users).map(|_| Token::generate().unwrap()).collect();
        let store = slates.token_store();
        let first = user_name(0);
        store
            .insert_token(&TokenRecord {
                hash: tokens[0].hash(),
                user: Username::new(&first).unwrap(),
                created: now,
                expires: now + time::Duration::days(14),
                renewed: None,
                rotated: None,
                device: Some(slates::DeviceId::generate().unwrap()),
                last_seen: now,
                label: String::new(),
                ip: None,
            })
            .await
            .unwrap();
        let key = SlateKey::new(Username::new(&first).unwrap(), SlateName::user());
        let profile = slates::bson::to_document(&Profile::of(&first)).unwrap();
        slates
            .slate_store()
            .put_slate(&key, &profile, Expiry::Keep, now)
            .await
            .unwrap();

        let auth = db.collection::<Document>(&slates.config().store.auth_collection);
        let auth_template = auth.find_one(doc! {}).await.unwrap().unwrap();
        let slates_coll = match layout {
            Layout::CollectionPerUser => db.collection::<Document>(&format!(
                "{}{first}",
                slates.config().store.user_collection_prefix
            )),
            _ => db.collection::<Document>(&slates.config().store.slates_collection),
        };
        let slate_template = slates_coll.find_one(doc! {}).await.unwrap().unwrap();

        let chunk = 1_000;
        let mut done = 1;
        while done < users && started.elapsed() < budget {
            let end = (done + chunk).min(users);
            let auth_docs: Vec<Document> = (done..end)
                .map(|i| {
                    let mut d = auth_template.clone();
                    d.insert("_id", tokens[i].hash().to_hex());
                    d.insert("user", user_name(i));
                    d
                })
                .collect();
            auth.insert_many(auth_docs).await.unwrap();
            let slated: Vec<usize> = (done..end).filter(|i| i % slate_every == 0).collect();
            let slate_of = |i: usize| {
                let mut d = slate_template.clone();
                if layout != Layout::CollectionPerUser {
                    d.insert("_id", format!("{}${}", user_name(i), SlateName::USER));
                }
                d.insert("name", format!("User {}", user_name(i)));
                d
            };
            if layout == Layout::CollectionPerUser {
                // One collection per user: one insert each, 8 at a time.
                let mut set = tokio::task::JoinSet::new();
                for lane in 0..8 {
                    let db = db.clone();
                    let prefix = slates.config().store.user_collection_prefix.clone();
                    let docs: Vec<(String, Document)> = (slated.iter().skip(lane))
                        .step_by(8)
                        .map(|&i| (format!("{prefix}{}", user_name(i)), slate_of(i)))
                        .collect();
                    set.spawn(async move {
                        for (user, d) in docs {
                            db.collection::<Document>(&user)
                                .insert_one(d)
                                .await
                                .unwrap();
                        }
                    });
                }
                while let Some(r) = set.join_next().await {
                    r.unwrap();
                }
            } else if !slated.is_empty() {
                slates_coll
                    .insert_many(slated.iter().map(|&i| slate_of(i)).collect::<Vec<_>>())
                    .await
                    .unwrap();
            }
            done = end;
        }
        // The copies must be what the store reads: its point reads find the last token and
        // the last user slate written.
        let last = done - 1;
        let record = store.find_token(&tokens[last].hash(), now).await.unwrap();
        assert_eq!(
            record.map(|r| r.user.as_str().to_owned()),
            Some(user_name(last)),
            "a seeded token is not found by the store"
        );
        let last = (done - 1) / slate_every * slate_every;
        let key = SlateKey::new(Username::new(&user_name(last)).unwrap(), SlateName::user());
        let slate = slates.slate_store().get_slate(&key, now).await.unwrap();
        assert_eq!(
            slate.map(|s| s.doc.get_str("name").map(str::to_owned)),
            Some(Ok(format!("User {}", user_name(last)))),
            "a seeded user slate is not found by the store"
        );
        let mut tokens = tokens;
        tokens.truncate(done);
        (done, tokens)
    }

    /// Mean ns per `/me` request with cookies from `cookies`, `rounds` passes or until
    /// `budget` runs out (a slow server gets fewer requests), after 10 warm-up requests.
    /// Returns the mean, the requests timed and the commands sent per request.
    async fn timed(
        app: &Router,
        cookies: &[HeaderValue],
        rounds: usize,
        budget: Duration,
        counter: &CommandCounter,
    ) -> (f64, usize, f64) {
        let send = |cookie: &HeaderValue| {
            let req = Request::get("/me")
                .header(COOKIE, cookie.clone())
                .body(Body::empty())
                .unwrap();
            let app = app.clone();
            async move {
                let res = app.oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200);
            }
        };
        for cookie in cookies.iter().take(10) {
            send(cookie).await;
        }
        let before = counter.total();
        let start = Instant::now();
        let mut sent = 0;
        for cookie in cookies.iter().cycle().take(cookies.len() * rounds) {
            send(cookie).await;
            sent += 1;
            if start.elapsed() > budget {
                break;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / sent as f64;
        (ns, sent, (counter.total() - before) as f64 / sent as f64)
    }

    /// Commands sent while `f` runs, and their names.
    async fn commands<F: std::future::Future>(counter: &CommandCounter, f: F) -> (u64, String) {
        counter.take_names();
        let before = counter.total();
        f.await;
        let n = counter.total() - before;
        let names = counter.take_names();
        (n, names.join(", "))
    }

    async fn workflow_ops(slates: &Engine, counter: &CommandCounter) -> Vec<(String, u64, String)> {
        let slate = slates
            .user_slates(&user_name(0))
            .unwrap()
            .raw_slate("new_id_set");
        let mut out = Vec::new();
        let (n, names) = commands(counter, async {
            slate
                .put(&doc! {"name": "batch 7", "ids": [1, 2]})
                .await
                .unwrap();
        })
        .await;
        out.push(("put (whole document)".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            slate.set("step", "review").await.unwrap();
        })
        .await;
        out.push(("set".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            slate.inc("hits", 1).await.unwrap();
        })
        .await;
        out.push(("inc (returns the value)".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            slate.push("ids", 42).await.unwrap();
        })
        .await;
        out.push(("push".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            slate.get::<Document>().await.unwrap();
        })
        .await;
        out.push(("get".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            let modified = slate
                .modify_or_default(|d: &mut Document| {
                    d.insert("checked", true);
                    Some(())
                })
                .await
                .unwrap();
            assert!(modified.is_written(), "the compare-and-swap was sent");
        })
        .await;
        out.push(("modify (read + compare-and-swap)".to_owned(), n, names));
        let (n, names) = commands(counter, async {
            slate.delete().await.unwrap();
        })
        .await;
        out.push(("delete".to_owned(), n, names));
        out
    }

    // -------------------------------------------------------------- scenario 5b: point reads

    /// What one sample of scenario 5b times.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Probe {
        /// `GET /me` through the router: the token lookup (the handler reads no slate).
        Me,
        /// `Store::find_token` alone.
        Token,
        /// `Store::get_slate` of the user slate alone.
        RawSlate,
        /// The token lookup's previous filter, `{_id, expires: {$gt: now}}`, sent with the
        /// driver (for comparison; the store no longer sends it).
        OldToken,
    }

    impl Probe {
        fn label(self) -> &'static str {
            match self {
                Probe::Me => "GET /me through the router (token lookup; the handler reads no slate)",
                Probe::Token => "token lookup alone (`Store::find_token`: `find {_id}`)",
                Probe::RawSlate => "user slate read alone (`Store::get_slate`: `find {_id}`)",
                Probe::OldToken => {
                    "previous token filter `{_id, expires: {$gt: now}}` (driver `find`, for comparison)"
                }
            }
        }

        /// Samples per round (quick, full): a slow probe gets fewer.
        fn per_round(self, quick: bool) -> usize {
            match (self, quick) {
                (Probe::Me, true) => 30,
                (Probe::Me, false) => 50,
                (Probe::Token | Probe::RawSlate, true) => 15,
                (Probe::Token | Probe::RawSlate, false) => 25,
                (Probe::OldToken, true) => 2,
                (Probe::OldToken, false) => 3,
            }
        }
    }

    /// One database of scenario 5b: `users` stored tokens, of which every `slate_every`-th
    /// user has a user slate (those are the ones requests are drawn from).
    struct Fixture {
        slates: Engine,
        app: Router,
        db: slates::mongodb::Database,
        counter: CommandCounter,
        tokens: Vec<Token>,
        users: usize,
        /// The users with a user slate.
        slated: Vec<usize>,
        rng: XorShift,
        samples: Vec<(Probe, Duration)>,
        me_commands: u64,
        me_requests: u64,
    }

    async fn fixture(
        server: &Server,
        layout: Layout,
        users: usize,
        slate_every: usize,
        budget: Duration,
    ) -> Fixture {
        let name = format!(
            "slates_bench_points_{}_{users}",
            if layout == Layout::CollectionPerUser {
                "per_user"
            } else {
                "single"
            }
        );
        let (store, counter) = mongo::store(server, &name).await;
        let db = store.database().clone();
        // No cache: these scenarios measure the store path (FerretDB's SQLite also locks
        // under the cache's tail while populate creates collections concurrently).
        let slates = Engine::builder(store)
            .no_cache()
            .layout(layout)
            .secure(false)
            .build()
            .await
            .unwrap();
        let (users, tokens) = populate(&slates, &db, layout, users, slate_every, budget).await;
        Fixture {
            app: slates_app::app(slates.clone()),
            slates,
            db,
            counter,
            tokens,
            users,
            slated: (0..users).step_by(slate_every).collect(),
            rng: XorShift(0x9E37_79B9_7F4A_7C15),
            samples: Vec::new(),
            me_commands: 0,
            me_requests: 0,
        }
    }

    impl Fixture {
        /// Times `n` samples of `probe`, each for a user drawn at random from those with a
        /// user slate. Every sample must find what it looks for.
        async fn measure(&mut self, probe: Probe, n: usize) {
            let tokens = self.slates.token_store().clone();
            let slates = self.slates.slate_store().clone();
            let auth = self
                .db
                .collection::<Document>(&self.slates.config().store.auth_collection);
            let before = self.counter.total();
            for _ in 0..n {
                let i = self.slated[self.rng.below(self.slated.len())];
                let token = &self.tokens[i];
                let now = time::OffsetDateTime::now_utc();
                let took = match probe {
                    Probe::Me => {
                        let req = Request::get("/me")
                            .header(COOKIE, cookie_of(token))
                            .body(Body::empty())
                            .unwrap();
                        let start = Instant::now();
                        let res = self.app.clone().oneshot(req).await.unwrap();
                        let took = start.elapsed();
                        assert_eq!(res.status(), 200, "GET /me of a seeded user");
                        took
                    }
                    Probe::Token => {
                        let hash = token.hash();
                        let start = Instant::now();
                        let found = tokens.find_token(&hash, now).await.unwrap();
                        let took = start.elapsed();
                        assert!(found.is_some(), "seeded token not found");
                        took
                    }
                    Probe::RawSlate => {
                        let key =
                            SlateKey::new(Username::new(&user_name(i)).unwrap(), SlateName::user());
                        let start = Instant::now();
                        let found = slates.get_slate(&key, now).await.unwrap();
                        let took = start.elapsed();
                        assert!(found.is_some(), "seeded user slate not found");
                        took
                    }
                    Probe::OldToken => {
                        let filter = doc! {
                            "_id": token.hash().to_hex(),
                            "expires": {"$gt": slates::bson::DateTime::now()},
                        };
                        let start = Instant::now();
                        let found = auth.find_one(filter).await.unwrap();
                        let took = start.elapsed();
                        assert!(found.is_some(), "seeded token not found (previous filter)");
                        took
                    }
                };
                self.samples.push((probe, took));
            }
            if probe == Probe::Me {
                self.me_commands += self.counter.total() - before;
                self.me_requests += n as u64;
            }
        }

        fn stats(&self, probe: Probe) -> Latency {
            Latency::of(
                self.samples
                    .iter()
                    .filter(|(p, _)| *p == probe)
                    .map(|(_, d)| *d)
                    .collect(),
            )
        }
    }

    /// Mean, median and 99th percentile of a set of latencies.
    #[derive(Clone, Copy)]
    struct Latency {
        mean: Duration,
        p50: Duration,
        p99: Duration,
        n: usize,
    }

    impl Latency {
        fn of(mut xs: Vec<Duration>) -> Latency {
            xs.sort();
            let n = xs.len();
            Latency {
                mean: xs.iter().sum::<Duration>() / n.max(1) as u32,
                p50: quantile(&xs, 0.5),
                p99: quantile(&xs, 0.99),
                n,
            }
        }

        fn cell(&self) -> String {
            format!(
                "{} / {} / {}",
                fmt_ms(self.mean),
                fmt_ms(self.p50),
                fmt_ms(self.p99)
            )
        }
    }

    /// How the server plans `find {filter}` on `coll`: FerretDB's pushdown flag and SQLite
    /// plan, or MongoDB's winning plan stages.
    async fn explain(db: &slates::mongodb::Database, coll: &str, filter: Document) -> String {
        let cmd = doc! {
            "explain": {"find": coll, "filter": filter, "limit": 1, "singleBatch": true},
            "verbosity": "queryPlanner",
        };
        let e = match db.run_command(cmd).await {
            Ok(e) => e,
            Err(e) => return format!("explain failed: {e}"),
        };
        let plan = e.get_document("queryPlanner").ok();
        if let Ok(pushdown) = e.get_bool("filterPushdown") {
            let steps: Vec<String> = plan
                .and_then(|p| p.get_array("Plan").ok())
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str())
                .map(|s| s.rsplit("detail=").next().unwrap_or(s).to_owned())
                .collect();
            return format!(
                "filterPushdown: {pushdown}; SQLite plan: {}",
                steps.join("; ")
            );
        }
        // MongoDB: the stages of the winning plan, outermost first.
        let mut stages = Vec::new();
        let mut node = plan.and_then(|p| p.get_document("winningPlan").ok());
        while let Some(n) = node {
            let n = n.get_document("queryPlan").unwrap_or(n);
            if let Ok(stage) = n.get_str("stage") {
                stages.push(stage.to_owned());
            }
            node = n.get_document("inputStage").ok();
        }
        if stages.is_empty() {
            "no plan in the explain output".to_owned()
        } else {
            format!("winning plan: {}", stages.join(" <- "))
        }
    }

    /// Scenario 5b: `GET /me` and its two reads with a handful of stored tokens and with
    /// many, on each layout, sampled in interleaved rounds.
    fn point_reads(run: &mut Run, quick: bool, server: &Server, rt: &tokio::runtime::Runtime) {
        let handful = 5;
        let large = if quick { 2_000 } else { 20_000 };
        // Collection per user: a collection per user costs FerretDB a table each (slow to
        // create), so only the users requests are drawn from get one.
        let per_user_collections = if quick { 50 } else { 200 };
        let rounds = if quick { 3 } else { 8 };
        let budget = Duration::from_secs(120);
        let mut table = Table::new(
            format!(
                "Scenario 5b: point reads on the wire server ({handful} vs {} stored tokens)",
                fmt_count(large)
            ),
            &[
                "server",
                "layout",
                "measured",
                &format!("{handful} tokens: mean / p50 / p99"),
                &format!("{} tokens: mean / p50 / p99", fmt_count(large)),
                "x (mean)",
                "x (p50)",
                "target x <= 1.5",
            ],
        );
        if quick {
            println!(
                "\nScenario 5b in quick mode: {} stored tokens instead of 20,000, fewer samples",
                fmt_count(large)
            );
        }
        let mut explained = Vec::new();
        let mut sizes_note = Vec::new();
        for layout in [Layout::SingleCollection, Layout::CollectionPerUser] {
            let per_user = layout == Layout::CollectionPerUser;
            let probes: &[Probe] = if per_user {
                &[Probe::Me, Probe::Token, Probe::RawSlate]
            } else {
                &[Probe::Me, Probe::Token, Probe::RawSlate, Probe::OldToken]
            };
            rt.block_on(async {
                let started = Instant::now();
                let mut small = fixture(server, layout, handful, 1, budget).await;
                let every = if per_user {
                    large.div_ceil(per_user_collections)
                } else {
                    1
                };
                let mut big = fixture(server, layout, large, every, budget).await;
                sizes_note.push(format!(
                    "{}: {} and {} stored tokens, {} and {} user slates{}, populated in {:.1} s",
                    layout_name(layout),
                    small.users,
                    fmt_count(big.users),
                    small.slated.len(),
                    fmt_count(big.slated.len()),
                    if per_user {
                        format!(
                            " (one collection each; with {} tokens, only every {every}th user \
                             has one, and requests are drawn from those)",
                            fmt_count(big.users)
                        )
                    } else {
                        String::new()
                    },
                    started.elapsed().as_secs_f64()
                ));
                // Warm-up, then interleaved rounds: load elsewhere on the machine hits both
                // sizes alike.
                for f in [&mut small, &mut big] {
                    f.measure(Probe::Me, 5).await;
                    f.samples.clear();
                    (f.me_commands, f.me_requests) = (0, 0);
                }
                for _ in 0..rounds {
                    for &probe in probes {
                        for f in [&mut small, &mut big] {
                            f.measure(probe, probe.per_round(quick)).await;
                        }
                    }
                }
                for &probe in probes {
                    let (a, b) = (small.stats(probe), big.stats(probe));
                    let x_mean = b.mean.as_secs_f64() / a.mean.as_secs_f64();
                    let x_p50 = b.p50.as_secs_f64() / a.p50.as_secs_f64();
                    let mut what = probe.label().to_owned();
                    if probe == Probe::Me {
                        what.push_str(&format!(
                            "; {:.2} commands/request",
                            big.me_commands as f64 / big.me_requests.max(1) as f64
                        ));
                    }
                    table.row(vec![
                        server.name.clone(),
                        layout_name(layout).into(),
                        format!("{what} ({} + {} samples)", a.n, b.n),
                        a.cell(),
                        b.cell(),
                        format!("{x_mean:.2}"),
                        format!("{x_p50:.2}"),
                        if probe == Probe::OldToken {
                            "-".into()
                        } else if x_mean <= 1.5 {
                            "met".into()
                        } else {
                            "**missed**".into()
                        },
                    ]);
                }
                if !per_user {
                    let config = &big.slates.config().store;
                    let hex = big.tokens[0].hash().to_hex();
                    let slate_id = format!("{}${}", user_name(0), SlateName::USER);
                    let now = slates::bson::DateTime::now();
                    for (what, coll, filter) in [
                        (
                            "token lookup `find {_id: <hex>}`",
                            config.auth_collection.clone(),
                            doc! {"_id": &hex},
                        ),
                        (
                            "user slate read `find {_id: \"<user>$user\"}`",
                            config.slates_collection.clone(),
                            doc! {"_id": &slate_id},
                        ),
                        (
                            "previous token filter `{_id, expires: {$gt: now}}`",
                            config.auth_collection.clone(),
                            doc! {"_id": &hex, "expires": {"$gt": now}},
                        ),
                    ] {
                        let e = explain(&big.db, &coll, filter).await;
                        println!("  explain {what} on `{coll}`: {e}");
                        explained.push(format!("{what} on `{coll}`: {e}"));
                    }
                }
                for f in [small, big] {
                    let _ = f.db.drop().await;
                }
            });
        }
        table.note(format!(
            "{} Each sample draws a user at random (among those with a user slate) and times one \
             operation, issued one at a time; {rounds} interleaved rounds over both sizes; mean, \
             median and 99th percentile in ms. \"x\" is the {}-token figure over the \
             {handful}-token one; the target of issue 10 is x <= 1.5 for the lookup cost. The \
             store is built with `MongoStore::connect_with_options` (slates' defaults); the \
             seeded documents are checked to be found by the store's own point reads.{}",
            sizes_note.join("; ") + ".",
            fmt_count(large),
            if quick {
                format!(
                    " **Quick mode: {} tokens instead of 20,000 and fewer samples.**",
                    fmt_count(large)
                )
            } else {
                String::new()
            }
        ));
        table.note(format!(
            "Server-side (`explain`, verbosity `queryPlanner`, on the {}-token database, \
             single collection): {}.",
            fmt_count(large),
            explained.join("; ")
        ));
        if server.ferretdb {
            table.note(
                "FerretDB 1.x and `{_id}`: for a filter that is exactly `{_id: <string>}` its \
                 SQLite backend pushes the filter down into SQL (`filterPushdown: true`). \
                 Upstream 1.24 writes it as `WHERE _ferretdb_sjson->'$._id' = ?` while its \
                 unique `_id` index is on `_ferretdb_sjson->\"_id\"`; SQLite matches index \
                 expressions by their text, so upstream scans the table (plan `SCAN`) and a \
                 point read grows about linearly with the collection. The FerretDB built by \
                 `.ci/install-ferretdb` carries a one-line patch that queries with the index's \
                 own expression (plan `SEARCH ... USING INDEX`). The plan above says which \
                 one ran. MongoDB answers `{_id: <value>}` from its `_id` index.",
            );
        }
        table.note(
            "History: the store sends these filters since commit 1d63fe5. Before it, the token \
             lookup was the previous filter of the last single-collection row and a slate's \
             `_id` was a document `{u, s}` (neither pushed down by FerretDB 1.x); issue 10 \
             reported `GET /me` at 3.5 ms with a few tokens and 835 ms with 20,000 tokens and \
             user slates on FerretDB.",
        );
        run.tables.push(table);
    }

    fn fmt_count(n: usize) -> String {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }

    // ------------------------------------------------------------------ scenario 5c: flood

    /// Scenario 5c: 64 concurrent requests with random unknown tokens against 3,000 stored
    /// tokens, while a logged-in user keeps sending `GET /me`.
    fn flood(run: &mut Run, quick: bool, server: &Server, rt: &tokio::runtime::Runtime) {
        const WIDTH: usize = 64;
        let stored = 3_000;
        let length = Duration::from_secs(if quick { 2 } else { 8 });
        let alone_samples = if quick { 50 } else { 200 };
        let mut table = Table::new(
            format!(
                "Scenario 5c: {WIDTH}-way flood of random unknown tokens ({} stored tokens)",
                fmt_count(stored)
            ),
            &[
                "server",
                "flood",
                "requests",
                "200",
                "401",
                "503",
                "other",
                "flood req/s",
                "store errors",
                "logged-in GET /me alone: mean / p50 / p99",
                "during the flood: mean / p50 / p99",
                "logged-in non-200",
            ],
        );
        rt.block_on(async {
            let (store, _counter) = mongo::store(server, "slates_bench_flood").await;
            let db = store.database().clone();
            let slates = Engine::builder(store)
                .no_cache()
                .secure(false)
                .build()
                .await
                .unwrap();
            let layout = Layout::SingleCollection;
            let (_, tokens) =
                populate(&slates, &db, layout, stored, 1, Duration::from_secs(120)).await;
            let app = slates_app::app(slates.clone());
            let me = cookie_of(&tokens[0]);
            let send = |app: Router, cookie: HeaderValue| async move {
                let req = Request::get("/me")
                    .header(COOKIE, cookie)
                    .body(Body::empty())
                    .unwrap();
                app.oneshot(req).await.unwrap().status()
            };
            let mut alone = Vec::new();
            for _ in 0..alone_samples {
                let start = Instant::now();
                assert_eq!(send(app.clone(), me.clone()).await, 200);
                alone.push(start.elapsed());
            }
            let errors_before = slates.stats().store_errors;
            let start = Instant::now();
            let deadline = start + length;
            let flooders: Vec<_> = (0..WIDTH)
                .map(|_| {
                    let app = app.clone();
                    tokio::spawn(async move {
                        // 200, 401, 503, other.
                        let mut counts = [0u64; 4];
                        while Instant::now() < deadline {
                            let cookie = cookie_of(&Token::generate().unwrap());
                            let i = match send(app.clone(), cookie).await.as_u16() {
                                200 => 0,
                                401 => 1,
                                503 => 2,
                                _ => 3,
                            };
                            counts[i] += 1;
                        }
                        counts
                    })
                })
                .collect();
            let mut during = Vec::new();
            let mut not_ok = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if send(app.clone(), me.clone()).await != 200 {
                    not_ok += 1;
                }
                during.push(t.elapsed());
            }
            let mut counts = [0u64; 4];
            for f in flooders {
                for (c, n) in counts.iter_mut().zip(f.await.unwrap()) {
                    *c += n;
                }
            }
            let took = start.elapsed();
            let total: u64 = counts.iter().sum();
            table.row(vec![
                server.name.clone(),
                format!("{WIDTH} concurrent, {:.1} s", took.as_secs_f64()),
                total.to_string(),
                counts[0].to_string(),
                counts[1].to_string(),
                counts[2].to_string(),
                counts[3].to_string(),
                format!("{:.0}", total as f64 / took.as_secs_f64()),
                (slates.stats().store_errors - errors_before).to_string(),
                Latency::of(alone).cell(),
                format!(
                    "{} ({} requests)",
                    Latency::of(during.clone()).cell(),
                    during.len()
                ),
                not_ok.to_string(),
            ]);
            let _ = db.drop().await;
        });
        table.note(format!(
            "{WIDTH} tasks each send `GET /me` with a fresh random token (unknown to the store, so \
             the answer should be 401) back to back for {} s, while one logged-in user sends \
             `GET /me` one request at a time; single collection, {} stored tokens with user \
             slates, store built with `MongoStore::connect_with_options` (slates' defaults: \
             driver pool of 10 connections, `maxTimeMS` 5 s, server selection 3 s). 503 is \
             what the layer answers when the store fails; \"store errors\" counts the failures \
             slates logged. An unknown token is looked up like a known one (one `find` on \
             `_id`); the logged-in user's requests wait for the same connections and the same \
             server as the flood's. 2 worker threads, and the server on the same 2 cores.",
            length.as_secs(),
            fmt_count(stored)
        ));
        run.tables.push(table);
    }

    /// Which MongoDB tables to produce.
    #[derive(Clone, Copy)]
    pub struct Which {
        /// Scenarios 4b and 5.
        pub scale: bool,
        /// Scenario 5b.
        pub point_reads: bool,
        /// Scenario 5c.
        pub flood: bool,
    }

    pub fn run_all(run: &mut Run, quick: bool, which: Which) {
        let rt = multi_thread();
        let mut s4 = Table::new(
            "Scenario 4b: scale, MongoDB (live tokens and users)",
            &[
                "server",
                "layout",
                "users",
                "ns/request",
                "x 1k",
                "commands/request",
                "populated in",
            ],
        );
        let mut s5 = Table::new(
            "Scenario 5: MongoDB round trips (driver command monitoring)",
            &["server", "layout", "operation", "commands", "which"],
        );
        let server: Server = match rt.block_on(mongo::server()) {
            Ok(s) => s,
            Err(why) => {
                s4.row(vec![format!("skipped: {why}")]);
                s5.row(vec![format!("skipped: {why}")]);
                run.tables.push(s4);
                run.tables.push(s5);
                let mut t = Table::new("Scenarios 5b and 5c: point reads, flood", &["server"]);
                t.row(vec![format!("skipped: {why}")]);
                run.tables.push(t);
                return;
            }
        };
        println!("\nMongoDB rows against {} at {}", server.name, server.uri);
        if which.scale {
            scale(run, quick, &server, &rt, s4, s5);
        }
        if which.point_reads {
            point_reads(run, quick, &server, &rt);
        }
        if which.flood {
            flood(run, quick, &server, &rt);
        }
    }

    /// Scenarios 4b and 5.
    fn scale(
        run: &mut Run,
        quick: bool,
        server: &Server,
        rt: &tokio::runtime::Runtime,
        mut s4: Table,
        mut s5: Table,
    ) {
        let sizes: &[usize] = if quick { &[1_000] } else { &[1_000, 100_000] };
        let (samples, rounds) = if quick { (200, 2) } else { (2_000, 3) };
        let (budget, measure_budget) = if quick {
            (Duration::from_secs(60), Duration::from_secs(5))
        } else {
            (Duration::from_secs(120), Duration::from_secs(30))
        };
        for layout in [Layout::SingleCollection, Layout::CollectionPerUser] {
            let mut base = None;
            for &users in sizes {
                let db_name = format!(
                    "slates_bench_{}_{}",
                    if layout == Layout::CollectionPerUser {
                        "per_user"
                    } else {
                        "single"
                    },
                    users
                );
                rt.block_on(async {
                    let (db, counter) = mongo::database(server, &db_name).await;
                    let store = MongoStore::from_database(db.clone());
                    let slates = Engine::builder(store)
                        .no_cache()
                        .layout(layout)
                        .secure(false)
                        .build()
                        .await
                        .unwrap();
                    let started = Instant::now();
                    let (populated, tokens) =
                        populate(&slates, &db, layout, users, 1, budget).await;
                    let took = started.elapsed();
                    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
                    let cookies: Vec<HeaderValue> = (0..samples)
                        .map(|_| cookie_of(&tokens[rng.below(populated)]))
                        .collect();
                    let app = slates_app::app(slates.clone());
                    let (ns, sent, per_request) =
                        timed(&app, &cookies, rounds, measure_budget, &counter).await;
                    let base = *base.get_or_insert(ns);
                    s4.row(vec![
                        server.name.clone(),
                        layout_name(layout).into(),
                        if populated == users {
                            fmt_users(users)
                        } else {
                            format!(
                                "{} of {} (stopped at the {} s population budget)",
                                fmt_users(populated),
                                fmt_users(users),
                                budget.as_secs()
                            )
                        },
                        format!("{} ({sent} requests)", fmt_ns(ns)),
                        format!("{:.2}", ns / base),
                        format!("{per_request:.2}"),
                        format!("{:.1} s", took.as_secs_f64()),
                    ]);
                    if users == sizes[0] {
                        let (n, names) = commands(&counter, async {
                            let req = Request::get("/me")
                                .header(COOKIE, cookies[0].clone())
                                .body(Body::empty())
                                .unwrap();
                            assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
                        })
                        .await;
                        s5.row(vec![
                            server.name.clone(),
                            layout_name(layout).into(),
                            "authenticated request (GET /me)".into(),
                            n.to_string(),
                            names,
                        ]);
                        for (op, n, names) in workflow_ops(&slates, &counter).await {
                            s5.row(vec![
                                server.name.clone(),
                                layout_name(layout).into(),
                                format!("workflow: {op}"),
                                n.to_string(),
                                names,
                            ]);
                        }
                    }
                    let _ = db.drop().await;
                });
            }
        }
        s4.note(format!(
            "As the memory-store table, against {} on this machine ({samples} draws, \
             {rounds} passes or {} s, whichever ends first; mean). The first user is written through `MongoStore`; the others \
             are bulk copies of the documents it wrote (so population is fast), with the \
             indexes `build()` created. Population stops at a {} s budget.",
            server.name,
            measure_budget.as_secs(),
            budget.as_secs()
        ));
        if server.ferretdb {
            s4.note(
                "FerretDB 1.x with its SQLite backend translates every command to SQL: its \
                 latencies say nothing about MongoDB's. Set `SLATES_BENCH_MONGODB_URI` to a \
                 MongoDB server for representative figures.",
            );
        }
        run.tables.push(s4);
        run.tables.push(s5);
    }
}

#[cfg(not(feature = "mongodb"))]
mod mongo_scenarios {
    #[derive(Clone, Copy)]
    pub struct Which {
        pub scale: bool,
        pub point_reads: bool,
        pub flood: bool,
    }

    pub fn run_all(run: &mut super::Run, _quick: bool, _which: Which) {
        let mut t = super::Table::new("Scenarios 4b and 5: MongoDB", &["server"]);
        t.row(vec!["skipped: built without the `mongodb` feature".into()]);
        run.tables.push(t);
    }
}

// ------------------------------------------------------------------------------ output

fn write_chart(run: &Run, machine: &Machine, path: &Path) {
    let s1 = Panel {
        title: "1. Authenticated read-only request: ns per request (lower is better)".into(),
        y_desc: "ns per request".into(),
        groups: vec!["GET /me, memory stores, one thread".into()],
        series: run
            .s1
            .iter()
            .map(|(label, ns)| Series {
                label: label.clone(),
                color: chart::color(label),
                values: vec![Some(*ns)],
            })
            .collect(),
        log: false,
        value_fmt: |v| format!("{v:.0} ns"),
    };
    let s2 = Panel {
        title: "2. Lost updates: share of K concurrent writes that survive (higher is better)"
            .into(),
        y_desc: "% of updates kept".into(),
        groups: run.s2_groups.clone(),
        series: run
            .s2
            .iter()
            .map(|(label, values)| Series {
                label: label.clone(),
                color: chart::color(label),
                values: values.clone(),
            })
            .collect(),
        log: false,
        value_fmt: |v| format!("{v:.0}%"),
    };
    let s3 = Panel {
        title: "3. Short requests while the same user's 500 ms request runs (ms, log scale)".into(),
        y_desc: "latency (ms)".into(),
        groups: vec![
            "p50 alone".into(),
            "p99 alone".into(),
            "p50 during long request".into(),
            "p99 during long request".into(),
        ],
        series: run
            .s3
            .iter()
            .map(|(label, q)| Series {
                label: label.clone(),
                color: chart::color(label),
                values: q.iter().map(|d| Some(d.as_secs_f64() * 1_000.0)).collect(),
            })
            .collect(),
        log: true,
        value_fmt: |v| {
            if v >= 10.0 {
                format!("{v:.0} ms")
            } else if v >= 1.0 {
                format!("{v:.1} ms")
            } else {
                format!("{:.0} µs", v * 1_000.0)
            }
        },
    };
    match chart::draw(
        path,
        "slates vs tower-sessions vs a locking session vs bare axum",
        &machine.line(),
        &[s1, s2, s3],
    ) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("chart not written: {e}"),
    }
}

fn write_results(run: &Run, machine: &Machine, dir: &Path, quick: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut md = String::from("# slates benchmark results\n\n");
    if quick {
        md.push_str("**Quick mode** (`SLATES_BENCH_QUICK=1`): small sizes, few rounds.\n\n");
    }
    md.push_str(
        "Written by `cargo bench --bench scenarios` (see `benches/scenarios.rs`). Figures \
         are ratios against baselines measured in the same run; no timing is asserted. The \
         machine is shared, so absolute numbers move between runs; compare within a table.\n\n\
         ![chart](chart.svg)\n\n## Machine\n\n",
    );
    md.push_str(&machine.markdown(&load_average()));
    md.push_str("\n## Results\n\n");
    for table in &run.tables {
        md.push_str(&table.markdown());
    }
    let path = dir.join("RESULTS.md");
    std::fs::write(&path, md).unwrap();
    println!("wrote {}", path.display());
    if !run.s1.is_empty() && !run.s2.is_empty() && !run.s3.is_empty() {
        write_chart(run, machine, &dir.join("chart.svg"));
    }
}

fn main() {
    if common::callgrind::run_profile() {
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument would be the only other thing.
    let quick = common::quick();
    let machine = Machine::detect();
    println!(
        "slates scenarios ({} mode) on {}; load average {}",
        if quick { "quick" } else { "full" },
        machine.line(),
        machine.load
    );
    let started = Instant::now();
    // `SLATES_BENCH_ONLY=1,3`: only those scenarios (4 is the memory store, 5 every MongoDB
    // table; 4b, 5b and 5c pick single MongoDB tables, 4b also giving 5); results then go to
    // target/bench-partial, never over benches/results.
    let only: Option<Vec<String>> = std::env::var("SLATES_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|n| n.trim().to_owned()).collect());
    let wants = |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n));
    let mut run = Run::default();
    if wants("1") {
        scenario1(&mut run, quick);
    }
    if wants("2") {
        scenario2(&mut run, quick);
    }
    if wants("3") {
        scenario3(&mut run, quick);
    }
    if wants("4") {
        scenario4_memory(&mut run, quick);
    }
    let mongo = mongo_scenarios::Which {
        scale: wants("5") || wants("4b"),
        point_reads: wants("5") || wants("5b"),
        flood: wants("5") || wants("5c"),
    };
    if mongo.scale || mongo.point_reads || mongo.flood {
        mongo_scenarios::run_all(&mut run, quick, mongo);
    }
    if wants("6") {
        run.tables.extend(common::two_instances::tables(quick));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir: PathBuf = if quick {
        root.join("target/bench-quick")
    } else if only.is_some() || std::env::var_os("SLATES_BENCH_SYSTEMS").is_some() {
        root.join("target/bench-partial")
    } else {
        root.join("benches/results")
    };
    write_results(&run, &machine, &dir, quick);
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
}
