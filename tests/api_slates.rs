//! Issue 11, API points 1-3, on every store: typed workflows declared once (every write
//! slides the declared expiry, a workflow without one keeps the stored expiry), an honest
//! `modify` (missing, declined and unchanged write nothing, checked on the store's call
//! record; a conflict retries, and a retry may decline), and `SlateUpdate` values that are
//! any `Serialize` (bulk `$push`/`$addToSet` with `$each`, a clear error naming the field
//! for a value that does not serialize, sent before any store call).
mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bson::{doc, Bson, Document};
use common::hooked::{hooked_engine, hooked_engine_with, pause_first_swap, Call, Hooked, Phase};
use common::Backend;
use serde::{Deserialize, Serialize};
use slates::{
    Clock, Error, ManualClock, Modified, SharedRawDocument, Slate, SlateUpdate, Workflow,
};
use time::Duration;

// ---------------------------------------------------------------- set-up

/// A wizard's document.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Wizard {
    #[serde(default)]
    step: i64,
    #[serde(default)]
    ids: Vec<i64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

const TTL: Duration = Duration::minutes(20);
/// Declared once, with its expiry.
const WIZARD: Workflow<Wizard> = Workflow::new("wizard").expires_after(TTL);
/// Declared without an expiry: writes keep whatever the stored slate has.
const PINNED: Workflow<Wizard> = Workflow::new("pinned");

fn start() -> Wizard {
    Wizard {
        step: 1,
        ids: vec![1],
        tags: vec!["a".into()],
        note: Some("n".into()),
    }
}

per_backend!(
    workflow_writes_all_slide_the_declared_expiry,
    workflow_without_expiry_keeps_the_stored_one,
    modify_of_a_missing_slate_runs_nothing_and_writes_nothing,
    declined_modify_writes_nothing_even_after_mutating,
    unchanged_modify_writes_nothing,
    changed_modify_writes_once_with_the_reported_version,
    modify_or_default_and_insert_with_create_explicitly,
    conflicting_modify_retries_on_the_new_slate,
    a_modify_that_always_collides_gives_up_with_conflict,
    retry_that_declines_or_changes_nothing_writes_nothing,
    racing_creation_retries_as_an_update,
    update_values_are_any_serialize,
    push_all_appends_in_order_in_one_call,
    add_all_to_set_dedups_against_stored_and_within,
    push_all_is_one_atomic_operation,
    repeated_operators_merge_and_mixed_ones_conflict,
    unserializable_values_name_the_field_and_reach_no_store,
);

// ---------------------------------------------------------------- point 1: typed workflows

type Write = fn(Slate<Wizard>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every write a typed handle offers, each asserting it succeeded (and that a `modify`
/// wrote).
fn writes() -> Vec<(&'static str, Write)> {
    vec![
        ("put", |s| {
            Box::pin(async move {
                let w = Wizard { step: 9, ..start() };
                s.put(&w).await.unwrap();
            })
        }),
        ("set", |s| {
            Box::pin(async move { s.set("step", 2).await.map(drop).unwrap() })
        }),
        ("unset", |s| {
            Box::pin(async move { s.unset("note").await.map(drop).unwrap() })
        }),
        ("inc", |s| {
            Box::pin(async move { s.inc("step", 1).await.map(drop).unwrap() })
        }),
        ("push", |s| {
            Box::pin(async move { s.push("ids", 4).await.map(drop).unwrap() })
        }),
        ("push_all", |s| {
            Box::pin(async move { s.push_all("ids", [5, 6]).await.map(drop).unwrap() })
        }),
        ("add_to_set", |s| {
            Box::pin(async move { s.add_to_set("tags", "x").await.map(drop).unwrap() })
        }),
        ("add_all_to_set", |s| {
            Box::pin(async move {
                s.add_all_to_set("tags", ["y", "z"])
                    .await
                    .map(drop)
                    .unwrap()
            })
        }),
        ("update", |s| {
            Box::pin(async move {
                let u = SlateUpdate::new().set("step", 3).push("ids", 7);
                s.update(u).await.map(drop).unwrap()
            })
        }),
        ("raw().set", |s| {
            Box::pin(async move { s.raw().set("step", 4).await.map(drop).unwrap() })
        }),
        ("modify", |s| {
            Box::pin(async move {
                let m = s.modify(|w| {
                    w.step += 10;
                    Some(())
                });
                assert!(m.await.unwrap().is_written());
            })
        }),
        ("modify_or_default", |s| {
            Box::pin(async move {
                let m = s.modify_or_default(|w| {
                    w.step += 10;
                    Some(())
                });
                assert!(m.await.unwrap().is_written());
            })
        }),
        ("modify_or_insert_with", |s| {
            Box::pin(async move {
                let m = s.modify_or_insert_with(start, |w| {
                    w.step += 10;
                    Some(())
                });
                assert!(m.await.unwrap().is_written());
            })
        }),
    ]
}

/// Through a workflow declared with `expires_after`, every write sets the expiry to
/// now + ttl (sliding), on an existing slate and on a fresh one; the slate then lives
/// exactly that long.
async fn workflow_writes_all_slide_the_declared_expiry(backend: Backend, test: &str) {
    let Some((engine, _hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let wizard = ada.workflow(&WIZARD);
    assert_eq!(wizard.name(), Some("wizard"));
    for (name, write) in writes() {
        wizard.delete().await.unwrap();
        let created = clock.now();
        let v0 = wizard.put(&start()).await.unwrap();
        let got = wizard.get_doc().await.unwrap().unwrap();
        assert_eq!(got.expires, Some(created + TTL), "{name}: put sets it");
        clock.advance(Duration::minutes(15));
        let written = clock.now();
        write(ada.workflow(&WIZARD)).await;
        let got = wizard.get_doc().await.unwrap().unwrap();
        assert_ne!(got.version, v0, "{name} wrote");
        assert_eq!(got.expires, Some(written + TTL), "{name} slides the expiry");
        // Alive past the first expiry, gone at the slid one.
        clock.advance(TTL - Duration::SECOND);
        assert!(wizard.get().await.unwrap().is_some(), "{name}");
        clock.advance(Duration::SECOND);
        assert_eq!(wizard.get().await.unwrap(), None, "{name}: expired");
        assert!(wizard.get_doc().await.unwrap().is_none(), "{name}");

        // A fresh slate created by the write expires too (`modify` creates nothing: see
        // `modify_of_a_missing_slate_runs_nothing_and_writes_nothing`).
        if name != "modify" {
            let now = clock.now();
            write(ada.workflow(&WIZARD)).await;
            let got = wizard.get_doc().await.unwrap().unwrap();
            assert_eq!(got.expires, Some(now + TTL), "{name} on a fresh slate");
        }
    }
}

/// `writes()` without `modify`, which needs an existing slate (it is `Missing` otherwise).
fn writes_creating() -> Vec<(&'static str, Write)> {
    writes()
        .into_iter()
        .filter(|(n, _)| *n != "modify")
        .collect()
}

/// A workflow declared without `expires_after` keeps the stored expiry on every write (the
/// slate was created expiring through an untyped handle), and creates a fresh slate
/// without one.
async fn workflow_without_expiry_keeps_the_stored_one(backend: Backend, test: &str) {
    let Some((engine, _hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let pinned = ada.workflow(&PINNED);
    assert_eq!(PINNED.ttl(), None);
    for (name, write) in writes() {
        pinned.delete().await.unwrap();
        let created = clock.now();
        let ten = Duration::minutes(10);
        let v0 = ada.raw_slate("pinned").expires_in(ten).put(&start()).await;
        clock.advance(Duration::minutes(5));
        write(ada.workflow(&PINNED)).await;
        let got = pinned.get_doc().await.unwrap().unwrap();
        assert_ne!(got.version, v0.unwrap(), "{name} wrote");
        assert_eq!(got.expires, Some(created + ten), "{name} keeps the expiry");
        clock.advance(Duration::minutes(5));
        assert!(pinned.get_doc().await.unwrap().is_none(), "{name}: expired");
    }
    for (name, write) in writes_creating() {
        pinned.delete().await.unwrap();
        write(ada.workflow(&PINNED)).await;
        let got = pinned.get_doc().await.unwrap().unwrap();
        assert_eq!(got.expires, None, "{name} creates a permanent slate");
    }
}

/// A `Workflow` is a compile-time declaration: a name that is not a valid slate name, or
/// the profile's, does not build (checked at compile time in a `const`; here at run time).
#[test]
fn workflow_declarations_are_checked() {
    assert_eq!(WIZARD.name(), "wizard");
    assert_eq!(WIZARD.ttl(), Some(TTL));
    for bad in ["", "a.b", "$x", "user"] {
        let built = std::panic::catch_unwind(|| Workflow::<Wizard>::new(bad));
        assert!(built.is_err(), "{bad:?}");
    }
    let subsecond = std::panic::catch_unwind(|| PINNED.expires_after(Duration::milliseconds(10)));
    assert!(subsecond.is_err());
}

// ---------------------------------------------------------------- point 2: honest modify

/// No slate (never written, or expired): the closure does not run, no write call is made,
/// and no slate exists afterwards. The same through every `modify` of both handles.
async fn modify_of_a_missing_slate_runs_nothing_and_writes_nothing(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let wizard = ada.workflow(&WIZARD);
    let writes_before = engine.stats().slate_writes;
    let mut runs = 0;
    let m = wizard
        .modify(|w| {
            runs += 1;
            w.step += 1;
            Some(w.step)
        })
        .await
        .unwrap();
    assert_eq!(m, Modified::Missing);
    assert_eq!(
        (m.version(), m.is_written(), m.value()),
        (None, false, None)
    );
    assert_eq!(runs, 0, "the closure did not run");
    assert_eq!(hooked.calls(), [Call::GetSlate], "one read, no write");
    assert_eq!(engine.stats().slate_writes, writes_before);
    let raw = ada.raw_slate("wizard");
    let m = raw.modify(|d: &mut Document| Some(d.insert("x", 1))).await;
    assert_eq!(m.unwrap(), Modified::Missing, "the untyped handle too");

    // An expired slate is missing too.
    wizard.put(&start()).await.unwrap();
    clock.advance(TTL);
    hooked.clear_calls();
    let m = wizard.modify(|w| {
        runs += 1;
        w.step += 1;
        Some(())
    });
    assert_eq!(m.await.unwrap(), Modified::Missing);
    assert_eq!(runs, 0);
    assert_eq!(hooked.calls(), [Call::GetSlate]);
    assert!(
        wizard.get_doc().await.unwrap().is_none(),
        "nothing was created"
    );
    assert!(raw.get_doc().await.unwrap().is_none());
}

/// The closure mutates the document and then declines: nothing is written (same version,
/// same expiry although the clock moved), one read and no write call.
async fn declined_modify_writes_nothing_even_after_mutating(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    let created = clock.now();
    let v0 = wizard.put(&start()).await.unwrap();
    clock.advance(Duration::minutes(5));
    hooked.clear_calls();
    let m = wizard
        .modify(|w| {
            w.step = 99;
            w.ids.clear();
            None::<()>
        })
        .await
        .unwrap();
    assert_eq!(m, Modified::Declined);
    assert_eq!(m.value(), None);
    assert_eq!(hooked.calls(), [Call::GetSlate], "no write call");
    let got = wizard.get_doc().await.unwrap().unwrap();
    assert_eq!(got.version, v0, "no new version");
    assert_eq!(got.expires, Some(created + TTL), "the expiry did not slide");
    assert_eq!(
        wizard.get().await.unwrap(),
        Some(start()),
        "the mutation was dropped"
    );
    // Declining a missing slate under modify_or_default / _or_insert_with creates nothing.
    let fresh = engine.user_slates("bob").unwrap().workflow(&WIZARD);
    hooked.clear_calls();
    let m = fresh.modify_or_default(|w| {
        w.step = 5;
        None::<()>
    });
    assert_eq!(m.await.unwrap(), Modified::Declined);
    let m = fresh.modify_or_insert_with(start, |_| None::<()>);
    assert_eq!(m.await.unwrap(), Modified::Declined);
    assert_eq!(hooked.calls(), [Call::GetSlate, Call::GetSlate]);
    assert!(fresh.get_doc().await.unwrap().is_none());
}

/// The closure changes nothing (or changes and restores): `Unchanged` with its value, no
/// new version, no sliding of the expiry, no write call. Also when the stored document's
/// BSON differs from what `T` writes (field order, int32 for an i64, a field `T` does not
/// keep): "unchanged" is judged on `T`, and the stored extra field survives.
async fn unchanged_modify_writes_nothing(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let wizard = ada.workflow(&WIZARD);
    let created = clock.now();
    let v0 = wizard.put(&start()).await.unwrap();
    clock.advance(Duration::minutes(5));
    hooked.clear_calls();
    let m = wizard.modify(|w| Some(w.step)).await.unwrap();
    assert_eq!(m, Modified::Unchanged(1));
    assert_eq!((m.version(), m.is_written()), (None, false));
    let m = wizard
        .modify(|w| {
            w.step += 1;
            w.ids.push(2);
            w.step -= 1;
            w.ids.pop();
            Some("restored")
        })
        .await
        .unwrap();
    assert_eq!(m.value(), Some("restored"));
    assert_eq!(
        hooked.calls(),
        [Call::GetSlate, Call::GetSlate],
        "no write call"
    );
    let got = wizard.get_doc().await.unwrap().unwrap();
    assert_eq!((got.version, got.expires), (v0, Some(created + TTL)));

    // Stored in another shape than `T` writes: a field `T` drops, other field order and
    // BSON types. Unchanged for `T` still writes nothing (and so keeps the extra field).
    let raw = ada.raw_slate("wizard");
    let v1 = raw
        .put(&doc! {"extra": true, "tags": ["a"], "note": "n", "ids": [1_i32], "step": 1_i32})
        .await
        .unwrap();
    hooked.clear_calls();
    let m = wizard.modify(|w| Some(w.clone())).await.unwrap();
    assert_eq!(m, Modified::Unchanged(start()));
    assert_eq!(hooked.calls(), [Call::GetSlate]);
    let got = raw.get_doc().await.unwrap().unwrap();
    assert_eq!(got.version, v1);
    assert_eq!(got.doc.get_bool("extra"), Ok(true), "untouched");
    // Untyped: a document left as it is.
    hooked.clear_calls();
    let m = raw.modify(|d: &mut Document| Some(d.len())).await.unwrap();
    assert_eq!(m, Modified::Unchanged(5));
    assert_eq!(hooked.calls(), [Call::GetSlate]);
    // A real change through `T` writes, and drops what `T` does not keep (documented).
    let m = wizard
        .modify(|w| {
            w.step += 1;
            Some(())
        })
        .await
        .unwrap();
    assert!(m.is_written());
    let got = raw.get_doc().await.unwrap().unwrap();
    assert!(got.doc.get("extra").unwrap().is_none());
}

/// A change writes exactly once (read, compare-and-swap), and the version reported is the
/// stored one; the expiry slides.
async fn changed_modify_writes_once_with_the_reported_version(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    let v0 = wizard.put(&start()).await.unwrap();
    clock.advance(Duration::minutes(5));
    let now = clock.now();
    hooked.clear_calls();
    let m = wizard
        .modify(|w| {
            w.step += 1;
            Some(w.step)
        })
        .await
        .unwrap();
    let Modified::Written { value, version } = m else {
        panic!("{m:?}");
    };
    assert_eq!(value, 2);
    assert_ne!(version, v0);
    assert_eq!(hooked.calls(), [Call::GetSlate, Call::ReplaceSlateIf]);
    let got = wizard.get_doc().await.unwrap().unwrap();
    assert_eq!(
        got.version, version,
        "the version reported is the stored one"
    );
    assert_eq!(got.expires, Some(now + TTL));
    assert_eq!(wizard.get().await.unwrap().unwrap().step, 2);
    assert_eq!(engine.stats().cas_conflicts, 0);
}

/// Creating is explicit: `modify_or_default` and `modify_or_insert_with` create a missing
/// slate (with the workflow's expiry), even when the closure leaves the starting value as
/// it is; on an existing slate the starting value is never built.
async fn modify_or_default_and_insert_with_create_explicitly(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let wizard = ada.workflow(&WIZARD);
    let now = clock.now();
    let m = wizard
        .modify_or_default(|w| {
            w.step = 1;
            Some(w.step)
        })
        .await
        .unwrap();
    let version = m.version().expect("written");
    let got = wizard.get_doc().await.unwrap().unwrap();
    assert_eq!((got.version, got.expires), (version, Some(now + TTL)));
    let expect = Wizard {
        step: 1,
        ..Wizard::default()
    };
    assert_eq!(wizard.get().await.unwrap(), Some(expect));

    // The starting value as it is: created all the same (creation is the point).
    let other = ada.workflow(&PINNED);
    hooked.clear_calls();
    let m = other.modify_or_default(|_| Some(())).await.unwrap();
    assert!(m.is_written(), "{m:?}");
    assert_eq!(hooked.calls(), [Call::GetSlate, Call::ReplaceSlateIf]);
    assert_eq!(other.get().await.unwrap(), Some(Wizard::default()));
    assert_eq!(other.get_doc().await.unwrap().unwrap().expires, None);

    // insert_with: `init` runs once on a missing slate, never on an existing one.
    wizard.delete().await.unwrap();
    let inits = AtomicUsize::new(0);
    let init = || {
        inits.fetch_add(1, Ordering::SeqCst);
        start()
    };
    let bump = |w: &mut Wizard| {
        w.step += 1;
        Some(w.step)
    };
    let m = wizard.modify_or_insert_with(init, bump).await.unwrap();
    assert_eq!(m.clone().value(), Some(2));
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    let m = wizard.modify_or_insert_with(init, bump).await.unwrap();
    assert_eq!(m.value(), Some(3));
    assert_eq!(
        inits.load(Ordering::SeqCst),
        1,
        "not built for an existing slate"
    );
    hooked.clear_calls();
    let m = wizard.modify_or_insert_with(init, |w| Some(w.step)).await;
    assert_eq!(m.unwrap(), Modified::Unchanged(3));
    assert_eq!(
        hooked.calls(),
        [Call::GetSlate],
        "unchanged existing: no write"
    );
    // The untyped handle.
    let raw = ada.raw_slate("counter");
    let m = raw
        .modify_or_default(|d: &mut Document| Some(d.insert("n", 1)))
        .await
        .unwrap();
    assert!(m.is_written());
    assert_eq!(
        raw.get_doc().await.unwrap().unwrap().doc.get_i32("n"),
        Ok(1)
    );
}

/// Makes every compare-and-swap of `hooked` collide: just before it reaches the store,
/// another writer changes the slate through `other`.
fn collide_on_every_swap(hooked: &Hooked, other: slates::RawSlate) {
    hooked.set_hook(Arc::new(move |call, phase, _| {
        let other = other.clone();
        Box::pin(async move {
            if call == Call::ReplaceSlateIf && phase == Phase::Before {
                other.inc("step", 1).await?;
            }
            Ok(())
        })
    }));
}

/// A slate that another writer changes before every swap: `modify` makes exactly the
/// configured number of attempts (the closure runs that often, each swap is refused), then
/// answers `Error::Conflict` naming the slate and the attempts; the other writer's updates
/// are all there, and the refused swaps wrote nothing.
async fn a_modify_that_always_collides_gives_up_with_conflict(backend: Backend, test: &str) {
    let configure = |b: slates::EngineBuilder| b.cas_attempts(3);
    let Some((engine, hooked, _clock)) = hooked_engine_with(backend, test, configure).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    ada.raw_slate("wizard").put(&start()).await.unwrap();
    collide_on_every_swap(&hooked, ada.raw_slate("wizard"));
    let runs = AtomicUsize::new(0);
    let got = ada
        .raw_slate("wizard")
        .modify(|w: &mut Wizard| {
            runs.fetch_add(1, Ordering::SeqCst);
            w.note = Some("mine".into());
            Some(())
        })
        .await;
    assert!(
        matches!(got, Err(Error::Conflict { ref slate, attempts: 3 }) if slate == "wizard"),
        "{got:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let stats = engine.stats();
    assert_eq!((stats.cas_conflicts, stats.cas_retries), (3, 2));
    let stored: Wizard = ada.raw_slate("wizard").get().await.unwrap().unwrap();
    assert_eq!(stored.step, 1 + 3, "every other write is kept");
    assert_eq!(stored.note.as_deref(), Some("n"), "no refused swap wrote");
}

/// The pauses between attempts, on Tokio's paused clock (virtual time, no timing measured):
/// two attempts only yield; 64 attempts sleep random times, each at most 1 ms, 2, 4, 8, then
/// 16 ms, so at most 943 ms in all, and not zero (writers that collide spread out).
#[tokio::test(start_paused = true)]
async fn retry_pauses_are_random_and_bounded() {
    let test = "api_slates::retry_pauses_are_random_and_bounded";
    let mut totals = Vec::new();
    for attempts in [2, 64] {
        let configure = move |b: slates::EngineBuilder| b.cas_attempts(attempts);
        let (engine, hooked, _clock) = hooked_engine_with(Backend::Memory, test, configure)
            .await
            .expect("the memory store");
        let ada = engine.user_slates("ada").unwrap();
        ada.raw_slate("wizard").put(&start()).await.unwrap();
        collide_on_every_swap(&hooked, ada.raw_slate("wizard"));
        let started = tokio::time::Instant::now();
        let got = ada
            .raw_slate("wizard")
            .modify(|w: &mut Wizard| {
                w.step = -1;
                Some(())
            })
            .await;
        assert!(matches!(got, Err(Error::Conflict { .. })), "{got:?}");
        totals.push(started.elapsed());
    }
    assert_eq!(
        totals[0],
        std::time::Duration::ZERO,
        "one retry only yields"
    );
    let most = std::time::Duration::from_millis(1 + 2 + 4 + 8 + 16 * 58);
    assert!(totals[1] > std::time::Duration::ZERO, "later retries sleep");
    assert!(totals[1] <= most, "{:?} > {most:?}", totals[1]);
}

/// Another writer changes the slate between the modifier's read and its write: the swap
/// conflicts, the closure runs again on the new document, and its result is written.
async fn conflicting_modify_retries_on_the_new_slate(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    wizard.put(&start()).await.unwrap();
    hooked.clear_calls();
    let (paused, release) = pause_first_swap(&hooked);
    let runs = Arc::new(AtomicUsize::new(0));
    let (modifier, r) = (wizard.clone(), runs.clone());
    let task = tokio::spawn(async move {
        modifier
            .modify(move |w| {
                r.fetch_add(1, Ordering::SeqCst);
                w.step += 1;
                Some(w.step)
            })
            .await
    });
    paused.notified().await;
    let other = wizard.set("step", 10).await.unwrap();
    release.notify_one();
    let m = task.await.unwrap().unwrap();
    let calls = hooked.calls();
    let Modified::Written { value, version } = m else {
        panic!("{m:?}");
    };
    assert_eq!(value, 11, "ran again on the other writer's document");
    assert_ne!(version, other);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let got = wizard.get_doc().await.unwrap().unwrap();
    assert_eq!(got.version, version);
    assert_eq!(
        wizard.get().await.unwrap().unwrap().step,
        11,
        "no lost update"
    );
    assert_eq!(engine.stats().cas_conflicts, 1);
    assert_eq!(
        calls,
        [
            Call::GetSlate,
            Call::ReplaceSlateIf, // refused: the version moved
            Call::UpdateSlate,    // the other writer
            Call::GetSlate,
            Call::ReplaceSlateIf,
        ]
    );
}

/// On the retry after a conflict, the closure sees the other writer's document and
/// declines (or finds nothing to change): nothing more is written, the other writer's
/// version stays.
async fn retry_that_declines_or_changes_nothing_writes_nothing(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    for declines in [true, false] {
        wizard.put(&start()).await.unwrap();
        hooked.clear_calls();
        let (paused, release) = pause_first_swap(&hooked);
        let modifier = wizard.clone();
        let task = tokio::spawn(async move {
            modifier
                .modify(move |w| {
                    if declines && w.step >= 10 {
                        return None; // already done by someone else
                    }
                    w.step = 10;
                    Some(w.step)
                })
                .await
        });
        paused.notified().await;
        let other = wizard.set("step", 10).await.unwrap();
        release.notify_one();
        let m = task.await.unwrap().unwrap();
        let expect = if declines {
            Modified::Declined
        } else {
            Modified::Unchanged(10)
        };
        assert_eq!(m, expect);
        let got = wizard.get_doc().await.unwrap().unwrap();
        assert_eq!(
            got.version, other,
            "declines={declines}: the other write stands"
        );
        let swaps = hooked
            .calls()
            .iter()
            .filter(|c| **c == Call::ReplaceSlateIf)
            .count();
        assert_eq!(swaps, 1, "declines={declines}: only the refused swap");
    }
}

/// `modify_or_default` on a missing slate races another writer creating it: the creation
/// swap (expecting no slate) conflicts and the retry modifies the created slate.
async fn racing_creation_retries_as_an_update(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    let (paused, release) = pause_first_swap(&hooked);
    let modifier = wizard.clone();
    let task = tokio::spawn(async move {
        modifier
            .modify_or_default(|w| {
                w.step += 1;
                Some(w.step)
            })
            .await
    });
    paused.notified().await;
    wizard.push("ids", 7).await.unwrap();
    wizard.set("step", 5).await.unwrap();
    release.notify_one();
    let m = task.await.unwrap().unwrap();
    assert_eq!(m.clone().value(), Some(6), "{m:?}");
    let got = wizard.get().await.unwrap().unwrap();
    assert_eq!(
        (got.step, got.ids),
        (6, vec![7]),
        "the creation was not overwritten"
    );
    assert_eq!(engine.stats().cas_conflicts, 1);
}

/// `Document` with NaN: BSON equality says NaN != NaN, so a closure that changes nothing
/// must still be judged unchanged (the honest-modify promise holds for every value `T` can
/// hold). Memory store only: FerretDB 1.x does not store NaN.
#[tokio::test]
async fn unchanged_modify_with_a_nan_field_writes_nothing() {
    let clock = ManualClock::new();
    let engine = Backend::Memory.slates("nan", &clock).await.unwrap();
    let raw = engine.user_slates("ada").unwrap().raw_slate("nan");
    let v0 = raw.put(&doc! {"x": f64::NAN, "n": 1}).await.unwrap();
    let m = raw.modify(|d: &mut Document| Some(d.len())).await.unwrap();
    assert_eq!(
        m,
        Modified::Unchanged(2),
        "nothing changed, nothing to write"
    );
    assert_eq!(raw.get_doc().await.unwrap().unwrap().version, v0);
}

// ---------------------------------------------------------------- point 3: SlateUpdate values

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Contact {
    id: i64,
    name: String,
    email: Option<String>,
}

fn contact(id: i64, name: &str) -> Contact {
    Contact {
        id,
        name: name.into(),
        email: None,
    }
}

#[derive(Debug, PartialEq, Deserialize)]
struct Import {
    step: String,
    contacts: Vec<Contact>,
    visits: i64,
    log: Vec<String>,
    seen: Vec<Contact>,
}

/// A `Vec` of structs in `.set`, next to other operators in one atomic update; structs in
/// `push_all` and `add_all_to_set`; read back typed.
async fn update_values_are_any_serialize(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let import = engine.user_slates("ada").unwrap().raw_slate("import");
    let contacts = vec![contact(7, "Ada"), contact(8, "Bob")];
    let update = SlateUpdate::new()
        .set("step", "review")
        .set("contacts", &contacts)
        .inc("visits", 1)
        .push_all("log", ["uploaded", "reviewed"])
        .add_all_to_set("seen", &contacts);
    assert_eq!(update.ops().len(), 5);
    let v = import.update(update).await.unwrap();
    assert_eq!(hooked.calls(), [Call::UpdateSlate], "one atomic call");
    let got = import.get_doc().await.unwrap().unwrap();
    assert_eq!(got.version, v);
    let want = Import {
        step: "review".into(),
        contacts: contacts.clone(),
        visits: 1,
        log: vec!["uploaded".into(), "reviewed".into()],
        seen: contacts.clone(),
    };
    assert_eq!(import.get::<Import>().await.unwrap(), Some(want));
    // More structs: pushed in order; an equal one is not added to the set again.
    import
        .push_all("contacts", vec![contact(9, "Cy"), contact(7, "Ada")])
        .await
        .unwrap();
    import
        .add_all_to_set("seen", [contact(8, "Bob"), contact(9, "Cy")])
        .await
        .unwrap();
    let got: Import = import.get().await.unwrap().unwrap();
    let ids = |cs: &[Contact]| cs.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(&got.contacts), [7, 8, 9, 7]);
    assert_eq!(ids(&got.seen), [7, 8, 9]);
    // Single-value operators take structs as well.
    import.set("contacts.0", contact(1, "Zed")).await.unwrap();
    import.push("log", Some("done")).await.unwrap();
    let got: Import = import.get().await.unwrap().unwrap();
    assert_eq!(got.contacts[0], contact(1, "Zed"));
    assert_eq!(got.log.last().map(String::as_str), Some("done"));
}

fn array(doc: &SharedRawDocument, field: &str) -> Vec<Bson> {
    let doc = doc.to_document().unwrap();
    doc.get_array(field)
        .unwrap_or_else(|e| panic!("{field}: {e} in {doc}"))
        .clone()
}

fn ints(values: &[i32]) -> Vec<Bson> {
    values.iter().map(|v| Bson::Int32(*v)).collect()
}

/// `push_all`: an absent field becomes the array (empty if the list is), an existing array
/// gets the values appended in order, all in one `update_slate` call; a non-array field is
/// a type mismatch that writes nothing.
async fn push_all_appends_in_order_in_one_call(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let s = engine.user_slates("ada").unwrap().raw_slate("p");
    s.push_all("empty", Vec::<i32>::new()).await.unwrap();
    s.push_all("l", [3, 1, 2]).await.unwrap();
    assert_eq!(hooked.calls(), [Call::UpdateSlate, Call::UpdateSlate]);
    let got = s.get_doc().await.unwrap().unwrap().doc;
    assert_eq!(array(&got, "empty"), Vec::<Bson>::new(), "absent + [] = []");
    assert_eq!(array(&got, "l"), ints(&[3, 1, 2]), "order kept");
    s.push_all("l", [9, 3]).await.unwrap();
    let v = s.push_all("l", Vec::<i32>::new()).await.unwrap();
    let got = s.get_doc().await.unwrap().unwrap();
    assert_eq!(
        array(&got.doc, "l"),
        ints(&[3, 1, 2, 9, 3]),
        "appended, repeats kept"
    );
    assert_eq!(got.version, v);
    // The typed handle: same operator.
    let wizard = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    wizard.put(&start()).await.unwrap();
    wizard.push_all("ids", [2, 3]).await.unwrap();
    wizard.push_all("tags", Vec::<String>::new()).await.unwrap();
    let got = wizard.get().await.unwrap().unwrap();
    assert_eq!((got.ids, got.tags), (vec![1, 2, 3], vec!["a".to_owned()]));
    // Onto a scalar: refused, nothing written.
    s.set("n", 5).await.unwrap();
    let before = s.get_doc().await.unwrap().unwrap();
    let err = s.push_all("n", [1]).await.unwrap_err();
    assert!(matches!(err, Error::TypeMismatch { .. }), "{err:?}");
    assert_eq!(s.get_doc().await.unwrap().unwrap(), before);
}

/// `add_all_to_set`: dedups against the stored array and within the list (first
/// occurrence kept, in order); an absent field becomes the deduplicated array, empty for an
/// empty list; numbers compare by value whatever their BSON type.
async fn add_all_to_set_dedups_against_stored_and_within(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let s = engine.user_slates("ada").unwrap().raw_slate("t");
    s.add_all_to_set("empty", Vec::<i32>::new()).await.unwrap();
    s.add_all_to_set("l", [1, 2, 2, 1, 3]).await.unwrap();
    assert_eq!(hooked.calls(), [Call::UpdateSlate, Call::UpdateSlate]);
    let got = s.get_doc().await.unwrap().unwrap().doc;
    assert_eq!(array(&got, "empty"), Vec::<Bson>::new(), "absent + [] = []");
    assert_eq!(
        array(&got, "l"),
        ints(&[1, 2, 3]),
        "deduplicated within the list"
    );
    s.add_all_to_set("l", [4, 2, 5, 4, 1]).await.unwrap();
    s.add_all_to_set("l", [3_i64, 5_i64]).await.unwrap();
    let got = s.get_doc().await.unwrap().unwrap().doc;
    assert_eq!(
        array(&got, "l"),
        ints(&[1, 2, 3, 4, 5]),
        "against the stored ones"
    );
    let words = engine.user_slates("ada").unwrap().workflow(&WIZARD);
    words.put(&start()).await.unwrap();
    words
        .add_all_to_set("tags", ["b", "a", "b", "c"])
        .await
        .unwrap();
    assert_eq!(words.get().await.unwrap().unwrap().tags, ["a", "b", "c"]);
    let fresh = engine.user_slates("bob").unwrap().workflow(&WIZARD);
    fresh.add_all_to_set("tags", ["z", "z"]).await.unwrap();
    assert_eq!(fresh.get().await.unwrap().unwrap().tags, ["z"], "created");
}

/// Whether concurrent updates of one document are atomic on `backend` (not on FerretDB
/// 1.x: the test is then skipped there, loudly, and recorded as weakened).
async fn atomic_under_concurrency(backend: Backend, test: &str) -> bool {
    let _ = test;
    match backend {
        Backend::Memory => true,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => {
            let atomic = common::mongo::server_updates_are_atomic().await;
            if !atomic {
                say!(
                    "NOTE: {test}: skipped on FerretDB, whose updates are not atomic under \
                     concurrency (runs on the memory store and on MongoDB)"
                );
            }
            atomic
        }
    }
}

/// One `push_all` is one atomic operation: blocks pushed concurrently never interleave
/// and none is lost.
async fn push_all_is_one_atomic_operation(backend: Backend, test: &str) {
    let Some((engine, _hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    if !atomic_under_concurrency(backend, test).await {
        return;
    }
    let s = engine.user_slates("ada").unwrap().raw_slate("atomic");
    const BLOCKS: i32 = 8;
    const LEN: i32 = 25;
    let tasks: Vec<_> = (0..BLOCKS)
        .map(|b| {
            let s = s.clone();
            tokio::spawn(async move { s.push_all("l", (0..LEN).map(|i| b * 100 + i)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = s.get_doc().await.unwrap().unwrap().doc;
    let values: Vec<i32> = array(&got, "l")
        .iter()
        .map(|v| v.as_i32().unwrap())
        .collect();
    assert_eq!(values.len(), (BLOCKS * LEN) as usize);
    for chunk in values.chunks(LEN as usize) {
        let block = chunk[0] / 100;
        let want: Vec<i32> = (0..LEN).map(|i| block * 100 + i).collect();
        assert_eq!(chunk, want, "a block arrived whole and in order");
    }
}

/// Repeats of one operator on one field merge into one (`push` with `push_all`,
/// `add_to_set` with `add_all_to_set`, in order); two different operators on one field (or
/// on a field and its child) are refused before any store call.
async fn repeated_operators_merge_and_mixed_ones_conflict(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let s = engine.user_slates("ada").unwrap().raw_slate("m");
    s.put(&doc! {"l": [0], "t": ["a"]}).await.unwrap();
    hooked.clear_calls();
    let update = SlateUpdate::new()
        .push("l", 1)
        .push_all("l", [2, 3])
        .push("l", 4)
        .push_all("l", Vec::<i32>::new())
        .add_to_set("t", "b")
        .add_all_to_set("t", ["a", "c", "b"])
        .add_to_set("t", "d");
    assert_eq!(update.ops().len(), 7, "kept as given; merged by the store");
    s.update(update).await.unwrap();
    assert_eq!(hooked.calls(), [Call::UpdateSlate]);
    let got = s.get_doc().await.unwrap().unwrap().doc;
    assert_eq!(array(&got, "l"), ints(&[0, 1, 2, 3, 4]));
    let got = got.to_document().unwrap();
    let t: Vec<&str> = got
        .get_array("t")
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(t, ["a", "b", "c", "d"]);

    let before = s.get_doc().await.unwrap().unwrap();
    hooked.clear_calls();
    let conflicting = [
        ("l", SlateUpdate::new().push("l", 1).add_to_set("l", 2)),
        (
            "l",
            SlateUpdate::new()
                .push_all("l", [1])
                .add_all_to_set("l", [2]),
        ),
        (
            "l",
            SlateUpdate::new().add_to_set("l", 1).push_all("l", [2]),
        ),
        ("l", SlateUpdate::new().push_all("l", [1]).set("l", 2)),
        ("l.0", SlateUpdate::new().push_all("l", [1]).set("l.0", 2)),
        (
            "t",
            SlateUpdate::new().set("t.0", 1).add_all_to_set("t", [2]),
        ),
    ];
    for (field, update) in conflicting {
        let what = format!("{:?}", update.ops());
        let err = s.update(update).await.unwrap_err();
        assert!(
            matches!(err, Error::ConflictingOperators { field: ref f } if f == field),
            "{what}: {err:?}"
        );
    }
    assert_eq!(hooked.calls(), [], "refused before any store call");
    assert_eq!(s.get_doc().await.unwrap().unwrap(), before);
}

/// A value BSON cannot hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Big {
    id: u64,
}

/// A map with non-string keys: BSON documents have string keys only.
fn pairs_map() -> HashMap<(i32, i32), i32> {
    HashMap::from([((1, 2), 3)])
}

fn is_unserializable(result: slates::Result<i64>, field: &str) -> bool {
    matches!(result, Err(Error::Unserializable { field: ref f, ref reason }) if f == field && !reason.is_empty())
}

/// Every way of writing a value that does not serialize fails with
/// `Error::Unserializable` naming the field (the first one, in an update), before any
/// store call, and leaves the slate as it was. A whole-document write of such a value
/// (`put`, the result of `modify`) fails too and writes nothing.
async fn unserializable_values_name_the_field_and_reach_no_store(backend: Backend, test: &str) {
    let Some((engine, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = engine.user_slates("ada").unwrap();
    let s = ada.raw_slate("u");
    let typed: Slate<Wizard> = ada.workflow(&WIZARD);
    s.put(&doc! {"ok": 1}).await.unwrap();
    typed.put(&start()).await.unwrap();
    let before = (s.get_doc().await.unwrap(), typed.get_doc().await.unwrap());
    hooked.clear_calls();
    let big = u64::MAX;
    let cases: Vec<(&str, slates::Result<i64>)> = vec![
        ("big", s.set("big", big).await),
        ("l", s.push("l", big).await),
        ("l", s.add_to_set("l", big).await),
        ("l", s.push_all("l", [1, big]).await),
        ("l", s.add_all_to_set("l", [big]).await),
        ("m", s.set("m", pairs_map()).await),
        ("v", s.set("v", vec![Big { id: 1 }, Big { id: big }]).await),
        ("step", typed.set("step", big).await),
        ("ids", typed.push_all("ids", [big]).await),
        (
            "map",
            s.update(SlateUpdate::new().set("ok", 2).set("map", pairs_map()))
                .await,
        ),
        (
            "a",
            s.update(
                SlateUpdate::new()
                    .inc("n", 1)
                    .set("a", big)
                    .push("b", big)
                    .push_all("c", [big]),
            )
            .await,
        ),
        ("n", s.update(SlateUpdate::new().inc("n", big)).await),
        (
            "c",
            typed
                .update(SlateUpdate::new().add_all_to_set("c", [Big { id: big }]))
                .await,
        ),
    ];
    for (n, (field, result)) in cases.into_iter().enumerate() {
        let shown = format!("{result:?}");
        assert!(
            is_unserializable(result, field),
            "case {n} ({field}): {shown}"
        );
    }
    assert_eq!(hooked.calls(), [], "no store call at all");
    // Whole-document writes: `put` of such a value, and a `modify` that makes one.
    let err = s.put(&Big { id: big }).await.unwrap_err();
    assert!(
        matches!(err, Error::Serialize(_) | Error::Unserializable { .. }),
        "{err:?}"
    );
    assert_eq!(hooked.calls(), [], "put: no store call");
    let m = ada
        .raw_slate("wizard")
        .modify(|w: &mut BigWizard| {
            w.step = u64::MAX;
            Some(())
        })
        .await;
    assert!(m.is_err(), "{m:?}");
    assert_eq!(hooked.calls(), [Call::GetSlate], "read, and no write");
    let after = (s.get_doc().await.unwrap(), typed.get_doc().await.unwrap());
    assert_eq!(after, before, "both slates untouched");
}

/// `Wizard` with an unsigned step, to make a `modify` produce a value BSON cannot hold.
#[derive(Debug, Serialize, Deserialize)]
struct BigWizard {
    step: u64,
    #[serde(default)]
    ids: Vec<i64>,
}
