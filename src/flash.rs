//! Flash messages (issue 14): a message written on one request and shown once, on a later
//! one, for users ([`UserSlates`]) and visitors ([`GuestSlates`],
//! [`VisitorSlates`](crate::VisitorSlates)).
//!
//! The messages of one owner are one slate of slates' own, `.flash` (a name no app slate
//! can have): writing appends with one atomic `$push`, reading is one atomic read-and-delete
//! (`findOneAndDelete` on MongoDB, one locked step on the memory store), so of two tabs
//! reading at once exactly one gets the messages, and a message written meanwhile is
//! either taken with them or left for the next read, never lost or shown twice. Unread
//! messages expire [`FLASH_TTL`] after the last one was written.

use time::Duration;

use crate::error::Result;
use crate::names::SlateName;
use crate::raw_slate::RawSlate;
use crate::user_slates::UserSlates;
use crate::visitor::GuestSlates;

/// How long unread flash messages are kept after the last one was written: 1 hour.
pub const FLASH_TTL: Duration = Duration::hours(1);

/// The field of the `.flash` slate that holds the messages, oldest first.
const MESSAGES: &str = "messages";

/// The `.flash` slate name.
pub(crate) fn flash_slate() -> SlateName {
    SlateName::reserved(".flash")
}

/// Appends `message` (one `$push`).
pub(crate) async fn push(slate: RawSlate, message: &str) -> Result<()> {
    slate.expires_in(FLASH_TTL).push(MESSAGES, message).await?;
    Ok(())
}

/// Takes every message (one atomic read-and-delete), oldest first.
pub(crate) async fn take(slate: RawSlate) -> Result<Vec<String>> {
    let Some(taken) = slate.take_doc().await? else {
        return Ok(Vec::new());
    };
    Ok(match taken.doc.get_array(MESSAGES) {
        Ok(items) => items
            .into_iter()
            .filter_map(|m| m.ok()?.as_str().map(str::to_owned))
            .collect(),
        Err(_) => Vec::new(),
    })
}

impl UserSlates {
    /// Adds a flash message for this user: shown once by the next
    /// [`take_flashes`](Self::take_flashes), whichever request (or tab) runs it first.
    /// One atomic `$push`; unread messages expire [`FLASH_TTL`] after the last write.
    pub async fn flash(&self, message: &str) -> Result<()> {
        push(self.reserved_slate(flash_slate()), message).await
    }

    /// Takes this user's flash messages, oldest first, in one atomic read-and-delete: of two
    /// concurrent calls, one gets them and the other an empty list.
    pub async fn take_flashes(&self) -> Result<Vec<String>> {
        take(self.reserved_slate(flash_slate())).await
    }
}

impl GuestSlates {
    /// Adds a flash message for this visitor (a guest write: the first one issues the
    /// guest token). See [`UserSlates::flash`].
    pub async fn flash(&self, message: &str) -> Result<()> {
        push(self.reserved_slate(flash_slate()), message).await
    }

    /// Takes this visitor's flash messages (no store call when the visitor has no guest
    /// cookie). See [`UserSlates::take_flashes`].
    pub async fn take_flashes(&self) -> Result<Vec<String>> {
        take(self.reserved_slate(flash_slate())).await
    }
}
