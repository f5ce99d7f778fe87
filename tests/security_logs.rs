//! Security suite, threat 1 in logs: a login, authenticated, unknown and malformed requests, a
//! store failure and a logout log no token in any form. In a binary of its own, with a global
//! subscriber: a thread-local one can miss events whose callsites tests on other threads
//! registered first (which made this test fail at random when it lived in `security.rs`).
mod common;
#[macro_use]
mod security_support;

use http::StatusCode;
use slates::Token;

use common::Backend;
use security_support::{contains, token_forms, Env};

/// Threat 1, the other place a token could leak at rest: logs. With every level on, a login,
/// authenticated, unknown and malformed requests, a store failure and a logout log no
/// token in any form (a short prefix of the hash is what identifies a request).
#[tokio::test(flavor = "current_thread")]
async fn t1_logs_never_carry_a_token() {
    let logs = common::logs::capture_global();

    let env = Env::new(Backend::Memory, "", |b| b).await.unwrap();
    let mut ada = env.logged_in("ada").await;
    let cookie = ada.cookie.clone().unwrap();
    assert_eq!(ada.get("/me").await.body, "ada");
    let unknown = Token::generate().unwrap().encode();
    let mut stranger = env.client();
    stranger.cookie = Some(unknown.clone());
    assert_eq!(stranger.get("/maybe").await.body, "anonymous");
    let mut junk = env.client();
    junk.cookie = Some(format!("{}!", &cookie[..42]));
    assert_eq!(junk.get("/maybe").await.body, "anonymous");
    env.faults().unwrap().set_available(false);
    assert_eq!(ada.get("/me").await.status, StatusCode::SERVICE_UNAVAILABLE);
    env.faults().unwrap().set_available(true);
    let mut replay = ada.clone();
    assert_eq!(ada.post("/logout").await.status, StatusCode::NO_CONTENT);
    assert_eq!(replay.get("/maybe").await.body, "anonymous");

    let text = logs.text();
    let logs = text.as_bytes().to_vec();
    assert!(
        text.contains("unknown or expired token") && text.contains("failed"),
        "the test must see the layer's logs:\n{text}"
    );
    for token in [&cookie, &unknown] {
        for (form, needle) in token_forms(token) {
            assert!(
                !contains(&logs, &needle),
                "a log line holds a token as {form}"
            );
        }
    }
}
