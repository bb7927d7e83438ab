//! Scalar expressions: binding to a schema (with type checking) and evaluation per row.
//!
//! Binding happens once per operator, before any row is read, as in Kusto's semantic pass: a
//! column the rows do not have, or `Computer == 5`, is an error with the line and column of the
//! name or operator even when the table is empty. Binding also decides every result type, so
//! that `extend`/`project` columns are typed without looking at data. Evaluation is then total:
//! any row gives a value (null where Kusto gives null: arithmetic on null, a missing property,
//! an integer division by zero), never an error and never a panic.
//!
//! The scalar functions (Kusto names; aliases after a slash):
//! `ago`, `now`, `strlen`, `tolower`, `toupper`, `strcat`, `substring`, `split`, `replace_string`, `indexof`, `isempty`, `isnotempty`,
//! `isnull`, `isnotnull`, `tostring`, `toint`/`tolong`, `toreal`/`todouble`, `todatetime`,
//! `totimespan`, `tobool`, `bin`/`floor`, `round`, `abs`, `sqrt`, `pow`, `iff`/`iif`, `case`,
//! `not`, `coalesce`, `parse_json`/`todynamic`, `array_length`, `startofday`.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::ast::{BinOp, Expr, ExprKind, Pos, StrOp};
use crate::time::{parse_datetime, MS_PER_DAY};
use crate::value::{Column, ColumnType, Value};
use crate::ExecError;

/// The most arguments `strcat`, `coalesce` and `case` take (Kusto's own limit for strcat).
const CALL_ARGS_MAX: usize = 64;

/// A scalar function, resolved by name at bind time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Ago,
    Now,
    StrLen,
    ToLower,
    ToUpper,
    StrCat,
    Substring,
    Split,
    ReplaceString,
    IndexOf,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    ToString,
    ToLong,
    ToReal,
    ToDateTime,
    ToTimeSpan,
    ToBool,
    Bin,
    Round,
    Abs,
    Sqrt,
    Pow,
    Iff,
    Case,
    Not,
    Coalesce,
    ParseJson,
    ArrayLength,
    StartOfDay,
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "ago" => Func::Ago,
            "now" => Func::Now,
            "strlen" => Func::StrLen,
            "tolower" => Func::ToLower,
            "toupper" => Func::ToUpper,
            "strcat" => Func::StrCat,
            "substring" => Func::Substring,
            "split" => Func::Split,
            "replace_string" => Func::ReplaceString,
            "indexof" => Func::IndexOf,
            "isempty" => Func::IsEmpty,
            "isnotempty" => Func::IsNotEmpty,
            "isnull" => Func::IsNull,
            "isnotnull" => Func::IsNotNull,
            "tostring" => Func::ToString,
            "toint" | "tolong" => Func::ToLong,
            "toreal" | "todouble" => Func::ToReal,
            "todatetime" => Func::ToDateTime,
            "totimespan" => Func::ToTimeSpan,
            "tobool" | "toboolean" => Func::ToBool,
            "bin" | "floor" => Func::Bin,
            "round" => Func::Round,
            "abs" => Func::Abs,
            "sqrt" => Func::Sqrt,
            "pow" => Func::Pow,
            "iff" | "iif" => Func::Iff,
            "case" => Func::Case,
            "not" => Func::Not,
            "coalesce" => Func::Coalesce,
            "parse_json" | "todynamic" => Func::ParseJson,
            "array_length" => Func::ArrayLength,
            "startofday" => Func::StartOfDay,
            _ => return None,
        })
    }

    /// The fewest and most arguments.
    fn arity(self) -> (usize, usize) {
        match self {
            Func::Now => (0, 1),
            Func::Ago
            | Func::StrLen
            | Func::ToLower
            | Func::ToUpper
            | Func::IsEmpty
            | Func::IsNotEmpty
            | Func::IsNull
            | Func::IsNotNull
            | Func::ToString
            | Func::ToLong
            | Func::ToReal
            | Func::ToDateTime
            | Func::ToTimeSpan
            | Func::ToBool
            | Func::Abs
            | Func::Sqrt
            | Func::Not
            | Func::ParseJson
            | Func::ArrayLength
            | Func::StartOfDay => (1, 1),
            Func::Round => (1, 2),
            Func::Substring | Func::Split => (2, 3),
            Func::IndexOf | Func::Bin | Func::Pow => (2, 2),
            Func::ReplaceString | Func::Iff => (3, 3),
            Func::StrCat | Func::Coalesce => (1, CALL_ARGS_MAX),
            Func::Case => (3, CALL_ARGS_MAX),
        }
    }
}

/// An expression bound to a schema: columns resolved to indexes, functions to [`Func`], and
/// its result type known.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub kind: BKind,
    pub ty: ColumnType,
}

#[derive(Clone, Debug)]
pub(crate) enum BKind {
    Const(Value),
    Col(usize),
    Neg(Box<Bound>),
    Arith(BinOp, Box<Bound>, Box<Bound>),
    Cmp(BinOp, Box<Bound>, Box<Bound>),
    Str(StrOp, bool, Box<Bound>, Box<Bound>),
    And(Vec<Bound>),
    Or(Vec<Bound>),
    In {
        lhs: Box<Bound>,
        list: Vec<Bound>,
        negated: bool,
        case_insensitive: bool,
    },
    Between {
        lhs: Box<Bound>,
        low: Box<Bound>,
        high: Box<Bound>,
        negated: bool,
    },
    Call(Func, Vec<Bound>),
    Member(Box<Bound>, String),
    Index(Box<Bound>, Box<Bound>),
}

pub(crate) fn type_error<T>(pos: Pos, message: String) -> Result<T, ExecError> {
    Err(ExecError::Type {
        message,
        line: pos.line,
        column_no: pos.column,
    })
}

fn is_numeric(t: ColumnType) -> bool {
    matches!(t, ColumnType::Long | ColumnType::Real)
}

/// Whether values of the two types may be compared (`==`, `<`, `in`, `between`).
fn comparable(a: ColumnType, b: ColumnType) -> bool {
    a == b
        || (is_numeric(a) && is_numeric(b))
        || a == ColumnType::Dynamic
        || b == ColumnType::Dynamic
}

/// The type a value of type `b` must also fit for `iff`/`case`/`coalesce` branches.
fn unify(a: ColumnType, b: ColumnType) -> Option<ColumnType> {
    if a == b {
        Some(a)
    } else if is_numeric(a) && is_numeric(b) {
        Some(ColumnType::Real)
    } else if a == ColumnType::Dynamic || b == ColumnType::Dynamic {
        Some(ColumnType::Dynamic)
    } else {
        None
    }
}

fn expect_bool(b: &Bound, pos: Pos, what: &str) -> Result<(), ExecError> {
    if matches!(b.ty, ColumnType::Bool | ColumnType::Dynamic) {
        Ok(())
    } else {
        type_error(
            pos,
            format!("expected a bool {what}, found {}", b.ty.name()),
        )
    }
}

/// Binds `expr` to the columns `schema`.
pub(crate) fn bind(expr: &Expr, schema: &[Column]) -> Result<Bound, ExecError> {
    let pos = expr.pos;
    let boxed = |e: &Expr| bind(e, schema).map(Box::new);
    let (kind, ty) = match &expr.kind {
        ExprKind::Literal(v) => (
            BKind::Const(v.clone()),
            v.column_type().unwrap_or(ColumnType::Dynamic),
        ),
        ExprKind::TypedNull(t) => (BKind::Const(Value::Null), *t),
        ExprKind::Column(name) => {
            let Some(i) = schema.iter().position(|c| &c.name == name) else {
                return Err(ExecError::UnknownColumn {
                    column: name.clone(),
                    line: pos.line,
                    column_no: pos.column,
                });
            };
            (BKind::Col(i), schema[i].column_type)
        }
        ExprKind::Neg(inner) => {
            let b = boxed(inner)?;
            let ty = match b.ty {
                ColumnType::Long | ColumnType::Real | ColumnType::TimeSpan => b.ty,
                ColumnType::Dynamic => ColumnType::Real,
                t => return type_error(pos, format!("cannot negate a {}", t.name())),
            };
            (BKind::Neg(b), ty)
        }
        ExprKind::Binary(op, l, r) => {
            let (l, r) = (boxed(l)?, boxed(r)?);
            bind_binary(*op, l, r, pos)?
        }
        ExprKind::And(items) | ExprKind::Or(items) => {
            let word = if matches!(expr.kind, ExprKind::And(_)) {
                "and"
            } else {
                "or"
            };
            let mut bound = Vec::with_capacity(items.len());
            for item in items {
                let b = bind(item, schema)?;
                expect_bool(&b, item.pos, &format!("operand of '{word}'"))?;
                bound.push(b);
            }
            let kind = if word == "and" {
                BKind::And(bound)
            } else {
                BKind::Or(bound)
            };
            (kind, ColumnType::Bool)
        }
        ExprKind::In {
            lhs,
            list,
            negated,
            case_insensitive,
        } => {
            let lhs = boxed(lhs)?;
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                let b = bind(item, schema)?;
                if !comparable(lhs.ty, b.ty) {
                    return type_error(
                        item.pos,
                        format!(
                            "cannot compare {} with {} in an 'in' list",
                            lhs.ty.name(),
                            b.ty.name()
                        ),
                    );
                }
                items.push(b);
            }
            (
                BKind::In {
                    lhs,
                    list: items,
                    negated: *negated,
                    case_insensitive: *case_insensitive,
                },
                ColumnType::Bool,
            )
        }
        ExprKind::Between {
            lhs,
            low,
            high,
            negated,
        } => {
            let lhs = boxed(lhs)?;
            let low = boxed(low)?;
            let mut high = boxed(high)?;
            if !matches!(
                lhs.ty,
                ColumnType::Long
                    | ColumnType::Real
                    | ColumnType::DateTime
                    | ColumnType::TimeSpan
                    | ColumnType::Dynamic
            ) {
                return type_error(
                    pos,
                    format!(
                        "'between' needs a number, datetime or timespan, found {}",
                        lhs.ty.name()
                    ),
                );
            }
            // `datetime(x) .. 1d` means from x to x + 1d.
            if low.ty == ColumnType::DateTime && high.ty == ColumnType::TimeSpan {
                high = Box::new(Bound {
                    kind: BKind::Arith(BinOp::Add, low.clone(), high),
                    ty: ColumnType::DateTime,
                });
            }
            for b in [&low, &high] {
                if !comparable(lhs.ty, b.ty) {
                    return type_error(
                        pos,
                        format!(
                            "cannot compare {} with {} in 'between'",
                            lhs.ty.name(),
                            b.ty.name()
                        ),
                    );
                }
            }
            (
                BKind::Between {
                    lhs,
                    low,
                    high,
                    negated: *negated,
                },
                ColumnType::Bool,
            )
        }
        ExprKind::Call(name, args) => bind_call(name, args, schema, pos)?,
        ExprKind::Member(inner, field) => {
            let b = boxed(inner)?;
            if b.ty != ColumnType::Dynamic {
                return type_error(
                    pos,
                    format!(
                        "expected a dynamic value before '.{}', found {}",
                        crate::lexer::clip(field),
                        b.ty.name()
                    ),
                );
            }
            (BKind::Member(b, field.clone()), ColumnType::Dynamic)
        }
        ExprKind::Index(inner, index) => {
            let b = boxed(inner)?;
            let i = boxed(index)?;
            if b.ty != ColumnType::Dynamic {
                return type_error(
                    pos,
                    format!(
                        "expected a dynamic value before '[...]', found {}",
                        b.ty.name()
                    ),
                );
            }
            if !matches!(
                i.ty,
                ColumnType::String | ColumnType::Long | ColumnType::Dynamic
            ) {
                return type_error(
                    pos,
                    format!("expected a string or long index, found {}", i.ty.name()),
                );
            }
            (BKind::Index(b, i), ColumnType::Dynamic)
        }
    };
    Ok(Bound { kind, ty })
}

fn bind_binary(
    op: BinOp,
    l: Box<Bound>,
    r: Box<Bound>,
    pos: Pos,
) -> Result<(BKind, ColumnType), ExecError> {
    use ColumnType as T;
    let mismatch = |verb: &str| {
        type_error(
            pos,
            format!(
                "cannot {verb} {} and {} with '{}'",
                l.ty.name(),
                r.ty.name(),
                op.symbol()
            ),
        )
    };
    match op {
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
            let ty = match (op, l.ty, r.ty) {
                (_, T::Long, T::Long) => T::Long,
                (_, a, b)
                    if (is_numeric(a) || a == T::Dynamic) && (is_numeric(b) || b == T::Dynamic) =>
                {
                    T::Real
                }
                (BinOp::Add | BinOp::Sub, T::DateTime, T::TimeSpan) => T::DateTime,
                (BinOp::Add, T::TimeSpan, T::DateTime) => T::DateTime,
                (BinOp::Sub, T::DateTime, T::DateTime) => T::TimeSpan,
                (BinOp::Add | BinOp::Sub | BinOp::Mod, T::TimeSpan, T::TimeSpan) => T::TimeSpan,
                (BinOp::Div, T::TimeSpan, T::TimeSpan) => T::Real,
                (BinOp::Mul | BinOp::Div, T::TimeSpan, T::Long | T::Real) => T::TimeSpan,
                (BinOp::Mul, T::Long | T::Real, T::TimeSpan) => T::TimeSpan,
                _ => return mismatch("combine"),
            };
            Ok((BKind::Arith(op, l, r), ty))
        }
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            if !comparable(l.ty, r.ty) {
                return mismatch("compare");
            }
            Ok((BKind::Cmp(op, l, r), T::Bool))
        }
        BinOp::EqCi(_) => {
            let ok = |t: T| matches!(t, T::String | T::Dynamic);
            if !ok(l.ty) || !ok(r.ty) {
                return mismatch("compare");
            }
            Ok((BKind::Cmp(op, l, r), T::Bool))
        }
        BinOp::Str(s, negated) => Ok((BKind::Str(s, negated, l, r), T::Bool)),
    }
}

fn bind_call(
    name: &str,
    args: &[Expr],
    schema: &[Column],
    pos: Pos,
) -> Result<(BKind, ColumnType), ExecError> {
    use ColumnType as T;
    let Some(func) = Func::from_name(name) else {
        return type_error(
            pos,
            format!("unknown function '{}'", crate::lexer::clip(name)),
        );
    };
    let (min, max) = func.arity();
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("{min}")
        } else if max == CALL_ARGS_MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return type_error(
            pos,
            format!("{name}() expects {want} argument(s), found {}", args.len()),
        );
    }
    let bound: Vec<Bound> = args
        .iter()
        .map(|a| bind(a, schema))
        .collect::<Result<_, _>>()?;
    let ty_of = |i: usize| bound[i].ty;
    let want = |i: usize, ok: &[T], what: &str| -> Result<(), ExecError> {
        if ok.contains(&bound[i].ty) || bound[i].ty == T::Dynamic {
            Ok(())
        } else {
            type_error(
                args[i].pos,
                format!(
                    "{name}() expects {what} as argument {}, found {}",
                    i + 1,
                    bound[i].ty.name()
                ),
            )
        }
    };
    let ty = match func {
        Func::Ago => {
            want(0, &[T::TimeSpan], "a timespan")?;
            T::DateTime
        }
        Func::Now => {
            if !bound.is_empty() {
                want(0, &[T::TimeSpan], "a timespan")?;
            }
            T::DateTime
        }
        Func::StrLen | Func::IndexOf => T::Long,
        Func::ToLower | Func::ToUpper | Func::StrCat | Func::ReplaceString | Func::ToString => {
            T::String
        }
        Func::Substring => {
            want(1, &[T::Long], "a long")?;
            if bound.len() == 3 {
                want(2, &[T::Long], "a long")?;
            }
            T::String
        }
        Func::Split => {
            if bound.len() == 3 {
                want(2, &[T::Long], "a long")?;
            }
            T::Dynamic
        }
        Func::IsEmpty | Func::IsNotEmpty | Func::IsNull | Func::IsNotNull => T::Bool,
        Func::ToLong => T::Long,
        Func::ToReal => T::Real,
        Func::ToDateTime => T::DateTime,
        Func::ToTimeSpan => T::TimeSpan,
        Func::ToBool => T::Bool,
        Func::Bin => {
            want(
                0,
                &[T::Long, T::Real, T::DateTime, T::TimeSpan],
                "a number, datetime or timespan",
            )?;
            match ty_of(0) {
                T::DateTime | T::TimeSpan => {
                    want(1, &[T::TimeSpan], "a timespan bin size")?;
                    ty_of(0)
                }
                T::Long if ty_of(1) == T::Long => T::Long,
                _ => {
                    want(1, &[T::Long, T::Real], "a number bin size")?;
                    T::Real
                }
            }
        }
        Func::Round => {
            want(0, &[T::Long, T::Real], "a number")?;
            if bound.len() == 2 {
                want(1, &[T::Long], "a long")?;
            }
            if ty_of(0) == T::Long {
                T::Long
            } else {
                T::Real
            }
        }
        Func::Abs => {
            want(0, &[T::Long, T::Real, T::TimeSpan], "a number or timespan")?;
            if ty_of(0) == T::Dynamic {
                T::Real
            } else {
                ty_of(0)
            }
        }
        Func::Sqrt => {
            want(0, &[T::Long, T::Real], "a number")?;
            T::Real
        }
        Func::Pow => {
            want(0, &[T::Long, T::Real], "a number")?;
            want(1, &[T::Long, T::Real], "a number")?;
            T::Real
        }
        Func::Not => {
            want(0, &[T::Bool], "a bool")?;
            T::Bool
        }
        Func::Iff => {
            want(0, &[T::Bool], "a bool")?;
            unify(ty_of(1), ty_of(2)).ok_or_else(|| ExecError::Type {
                message: format!(
                    "iff() branches differ in type: {} and {}",
                    ty_of(1).name(),
                    ty_of(2).name()
                ),
                line: pos.line,
                column_no: pos.column,
            })?
        }
        Func::Case => {
            if bound.len().is_multiple_of(2) {
                return type_error(
                    pos,
                    "case() expects predicate/value pairs and a final else value".into(),
                );
            }
            let mut ty = ty_of(bound.len() - 1);
            for i in (0..bound.len() - 1).step_by(2) {
                want(i, &[T::Bool], "a bool")?;
                ty = unify(ty, ty_of(i + 1)).ok_or_else(|| ExecError::Type {
                    message: format!(
                        "case() values differ in type: {} and {}",
                        ty.name(),
                        ty_of(i + 1).name()
                    ),
                    line: pos.line,
                    column_no: pos.column,
                })?;
            }
            ty
        }
        Func::Coalesce => {
            let mut ty = ty_of(0);
            for b in &bound[1..] {
                ty = unify(ty, b.ty).ok_or_else(|| ExecError::Type {
                    message: "coalesce() arguments differ in type".into(),
                    line: pos.line,
                    column_no: pos.column,
                })?;
            }
            ty
        }
        Func::ParseJson => T::Dynamic,
        Func::ArrayLength => {
            want(0, &[], "a dynamic array")?;
            T::Long
        }
        Func::StartOfDay => {
            want(0, &[T::DateTime], "a datetime")?;
            T::DateTime
        }
    };
    Ok((BKind::Call(func, bound), ty))
}

/// A dynamic scalar as the plain value it holds (a JSON number as long or real, a string as a
/// string); arrays and objects stay dynamic.
pub(crate) fn scalar(v: &Value) -> Value {
    use serde_json::Value as J;
    match v {
        Value::Dynamic(J::Null) => Value::Null,
        Value::Dynamic(J::Bool(b)) => Value::Bool(*b),
        Value::Dynamic(J::Number(n)) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => n.as_f64().map_or(Value::Null, Value::Real),
        },
        Value::Dynamic(J::String(s)) => Value::String(s.clone()),
        other => other.clone(),
    }
}

/// [`scalar`] without a copy when the value is not dynamic (the common case in a scan).
fn scalar_ref(v: &Value) -> Cow<'_, Value> {
    match v {
        Value::Dynamic(_) => Cow::Owned(scalar(v)),
        other => Cow::Borrowed(other),
    }
}

/// The text of a value for the string operators, borrowed when it already is a string.
fn text_of(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) | Value::Dynamic(serde_json::Value::String(s)) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_kusto_string()),
    }
}

fn as_f64(v: &Value) -> Option<f64> {
    match scalar(v) {
        Value::Long(n) => Some(n as f64),
        Value::Real(x) => Some(x),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match scalar(v) {
        Value::Long(n) => Some(n),
        // Saturating float-to-int conversion is Rust's defined `as` behaviour.
        Value::Real(x) if x.is_finite() => Some(x.trunc() as i64),
        _ => None,
    }
}

/// Orders two values of comparable types; `None` when either is null or they do not compare.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (scalar_ref(a), scalar_ref(b));
    match (a.as_ref(), b.as_ref()) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Long(x), Value::Long(y)) => Some(x.cmp(y)),
        (x @ (Value::Long(_) | Value::Real(_)), y @ (Value::Long(_) | Value::Real(_))) => {
            Some(as_f64(x)?.total_cmp(&as_f64(y)?))
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) | (Value::TimeSpan(x), Value::TimeSpan(y)) => {
            Some(x.cmp(y))
        }
        (Value::String(s), Value::DateTime(y)) => parse_datetime(s).map(|x| x.cmp(y)),
        (Value::DateTime(x), Value::String(s)) => parse_datetime(s).map(|y| x.cmp(&y)),
        (Value::Dynamic(x), Value::Dynamic(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

/// `has`: `needle` occurs in `hay` as whole terms (terms are maximal runs of alphanumeric
/// characters, Kusto's definition), so `"North America" has "america"` but
/// `"KustoExplorer" has "Explorer"` is false.
fn has_term(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let starts_alnum = needle.chars().next().is_some_and(char::is_alphanumeric);
    let ends_alnum = needle
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    hay.match_indices(needle).any(|(i, m)| {
        let before_ok = !starts_alnum
            || !hay[..i]
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
        let after_ok = !ends_alnum
            || !hay[i + m.len()..]
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric);
        before_ok && after_ok
    })
}

/// `has` over ASCII text, case-insensitively, without allocating (the hot path of a scan).
fn has_term_ascii_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let starts_alnum = needle[0].is_ascii_alphanumeric();
    let ends_alnum = needle[needle.len() - 1].is_ascii_alphanumeric();
    hay.windows(needle.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(needle)
            && (!starts_alnum || i == 0 || !hay[i - 1].is_ascii_alphanumeric())
            && (!ends_alnum
                || hay
                    .get(i + needle.len())
                    .is_none_or(|c| !c.is_ascii_alphanumeric()))
    })
}

fn str_op(op: StrOp, hay: &str, needle: &str) -> bool {
    let (cs, f): (bool, fn(&str, &str) -> bool) = match op {
        StrOp::Contains { cs } => (cs, |h, n| h.contains(n)),
        StrOp::Has { cs } => (cs, has_term),
        StrOp::StartsWith { cs } => (cs, |h, n| h.starts_with(n)),
        StrOp::EndsWith { cs } => (cs, |h, n| h.ends_with(n)),
    };
    if cs {
        return f(hay, needle);
    }
    if hay.is_ascii() && needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return match op {
            StrOp::Contains { .. } => {
                n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
            }
            StrOp::Has { .. } => has_term_ascii_ci(h, n),
            StrOp::StartsWith { .. } => h.len() >= n.len() && h[..n.len()].eq_ignore_ascii_case(n),
            StrOp::EndsWith { .. } => {
                h.len() >= n.len() && h[h.len() - n.len()..].eq_ignore_ascii_case(n)
            }
        };
    }
    f(&hay.to_lowercase(), &needle.to_lowercase())
}

fn equal(a: &Value, b: &Value, case_insensitive: bool) -> Option<bool> {
    if case_insensitive {
        let (a, b) = (scalar_ref(a), scalar_ref(b));
        if let (Value::String(x), Value::String(y)) = (a.as_ref(), b.as_ref()) {
            if x.is_ascii() && y.is_ascii() {
                return Some(x.eq_ignore_ascii_case(y));
            }
            return Some(x.to_lowercase() == y.to_lowercase());
        }
    }
    compare(a, b).map(|o| o == Ordering::Equal)
}

/// Whether a comparison operator (`==`, `!=`, `<`, `<=`, `>`, `>=`) holds for operands in
/// order `o`.
fn ordering_holds(op: BinOp, o: Ordering) -> bool {
    match op {
        BinOp::Eq => o == Ordering::Equal,
        BinOp::Ne => o != Ordering::Equal,
        BinOp::Lt => o == Ordering::Less,
        BinOp::Le => o != Ordering::Greater,
        BinOp::Gt => o == Ordering::Greater,
        _ => o != Ordering::Less,
    }
}

fn truth(v: &Value) -> Option<bool> {
    match scalar(v) {
        Value::Bool(b) => Some(b),
        _ => None,
    }
}

fn bool_value(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

/// Rounds `x` down to a multiple of `size` (Kusto's `bin`); `None` for a size that is not
/// positive.
pub(crate) fn bin_i64(x: i64, size: i64) -> Option<i64> {
    if size > 0 {
        x.div_euclid(size).checked_mul(size)
    } else {
        None
    }
}

fn arith(op: BinOp, a: &Value, b: &Value, ty: ColumnType) -> Value {
    use Value as V;
    let (a, b) = (scalar(a), scalar(b));
    if matches!(a, V::Null) || matches!(b, V::Null) {
        return V::Null;
    }
    let int = |x: i64, y: i64| -> Option<i64> {
        match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div => x.checked_div(y),
            BinOp::Mod => x.checked_rem(y),
            _ => None,
        }
    };
    let real = |x: f64, y: f64| -> f64 {
        match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul => x * y,
            BinOp::Div => x / y,
            _ => x % y,
        }
    };
    let out = match (ty, &a, &b) {
        (ColumnType::Long, V::Long(x), V::Long(y)) => int(*x, *y).map(V::Long),
        (ColumnType::Real, _, _) => match (&a, &b) {
            (V::TimeSpan(x), V::TimeSpan(y)) => Some(V::Real(*x as f64 / *y as f64)),
            _ => Some(V::Real(real(
                as_f64(&a).unwrap_or(f64::NAN),
                as_f64(&b).unwrap_or(f64::NAN),
            ))),
        },
        (ColumnType::DateTime, V::DateTime(x), V::TimeSpan(y))
        | (ColumnType::DateTime, V::TimeSpan(y), V::DateTime(x)) => int(*x, *y).map(V::DateTime),
        (ColumnType::TimeSpan, V::DateTime(x), V::DateTime(y))
        | (ColumnType::TimeSpan, V::TimeSpan(x), V::TimeSpan(y)) => int(*x, *y).map(V::TimeSpan),
        (ColumnType::TimeSpan, V::TimeSpan(t), n) | (ColumnType::TimeSpan, n, V::TimeSpan(t)) => {
            let f = as_f64(n).unwrap_or(f64::NAN);
            let ms = real(*t as f64, f);
            let swapped = matches!(a, V::Long(_) | V::Real(_));
            let ms = if swapped { f * *t as f64 } else { ms };
            // Saturating float-to-int conversion; out-of-range products become null below.
            (ms.is_finite() && ms.abs() < i64::MAX as f64).then(|| V::TimeSpan(ms.round() as i64))
        }
        _ => None,
    };
    out.unwrap_or(V::Null)
}

/// Predicates split at their top-level `and`s (recursively), in order: a row is kept by all of
/// `preds` iff it is kept by all of the result (`and` holds iff every item holds).
pub(crate) fn conjuncts(preds: Vec<Bound>) -> Vec<Bound> {
    let mut out = Vec::with_capacity(preds.len());
    let mut stack: Vec<Bound> = preds.into_iter().rev().collect();
    while let Some(p) = stack.pop() {
        match p.kind {
            BKind::And(items) => stack.extend(items.into_iter().rev()),
            _ => out.push(p),
        }
    }
    out
}

impl Bound {
    /// When this predicate is exactly a range test of one datetime column against constants —
    /// `c between (a .. b)`, `c == a`, `c < a`, `c <= a`, `c > a`, `c >= a` (either way round),
    /// where `c` is a column of type datetime and `a`, `b` read no column and evaluate to
    /// datetimes at `now_ms` — the column's position and the inclusive range `(low, high)` of
    /// Unix ms it keeps (empty when `low > high`): for a row whose cell there holds
    /// `Value::DateTime(t)`, [`Bound::holds`] is `low <= t && t <= high` (its `between` and
    /// comparison shortcuts compare exactly those integers). `None` for any other shape; a
    /// cell of another kind (a null) must still be tested with [`Bound::holds`].
    pub(crate) fn datetime_range(&self, now_ms: i64) -> Option<(usize, i64, i64)> {
        const EMPTY: (i64, i64) = (i64::MAX, i64::MIN);
        let column = |b: &Bound| match b.kind {
            BKind::Col(at) if b.ty == ColumnType::DateTime => Some(at),
            _ => None,
        };
        let constant = |b: &Bound| {
            if !b.columns_read().is_empty() {
                return None;
            }
            match b.eval(&[], now_ms) {
                Value::DateTime(ms) => Some(ms),
                _ => None,
            }
        };
        match &self.kind {
            BKind::Between {
                lhs,
                low,
                high,
                negated: false,
            } => Some((column(lhs)?, constant(low)?, constant(high)?)),
            BKind::Cmp(op, l, r) => {
                let (at, c, op) = match (column(l), column(r)) {
                    (Some(at), None) => (at, constant(r)?, *op),
                    (None, Some(at)) => (at, constant(l)?, op.flipped()),
                    _ => return None,
                };
                let (low, high) = match op {
                    BinOp::Eq => (c, c),
                    BinOp::Ge => (c, i64::MAX),
                    BinOp::Gt => c.checked_add(1).map_or(EMPTY, |low| (low, i64::MAX)),
                    BinOp::Le => (i64::MIN, c),
                    BinOp::Lt => c.checked_sub(1).map_or(EMPTY, |high| (i64::MIN, high)),
                    _ => return None,
                };
                Some((at, low, high))
            }
            _ => None,
        }
    }

    /// The positions of the row's cells the expression reads, ascending, each once.
    pub(crate) fn columns_read(&self) -> Vec<usize> {
        fn walk(b: &Bound, out: &mut Vec<usize>) {
            match &b.kind {
                BKind::Const(_) => {}
                BKind::Col(i) => out.push(*i),
                BKind::Neg(x) | BKind::Member(x, _) => walk(x, out),
                BKind::Arith(_, l, r)
                | BKind::Cmp(_, l, r)
                | BKind::Str(_, _, l, r)
                | BKind::Index(l, r) => {
                    walk(l, out);
                    walk(r, out);
                }
                BKind::And(items) | BKind::Or(items) | BKind::Call(_, items) => {
                    items.iter().for_each(|i| walk(i, out));
                }
                BKind::In { lhs, list, .. } => {
                    walk(lhs, out);
                    list.iter().for_each(|i| walk(i, out));
                }
                BKind::Between { lhs, low, high, .. } => {
                    walk(lhs, out);
                    walk(low, out);
                    walk(high, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether the predicate keeps `row` (`where`'s rule: it evaluates to `true`, or a dynamic
    /// `true`; null never keeps). The same answer as testing [`Bound::eval`]'s value, reached
    /// without building values for the shapes a scan meets on every row: `and`/`or` of
    /// predicates, `between` and comparisons of a long or datetime against constants of its
    /// kind, and string operators against a constant string. Any other shape, or a cell of
    /// another kind (a null, a dynamic value), goes through [`Bound::eval`].
    pub(crate) fn holds(&self, row: &[Value], now_ms: i64) -> bool {
        let ints = |a: &Value, b: &Value| match (a, b) {
            (Value::Long(x), Value::Long(y)) | (Value::DateTime(x), Value::DateTime(y)) => {
                Some(x.cmp(y))
            }
            _ => None,
        };
        match &self.kind {
            // `and` is true iff every item is true; `or` iff one is (nulls are neither).
            BKind::And(items) => return items.iter().all(|i| i.holds(row, now_ms)),
            BKind::Or(items) => return items.iter().any(|i| i.holds(row, now_ms)),
            BKind::Between {
                lhs,
                low,
                high,
                negated,
            } => {
                let v = lhs.eval_cow(row, now_ms);
                let (lo, hi) = (low.eval_cow(row, now_ms), high.eval_cow(row, now_ms));
                if let (Some(lo), Some(hi)) = (ints(&v, &lo), ints(&v, &hi)) {
                    return (lo != Ordering::Less && hi != Ordering::Greater) != *negated;
                }
            }
            BKind::Cmp(
                op @ (BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge),
                l,
                r,
            ) => {
                if let Some(o) = ints(&l.eval_cow(row, now_ms), &r.eval_cow(row, now_ms)) {
                    return ordering_holds(*op, o);
                }
            }
            BKind::Str(op, negated, l, r) => {
                if let (Value::String(hay), Value::String(needle)) = (
                    l.eval_cow(row, now_ms).as_ref(),
                    r.eval_cow(row, now_ms).as_ref(),
                ) {
                    return str_op(*op, hay, needle) != *negated;
                }
            }
            _ => {}
        }
        matches!(
            scalar_ref(&self.eval(row, now_ms)).as_ref(),
            Value::Bool(true)
        )
    }

    /// Like [`Bound::eval`], but borrows a column's or a constant's value instead of copying
    /// it: comparisons and string operators in a scan then copy nothing.
    pub(crate) fn eval_cow<'a>(&'a self, row: &'a [Value], now_ms: i64) -> Cow<'a, Value> {
        match &self.kind {
            BKind::Const(v) => Cow::Borrowed(v),
            BKind::Col(i) => row.get(*i).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
            _ => Cow::Owned(self.eval(row, now_ms)),
        }
    }

    /// Evaluates over one row. `now_ms` is the query's fixed "now" (Unix ms).
    pub(crate) fn eval(&self, row: &[Value], now_ms: i64) -> Value {
        match &self.kind {
            BKind::Const(v) => v.clone(),
            BKind::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            BKind::Neg(inner) => match scalar(&inner.eval(row, now_ms)) {
                Value::Long(n) => n.checked_neg().map_or(Value::Null, Value::Long),
                Value::Real(x) => Value::Real(-x),
                Value::TimeSpan(n) => n.checked_neg().map_or(Value::Null, Value::TimeSpan),
                _ => Value::Null,
            },
            BKind::Arith(op, l, r) => {
                arith(*op, &l.eval(row, now_ms), &r.eval(row, now_ms), self.ty)
            }
            BKind::Cmp(op, l, r) => {
                let (a, b) = (l.eval_cow(row, now_ms), r.eval_cow(row, now_ms));
                let result = match op {
                    BinOp::EqCi(negated) => equal(&a, &b, true).map(|e| e != *negated),
                    _ => compare(&a, &b).map(|o| ordering_holds(*op, o)),
                };
                // Values of different runtime kinds (a dynamic string against a long) are
                // unequal rather than unknown, as Kusto's dynamic comparisons are.
                let result = result.or_else(|| match (op, scalar(&a), scalar(&b)) {
                    (_, Value::Null, _) | (_, _, Value::Null) => None,
                    (BinOp::Eq, _, _) => Some(false),
                    (BinOp::Ne, _, _) => Some(true),
                    _ => None,
                });
                bool_value(result)
            }
            BKind::Str(op, negated, l, r) => {
                let (hay, needle) = (l.eval_cow(row, now_ms), r.eval_cow(row, now_ms));
                Value::Bool(str_op(*op, &text_of(&hay), &text_of(&needle)) != *negated)
            }
            BKind::And(items) => {
                let mut unknown = false;
                for item in items {
                    match truth(&item.eval(row, now_ms)) {
                        Some(false) => return Value::Bool(false),
                        Some(true) => {}
                        None => unknown = true,
                    }
                }
                if unknown {
                    Value::Null
                } else {
                    Value::Bool(true)
                }
            }
            BKind::Or(items) => {
                let mut unknown = false;
                for item in items {
                    match truth(&item.eval(row, now_ms)) {
                        Some(true) => return Value::Bool(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                if unknown {
                    Value::Null
                } else {
                    Value::Bool(false)
                }
            }
            BKind::In {
                lhs,
                list,
                negated,
                case_insensitive,
            } => {
                let v = lhs.eval(row, now_ms);
                if matches!(scalar(&v), Value::Null) {
                    return Value::Bool(false);
                }
                let found = list.iter().any(|item| {
                    equal(&v, &item.eval(row, now_ms), *case_insensitive) == Some(true)
                });
                Value::Bool(found != *negated)
            }
            BKind::Between {
                lhs,
                low,
                high,
                negated,
            } => {
                let v = lhs.eval_cow(row, now_ms);
                let lo = compare(&v, &low.eval_cow(row, now_ms));
                let hi = compare(&v, &high.eval_cow(row, now_ms));
                match (lo, hi) {
                    (Some(lo), Some(hi)) => {
                        let inside = lo != Ordering::Less && hi != Ordering::Greater;
                        Value::Bool(inside != *negated)
                    }
                    _ => Value::Null,
                }
            }
            BKind::Call(func, args) => self.call(*func, args, row, now_ms),
            BKind::Member(inner, field) => match inner.eval_cow(row, now_ms).as_ref() {
                Value::Dynamic(serde_json::Value::Object(map)) => {
                    map.get(field).cloned().map_or(Value::Null, Value::Dynamic)
                }
                _ => Value::Null,
            },
            BKind::Index(inner, index) => {
                let v = inner.eval_cow(row, now_ms);
                let i = scalar(&index.eval(row, now_ms));
                match (v.as_ref(), i) {
                    (Value::Dynamic(serde_json::Value::Object(map)), Value::String(k)) => {
                        map.get(&k).cloned().map_or(Value::Null, Value::Dynamic)
                    }
                    (Value::Dynamic(serde_json::Value::Array(items)), Value::Long(n)) => {
                        let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                        let at = if n < 0 { len + n } else { n };
                        usize::try_from(at)
                            .ok()
                            .and_then(|at| items.get(at).cloned())
                            .map_or(Value::Null, Value::Dynamic)
                    }
                    _ => Value::Null,
                }
            }
        }
    }

    fn call(&self, func: Func, args: &[Bound], row: &[Value], now_ms: i64) -> Value {
        let arg = |i: usize| args.get(i).map_or(Value::Null, |a| a.eval(row, now_ms));
        let text = |i: usize| arg(i).to_kusto_string();
        match func {
            Func::Ago => match scalar(&arg(0)) {
                Value::TimeSpan(t) => now_ms.checked_sub(t).map_or(Value::Null, Value::DateTime),
                _ => Value::Null,
            },
            Func::Now => match args.first().map(|_| scalar(&arg(0))) {
                None => Value::DateTime(now_ms),
                Some(Value::TimeSpan(t)) => {
                    now_ms.checked_add(t).map_or(Value::Null, Value::DateTime)
                }
                Some(_) => Value::Null,
            },
            Func::StrLen => Value::Long(i64::try_from(text(0).chars().count()).unwrap_or(i64::MAX)),
            Func::ToLower => Value::String(text(0).to_lowercase()),
            Func::ToUpper => Value::String(text(0).to_uppercase()),
            Func::StrCat => Value::String((0..args.len()).map(text).collect()),
            Func::Substring => {
                let s = text(0);
                let len = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
                let start = as_i64(&arg(1)).unwrap_or(0).clamp(0, len);
                let take = match args.len() {
                    3 => as_i64(&arg(2)).unwrap_or(len).clamp(0, len - start),
                    _ => len - start,
                };
                // Both clamped to 0..=len above, so the conversions cannot fail.
                let (start, take) = (
                    usize::try_from(start).unwrap_or(0),
                    usize::try_from(take).unwrap_or(0),
                );
                Value::String(s.chars().skip(start).take(take).collect())
            }
            Func::Split => {
                let s = text(0);
                let d = text(1);
                let parts: Vec<serde_json::Value> = if d.is_empty() {
                    vec![serde_json::Value::String(s)]
                } else {
                    s.split(d.as_str())
                        .map(|p| serde_json::Value::String(p.into()))
                        .collect()
                };
                if args.len() == 3 {
                    let i = as_i64(&arg(2)).and_then(|i| usize::try_from(i).ok());
                    return match i.and_then(|i| parts.get(i)) {
                        Some(p) => Value::Dynamic(serde_json::Value::Array(vec![p.clone()])),
                        None => Value::Dynamic(serde_json::Value::Array(Vec::new())),
                    };
                }
                Value::Dynamic(serde_json::Value::Array(parts))
            }
            Func::ReplaceString => {
                let (s, from, to) = (text(0), text(1), text(2));
                if from.is_empty() {
                    Value::String(s)
                } else {
                    Value::String(s.replace(&from, &to))
                }
            }
            Func::IndexOf => {
                let (s, needle) = (text(0), text(1));
                match s.find(&needle) {
                    Some(byte) => {
                        Value::Long(i64::try_from(s[..byte].chars().count()).unwrap_or(-1))
                    }
                    None => Value::Long(-1),
                }
            }
            Func::IsEmpty => Value::Bool(arg(0).is_empty()),
            Func::IsNotEmpty => Value::Bool(!arg(0).is_empty()),
            Func::IsNull => Value::Bool(matches!(
                arg(0),
                Value::Null | Value::Dynamic(serde_json::Value::Null)
            )),
            Func::IsNotNull => Value::Bool(!matches!(
                arg(0),
                Value::Null | Value::Dynamic(serde_json::Value::Null)
            )),
            Func::ToString => Value::String(text(0)),
            Func::ToLong => match scalar(&arg(0)) {
                Value::Long(n) => Value::Long(n),
                Value::Real(x) if x.is_finite() => Value::Long(x.trunc() as i64),
                Value::Bool(b) => Value::Long(i64::from(b)),
                Value::DateTime(n) | Value::TimeSpan(n) => Value::Long(n),
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .or_else(|| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .map(|x| x.trunc() as i64)
                    })
                    .map_or(Value::Null, Value::Long),
                _ => Value::Null,
            },
            Func::ToReal => match scalar(&arg(0)) {
                Value::Long(n) => Value::Real(n as f64),
                Value::Real(x) => Value::Real(x),
                Value::Bool(b) => Value::Real(f64::from(u8::from(b))),
                Value::String(s) => s.trim().parse::<f64>().map_or(Value::Null, Value::Real),
                _ => Value::Null,
            },
            Func::ToDateTime => match scalar(&arg(0)) {
                Value::DateTime(n) => Value::DateTime(n),
                Value::String(s) => parse_datetime(&s).map_or(Value::Null, Value::DateTime),
                _ => Value::Null,
            },
            Func::ToTimeSpan => match scalar(&arg(0)) {
                Value::TimeSpan(n) => Value::TimeSpan(n),
                Value::String(s) => {
                    crate::time::parse_timespan_text(&s).map_or(Value::Null, Value::TimeSpan)
                }
                _ => Value::Null,
            },
            Func::ToBool => match scalar(&arg(0)) {
                Value::Bool(b) => Value::Bool(b),
                Value::Long(n) => Value::Bool(n != 0),
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => Value::Null,
                },
                _ => Value::Null,
            },
            Func::Bin => match (scalar(&arg(0)), scalar(&arg(1))) {
                (Value::DateTime(x), Value::TimeSpan(s)) => {
                    bin_i64(x, s).map_or(Value::Null, Value::DateTime)
                }
                (Value::TimeSpan(x), Value::TimeSpan(s)) => {
                    bin_i64(x, s).map_or(Value::Null, Value::TimeSpan)
                }
                (Value::Long(x), Value::Long(s)) if self.ty == ColumnType::Long => {
                    bin_i64(x, s).map_or(Value::Null, Value::Long)
                }
                (x, s) => match (as_f64(&x), as_f64(&s)) {
                    (Some(x), Some(s)) if s > 0.0 => Value::Real((x / s).floor() * s),
                    _ => Value::Null,
                },
            },
            Func::Round => {
                let digits = if args.len() == 2 {
                    as_i64(&arg(1)).unwrap_or(0)
                } else {
                    0
                };
                match scalar(&arg(0)) {
                    Value::Long(n) if digits >= 0 => Value::Long(n),
                    v => match as_f64(&v) {
                        Some(x) => {
                            let scale =
                                10f64.powi(i32::try_from(digits.clamp(-300, 300)).unwrap_or(0));
                            let r = (x * scale).round() / scale;
                            if self.ty == ColumnType::Long {
                                Value::Long(r as i64)
                            } else {
                                Value::Real(r)
                            }
                        }
                        None => Value::Null,
                    },
                }
            }
            Func::Abs => match scalar(&arg(0)) {
                Value::Long(n) => n.checked_abs().map_or(Value::Null, Value::Long),
                Value::TimeSpan(n) => n.checked_abs().map_or(Value::Null, Value::TimeSpan),
                v => as_f64(&v).map_or(Value::Null, |x| Value::Real(x.abs())),
            },
            Func::Sqrt => as_f64(&arg(0)).map_or(Value::Null, |x| Value::Real(x.sqrt())),
            Func::Pow => match (as_f64(&arg(0)), as_f64(&arg(1))) {
                (Some(x), Some(y)) => Value::Real(x.powf(y)),
                _ => Value::Null,
            },
            Func::Not => truth(&arg(0)).map_or(Value::Null, |b| Value::Bool(!b)),
            Func::Iff => {
                let v = if truth(&arg(0)) == Some(true) {
                    arg(1)
                } else {
                    arg(2)
                };
                conform(v, self.ty)
            }
            Func::Case => {
                let last = args.len() - 1;
                for i in (0..last).step_by(2) {
                    if truth(&arg(i)) == Some(true) {
                        return conform(arg(i + 1), self.ty);
                    }
                }
                conform(arg(last), self.ty)
            }
            Func::Coalesce => {
                for i in 0..args.len() {
                    let v = arg(i);
                    if !v.is_empty() {
                        return conform(v, self.ty);
                    }
                }
                Value::Null
            }
            Func::ParseJson => match arg(0) {
                Value::Dynamic(j) => Value::Dynamic(j),
                Value::String(s) => serde_json::from_str(&s).map_or(Value::Null, Value::Dynamic),
                Value::Null => Value::Null,
                v => Value::Dynamic(v.to_json()),
            },
            Func::ArrayLength => match arg(0) {
                Value::Dynamic(serde_json::Value::Array(items)) => {
                    Value::Long(i64::try_from(items.len()).unwrap_or(i64::MAX))
                }
                _ => Value::Null,
            },
            Func::StartOfDay => match scalar(&arg(0)) {
                Value::DateTime(x) => bin_i64(x, MS_PER_DAY).map_or(Value::Null, Value::DateTime),
                _ => Value::Null,
            },
        }
    }
}

/// A value converted to the column type an expression promised (a long branch of a real
/// `iff` becomes a real; anything becomes dynamic in a dynamic column).
pub(crate) fn conform(v: Value, ty: ColumnType) -> Value {
    match (v, ty) {
        (Value::Null, _) => Value::Null,
        (Value::Long(n), ColumnType::Real) => Value::Real(n as f64),
        (Value::Dynamic(j), ColumnType::Dynamic) => Value::Dynamic(j),
        (v, ColumnType::Dynamic) => Value::Dynamic(v.to_json()),
        (v @ Value::Dynamic(_), t) => {
            let s = scalar(&v);
            if s.column_type() == Some(t) {
                s
            } else if let (Value::Long(n), ColumnType::Real) = (&s, t) {
                Value::Real(*n as f64)
            } else {
                Value::Null
            }
        }
        (v, _) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_matches_whole_terms() {
        assert!(has_term("north america", "america"));
        assert!(!has_term("kustoexplorer", "explorer"));
        assert!(has_term("error: disk full", "disk full"));
        assert!(has_term("a.b-c", "b"));
        assert!(!has_term("abc", "b"));
    }

    #[test]
    fn string_operators_agree_on_ascii_and_unicode_paths() {
        let cases = [
            (StrOp::Contains { cs: false }, "FabriKam", "BRik", true),
            (StrOp::Contains { cs: true }, "FabriKam", "BRik", false),
            (StrOp::Contains { cs: false }, "x", "", true),
            (StrOp::StartsWith { cs: false }, "Fabrikam", "fab", true),
            (StrOp::EndsWith { cs: false }, "Fabrikam", "KAM", true),
            (StrOp::EndsWith { cs: false }, "am", "Kam", false),
            (StrOp::Has { cs: false }, "North America", "america", true),
            (
                StrOp::Has { cs: false },
                "KustoExplorerQueryRun",
                "explorer",
                false,
            ),
            (
                StrOp::Has { cs: false },
                "error: Disk Full!",
                "disk full",
                true,
            ),
            (StrOp::Has { cs: true }, "North America", "america", false),
        ];
        for (op, hay, needle, want) in cases {
            assert_eq!(str_op(op, hay, needle), want, "{op:?} {hay:?} {needle:?}");
            // The same with a non-ASCII character appended, forcing the Unicode path.
            let h = match op {
                StrOp::EndsWith { .. } => format!("é {hay}"),
                _ => format!("{hay} é"),
            };
            assert_eq!(
                str_op(op, &h, needle),
                want,
                "unicode {op:?} {h:?} {needle:?}"
            );
        }
    }

    #[test]
    fn bins_round_down() {
        assert_eq!(bin_i64(7, 5), Some(5));
        assert_eq!(bin_i64(-1, 5), Some(-5));
        assert_eq!(bin_i64(7, 0), None);
        assert_eq!(bin_i64(i64::MIN + 1, 3), None);
    }
}
