//! The behavioural suite: every test here runs unchanged against every backend.
//! `slates_suite!(Backend::X)` in a test file expands to one `#[tokio::test]` per test.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::extract::Form;
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use bson::{doc, Bson};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use slates::names::validate_field;
use slates::store::{Expiry, SlateKey, TokenRecord, UpdateOp};
use slates::store::{SlateStore as _, TokenStore as _};
use slates::{
    Auth, Clock, CurrentUser, DeviceId, Engine, Error, ManualClock, SlateName, SlateUpdate, Token,
    UserSlates, Username,
};
use time::Duration;
use tokio::sync::Notify;

use super::harness::Client;
use super::Backend;

/// Expands to one `#[tokio::test]` per suite test for `$backend`.
#[macro_export]
macro_rules! slates_suite {
    ($backend:expr) => {
        $crate::slates_suite!(@tests $backend;
            token_records_round_trip,
            renewal_never_resurrects,
            device_records,
            last_seen_touch_never_resurrects,
            concurrent_device_writes_have_one_winner,
            slate_operators,
            slate_versions_and_cas,
            slate_expiry,
            oversize_document_keeps_previous,
            invalid_names_touch_nothing,
            concurrent_increments_store_level,
            concurrent_modify_loses_nothing,
            delete_user_slates_keeps_tokens,
            take_slate_reads_and_deletes,
            login_request_logout,
            token_expiry_and_renewal,
            logout_everywhere,
            fixation_planted_cookie_not_adopted,
            rotate_with_grace,
            malformed_cookies_cost_no_lookup,
            concurrent_increments_through_layer,
            slow_request_does_not_block_same_user,
            expired_token_keeps_user_data,
        );
    };
    (@tests $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let clock = slates::ManualClock::new();
                let test = concat!(module_path!(), "::", stringify!($name));
                let Some(slates) = $crate::common::Backend::slates($backend, test, &clock).await else {
                    return;
                };
                $crate::common::suite::$name($backend, slates, clock).await;
            }
        )*
    };
}

fn user(name: &str) -> Username {
    Username::new(name).unwrap()
}

fn key(u: &str, s: &str) -> SlateKey {
    SlateKey::new(user(u), SlateName::new(s).unwrap())
}

/// Whether the backend applies concurrent updates atomically. True for the memory store and
/// MongoDB; FerretDB 1.x is known not to (its updates are read-modify-write), so concurrency
/// tests say so and skip on it. They always run in full on the memory store.
async fn atomic_under_concurrency(backend: Backend, what: &str) -> bool {
    #[cfg(not(feature = "mongodb"))]
    let _ = what;
    match backend {
        Backend::Memory => true,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => {
            let atomic = super::mongo::server_updates_are_atomic().await;
            if !atomic {
                crate::say!(
                    "NOTE: {what}: skipped on FerretDB, whose updates are not atomic under \
                     concurrency (a known FerretDB 1.x gap; runs in full on the memory store \
                     and on MongoDB; the command-shape test proves slates sends one atomic command)"
                );
            }
            atomic
        }
    }
}

// ---------------------------------------------------------------- store level

pub async fn token_records_round_trip(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.token_store();
    let now = clock.now();
    let token = Token::generate().unwrap();
    let record = TokenRecord {
        hash: token.hash(),
        user: user("ada"),
        created: now,
        expires: now + Duration::hours(1),
        renewed: None,
        rotated: None,
        device: Some(slates::DeviceId::generate().unwrap()),
        last_seen: now,
        label: String::new(),
        ip: None,
    };
    store.insert_token(&record).await.unwrap();
    assert!(matches!(
        store.insert_token(&record).await,
        Err(Error::DuplicateKey)
    ));
    let found = store.find_token(&token.hash(), now).await.unwrap().unwrap();
    assert_eq!(found.user, record.user);
    assert_eq!(found.expires, record.expires);
    // Expiry is filtered at read time, whatever garbage collection has done.
    assert!(store
        .find_token(&token.hash(), now + Duration::hours(1))
        .await
        .unwrap()
        .is_none());
    // Retiring (rotation) lowers expiry, never raises it, and marks the record rotated out:
    // explicit state, so renewal refuses it whatever the configuration.
    assert_eq!(found.rotated, None);
    assert!(store
        .retire_token(&token.hash(), now + Duration::minutes(1), now)
        .await
        .unwrap());
    assert!(store
        .retire_token(&token.hash(), now + Duration::hours(5), now)
        .await
        .unwrap());
    let found = store.find_token(&token.hash(), now).await.unwrap().unwrap();
    assert_eq!(found.expires, now + Duration::minutes(1));
    assert_eq!(found.rotated, Some(now));
    assert!(!store
        .renew_token(&token.hash(), found.expires, now + Duration::hours(1), now)
        .await
        .unwrap());
    assert!(!store
        .retire_token(&Token::generate().unwrap().hash(), now, now)
        .await
        .unwrap());

    let other = Token::generate().unwrap();
    store
        .insert_token(&TokenRecord {
            hash: other.hash(),
            ..record.clone()
        })
        .await
        .unwrap();
    let bob = Token::generate().unwrap();
    store
        .insert_token(&TokenRecord {
            hash: bob.hash(),
            user: user("bob"),
            ..record.clone()
        })
        .await
        .unwrap();
    assert!(store.delete_token(&other.hash()).await.unwrap());
    assert!(!store.delete_token(&other.hash()).await.unwrap());
    assert_eq!(store.delete_user_tokens(&user("ada")).await.unwrap(), 1);
    assert!(store
        .find_token(&token.hash(), now)
        .await
        .unwrap()
        .is_none());
    assert!(store.find_token(&bob.hash(), now).await.unwrap().is_some());
}

pub async fn renewal_never_resurrects(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.token_store();
    let now = clock.now();
    let token = Token::generate().unwrap();
    let record = TokenRecord {
        hash: token.hash(),
        user: user("ada"),
        created: now,
        expires: now + Duration::hours(1),
        renewed: None,
        rotated: None,
        device: Some(slates::DeviceId::generate().unwrap()),
        last_seen: now,
        label: String::new(),
        ip: None,
    };
    store.insert_token(&record).await.unwrap();
    let later = now + Duration::hours(2);
    // Renewal is a compare-and-swap on the expiry it read.
    assert!(!store
        .renew_token(&token.hash(), now + Duration::minutes(5), later, now)
        .await
        .unwrap());
    assert!(store
        .renew_token(&token.hash(), record.expires, later, now)
        .await
        .unwrap());
    let found = store.find_token(&token.hash(), now).await.unwrap().unwrap();
    assert_eq!(found.expires, later);
    assert_eq!(found.renewed, Some(now));
    store.delete_token(&token.hash()).await.unwrap();
    // Renewal after logout changes nothing and creates nothing.
    assert!(!store
        .renew_token(&token.hash(), later, later, now)
        .await
        .unwrap());
    assert!(store
        .find_token(&token.hash(), now)
        .await
        .unwrap()
        .is_none());
    // Nor does it revive an expired token.
    let t2 = Token::generate().unwrap();
    store
        .insert_token(&TokenRecord {
            hash: t2.hash(),
            ..record.clone()
        })
        .await
        .unwrap();
    let after_expiry = now + Duration::hours(1);
    assert!(!store
        .renew_token(
            &t2.hash(),
            record.expires,
            after_expiry + Duration::hours(1),
            after_expiry,
        )
        .await
        .unwrap());
    assert!(store
        .find_token(&t2.hash(), after_expiry)
        .await
        .unwrap()
        .is_none());
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct IdSet {
    name: String,
    ids: Vec<i64>,
}

pub async fn slate_operators(_: Backend, slates: Engine, _clock: ManualClock) {
    let ada = slates.user_slates("ada").unwrap();
    let s = ada.raw_slate("new_id_set");
    assert_eq!(s.get::<IdSet>().await.unwrap(), None);
    let v1 = s
        .put(&IdSet {
            name: "batch".into(),
            ids: vec![1, 2],
        })
        .await
        .unwrap();
    let v2 = s.push("ids", &3).await.unwrap();
    assert_ne!(v2, v1, "every write has a fresh version");
    s.add_to_set("ids", &3).await.unwrap();
    s.add_to_set("ids", &4).await.unwrap();
    let got: IdSet = s.get().await.unwrap().unwrap();
    assert_eq!(got.ids, vec![1, 2, 3, 4]);
    assert_eq!(s.inc("hits", 5).await.unwrap(), 5);
    assert_eq!(s.inc("hits", -2).await.unwrap(), 3);
    s.set("profile.tz", "Europe/Paris").await.unwrap();
    let v8 = s.unset("name").await.unwrap();
    let doc = s.get_doc().await.unwrap().unwrap();
    let fields = doc.doc.to_document().unwrap();
    assert_eq!(
        fields.get_document("profile").unwrap(),
        &doc! {"tz": "Europe/Paris"}
    );
    assert!(fields.get("name").is_none());
    assert_eq!(doc.version, v8);
    // Several operators, one atomic write.
    let v = s
        .update(
            SlateUpdate::new()
                .set("step", "review")
                .inc("hits", 1)
                .push("ids", 5),
        )
        .await
        .unwrap();
    assert_ne!(v, v8);
    let doc = s
        .get_doc()
        .await
        .unwrap()
        .unwrap()
        .doc
        .to_document()
        .unwrap();
    assert_eq!(doc.get_str("step").unwrap(), "review");
    assert_eq!(doc.get("hits").and_then(as_i64), Some(4));
    // Type mismatches are typed errors and change nothing.
    assert!(matches!(
        s.inc("step", 1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        s.push("step", &1).await,
        Err(Error::TypeMismatch { .. })
    ));
    assert_eq!(s.get_doc().await.unwrap().unwrap().version, v);
    // Conflicting operators in one update are refused the same way by every store.
    for update in [
        SlateUpdate::new().set("x", 1).inc("x", 1),
        SlateUpdate::new().set("p", 1).set("p.q", 2),
    ] {
        assert!(matches!(
            s.update(update).await,
            Err(Error::ConflictingOperators { .. })
        ));
    }
    let before = s.get_doc().await.unwrap().unwrap().version;
    assert_ne!(
        s.update(SlateUpdate::new().inc("hits", 1).inc("hits", 2))
            .await
            .unwrap(),
        before,
        "repeats of one operator are fine"
    );
    assert_eq!(s.inc("hits", 0).await.unwrap(), 7);
    // Reserved fields are refused before the store.
    assert!(matches!(
        s.set("_v", &1).await,
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        s.put(&doc! {"_id": 1}).await,
        Err(Error::InvalidName { .. })
    ));
    assert!(s.delete().await.unwrap());
    assert!(!s.delete().await.unwrap());
    assert_eq!(s.get::<IdSet>().await.unwrap(), None);
    // Operators on an absent slate create it.
    assert_eq!(ada.raw_slate("counter").inc("n", 1).await.unwrap(), 1);
}

pub async fn slate_versions_and_cas(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.slate_store();
    let now = clock.now();
    let k = key("ada", "cas");
    assert_eq!(
        store
            .replace_slate_if(&k, Some(1), &doc! {"a": 1}, None, now)
            .await
            .unwrap(),
        None
    );
    let v1 = store
        .replace_slate_if(&k, None, &doc! {"a": 1}, None, now)
        .await
        .unwrap()
        .expect("created");
    assert_eq!(
        store
            .replace_slate_if(&k, None, &doc! {"a": 2}, None, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .replace_slate_if(&k, Some(v1.wrapping_add(1)), &doc! {"a": 2}, None, now)
            .await
            .unwrap(),
        None
    );
    let v2 = store
        .replace_slate_if(&k, Some(v1), &doc! {"a": 2}, None, now)
        .await
        .unwrap()
        .expect("swapped");
    assert_ne!(v2, v1);
    let got = store.get_slate(&k, now).await.unwrap().unwrap();
    assert_eq!(got.doc, doc! {"a": 2});
    assert_eq!(got.version, v2);
    let updated = store
        .update_slate(
            &k,
            &[UpdateOp::Inc("a".into(), Bson::Int64(1))],
            Expiry::Keep,
            Some("a"),
            now,
        )
        .await
        .unwrap();
    assert!(updated.version != v2 && updated.version != v1);
    assert_eq!(updated.counter, Some(3));
    let v4 = store
        .put_slate(&k, &doc! {"b": 1}, Expiry::Keep, now)
        .await
        .unwrap();
    let got = store.get_slate(&k, now).await.unwrap().unwrap();
    assert_eq!(got.doc, doc! {"b": 1}, "put replaces the whole document");
    assert_eq!(got.version, v4);
    // A stale version never matches again, not even after a delete and a re-creation.
    assert!(store.delete_slate(&k, now).await.unwrap());
    let v5 = store
        .replace_slate_if(&k, None, &doc! {"c": 1}, None, now)
        .await
        .unwrap()
        .unwrap();
    for stale in [v1, v2, updated.version, v4] {
        assert_ne!(v5, stale);
        assert_eq!(
            store
                .replace_slate_if(&k, Some(stale), &doc! {"d": 1}, None, now)
                .await
                .unwrap(),
            None
        );
    }
}

pub async fn slate_expiry(_: Backend, slates: Engine, clock: ManualClock) {
    let ada = slates.user_slates("ada").unwrap();
    let s = ada.raw_slate("upload").expires_in(Duration::minutes(30));
    s.set("step", "review").await.unwrap();
    clock.advance(Duration::minutes(20));
    s.set("step", "still").await.unwrap(); // sliding: extends to +30 min from now
    clock.advance(Duration::minutes(20));
    assert!(s.get_doc().await.unwrap().is_some());
    clock.advance(Duration::minutes(11));
    assert!(
        s.get_doc().await.unwrap().is_none(),
        "an expired slate reads as absent"
    );
    // Writing after expiry starts a fresh document.
    assert_eq!(s.inc("n", 1).await.unwrap(), 1);
    let doc = s.get_doc().await.unwrap().unwrap();
    assert!(
        doc.doc.get("step").unwrap().is_none(),
        "no stale fields come back"
    );
    // Compare-and-swap sees an expired slate as absent too.
    clock.advance(Duration::hours(1));
    let now = clock.now();
    assert!(slates
        .slate_store()
        .replace_slate_if(&key("ada", "upload"), None, &doc! {"x": 1}, None, now)
        .await
        .unwrap()
        .is_some_and(|v| v != doc.version));
}

pub async fn oversize_document_keeps_previous(backend: Backend, slates: Engine, _c: ManualClock) {
    let s = slates.user_slates("ada").unwrap().raw_slate("big");
    s.put(&doc! {"keep": "me"}).await.unwrap();
    let big = "x".repeat(17 * 1024 * 1024);
    assert!(matches!(
        s.put(&doc! {"blob": &big}).await,
        Err(Error::DocumentTooLarge { .. })
    ));
    assert!(matches!(
        s.set("blob", &big).await,
        Err(Error::DocumentTooLarge { .. })
    ));
    // Growing past the limit one push at a time fails too, and the last good state stays.
    let chunk = "y".repeat(6 * 1024 * 1024);
    s.push("chunks", &chunk).await.unwrap();
    let last_good = s.push("chunks", &chunk).await.unwrap();
    if !limit_enforced_on_updates(backend, "oversize_document_keeps_previous").await {
        return;
    }
    assert!(matches!(
        s.push("chunks", &chunk).await,
        Err(Error::DocumentTooLarge { .. })
    ));
    let doc = s.get_doc().await.unwrap().unwrap();
    assert_eq!(doc.doc.get_str("keep").unwrap(), "me");
    assert_eq!(doc.doc.get_array("chunks").unwrap().into_iter().count(), 2);
    assert_eq!(doc.version, last_good);
}

/// Whether the backend refuses an update whose *result* exceeds 16 MiB (a store can only
/// check the values it sends; the result's size is the server's to check). True for the
/// memory store and MongoDB; FerretDB 1.x stores such documents, so the test says so and
/// stops before that step.
async fn limit_enforced_on_updates(backend: Backend, what: &str) -> bool {
    #[cfg(not(feature = "mongodb"))]
    let _ = what;
    match backend {
        Backend::Memory => true,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => {
            let enforced = !super::mongo::is_ferretdb().await;
            if !enforced {
                crate::say!(
                    "NOTE: {what}: growing a document past 16 MiB with small pushes is not \
                     checked on FerretDB, which does not enforce the limit on update results \
                     (a known FerretDB 1.x gap; whole documents and oversized values are still \
                     refused before sending, as checked above; runs in full on the memory \
                     store and on MongoDB)"
                );
                super::record_skip(
                    "weakened",
                    &super::current_test(what),
                    "FerretDB does not enforce 16 MiB on update results",
                );
            }
            enforced
        }
    }
}

pub async fn invalid_names_touch_nothing(_: Backend, slates: Engine, _c: ManualClock) {
    for bad in ["", "_auth", "system.x", "a$b", "a\0b"] {
        assert!(matches!(
            slates.user_slates(bad),
            Err(Error::InvalidName { .. })
        ));
    }
    let ada = slates.user_slates("ada").unwrap();
    for bad in ["", "a.b", "$x", "n\0", &"s".repeat(121)] {
        let s = ada.raw_slate(bad);
        assert!(matches!(
            s.inc("n", 1).await,
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(s.get_doc().await, Err(Error::InvalidName { .. })));
        assert!(matches!(s.delete().await, Err(Error::InvalidName { .. })));
    }
    for bad in ["", "$set", "a..b", "_id"] {
        assert!(validate_field(bad).is_err());
        assert!(matches!(
            ada.raw_slate("ok").set(bad, &1).await,
            Err(Error::InvalidName { .. })
        ));
    }
    assert!(ada.raw_slate("ok").get_doc().await.unwrap().is_none());
    assert_eq!(slates.stats().store_errors, 0);
}

pub async fn concurrent_increments_store_level(backend: Backend, slates: Engine, _c: ManualClock) {
    if !atomic_under_concurrency(backend, "concurrent_increments_store_level").await {
        return;
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = slates.user_slates("ada").unwrap().raw_slate("counter");
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(500);
                for _ in 0..500 {
                    seen.push(s.inc("hits", 1).await.unwrap());
                }
                seen
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in tasks {
        values.extend(t.await.unwrap());
    }
    // Every increment saw a different value: 1..=4000, each once.
    values.sort_unstable();
    assert_eq!(values, (1..=4000).collect::<Vec<i64>>());
    let doc = slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("counter")
        .get_doc()
        .await
        .unwrap()
        .unwrap()
        .doc
        .to_document()
        .unwrap();
    assert_eq!(doc.get("hits").and_then(as_i64), Some(4000));
}

fn as_i64(b: &Bson) -> Option<i64> {
    b.as_i64().or_else(|| b.as_i32().map(i64::from))
}

pub async fn concurrent_modify_loses_nothing(backend: Backend, slates: Engine, _c: ManualClock) {
    if !atomic_under_concurrency(backend, "concurrent_modify_loses_nothing").await {
        return;
    }
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = slates.user_slates("ada").unwrap().raw_slate("set");
            tokio::spawn(async move {
                for i in 0..50 {
                    let done = s.modify_or_default(|set: &mut IdSet| {
                        set.ids.push(t * 1000 + i);
                        Some(())
                    });
                    assert!(done.await.unwrap().is_written());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let set: IdSet = slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("set")
        .get()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        set.ids.len(),
        200,
        "compare-and-swap must not lose an update"
    );
}

/// `SlateStore::take_slate` (issue 14): the live slate with its version and expiry, gone
/// afterwards; nothing for an absent or expired slate (which stays expired, not revived).
pub async fn take_slate_reads_and_deletes(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.slate_store();
    let now = clock.now();
    let k = key("ada", "flash");
    let expires = now + Duration::minutes(5);
    let v = store
        .put_slate(&k, &doc! {"m": ["a", "b"]}, Expiry::At(expires), now)
        .await
        .unwrap();
    let other = key("ada", "other");
    store
        .put_slate(&other, &doc! {"x": 1}, Expiry::Keep, now)
        .await
        .unwrap();
    let taken = store.take_slate(&k, now).await.unwrap().expect("taken");
    assert_eq!((taken.version, taken.expires), (v, Some(expires)));
    assert_eq!(taken.doc, doc! {"m": ["a", "b"]});
    assert_eq!(store.take_slate(&k, now).await.unwrap(), None, "once");
    assert_eq!(store.get_slate(&k, now).await.unwrap(), None);
    assert!(
        store.get_slate(&other, now).await.unwrap().is_some(),
        "others stay"
    );
    // Expired: nothing to take.
    store
        .put_slate(&k, &doc! {"m": ["c"]}, Expiry::At(expires), now)
        .await
        .unwrap();
    let later = expires;
    assert_eq!(store.take_slate(&k, later).await.unwrap(), None);
    assert_eq!(store.get_slate(&k, later).await.unwrap(), None);
    assert_eq!(
        store.take_slate(&key("bob", "none"), now).await.unwrap(),
        None
    );
}

pub async fn delete_user_slates_keeps_tokens(_: Backend, slates: Engine, clock: ManualClock) {
    let ada = slates.user_slates("ada").unwrap();
    ada.raw_slate("user").set("tz", "UTC").await.unwrap();
    ada.raw_slate("w").set("a", &1).await.unwrap();
    slates
        .user_slates("bob")
        .unwrap()
        .raw_slate("w")
        .set("a", &1)
        .await
        .unwrap();
    let token = Token::generate().unwrap();
    let now = clock.now();
    slates
        .token_store()
        .insert_token(&TokenRecord {
            hash: token.hash(),
            user: user("ada"),
            created: now,
            expires: now + Duration::hours(1),
            renewed: None,
            rotated: None,
            device: Some(slates::DeviceId::generate().unwrap()),
            last_seen: now,
            label: String::new(),
            ip: None,
        })
        .await
        .unwrap();
    ada.delete_all().await.unwrap();
    assert!(ada.raw_slate("w").get_doc().await.unwrap().is_none());
    assert!(ada.raw_slate("user").get_doc().await.unwrap().is_none());
    assert!(slates
        .user_slates("bob")
        .unwrap()
        .raw_slate("w")
        .get_doc()
        .await
        .unwrap()
        .is_some());
    assert!(slates
        .token_store()
        .find_token(&token.hash(), now)
        .await
        .unwrap()
        .is_some());
}

/// The device methods of `TokenStore`: a user's live records, ending one device matched on
/// user AND id, ending all but one.
pub async fn device_records(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.token_store();
    let now = clock.now();
    let record = |name: &str, expires| TokenRecord {
        hash: Token::generate().unwrap().hash(),
        user: user(name),
        created: now,
        expires,
        renewed: None,
        rotated: None,
        device: Some(DeviceId::generate().unwrap()),
        last_seen: now,
        label: "Firefox on Linux".into(),
        ip: Some("203.0.113.0/24".into()),
    };
    let phone = record("ada", now + Duration::hours(1));
    let laptop = record("ada", now + Duration::hours(1));
    let expired = record("ada", now + Duration::minutes(1));
    let bob = record("bob", now + Duration::hours(1));
    for r in [&phone, &laptop, &expired, &bob] {
        store.insert_token(r).await.unwrap();
    }
    assert_eq!(
        store.find_token(&phone.hash, now).await.unwrap().as_ref(),
        Some(&phone)
    );
    let later = now + Duration::minutes(2);
    let mut live = store.user_tokens(&user("ada"), later).await.unwrap();
    live.sort_by_key(|r| r.hash.to_hex());
    let mut want = vec![phone.clone(), laptop.clone()];
    want.sort_by_key(|r| r.hash.to_hex());
    assert_eq!(live, want, "live records only, every field read back");
    assert!(store
        .user_tokens(&user("eve"), later)
        .await
        .unwrap()
        .is_empty());

    // Another user's device id is never ended, nor an unknown one.
    let bob_device = bob.device.as_ref().unwrap();
    assert_eq!(
        store.delete_device(&user("ada"), bob_device).await.unwrap(),
        None
    );
    assert!(store.find_token(&bob.hash, later).await.unwrap().is_some());
    let unknown = DeviceId::generate().unwrap();
    assert_eq!(
        store.delete_device(&user("ada"), &unknown).await.unwrap(),
        None
    );
    let laptop_device = laptop.device.as_ref().unwrap();
    assert_eq!(
        store
            .delete_device(&user("ada"), laptop_device)
            .await
            .unwrap(),
        Some(laptop.hash)
    );
    assert_eq!(
        store
            .delete_device(&user("ada"), laptop_device)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .find_token(&laptop.hash, later)
        .await
        .unwrap()
        .is_none());

    // All but one: the kept one and bob's stay.
    let tablet = record("ada", now + Duration::hours(1));
    store.insert_token(&tablet).await.unwrap();
    let n = store
        .delete_user_tokens_except(&user("ada"), &phone.hash)
        .await
        .unwrap();
    assert_eq!(n, 2, "the tablet and the expired record");
    let left = store.user_tokens(&user("ada"), later).await.unwrap();
    assert_eq!(left, vec![phone.clone()]);
    assert!(store.find_token(&bob.hash, later).await.unwrap().is_some());
}

/// The last-seen touch: at most once per interval, assigns an id to a record written before
/// devices existed exactly once, and never brings back a deleted or expired record.
pub async fn last_seen_touch_never_resurrects(_: Backend, slates: Engine, clock: ManualClock) {
    let store = slates.token_store();
    let now = clock.now();
    let legacy = TokenRecord {
        hash: Token::generate().unwrap().hash(),
        user: user("ada"),
        created: now,
        expires: now + Duration::hours(1),
        renewed: None,
        rotated: None,
        device: None,
        last_seen: now,
        label: String::new(),
        ip: None,
    };
    store.insert_token(&legacy).await.unwrap();
    let t1 = now + Duration::minutes(5);
    // Not due: last seen after the bound.
    assert!(!store
        .touch_token(&legacy.hash, None, now - Duration::seconds(1), t1)
        .await
        .unwrap());
    assert!(store
        .touch_token(&legacy.hash, None, now, t1)
        .await
        .unwrap());
    assert!(
        !store
            .touch_token(&legacy.hash, None, now, t1)
            .await
            .unwrap(),
        "written once"
    );
    let id = DeviceId::generate().unwrap();
    assert!(store
        .touch_token(&legacy.hash, Some(&id), t1, t1)
        .await
        .unwrap());
    let other = DeviceId::generate().unwrap();
    assert!(
        !store
            .touch_token(&legacy.hash, Some(&other), t1, t1)
            .await
            .unwrap(),
        "an id is assigned once"
    );
    let read = store.find_token(&legacy.hash, t1).await.unwrap().unwrap();
    assert_eq!(
        (read.device.clone(), read.last_seen),
        (Some(id.clone()), t1)
    );

    // Deleted: a touch (due, or assigning) changes nothing and creates nothing.
    assert!(store.delete_token(&legacy.hash).await.unwrap());
    let t2 = t1 + Duration::minutes(30);
    assert!(!store.touch_token(&legacy.hash, None, t2, t2).await.unwrap());
    assert!(!store
        .touch_token(&legacy.hash, Some(&other), t2, t2)
        .await
        .unwrap());
    assert!(store.find_token(&legacy.hash, t2).await.unwrap().is_none());
    assert!(store
        .user_tokens(&user("ada"), t2)
        .await
        .unwrap()
        .is_empty());
    // Expired: not touched either.
    let expired = TokenRecord {
        hash: Token::generate().unwrap().hash(),
        expires: now + Duration::minutes(10),
        ..read
    };
    store.insert_token(&expired).await.unwrap();
    assert!(!store
        .touch_token(&expired.hash, None, t2, t2)
        .await
        .unwrap());
    assert_eq!(
        store
            .find_token(&expired.hash, now)
            .await
            .unwrap()
            .unwrap()
            .last_seen,
        t1
    );
}

/// Concurrent ends of one device: exactly one deletes it (and gets its hash); concurrent
/// first touches of a record from before devices existed: exactly one assigns its id.
pub async fn concurrent_device_writes_have_one_winner(
    backend: Backend,
    slates: Engine,
    clock: ManualClock,
) {
    if !atomic_under_concurrency(backend, "concurrent_device_writes_have_one_winner").await {
        return;
    }
    let store = slates.token_store().clone();
    let now = clock.now();
    for round in 0..5 {
        let record = TokenRecord {
            hash: Token::generate().unwrap().hash(),
            user: user("ada"),
            created: now,
            expires: now + Duration::hours(1),
            renewed: None,
            rotated: None,
            device: None,
            last_seen: now,
            label: String::new(),
            ip: None,
        };
        store.insert_token(&record).await.unwrap();
        // All spawned first (collected), then awaited: they run at the same time.
        let touches: Vec<_> = (0..16)
            .map(|_| {
                let (store, hash) = (store.clone(), record.hash);
                let id = DeviceId::generate().unwrap();
                tokio::spawn(async move {
                    let won = store.touch_token(&hash, Some(&id), now, now).await.unwrap();
                    (won, id)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in touches {
            let (won, id) = t.await.unwrap();
            if won {
                winners.push(id);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: one id assigned");
        let stored = store.find_token(&record.hash, now).await.unwrap().unwrap();
        assert_eq!(stored.device.as_ref(), Some(&winners[0]));

        let ends: Vec<_> = (0..16)
            .map(|_| {
                let (store, id) = (store.clone(), winners[0].clone());
                tokio::spawn(async move { store.delete_device(&user("ada"), &id).await.unwrap() })
            })
            .collect();
        let mut ended = Vec::new();
        for e in ends {
            ended.extend(e.await.unwrap());
        }
        assert_eq!(
            ended,
            vec![record.hash],
            "round {round}: one end deletes it"
        );
    }
}

// ---------------------------------------------------------------- through the layer

#[derive(Deserialize)]
struct LoginForm {
    username: String,
}

async fn h_login(auth: Auth, Form(f): Form<LoginForm>) -> Result<StatusCode, Error> {
    auth.login(&f.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn h_me(user: CurrentUser) -> String {
    format!(
        "{} {}",
        user.username(),
        user.raw_profile()
            .await
            .ok()
            .flatten()
            .and_then(|d| d.get_str("tz").ok())
            .unwrap_or("-")
    )
}

async fn h_maybe(user: Option<CurrentUser>) -> String {
    user.map(|u| u.username().to_owned())
        .unwrap_or_else(|| "anonymous".into())
}

async fn h_hits(slates: UserSlates) -> Result<String, Error> {
    Ok(slates
        .raw_slate("counter")
        .inc("hits", 1)
        .await?
        .to_string())
}

async fn h_logout(auth: Auth) -> Result<StatusCode, Error> {
    auth.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn h_logout_everywhere(auth: Auth) -> Result<StatusCode, Error> {
    auth.logout_everywhere().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn h_rotate(auth: Auth) -> Result<StatusCode, Error> {
    auth.rotate().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holds `GET /slow` open: the handler says it has started (`entered`), then waits until
/// the test lets it finish (`release`).
#[derive(Clone, Default)]
pub struct SlowGate {
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn h_slow(Extension(gate): Extension<SlowGate>, user: CurrentUser) -> String {
    gate.entered.notify_one();
    gate.release.notified().await;
    user.username().to_owned()
}

/// The router the layer-level tests drive.
pub fn test_app(slates: &Engine) -> Router {
    test_app_gated(slates, SlowGate::default())
}

/// [`test_app`] with `GET /slow` held by `gate`.
pub fn test_app_gated(slates: &Engine, gate: SlowGate) -> Router {
    Router::new()
        .route("/login", post(h_login))
        .route("/me", get(h_me))
        .route("/maybe", get(h_maybe))
        .route("/hits", post(h_hits))
        .route("/logout", post(h_logout))
        .route("/logout-everywhere", post(h_logout_everywhere))
        .route("/rotate", post(h_rotate))
        .route("/slow", get(h_slow))
        .route("/static", get(|| async { "static" }))
        .route("/stats", get(slates::stats_handler))
        .layer(slates.layer())
        .layer(Extension(gate))
}

async fn logged_in(slates: &Engine, name: &str) -> Client {
    let mut c = Client::new(test_app(slates));
    let r = c.post_form("/login", &format!("username={name}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(c.cookie.is_some());
    c
}

pub async fn login_request_logout(_: Backend, slates: Engine, _c: ManualClock) {
    let mut anon = Client::new(test_app(&slates));
    assert_eq!(anon.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anon.get("/maybe").await.body, "anonymous");
    let mut c = logged_in(&slates, "ada").await;
    slates
        .user_slates("ada")
        .unwrap()
        .raw_slate("user")
        .set("tz", "Europe/Paris")
        .await
        .unwrap();
    let r = c.get("/me").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (StatusCode::OK, "ada Europe/Paris")
    );
    assert_eq!(c.get("/maybe").await.body, "ada");
    let old = c.cookie.clone();
    let r = c.post("/logout").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let removal = r.set_cookies().join("\n");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(c.cookie.is_none());
    // Replaying the old cookie is refused at once.
    c.cookie = old;
    assert_eq!(c.get("/me").await.status, StatusCode::UNAUTHORIZED);
    let stats = slates.stats();
    assert!(stats.logins >= 1 && stats.logouts >= 1 && stats.unknown_tokens >= 1);
}

pub async fn token_expiry_and_renewal(_: Backend, slates: Engine, clock: ManualClock) {
    // Default: 7-day idle timeout, renewal once half of it has passed.
    let mut c = logged_in(&slates, "ada").await;
    let first = c.cookie.clone();
    clock.advance(Duration::days(3));
    let r = c.get("/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.set_cookies().is_empty(),
        "no renewal before half the idle timeout"
    );
    clock.advance(Duration::days(1)); // day 4
    let r = c.get("/me").await;
    assert_eq!(r.status, StatusCode::OK);
    let renewed = r.set_cookies().join("\n");
    assert!(
        renewed.contains(&format!("Max-Age={}", 7 * 86400)),
        "{renewed}"
    );
    assert_eq!(
        c.cookie, first,
        "renewal keeps the token, extends its expiry"
    );
    assert_eq!(slates.stats().renewals, 1);
    clock.advance(Duration::days(6)); // day 10: alive thanks to renewal at day 4
    assert_eq!(c.get("/me").await.status, StatusCode::OK);
    clock.advance(Duration::days(8)); // idle past the renewed expiry (day 17)
    let r = c.get("/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(c.cookie.is_none(), "expired token: cookie removed");
}

pub async fn logout_everywhere(_: Backend, slates: Engine, _c: ManualClock) {
    let mut phone = logged_in(&slates, "ada").await;
    let mut laptop = logged_in(&slates, "ada").await;
    let mut bob = logged_in(&slates, "bob").await;
    assert_ne!(phone.cookie, laptop.cookie);
    assert_eq!(
        phone.post("/logout-everywhere").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(laptop.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(phone.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bob.get("/me").await.status, StatusCode::OK);
}

pub async fn fixation_planted_cookie_not_adopted(_: Backend, slates: Engine, _c: ManualClock) {
    let planted = Token::generate().unwrap().encode();
    let mut c = Client::new(test_app(&slates));
    c.cookie = Some(planted.clone());
    let r = c.post_form("/login", "username=ada").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_ne!(c.cookie.as_deref(), Some(planted.as_str()));
    let mut attacker = Client::new(test_app(&slates));
    attacker.cookie = Some(planted);
    assert_eq!(attacker.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.get("/me").await.status, StatusCode::OK);
    // Logging in again on top of a live token replaces it.
    let before = c.cookie.clone();
    c.post_form("/login", "username=ada").await;
    let mut replay = Client::new(test_app(&slates));
    replay.cookie = before;
    assert_eq!(replay.get("/me").await.status, StatusCode::UNAUTHORIZED);
}

pub async fn rotate_with_grace(_: Backend, slates: Engine, clock: ManualClock) {
    let mut c = logged_in(&slates, "ada").await;
    let old = c.cookie.clone();
    assert_eq!(c.post("/rotate").await.status, StatusCode::NO_CONTENT);
    assert_ne!(c.cookie, old);
    let mut in_flight = Client::new(test_app(&slates));
    in_flight.cookie = old;
    clock.advance(Duration::seconds(6));
    let r = in_flight.get("/me").await;
    assert_eq!(r.status, StatusCode::OK, "grace period");
    assert!(
        r.set_cookies().is_empty(),
        "a rotated-out token is never renewed: {:?}",
        r.set_cookies()
    );
    clock.advance(Duration::seconds(5));
    assert_eq!(in_flight.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.get("/me").await.status, StatusCode::OK);
}

pub async fn malformed_cookies_cost_no_lookup(_: Backend, slates: Engine, _c: ManualClock) {
    let app = test_app(&slates);
    let long = "a".repeat(8 * 1024);
    for value in [
        "",
        "short",
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        long.as_str(),
    ] {
        let mut c = Client::new(app.clone());
        c.cookie = Some(value.to_owned());
        assert_eq!(c.get("/maybe").await.body, "anonymous");
    }
    let stats = slates.stats();
    assert_eq!(
        stats.lookup.count, 0,
        "no store lookup for malformed tokens"
    );
    assert_eq!(stats.malformed_tokens, 4);
}

pub async fn concurrent_increments_through_layer(
    backend: Backend,
    slates: Engine,
    _c: ManualClock,
) {
    if !atomic_under_concurrency(backend, "concurrent_increments_through_layer").await {
        return;
    }
    let c = logged_in(&slates, "ada").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move {
                for _ in 0..500 {
                    let r = c.post("/hits").await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut c = c;
    assert_eq!(c.post("/hits").await.body, "4001");
}

pub async fn slow_request_does_not_block_same_user(_: Backend, slates: Engine, _c: ManualClock) {
    let gate = SlowGate::default();
    let mut c = Client::new(test_app_gated(&slates, gate.clone()));
    c.cookie = logged_in(&slates, "ada").await.cookie;
    let mut slow_client = c.clone();
    let slow = tokio::spawn(async move { slow_client.get("/slow").await });
    // The slow request of ada is inside its handler, holding whatever it holds.
    gate.entered.notified().await;
    // A short request of the same user is served meanwhile. The timeout only catches a
    // request that waits for the slow one (a request-long lock would hold it until the
    // release below, never given): no speed is measured.
    let r = tokio::time::timeout(StdDuration::from_secs(60), c.get("/me"))
        .await
        .expect("a short request waited for the same user's slow request");
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !slow.is_finished(),
        "the slow request must still be running"
    );
    gate.release.notify_one();
    assert_eq!(slow.await.unwrap().body, "ada");
}

pub async fn expired_token_keeps_user_data(_: Backend, slates: Engine, clock: ManualClock) {
    let mut c = logged_in(&slates, "ada").await;
    let ada = slates.user_slates("ada").unwrap();
    ada.raw_slate("user").set("tz", "Asia/Tokyo").await.unwrap();
    ada.raw_slate("draft").set("step", "review").await.unwrap();
    clock.advance(Duration::days(30));
    assert_eq!(c.get("/me").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ada.raw_slate("user")
            .get_doc()
            .await
            .unwrap()
            .unwrap()
            .doc
            .get_str("tz")
            .unwrap(),
        "Asia/Tokyo"
    );
    assert!(ada.raw_slate("draft").get_doc().await.unwrap().is_some());
    let mut again = logged_in(&slates, "ada").await;
    assert_eq!(again.get("/me").await.body, "ada Asia/Tokyo");
}
