//! Which columns of a table a query can ever read: the projection a reader (the storage scan)
//! may apply before it hands rows to [`crate::execute`].
//!
//! Why: a query such as `T | where a contains "x" | summarize count() by b` reads two columns of
//! a table that may have dozens; decoding, converting and carrying the others is most of the
//! cost of a scan once the blocks are decrypted (issue 11's `bench query`). The rule is
//! deliberately conservative, because a column it leaves out wrongly would change the answer:
//!
//! - Only a query whose source is that one table counts (`T | ...`); a `union` source, or a
//!   `| union` anywhere in the pipeline, keeps every column.
//! - The operators are walked from the source. `where`, `extend`, `order by`/`sort by`, `top`,
//!   `take` and `render` pass every column through, so the columns their expressions name are
//!   collected and the walk goes on. `project`, `summarize`, `count` and `distinct a, b` end
//!   the walk: what comes after them can only read what they output, which is computed from
//!   the columns collected. Any other end of the pipeline (no such operator, `project-away`,
//!   `project-rename`, `distinct *`, `arg_max(x, *)`) outputs the table's own columns, so every
//!   column is kept.
//! - The projection keeps the table's column order, so the projected table is the full table
//!   with some columns removed; names the query uses but the table lacks (columns made by
//!   `extend`, typos) are left out, and binding the query reports them exactly as it would
//!   over the full table.

use std::collections::BTreeSet;

use crate::ast::{Expr, ExprKind, Op, Query, Source};
use crate::value::Column;

/// The columns of `table` (given as `columns`, in the table's order) that `query` reads, in the
/// table's order; `None` when the query may output or read every column.
pub(crate) fn projection(query: &Query, table: &str, columns: &[Column]) -> Option<Vec<Column>> {
    let Source::Table(name) = &query.body.source else {
        return None;
    };
    if name.text != table {
        return None;
    }
    let mut used = BTreeSet::new();
    let mut closed = false;
    for op in &query.body.ops {
        match op {
            Op::Where(e) => names_in(e, &mut used),
            Op::Extend(items) => items.iter().for_each(|i| names_in(&i.expr, &mut used)),
            Op::Sort(keys) => keys.iter().for_each(|k| names_in(&k.expr, &mut used)),
            Op::Top { key, .. } => names_in(&key.expr, &mut used),
            Op::Take(_) | Op::Render(_) => {}
            Op::Project(items) => {
                items.iter().for_each(|i| names_in(&i.expr, &mut used));
                closed = true;
            }
            Op::Summarize { aggs, by } => {
                if aggs.iter().any(|a| a.all_columns) {
                    return None;
                }
                for a in aggs {
                    a.args.iter().for_each(|e| names_in(e, &mut used));
                }
                by.iter().for_each(|b| names_in(&b.expr, &mut used));
                closed = true;
            }
            Op::Count => closed = true,
            Op::Distinct(names) if !names.is_empty() => {
                used.extend(names.iter().map(|n| n.text.as_str()));
                closed = true;
            }
            Op::Distinct(_) | Op::ProjectAway(_) | Op::ProjectRename(_) | Op::Union(_) => {
                return None
            }
        }
        if closed {
            break;
        }
    }
    closed.then(|| {
        columns
            .iter()
            .filter(|c| used.contains(c.name.as_str()))
            .cloned()
            .collect()
    })
}

/// Adds every column name `e` refers to.
fn names_in<'a>(e: &'a Expr, out: &mut BTreeSet<&'a str>) {
    match &e.kind {
        ExprKind::Literal(_) | ExprKind::TypedNull(_) => {}
        ExprKind::Column(c) => {
            out.insert(c.as_str());
        }
        ExprKind::Neg(inner) | ExprKind::Member(inner, _) => names_in(inner, out),
        ExprKind::Binary(_, l, r) | ExprKind::Index(l, r) => {
            names_in(l, out);
            names_in(r, out);
        }
        ExprKind::And(items) | ExprKind::Or(items) | ExprKind::Call(_, items) => {
            items.iter().for_each(|i| names_in(i, out));
        }
        ExprKind::In { lhs, list, .. } => {
            names_in(lhs, out);
            list.iter().for_each(|i| names_in(i, out));
        }
        ExprKind::Between { lhs, low, high, .. } => {
            names_in(lhs, out);
            names_in(low, out);
            names_in(high, out);
        }
    }
}
