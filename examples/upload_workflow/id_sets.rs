//! The documents of the site: an upload under review (the workflow slate) and the saved
//! sets, and how an upload is checked against them (set name, conflicts).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::csv::parse_id;
use super::limits::MAX_SET_NAME;
use super::problem::Problem;

/// Longest value shown back on the review page.
const MAX_SHOWN_VALUE: usize = 40;

/// The workflow slate: one upload awaiting review. Written once by `/upload` (a whole
/// document `put`), read by `/review`, deleted by confirm or cancel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewIdSet {
    /// The name the set will be saved under.
    pub name: String,
    /// Every valid id, in upload order, duplicates included.
    pub ids: Vec<i64>,
    /// Values that are not valid ids (shortened for display). Never saved.
    #[serde(alias = "not_numbers")]
    pub not_ids: Vec<String>,
    /// Ids given more than once, with how often.
    pub duplicates: Vec<Duplicate>,
    /// Ids already in another saved set of the user.
    pub already_saved: Vec<AlreadySaved>,
    /// Where the values came from, for the review page.
    pub sources: Vec<String>,
    /// Whether a saved set of the same name exists (confirming replaces it).
    pub replaces: bool,
}

/// An id given more than once in one upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    /// The id.
    pub id: i64,
    /// How many times it was given.
    pub count: u32,
}

/// An id already in one or more of the user's saved sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlreadySaved {
    /// The id.
    pub id: i64,
    /// The saved sets holding it.
    pub sets: Vec<String>,
}

/// One saved set, stored at `sets.<name>` in the `sets` slate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSet {
    /// The ids, in order.
    pub ids: Vec<i64>,
    /// When it was saved (RFC 3339, UTC).
    pub saved_at: String,
}

/// The `sets` slate: every saved set of the user.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedSets {
    /// Saved sets by name (sorted).
    #[serde(default)]
    pub sets: BTreeMap<String, SavedSet>,
}

impl NewIdSet {
    /// The ids saved by "discard conflicts": ids already saved in another set dropped, each
    /// duplicate kept once. Values that are not valid ids are never saved.
    pub fn without_conflicts(&self) -> Vec<i64> {
        let saved: HashSet<i64> = self.already_saved.iter().map(|a| a.id).collect();
        let mut seen = HashSet::new();
        self.ids
            .iter()
            .copied()
            .filter(|id| !saved.contains(id) && seen.insert(*id))
            .collect()
    }

    /// Whether there is anything to decide.
    pub fn has_conflicts(&self) -> bool {
        !(self.not_ids.is_empty() && self.duplicates.is_empty() && self.already_saved.is_empty())
    }

    /// How many different ids the upload holds.
    pub fn distinct_ids(&self) -> usize {
        self.ids.iter().collect::<HashSet<_>>().len()
    }
}

/// Checks a set name: 1 to 40 letters, digits, spaces, `-` or `_`, starting with a letter
/// or digit. (The name becomes a field path in the `sets` slate, so `.` and `$` are out.)
pub fn check_set_name(name: &str) -> Result<&str, Problem> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Problem::NoSetName);
    }
    if name.chars().count() > MAX_SET_NAME {
        return Err(Problem::SetNameTooLong);
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))
    {
        return Err(Problem::BadSetName);
    }
    Ok(name)
}

/// Builds the workflow slate from the raw values: valid ids, the other values, duplicates,
/// and ids already in another saved set of the user.
pub fn review_upload(
    name: &str,
    values: Vec<String>,
    sources: Vec<String>,
    saved: &SavedSets,
) -> NewIdSet {
    let mut ids = Vec::new();
    let mut not_ids = Vec::new();
    for v in values {
        match parse_id(&v) {
            Some(id) => ids.push(id),
            None => not_ids.push(shorten(&v)),
        }
    }
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for id in &ids {
        *counts.entry(*id).or_default() += 1;
    }
    let mut in_sets: HashMap<i64, Vec<String>> = HashMap::new();
    for (set_name, set) in &saved.sets {
        // The set of the same name is replaced by this upload: no conflict with itself.
        if set_name == name {
            continue;
        }
        for id in &set.ids {
            if counts.contains_key(id) {
                let sets = in_sets.entry(*id).or_default();
                if sets.last() != Some(set_name) {
                    sets.push(set_name.clone());
                }
            }
        }
    }
    let mut duplicates = Vec::new();
    let mut already_saved = Vec::new();
    let mut seen = HashSet::new();
    for id in &ids {
        if !seen.insert(*id) {
            continue;
        }
        if counts[id] > 1 {
            duplicates.push(Duplicate {
                id: *id,
                count: counts[id],
            });
        }
        if let Some(sets) = in_sets.remove(id) {
            already_saved.push(AlreadySaved { id: *id, sets });
        }
    }
    NewIdSet {
        name: name.to_owned(),
        ids,
        not_ids,
        duplicates,
        already_saved,
        sources,
        replaces: saved.sets.contains_key(name),
    }
}

/// `v`, cut to a length a page can show.
pub fn shorten(v: &str) -> String {
    if v.chars().count() <= MAX_SHOWN_VALUE {
        v.to_owned()
    } else {
        let mut s: String = v.chars().take(MAX_SHOWN_VALUE).collect();
        s.push('…');
        s
    }
}
