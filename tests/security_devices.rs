//! Devices (issue 13), adversarially, on every store: a user can never list or end another
//! user's devices; device ids cannot be guessed or derived from the cookie; an ended device
//! is refused on its next request; the last-seen write racing a logout never brings the
//! token back. Driven through the `counter` example's routes (its JSON contract).
mod common;

#[allow(dead_code)]
#[path = "../examples/counter.rs"]
mod counter;

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::harness::Client;
use common::hooked::{hooked_engine, pause_first, Call, Phase};
use common::Backend;
use http::StatusCode;
use slates::{Engine, Token, Username};
use time::Duration;

async fn login(engine: &Engine, name: &str) -> Client {
    let mut c = Client::new(counter::app(engine.clone()));
    let r = c.post_form("/login", &format!("username={name}")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    c
}

async fn ids(c: &mut Client) -> Vec<String> {
    let r = c.get("/devices").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    list.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ada knows every id of bob's devices (a leak, a shoulder-surfed page): she can neither
/// see them in her list nor end any of them, through the API or the admin call made with
/// her name; the answers are those for an id that does not exist.
pub async fn no_user_lists_or_ends_another_users_devices(backend: Backend, test: &str) {
    let Some(engine) = backend.slates(test, &slates::ManualClock::new()).await else {
        return;
    };
    let mut ada = login(&engine, "ada").await;
    let mut bobs = Vec::new();
    for _ in 0..3 {
        bobs.push(login(&engine, "bob").await);
    }
    let bob_ids: Vec<String> = engine
        .user_devices("bob")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(bob_ids.len(), 3);
    let ada_ids = ids(&mut ada).await;
    assert!(ada_ids.iter().all(|id| !bob_ids.contains(id)));
    let never_issued = slates::DeviceId::generate().unwrap().to_string();
    let unknown = ada.post(&format!("/devices/{never_issued}/end")).await;
    for id in &bob_ids {
        let r = ada.post(&format!("/devices/{id}/end")).await;
        assert_eq!((r.status, &r.body), (unknown.status, &unknown.body), "{id}");
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(!engine.end_device("ada", id).await.unwrap());
    }
    for bob in &mut bobs {
        assert_eq!(bob.get("/me").await.status, StatusCode::OK);
    }
    // Ending "the others" ends only one's own.
    assert_eq!(
        ada.post("/logout-others").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(engine.user_devices("bob").await.unwrap().len(), 3);
}

/// Device ids are fresh random values: distinct, 128 bits, and share nothing with the
/// token or its hash, so neither can be computed from the other; ids made from the
/// cookie are refused like any unknown id.
pub async fn device_ids_are_not_derived_from_the_token(backend: Backend, test: &str) {
    let Some(engine) = backend.slates(test, &slates::ManualClock::new()).await else {
        return;
    };
    let mut seen = HashSet::new();
    for _ in 0..40 {
        let mut c = login(&engine, "ada").await;
        let cookie = c.cookie.clone().unwrap();
        let token = Token::parse(&cookie).unwrap();
        let hash = token.hash();
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&c.get("/devices").await.body).unwrap();
        let current = list.iter().find(|d| d["current"] == true).unwrap();
        let id = current["id"].as_str().unwrap().to_owned();
        let bytes = URL_SAFE_NO_PAD.decode(&id).unwrap();
        assert_eq!(bytes.len(), 16, "128 random bits");
        assert!(!cookie.contains(&id) && !hash.to_hex().contains(&id));
        let token_bytes = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        for secret in [&token_bytes[..], &hash.as_bytes()[..]] {
            assert!(
                !secret.windows(4).any(|w| bytes.windows(4).any(|b| b == w)),
                "the id shares 4 bytes with the token or its hash"
            );
        }
        assert!(seen.insert(id), "ids never repeat");
        // Ids an attacker could make from the cookie are not ids of this device.
        for guess in [
            &cookie[..22],
            &hash.to_hex()[..22],
            &URL_SAFE_NO_PAD.encode(&hash.as_bytes()[..16]),
        ] {
            let r = c.post(&format!("/devices/{guess}/end")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{guess}");
        }
        assert_eq!(c.get("/me").await.status, StatusCode::OK);
    }
}

/// An ended device is refused on its very next request, and stays refused.
pub async fn an_ended_device_is_refused_on_its_next_request(backend: Backend, test: &str) {
    let Some(engine) = backend.slates(test, &slates::ManualClock::new()).await else {
        return;
    };
    let mut phone = login(&engine, "ada").await;
    let mut thief = login(&engine, "ada").await;
    let stolen = thief.cookie.clone();
    let thief_id = ids(&mut thief).await[0].clone();
    let r = phone.post(&format!("/devices/{thief_id}/end")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for _ in 0..3 {
        thief.cookie = stolen.clone();
        assert_eq!(thief.get("/me").await.status, StatusCode::UNAUTHORIZED);
        // Anonymous now: a hit counts as a fresh visitor's (the counter example's guest
        // contract, issue 14), never as ada's.
        let r = thief.post("/hits").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "1"));
    }
    assert_eq!(phone.get("/me").await.status, StatusCode::OK);
    assert_eq!(
        phone.get("/hits").await.body,
        "0",
        "ada's counter untouched"
    );
}

/// The worst interleaving for the last-seen write: a request has read its token and is
/// about to write `last_seen` when a logout deletes the token. The write must not bring
/// the record back (it is a conditional update, never an upsert).
pub async fn last_seen_write_racing_a_logout_cannot_resurrect(backend: Backend, test: &str) {
    let Some((engine, hooked, clock)) = hooked_engine(backend, test).await else {
        return;
    };
    let mut browser = login(&engine, "ada").await;
    let cookie = browser.cookie.clone();
    clock.advance(Duration::minutes(11)); // the next request writes last_seen
    let (paused, release) = pause_first(&hooked, Call::TouchToken, Phase::Before);
    let mut in_flight = browser.clone();
    let request = tokio::spawn(async move { in_flight.get("/me").await });
    paused.notified().await;
    assert_eq!(browser.post("/logout").await.status, StatusCode::NO_CONTENT);
    release.notify_one();
    request.await.unwrap();
    let hash = Token::parse(cookie.as_deref().unwrap()).unwrap().hash();
    let store = engine.token_store();
    assert!(
        store
            .find_token(&hash, engine.now())
            .await
            .unwrap()
            .is_none(),
        "resurrected"
    );
    let ada = Username::new("ada").unwrap();
    assert!(store
        .user_tokens(&ada, engine.now())
        .await
        .unwrap()
        .is_empty());
    browser.cookie = cookie;
    assert_eq!(browser.get("/me").await.status, StatusCode::UNAUTHORIZED);
}

per_backend!(
    no_user_lists_or_ends_another_users_devices,
    device_ids_are_not_derived_from_the_token,
    an_ended_device_is_refused_on_its_next_request,
    last_seen_write_racing_a_logout_cannot_resurrect,
);
