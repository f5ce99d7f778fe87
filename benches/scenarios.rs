//! Scenarios 1-5 of the benchmark issue, side by side with tower-sessions 0.15, a locking
//! session and bare axum, all driven through their real routers with `oneshot`.
//!
//! ```text
//! cargo bench --bench scenarios                         # full: writes benches/results/
//! SLATES_BENCH_QUICK=1 cargo bench --bench scenarios    # CI: small sizes, writes target/bench-quick/
//! ```
//!
//! 1. overhead of an authenticated read-only request (ns/request, ratios);
//! 2. lost updates with K concurrent writers of one user, and the "logout undone" race;
//! 3. isolation of short requests from a long request of the same user (p50/p99);
//! 4. scale: per-request cost and memory at 1k / 100k / 1M users in the memory store, and at
//!    1k / 100k users in MongoDB with each layout;
//! 5. MongoDB round trips per authenticated request and per workflow operation.
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
use common::{fmt_ms, fmt_ns, median, quantile, slates_app, Kind, Profile, Tab};
use http::header::COOKIE;
use http::{HeaderValue, Request};
use slates::store::{Expiry, SlateKey, TokenRecord};
use slates::{MemoryStore, SlateName, Store, Token, Username};
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

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
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
         `oneshot`; the request carries the cookie. slates checks the token (SHA-256, lookup) \
         and loads the user slate; tower-sessions loads the session record on \
         `session.get(\"user\")`; the locking session takes the session's mutex and \
         deserializes its record. Median of {rounds} interleaved rounds of {n} requests per \
         system."
    ));
    if criterion {
        table.note(
            "The last column is criterion's mean from the latest `cargo bench --bench overhead` \
             run (a separate process, possibly at another time).",
        );
    }
    run.tables.push(table);
}

// ------------------------------------------------------------------------------ scenario 2

/// The writers of scenario 2: a system and the route that adds one item.
const WRITERS: [(Kind, &str, &str); 4] = [
    (Kind::Slates, "/add", "slates (atomic $push)"),
    (Kind::Slates, "/add-cas", "slates (modify, CAS)"),
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
         (slates: one atomic `$push`, or `Slate::modify`, a compare-and-swap retried on \
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

/// A small deterministic generator for sampling users.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Median ns per `/me` request with cookies drawn from `cookies`, over `rounds` passes.
async fn time_population(app: &Router, cookies: &[HeaderValue], rounds: usize) -> f64 {
    let mut per_round = Vec::new();
    for round in 0..=rounds {
        let start = Instant::now();
        for cookie in cookies {
            let req = Request::get("/me")
                .header(COOKIE, cookie.clone())
                .body(Body::empty())
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), 200);
        }
        // Round 0 warms up.
        if round > 0 {
            per_round.push(start.elapsed().as_nanos() as f64 / cookies.len() as f64);
        }
    }
    median(&mut per_round)
}

fn cookie_of(token: &Token) -> HeaderValue {
    HeaderValue::from_str(&format!("slates={}", token.encode())).unwrap()
}

fn user_name(i: usize) -> String {
    format!("user{i}")
}

struct ScaleRow {
    users: usize,
    /// Cookies drawn from the whole population.
    ns: f64,
    /// Cookies drawn from 1,000 users of the population (a hot set that fits in cache).
    ns_active: f64,
    /// Heap bytes per live token (slates) and per user slate; tower-sessions keeps both in
    /// one session record, reported as `session_bytes`.
    token_bytes: Option<f64>,
    slate_bytes: Option<f64>,
    session_bytes: f64,
    populate: Duration,
}

/// Times the population with cookies from everyone and from a hot set of 1,000 users.
async fn time_both(app: &Router, all: &[HeaderValue], samples: usize, rounds: usize) -> (f64, f64) {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let hot: Vec<&HeaderValue> = (0..1_000.min(all.len()))
        .map(|_| &all[rng.below(all.len())])
        .collect();
    let from_all: Vec<HeaderValue> = (0..samples)
        .map(|_| all[rng.below(all.len())].clone())
        .collect();
    let from_hot: Vec<HeaderValue> = (0..samples)
        .map(|_| hot[rng.below(hot.len())].clone())
        .collect();
    (
        time_population(app, &from_all, rounds).await,
        time_population(app, &from_hot, rounds).await,
    )
}

async fn scale_slates(users: usize, samples: usize, rounds: usize) -> ScaleRow {
    let now = time::OffsetDateTime::now_utc();
    let expires = now + time::Duration::days(14);
    let tokens: Vec<Token> = (0..users).map(|_| Token::generate().unwrap()).collect();
    let store = MemoryStore::new();
    let slates = slates_app::with_store(store.clone()).await;
    let started = Instant::now();
    let a0 = ALLOC.allocated();
    for (i, token) in tokens.iter().enumerate() {
        let record = TokenRecord {
            hash: token.hash(),
            user: Username::new(&user_name(i)).unwrap(),
            created: now,
            expires,
            renewed: None,
            rotated: None,
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
    let populate = started.elapsed();
    let cookies: Vec<HeaderValue> = tokens.iter().map(cookie_of).collect();
    drop(tokens);
    let app = slates_app::app(slates);
    let (ns, ns_active) = time_both(&app, &cookies, samples, rounds).await;
    let per = |bytes: usize| bytes as f64 / users as f64;
    ScaleRow {
        users,
        ns,
        ns_active,
        token_bytes: Some(per(a1 - a0)),
        slate_bytes: Some(per(a2 - a1)),
        session_bytes: per(a2 - a0),
        populate,
    }
}

async fn scale_tower_sessions(users: usize, samples: usize, rounds: usize) -> ScaleRow {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::session_store::SessionStore;
    let expiry_date = time::OffsetDateTime::now_utc() + time::Duration::days(14);
    let store = tower_sessions::MemoryStore::default();
    let mut ids: Vec<Id> = Vec::with_capacity(users);
    let started = Instant::now();
    let a0 = ALLOC.allocated();
    for i in 0..users {
        let name = user_name(i);
        let mut record = Record {
            id: Id::default(),
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
        store.create(&mut record).await.unwrap();
        ids.push(record.id);
    }
    let a1 = ALLOC.allocated();
    let populate = started.elapsed();
    let cookies: Vec<HeaderValue> = ids
        .iter()
        .map(|id| HeaderValue::from_str(&format!("id={id}")).unwrap())
        .collect();
    let app = common::ts_app::with_store(store);
    let (ns, ns_active) = time_both(&app, &cookies, samples, rounds).await;
    ScaleRow {
        users,
        ns,
        ns_active,
        token_bytes: None,
        slate_bytes: None,
        // `ids` (16 bytes a user) was allocated before the baseline.
        session_bytes: (a1 - a0) as f64 / users as f64,
        populate,
    }
}

fn fmt_users(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn scenario4_memory(run: &mut Run, quick: bool) {
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 100_000, 1_000_000]
    };
    let (samples, rounds) = if quick { (2_000, 3) } else { (20_000, 5) };
    let rt = current_thread();
    let mut table = Table::new(
        "Scenario 4: scale, memory stores (live tokens and users)",
        &[
            "system",
            "users (= live tokens)",
            "ns/request, any user",
            "x 1k",
            "ns/request, 1k active users",
            "heap per token",
            "heap per user slate",
            "heap per user, total",
            "populated in",
        ],
    );
    let b = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} B"));
    for kind in [Kind::Slates, Kind::TowerSessions] {
        let mut first = None;
        for &users in sizes {
            let row = match kind {
                Kind::Slates => rt.block_on(scale_slates(users, samples, rounds)),
                _ => rt.block_on(scale_tower_sessions(users, samples, rounds)),
            };
            let base = *first.get_or_insert(row.ns);
            table.row(vec![
                kind.label().into(),
                fmt_users(row.users),
                fmt_ns(row.ns),
                format!("{:.2}", row.ns / base),
                fmt_ns(row.ns_active),
                b(row.token_bytes),
                b(row.slate_bytes),
                format!("{:.0} B", row.session_bytes),
                format!("{:.1} s", row.populate.as_secs_f64()),
            ]);
        }
    }
    table.note(format!(
        "Each user has one live token and a user slate (a profile: name, time zone, 3 \
         permissions, 3 panels); for tower-sessions, one session record holding `user` and the \
         same profile. `GET /me` with the cookie of a user drawn at random from the whole \
         population (\"any user\"), or from a fixed set of 1,000 of them (\"1k active \
         users\": the same lookups on the same structures, with a working set that fits in \
         cache); {samples} draws, median of {rounds} passes, one thread. Heap bytes are live \
         bytes counted by a global allocator (after populating, minus before, per user; hash \
         table slack included; malloc's own few bytes per allocation are not)."
    ));
    run.tables.push(table);
}

// ------------------------------------------------------------------- scenarios 4 and 5: MongoDB

#[cfg(feature = "mongodb")]
mod mongo_scenarios {
    use super::*;
    use common::mongo::{self, CommandCounter, Server};
    use slates::bson::{doc, Document};
    use slates::{Layout, MongoStore, Slates};

    fn layout_name(layout: Layout) -> &'static str {
        match layout {
            Layout::CollectionPerUser => "collection per user",
            _ => "single collection",
        }
    }

    /// Populates `users` users (one live token and a user slate each). The first goes
    /// through the store (the documents the store writes are the templates); the rest are
    /// bulk copies of them. Stops at `budget`; returns the users populated and the tokens.
    async fn populate(
        slates: &Slates,
        db: &slates::mongodb::Database,
        layout: Layout,
        users: usize,
        budget: Duration,
    ) -> (usize, Vec<Token>) {
        let started = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let tokens: Vec<Token> = (0..users).map(|_| Token::generate().unwrap()).collect();
        let store = slates.store();
        let first = user_name(0);
        store
            .insert_token(&TokenRecord {
                hash: tokens[0].hash(),
                user: Username::new(&first).unwrap(),
                created: now,
                expires: now + time::Duration::days(14),
                renewed: None,
                rotated: None,
            })
            .await
            .unwrap();
        let key = SlateKey::new(Username::new(&first).unwrap(), SlateName::user());
        let profile = slates::bson::to_document(&Profile::of(&first)).unwrap();
        store
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
                    let docs: Vec<(String, Document)> = (done + lane..end)
                        .step_by(8)
                        .map(|i| (format!("{prefix}{}", user_name(i)), slate_of(i)))
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
            } else {
                slates_coll
                    .insert_many((done..end).map(slate_of).collect::<Vec<_>>())
                    .await
                    .unwrap();
            }
            done = end;
        }
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

    async fn workflow_ops(slates: &Slates, counter: &CommandCounter) -> Vec<(String, u64, String)> {
        let slate = slates
            .user_slates(&user_name(0))
            .unwrap()
            .slate("new_id_set");
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
            slate
                .modify(|d: &mut Document| {
                    d.insert("checked", true);
                })
                .await
                .unwrap();
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

    pub fn run_all(run: &mut Run, quick: bool) {
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
                return;
            }
        };
        println!("\nMongoDB rows against {} at {}", server.name, server.uri);
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
                    let (db, counter) = mongo::database(&server, &db_name).await;
                    let store = MongoStore::from_database(db.clone());
                    let slates = Slates::builder(store)
                        .layout(layout)
                        .secure(false)
                        .build()
                        .await
                        .unwrap();
                    let started = Instant::now();
                    let (populated, tokens) = populate(&slates, &db, layout, users, budget).await;
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
            s5.note(
                "FerretDB 1.x has no pipeline updates, so `put` falls back to a read and a \
                 compare-and-swap (2 commands); on MongoDB it is one `findAndModify`.",
            );
        }
        run.tables.push(s4);
        run.tables.push(s5);
    }
}

#[cfg(not(feature = "mongodb"))]
mod mongo_scenarios {
    pub fn run_all(run: &mut super::Run, _quick: bool) {
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
    // `SLATES_BENCH_ONLY=1,3`: only those scenarios (4 is the memory store, 5 both MongoDB
    // tables); results then go to target/bench-partial, never over benches/results.
    let only: Option<Vec<u32>> = std::env::var("SLATES_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    let wants = |n: u32| only.as_ref().is_none_or(|o| o.contains(&n));
    let mut run = Run::default();
    if wants(1) {
        scenario1(&mut run, quick);
    }
    if wants(2) {
        scenario2(&mut run, quick);
    }
    if wants(3) {
        scenario3(&mut run, quick);
    }
    if wants(4) {
        scenario4_memory(&mut run, quick);
    }
    if wants(5) {
        mongo_scenarios::run_all(&mut run, quick);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir: PathBuf = if quick {
        root.join("target/bench-quick")
    } else if only.is_some() {
        root.join("target/bench-partial")
    } else {
        root.join("benches/results")
    };
    write_results(&run, &machine, &dir, quick);
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
}
