//! Update semantics shared by every store: MongoDB's `$inc` arithmetic and its rule against
//! conflicting operators in one update.

use std::mem::discriminant;

use bson::Bson;

use super::UpdateOp;
use crate::error::{Error, Result};

/// Refuses what MongoDB refuses in one update (`ConflictingUpdateOperators`): two different
/// operators on one field, or operators on a field and on its parent or child. Repeats of
/// one operator on one field are allowed (applied in order). Called before any store sees
/// the operators, so both stores agree.
pub fn check_ops(ops: &[UpdateOp]) -> Result<()> {
    for (i, a) in ops.iter().enumerate() {
        for b in &ops[..i] {
            let (fa, fb) = (a.field(), b.field());
            let clash = if fa == fb {
                discriminant(a) != discriminant(b)
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
