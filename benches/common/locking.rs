//! A locking session middleware, the reference for "PHP file sessions / CherryPy's default":
//! the session record is loaded at the start of the request under a per-session
//! `tokio::sync::Mutex`, the handler works on its copy, the record is saved at the end if it
//! changed, and only then is the lock released. No update is ever lost, and every request
//! of a session waits for the one before it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::header::{COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "lsid";

/// Session records by id, each with its own lock. Records are kept serialized (JSON), as a
/// file or a database row would keep them.
#[derive(Clone, Default)]
pub struct LockingStore {
    sessions: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
}

struct Slot {
    /// Held for the whole of every request of this session.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// The serialized record; `None` once the session is destroyed.
    record: Mutex<Option<String>>,
}

impl LockingStore {
    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.sessions.lock().unwrap().get(id).cloned()
    }

    fn insert(&self, id: String, record: String) {
        let slot = Arc::new(Slot {
            lock: Arc::new(tokio::sync::Mutex::new(())),
            record: Mutex::new(Some(record)),
        });
        self.sessions.lock().unwrap().insert(id, slot);
    }

    fn remove(&self, id: &str) {
        if let Some(slot) = self.sessions.lock().unwrap().remove(id) {
            *slot.record.lock().unwrap() = None;
        }
    }
}

#[derive(Default)]
struct SessionState {
    id: Option<String>,
    data: HashMap<String, Value>,
    modified: bool,
    created: bool,
    destroyed: bool,
}

/// The extractor: this request's copy of the session record. Anonymous requests get an
/// empty one (`get` answers `None`).
#[derive(Clone)]
pub struct LockedSession {
    state: Arc<Mutex<SessionState>>,
}

impl LockedSession {
    /// A value of the record.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let state = self.state.lock().unwrap();
        state.data.get(key).and_then(|v| T::deserialize(v).ok())
    }

    /// Sets a value; the record is saved when the request ends.
    pub fn insert(&self, key: &str, value: impl Serialize) {
        let mut state = self.state.lock().unwrap();
        state
            .data
            .insert(key.to_owned(), serde_json::to_value(value).unwrap());
        state.modified = true;
    }

    /// Starts a new session (login): a fresh id, the old record (if any) is dropped.
    pub fn create(&self) {
        let mut state = self.state.lock().unwrap();
        // The old session, if any, is destroyed after the handler, like any other change.
        state.destroyed = state.id.is_some();
        state.data.clear();
        state.created = true;
        state.modified = true;
    }

    /// Ends the session (logout).
    pub fn destroy(&self) {
        let mut state = self.state.lock().unwrap();
        state.destroyed = true;
        state.data.clear();
    }
}

impl<S: Send + Sync> FromRequestParts<S> for LockedSession {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StatusCode> {
        parts
            .extensions
            .get::<LockedSession>()
            .cloned()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn cookie_value(req: &Request) -> Option<String> {
    req.headers().get_all(COOKIE).iter().find_map(|h| {
        h.to_str().ok()?.split(';').find_map(|pair| {
            pair.trim()
                .strip_prefix(COOKIE_NAME)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
    })
}

/// The middleware (install with `axum::middleware::from_fn_with_state(store, middleware)`).
pub async fn middleware(
    State(store): State<LockingStore>,
    mut req: Request,
    next: Next,
) -> Response {
    let mut state = SessionState::default();
    // Held until this function returns: for the whole request, handler included.
    let mut _guard: Option<OwnedMutexGuard<()>> = None;
    if let Some(id) = cookie_value(&req) {
        if let Some(slot) = store.slot(&id) {
            _guard = Some(Arc::clone(&slot.lock).lock_owned().await);
            // Load after the lock: the previous request's save is visible.
            let record = slot.record.lock().unwrap().clone();
            if let Some(json) = record {
                state.data = serde_json::from_str(&json).unwrap();
                state.id = Some(id);
            }
        }
    }
    let session = LockedSession {
        state: Arc::new(Mutex::new(state)),
    };
    req.extensions_mut().insert(session.clone());

    let mut response = next.run(req).await;

    let mut state = session.state.lock().unwrap();
    if state.destroyed {
        if let Some(id) = state.id.take() {
            store.remove(&id);
        }
        if !state.created {
            response.headers_mut().append(
                SET_COOKIE,
                HeaderValue::from_str(&format!("{COOKIE_NAME}=; Max-Age=0; Path=/; HttpOnly"))
                    .unwrap(),
            );
        }
    }
    if state.created {
        let id = slates::Token::generate().unwrap().encode();
        store.insert(id.clone(), serde_json::to_string(&state.data).unwrap());
        response.headers_mut().append(
            SET_COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={id}; Path=/; HttpOnly")).unwrap(),
        );
    } else if state.modified {
        if let Some(slot) = state.id.as_deref().and_then(|id| store.slot(id)) {
            *slot.record.lock().unwrap() = Some(serde_json::to_string(&state.data).unwrap());
        }
    }
    drop(state);
    response
}
