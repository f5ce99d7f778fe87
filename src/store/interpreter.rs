//! The update interpreter: how MongoDB applies the operators of one update to a document.
//!
//! The [`MemoryStore`](super::MemoryStore) applies updates with it, so that it behaves like
//! MongoDB (≥ 5.0), the reference for slates' semantics; `tests/differential.rs` compares it
//! with the wire server and lists where FerretDB 1.x deviates. What it follows:
//!
//! - **One update, one tree.** Repeats of one operator on one field are first merged into one
//!   operator, exactly as the Mongo store merges them into one update document
//!   ([`merge`]); conflicting operators are refused ([`check_ops`]). The fields are then
//!   applied in MongoDB's order: path segment by segment, names in byte order except that
//!   numeric names compare as numbers ("Update Operators Behavior",
//!   <https://www.mongodb.com/docs/manual/reference/operator/update/#behavior>). Existing
//!   fields keep their place; new ones are appended in that order.
//! - **Dotted paths** ("Dot Notation",
//!   <https://www.mongodb.com/docs/manual/core/document/#dot-notation>): a segment names a
//!   field of a document, or, if it is all digits, an element of an array. A missing path
//!   is created as embedded documents (a numeric segment is then a field name); an index
//!   past the end of an array pads it with nulls (at most 1,500,000, MongoDB's
//!   `kMaxPaddingAllowed`). A non-numeric segment into an array, or any segment into a
//!   scalar, is MongoDB's `PathNotViable` ([`Error::TypeMismatch`]), except for `$unset`,
//!   which ignores a path that does not exist.
//! - **`$set`** replaces or creates
//!   (<https://www.mongodb.com/docs/manual/reference/operator/update/set/#behavior>);
//!   **`$unset`** removes a field, or sets an array element to null so that positions are
//!   kept (<https://www.mongodb.com/docs/manual/reference/operator/update/unset/#behavior>).
//! - **`$inc`** (<https://www.mongodb.com/docs/manual/reference/operator/update/inc/#behavior>):
//!   a missing field is set to the increment, with its type; otherwise [`add_numbers`]:
//!   int32 + int32 is an int32 unless it overflows (then an int64), with an int64 it is an
//!   int64, with a double a double; int64 overflow and a non-number (null included) are
//!   refused. A non-numeric increment is refused before anything is applied.
//! - **`$push`** appends (one element per value: an array value is one element), and
//!   **`$addToSet`** appends the values not already present, compared with MongoDB's BSON
//!   comparison ([`bson_eq`]); both create a missing field and refuse a non-array
//!   (<https://www.mongodb.com/docs/manual/reference/operator/update/addToSet/#behavior>).
//!
//! Not modelled: arithmetic on `Decimal128` (an `$inc` that would have to add a decimal to an
//! existing number is refused as [`Error::TypeMismatch`]; MongoDB computes it), and
//! MongoDB's checks of the names inside stored values (`$`-prefixed or dotted field names in
//! sub-documents).
//!
//! An error can leave `doc` partly updated: callers apply updates to a copy.

use std::cmp::Ordering;

use bson::{Bson, Document};

use super::update::{add_numbers, check_ops, merge, FieldUpdate};
use super::UpdateOp;
use crate::error::{Error, Result};

/// The most nulls one update may add to an array (MongoDB's `kMaxPaddingAllowed`).
const MAX_PADDING: usize = 1_500_000;

/// Applies `ops` to `doc` as MongoDB applies one update document holding them.
pub(crate) fn apply_update(doc: &mut Document, ops: &[UpdateOp]) -> Result<()> {
    check_ops(ops)?;
    let mut fields = merge(ops)?;
    // Checked when MongoDB parses the update, before anything is applied.
    for (path, update) in &fields {
        if let FieldUpdate::Inc(by) = update {
            if !is_number(by) {
                return Err(mismatch(path, "inc needs a numeric increment"));
            }
        }
    }
    fields.sort_by(|(a, _), (b, _)| compare_paths(a, b));
    for (path, update) in &fields {
        let segments: Vec<&str> = path.split('.').collect();
        walk(Node::Doc(doc), &segments, path, update)?;
    }
    Ok(())
}

/// The value at a dotted `path` (`"profile.tz"`, `"ids.0"`), following array indexes as
/// MongoDB does; `None` if the path does not exist.
///
/// ```
/// use bson::{doc, Bson};
/// let d = doc! {"ids": [{"k": 1}, {"k": 2}]};
/// assert_eq!(slates::store::get_path(&d, "ids.1.k"), Some(&Bson::Int32(2)));
/// assert_eq!(slates::store::get_path(&d, "ids.x"), None);
/// ```
pub fn get_path<'d>(doc: &'d Document, path: &str) -> Option<&'d Bson> {
    let mut segments = path.split('.');
    let mut current = doc.get(segments.next()?)?;
    for segment in segments {
        current = match current {
            Bson::Document(d) => d.get(segment)?,
            Bson::Array(items) => items.get(index(segment)?)?,
            _ => return None,
        };
    }
    Some(current)
}

// ------------------------------------------------------------------ paths

/// The array index a path segment names: all ASCII digits (leading zeros allowed), as
/// MongoDB's `parseUnsignedBase10Integer`.
fn index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

/// MongoDB's order of the fields of one update (`cmpPathsAndArrayIndexes`, per segment):
/// byte order, except that two segments starting with a digit (and not zero-padded) compare
/// by length first, so that numeric names are in numeric order.
fn compare_paths(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) => match compare_segments(x, y) {
                Ordering::Equal => continue,
                other => return other,
            },
            (x, y) => return x.is_some().cmp(&y.is_some()),
        }
    }
}

fn compare_segments(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| {
        s.as_bytes().first().is_some_and(u8::is_ascii_digit) && !(s.starts_with('0') && s.len() > 1)
    };
    if numeric(a) && numeric(b) && a.len() != b.len() {
        return a.len().cmp(&b.len());
    }
    a.cmp(b)
}

// ------------------------------------------------------------------ applying one field

/// A container a path segment is looked up in.
enum Node<'a> {
    Doc(&'a mut Document),
    Array(&'a mut Vec<Bson>),
}

impl Node<'_> {
    fn get_mut(&mut self, segment: &str) -> Option<&mut Bson> {
        match self {
            Node::Doc(d) => d.get_mut(segment),
            Node::Array(items) => items.get_mut(index(segment)?),
        }
    }
}

fn walk(mut node: Node<'_>, segments: &[&str], path: &str, update: &FieldUpdate) -> Result<()> {
    let Some((segment, rest)) = segments.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        return leaf(node, segment, path, update);
    }
    match node.get_mut(segment) {
        Some(Bson::Document(d)) => return walk(Node::Doc(d), rest, path, update),
        Some(Bson::Array(items)) => return walk(Node::Array(items), rest, path, update),
        // A scalar in the way: the path cannot be created without changing its type.
        Some(_) if matches!(update, FieldUpdate::Unset) => return Ok(()),
        Some(_) => return Err(not_viable(path)),
        None => {}
    }
    if matches!(update, FieldUpdate::Unset) {
        return Ok(());
    }
    // The rest of the path is created as embedded documents.
    let mut value = new_value(update);
    for name in rest.iter().rev() {
        let mut d = Document::new();
        d.insert(*name, value);
        value = Bson::Document(d);
    }
    create(node, segment, value, path)
}

/// Applies `update` to the field `segment` of `node`, the last segment of `path`.
fn leaf(mut node: Node<'_>, segment: &str, path: &str, update: &FieldUpdate) -> Result<()> {
    if let FieldUpdate::Unset = update {
        match node {
            Node::Doc(d) => {
                d.remove(segment);
            }
            // An array element is set to null, so that the others keep their positions.
            Node::Array(items) => {
                if let Some(item) = index(segment).and_then(|i| items.get_mut(i)) {
                    *item = Bson::Null;
                }
            }
        }
        return Ok(());
    }
    let Some(existing) = node.get_mut(segment) else {
        return create(node, segment, new_value(update), path);
    };
    match update {
        FieldUpdate::Set(v) => *existing = v.clone(),
        FieldUpdate::Inc(by) => {
            if !is_number(existing) {
                return Err(mismatch(
                    path,
                    "inc needs a number (the field holds another type)",
                ));
            }
            *existing = add_numbers(existing, by).ok_or_else(|| {
                mismatch(
                    path,
                    "inc must not overflow int64 (and the memory store adds no decimals)",
                )
            })?;
        }
        FieldUpdate::Push(values) => match existing {
            Bson::Array(items) => items.extend(values.iter().cloned()),
            _ => return Err(mismatch(path, "push and add_to_set need an array")),
        },
        FieldUpdate::AddToSet(values) => match existing {
            Bson::Array(items) => {
                for v in values {
                    if !items.iter().any(|item| bson_eq(item, v)) {
                        items.push(v.clone());
                    }
                }
            }
            _ => return Err(mismatch(path, "push and add_to_set need an array")),
        },
        FieldUpdate::Unset => {}
    }
    Ok(())
}

/// The value a field that does not exist yet receives.
fn new_value(update: &FieldUpdate) -> Bson {
    match update {
        FieldUpdate::Set(v) | FieldUpdate::Inc(v) => v.clone(),
        FieldUpdate::Push(values) => Bson::Array(values.clone()),
        FieldUpdate::AddToSet(values) => {
            let mut items: Vec<Bson> = Vec::with_capacity(values.len());
            for v in values {
                if !items.iter().any(|item| bson_eq(item, v)) {
                    items.push(v.clone());
                }
            }
            Bson::Array(items)
        }
        FieldUpdate::Unset => Bson::Null,
    }
}

/// Adds the missing field `segment` to `node`: appended to a document; in an array, at the
/// index it names, after padding with nulls.
fn create(node: Node<'_>, segment: &str, value: Bson, path: &str) -> Result<()> {
    match node {
        Node::Doc(d) => {
            d.insert(segment, value);
        }
        Node::Array(items) => {
            let Some(i) = index(segment) else {
                return Err(not_viable(path));
            };
            // Missing, so `i >= items.len()`.
            if i - items.len() > MAX_PADDING {
                return Err(Error::Store(Box::new(std::io::Error::other(format!(
                    "can't backfill more than {MAX_PADDING} elements (field `{path}`)"
                )))));
            }
            items.resize(i, Bson::Null);
            items.push(value);
        }
    }
    Ok(())
}

fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

fn mismatch(field: &str, reason: &'static str) -> Error {
    Error::TypeMismatch {
        field: field.to_owned(),
        reason,
    }
}

fn not_viable(path: &str) -> Error {
    mismatch(
        path,
        "a parent of the field is not a document (or it is an array and the segment is not an index)",
    )
}

// ------------------------------------------------------------------ BSON equality

/// Equality under MongoDB's BSON comparison ("Comparison/Sort Order",
/// <https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/>), what
/// `$addToSet` uses: numbers compare by value whatever their type (int32 1, int64 1, 1.0 and
/// decimal 1.00 are equal; NaN equals NaN; -0.0 equals 0.0), string and symbol by bytes,
/// documents field by field in order (same names, equal values), arrays element by element,
/// recursively; values of different type classes are never equal.
pub(crate) fn bson_eq(a: &Bson, b: &Bson) -> bool {
    use Bson::*;
    if let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) {
        return x.equals(&y);
    }
    match (a, b) {
        (Null, Null) | (Undefined, Undefined) | (MinKey, MinKey) | (MaxKey, MaxKey) => true,
        (String(x) | Symbol(x), String(y) | Symbol(y)) => x == y,
        (Document(x), Document(y)) => documents_eq(x, y),
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| bson_eq(x, y)),
        (Binary(x), Binary(y)) => x.subtype == y.subtype && x.bytes == y.bytes,
        (ObjectId(x), ObjectId(y)) => x == y,
        (Boolean(x), Boolean(y)) => x == y,
        (DateTime(x), DateTime(y)) => x == y,
        (Timestamp(x), Timestamp(y)) => x == y,
        (RegularExpression(x), RegularExpression(y)) => x == y,
        (DbPointer(x), DbPointer(y)) => x == y,
        (JavaScriptCode(x), JavaScriptCode(y)) => x == y,
        (JavaScriptCodeWithScope(x), JavaScriptCodeWithScope(y)) => {
            x.code == y.code && documents_eq(&x.scope, &y.scope)
        }
        _ => false,
    }
}

fn documents_eq(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && bson_eq(va, vb))
}

/// A BSON number, for comparisons across types.
enum Number {
    Int(i64),
    Double(f64),
    Decimal(Dec128),
}

impl Number {
    fn of(v: &Bson) -> Option<Number> {
        Some(match v {
            Bson::Int32(x) => Number::Int(i64::from(*x)),
            Bson::Int64(x) => Number::Int(*x),
            Bson::Double(x) => Number::Double(*x),
            Bson::Decimal128(d) => Number::Decimal(Dec128::from_bytes(d.bytes())),
            _ => return None,
        })
    }

    fn equals(&self, other: &Number) -> bool {
        use Number::*;
        match (self, other) {
            (Int(x), Int(y)) => x == y,
            (Double(x), Double(y)) => x == y || (x.is_nan() && y.is_nan()),
            (Int(i), Double(d)) | (Double(d), Int(i)) => int_equals_double(*i, *d),
            (Decimal(x), Decimal(y)) => x == y,
            (Decimal(x), Int(i)) | (Int(i), Decimal(x)) => *x == Dec128::from_int(*i),
            (Decimal(x), Double(d)) | (Double(d), Decimal(x)) => *x == Dec128::from_double(*d),
        }
    }
}

/// Exact comparison of an int64 and a double (MongoDB's `compareLongToDouble`).
fn int_equals_double(i: i64, d: f64) -> bool {
    // 2^63 is exactly representable; every integral double in [-2^63, 2^63) converts exactly.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    d.fract() == 0.0 && (-TWO_63..TWO_63).contains(&d) && d as i64 == i
}

/// A decimal128 value, normalised so that equal values are equal: `coefficient × 10^exponent`
/// without trailing zeros in the coefficient, zero as `0 × 10^0` (whatever its sign).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dec128 {
    NaN,
    Infinity {
        negative: bool,
    },
    Finite {
        negative: bool,
        coefficient: u128,
        exponent: i32,
    },
}

impl Dec128 {
    /// Decodes IEEE 754-2008 decimal128 in the binary integer decimal encoding (BSON's).
    fn from_bytes(bytes: [u8; 16]) -> Dec128 {
        const BIAS: i32 = 6176;
        const MAX_COEFFICIENT: u128 = 9_999_999_999_999_999_999_999_999_999_999; // 10^34 - 1
        let bits = u128::from_le_bytes(bytes);
        let negative = bits >> 127 == 1;
        let (exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
            match (bits >> 122) & 0b11111 {
                0b11110 => return Dec128::Infinity { negative },
                0b11111 => return Dec128::NaN,
                // The coefficient would be ≥ 2^113 > 10^34 - 1: non-canonical, so zero.
                _ => (((bits >> 111) & 0x3fff) as i32, 0),
            }
        } else {
            let coefficient = bits & ((1 << 113) - 1);
            (((bits >> 113) & 0x3fff) as i32, coefficient)
        };
        let coefficient = if coefficient > MAX_COEFFICIENT {
            0
        } else {
            coefficient
        };
        Dec128::finite(negative, coefficient, exponent - BIAS)
    }

    fn finite(negative: bool, mut coefficient: u128, mut exponent: i32) -> Dec128 {
        if coefficient == 0 {
            return Dec128::Finite {
                negative: false,
                coefficient: 0,
                exponent: 0,
            };
        }
        while coefficient % 10 == 0 {
            coefficient /= 10;
            exponent += 1;
        }
        Dec128::Finite {
            negative,
            coefficient,
            exponent,
        }
    }

    fn from_int(i: i64) -> Dec128 {
        Dec128::finite(i < 0, u128::from(i.unsigned_abs()), 0)
    }

    /// A double as MongoDB compares it with a decimal: converted to a decimal rounded to 34
    /// significant digits (`Decimal128(double, kRoundTo34Digits)`).
    fn from_double(d: f64) -> Dec128 {
        if d.is_nan() {
            return Dec128::NaN;
        }
        if d.is_infinite() {
            return Dec128::Infinity { negative: d < 0.0 };
        }
        // `{:.33e}` is the exact binary value rounded to 34 significant digits.
        let text = format!("{:.33e}", d.abs());
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let coefficient = digits.parse::<u128>().unwrap_or(0);
        let exponent = exponent.parse::<i32>().unwrap_or(0) - 33;
        Dec128::finite(d.is_sign_negative(), coefficient, exponent)
    }
}

/// The integer at `field` (array indexes followed, as MongoDB does) after an update that
/// promised one.
pub(crate) fn integer_at(doc: &Document, field: &str) -> Result<i64> {
    match get_path(doc, field) {
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Int64(v)) => Ok(*v),
        _ => Err(not_an_integer(field)),
    }
}

/// Refuses a counter field that holds something other than an integer (absent is fine).
#[cfg(feature = "mongodb")]
pub(crate) fn integer_or_absent(doc: &Document, field: &str) -> Result<()> {
    match get_path(doc, field) {
        None | Some(Bson::Int32(_) | Bson::Int64(_)) => Ok(()),
        Some(_) => Err(not_an_integer(field)),
    }
}

fn not_an_integer(field: &str) -> Error {
    Error::TypeMismatch {
        field: field.to_owned(),
        reason: "inc needs an integer field (it holds another type)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn apply(d: &mut Document, op: UpdateOp) -> Result<()> {
        apply_update(d, &[op])
    }

    #[test]
    fn dotted_paths_and_inc_arithmetic() {
        let mut d = doc! {};
        apply(&mut d, UpdateOp::Set("a.b.c".into(), Bson::Int32(1))).unwrap();
        assert_eq!(d, doc! {"a": {"b": {"c": 1}}});
        apply(&mut d, UpdateOp::Inc("a.b.c".into(), Bson::Int32(i32::MAX))).unwrap();
        assert_eq!(
            get_path(&d, "a.b.c"),
            Some(&Bson::Int64(i32::MAX as i64 + 1))
        );
        apply(&mut d, UpdateOp::Inc("x".into(), Bson::Double(0.5))).unwrap();
        assert_eq!(d.get("x"), Some(&Bson::Double(0.5)));
        apply(&mut d, UpdateOp::Unset("a.b".into())).unwrap();
        assert_eq!(d.get("a"), Some(&Bson::Document(doc! {})));
        apply(&mut d, UpdateOp::Unset("nope.deeper".into())).unwrap();
        let err = apply(&mut d, UpdateOp::Set("x.y".into(), Bson::Int32(1))).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }));
        let err = apply(&mut d, UpdateOp::Inc("a".into(), Bson::Int32(1))).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }));
        d.insert("big", Bson::Int64(i64::MAX));
        assert!(apply(&mut d, UpdateOp::Inc("big".into(), Bson::Int32(1))).is_err());
    }

    #[test]
    fn push_and_add_to_set() {
        let mut d = doc! {};
        apply(&mut d, UpdateOp::Push("ids".into(), Bson::Int32(1))).unwrap();
        apply(&mut d, UpdateOp::Push("ids".into(), Bson::Int32(1))).unwrap();
        apply(&mut d, UpdateOp::AddToSet("ids".into(), Bson::Int32(1))).unwrap();
        apply(&mut d, UpdateOp::AddToSet("ids".into(), Bson::Int32(2))).unwrap();
        assert_eq!(d, doc! {"ids": [1, 1, 2]});
        d.insert("s", "text");
        assert!(apply(&mut d, UpdateOp::Push("s".into(), Bson::Int32(1))).is_err());
    }

    #[test]
    fn numeric_segments_index_arrays() {
        let mut d = doc! {"ids": [10, 20], "m": {"1": 1}};
        apply(&mut d, UpdateOp::Set("ids.0".into(), Bson::Int32(1))).unwrap();
        apply(&mut d, UpdateOp::Set("ids.4".into(), Bson::Int32(5))).unwrap();
        apply(&mut d, UpdateOp::Inc("ids.1".into(), Bson::Int64(1))).unwrap();
        apply(&mut d, UpdateOp::Unset("ids.0".into())).unwrap();
        apply(&mut d, UpdateOp::Unset("ids.9".into())).unwrap();
        apply(&mut d, UpdateOp::Set("m.0".into(), Bson::Int32(0))).unwrap();
        apply(&mut d, UpdateOp::Set("ids.6.k".into(), Bson::Int32(1))).unwrap();
        assert_eq!(
            d,
            doc! {"ids": [null, 21_i64, null, null, 5, null, {"k": 1}], "m": {"1": 1, "0": 0}}
        );
        assert_eq!(get_path(&d, "ids.6.k"), Some(&Bson::Int32(1)));
        assert_eq!(get_path(&d, "ids.x"), None);
        for bad in ["ids.x", "ids.2.k", "ids.4.k", "m.1.k"] {
            let err = apply(&mut d, UpdateOp::Set(bad.into(), Bson::Int32(1))).unwrap_err();
            assert!(matches!(err, Error::TypeMismatch { .. }), "{bad}");
        }
        // `$unset` ignores paths that do not exist.
        apply(&mut d, UpdateOp::Unset("ids.x".into())).unwrap();
        apply(&mut d, UpdateOp::Unset("m.1.k".into())).unwrap();
        // Nested arrays.
        let mut d = doc! {"a": [[1]]};
        apply(&mut d, UpdateOp::Push("a.0".into(), Bson::Int32(2))).unwrap();
        apply(&mut d, UpdateOp::Push("a.2".into(), Bson::Int32(3))).unwrap();
        assert_eq!(d, doc! {"a": [[1, 2], null, [3]]});
        // Padding is bounded.
        let err = apply(&mut d, UpdateOp::Set("a.2000000".into(), Bson::Null)).unwrap_err();
        assert!(matches!(err, Error::Store(_)));
        // A missing path is created as documents, numeric segments included.
        let mut d = doc! {};
        apply(&mut d, UpdateOp::Set("n.0.y".into(), Bson::Int32(1))).unwrap();
        assert_eq!(d, doc! {"n": {"0": {"y": 1}}});
    }

    #[test]
    fn fields_are_created_in_mongodb_order() {
        let mut d = doc! {"z": 1};
        let ops = [
            UpdateOp::Set("b".into(), Bson::Int32(1)),
            UpdateOp::Inc("a.y".into(), Bson::Int32(1)),
            UpdateOp::Push("a.x".into(), Bson::Int32(1)),
            UpdateOp::Set("n.10".into(), Bson::Int32(1)),
            UpdateOp::Set("n.9".into(), Bson::Int32(1)),
            UpdateOp::Set("n.09".into(), Bson::Int32(1)),
            UpdateOp::Set("z".into(), Bson::Int32(2)),
        ];
        apply_update(&mut d, &ops).unwrap();
        let keys = |d: &Document| d.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&d), ["z", "a", "b", "n"]);
        assert_eq!(keys(d.get_document("a").unwrap()), ["x", "y"]);
        assert_eq!(keys(d.get_document("n").unwrap()), ["09", "9", "10"]);
    }

    #[test]
    fn inc_types_and_refusals() {
        let mut d = doc! {"i": 1, "s": "x", "z": null};
        apply(&mut d, UpdateOp::Inc("i".into(), Bson::Int64(1))).unwrap();
        assert_eq!(d.get("i"), Some(&Bson::Int64(2)));
        apply(&mut d, UpdateOp::Inc("n".into(), Bson::Double(-0.0))).unwrap();
        assert!(matches!(d.get("n"), Some(Bson::Double(x)) if x.is_sign_negative()));
        for field in ["s", "z"] {
            let err = apply(&mut d, UpdateOp::Inc(field.into(), Bson::Int32(1))).unwrap_err();
            assert!(matches!(err, Error::TypeMismatch { .. }), "{field}");
        }
        // A non-numeric increment is refused even on a missing field.
        let err = apply(&mut d, UpdateOp::Inc("new".into(), Bson::from("1"))).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }));
        assert!(d.get("new").is_none());
        // Repeats are merged first, as the Mongo store sends them: 1 - 1 is 0, no overflow.
        let mut d = doc! {"i": i32::MAX};
        let ops = [
            UpdateOp::Inc("i".into(), Bson::Int32(1)),
            UpdateOp::Inc("i".into(), Bson::Int32(-1)),
        ];
        apply_update(&mut d, &ops).unwrap();
        assert_eq!(d.get("i"), Some(&Bson::Int32(i32::MAX)));
        // Conflicting operators are refused.
        let ops = [
            UpdateOp::Set("i".into(), Bson::Int32(1)),
            UpdateOp::Unset("i".into()),
        ];
        assert!(matches!(
            apply_update(&mut d, &ops),
            Err(Error::ConflictingOperators { .. })
        ));
    }

    #[test]
    fn bson_equality() {
        let dec = |s: &str| Bson::Decimal128(s.parse().unwrap());
        let equal = [
            (Bson::Int32(1), Bson::Int64(1)),
            (Bson::Int32(1), Bson::Double(1.0)),
            (Bson::Int64(1 << 62), Bson::Double((1_u64 << 62) as f64)),
            (Bson::Double(0.0), Bson::Double(-0.0)),
            (Bson::Double(f64::NAN), Bson::Double(f64::NAN)),
            (dec("1.00"), Bson::Int32(1)),
            (dec("0.5"), Bson::Double(0.5)),
            (dec("-0"), Bson::Int64(0)),
            (dec("NaN"), Bson::Double(f64::NAN)),
            (dec("1E+2"), dec("100")),
            (Bson::String("a".into()), Bson::Symbol("a".into())),
            (
                Bson::Document(doc! {"k": 1, "j": [2]}),
                Bson::Document(doc! {"k": 1.0, "j": [2_i64]}),
            ),
            (Bson::Array(vec![]), Bson::Array(vec![])),
            (Bson::Null, Bson::Null),
        ];
        for (a, b) in &equal {
            assert!(bson_eq(a, b), "{a:?} == {b:?}");
            assert!(bson_eq(b, a), "{b:?} == {a:?}");
        }
        let different = [
            (Bson::Int64(i64::MAX), Bson::Double(i64::MAX as f64)),
            (Bson::Int32(1), Bson::String("1".into())),
            (Bson::Int32(1), Bson::Boolean(true)),
            (Bson::Null, Bson::Undefined),
            (dec("0.1"), Bson::Double(0.1)),
            (
                Bson::Document(doc! {"k": 1, "j": 2}),
                Bson::Document(doc! {"j": 2, "k": 1}),
            ),
            (
                Bson::Array(vec![Bson::Int32(1)]),
                Bson::Array(vec![Bson::Int32(1), Bson::Int32(1)]),
            ),
            (Bson::Double(f64::NAN), Bson::Double(0.0)),
        ];
        for (a, b) in &different {
            assert!(!bson_eq(a, b), "{a:?} != {b:?}");
            assert!(!bson_eq(b, a), "{b:?} != {a:?}");
        }
    }
}
