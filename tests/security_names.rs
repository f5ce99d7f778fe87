//! Security suite, issue 4, threat 5: usernames and slate names. Unit cases, and property
//! tests that check validation against the documented rules and against the stores: every
//! accepted name round-trips through the store (login, user slate, workflow slate), every
//! rejected one is refused before any store call and maps to 400.

mod common;
#[macro_use]
mod security_support;

use bson::doc;
use http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use slates::{Engine, Error, MemoryStore, NameKind, SlateName, SlateUpdate, Username};

use common::Backend;
use security_support::{form_encode, request, Env};

per_backend!(
    t5_invalid_names_touch_nothing,
    t5_unusual_valid_names_round_trip,
    t5_keys_do_not_collide,
    t5_prop_usernames_validation_agrees_with_storage,
    t5_prop_slate_names_validation_agrees_with_storage,
);

/// The username rules of DESIGN.md §3, written out independently of `names.rs`, plus "not
/// starting with `.`", which MongoDB and FerretDB require of collection names (found by the
/// property test on the per-user layout).
fn username_by_spec(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 120
        && !n.contains('\0')
        && !n.contains('$')
        && !n.starts_with('_')
        && !n.starts_with("system.")
        && !n.starts_with('.')
}

/// The slate name rules of DESIGN.md §3.
fn slate_name_by_spec(n: &str) -> bool {
    !n.is_empty() && n.len() <= 120 && !n.contains(['\0', '$', '.'])
}

/// Whether `backend` is known not to store `name` as a username although the rules accept
/// it: FerretDB 1.x's SQLite backend quotes table names with Go's `%q`, so a collection name
/// holding `"` breaks its SQL (a FerretDB bug; MongoDB stores it). With the per-user layout
/// such a user cannot be stored there; slates answers 500 with a generic body.
async fn ferretdb_cannot_store_user(backend: Backend, name: &str, test: &str) -> bool {
    #[cfg(not(feature = "mongodb"))]
    let _ = (name, test);
    match backend {
        Backend::Memory => false,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(layout) => {
            let gap = layout == slates::Layout::CollectionPerUser
                && name.contains('"')
                && common::mongo::is_ferretdb().await;
            if gap {
                common::mongo::ferretdb_note(
                    test,
                    &format!("username {name:?} skipped: FerretDB cannot create a collection named with `\"`"),
                );
            }
            gap
        }
    }
}

const BAD_USERNAMES: &[&str] = &[
    "",
    "_auth",
    "_",
    "_x",
    "system.users",
    "system.",
    ".",
    ".hidden",
    "$",
    "a$b",
    "$where",
    "a\0b",
    "\0",
];

const BAD_SLATE_NAMES: &[&str] = &["", ".", "a.b", "user.", "$", "$set", "a$", "a\0", "\0"];

fn long_bad() -> Vec<String> {
    vec!["x".repeat(121), "é".repeat(61), "名".repeat(41)]
}

fn is_invalid(r: &Result<impl Sized, Error>, kind: NameKind) -> bool {
    matches!(r, Err(Error::InvalidName { kind: k, .. }) if *k == kind)
}

/// Every operation on a slate with a bad name fails with `InvalidName` and makes no store
/// call. Returns the failing operation's name, if one did otherwise.
async fn all_slate_ops_refused(us: &slates::UserSlates, name: &str) -> Option<&'static str> {
    let s = us.raw_slate(name);
    let k = NameKind::SlateName;
    let checks: Vec<(&'static str, bool)> = vec![
        ("get", is_invalid(&s.get::<bson::Document>().await, k)),
        ("get_doc", is_invalid(&s.get_doc().await, k)),
        ("put", is_invalid(&s.put(&doc! {"a": 1}).await, k)),
        ("set", is_invalid(&s.set("a", 1).await, k)),
        ("unset", is_invalid(&s.unset("a").await, k)),
        ("inc", is_invalid(&s.inc("a", 1).await, k)),
        ("push", is_invalid(&s.push("a", 1).await, k)),
        ("add_to_set", is_invalid(&s.add_to_set("a", 1).await, k)),
        (
            "update",
            is_invalid(&s.update(SlateUpdate::new().set("a", 1)).await, k),
        ),
        (
            "modify",
            is_invalid(
                &s.modify_or_default(|d: &mut bson::Document| Some(d.insert("a", 1)))
                    .await,
                k,
            ),
        ),
        ("delete", is_invalid(&s.delete().await, k)),
    ];
    checks.into_iter().find(|(_, ok)| !ok).map(|(op, _)| op)
}

/// Threat 5: bad usernames and slate names give a typed error (400 through a handler),
/// before any store call, and leave the store as it was.
async fn t5_invalid_names_touch_nothing(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let mut ada = env.logged_in("ada").await;
    let before = env.haystack().await;
    let long = long_bad();
    let bad_users = BAD_USERNAMES
        .iter()
        .copied()
        .chain(long.iter().map(String::as_str));
    for bad in bad_users {
        assert!(!username_by_spec(bad));
        let ops = env.operations();
        assert!(
            is_invalid(&env.slates.user_slates(bad), NameKind::Username),
            "{bad:?}"
        );
        assert!(
            is_invalid(&env.slates.logout_user(bad).await, NameKind::Username),
            "{bad:?}"
        );
        assert_eq!(env.operations(), ops, "{bad:?}: no store call");
        let mut c = env.client();
        let r = c
            .post_form("/login", &format!("username={}", form_encode(bad)))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            r.body.starts_with("invalid username"),
            "{bad:?}: {}",
            r.body
        );
        assert!(c.cookie.is_none(), "{bad:?}");
        assert_eq!(
            env.operations(),
            ops,
            "{bad:?}: an anonymous login costs nothing"
        );
    }
    let us = env.slates.user_slates("ada").unwrap();
    let bad_slates = BAD_SLATE_NAMES
        .iter()
        .copied()
        .chain(long.iter().map(String::as_str));
    for bad in bad_slates {
        assert!(!slate_name_by_spec(bad));
        let ops = env.operations();
        assert_eq!(all_slate_ops_refused(&us, bad).await, None, "{bad:?}");
        assert_eq!(env.operations(), ops, "{bad:?}: no store call");
        if !bad.is_empty() {
            let path = format!("/slate/{}", form_encode(bad));
            let r = ada.send(request("POST", &path, "v", None)).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
            assert!(
                r.body.starts_with("invalid slate name"),
                "{bad:?}: {}",
                r.body
            );
        }
    }
    assert_eq!(env.haystack().await, before, "the store is as it was");
    assert_eq!(env.slates.stats().store_errors, 0);
}

/// The configuration's own collection names: the auth collection must start with `_`,
/// which no username can, so a user's collection never is the auth collection.
#[tokio::test]
async fn t5_auth_collection_name_is_never_a_username() {
    for auth in ["_auth", "_tokens"] {
        let slates = Engine::builder(MemoryStore::new())
            .auth_collection(auth)
            .build()
            .await
            .unwrap();
        assert!(is_invalid(&slates.user_slates(auth), NameKind::Username));
    }
    for (auth, coll) in [
        ("tokens", "slates"),
        ("", "slates"),
        ("_a$", "slates"),
        ("_same", "_same"),
        ("_auth", "system.x"),
    ] {
        let r = Engine::builder(MemoryStore::new())
            .auth_collection(auth)
            .slates_collection(coll)
            .build()
            .await;
        assert!(matches!(r, Err(Error::Config(_))), "{auth:?} {coll:?}");
    }
}

const ODD_USERNAMES: &[&str] = &[
    "Zoë",
    "名前",
    "👩‍💻",
    "مرحبا",
    "e\u{301}",
    "a\u{200b}b",
    "\u{202e}evil",
    "user.name",
    "a b",
    " ",
    "system",
    "System.users",
    "auth",
    "slates",
    "admin",
    "local",
    "0",
    "-",
    "a/b",
    "a\\b",
    "a\"b",
    "a\nb",
    "%00",
    "x_",
];

const ODD_SLATE_NAMES: &[&str] = &[
    "user",
    "Zoë",
    "名前",
    "👩‍💻",
    "_private",
    "_auth",
    "_id",
    "system",
    "slates",
    "a b",
    "a/b",
    "-",
    "0",
];

/// Threat 5: valid but unusual names, up to the 120-byte limit, round-trip through login,
/// the layer, the user slate and workflow slates.
async fn t5_unusual_valid_names_round_trip(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let longest = ["x".repeat(120), "é".repeat(60), "名".repeat(40)];
    let users = ODD_USERNAMES
        .iter()
        .copied()
        .chain(longest.iter().map(String::as_str));
    for name in users {
        assert!(username_by_spec(name) && Username::validate(name).is_ok());
        if ferretdb_cannot_store_user(backend, name, test).await {
            continue;
        }
        let mut c = env.logged_in(name).await;
        assert_eq!(c.get("/me").await.body, name);
        let path = format!("/slate/{}", form_encode("w"));
        let r = c.send(request("POST", &path, name, None)).await;
        assert_eq!(r.status, StatusCode::OK, "{name:?}: {}", r.body);
        assert_eq!(c.get(&path).await.body, name, "{name:?}");
        let us = env.slates.user_slates(name).unwrap();
        us.raw_slate("user").set("me", name).await.unwrap();
        let doc = us.raw_slate("user").get_doc().await.unwrap().unwrap();
        assert_eq!(doc.doc.get_str("me").unwrap(), name);
    }
    let us = env.slates.user_slates("ada").unwrap();
    let slates_ = ODD_SLATE_NAMES
        .iter()
        .copied()
        .chain(longest.iter().map(String::as_str));
    for name in slates_ {
        assert!(slate_name_by_spec(name) && SlateName::validate(name).is_ok());
        let s = us.raw_slate(name);
        let put = s.put(&doc! {"name": name}).await.unwrap();
        assert_eq!(s.inc("n", 2).await.unwrap(), 2, "{name:?}");
        let got = s.get_doc().await.unwrap().unwrap();
        assert_eq!(got.doc.get_str("name").unwrap(), name);
        assert_ne!(got.version, put, "the inc wrote a fresh version");
    }
    let mut c = env.logged_in("ada").await;
    for name in ODD_SLATE_NAMES {
        let path = format!("/slate/{}", form_encode(name));
        let r = c.send(request("POST", &path, "via http", None)).await;
        assert_eq!(r.status, StatusCode::OK, "{name:?}: {}", r.body);
        assert_eq!(c.get(&path).await.body, "via http", "{name:?}");
    }
}

/// Threat 5: names that would run together under a naive key (user and slate joined by a
/// separator) stay apart.
async fn t5_keys_do_not_collide(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let pairs = [
        (("x/y", "z"), ("x", "y/z")),
        (("x:y", "z"), ("x", "y:z")),
        (("x_y", "z"), ("x", "y_z")),
        (("x y", "z"), ("x", "y z")),
        (("x.y", "z"), ("x", "yz")),
    ];
    for ((u1, s1), (u2, s2)) in pairs {
        let a = env.slates.user_slates(u1).unwrap().raw_slate(s1);
        let b = env.slates.user_slates(u2).unwrap().raw_slate(s2);
        let va = a.set("who", format!("{u1}|{s1}")).await.unwrap();
        let vb = b.set("who", format!("{u2}|{s2}")).await.unwrap();
        for (s, u, n, v) in [(&a, u1, s1, va), (&b, u2, s2, vb)] {
            let doc = s.get_doc().await.unwrap().unwrap();
            assert_eq!(doc.doc.get_str("who").unwrap(), format!("{u}|{n}"));
            assert_eq!(doc.version, v, "{u}|{n} was written once");
        }
    }
}

// ---------------------------------------------------------------- property tests

/// Names built from pieces that probe every rule: arbitrary Unicode, `$`, `.`, NUL, `_` and
/// `system.` prefixes, the reserved names, and lengths around the 120-byte limit.
fn names() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "$",
        ".",
        "\0",
        "_",
        "system.",
        "System.",
        "_auth",
        "user",
        "slates",
        "é",
        "名前",
        "👩\u{200d}💻",
        "\u{200b}",
        "\u{202e}",
        "/",
        "\\",
        "\"",
        "%",
        "+",
        "&",
        "=",
        " ",
        "\n",
        "$set",
        "a.b",
    ]);
    let piece = prop_oneof![
        3 => any::<String>(),
        3 => "[a-zA-Z0-9 _.-]{1,12}",
        3 => special.prop_map(str::to_owned),
        1 => "[a-z]{110,130}",
        1 => "[é名]{35,65}",
    ];
    prop::collection::vec(piece, 0..4).prop_map(|v| v.concat())
}

fn cases(backend: Backend) -> u32 {
    match backend {
        Backend::Memory => 256,
        #[cfg(feature = "mongodb")]
        Backend::Mongo(_) => 32,
    }
}

/// Runs `check` on `cases` generated names, inside the test's runtime.
async fn run_property<F, Fut>(backend: Backend, check: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let config = Config {
        cases: cases(backend),
        failure_persistence: None,
        ..Config::default()
    };
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&names(), |name| handle.block_on(check(name)))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Threat 5, property: the username validator follows the documented rules, and the store
/// agrees with it. An accepted name logs in, is served back by the layer, and its user
/// slate and a workflow slate round-trip; a rejected one gets 400 at login and `InvalidName`
/// everywhere, with no store call and nothing stored.
async fn t5_prop_usernames_validation_agrees_with_storage(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let env = &env;
    run_property(backend, |name| async move {
        let accepted = Username::validate(&name).is_ok();
        prop_assert_eq!(
            accepted,
            username_by_spec(&name),
            "validator vs rules: {:?}",
            name
        );
        if accepted && ferretdb_cannot_store_user(backend, &name, test).await {
            return Ok(());
        }
        let before = env.haystack().await;
        let ops = env.operations();
        let mut c = env.client();
        let r = c
            .post_form("/login", &format!("username={}", form_encode(&name)))
            .await;
        if accepted {
            prop_assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}: {}", name, r.body);
            let us = env.slates.user_slates(&name).unwrap();
            us.raw_slate("user").set("me", &name).await.unwrap();
            us.raw_slate("w").put(&doc! {"me": &name}).await.unwrap();
            let me = c.get("/me").await;
            prop_assert_eq!(&me.body, &name);
            let got = us.raw_slate("w").get_doc().await.unwrap().unwrap();
            prop_assert_eq!(got.doc.get_str("me").unwrap(), name.as_str());
            let got = us.raw_slate("user").get_doc().await.unwrap().unwrap();
            prop_assert_eq!(got.doc.get_str("me").unwrap(), name.as_str());
            prop_assert_eq!(c.post("/logout").await.status, StatusCode::NO_CONTENT);
            us.delete_all().await.unwrap();
            prop_assert!(us.raw_slate("w").get_doc().await.unwrap().is_none());
        } else {
            prop_assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", name);
            prop_assert!(c.cookie.is_none());
            prop_assert!(is_invalid(
                &env.slates.user_slates(&name),
                NameKind::Username
            ));
            prop_assert!(is_invalid(
                &env.slates.logout_user(&name).await,
                NameKind::Username
            ));
            prop_assert_eq!(env.operations(), ops, "store called for {:?}", name);
            prop_assert_eq!(env.haystack().await, before, "store changed for {:?}", name);
        }
        Ok(())
    })
    .await;
}

/// Threat 5, property: the same for slate names, through the API and through a handler.
async fn t5_prop_slate_names_validation_agrees_with_storage(backend: Backend, test: &str) {
    let Some(env) = Env::new(backend, test, |b| b).await else {
        return;
    };
    let env = &env;
    let c = env.logged_in("ada").await;
    let c = &c;
    run_property(backend, |name| async move {
        let accepted = SlateName::validate(&name).is_ok();
        prop_assert_eq!(
            accepted,
            slate_name_by_spec(&name),
            "validator vs rules: {:?}",
            name
        );
        let us = env.slates.user_slates("ada").unwrap();
        let mut c = c.clone();
        let path = format!("/slate/{}", form_encode(&name));
        if accepted {
            let s = us.raw_slate(&name);
            s.put(&doc! {"name": &name}).await.unwrap();
            let pushed = s.push("log", 1).await.unwrap();
            let got = s.get_doc().await.unwrap().unwrap();
            prop_assert_eq!(got.doc.get_str("name").unwrap(), name.as_str());
            prop_assert_eq!(got.version, pushed);
            let r = c.send(request("POST", &path, &name, None)).await;
            prop_assert_eq!(r.status, StatusCode::OK, "{:?}: {}", name, r.body);
            prop_assert_eq!(&c.get(&path).await.body, &name);
            prop_assert!(s.delete().await.unwrap());
        } else {
            let before = env.haystack().await;
            let ops = env.operations();
            prop_assert_eq!(all_slate_ops_refused(&us, &name).await, None, "{:?}", name);
            prop_assert_eq!(env.operations(), ops, "store called for {:?}", name);
            if !name.is_empty() {
                let r = c.send(request("POST", &path, "v", None)).await;
                prop_assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}: {}", name, r.body);
            }
            prop_assert_eq!(env.haystack().await, before, "store changed for {:?}", name);
        }
        Ok(())
    })
    .await;
}
