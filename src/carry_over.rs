//! Carrying guest slates over to the user at login (issue 14): [`CarryOver`],
//! [`GuestSlates::carry_over_to`] and [`Auth::login_carrying`].
//!
//! Per slate, in two store steps: the guest slate is **taken** (read and deleted in one
//! atomic operation, so of two concurrent logins of one browser only one carries it), then
//! applied to the user's slate with **one** atomic operation. If that second step fails,
//! the guest slate is put back (best effort: only if the guest has not written that slate
//! again meanwhile) and the error is returned. If the second step was in fact applied and
//! only its reply was lost, the data is then in both places: a retry would carry it twice.

use bson::{Bson, Document};
use time::{Duration, OffsetDateTime};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::names::{SlateName, Username};
use crate::store::SlateKey;
use crate::user_slates::UserSlates;
use crate::visitor::GuestSlates;
use crate::workflow::Workflow;

/// What happens at login to one guest slate (slates not named stay with the guest).
/// Declared from the [`Workflow`], whose expiry the user's slate keeps.
///
/// ```
/// use slates::{CarryOver, Workflow};
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Counter { hits: i64 }
/// const COUNTER: Workflow<Counter> = Workflow::new("counter");
/// const AT_LOGIN: [CarryOver; 1] = [CarryOver::add_counter(&COUNTER, "hits")];
/// assert_eq!(AT_LOGIN[0].slate(), "counter");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CarryOver {
    slate: &'static str,
    ttl: Option<Duration>,
    rule: Rule,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    AddCounter(&'static str),
    Append(&'static str),
    Replace,
    Discard,
}

impl CarryOver {
    /// A counter: the guest's integer `field` is added to the user's with one `$inc` (an
    /// absent field on either side counts as 0); the guest's slate is gone.
    pub const fn add_counter<T>(workflow: &Workflow<T>, field: &'static str) -> Self {
        Self::new(workflow, Rule::AddCounter(field))
    }

    /// A list: the guest's array `field` is appended, in order, to the user's with one
    /// `$push` `$each` (an absent user field becomes the guest's list).
    pub const fn append<T>(workflow: &Workflow<T>, field: &'static str) -> Self {
        Self::new(workflow, Rule::Append(field))
    }

    /// A document: the guest's whole document replaces the user's (one `put`): the work the
    /// visitor just did before logging in wins over an older one of the user.
    pub const fn replace<T>(workflow: &Workflow<T>) -> Self {
        Self::new(workflow, Rule::Replace)
    }

    /// The guest's slate is deleted and the user's left as it is.
    pub const fn discard<T>(workflow: &Workflow<T>) -> Self {
        Self::new(workflow, Rule::Discard)
    }

    const fn new<T>(workflow: &Workflow<T>, rule: Rule) -> Self {
        CarryOver {
            slate: workflow.name(),
            ttl: workflow.ttl(),
            rule,
        }
    }

    /// The slate name.
    pub const fn slate(&self) -> &'static str {
        self.slate
    }
}

impl GuestSlates {
    /// Carries the visitor's guest slates over to `user` as `rules` say, one slate after
    /// the other (see the module rules: take, then one atomic write, the guest slate put
    /// back if that write fails). Returns how many guest slates were found and handled.
    /// Costs no store call when the visitor has no guest cookie.
    pub async fn carry_over_to(&self, user: &UserSlates, rules: &[CarryOver]) -> Result<usize> {
        let core = self.core();
        let Some(owner) = self.guest_state().owner(core).await? else {
            return Ok(0);
        };
        let mut carried = 0;
        for rule in rules {
            let key = SlateKey::new(owner.user.clone(), SlateName::new(rule.slate)?);
            let taken = core.track(core.slates.take_slate(&key, core.now()).await)?;
            let Some(taken) = taken else { continue };
            // A copy of its fields: the rules read them as values and write them back.
            let doc = taken.doc.to_document()?;
            if let Err(e) = apply(user, rule, &doc).await {
                put_back(self, &key, &doc, taken.expires).await;
                return Err(e);
            }
            carried += 1;
        }
        Ok(carried)
    }
}

/// Applies the taken guest document `doc` to the user's slate: one atomic operation.
async fn apply(user: &UserSlates, rule: &CarryOver, doc: &Document) -> Result<()> {
    let slate = user.raw_slate(rule.slate).with_expiry(rule.ttl);
    match rule.rule {
        Rule::AddCounter(field) => {
            let n = match doc.get(field) {
                None => return Ok(()),
                Some(Bson::Int32(n)) => i64::from(*n),
                Some(Bson::Int64(n)) => *n,
                Some(_) => {
                    return Err(Error::TypeMismatch {
                        field: field.to_owned(),
                        reason: "the guest's counter is not an integer",
                    })
                }
            };
            slate.inc(field, n).await?;
        }
        Rule::Append(field) => {
            let items = match doc.get(field) {
                None => return Ok(()),
                Some(Bson::Array(items)) => items,
                Some(_) => {
                    return Err(Error::TypeMismatch {
                        field: field.to_owned(),
                        reason: "the guest's list is not an array",
                    })
                }
            };
            slate.push_all(field, items).await?;
        }
        Rule::Replace => {
            slate.put(doc).await?;
        }
        Rule::Discard => {}
    }
    Ok(())
}

/// Puts a taken guest slate (`doc`, expiring at `expires`) back, unless the guest wrote that
/// slate again meanwhile (an insert that never replaces a live slate). Best effort: a
/// failure is logged.
async fn put_back(
    guest: &GuestSlates,
    key: &SlateKey,
    doc: &Document,
    expires: Option<OffsetDateTime>,
) {
    let core = guest.core();
    let now = core.now();
    let restored = core
        .slates
        .replace_slate_if(key, None, doc, expires, now)
        .await;
    match restored {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::warn!(slate = %key.slate, "carry-over failed; the guest wrote the slate again meanwhile, the taken one is lost")
        }
        Err(e) => core.store_error("carry-over (put the guest slate back)", &e),
    }
}

impl Auth {
    /// Logs `username` in ([`login`](Self::login): a fresh auth token; the guest token is
    /// never turned into one) and then carries this browser's guest slates over to the
    /// user as `rules` say ([`GuestSlates::carry_over_to`]). Returns how many guest slates
    /// were carried over (or discarded).
    ///
    /// If the login fails, nothing is carried over. If the carry-over fails, the user is
    /// logged in all the same (the response sets the auth cookie), the failing slate is
    /// put back with the guest (best effort) and the error is returned.
    pub async fn login_carrying(&self, username: &str, rules: &[CarryOver]) -> Result<usize> {
        let user = Username::new(username)?;
        self.login(username).await?;
        let state = self.request_state();
        let guest = GuestSlates::from_state(state);
        let user = UserSlates::new(std::sync::Arc::clone(&state.core), user);
        guest.carry_over_to(&user, rules).await
    }
}
