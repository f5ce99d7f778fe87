//! The limits of an upload, checked by the form reader and the set-name check, and told to
//! users by the pages and the problem messages.

/// Largest request body (the upload form with its file included).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most values one upload may hold (text box and files together).
pub const MAX_VALUES: usize = 10_000;
/// Most text boxes and files one upload may hold (a form has one of each).
pub const MAX_PARTS: usize = 8;
/// Longest set name, in characters.
pub const MAX_SET_NAME: usize = 40;
