//! Issue 9, points 1, 2, 7 and 8, on every store: versions are never reused (a forced
//! interleaving across a delete and a re-creation), one expiry rule for every write, odd
//! stored documents never lock a user out, and errors that say what happened.
mod common;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use bson::{doc, Bson};
use common::harness::Client;
use common::hooked::{hooked_engine, injected, pause_first_swap, Call, Phase};
use common::Backend;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use slates::{Clock, CurrentUser, Engine, Error, SlateUpdate, UserSlates};
use time::Duration;

per_backend!(
    stale_version_conflicts_after_delete_and_recreate,
    stale_version_conflicts_after_expiry_and_recreate,
    every_write_keeps_the_expiry_unless_told,
    inc_on_a_non_integer_is_refused_before_writing,
    odd_field_types_fail_only_the_typed_read,
    handler_store_failures_answer_503_with_retry_after,
    conflicting_operators_have_their_own_error,
);

#[cfg(feature = "mongodb")]
mod hand_edited {
    use super::*;
    use bson::Document;
    use slates::ManualClock;
    macro_rules! on_mongo {
        ($($name:ident),* $(,)?) => {
            mod single {
                $(#[tokio::test]
                async fn $name() {
                    super::$name(
                        slates::Layout::SingleCollection,
                        concat!("guarantees_slates::edited_single::", stringify!($name)),
                    ).await;
                })*
            }
            mod per_user {
                $(#[tokio::test]
                async fn $name() {
                    super::$name(
                        slates::Layout::CollectionPerUser,
                        concat!("guarantees_slates::edited_per_user::", stringify!($name)),
                    ).await;
                })*
            }
        };
    }
    on_mongo!(
        hand_edited_user_slate_never_locks_the_user_out,
        hand_edited_workflow_slate_is_a_clear_error_and_a_write_repairs_it,
        hand_edited_token_record_is_refused_not_a_503,
        a_hand_edit_reaches_a_cache_once_its_entry_is_too_old,
    );

    /// With the cache on (the default on MongoDB), a user slate edited by hand publishes no
    /// invalidation: the cached profile is served until its entry is older than
    /// `CacheSettings::max_age`, then read again (README, "Edits made outside slates publish
    /// nothing"). The staleness bound is long so that a loaded machine cannot stop the cache
    /// from serving in between.
    async fn a_hand_edit_reaches_a_cache_once_its_entry_is_too_old(
        layout: slates::Layout,
        test: &str,
    ) {
        use common::cache::until_cache;
        use slates::store::CacheSettings;
        use std::time::{Duration as StdDuration, Instant};
        let Some(store) = common::mongo::store(test).await else {
            return;
        };
        let db = store.database().clone();
        let max_age = StdDuration::from_secs(2);
        let settings = CacheSettings::default()
            .staleness_bound(StdDuration::from_secs(600))
            .max_age(max_age);
        let slates = Engine::builder(store)
            .layout(layout)
            .secure(false)
            .cache(settings)
            .build()
            .await
            .unwrap();
        until_cache(&slates, "the cache serving", |s| s.serving).await;
        let mut c = client(&slates);
        assert_eq!(login(&mut c, "ada").await, StatusCode::NO_CONTENT);
        // Whatever the login published has come back: no invalidation is in flight.
        until_cache(&slates, "the login's invalidations received", |s| {
            s.invalidations_received >= s.invalidations_published
        })
        .await;
        // An edit by hand of ada's profile.
        let edit = |name: &str, version: i64| {
            write_raw(
                &db,
                layout,
                "ada",
                "user",
                doc! {"name": name, "_v": version},
            )
        };
        edit("Ada", 1).await;
        let read = Instant::now();
        assert_eq!(c.get("/profile").await.body, "Ada");
        edit("Eve", 2).await;
        let r = c.get("/profile").await;
        if read.elapsed() < max_age {
            assert_eq!(
                r.body, "Ada",
                "served from the cache: the edit published nothing"
            );
        }
        tokio::time::sleep(max_age.saturating_sub(read.elapsed()) + StdDuration::from_millis(100))
            .await;
        assert_eq!(c.get("/profile").await.body, "Eve", "too old: read again");
    }

    /// Engine on a fresh Mongo database, and the raw collection holding `user`'s slates.
    async fn raw(
        layout: slates::Layout,
        test: &str,
    ) -> Option<(Engine, ManualClock, slates::mongodb::Database)> {
        let store = common::mongo::store(test).await?;
        let db = store.database().clone();
        let clock = ManualClock::new();
        // No cache: a document edited by hand publishes no invalidation, so a cache would
        // keep serving what it read before the edit (up to `CacheSettings::max_age`, as the
        // README says); these tests are about how slates reads the edited documents.
        let slates = Engine::builder(store)
            .layout(layout)
            .clock(clock.clone())
            .secure(false)
            .no_cache()
            .build()
            .await
            .unwrap();
        Some((slates, clock, db))
    }

    /// Replaces the stored document of `user`'s slate `slate` with `doc`, as an admin typing
    /// in the mongo shell would.
    async fn write_raw(
        db: &slates::mongodb::Database,
        layout: slates::Layout,
        user: &str,
        slate: &str,
        mut doc: Document,
    ) {
        let (coll, id): (String, Bson) = match layout {
            slates::Layout::CollectionPerUser => (format!("slates.user.{user}"), slate.into()),
            _ => ("slates".into(), format!("{user}${slate}").into()),
        };
        doc.insert("_id", id.clone());
        db.collection::<Document>(&coll)
            .replace_one(doc! {"_id": id}, doc)
            .upsert(true)
            .await
            .unwrap();
    }

    async fn hand_edited_user_slate_never_locks_the_user_out(layout: slates::Layout, test: &str) {
        let Some((slates, _clock, db)) = raw(layout, test).await else {
            return;
        };
        let mut c = client(&slates);
        assert_eq!(login(&mut c, "ada").await, StatusCode::NO_CONTENT);
        // `$inc: {_v: 1}` typed in the shell makes `_v` a double: an integral double is a
        // version like any other.
        write_raw(&db, layout, "ada", "user", doc! {"name": "Ada", "_v": 3.0}).await;
        let r = c.get("/profile").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "Ada"));
        assert_eq!(c.get("/version").await.body, "3");
        // `_v` of another type, missing, or `_expires` that is not a date: the request
        // proceeds, routes that do not read the user slate work, the typed read is a clear
        // error (never a 503 for every request of the user).
        for odd in [
            doc! {"name": "Ada", "_v": "seven"},
            doc! {"name": "Ada"},
            doc! {"name": "Ada", "_v": 1.5},
            doc! {"name": "Ada", "_v": 1_i64, "_expires": "tomorrow"},
        ] {
            write_raw(&db, layout, "ada", "user", odd.clone()).await;
            let r = c.get("/maybe").await;
            assert_eq!(
                (r.status, r.body.as_str()),
                (StatusCode::OK, "ada"),
                "{odd}"
            );
            let r = c.get("/hits").await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{odd}: workflow slates still work"
            );
            let r = c.get("/profile").await;
            assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{odd}");
            assert!(
                !r.body.contains("seven"),
                "no stored data in the error body"
            );
            let err = slates
                .user_slates("ada")
                .unwrap()
                .raw_slate("user")
                .get_doc()
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::MalformedDocument { .. }),
                "{odd}: {err:?}"
            );
        }
        // A write of the user slate repairs it.
        slates
            .user_slates("ada")
            .unwrap()
            .raw_slate("user")
            .put(&doc! {"name": "Ada L."})
            .await
            .unwrap();
        assert_eq!(c.get("/profile").await.body, "Ada L.");
    }

    async fn hand_edited_workflow_slate_is_a_clear_error_and_a_write_repairs_it(
        layout: slates::Layout,
        test: &str,
    ) {
        let Some((slates, _clock, db)) = raw(layout, test).await else {
            return;
        };
        let w = slates.user_slates("ada").unwrap().raw_slate("wizard");
        for odd in [
            doc! {"step": 2, "_v": "x"},
            doc! {"step": 2},
            doc! {"step": 2, "_v": 5_i64, "_expires": 12},
        ] {
            write_raw(&db, layout, "ada", "wizard", odd.clone()).await;
            assert!(
                matches!(w.get_doc().await, Err(Error::MalformedDocument { .. })),
                "{odd}"
            );
            assert!(matches!(
                w.modify_or_default(|d: &mut Document| Some(d.insert("x", 1)))
                    .await,
                Err(Error::MalformedDocument { .. })
            ));
        }
        // An operator write repairs `_v`; a put repairs everything.
        write_raw(&db, layout, "ada", "wizard", doc! {"step": 2, "_v": "x"}).await;
        let v = w.set("step", 3).await.unwrap();
        let got = w.get_doc().await.unwrap().unwrap();
        assert_eq!((got.doc.get_i32("step").unwrap(), got.version), (3, v));
        write_raw(
            &db,
            layout,
            "ada",
            "wizard",
            doc! {"step": 2, "_expires": 12},
        )
        .await;
        let v = w.put(&doc! {"step": 4}).await.unwrap();
        let got = w.get_doc().await.unwrap().unwrap();
        assert_eq!((got.doc.get_i32("step").unwrap(), got.version), (4, v));
        assert_eq!(got.expires, None);
    }

    async fn hand_edited_token_record_is_refused_not_a_503(layout: slates::Layout, test: &str) {
        let Some((slates, _clock, db)) = raw(layout, test).await else {
            return;
        };
        let mut c = client(&slates);
        login(&mut c, "ada").await;
        let auth = db.collection::<Document>("_auth");
        auth.update_many(doc! {}, doc! {"$set": {"expires": "never"}})
            .await
            .unwrap();
        let r = c.get("/maybe").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "anonymous"));
        assert!(c.cookie.is_none(), "the unusable cookie is removed");
        assert_eq!(login(&mut c, "ada").await, StatusCode::NO_CONTENT);
        assert_eq!(c.get("/maybe").await.body, "ada", "a new login works");
    }
}

// ---------------------------------------------------------------- the app

#[derive(Deserialize)]
struct Profile {
    name: String,
}

async fn h_profile(user: CurrentUser) -> Result<String, Error> {
    Ok(user
        .profile::<Profile>()
        .await?
        .map(|p| p.name)
        .unwrap_or_default())
}

async fn h_version(user: CurrentUser) -> String {
    format!(
        "{:?}",
        user.profile_version().await.ok().flatten().unwrap_or(-1)
    )
}

async fn h_hits(slates: UserSlates) -> Result<String, Error> {
    Ok(slates
        .raw_slate("counter")
        .inc("hits", 1)
        .await?
        .to_string())
}

fn app(slates: &Engine) -> Router {
    common::suite::test_app(slates).merge(
        Router::new()
            .route("/profile", get(h_profile))
            .route("/version", get(h_version))
            .route("/hits", get(h_hits))
            .route("/write", post(h_hits))
            .layer(slates.layer()),
    )
}

fn client(slates: &Engine) -> Client {
    let mut c = Client::new(app(slates));
    c.cookie_name = slates.config().cookie.name.clone();
    c
}

async fn login(c: &mut Client, user: &str) -> StatusCode {
    c.post_form("/login", &format!("username={user}"))
        .await
        .status
}

// ---------------------------------------------------------------- point 1: versions

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Counter {
    n: i64,
}

/// A reader reads version V of a slate; the slate is deleted and created again (through
/// another handle) before the reader writes; the reader's compare-and-swap must conflict
/// and retry on the new slate, never overwrite it with data computed from the old one.
async fn stale_version_conflicts_after_delete_and_recreate(backend: Backend, test: &str) {
    let Some((slates, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = slates.user_slates("ada").unwrap();
    let first = ada.raw_slate("tally").put(&Counter { n: 1 }).await.unwrap();
    let (paused, release) = pause_first_swap(&hooked);
    let reader = ada.raw_slate("tally");
    let task = tokio::spawn(async move {
        reader
            .modify(|c: &mut Counter| {
                c.n += 1;
                Some(c.n)
            })
            .await
    });
    paused.notified().await;
    // The slate goes and comes back; its first incarnation's version must not come back.
    assert!(ada.raw_slate("tally").delete().await.unwrap());
    let second = ada
        .raw_slate("tally")
        .put(&Counter { n: 100 })
        .await
        .unwrap();
    assert_ne!(second, first, "a re-created slate has a new version");
    release.notify_one();
    let written = task.await.unwrap().unwrap();
    assert!(written.is_written());
    assert_eq!(
        written.value(),
        Some(101),
        "the reader retried on the new slate"
    );
    let got: Counter = ada.raw_slate("tally").get().await.unwrap().unwrap();
    assert_eq!(got, Counter { n: 101 }, "no lost update");
    assert_eq!(slates.stats().cas_conflicts, 1, "the stale swap conflicted");
}

/// The same across an expiry: the slate expires and is written again (by an operator, the
/// way a new workflow starts) while the reader waits.
async fn stale_version_conflicts_after_expiry_and_recreate(backend: Backend, test: &str) {
    let Some((slates, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = slates.user_slates("ada").unwrap();
    let upload = ada.raw_slate("upload").expires_in(Duration::minutes(10));
    upload.set("n", 1).await.unwrap();
    let (paused, release) = pause_first_swap(&hooked);
    let reader = ada.raw_slate("upload").expires_in(Duration::minutes(10));
    let task = tokio::spawn(async move {
        reader
            .modify(|c: &mut Counter| {
                c.n += 1;
                Some(c.n)
            })
            .await
    });
    paused.notified().await;
    clock.advance(Duration::minutes(11));
    assert!(upload.get_doc().await.unwrap().is_none(), "expired");
    assert_eq!(upload.inc("n", 50).await.unwrap(), 50, "a fresh slate");
    release.notify_one();
    assert_eq!(task.await.unwrap().unwrap().value(), Some(51));
    let got: Counter = upload.get().await.unwrap().unwrap();
    assert_eq!(got.n, 51);
    assert_eq!(slates.stats().cas_conflicts, 1);
}

// ---------------------------------------------------------------- point 2: expiry rule

/// Every write operation, through a handle that does not mention expiry, keeps the slate's
/// expiry; through a handle with `expires_in`, sets it to now + ttl. A slate created without
/// expiry stays permanent.
async fn every_write_keeps_the_expiry_unless_told(backend: Backend, test: &str) {
    let Some((slates, _hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let ada = slates.user_slates("ada").unwrap();
    type Write =
        fn(slates::RawSlate) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let writes: [(&str, Write); 8] = [
        ("set", |s| {
            Box::pin(async move { s.set("a", 1).await.map(drop).unwrap() })
        }),
        ("unset", |s| {
            Box::pin(async move { s.unset("a").await.map(drop).unwrap() })
        }),
        ("inc", |s| {
            Box::pin(async move { s.inc("n", 1).await.map(drop).unwrap() })
        }),
        ("push", |s| {
            Box::pin(async move { s.push("l", 1).await.map(drop).unwrap() })
        }),
        ("add_to_set", |s| {
            Box::pin(async move { s.add_to_set("t", 1).await.map(drop).unwrap() })
        }),
        ("update", |s| {
            Box::pin(async move {
                s.update(SlateUpdate::new().set("b", 2).inc("n", 1))
                    .await
                    .map(drop)
                    .unwrap()
            })
        }),
        ("put", |s| {
            Box::pin(async move { s.put(&doc! {"n": 7}).await.map(drop).unwrap() })
        }),
        ("modify", |s| {
            Box::pin(async move {
                let add = s.modify_or_default(|c: &mut Counter| {
                    c.n += 1;
                    Some(())
                });
                assert!(add.await.unwrap().is_written());
            })
        }),
    ];
    let ttl = Duration::minutes(30);
    for (name, write) in writes {
        let slate_name = format!("w_{name}");
        // Created expiring.
        let start = clock.now();
        ada.raw_slate(&slate_name)
            .expires_in(ttl)
            .put(&doc! {"n": 0})
            .await
            .unwrap();
        clock.advance(Duration::minutes(5));
        write(ada.raw_slate(&slate_name)).await;
        let got = ada.raw_slate(&slate_name).get_doc().await.unwrap().unwrap();
        assert_eq!(
            got.expires,
            Some(start + ttl),
            "{name} without expires_in keeps it"
        );
        // Through a handle with expiry: sliding.
        clock.advance(Duration::minutes(5));
        let now = clock.now();
        write(ada.raw_slate(&slate_name).expires_in(ttl)).await;
        let got = ada.raw_slate(&slate_name).get_doc().await.unwrap().unwrap();
        assert_eq!(
            got.expires,
            Some(now + ttl),
            "{name} with expires_in slides it"
        );
        // Still honoured: gone after the expiry.
        clock.advance(ttl);
        assert!(
            ada.raw_slate(&slate_name)
                .get_doc()
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        // A permanent slate stays permanent.
        let perm = format!("p_{name}");
        ada.raw_slate(&perm).put(&doc! {"n": 0}).await.unwrap();
        write(ada.raw_slate(&perm)).await;
        assert_eq!(
            ada.raw_slate(&perm)
                .get_doc()
                .await
                .unwrap()
                .unwrap()
                .expires,
            None,
            "{name}"
        );
        // An absent (or expired) slate written without expiry is created permanent.
        let fresh = format!("f_{name}");
        write(ada.raw_slate(&fresh)).await;
        assert_eq!(
            ada.raw_slate(&fresh)
                .get_doc()
                .await
                .unwrap()
                .unwrap()
                .expires,
            None,
            "{name}"
        );
    }
}

// ---------------------------------------------------------------- point 8: errors

/// `inc` promises an integer: on a field that holds a double or a string it is refused and
/// nothing is written (the version and the value stay).
async fn inc_on_a_non_integer_is_refused_before_writing(backend: Backend, test: &str) {
    let Some((slates, _hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let s = slates.user_slates("ada").unwrap().raw_slate("c");
    for (value, what) in [(Bson::Double(1.5), "double"), (Bson::from("x"), "string")] {
        let v = s
            .put(&doc! {"hits": value.clone(), "other": 1})
            .await
            .unwrap();
        let err = s.inc("hits", 1).await.unwrap_err();
        assert!(
            matches!(err, Error::TypeMismatch { ref field, .. } if field == "hits"),
            "{what}: {err:?}"
        );
        let got = s.get_doc().await.unwrap().unwrap();
        assert_eq!(got.version, v, "{what}: nothing written");
        let fields = got.doc.to_document().unwrap();
        assert_eq!(fields.get("hits"), Some(&value), "{what}");
    }
    // An integral counter still counts, int32 or int64.
    s.put(&doc! {"hits": 41_i32}).await.unwrap();
    assert_eq!(s.inc("hits", 1).await.unwrap(), 42);
    s.put(&doc! {"hits": 41_i64}).await.unwrap();
    assert_eq!(s.inc("hits", 1).await.unwrap(), 42);
    // A double counter is still usable through `update`, with MongoDB's arithmetic.
    s.put(&doc! {"hits": 1.5}).await.unwrap();
    s.update(SlateUpdate::new().inc("hits", 1)).await.unwrap();
    assert_eq!(
        s.get_doc()
            .await
            .unwrap()
            .unwrap()
            .doc
            .get_f64("hits")
            .unwrap(),
        2.5
    );
}

/// Fields of the wrong type for the app's struct: the typed read fails, nothing else does.
async fn odd_field_types_fail_only_the_typed_read(backend: Backend, test: &str) {
    let Some((slates, _hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut c = client(&slates);
    login(&mut c, "ada").await;
    slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .put(&doc! {"name": 42})
        .await
        .unwrap();
    assert_eq!(c.get("/maybe").await.body, "ada");
    assert_eq!(c.get("/hits").await.status, StatusCode::OK);
    let r = c.get("/profile").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let user = slates.user_slates("ada").unwrap();
    assert!(matches!(
        user.raw_slate("user").get::<Profile>().await,
        Err(Error::Deserialize(_))
    ));
}

/// A store failure inside a handler answers 503 with `Retry-After`, like the layer's own.
async fn handler_store_failures_answer_503_with_retry_after(backend: Backend, test: &str) {
    let Some((slates, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut c = client(&slates);
    login(&mut c, "ada").await;
    // Fail the handler's write (the layer's lookup and user slate read pass).
    hooked.set_hook(Arc::new(|call, phase, _| {
        let fail = call == Call::UpdateSlate && phase == Phase::Before;
        Box::pin(async move {
            if fail {
                Err(injected())
            } else {
                Ok(())
            }
        })
    }));
    let r = c.post("/write").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "5");
    assert!(!r.body.contains("injected"), "no store text in the body");
    // The layer's own 503 (the lookup fails) carries it too.
    hooked.set_hook(Arc::new(|call, _, _| {
        let fail = call == Call::FindToken;
        Box::pin(async move {
            if fail {
                Err(injected())
            } else {
                Ok(())
            }
        })
    }));
    let r = c.get("/maybe").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "5");
    assert!(c.cookie.is_some(), "a failing store never drops the cookie");
}

/// Conflicting operators in one update have their own error and status (400), and reach no
/// store.
async fn conflicting_operators_have_their_own_error(backend: Backend, test: &str) {
    let Some((slates, hooked, _clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let s = slates.user_slates("ada").unwrap().raw_slate("c");
    let err = s
        .update(SlateUpdate::new().set("a", 1).inc("a", 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ConflictingOperators { ref field } if field == "a"),
        "{err:?}"
    );
    assert!(hooked.calls().is_empty(), "refused before any store call");
    let response = axum::response::IntoResponse::into_response(err);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
