//! Lifecycle events of logins and devices, for audit logs: [`AuthEvent`], the
//! [`AuthEventSubscriber`] an app sets on the builder, and their delivery.
//!
//! Every event is logged as a `tracing` event (target `slates::events`, level `INFO`) and,
//! when a subscriber is set, handed to it on a thread of its own through a bounded queue:
//! the request only tries to enqueue (it never waits), so a slow subscriber cannot slow a
//! request and a panicking one cannot fail it. When the queue is full the event is dropped
//! and counted ([`Stats::events_dropped`](crate::Stats::events_dropped)); the `tracing`
//! event is emitted all the same.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::device_id::DeviceId;
use crate::names::Username;
use crate::store::TokenBrief;
use crate::token::TokenHash;

/// What happened to a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthEventKind {
    /// [`Auth::login`](crate::Auth::login) issued a token (a new device).
    Login,
    /// [`Auth::logout`](crate::Auth::logout) ended this device.
    Logout,
    /// [`Auth::logout_everywhere`](crate::Auth::logout_everywhere) or
    /// [`Engine::logout_user`](crate::Engine::logout_user) ended every device of the user.
    LogoutEverywhere,
    /// A device was ended by id, by its user ([`Devices::end`](crate::Devices::end)) or an
    /// admin ([`Engine::end_device`](crate::Engine::end_device)).
    DeviceEnded,
    /// [`Devices::end_others`](crate::Devices::end_others) ended every other device of the
    /// user; the event names the device kept.
    OthersEnded,
    /// A login beyond [`EngineBuilder::max_devices`](crate::EngineBuilder::max_devices)
    /// ended the least recently seen device; the event names the device ended.
    DeviceLimit,
    /// [`Auth::rotate`](crate::Auth::rotate) replaced the token; the event names the new
    /// token.
    Rotation,
    /// The layer renewed the token (sliding idle timeout).
    Renewal,
    /// The layer refused a well-formed token: unknown (never issued, or ended), expired, or
    /// past its absolute lifetime.
    Refused,
}

/// One lifecycle event. It never holds the token, only the first 8 hex characters of its
/// SHA-256 ([`TokenHash::short`]), enough to follow one login through the logs.
///
/// Logged as a `tracing` event of target `slates::events` whatever the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthEvent {
    /// What happened.
    pub kind: AuthEventKind,
    /// The user, when known: a refused unknown token has none, and neither has a
    /// [`Logout`](AuthEventKind::Logout) of a request that never resolved its identity (a
    /// logout is one delete, with no lookup just to name the user; a handler that extracted
    /// [`CurrentUser`](crate::CurrentUser) or asked [`Auth::username`](crate::Auth::username)
    /// gets the user named).
    pub user: Option<Username>,
    /// The device, when known (not for a [`Renewal`](AuthEventKind::Renewal) or a
    /// [`Refused`](AuthEventKind::Refused) token: the token check reads no device id).
    pub device: Option<DeviceId>,
    /// When (the engine's clock).
    pub at: OffsetDateTime,
    /// The first 8 hex characters of the token's SHA-256 (`None` only for
    /// [`Engine::logout_user`](crate::Engine::logout_user), which names no token).
    pub token: Option<String>,
}

impl AuthEvent {
    pub(crate) fn new(
        kind: AuthEventKind,
        user: Option<&Username>,
        device: Option<&DeviceId>,
        token: Option<&TokenHash>,
        at: OffsetDateTime,
    ) -> Self {
        AuthEvent {
            kind,
            user: user.cloned(),
            device: device.cloned(),
            at,
            token: token.map(TokenHash::short),
        }
    }
}

/// Receives the [`AuthEvent`]s of an engine (set with
/// [`EngineBuilder::auth_events`](crate::EngineBuilder::auth_events)), one at a time, in
/// order, on a thread of its own: it may block (write to a file, a database) without
/// slowing any request. A closure `Fn(&AuthEvent)` is a subscriber.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use slates::{AuthEvent, Engine, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> slates::Result<()> {
/// let audit = Arc::new(Mutex::new(Vec::new()));
/// let log = Arc::clone(&audit);
/// let engine = Engine::builder(MemoryStore::new())
///     .auth_events(move |e: &AuthEvent| log.lock().unwrap().push(e.kind))
///     .build()
///     .await?;
/// # drop((engine, audit));
/// # Ok(()) }
/// ```
pub trait AuthEventSubscriber: Send + Sync + 'static {
    /// Handles one event. A panic is caught and logged; the next event is delivered.
    fn on_event(&self, event: &AuthEvent);
}

impl<F: Fn(&AuthEvent) + Send + Sync + 'static> AuthEventSubscriber for F {
    fn on_event(&self, event: &AuthEvent) {
        self(event)
    }
}

/// The delivery side, owned by the engine.
#[derive(Default)]
pub(crate) struct Events {
    queue: Option<SyncSender<AuthEvent>>,
    dropped: AtomicU64,
}

impl Events {
    /// Delivery to `subscriber`, if any, through a queue of `capacity` events and a thread
    /// that ends when the engine is dropped.
    pub fn new(subscriber: Option<Arc<dyn AuthEventSubscriber>>, capacity: usize) -> Self {
        let Some(subscriber) = subscriber else {
            return Events::default();
        };
        let (queue, events) = sync_channel::<AuthEvent>(capacity);
        let spawned = std::thread::Builder::new()
            .name("slates-events".into())
            .spawn(move || {
                for event in events {
                    let delivered = catch_unwind(AssertUnwindSafe(|| subscriber.on_event(&event)));
                    if delivered.is_err() {
                        tracing::error!(target: "slates::events", kind = ?event.kind, "the auth event subscriber panicked");
                    }
                }
            });
        match spawned {
            Ok(_) => Events {
                queue: Some(queue),
                dropped: AtomicU64::new(0),
            },
            Err(e) => {
                tracing::error!(error = %e, "slates could not start the auth event thread: events are logged only");
                Events::default()
            }
        }
    }

    /// Logs `event` and hands it to the subscriber without waiting; a full queue drops it
    /// (counted).
    pub fn emit(&self, event: AuthEvent) {
        tracing::info!(
            target: "slates::events",
            kind = ?event.kind,
            user = event.user.as_ref().map(Username::as_str),
            device = event.device.as_ref().map(DeviceId::as_str),
            token = event.token.as_deref(),
            "slates auth event"
        );
        if let Some(queue) = &self.queue {
            match queue.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Emits `kind` about the token `hash`, naming the user of its `record` when it was
    /// read (a brief holds no device id).
    pub fn emit_about(
        &self,
        kind: AuthEventKind,
        record: Option<&TokenBrief>,
        hash: &TokenHash,
        at: OffsetDateTime,
    ) {
        let user = record.map(|r| &r.user);
        self.emit(AuthEvent::new(kind, user, None, Some(hash), at));
    }

    /// Events the subscriber did not get (the queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}
