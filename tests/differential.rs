//! Differential tests (issue 10, point 6): the memory store is slates' model of MongoDB, so
//! the same calls on a `MemoryStore` and on a `MongoStore` must give the same answers and
//! leave the same documents, BSON types and field order included.
//!
//! - `prop_memory_store_matches_the_server`: random short sequences of `update_slate` (mixes
//!   of set/unset/inc/push/add_to_set and their bulk forms push_all/add_all_to_set, empty
//!   lists included, on a small vocabulary of dotted paths, numeric segments included,
//!   sometimes several operators in one call, sometimes with a `counter`), `put_slate`
//!   and `delete_slate`, applied to a fresh memory store and to a fresh slate on the wire
//!   server, compared after every call.
//!   128 cases by default (a few seconds); `SLATES_DIFFERENTIAL_CASES=3000` runs more.
//! - one deterministic test per rule of MongoDB the memory store follows (`$addToSet`
//!   equality, numeric path segments, `$inc` promotion, the 16 MiB result limit), asserting
//!   MongoDB's documented result on both stores.
//!
//! The test server is FerretDB 1.x unless `SLATES_TEST_MONGODB_URI` names a MongoDB. Where
//! FerretDB deviates from MongoDB the memory store keeps MongoDB's behaviour and the test
//! makes an explicit exception (see [`Deviation`]): each one is recognised by a predicate,
//! cites the MongoDB documentation, fires only on FerretDB, is counted, and the count is
//! printed and recorded as "weakened".

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bson::{doc, Bson, Document};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use slates::store::SlateStore as _;
use slates::store::{check_ops, Expiry, SlateKey, StoreOptions, UpdateOp};
use slates::{Error, MemoryStore, SlateName, Store, Username};
use time::OffsetDateTime;

use common::Backend;

// ------------------------------------------------------------------ FerretDB deviations

/// A documented behaviour of MongoDB that FerretDB 1.x does not have. The memory store
/// follows MongoDB; when a comparison fails only because of one of these, on FerretDB, the
/// test counts it instead of failing (and brings the server's slate back to MongoDB's state,
/// or ends the sequence when FerretDB cannot store that state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deviation {
    /// FerretDB 1.x refuses any array inside an array ("nested arrays are not supported",
    /// error 2, which slates reads as a type mismatch in an update and a store error in a
    /// put), and `$addToSet` of an empty array onto a missing field stores `[]`. MongoDB
    /// stores nested arrays: "If the value is an array, $push appends the whole array as a
    /// single element",
    /// <https://www.mongodb.com/docs/manual/reference/operator/update/push/#behavior>, and
    /// the same for `$addToSet`,
    /// <https://www.mongodb.com/docs/manual/reference/operator/update/addToSet/#value-to-add-is-an-array>.
    NestedArrays,
    /// FerretDB removes an array element named by `$unset: {"a.0": ""}`, shifting the
    /// others. MongoDB sets it to null: "$unset replaces the matching element with null
    /// rather than removing the matching element from the array. This behavior keeps
    /// consistent the array size and element positions",
    /// <https://www.mongodb.com/docs/manual/reference/operator/update/unset/#behavior>
    /// (the page says it of `$`; the server does it for every array element, `UnsetNode`:
    /// <https://github.com/mongodb/mongo/blob/master/src/mongo/db/update/unset_node.cpp>).
    UnsetArrayElementRemoves,
    /// FerretDB wraps an int32 `$inc` that overflows upwards (2147483647 + 1 is -2147483648,
    /// an int32). MongoDB promotes the result to an int64 (`addInt32Int32` in
    /// <https://github.com/mongodb/mongo/blob/master/src/mongo/util/safe_num.cpp>; the
    /// manual's `$inc` page,
    /// <https://www.mongodb.com/docs/manual/reference/operator/update/inc/#behavior>, does
    /// not spell the promotion out).
    Int32OverflowWraps,
    /// FerretDB does not refuse an update whose *result* exceeds 16 MiB. MongoDB: "The
    /// maximum BSON document size is 16 mebibytes",
    /// <https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-BSON-Document-Size>.
    NoResultSizeLimit,
    /// FerretDB ignores a `$set` of a document onto a document whose values are the same,
    /// in the same order, under other field names (`{a: 1}` set to `{k: 1}` stays
    /// `{a: 1}`; `{a: 1}` to `{k: 2}` is applied): it compares the values only to decide
    /// that nothing changed. MongoDB replaces the value: "$set replaces the value of a
    /// field with the specified value",
    /// <https://www.mongodb.com/docs/manual/reference/operator/update/set/#behavior>.
    /// Found by the property test below (measured against FerretDB 1.24 by hand too).
    SetSameValuesOtherKeysIgnored,
}

impl Deviation {
    fn describe(self) -> &'static str {
        match self {
            Deviation::NestedArrays => {
                "FerretDB refuses arrays inside arrays (MongoDB stores them: \
                 https://www.mongodb.com/docs/manual/reference/operator/update/push/#behavior)"
            }
            Deviation::UnsetArrayElementRemoves => {
                "FerretDB removes an array element on $unset (MongoDB sets it to null: \
                 https://www.mongodb.com/docs/manual/reference/operator/update/unset/#behavior)"
            }
            Deviation::Int32OverflowWraps => {
                "FerretDB wraps int32 $inc overflow (MongoDB promotes it to int64: \
                 https://github.com/mongodb/mongo/blob/master/src/mongo/util/safe_num.cpp)"
            }
            Deviation::NoResultSizeLimit => {
                "FerretDB stores update results over 16 MiB (MongoDB refuses them: \
                 https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-BSON-Document-Size)"
            }
            Deviation::SetSameValuesOtherKeysIgnored => {
                "FerretDB ignores a $set of a document with the same values under other keys \
                 (MongoDB replaces it: \
                 https://www.mongodb.com/docs/manual/reference/operator/update/set/#behavior)"
            }
        }
    }
}

/// What one step did on both stores, for the deviation predicates.
struct Observation<'a> {
    step: &'a Step,
    /// The slate before the step (the same on both stores, or the comparison failed earlier).
    before: Option<&'a Document>,
    memory: &'a Outcome,
    server: &'a Outcome,
    memory_doc: Option<&'a Document>,
}

/// The FerretDB deviation that explains a difference, if one does. Only consulted when the
/// server is FerretDB. Each predicate recognises the situation from the step, the slate
/// before it and the memory store's (MongoDB's) answer.
fn ferretdb_deviation(o: &Observation<'_>) -> Option<Deviation> {
    let empty = Document::new();
    let before = o.before.unwrap_or(&empty);
    // An array inside an array: in the result MongoDB leaves, or in a value sent.
    if o.memory_doc.is_some_and(|d| d.values().any(nested_array))
        || step_values(o.step).iter().any(nested_array)
    {
        return Some(Deviation::NestedArrays);
    }
    if let Step::Update { ops, .. } = o.step {
        // `$unset` of an existing array element, which MongoDB leaves as a null.
        let unsets_element = ops.iter().any(|op| match op {
            UpdateOp::Unset(path) => {
                let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
                matches!(get_path(before, parent), Some(Bson::Array(items))
                    if last.parse::<usize>().is_ok_and(|i| i < items.len()))
            }
            _ => false,
        });
        if unsets_element && matches!(o.memory, Outcome::Updated(_)) {
            return Some(Deviation::UnsetArrayElementRemoves);
        }
        // int32 + int32 past the int32 range (the increments of one field merged first).
        let overflows = increments(ops).into_iter().any(|(path, by)| {
            matches!((get_path(before, path), by), (Some(Bson::Int32(x)), Bson::Int32(y))
                if x.checked_add(y).is_none())
        });
        if overflows {
            return Some(Deviation::Int32OverflowWraps);
        }
        // `$set` of a document whose values equal the current document's, keys aside.
        let same_values_other_keys = ops.iter().any(|op| match op {
            UpdateOp::Set(path, Bson::Document(new)) => matches!(get_path(before, path),
                Some(Bson::Document(old)) if old.len() == new.len()
                    && old.keys().ne(new.keys())
                    && old.values().eq(new.values())),
            _ => false,
        });
        if same_values_other_keys && matches!(o.memory, Outcome::Updated(_)) {
            return Some(Deviation::SetSameValuesOtherKeysIgnored);
        }
    }
    // An update MongoDB (and the memory store) refuse as too large, stored by FerretDB.
    if *o.memory == Outcome::Failed("DocumentTooLarge") && matches!(o.server, Outcome::Updated(_)) {
        return Some(Deviation::NoResultSizeLimit);
    }
    None
}

/// Whether `v` is, or holds, an array with an array in it.
fn nested_array(v: &Bson) -> bool {
    match v {
        Bson::Array(items) => items
            .iter()
            .any(|i| matches!(i, Bson::Array(_)) || nested_array(i)),
        Bson::Document(d) => d.values().any(nested_array),
        _ => false,
    }
}

/// The values a step sends; for `push` and `add_to_set` (single or bulk), as the elements
/// they become (an array value becomes an array in an array).
fn step_values(step: &Step) -> Vec<Bson> {
    match step {
        Step::Put(doc) => doc.values().cloned().collect(),
        Step::Update { ops, .. } => ops
            .iter()
            .filter_map(|op| match op {
                UpdateOp::Set(_, v) => Some(v.clone()),
                UpdateOp::Push(_, v) | UpdateOp::AddToSet(_, v) => {
                    Some(Bson::Array(vec![v.clone()]))
                }
                UpdateOp::PushAll(_, vs) | UpdateOp::AddAllToSet(_, vs) => {
                    Some(Bson::Array(vs.clone()))
                }
                _ => None,
            })
            .collect(),
        Step::Delete => Vec::new(),
    }
}

/// The increment each field of `ops` receives, repeats merged as the stores merge them
/// (int32s add up while they fit; past that, or with another type, it is no int32).
fn increments(ops: &[UpdateOp]) -> Vec<(&str, Bson)> {
    let mut merged: Vec<(&str, Bson)> = Vec::new();
    for op in ops {
        if let UpdateOp::Inc(path, by) = op {
            match merged.iter_mut().find(|(p, _)| p == path) {
                None => merged.push((path, by.clone())),
                Some((_, old)) => {
                    *old = match (&*old, by) {
                        (Bson::Int32(x), Bson::Int32(y)) => {
                            x.checked_add(*y).map_or(Bson::Null, Bson::Int32)
                        }
                        _ => Bson::Null,
                    }
                }
            }
        }
    }
    merged
}

/// The value at a dotted path, array indexes followed (as MongoDB does).
fn get_path<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut segments = path.split('.');
    let mut current = doc.get(segments.next()?)?;
    for segment in segments {
        current = match current {
            Bson::Document(d) => d.get(segment)?,
            Bson::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Counts of deviations met, per test.
#[derive(Default)]
struct Deviations(Mutex<BTreeMap<Deviation, u64>>);

impl Deviations {
    fn add(&self, d: Deviation) {
        *self.0.lock().unwrap().entry(d).or_default() += 1;
    }

    /// Prints the counts and records the test as weakened if any deviation fired.
    fn report(&self, test: &str) {
        let counts = self.0.lock().unwrap();
        for (d, n) in counts.iter() {
            say!(
                "NOTE: {test}: FerretDB deviation {d:?} excepted {n} time(s): {}",
                d.describe()
            );
        }
        if !counts.is_empty() {
            let list: Vec<String> = counts.keys().map(|d| format!("{d:?}")).collect();
            common::record_skip(
                "weakened",
                &common::current_test(test),
                &format!(
                    "FerretDB deviations from MongoDB excepted in the differential test: {}",
                    list.join(", ")
                ),
            );
        }
    }
}

// ------------------------------------------------------------------ steps and outcomes

/// One store call.
#[derive(Debug, Clone)]
enum Step {
    Update {
        ops: Vec<UpdateOp>,
        counter: Option<String>,
    },
    Put(Document),
    Delete,
}

/// What a store call answered: success (with what it reports) or the error's variant.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Updated(Option<i64>),
    Put,
    Deleted(bool),
    Failed(&'static str),
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::InvalidName { .. } => "InvalidName",
        Error::DocumentTooLarge { .. } => "DocumentTooLarge",
        Error::TypeMismatch { .. } => "TypeMismatch",
        Error::ConflictingOperators { .. } => "ConflictingOperators",
        Error::MalformedDocument { .. } => "MalformedDocument",
        Error::Conflict { .. } => "Conflict",
        Error::DuplicateKey => "DuplicateKey",
        Error::Unavailable(_) => "Unavailable",
        Error::Store(_) => "Store",
        _ => "other",
    }
}

fn now() -> OffsetDateTime {
    // Fixed: nothing in these tests expires.
    OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000)
}

async fn run(store: &dyn Store, key: &SlateKey, step: &Step) -> Outcome {
    let result = match step {
        Step::Update { ops, counter } => store
            .update_slate(key, ops, Expiry::Keep, counter.as_deref(), now())
            .await
            .map(|u| Outcome::Updated(u.counter)),
        Step::Put(doc) => store
            .put_slate(key, doc, Expiry::Keep, now())
            .await
            .map(|_| Outcome::Put),
        Step::Delete => store.delete_slate(key, now()).await.map(Outcome::Deleted),
    };
    match result {
        Ok(o) => o,
        Err(e @ Error::Unavailable(_)) => panic!("the store is unavailable: {e}"),
        Err(e) => Outcome::Failed(variant(&e)),
    }
}

async fn read(store: &dyn Store, key: &SlateKey) -> Option<Document> {
    store
        .get_slate(key, now())
        .await
        .expect("get_slate")
        .map(|s| s.doc.to_document().expect("stored fields"))
}

/// Exact equality: same fields in the same order with the same BSON types and bits.
fn identical(a: Option<&Document>, b: Option<&Document>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => bson::to_vec(a).unwrap() == bson::to_vec(b).unwrap(),
        _ => false,
    }
}

/// A document for a failure message, long strings shortened.
fn show(doc: Option<&Document>) -> String {
    fn short(v: &Bson) -> Bson {
        match v {
            Bson::String(s) if s.len() > 64 => Bson::String(format!("<{} bytes>", s.len())),
            Bson::Array(items) => Bson::Array(items.iter().map(short).collect()),
            Bson::Document(d) => {
                Bson::Document(d.iter().map(|(k, v)| (k.clone(), short(v))).collect())
            }
            other => other.clone(),
        }
    }
    match doc {
        Some(d) => format!("{:?}", short(&Bson::Document(d.clone()))),
        None => "None".into(),
    }
}

fn key(slate: &str) -> SlateKey {
    SlateKey::new(
        Username::new("ada").unwrap(),
        SlateName::new(slate).unwrap(),
    )
}

// ------------------------------------------------------------------ the stores

/// The server's store, prepared (single-collection layout), or `None` when there is no
/// server (the harness has said so and recorded the skip).
async fn server_store(test: &str) -> Option<Arc<dyn Store>> {
    let store = Backend::Mongo(slates::Layout::SingleCollection)
        .store(test)
        .await?;
    store
        .prepare_slates(&StoreOptions::default())
        .await
        .expect("prepare the server store");
    Some(store)
}

async fn is_ferretdb() -> bool {
    common::mongo::is_ferretdb().await
}

// ------------------------------------------------------------------ the property

const PATHS: &[&str] = &[
    "a", "b", "a.b", "a.0", "ids", "ids.0", "ids.1", "ids.3", "ids.0.k", "n.x",
];
/// Paths a counter may name: any, array indexes included.
const COUNTER_PATHS: &[&str] = PATHS;

fn leaf() -> impl Strategy<Value = Bson> {
    prop_oneof![
        3 => prop::sample::select(vec![0, 1, 2, -1, i32::MAX, i32::MIN]).prop_map(Bson::Int32),
        3 => prop::sample::select(vec![0_i64, 1, 2, -1, i64::MAX, i64::MIN, 1 << 40])
            .prop_map(Bson::Int64),
        // No -0.0: FerretDB stores it as 0.0 (MongoDB keeps the sign; the interpreter's unit
        // tests cover it).
        3 => prop::sample::select(vec![0.0, 1.0, 2.0, 0.5, -1.5, 0.1, 1e300])
            .prop_map(Bson::Double),
        2 => prop::sample::select(vec!["", "x", "1"]).prop_map(|s| Bson::String(s.into())),
        1 => any::<bool>().prop_map(Bson::Boolean),
        1 => Just(Bson::Null),
    ]
}

fn value() -> impl Strategy<Value = Bson> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Bson::Array),
            prop::collection::vec((prop::sample::select(vec!["k", "j"]), inner), 0..3).prop_map(
                |pairs| {
                    Bson::Document(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }
            ),
        ]
    })
}

fn increment() -> impl Strategy<Value = Bson> {
    prop_oneof![
        6 => leaf().prop_filter("a number", |v| matches!(v, Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_))),
        1 => leaf(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(PATHS).prop_map(str::to_owned)
}

/// A value to push or add to a set: mostly a scalar, as an array value makes an array in
/// an array, which FerretDB cannot store (the sequence then ends there).
fn element() -> impl Strategy<Value = Bson> {
    prop_oneof![3 => leaf(), 1 => value()]
}

/// The values of a bulk push or add to set: often empty (an absent field then becomes an
/// empty array), sometimes with repeats (which `$addToSet` with `$each` drops).
fn elements() -> impl Strategy<Value = Vec<Bson>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => prop::collection::vec(element(), 1..4),
        1 => element().prop_map(|v| vec![v.clone(), v]),
    ]
}

fn op() -> impl Strategy<Value = UpdateOp> {
    prop_oneof![
        (path(), value()).prop_map(|(p, v)| UpdateOp::Set(p, v)),
        path().prop_map(UpdateOp::Unset),
        (path(), increment()).prop_map(|(p, v)| UpdateOp::Inc(p, v)),
        (path(), element()).prop_map(|(p, v)| UpdateOp::Push(p, v)),
        (path(), element()).prop_map(|(p, v)| UpdateOp::AddToSet(p, v)),
        (path(), elements()).prop_map(|(p, vs)| UpdateOp::PushAll(p, vs)),
        (path(), elements()).prop_map(|(p, vs)| UpdateOp::AddAllToSet(p, vs)),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    // Conflicting operators (refused by both stores, before anything) one time in eight;
    // otherwise the operators that would conflict with earlier ones are dropped.
    let update = (
        prop::collection::vec(op(), 1..4),
        prop::bool::weighted(0.125),
    )
        .prop_map(|(ops, keep_conflicts)| {
            let mut kept: Vec<UpdateOp> = Vec::new();
            for op in ops {
                kept.push(op);
                if !keep_conflicts && check_ops(&kept).is_err() {
                    kept.pop();
                }
            }
            Step::Update {
                ops: kept,
                counter: None,
            }
        });
    // What `RawSlate::inc` sends: an int64 `inc` with its field as the counter, here sometimes
    // with other operators.
    let counted = (
        prop::sample::select(COUNTER_PATHS),
        prop::sample::select(vec![1_i64, -1, 7, i64::MAX]),
        prop::collection::vec(op(), 0..2),
    )
        .prop_map(|(field, by, others)| {
            let mut ops = vec![UpdateOp::Inc(field.to_owned(), Bson::Int64(by))];
            // Other operators may increment the counter again (by a double too: the total
            // must then be refused before anything is written). No conflicting operators:
            // the plain updates cover those.
            for op in others {
                ops.push(op);
                if check_ops(&ops).is_err() {
                    ops.pop();
                }
            }
            Step::Update {
                ops,
                counter: Some(field.to_owned()),
            }
        });
    let put = prop::collection::vec(
        (prop::sample::select(vec!["a", "b", "ids", "n"]), value()),
        0..4,
    )
    .prop_map(|pairs| Step::Put(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop_oneof![
        8 => update,
        3 => counted,
        2 => put,
        1 => Just(Step::Delete),
    ]
}

fn cases() -> u32 {
    std::env::var("SLATES_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

/// How many steps agreed, by what they answered.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, step: &Step, outcome: &Outcome) {
        let what = match (step, outcome) {
            (Step::Update { counter: None, .. }, _) => "update",
            (Step::Update { .. }, _) => "counted update",
            (Step::Put(_), _) => "put",
            (Step::Delete, _) => "delete",
        };
        let how = match outcome {
            Outcome::Failed(e) => e,
            _ => "ok",
        };
        *self
            .0
            .lock()
            .unwrap()
            .entry(format!("{what} {how}"))
            .or_default() += 1;
    }

    fn summary(&self) -> String {
        let counts = self.0.lock().unwrap();
        let total: u64 = counts.values().sum();
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        format!("{total} steps agreed ({})", parts.join(", "))
    }
}

/// Applies `steps` to a fresh memory store and to a fresh slate `slate` on the server,
/// comparing after every step.
async fn check_sequence(
    server: &dyn Store,
    ferretdb: bool,
    slate: &str,
    steps: &[Step],
    deviations: &Deviations,
    tally: &Tally,
) -> Result<(), TestCaseError> {
    let memory = MemoryStore::new();
    let key = key(slate);
    let mut before: Option<Document> = None;
    for (i, step) in steps.iter().enumerate() {
        let m = run(&memory, &key, step).await;
        let s = run(server, &key, step).await;
        let m_doc = read(&memory, &key).await;
        let s_doc = read(server, &key).await;
        if m == s && identical(m_doc.as_ref(), s_doc.as_ref()) {
            tally.add(step, &m);
            before = m_doc;
            continue;
        }
        let observation = Observation {
            step,
            before: before.as_ref(),
            memory: &m,
            server: &s,
            memory_doc: m_doc.as_ref(),
        };
        match ferretdb.then(|| ferretdb_deviation(&observation)).flatten() {
            Some(d) => {
                deviations.add(d);
                // Bring the server back to MongoDB's state and go on, or stop here if
                // FerretDB cannot store that state.
                let synced = match &m_doc {
                    Some(doc) => server
                        .put_slate(&key, doc, Expiry::Keep, now())
                        .await
                        .is_ok(),
                    None => server.delete_slate(&key, now()).await.is_ok(),
                };
                if !synced || !identical(read(server, &key).await.as_ref(), m_doc.as_ref()) {
                    return Ok(());
                }
                before = m_doc;
            }
            None => {
                return Err(TestCaseError::fail(format!(
                    "step {i} of {steps:#?}\nbefore: {}\nmemory: {m:?} -> {}\nserver: {s:?} -> {}",
                    show(before.as_ref()),
                    show(m_doc.as_ref()),
                    show(s_doc.as_ref()),
                )))
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prop_memory_store_matches_the_server() {
    const TEST: &str = "differential::prop_memory_store_matches_the_server";
    let Some(server) = server_store(TEST).await else {
        return;
    };
    let ferretdb = is_ferretdb().await;
    let deviations = Deviations::default();
    let tally = Tally::default();
    let next = AtomicU64::new(0);
    let steps = prop::collection::vec(step(), 1..9);
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&steps, |steps| {
            let slate = format!("c{}", next.fetch_add(1, Ordering::Relaxed));
            handle.block_on(async {
                let result =
                    check_sequence(&*server, ferretdb, &slate, &steps, &deviations, &tally).await;
                // Keep the collection small: FerretDB scans it for filters other than `_id`.
                let _ = server.delete_slate(&key(&slate), now()).await;
                result
            })
        })
    });
    say!(
        "differential: {} sequences ({} cases) in {:.1?}: {}",
        next.load(Ordering::Relaxed),
        cases(),
        started.elapsed(),
        tally.summary()
    );
    deviations.report(TEST);
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ------------------------------------------------------------------ deterministic tests

/// Both stores, each with a fresh slate: the memory store, and the server's if there is one.
async fn both(test: &str) -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut stores: Vec<(&'static str, Arc<dyn Store>)> =
        vec![("memory", Arc::new(MemoryStore::new()))];
    if let Some(server) = server_store(test).await {
        stores.push(("server", server));
    }
    stores
}

fn set(path: &str, v: impl Into<Bson>) -> UpdateOp {
    UpdateOp::Set(path.into(), v.into())
}
fn inc(path: &str, v: impl Into<Bson>) -> UpdateOp {
    UpdateOp::Inc(path.into(), v.into())
}
fn unset(path: &str) -> UpdateOp {
    UpdateOp::Unset(path.into())
}

/// Update calls on one slate, starting from the slate `start`.
struct Scenario {
    start: Document,
    calls: Vec<Call>,
}

/// One `update_slate` call, MongoDB's documented answer and the document it leaves.
struct Call {
    what: &'static str,
    ops: Vec<UpdateOp>,
    counter: Option<&'static str>,
    expect: Outcome,
    doc: Document,
    /// The FerretDB deviation this call is known to meet, if any.
    ferretdb: Option<Deviation>,
}

fn call(what: &'static str, ops: Vec<UpdateOp>, expect: Outcome, doc: Document) -> Call {
    Call {
        what,
        ops,
        counter: None,
        expect,
        doc,
        ferretdb: None,
    }
}

/// Plays each scenario on both stores (a slate of its own each), asserting every call's
/// answer and document exactly. On FerretDB, a call marked with a deviation may differ (it
/// is counted, and the slate is reset to MongoDB's document), and a scenario whose start
/// holds nested arrays, which FerretDB cannot store, is counted and skipped there.
async fn play(test: &str, scenarios: Vec<Scenario>) {
    let deviations = Deviations::default();
    for (name, store) in both(test).await {
        let ferretdb = name == "server" && is_ferretdb().await;
        for (n, scenario) in scenarios.iter().enumerate() {
            let key = key(&format!("s{n}"));
            if ferretdb && scenario.start.values().any(nested_array) {
                deviations.add(Deviation::NestedArrays);
                continue;
            }
            store
                .put_slate(&key, &scenario.start, Expiry::Keep, now())
                .await
                .unwrap();
            for c in &scenario.calls {
                let step = Step::Update {
                    ops: c.ops.clone(),
                    counter: c.counter.map(str::to_owned),
                };
                let got = run(&*store, &key, &step).await;
                let doc = read(&*store, &key).await.unwrap_or_default();
                let ok = got == c.expect && identical(Some(&doc), Some(&c.doc));
                if let (false, true, Some(d)) = (ok, ferretdb, c.ferretdb) {
                    deviations.add(d);
                    store
                        .put_slate(&key, &c.doc, Expiry::Keep, now())
                        .await
                        .unwrap();
                    continue;
                }
                assert!(
                    ok,
                    "{test} on the {name} store: {}: {}\n got {got:?} -> {}\nwant {:?} -> {}",
                    c.what,
                    show(Some(
                        &c.ops
                            .iter()
                            .map(|op| (
                                op.field().to_owned(),
                                Bson::String(format!("{op:?}").chars().take(120).collect())
                            ))
                            .collect()
                    )),
                    show(Some(&doc)),
                    c.expect,
                    show(Some(&c.doc)),
                );
            }
        }
    }
    deviations.report(test);
}

const UPDATED: Outcome = Outcome::Updated(None);
const MISMATCH: Outcome = Outcome::Failed("TypeMismatch");

/// `$addToSet` compares with MongoDB's BSON comparison: numbers by value whatever their
/// type, documents field by field in order, arrays element by element, recursively.
/// <https://www.mongodb.com/docs/manual/reference/operator/update/addToSet/#behavior>,
/// <https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_to_set_uses_bson_comparison() {
    let add = |v: Bson| vec![UpdateOp::AddToSet("ids".into(), v)];
    let start = doc! {"ids": [1, {"k": 1, "j": {"x": 2.0}}]};
    let mut ids = start.get_array("ids").unwrap().clone();
    let mut grown = |v: Bson| {
        ids.push(v);
        doc! {"ids": ids.clone()}
    };
    let numbers_and_documents = Scenario {
        start: start.clone(),
        calls: vec![
            call(
                "int64 1 equals int32 1",
                add(Bson::Int64(1)),
                UPDATED,
                start.clone(),
            ),
            call(
                "double 1.0 equals int32 1",
                add(Bson::Double(1.0)),
                UPDATED,
                start.clone(),
            ),
            call(
                "a document equal field by field, recursively",
                add(Bson::Document(doc! {"k": 1_i64, "j": {"x": 2}})),
                UPDATED,
                start.clone(),
            ),
            call(
                "the string \"1\" is not the number 1",
                add(Bson::String("1".into())),
                UPDATED,
                grown(Bson::String("1".into())),
            ),
            call(
                "true is not the number 1",
                add(Bson::Boolean(true)),
                UPDATED,
                grown(Bson::Boolean(true)),
            ),
            call(
                "field order matters in documents",
                add(Bson::Document(doc! {"j": {"x": 2}, "k": 1})),
                UPDATED,
                grown(Bson::Document(doc! {"j": {"x": 2}, "k": 1})),
            ),
            call(
                "1.5 is new",
                add(Bson::Double(1.5)),
                UPDATED,
                grown(Bson::Double(1.5)),
            ),
        ],
    };
    // Arrays in arrays: FerretDB 1.x cannot store them (a deviation there).
    let nested = doc! {"ids": [[1, 2]]};
    let arrays = Scenario {
        start: nested.clone(),
        calls: vec![
            call(
                "an array equal element by element",
                add(Bson::Array(vec![Bson::Double(1.0), Bson::Int64(2)])),
                UPDATED,
                nested.clone(),
            ),
            call(
                "a longer array is new",
                add(Bson::Array(vec![
                    Bson::Int32(1),
                    Bson::Int32(2),
                    Bson::Int32(3),
                ])),
                UPDATED,
                doc! {"ids": [[1, 2], [1, 2, 3]]},
            ),
        ],
    };
    play(
        "differential::add_to_set_uses_bson_comparison",
        vec![numbers_and_documents, arrays],
    )
    .await;
}

/// Dotted paths through arrays: a numeric segment indexes an array, a missing path is
/// created as documents, a path through a scalar (or a name into an array) is refused and
/// writes nothing, `$unset` of an element leaves a null and of a missing path does nothing.
/// <https://www.mongodb.com/docs/manual/core/document/#dot-notation>,
/// <https://www.mongodb.com/docs/manual/reference/operator/update/set/#behavior>,
/// <https://www.mongodb.com/docs/manual/reference/operator/update/unset/#behavior>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_path_segments_index_arrays() {
    let paths = Scenario {
        start: doc! {"ids": [10, 20], "s": 5},
        calls: vec![
            call(
                "set ids.0 replaces element 0",
                vec![set("ids.0", 1)],
                UPDATED,
                doc! {"ids": [1, 20], "s": 5},
            ),
            call(
                "set past the end pads with nulls",
                vec![set("ids.3", 4)],
                UPDATED,
                doc! {"ids": [1, 20, null, 4], "s": 5},
            ),
            call(
                "inc ids.1",
                vec![inc("ids.1", 1)],
                UPDATED,
                doc! {"ids": [1, 21, null, 4], "s": 5},
            ),
            call(
                "set through an array element into a new document",
                vec![set("ids.5.k", 1)],
                UPDATED,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5},
            ),
            call(
                "a non-numeric segment into an array is refused",
                vec![set("ids.x", 1)],
                MISMATCH,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5},
            ),
            call(
                "a segment into a scalar (an array's null element too) is refused",
                vec![set("ids.2.k", 1)],
                MISMATCH,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5},
            ),
            call(
                "a refused update writes none of its operators",
                vec![set("b", 1), set("s.t", 1)],
                MISMATCH,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5},
            ),
            call(
                "set creates missing documents (a numeric segment names a field there)",
                vec![set("n.0.y", 1)],
                UPDATED,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5, "n": {"0": {"y": 1}}},
            ),
            call(
                "unset of a missing path is a no-op",
                vec![unset("m.x"), unset("ids.7"), unset("s.t"), unset("ids.x")],
                UPDATED,
                doc! {"ids": [1, 21, null, 4, null, {"k": 1}], "s": 5, "n": {"0": {"y": 1}}},
            ),
            Call {
                ferretdb: Some(Deviation::UnsetArrayElementRemoves),
                ..call(
                    "unset ids.0 leaves a null",
                    vec![unset("ids.0")],
                    UPDATED,
                    doc! {"ids": [null, 21, null, 4, null, {"k": 1}], "s": 5, "n": {"0": {"y": 1}}},
                )
            },
        ],
    };
    // Arrays in arrays: FerretDB 1.x cannot store them (a deviation there).
    let nested = Scenario {
        start: doc! {"a": [[1]]},
        calls: vec![
            call(
                "push onto an array element",
                vec![UpdateOp::Push("a.0".into(), Bson::Int32(2))],
                UPDATED,
                doc! {"a": [[1, 2]]},
            ),
            call(
                "push past the end creates the array there",
                vec![UpdateOp::Push("a.2".into(), Bson::Int32(3))],
                UPDATED,
                doc! {"a": [[1, 2], null, [3]]},
            ),
        ],
    };
    play(
        "differential::numeric_path_segments_index_arrays",
        vec![paths, nested],
    )
    .await;
}

/// `$inc` keeps MongoDB's numeric types: int32 + int32 is an int32 unless it overflows
/// (then an int64), an int64 makes an int64, a double makes a double, int64 overflow is
/// refused; a missing field gets the increment, with its type; a non-number is refused.
/// <https://www.mongodb.com/docs/manual/reference/operator/update/inc/#behavior>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inc_promotes_like_mongodb() {
    let fixed = doc! {"s": "x", "z": null, "big": i64::MAX};
    let with = |pairs: Document| {
        let mut d = pairs;
        d.extend(fixed.clone());
        d
    };
    let start = with(doc! {"i": 1});
    let calls = vec![
        call(
            "int32 + int32",
            vec![inc("i", 2)],
            UPDATED,
            with(doc! {"i": 3}),
        ),
        Call {
            ferretdb: Some(Deviation::Int32OverflowWraps),
            ..call(
                "int32 overflow becomes an int64",
                vec![inc("i", i32::MAX)],
                UPDATED,
                with(doc! {"i": i32::MAX as i64 + 3}),
            )
        },
        call(
            "int64 + int32 stays an int64",
            vec![inc("i", -1)],
            UPDATED,
            with(doc! {"i": i32::MAX as i64 + 2}),
        ),
        call(
            "int64 + double is a double",
            vec![inc("i", 0.5)],
            UPDATED,
            with(doc! {"i": i32::MAX as f64 + 2.5}),
        ),
        call(
            "int64 overflow is refused",
            vec![inc("big", 1)],
            MISMATCH,
            with(doc! {"i": i32::MAX as f64 + 2.5}),
        ),
        call(
            "a missing field gets the increment, with its type (new fields in MongoDB's order)",
            vec![inc("n", 5_i64), inc("d", 0.25), inc("m.k", 2)],
            UPDATED,
            doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 2}, "n": 5_i64},
        ),
        call(
            "a string is refused",
            vec![inc("s", 1)],
            MISMATCH,
            doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 2}, "n": 5_i64},
        ),
        call(
            "null is refused",
            vec![inc("z", 1)],
            MISMATCH,
            doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 2}, "n": 5_i64},
        ),
        call(
            "a non-numeric increment is refused",
            vec![inc("new", "1")],
            MISMATCH,
            doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 2}, "n": 5_i64},
        ),
        Call {
            counter: Some("m.k"),
            ..call(
                "int32 + int64 is an int64, and the counter reports it",
                vec![inc("m.k", 1_i64)],
                Outcome::Updated(Some(3)),
                doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 3_i64}, "n": 5_i64},
            )
        },
        Call {
            counter: Some("d"),
            ..call(
                "a counter on a double is refused and writes nothing",
                vec![inc("d", 1_i64)],
                MISMATCH,
                doc! {"i": i32::MAX as f64 + 2.5, "s": "x", "z": null, "big": i64::MAX, "d": 0.25, "m": {"k": 3_i64}, "n": 5_i64},
            )
        },
    ];
    play(
        "differential::inc_promotes_like_mongodb",
        vec![Scenario { start, calls }],
    )
    .await;
}

/// An update whose result would exceed 16 MiB is refused and writes nothing.
/// <https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-BSON-Document-Size>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_mib_result_limit() {
    let nine = "x".repeat(9 * 1024 * 1024);
    let start = doc! {"a": &nine};
    let calls = vec![
        Call {
            ferretdb: Some(Deviation::NoResultSizeLimit),
            ..call(
                "two 9 MiB fields",
                vec![set("b", nine.as_str())],
                Outcome::Failed("DocumentTooLarge"),
                start.clone(),
            )
        },
        call(
            "values over 16 MiB are refused whatever else the update does",
            vec![set("b", "x".repeat(17 * 1024 * 1024)), set("a.b", 1)],
            Outcome::Failed("DocumentTooLarge"),
            start.clone(),
        ),
    ];
    play(
        "differential::sixteen_mib_result_limit",
        vec![Scenario { start, calls }],
    )
    .await;
}

/// The bulk operators: `$push` and `$addToSet` with `$each`. An empty list creates an empty
/// array on an absent field and changes nothing on an existing one; values are appended in
/// order; `$addToSet` drops values equal (by BSON comparison) to a stored element or to an
/// earlier value of the same list; repeats of `$push` on one field (single and bulk) are one
/// `$push`; a non-array target is refused and writes nothing.
/// <https://www.mongodb.com/docs/manual/reference/operator/update/each/>,
/// <https://www.mongodb.com/docs/manual/reference/operator/update/push/#append-multiple-values-to-an-array>,
/// <https://www.mongodb.com/docs/manual/reference/operator/update/addToSet/#_S_each-modifier>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_push_and_add_to_set_like_mongodb() {
    let push_all = |path: &str, vs: Vec<Bson>| UpdateOp::PushAll(path.into(), vs);
    let add_all = |path: &str, vs: Vec<Bson>| UpdateOp::AddAllToSet(path.into(), vs);
    let i = Bson::Int32;
    let s = |v: &str| Bson::String(v.into());
    let calls = vec![
        call(
            "push_all appends in order, repeats kept",
            vec![push_all("l", vec![i(3), i(1)])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1], "t": ["a"], "n": 5},
        ),
        call(
            "push_all of nothing onto an array changes nothing",
            vec![push_all("l", vec![])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1], "t": ["a"], "n": 5},
        ),
        call(
            "push_all of nothing onto an absent field makes an empty array",
            vec![push_all("e", vec![])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1], "t": ["a"], "n": 5, "e": []},
        ),
        call(
            "add_all_to_set drops stored values and repeats within the list",
            vec![add_all("l", vec![i(2), i(4), i(4), i(5), i(1)])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a"], "n": 5, "e": []},
        ),
        call(
            "add_all_to_set compares numbers by value",
            vec![add_all(
                "t",
                vec![s("b"), s("a"), Bson::Int64(7), Bson::Double(7.0)],
            )],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": []},
        ),
        call(
            "add_all_to_set onto an absent field drops repeats within the list",
            vec![add_all("g", vec![i(1), Bson::Int64(1), i(2), i(1)])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [], "g": [1, 2]},
        ),
        call(
            "unset g",
            vec![unset("g")],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": []},
        ),
        call(
            "add_all_to_set of nothing onto an absent field makes an empty array",
            vec![add_all("f", vec![])],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [], "f": []},
        ),
        call(
            "push and push_all on one field are one $push, in order",
            vec![
                UpdateOp::Push("e".into(), i(1)),
                push_all("e", vec![i(2), i(3)]),
                UpdateOp::Push("e".into(), i(4)),
            ],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [1, 2, 3, 4], "f": []},
        ),
        call(
            "add_to_set and add_all_to_set on one field are one $addToSet",
            vec![
                UpdateOp::AddToSet("f".into(), s("x")),
                add_all("f", vec![s("y"), s("x")]),
            ],
            UPDATED,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [1, 2, 3, 4], "f": ["x", "y"]},
        ),
        call(
            "push_all onto a number is refused",
            vec![push_all("n", vec![i(1)])],
            MISMATCH,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [1, 2, 3, 4], "f": ["x", "y"]},
        ),
        call(
            "add_all_to_set of nothing onto a number is refused too",
            vec![add_all("n", vec![])],
            MISMATCH,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [1, 2, 3, 4], "f": ["x", "y"]},
        ),
        call(
            "a refused bulk operator writes none of the update",
            vec![push_all("e", vec![i(9)]), add_all("l.0", vec![i(1)])],
            MISMATCH,
            doc! {"l": [1, 2, 3, 1, 4, 5], "t": ["a", "b", 7_i64], "n": 5, "e": [1, 2, 3, 4], "f": ["x", "y"]},
        ),
    ];
    play(
        "differential::bulk_push_and_add_to_set_like_mongodb",
        vec![Scenario {
            start: doc! {"l": [1, 2], "t": ["a"], "n": 5},
            calls,
        }],
    )
    .await;
}

/// A counter whose path goes through an array (`ids.0.k` where `ids.0` is an array of
/// documents): MongoDB refuses the `$inc` (a non-numeric segment into an array), so the
/// answer is a type mismatch, at once, with nothing written. (A query filter on the same
/// path looks inside the array's elements, so a store that guards the counter with such a
/// filter must not read the guard's failure as a race and retry until it gives up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_through_an_array_is_a_type_mismatch() {
    let start = doc! {"ids": {"0": [{"k": 0.0}]}, "a": [{"k": 1}]};
    let calls = vec![
        Call {
            counter: Some("ids.0.k"),
            ..call(
                "a double inside an array element",
                vec![inc("ids.0.k", 1_i64)],
                MISMATCH,
                start.clone(),
            )
        },
        Call {
            counter: Some("a.k"),
            ..call(
                "an integer inside an array element",
                vec![inc("a.k", 1_i64)],
                MISMATCH,
                start.clone(),
            )
        },
    ];
    play(
        "differential::counter_through_an_array_is_a_type_mismatch",
        vec![Scenario { start, calls }],
    )
    .await;
}

/// `$set` replaces a document value whatever it held, also with the same values under
/// other field names. <https://www.mongodb.com/docs/manual/reference/operator/update/set/#behavior>.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_replaces_documents_by_keys_and_values() {
    let start = doc! {"ids": {"a": 1}};
    let calls = vec![
        call(
            "other keys, other values",
            vec![set("ids", doc! {"k": 2})],
            UPDATED,
            doc! {"ids": {"k": 2}},
        ),
        Call {
            ferretdb: Some(Deviation::SetSameValuesOtherKeysIgnored),
            ..call(
                "other keys, the same values",
                vec![set("ids", doc! {"m": 2})],
                UPDATED,
                doc! {"ids": {"m": 2}},
            )
        },
        call(
            "the same keys, other values",
            vec![set("ids", doc! {"m": 3})],
            UPDATED,
            doc! {"ids": {"m": 3}},
        ),
    ];
    play(
        "differential::set_replaces_documents_by_keys_and_values",
        vec![Scenario { start, calls }],
    )
    .await;
}
