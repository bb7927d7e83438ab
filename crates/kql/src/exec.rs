//! The tabular operators: running a parsed [`Query`] over in-memory tables.
//!
//! Rows flow through the pipeline as a [`Frame`] (columns and rows); each operator binds its
//! expressions to the frame's columns first (so errors come before any work) and then makes
//! the next frame. Kusto's rules that a reader might not guess, all kept here:
//!
//! - `order by` / `sort by` and `top` sort descending unless told `asc`; nulls come first when
//!   ascending and last when descending, unless `nulls first|last` says otherwise. The sort is
//!   stable, so equal keys keep their input order.
//! - `summarize` puts the `by` columns first, then the aggregates, and outputs one row per
//!   group **in the order each group first appears in its input**. (Kusto does not promise an
//!   order; we promise this one so that results are deterministic.) Without `by` it outputs
//!   exactly one row, even for an empty input, where `count()`, `countif()`, `dcount()` and
//!   `sum()` give 0 and `avg()`, `min()`, `max()` give null (Kusto's documented defaults).
//! - Aggregates ignore nulls. `dcount()` is exact (a `BTreeSet` of the group's distinct values,
//!   so bounded by the input), where Kusto's is an estimate; `percentile(x, p)` is exact too,
//!   by Kusto's nearest-rank definition. `arg_max(x, *)`/`arg_min(x, ...)` keep the first row
//!   with the best `x` (ties keep input order) and output `x`'s column then the returned ones
//!   (`*`: every input column not already a group key). `make_set()` keeps first-appearance
//!   order; `make_list()`/`make_set()` keep at most 1,048,576 items (Kusto's default cap).
//! - Default column names: `count_`, `countif_`, `sum_X`, `avg_X`, `min_X`, `max_X`, `dcount_X`,
//!   `percentile_X_95`, `set_X`, `list_X` where X is the aggregated column (or the column inside a conversion such as `todouble(X)`,
//!   or nothing for other expressions); a `by`/`project`/`extend` expression is named after its
//!   column (`bin(TimeGenerated, 5m)` is `TimeGenerated`, `Props.level` is `Props_level`), or
//!   `Column1`, `Column2`, ... A name already taken gets a numeric suffix (`count_1`).
//! - `union` is Kusto's default outer union: the columns of every leg in order of first
//!   appearance, null where a leg lacks a column; a name with two types across legs becomes
//!   one column per type, suffixed `_string`, `_long`, ...
//! - `distinct` keeps the first occurrence of each distinct row, in input order.
//! - `render` is a hint for the client's chart; the rows pass through unchanged.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::ast::{
    AggFn, Aggregate, Expr, ExprKind, NamedExpr, Op, Query, SortKey, Source, Tabular,
};
use crate::eval::{bind, compare, conform, scalar, type_error, BKind, Bound, Func};
use crate::lexer::clip;
use crate::value::{Column, ColumnType, Table, Value};
use crate::{ExecError, KeyPart, RowAt, RESULT_ROWS_MAX};

/// Rows between operators.
struct Frame {
    columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
}

/// A value as a totally ordered key, for grouping, `distinct` and `dcount`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Key {
    Null,
    Bool(bool),
    Long(i64),
    /// The bits of a real, with -0.0 folded into 0.0 and every NaN into one.
    Real(u64),
    String(String),
    DateTime(i64),
    TimeSpan(i64),
    /// Compact JSON text (serde_json keeps object keys sorted, so equal values print equally).
    Dynamic(String),
}

/// True when [`conform`] would change `v` for a column of type `ty`.
fn changed_by_conform(v: &Value, ty: ColumnType) -> bool {
    match (v, ty) {
        (Value::Null, _) | (Value::Dynamic(_), ColumnType::Dynamic) => false,
        (Value::Long(_), ColumnType::Real) | (_, ColumnType::Dynamic) | (Value::Dynamic(_), _) => {
            true
        }
        _ => false,
    }
}

/// The bits a real's [`Key`] holds: -0.0 folded into 0.0 and every NaN into one.
pub(crate) fn real_key(x: f64) -> u64 {
    if x == 0.0 {
        0
    } else if x.is_nan() {
        u64::MAX
    } else {
        x.to_bits()
    }
}

/// Whether two values have the same [`Key`] (without building either, except for dynamic
/// values, which compare by their JSON text as their keys do).
fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Long(x), Value::Long(y))
        | (Value::DateTime(x), Value::DateTime(y))
        | (Value::TimeSpan(x), Value::TimeSpan(y)) => x == y,
        (Value::Real(x), Value::Real(y)) => real_key(*x) == real_key(*y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Dynamic(_), Value::Dynamic(_)) => key_of(a) == key_of(b),
        _ => false,
    }
}

/// The hasher of [`key_hash`]: the multiply-and-rotate word hash of rustc's `FxHasher`, far
/// cheaper than SipHash on the short keys of a group (a host name and a time bin). It only
/// finds a row's group, which is then confirmed by comparing values, so a collision costs a
/// comparison, never a wrong group; it has no random keys, so it is the same in every run.
struct KeyHasher(u64);

impl KeyHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(last));
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash of a group's key values, equal for values with the same keys ([`same_key`]). The
/// hasher has fixed keys, so it is the same in every run (it only finds groups; no output
/// order depends on it).
pub(crate) fn key_hash<V: std::borrow::Borrow<Value>>(values: &[V]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = KeyHasher(0);
    for v in values {
        match v.borrow() {
            Value::Null => 0u8.hash(&mut h),
            Value::Bool(b) => (1u8, b).hash(&mut h),
            Value::Long(n) => (2u8, n).hash(&mut h),
            Value::Real(x) => (3u8, real_key(*x)).hash(&mut h),
            Value::String(s) => (4u8, s).hash(&mut h),
            Value::DateTime(n) => (5u8, n).hash(&mut h),
            Value::TimeSpan(n) => (6u8, n).hash(&mut h),
            Value::Dynamic(j) => (7u8, j.to_string()).hash(&mut h),
        }
    }
    h.finish()
}

pub(crate) fn key_of(v: &Value) -> Key {
    match v {
        Value::Null => Key::Null,
        Value::Bool(b) => Key::Bool(*b),
        Value::Long(n) => Key::Long(*n),
        Value::Real(x) => Key::Real(real_key(*x)),
        Value::String(s) => Key::String(s.clone()),
        Value::DateTime(n) => Key::DateTime(*n),
        Value::TimeSpan(n) => Key::TimeSpan(*n),
        Value::Dynamic(j) => Key::Dynamic(j.to_string()),
    }
}

/// Runs `query` (see [`crate::execute`]).
pub(crate) fn run(
    query: &Query,
    tables: &BTreeMap<String, Table>,
    now_ms: i64,
) -> Result<Table, ExecError> {
    result(run_tabular(&query.body, tables, now_ms)?)
}

/// The last frame as the result table, refused when it has too many rows.
fn result(frame: Frame) -> Result<Table, ExecError> {
    debug_assert!(
        frame.rows.iter().all(|r| r.len() == frame.columns.len()),
        "every operator keeps rows as wide as its columns"
    );
    if frame.rows.len() > RESULT_ROWS_MAX {
        return Err(ExecError::TooLarge(format!(
            "the result has {} rows; at most {RESULT_ROWS_MAX} are returned (add '| take N' or a summarize)",
            frame.rows.len()
        )));
    }
    Ok(Table {
        name: "PrimaryResult".to_string(),
        columns: frame.columns,
        rows: frame.rows,
    })
}

fn run_tabular(
    t: &Tabular,
    tables: &BTreeMap<String, Table>,
    now_ms: i64,
) -> Result<Frame, ExecError> {
    let mut ops = t.ops.as_slice();
    let mut frame = match &t.source {
        Source::Table(name) => {
            let table = tables
                .get(&name.text)
                .ok_or_else(|| ExecError::UnknownTable(name.text.clone()))?;
            let width = table.columns.len();
            if let Some(bad) = table.rows.iter().position(|r| r.len() != width) {
                return Err(ExecError::InvalidTable(format!(
                    "table '{}' row {bad} has {} cells for {width} columns",
                    clip(&name.text),
                    table.rows[bad].len()
                )));
            }
            // Apply the leading `where`s while reading, so that only kept rows are copied.
            let mut preds = Vec::new();
            while let Some((Op::Where(e), rest)) = ops.split_first() {
                preds.push(bind_predicate(e, &table.columns)?);
                ops = rest;
            }
            let rows = table
                .rows
                .iter()
                .filter(|row| preds.iter().all(|p| p.holds(row, now_ms)))
                .cloned()
                .collect();
            Frame {
                columns: table.columns.clone(),
                rows,
            }
        }
        Source::Union(legs) => {
            let frames = legs
                .iter()
                .map(|leg| run_tabular(leg, tables, now_ms))
                .collect::<Result<Vec<_>, _>>()?;
            union(frames)
        }
    };
    for op in ops {
        frame = apply(op, frame, tables, now_ms)?;
    }
    Ok(frame)
}

/// The leading `where`s of a query whose source is one table, bound to that table's columns
/// (see [`crate::Query::row_filter`]).
pub(crate) fn leading_filter(
    query: &Query,
    table: &str,
    columns: &[Column],
) -> Result<Option<Vec<Bound>>, ExecError> {
    let Source::Table(name) = &query.body.source else {
        return Ok(None);
    };
    if name.text != table {
        return Ok(None);
    }
    let mut preds = Vec::new();
    for op in &query.body.ops {
        match op {
            Op::Where(e) => preds.push(bind_predicate(e, columns)?),
            _ => break,
        }
    }
    Ok((!preds.is_empty()).then_some(preds))
}

/// A summarize split into parts (see [`crate::SummarizePlan`]): the query's summarize bound to
/// `columns` and the operators after it.
pub(crate) struct SummarizeParts {
    pub(crate) summarizer: Summarizer,
    rest: Vec<Op>,
}

/// The summarize of a query shaped `table | where ... | summarize ... | ...` (no `union`
/// anywhere), bound to `columns`, when every aggregate merges exactly; `None` otherwise.
pub(crate) fn summarize_parts(
    query: &Query,
    table: &str,
    columns: &[Column],
) -> Result<Option<SummarizeParts>, ExecError> {
    let Source::Table(name) = &query.body.source else {
        return Ok(None);
    };
    if name.text != table || query.body.ops.iter().any(|op| matches!(op, Op::Union(_))) {
        return Ok(None);
    }
    let Some(at) = query
        .body
        .ops
        .iter()
        .position(|op| !matches!(op, Op::Where(_)))
    else {
        return Ok(None);
    };
    let Op::Summarize { aggs, by } = &query.body.ops[at] else {
        return Ok(None);
    };
    let summarizer = Summarizer::bind(aggs, by, columns)?;
    Ok(summarizer.mergeable().then(|| SummarizeParts {
        summarizer,
        rest: query.body.ops[at + 1..].to_vec(),
    }))
}

impl SummarizeParts {
    /// The summarize's output from `groups`, then the operators after it: the query's result.
    /// The groups are put in the order of their first rows ([`RowAt`]) first.
    pub(crate) fn finish(&self, mut groups: Groups, now_ms: i64) -> Result<Table, ExecError> {
        let mut order: Vec<(RowAt, Group)> = groups
            .first
            .drain(..)
            .zip(groups.groups.drain(..))
            .collect();
        // Stable: two groups never share a first row, but a reader's `RowAt`s need not be
        // distinct across its parts, and then the order they were merged in stands.
        order.sort_by_key(|(at, _)| *at);
        for (at, group) in order {
            groups.first.push(at);
            groups.groups.push(group);
        }
        let mut frame = self.summarizer.finish(groups);
        let no_tables = BTreeMap::new();
        for op in &self.rest {
            frame = apply(op, frame, &no_tables, now_ms)?;
        }
        result(frame)
    }
}

/// Whether every predicate keeps `row`.
pub(crate) fn keeps(preds: &[Bound], row: &[Value], now_ms: i64) -> bool {
    preds.iter().all(|p| p.holds(row, now_ms))
}

fn bind_predicate(e: &Expr, columns: &[Column]) -> Result<Bound, ExecError> {
    let b = bind(e, columns)?;
    if !matches!(b.ty, ColumnType::Bool | ColumnType::Dynamic) {
        return type_error(
            e.pos,
            format!(
                "expected a bool expression after 'where', found {}",
                b.ty.name()
            ),
        );
    }
    Ok(b)
}

fn union(frames: Vec<Frame>) -> Frame {
    // Every (name, type) in order of first appearance.
    let mut seen: Vec<(String, ColumnType)> = Vec::new();
    for f in &frames {
        for c in &f.columns {
            if !seen
                .iter()
                .any(|(n, t)| *n == c.name && *t == c.column_type)
            {
                seen.push((c.name.clone(), c.column_type));
            }
        }
    }
    let columns: Vec<Column> = seen
        .iter()
        .map(|(name, t)| {
            let clash = seen.iter().filter(|(n, _)| n == name).count() > 1;
            let name = if clash {
                format!("{name}_{}", t.name())
            } else {
                name.clone()
            };
            Column::new(name, *t)
        })
        .collect();
    let mut rows = Vec::with_capacity(frames.iter().map(|f| f.rows.len()).sum());
    for f in frames {
        let map: Vec<usize> = f
            .columns
            .iter()
            .map(|c| {
                seen.iter()
                    .position(|(n, t)| *n == c.name && *t == c.column_type)
                    .unwrap_or(0) // every column of every frame was added to `seen` above
            })
            .collect();
        for row in f.rows {
            let mut out = vec![Value::Null; columns.len()];
            for (cell, &at) in row.into_iter().zip(&map) {
                out[at] = cell;
            }
            rows.push(out);
        }
    }
    Frame { columns, rows }
}

/// The name Kusto derives for an unnamed expression, if it derives one.
fn derived_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Column(c) => Some(c.clone()),
        ExprKind::Member(inner, field) => derived_name(inner).map(|b| format!("{b}_{field}")),
        ExprKind::Call(f, args) if f == "bin" || f == "floor" => {
            args.first().and_then(derived_name)
        }
        _ => None,
    }
}

/// The column inside an aggregate's argument that names its output (`sum_X`).
fn aggregate_suffix(e: &Expr) -> String {
    const CONVERSIONS: [&str; 8] = [
        "toint",
        "tolong",
        "toreal",
        "todouble",
        "tostring",
        "todatetime",
        "totimespan",
        "tobool",
    ];
    match &e.kind {
        ExprKind::Column(c) => c.clone(),
        ExprKind::Member(..) => derived_name(e).unwrap_or_default(),
        ExprKind::Call(f, args) if CONVERSIONS.contains(&f.as_str()) && args.len() == 1 => {
            aggregate_suffix(&args[0])
        }
        _ => String::new(),
    }
}

/// Output column names, unique within the operator's output.
struct Names {
    taken: Vec<String>,
    next_anonymous: usize,
}

impl Names {
    fn new(existing: impl IntoIterator<Item = String>) -> Names {
        Names {
            taken: existing.into_iter().collect(),
            next_anonymous: 1,
        }
    }

    /// `wanted`, or `wanted1`, `wanted2`, ... when taken; `Column<N>` when there is no name.
    fn claim(&mut self, wanted: Option<String>) -> String {
        let base = match wanted {
            Some(w) => w,
            None => loop {
                let n = format!("Column{}", self.next_anonymous);
                self.next_anonymous += 1;
                if !self.taken.contains(&n) {
                    break n;
                }
            },
        };
        let mut name = base.clone();
        let mut i = 1;
        while self.taken.contains(&name) {
            name = format!("{base}{i}");
            i += 1;
        }
        self.taken.push(name.clone());
        name
    }
}

fn apply(
    op: &Op,
    frame: Frame,
    tables: &BTreeMap<String, Table>,
    now_ms: i64,
) -> Result<Frame, ExecError> {
    match op {
        Op::Where(e) => {
            let p = bind_predicate(e, &frame.columns)?;
            let rows = frame
                .rows
                .into_iter()
                .filter(|row| p.holds(row, now_ms))
                .collect();
            Ok(Frame {
                columns: frame.columns,
                rows,
            })
        }
        Op::Project(items) => project(items, frame, now_ms),
        Op::Extend(items) => extend(items, frame, now_ms),
        Op::ProjectAway(names) => {
            let mut drop = BTreeSet::new();
            for n in names {
                let i = column_index(&frame.columns, &n.text, n.pos)?;
                drop.insert(i);
            }
            let keep: Vec<usize> = (0..frame.columns.len())
                .filter(|i| !drop.contains(i))
                .collect();
            Ok(select(frame, &keep))
        }
        Op::ProjectRename(pairs) => {
            let mut frame = frame;
            for (new, old) in pairs {
                let i = column_index(&frame.columns, &old.text, old.pos)?;
                if frame
                    .columns
                    .iter()
                    .enumerate()
                    .any(|(j, c)| j != i && c.name == new.text)
                {
                    return type_error(
                        new.pos,
                        format!("a column named '{}' already exists", clip(&new.text)),
                    );
                }
                frame.columns[i].name = new.text.clone();
            }
            Ok(frame)
        }
        Op::Summarize { aggs, by } => summarize(aggs, by, frame, now_ms),
        Op::Sort(keys) => sort(keys, frame, now_ms),
        Op::Take(n) => {
            let mut frame = frame;
            frame
                .rows
                .truncate(usize::try_from(*n).unwrap_or(usize::MAX));
            Ok(frame)
        }
        Op::Top { count, key } => {
            let mut frame = sort(std::slice::from_ref(key), frame, now_ms)?;
            frame
                .rows
                .truncate(usize::try_from(*count).unwrap_or(usize::MAX));
            Ok(frame)
        }
        Op::Count => Ok(Frame {
            columns: vec![Column::new("Count", ColumnType::Long)],
            rows: vec![vec![Value::Long(
                i64::try_from(frame.rows.len()).unwrap_or(i64::MAX),
            )]],
        }),
        Op::Distinct(names) => {
            let idx: Vec<usize> = if names.is_empty() {
                (0..frame.columns.len()).collect()
            } else {
                names
                    .iter()
                    .map(|n| column_index(&frame.columns, &n.text, n.pos))
                    .collect::<Result<_, _>>()?
            };
            let mut frame = select(frame, &idx);
            let mut seen = BTreeSet::new();
            frame
                .rows
                .retain(|row| seen.insert(row.iter().map(key_of).collect::<Vec<_>>()));
            Ok(frame)
        }
        Op::Render(_) => Ok(frame),
        Op::Union(legs) => {
            let mut frames = vec![frame];
            for leg in legs {
                frames.push(run_tabular(leg, tables, now_ms)?);
            }
            Ok(union(frames))
        }
    }
}

fn column_index(columns: &[Column], name: &str, pos: crate::ast::Pos) -> Result<usize, ExecError> {
    columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| ExecError::UnknownColumn {
            column: name.to_string(),
            line: pos.line,
            column_no: pos.column,
        })
}

/// The columns at `idx`, in that order.
fn select(frame: Frame, idx: &[usize]) -> Frame {
    let columns = idx.iter().map(|&i| frame.columns[i].clone()).collect();
    let rows = frame
        .rows
        .into_iter()
        .map(|row| idx.iter().map(|&i| row[i].clone()).collect())
        .collect();
    Frame { columns, rows }
}

fn project(items: &[NamedExpr], frame: Frame, now_ms: i64) -> Result<Frame, ExecError> {
    let mut names = Names::new(Vec::new());
    let mut columns = Vec::with_capacity(items.len());
    let mut bound = Vec::with_capacity(items.len());
    for item in items {
        let b = bind(&item.expr, &frame.columns)?;
        let wanted = item
            .name
            .as_ref()
            .map(|n| n.text.clone())
            .or_else(|| derived_name(&item.expr));
        if let Some(n) = &item.name {
            if names.taken.contains(&n.text) {
                return type_error(
                    n.pos,
                    format!("the column '{}' is projected twice", clip(&n.text)),
                );
            }
        }
        columns.push(Column::new(names.claim(wanted), b.ty));
        bound.push(b);
    }
    let rows = frame
        .rows
        .iter()
        .map(|row| {
            bound
                .iter()
                .map(|b| conform(b.eval(row, now_ms), b.ty))
                .collect()
        })
        .collect();
    Ok(Frame { columns, rows })
}

fn extend(items: &[NamedExpr], mut frame: Frame, now_ms: i64) -> Result<Frame, ExecError> {
    let mut names = Names::new(frame.columns.iter().map(|c| c.name.clone()));
    for item in items {
        let b = bind(&item.expr, &frame.columns)?;
        let values: Vec<Value> = frame
            .rows
            .iter()
            .map(|row| conform(b.eval(row, now_ms), b.ty))
            .collect();
        // An explicit name that exists replaces that column in place (Kusto's extend).
        let existing = item
            .name
            .as_ref()
            .and_then(|n| frame.columns.iter().position(|c| c.name == n.text));
        match existing {
            Some(i) => {
                frame.columns[i].column_type = b.ty;
                for (row, v) in frame.rows.iter_mut().zip(values) {
                    row[i] = v;
                }
            }
            None => {
                let wanted = item
                    .name
                    .as_ref()
                    .map(|n| n.text.clone())
                    .or_else(|| derived_name(&item.expr));
                frame.columns.push(Column::new(names.claim(wanted), b.ty));
                for (row, v) in frame.rows.iter_mut().zip(values) {
                    row.push(v);
                }
            }
        }
    }
    Ok(frame)
}

fn sort(keys: &[SortKey], frame: Frame, now_ms: i64) -> Result<Frame, ExecError> {
    let bound = keys
        .iter()
        .map(|k| bind(&k.expr, &frame.columns))
        .collect::<Result<Vec<_>, _>>()?;
    let mut keyed: Vec<(Vec<Value>, Vec<Value>)> = frame
        .rows
        .into_iter()
        .map(|row| (bound.iter().map(|b| b.eval(&row, now_ms)).collect(), row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        for ((x, y), k) in a.iter().zip(b).zip(keys) {
            let (xn, yn) = (is_null(x), is_null(y));
            let o = match (xn, yn) {
                (true, true) => Ordering::Equal,
                (true, false) => {
                    if k.nulls_first {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                }
                (false, true) => {
                    if k.nulls_first {
                        Ordering::Greater
                    } else {
                        Ordering::Less
                    }
                }
                (false, false) => {
                    let o = compare(x, y).unwrap_or_else(|| key_of(x).cmp(&key_of(y)));
                    if k.descending {
                        o.reverse()
                    } else {
                        o
                    }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    Ok(Frame {
        columns: frame.columns,
        rows: keyed.into_iter().map(|(_, row)| row).collect(),
    })
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Dynamic(serde_json::Value::Null))
}

/// The most values one `make_set`/`make_list` keeps (Kusto's default cap).
const MAKE_LIST_ITEMS_MAX: usize = 1_048_576;

/// The running state of one aggregate in one group.
#[derive(Clone, Debug)]
pub(crate) enum Acc {
    Count(i64),
    /// Longs and timespans are summed exactly (an `i128` cannot overflow on fewer than 2^64
    /// values), so a sum does not depend on how its input is split into parts
    /// ([`Summarizer::merge`]); one out of `i64`'s range at the end is null.
    Sum {
        long: i128,
        real: f64,
    },
    /// As `Sum`: longs exactly, reals as floats; the mean is taken at the end.
    Avg {
        long: i128,
        real: f64,
        n: u64,
    },
    Best(Option<Value>),
    Distinct(BTreeSet<Key>),
    /// `arg_max`/`arg_min`: the best key so far and the returned values of its row.
    Arg(Option<(Value, Vec<Value>)>),
    /// `percentile`: every non-null value (the nearest rank needs them all).
    Values(Vec<Value>),
    /// `make_list`/`make_set`: the items, and for a set the keys already in it.
    List(Vec<serde_json::Value>, BTreeSet<Key>),
}

/// An aggregate bound to the input columns, with its output columns.
pub(crate) struct BoundAgg {
    func: AggFn,
    arg: Option<Bound>,
    /// `arg_max`/`arg_min`: the expressions returned from the best row.
    returned: Vec<Bound>,
    /// `percentile`: the percentage; `make_*`: the item cap.
    param: f64,
    columns: Vec<Column>,
}

/// True when `a` is better than `b` for a min (`want` Less) or max (`want` Greater).
fn better(a: &Value, b: &Value, want: Ordering) -> bool {
    compare(a, b).unwrap_or_else(|| key_of(a).cmp(&key_of(b))) == want
}

impl BoundAgg {
    pub(crate) fn start(&self) -> Acc {
        match self.func {
            AggFn::Count | AggFn::CountIf => Acc::Count(0),
            AggFn::Sum => Acc::Sum { long: 0, real: 0.0 },
            AggFn::Avg => Acc::Avg {
                long: 0,
                real: 0.0,
                n: 0,
            },
            AggFn::Min | AggFn::Max => Acc::Best(None),
            AggFn::DCount => Acc::Distinct(BTreeSet::new()),
            AggFn::ArgMax | AggFn::ArgMin => Acc::Arg(None),
            AggFn::Percentile => Acc::Values(Vec::new()),
            AggFn::MakeSet | AggFn::MakeList => Acc::List(Vec::new(), BTreeSet::new()),
        }
    }

    fn add(&self, acc: &mut Acc, row: &[Value], now_ms: i64) {
        let v = self.arg.as_ref().map(|a| a.eval(row, now_ms));
        match (acc, v) {
            (Acc::Count(n), None) => *n += 1,
            (Acc::Count(n), Some(p)) if scalar(&p) == Value::Bool(true) => *n += 1,
            (Acc::Sum { long, real }, Some(v)) => match scalar(&v) {
                Value::Long(x) | Value::TimeSpan(x) => *long += i128::from(x),
                Value::Real(x) => *real += x,
                _ => {}
            },
            (Acc::Avg { long, real, n }, Some(v)) => match scalar(&v) {
                Value::Long(x) => {
                    *long += i128::from(x);
                    *n += 1;
                }
                Value::Real(x) => {
                    *real += x;
                    *n += 1;
                }
                _ => {}
            },
            (Acc::Best(best), Some(v)) if !is_null(&v) => {
                let want = if self.func == AggFn::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if best.as_ref().is_none_or(|b| better(&v, b, want)) {
                    *best = Some(v);
                }
            }
            (Acc::Distinct(set), Some(v)) if !is_null(&v) => {
                set.insert(key_of(&v));
            }
            (Acc::Arg(best), Some(v)) if !is_null(&v) => {
                let want = if self.func == AggFn::ArgMin {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                // Ties keep the first row, so the result does not depend on anything but order.
                if best.as_ref().is_none_or(|(b, _)| better(&v, b, want)) {
                    let values = self.returned.iter().map(|r| r.eval(row, now_ms)).collect();
                    *best = Some((v, values));
                }
            }
            (Acc::Values(values), Some(v)) if !is_null(&v) => values.push(v),
            (Acc::List(items, seen), Some(v)) if !is_null(&v) => {
                // The cap is a whole number within usize by construction (see bind_aggregate).
                let cap = self.param as usize;
                if items.len() < cap && (self.func == AggFn::MakeList || seen.insert(key_of(&v))) {
                    items.push(v.to_json());
                }
            }
            // Nulls are ignored; count() is the only aggregate without an argument.
            _ => {}
        }
    }

    /// Whether [`BoundAgg::merge`] of two parts gives exactly what one pass over both gives.
    /// Counts, distinct counts and sums or means of longs and timespans (kept exactly) do;
    /// min and max do for every type but reals and dynamic values (ties keep the earlier part's
    /// value, as one pass keeps the first; reals and dynamic values compare with NaN and mixed
    /// kinds, whose order is not a strict one). Sums and means of reals do not (float addition
    /// depends on its order), nor the aggregates that keep rows or values in input order
    /// (`arg_max`, `arg_min`, `percentile`, `make_set`, `make_list`).
    fn mergeable(&self) -> bool {
        let arg_ty = self.arg.as_ref().map(|b| b.ty);
        match self.func {
            AggFn::Count | AggFn::CountIf | AggFn::DCount => true,
            AggFn::Sum | AggFn::Avg => {
                matches!(arg_ty, Some(ColumnType::Long | ColumnType::TimeSpan))
            }
            AggFn::Min | AggFn::Max => {
                !matches!(arg_ty, None | Some(ColumnType::Real | ColumnType::Dynamic))
            }
            AggFn::ArgMax
            | AggFn::ArgMin
            | AggFn::Percentile
            | AggFn::MakeSet
            | AggFn::MakeList => false,
        }
    }

    /// Folds `later` (this aggregate over input after `into`'s) into `into`. Only called for an
    /// aggregate that is [`BoundAgg::mergeable`]; the others' states are left as they are.
    fn merge(&self, into: &mut Acc, later: Acc) {
        debug_assert!(self.mergeable(), "merge of a non-mergeable aggregate");
        match (into, later) {
            (Acc::Count(n), Acc::Count(m)) => *n = n.saturating_add(m),
            (Acc::Sum { long, real }, Acc::Sum { long: l, real: r }) => {
                *long += l;
                *real += r;
            }
            (
                Acc::Avg { long, real, n },
                Acc::Avg {
                    long: l,
                    real: r,
                    n: m,
                },
            ) => {
                *long += l;
                *real += r;
                *n += m;
            }
            (Acc::Best(best), Acc::Best(Some(v))) => {
                let want = if self.func == AggFn::Min {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
                if best.as_ref().is_none_or(|b| better(&v, b, want)) {
                    *best = Some(v);
                }
            }
            (Acc::Distinct(set), Acc::Distinct(other)) => set.extend(other),
            // A later min/max with no value changes nothing; the other aggregates are never
            // merged (a summarize is only split when every aggregate is mergeable).
            _ => {}
        }
    }

    fn finish(&self, acc: Acc) -> Vec<Value> {
        let ty = self
            .columns
            .first()
            .map_or(ColumnType::Dynamic, |c| c.column_type);
        let v = match acc {
            Acc::Count(n) => Value::Long(n),
            Acc::Sum { long, real } => match ty {
                ColumnType::Long => i64::try_from(long).map_or(Value::Null, Value::Long),
                ColumnType::TimeSpan => i64::try_from(long).map_or(Value::Null, Value::TimeSpan),
                _ => Value::Real(real + long as f64),
            },
            Acc::Avg { long, real, n } => {
                if n == 0 {
                    Value::Null
                } else {
                    Value::Real((real + long as f64) / n as f64)
                }
            }
            Acc::Best(best) => best.unwrap_or(Value::Null),
            Acc::Distinct(set) => Value::Long(i64::try_from(set.len()).unwrap_or(i64::MAX)),
            Acc::Arg(best) => {
                let (key, values) =
                    best.unwrap_or_else(|| (Value::Null, vec![Value::Null; self.returned.len()]));
                let mut out = vec![conform(key, ty)];
                for (v, c) in values.into_iter().zip(&self.columns[1..]) {
                    out.push(conform(v, c.column_type));
                }
                return out;
            }
            Acc::Values(mut values) => {
                values.sort_by(|a, b| compare(a, b).unwrap_or_else(|| key_of(a).cmp(&key_of(b))));
                // Nearest rank, as Kusto defines percentile(): the smallest value with at
                // least p% of the values at or below it.
                let n = values.len();
                let rank = ((self.param / 100.0) * n as f64).ceil() as usize;
                values
                    .get(rank.clamp(1, n.max(1)) - 1)
                    .cloned()
                    .unwrap_or(Value::Null)
            }
            Acc::List(items, _) => Value::Dynamic(serde_json::Value::Array(items)),
        };
        vec![conform(v, ty)]
    }
}

fn bind_aggregate(
    a: &Aggregate,
    columns: &[Column],
    by_names: &[String],
    names: &mut Names,
) -> Result<BoundAgg, ExecError> {
    let arg = a.args.first().map(|e| bind(e, columns)).transpose()?;
    let arg_ty = arg.as_ref().map(|b| b.ty);
    let bad = |what: &str| {
        type_error(
            a.pos,
            format!(
                "{}() expects {what}, found {}",
                a.func.name(),
                arg_ty.map_or("nothing", |t| t.name())
            ),
        )
    };
    use ColumnType as T;
    let ty = match (a.func, arg_ty) {
        (AggFn::Count | AggFn::DCount, _) => T::Long,
        (AggFn::CountIf, Some(T::Bool | T::Dynamic)) => T::Long,
        (AggFn::CountIf, _) => return bad("a bool predicate"),
        (AggFn::Sum, Some(t @ (T::Long | T::Real | T::TimeSpan))) => t,
        (AggFn::Sum, Some(T::Dynamic)) => T::Real,
        (AggFn::Sum, _) => return bad("a number or timespan"),
        (AggFn::Avg, Some(T::Long | T::Real | T::Dynamic)) => T::Real,
        (AggFn::Avg, _) => return bad("a number"),
        (AggFn::Percentile, Some(t @ (T::Long | T::Real | T::DateTime | T::TimeSpan))) => t,
        (AggFn::Percentile, Some(T::Dynamic)) => T::Real,
        (AggFn::Percentile, _) => return bad("a number, datetime or timespan"),
        (AggFn::MakeSet | AggFn::MakeList, _) => T::Dynamic,
        (AggFn::Min | AggFn::Max | AggFn::ArgMax | AggFn::ArgMin, Some(t)) => t,
        (_, None) => return bad("an argument"),
    };
    let first = a.args.first();
    let suffix = first.map(aggregate_suffix).unwrap_or_default();
    let mut param = 0.0;
    let default_name = match a.func {
        AggFn::Percentile => {
            param = match a.args.get(1).map(|e| &e.kind) {
                Some(ExprKind::Literal(Value::Long(p))) => *p as f64,
                Some(ExprKind::Literal(Value::Real(p))) => *p,
                _ => 50.0, // checked at parse time: a literal between 0 and 100
            };
            let p = crate::value::format_real(param).replace('.', "_");
            format!("percentile_{suffix}_{p}")
        }
        AggFn::MakeSet | AggFn::MakeList => {
            param = match a.args.get(1).map(|e| bind(e, columns)).transpose()? {
                None => MAKE_LIST_ITEMS_MAX as f64,
                Some(b) => match b.eval(&[], 0) {
                    Value::Long(n) if n > 0 => (n as f64).min(MAKE_LIST_ITEMS_MAX as f64),
                    _ => {
                        return type_error(
                            a.pos,
                            format!("{}() expects a positive long limit", a.func.name()),
                        )
                    }
                },
            };
            let word = if a.func == AggFn::MakeSet {
                "set"
            } else {
                "list"
            };
            format!("{word}_{suffix}")
        }
        // arg_max(x, ...) names its first column after x, as Kusto does.
        AggFn::ArgMax | AggFn::ArgMin => first
            .and_then(derived_name)
            .unwrap_or_else(|| format!("{}_", a.func.name())),
        _ => format!("{}_{suffix}", a.func.name()),
    };
    let name = a.name.as_ref().map_or(default_name, |n| n.text.clone());
    let mut out_columns = vec![Column::new(names.claim(Some(name)), ty)];

    let mut returned = Vec::new();
    if matches!(a.func, AggFn::ArgMax | AggFn::ArgMin) {
        let key_column = first.and_then(|e| match &e.kind {
            ExprKind::Column(c) => Some(c.clone()),
            _ => None,
        });
        for e in &a.args[1..] {
            let b = bind(e, columns)?;
            out_columns.push(Column::new(names.claim(derived_name(e)), b.ty));
            returned.push(b);
        }
        if a.all_columns {
            // Every input column not already out as a group key or as the maximized column.
            for (i, c) in columns.iter().enumerate() {
                if by_names.contains(&c.name) || key_column.as_ref() == Some(&c.name) {
                    continue;
                }
                returned.push(Bound {
                    kind: crate::eval::BKind::Col(i),
                    ty: c.column_type,
                });
                out_columns.push(Column::new(
                    names.claim(Some(c.name.clone())),
                    c.column_type,
                ));
            }
        }
    }
    Ok(BoundAgg {
        func: a.func,
        arg,
        returned,
        param,
        columns: out_columns,
    })
}

fn summarize(
    aggs: &[Aggregate],
    by: &[NamedExpr],
    frame: Frame,
    now_ms: i64,
) -> Result<Frame, ExecError> {
    let summarizer = Summarizer::bind(aggs, by, &frame.columns)?;
    let mut groups = summarizer.groups();
    for (seq, row) in (0u64..).zip(&frame.rows) {
        let at = RowAt {
            time_ms: 0,
            part: 0,
            seq,
        };
        summarizer.add(&mut groups, row, now_ms, at);
    }
    Ok(summarizer.finish(groups))
}

/// A `summarize` bound to its input's columns: the `by` expressions, the aggregates and the
/// output columns. [`Summarizer::add`] folds rows into [`Groups`]; [`Summarizer::merge`] folds
/// the groups of a later part of the input into those of an earlier one, so that a reader can
/// summarize its input in parts (the storage scan does, block by block on its threads) and get
/// what one pass over the whole input gives, when every aggregate [`Summarizer::mergeable`].
pub(crate) struct Summarizer {
    by: Vec<Bound>,
    pub(crate) aggs: Vec<BoundAgg>,
    columns: Vec<Column>,
}

/// One group of a `summarize`: its key values and its running aggregates.
pub(crate) type Group = (Vec<Value>, Vec<Acc>);

/// Groups of a `summarize` in order of first appearance, with their running aggregates. The
/// index only finds a row's group: by a hash of its key values (their `Key` identity, computed
/// without copying them), then by comparing with the groups in that bucket, so a row of an
/// existing group copies nothing. Bounded by the input: one group per distinct key.
#[derive(Debug)]
pub struct Groups {
    index: BTreeMap<u64, Vec<usize>>,
    pub(crate) groups: Vec<Group>,
    /// Per group, where its first row is ([`RowAt`]: the least of its rows' positions).
    pub(crate) first: Vec<RowAt>,
    /// The rows folded in, over every group.
    pub(crate) rows: u64,
    /// An empty vector whose allocation [`Summarizer::add`] reuses for a row's key values.
    scratch: Vec<Cow<'static, Value>>,
}

impl Groups {
    /// How many rows were folded into the groups (merged parts' included).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there is no group (a summarize with `by` over no rows).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The group whose key values are `values`, if there is one.
    pub(crate) fn find<V: std::borrow::Borrow<Value>>(
        &self,
        hash: u64,
        values: &[V],
    ) -> Option<usize> {
        self.index.get(&hash)?.iter().copied().find(|&g| {
            self.groups[g]
                .0
                .iter()
                .zip(values)
                .all(|(a, b)| same_key(a, b.borrow()))
        })
    }

    /// Adds a new group (the caller checked it is not there) whose first row is at `first`.
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        values: Vec<Value>,
        accs: Vec<Acc>,
        first: RowAt,
    ) -> usize {
        self.groups.push((values, accs));
        self.first.push(first);
        let g = self.groups.len() - 1;
        self.index.entry(hash).or_default().push(g);
        g
    }
}

impl Summarizer {
    /// The positions of the cells [`Summarizer::add`] reads (its `by` keys and aggregate
    /// arguments), ascending.
    pub(crate) fn columns_read(&self) -> Vec<usize> {
        let aggs = self
            .aggs
            .iter()
            .flat_map(|a| a.arg.iter().chain(&a.returned));
        let mut out: Vec<usize> = self
            .by
            .iter()
            .chain(aggs)
            .flat_map(Bound::columns_read)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Binds `summarize aggs by by` to `columns` (errors before any row is read).
    pub(crate) fn bind(
        aggs: &[Aggregate],
        by: &[NamedExpr],
        columns: &[Column],
    ) -> Result<Summarizer, ExecError> {
        let by_bound = by
            .iter()
            .map(|b| bind(&b.expr, columns))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names = Names::new(Vec::new());
        let mut out = Vec::with_capacity(by.len() + aggs.len());
        for (b, bound) in by.iter().zip(&by_bound) {
            let wanted = b
                .name
                .as_ref()
                .map(|n| n.text.clone())
                .or_else(|| derived_name(&b.expr));
            out.push(Column::new(names.claim(wanted), bound.ty));
        }
        let by_names: Vec<String> = out.iter().map(|c| c.name.clone()).collect();
        let agg_bound = aggs
            .iter()
            .map(|a| bind_aggregate(a, columns, &by_names, &mut names))
            .collect::<Result<Vec<_>, _>>()?;
        for a in &agg_bound {
            out.extend(a.columns.iter().cloned());
        }
        Ok(Summarizer {
            by: by_bound,
            aggs: agg_bound,
            columns: out,
        })
    }

    /// The output columns: the `by` columns, then the aggregates'.
    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Whether summarizing in parts and merging them gives exactly what one pass gives: true
    /// when every aggregate merges exactly ([`BoundAgg::mergeable`]).
    pub(crate) fn mergeable(&self) -> bool {
        self.aggs.iter().all(BoundAgg::mergeable)
    }

    /// No groups yet (without `by`, the one group, which exists even for an empty input).
    pub(crate) fn groups(&self) -> Groups {
        let mut groups = self.no_groups();
        if self.by.is_empty() {
            // The one group comes first whatever its rows.
            groups.insert(
                key_hash::<&Value>(&[]),
                Vec::new(),
                self.start(),
                RowAt::FIRST,
            );
        }
        groups
    }

    /// No groups at all, not even the one of a summarize without `by` (for a decoder that
    /// reads that group).
    pub(crate) fn no_groups(&self) -> Groups {
        Groups {
            index: BTreeMap::new(),
            groups: Vec::new(),
            first: Vec::new(),
            rows: 0,
            scratch: Vec::with_capacity(self.by.len()),
        }
    }

    /// How many `by` keys the summarize has.
    pub(crate) fn by_len(&self) -> usize {
        self.by.len()
    }

    pub(crate) fn start(&self) -> Vec<Acc> {
        self.aggs.iter().map(BoundAgg::start).collect()
    }

    /// Folds one row, which is at `at` in the reader's order, into its group (made when the
    /// row is its first).
    pub(crate) fn add(&self, groups: &mut Groups, row: &[Value], now_ms: i64, at: RowAt) {
        // The key values borrow the row; their vector is the scratch one (a vector of
        // `'static` values is one of shorter-lived values), emptied and handed back below with
        // its allocation, so that a row of an existing group allocates nothing.
        let mut values: Vec<Cow<'_, Value>> = std::mem::take(&mut groups.scratch);
        values.extend(self.by.iter().map(|b| match b.eval_cow(row, now_ms) {
            Cow::Borrowed(v) if !changed_by_conform(v, b.ty) => Cow::Borrowed(v),
            v => Cow::Owned(conform(v.into_owned(), b.ty)),
        }));
        let hash = key_hash(&values);
        let g = match groups.find(hash, &values) {
            Some(g) => {
                if at < groups.first[g] {
                    groups.first[g] = at;
                }
                g
            }
            None => {
                let owned = values.drain(..).map(Cow::into_owned).collect();
                groups.insert(hash, owned, self.start(), at)
            }
        };
        groups.rows += 1;
        values.clear();
        // Empty, so nothing is converted: re-collecting it in place keeps the allocation.
        groups.scratch = values
            .into_iter()
            .map(|v| Cow::Owned(v.into_owned()))
            .collect();
        for (agg, acc) in self.aggs.iter().zip(groups.groups[g].1.iter_mut()) {
            agg.add(acc, row, now_ms);
        }
    }

    /// The parts of the group key, when every aggregate is `count()` and every `by` is a
    /// column or `bin()` of a datetime column by a constant positive timespan (see
    /// [`KeyPart`]); `None` otherwise.
    pub(crate) fn counted_keys(&self) -> Option<Vec<KeyPart>> {
        if !self
            .aggs
            .iter()
            .all(|a| a.func == AggFn::Count && a.arg.is_none())
        {
            return None;
        }
        self.by
            .iter()
            .map(|b| match &b.kind {
                BKind::Col(cell) => Some(KeyPart::Cell(*cell)),
                BKind::Call(Func::Bin, args) if b.ty == ColumnType::DateTime => {
                    match (&args.first()?.kind, &args.get(1)?.kind) {
                        (BKind::Col(cell), BKind::Const(Value::TimeSpan(step_ms)))
                            if args[0].ty == ColumnType::DateTime && *step_ms > 0 =>
                        {
                            Some(KeyPart::DateTimeBin {
                                cell: *cell,
                                step_ms: *step_ms,
                            })
                        }
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    /// As `rows` calls of [`Summarizer::add`] with rows whose group key is `key` (the values
    /// [`KeyPart`] says), the least of them at `first`; only for a summarize with
    /// [`Summarizer::counted_keys`], `rows` ≥ 1.
    pub(crate) fn add_counts(&self, groups: &mut Groups, key: Vec<Value>, rows: u64, first: RowAt) {
        debug_assert!(self.counted_keys().is_some() && key.len() == self.by.len());
        let hash = key_hash(&key);
        let g = match groups.find(hash, &key) {
            Some(g) => {
                if first < groups.first[g] {
                    groups.first[g] = first;
                }
                g
            }
            None => groups.insert(hash, key, self.start(), first),
        };
        groups.rows = groups.rows.saturating_add(rows);
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        for acc in groups.groups[g].1.iter_mut() {
            if let Acc::Count(n) = acc {
                *n = n.saturating_add(rows);
            }
        }
    }

    /// Folds `later` (groups of input that comes after `into`'s) into `into`: a group new to
    /// `into` comes after its groups, in `later`'s order, as one pass would have made it, and
    /// a group's first row is the least of the two. Exact only when [`Summarizer::mergeable`].
    pub(crate) fn merge(&self, into: &mut Groups, later: Groups) {
        into.rows = into.rows.saturating_add(later.rows);
        for ((values, accs), first) in later.groups.into_iter().zip(later.first) {
            let hash = key_hash(&values);
            match into.find(hash, &values) {
                Some(g) => {
                    if first < into.first[g] {
                        into.first[g] = first;
                    }
                    for ((agg, acc), other) in
                        self.aggs.iter().zip(into.groups[g].1.iter_mut()).zip(accs)
                    {
                        agg.merge(acc, other);
                    }
                }
                None => {
                    into.insert(hash, values, accs, first);
                }
            }
        }
    }

    /// The output: one row per group, in order of first appearance.
    fn finish(&self, groups: Groups) -> Frame {
        debug_assert_eq!(
            groups.groups.len(),
            groups.index.values().map(Vec::len).sum::<usize>(),
            "one group per distinct key"
        );
        let rows = groups
            .groups
            .into_iter()
            .map(|(mut values, accs)| {
                for (a, acc) in self.aggs.iter().zip(accs) {
                    values.extend(a.finish(acc));
                }
                debug_assert_eq!(values.len(), self.columns.len());
                values
            })
            .collect();
        Frame {
            columns: self.columns.clone(),
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Bound::holds` (the fast predicate test the scan and `where` use) answers as testing the
    /// general evaluator's value, for the shapes it shortcuts and cells of every other kind.
    #[test]
    fn holds_answers_as_the_general_evaluator() {
        let columns = vec![
            Column::new("T", ColumnType::DateTime),
            Column::new("L", ColumnType::Long),
            Column::new("S", ColumnType::String),
        ];
        let times = [
            Value::DateTime(86_400_000),
            Value::DateTime(0),
            Value::Null,
            Value::Long(86_400_000),
            Value::String("1970-01-02".into()),
        ];
        let longs = [
            Value::Long(3),
            Value::Long(1),
            Value::Null,
            Value::Real(3.0),
            Value::Dynamic(serde_json::json!(3)),
        ];
        let strings = [
            Value::String("Web-1".into()),
            Value::String(String::new()),
            Value::String("dé-web".into()),
            Value::Null,
            Value::Long(7),
            Value::Dynamic(serde_json::json!("web")),
        ];
        let predicates = [
            "T between (datetime(1970-01-01) .. datetime(1970-01-02))",
            "T !between (datetime(1970-01-01) .. datetime(1970-01-01T12:00:00Z))",
            "L between (1 .. 3)",
            "L >= 3",
            "L != 1",
            "T < datetime(1970-01-02)",
            "L < 3 and S contains 'web'",
            "S contains 'WEB' or L == 3",
            "not(L == 3)",
            "S !contains 'web'",
            "S has 'web'",
            "S startswith_cs 'W'",
            "T > datetime(1970-01-01) and (L != 3 or S endswith '1')",
            "L in (1, 3)",
            "S == 'Web-1'",
        ];
        for text in predicates {
            let query = crate::parse(&format!("X | where {text}")).unwrap();
            let Some(Op::Where(e)) = query.body.ops.first() else {
                panic!("{text}: a where");
            };
            let bound = bind_predicate(e, &columns).unwrap();
            let mut checked = 0;
            for t in &times {
                for l in &longs {
                    for s in &strings {
                        let row = [t.clone(), l.clone(), s.clone()];
                        let general = matches!(scalar(&bound.eval(&row, 0)), Value::Bool(true));
                        assert_eq!(bound.holds(&row, 0), general, "{text} over {row:?}");
                        checked += 1;
                    }
                }
            }
            assert_eq!(checked, 150);
        }
    }
}
