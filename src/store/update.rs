//! Update semantics shared by every store: MongoDB's `$inc` arithmetic, its rule against
//! conflicting operators in one update, how repeats of one operator on one field become one
//! operator ([`merge`]), and the counter rule of `inc`. The size rule is in `size.rs`.
//!
//! How MongoDB then applies the operators to a document is the update interpreter, in
//! `interpreter.rs`.

use bson::Bson;

use super::UpdateOp;
use crate::error::{Error, Result};

/// Refuses what MongoDB refuses in one update (`ConflictingUpdateOperators`): two different
/// operators on one field, or operators on a field and on its parent or child. Repeats of
/// one operator on one field are allowed: both stores merge them into one operator (the
/// last `set` wins, `inc`s add up, pushed values are appended in order). Called before any
/// store sees the operators, so both stores agree.
pub fn check_ops(ops: &[UpdateOp]) -> Result<()> {
    for (i, a) in ops.iter().enumerate() {
        for b in &ops[..i] {
            let (fa, fb) = (a.field(), b.field());
            let clash = if fa == fb {
                a.operator() != b.operator()
            } else {
                overlaps(fa, fb)
            };
            if clash {
                return Err(conflict(fa));
            }
        }
    }
    Ok(())
}

/// The error for conflicting operators on `field`.
pub(crate) fn conflict(field: &str) -> Error {
    Error::ConflictingOperators {
        field: field.to_owned(),
    }
}

/// Whether two paths are the same field or one is a parent of the other.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    let prefix = |short: &str, long: &str| {
        long.starts_with(short) && long.as_bytes().get(short.len()) == Some(&b'.')
    };
    a == b || prefix(a, b) || prefix(b, a)
}

/// What one field receives in an update, after [`merge`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldUpdate {
    Set(Bson),
    Unset,
    Inc(Bson),
    Push(Vec<Bson>),
    AddToSet(Vec<Bson>),
}

/// One operator per field, in the order of first mention: repeats of one operator on one
/// field are merged (the last `set` wins, `inc`s add up with [`add_numbers`], `push` and
/// `add_to_set` values are appended in order). This is the update document the Mongo store
/// sends (one entry per field, `$each` for arrays), so the memory store applies exactly
/// what MongoDB receives. Two different operators on one field are
/// [`Error::ConflictingOperators`] (call [`check_ops`] first for the parent/child rule).
pub(crate) fn merge(ops: &[UpdateOp]) -> Result<Vec<(&str, FieldUpdate)>> {
    let mut fields: Vec<(&str, FieldUpdate)> = Vec::with_capacity(ops.len());
    for op in ops {
        let path = op.field();
        let same = fields.iter_mut().find(|(p, _)| *p == path);
        match (same, op) {
            (None, _) => fields.push((path, FieldUpdate::from_op(op))),
            (Some((_, FieldUpdate::Set(old))), UpdateOp::Set(_, v)) => *old = v.clone(),
            (Some((_, FieldUpdate::Unset)), UpdateOp::Unset(_)) => {}
            (Some((_, FieldUpdate::Inc(old))), UpdateOp::Inc(_, by)) => {
                *old = add_numbers(old, by).ok_or_else(|| Error::TypeMismatch {
                    field: path.to_owned(),
                    reason: "inc needs numbers on both sides and must not overflow",
                })?;
            }
            (Some((_, FieldUpdate::Push(items))), UpdateOp::Push(_, v))
            | (Some((_, FieldUpdate::AddToSet(items))), UpdateOp::AddToSet(_, v)) => {
                items.push(v.clone())
            }
            (Some((_, FieldUpdate::Push(items))), UpdateOp::PushAll(_, vs))
            | (Some((_, FieldUpdate::AddToSet(items))), UpdateOp::AddAllToSet(_, vs)) => {
                items.extend(vs.iter().cloned())
            }
            (Some(_), _) => return Err(conflict(path)),
        }
    }
    Ok(fields)
}

impl FieldUpdate {
    fn from_op(op: &UpdateOp) -> Self {
        match op {
            UpdateOp::Set(_, v) => FieldUpdate::Set(v.clone()),
            UpdateOp::Unset(_) => FieldUpdate::Unset,
            UpdateOp::Inc(_, by) => FieldUpdate::Inc(by.clone()),
            UpdateOp::Push(_, v) => FieldUpdate::Push(vec![v.clone()]),
            UpdateOp::AddToSet(_, v) => FieldUpdate::AddToSet(vec![v.clone()]),
            UpdateOp::PushAll(_, vs) => FieldUpdate::Push(vs.clone()),
            UpdateOp::AddAllToSet(_, vs) => FieldUpdate::AddToSet(vs.clone()),
        }
    }
}

/// The counter rule of [`SlateStore::update_slate`](super::SlateStore::update_slate) (what
/// [`RawSlate::inc`](crate::RawSlate::inc) promises): the update increments `counter`, by an
/// integer in total. Checked before any store applies or sends the update, so a counter
/// that could end up a double is refused with nothing written.
pub(crate) fn check_counter(fields: &[(&str, FieldUpdate)], counter: &str) -> Result<()> {
    match fields.iter().find(|(path, _)| *path == counter) {
        Some((_, FieldUpdate::Inc(Bson::Int32(_) | Bson::Int64(_)))) => Ok(()),
        _ => Err(Error::TypeMismatch {
            field: counter.to_owned(),
            reason: "a counter must be incremented by an integer",
        }),
    }
}

/// MongoDB's `$inc` arithmetic: int32 + int32 stays int32 unless it overflows (then int64),
/// anything with a double is a double, int64 overflow is refused (`None`), and so is a
/// non-number.
pub(crate) fn add_numbers(a: &Bson, b: &Bson) -> Option<Bson> {
    let int = |v: &Bson| match v {
        Bson::Int32(x) => Some(i64::from(*x)),
        Bson::Int64(x) => Some(*x),
        _ => None,
    };
    Some(match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => match x.checked_add(*y) {
            Some(v) => Bson::Int32(v),
            None => Bson::Int64(i64::from(*x) + i64::from(*y)),
        },
        (Bson::Double(x), Bson::Double(y)) => Bson::Double(x + y),
        (Bson::Double(x), other) | (other, Bson::Double(x)) => Bson::Double(x + int(other)? as f64),
        (x, y) => Bson::Int64(int(x)?.checked_add(int(y)?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(f: &str) -> UpdateOp {
        UpdateOp::Set(f.into(), Bson::Int32(1))
    }
    fn inc(f: &str) -> UpdateOp {
        UpdateOp::Inc(f.into(), Bson::Int32(1))
    }

    #[test]
    fn conflicts() {
        assert!(check_ops(&[set("a"), inc("b"), inc("b"), set("a")]).is_ok());
        assert!(check_ops(&[set("a"), inc("a")]).is_err());
        assert!(check_ops(&[set("a"), set("a.b")]).is_err());
        assert!(check_ops(&[inc("a.b"), inc("a")]).is_err());
        assert!(check_ops(&[set("ab"), set("a")]).is_ok());
        assert!(!overlaps("ab", "a"));
        assert!(overlaps("a.b", "a"));
    }

    #[test]
    fn repeats_are_merged() {
        let ops = [
            UpdateOp::Inc("a".into(), Bson::Int32(i32::MAX)),
            UpdateOp::Push("p".into(), Bson::Int32(1)),
            UpdateOp::Inc("a".into(), Bson::Int32(1)),
            UpdateOp::Push("p".into(), Bson::Int32(2)),
            UpdateOp::Set("s".into(), Bson::Int32(1)),
            UpdateOp::Set("s".into(), Bson::Int32(2)),
            UpdateOp::Unset("u".into()),
            UpdateOp::Unset("u".into()),
        ];
        assert_eq!(
            merge(&ops).unwrap(),
            vec![
                ("a", FieldUpdate::Inc(Bson::Int64(i32::MAX as i64 + 1))),
                ("p", FieldUpdate::Push(vec![Bson::Int32(1), Bson::Int32(2)])),
                ("s", FieldUpdate::Set(Bson::Int32(2))),
                ("u", FieldUpdate::Unset),
            ]
        );
        let overflow = [
            UpdateOp::Inc("b".into(), Bson::Int64(i64::MAX)),
            UpdateOp::Inc("b".into(), Bson::Int32(1)),
        ];
        assert!(matches!(merge(&overflow), Err(Error::TypeMismatch { .. })));
        assert!(matches!(
            merge(&[set("x"), inc("x")]),
            Err(Error::ConflictingOperators { .. })
        ));
    }

    #[test]
    fn inc_arithmetic() {
        assert_eq!(
            add_numbers(&Bson::Int32(i32::MAX), &Bson::Int32(1)),
            Some(Bson::Int64(i32::MAX as i64 + 1))
        );
        assert_eq!(
            add_numbers(&Bson::Int32(1), &Bson::Double(0.5)),
            Some(Bson::Double(1.5))
        );
        assert_eq!(add_numbers(&Bson::Int64(i64::MAX), &Bson::Int32(1)), None);
        assert_eq!(
            add_numbers(&Bson::String("x".into()), &Bson::Int32(1)),
            None
        );
    }
}
