//! What a query reads: its tables, and the `TimeGenerated` range its leading filters allow.
//!
//! The storage scans encrypted blocks by time, so the range is worth pushing down: a dashboard's
//! `where TimeGenerated > ago(1h)` should not decrypt a month. The analysis is deliberately
//! conservative, because a row it excludes wrongly is a row silently missing from the answer:
//!
//! - Only the `where` clauses directly after a source count (before any `extend`/`project`
//!   could redefine `TimeGenerated`), and inside them only the top-level `and` conjuncts of the
//!   forms `TimeGenerated <op> C`, `C <op> TimeGenerated` (op one of `> >= < <= ==`) and
//!   `TimeGenerated between (C1 .. C2)`, where each C has no column reference and evaluates to
//!   a datetime (`datetime(...)`, `ago(...)`, `now()`, and arithmetic on them). Anything else
//!   (an `or`, a `not`, a function of `TimeGenerated`) leaves the range unbounded.
//! - `>` is widened to `>=` (never narrower than needed); `<=` and `==` and `between`'s upper
//!   bound become an exclusive bound one millisecond later, since cells hold milliseconds.
//! - The query's range is the hull of every source's range (a `union` reads all its legs).

use std::collections::BTreeSet;

use crate::ast::{BinOp, Expr, ExprKind, Op, Query, Source, Tabular};
use crate::eval::bind;
use crate::value::Value;

/// The column the storage orders blocks by.
const TIME_COLUMN: &str = "TimeGenerated";

/// A `[from, to)` range in Unix ms; `None` is unbounded on that side.
type Range = (Option<i64>, Option<i64>);

const UNBOUNDED: Range = (None, None);

pub(crate) fn tables(query: &Query) -> Vec<String> {
    let mut out = BTreeSet::new();
    collect_tables(&query.body, &mut out);
    out.into_iter().collect()
}

fn collect_tables(t: &Tabular, out: &mut BTreeSet<String>) {
    match &t.source {
        Source::Table(name) => {
            out.insert(name.text.clone());
        }
        Source::Union(legs) => legs.iter().for_each(|l| collect_tables(l, out)),
    }
    for op in &t.ops {
        if let Op::Union(legs) = op {
            legs.iter().for_each(|l| collect_tables(l, out));
        }
    }
}

pub(crate) fn time_bounds(query: &Query, now_ms: i64) -> Range {
    tabular_bounds(&query.body, now_ms)
}

fn tabular_bounds(t: &Tabular, now_ms: i64) -> Range {
    let mut range = match &t.source {
        Source::Table(_) => UNBOUNDED,
        Source::Union(legs) => legs
            .iter()
            .map(|l| tabular_bounds(l, now_ms))
            .reduce(hull)
            .unwrap_or(UNBOUNDED),
    };
    for op in &t.ops {
        match op {
            Op::Where(e) => range = intersect(range, predicate_bounds(e, now_ms)),
            _ => break,
        }
    }
    // Legs of a later `| union` are read too, each under its own leading filters.
    for op in &t.ops {
        if let Op::Union(legs) = op {
            for leg in legs {
                range = hull(range, tabular_bounds(leg, now_ms));
            }
        }
    }
    range
}

fn hull(a: Range, b: Range) -> Range {
    (
        a.0.zip(b.0).map(|(x, y)| x.min(y)),
        a.1.zip(b.1).map(|(x, y)| x.max(y)),
    )
}

fn intersect(a: Range, b: Range) -> Range {
    let pick = |x: Option<i64>, y: Option<i64>, f: fn(i64, i64) -> i64| match (x, y) {
        (Some(x), Some(y)) => Some(f(x, y)),
        (x, y) => x.or(y),
    };
    (pick(a.0, b.0, i64::max), pick(a.1, b.1, i64::min))
}

fn is_time_column(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Column(c) if c == TIME_COLUMN)
}

/// The datetime a column-free expression evaluates to.
fn constant_datetime(e: &Expr, now_ms: i64) -> Option<i64> {
    let bound = bind(e, &[]).ok()?;
    match bound.eval(&[], now_ms) {
        Value::DateTime(ms) => Some(ms),
        _ => None,
    }
}

fn predicate_bounds(e: &Expr, now_ms: i64) -> Range {
    match &e.kind {
        ExprKind::And(items) => items
            .iter()
            .map(|i| predicate_bounds(i, now_ms))
            .fold(UNBOUNDED, intersect),
        ExprKind::Binary(op, l, r) => {
            let (op, c) = if is_time_column(l) {
                (*op, r)
            } else if is_time_column(r) {
                (op.flipped(), l)
            } else {
                return UNBOUNDED;
            };
            let Some(v) = constant_datetime(c, now_ms) else {
                return UNBOUNDED;
            };
            match op {
                BinOp::Gt | BinOp::Ge => (Some(v), None),
                BinOp::Lt => (None, Some(v)),
                BinOp::Le => (None, v.checked_add(1)),
                BinOp::Eq => (Some(v), v.checked_add(1)),
                _ => UNBOUNDED,
            }
        }
        ExprKind::Between {
            lhs,
            low,
            high,
            negated: false,
        } if is_time_column(lhs) => {
            let from = constant_datetime(low, now_ms);
            let to = match bind(high, &[]).ok().map(|b| b.eval(&[], now_ms)) {
                Some(Value::DateTime(ms)) => Some(ms),
                Some(Value::TimeSpan(span)) => from.and_then(|f| f.checked_add(span)),
                _ => None,
            };
            (from, to.and_then(|t| t.checked_add(1)))
        }
        _ => UNBOUNDED,
    }
}
