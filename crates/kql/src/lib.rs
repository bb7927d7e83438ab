//! A KQL (Kusto Query Language) subset: the parser and the evaluator behind cmksim's Logs Query
//! API, `cmksim query` and a scenario's `kql = "..."` steps.
//!
//! Pure domain logic: no I/O, no clock (`now` is an argument), no randomness, and no hash-map
//! iteration order in any output, so the same query over the same rows always gives the same
//! table, byte for byte.
//!
//! # Using it
//! - [`parse`] turns the text into a [`Query`] or a [`ParseError`] with the 1-based line and
//!   column (in characters) of the offending token and what was expected there.
//! - [`Query::tables`] and [`Query::time_bounds`] tell the storage what to read: the tables and
//!   the `TimeGenerated` range the leading `where` clauses allow (pushed down to the block scan).
//! - [`execute`] runs the query over decoded [`Table`]s and gives the `PrimaryResult` table;
//!   [`Value::to_json`] and [`ColumnType::name`] give the Logs Query API's cells and types.
//!
//! # The subset
//! - Sources: a table name (or `['name']`), `union T1, T2, (T3 | where ...)`, and
//!   `let name = <scalar expression>;` statements before the query (inlined where named).
//! - Operators: `where` (`filter`), `project`, `project-away`, `project-rename`, `extend`,
//!   `summarize [aggs] [by ...]` with `count()`, `countif()`, `sum()`, `avg()`, `min()`,
//!   `max()`, `dcount()`, `arg_max()`, `arg_min()`, `percentile()`, `make_set()`,
//!   `make_list()`; `order by` / `sort by` with `asc`/`desc` and `nulls first|last`;
//!   `take` / `limit`; `top N by expr`; `count`; `distinct a, b` / `distinct *`; `| union`;
//!   `render` (accepted and ignored: a chart hint for the client).
//! - Predicates: `== != < <= > >=`, `=~ !~`, `and`, `or`, `not()`; `contains`, `has`,
//!   `startswith`, `endswith`, each with `_cs` and `!` forms; `in`, `!in`, `in~`, `!in~`;
//!   `between (a .. b)` and `!between` (`datetime .. timespan` too).
//! - Literals: `'..'` and `".."` with backslash escapes, `@'..'` verbatim, `h'..'`; longs,
//!   reals, `true`/`false`; timespans `100ms 30s 5m 1h 2d 1.5h`; `datetime(2020-07-05)`,
//!   `datetime(2020-07-05T12:00:00Z)`, `datetime(null)`; `dynamic({...})`; `long(null)` and the
//!   like; `//` comments.
//! - Expressions: `+ - * / %` over longs and reals, datetime ± timespan, datetime − datetime,
//!   timespan arithmetic; `d.field`, `d["field"]`, `d[0]` on dynamic values; the scalar
//!   functions listed in the `eval` module (`ago`, `now`, `strlen`, `tolower`, `toupper`,
//!   `strcat`, `substring`, `split`, `replace_string`, `indexof`, `isempty`, `isnotempty`,
//!   `isnull`, `isnotnull`, `tostring`, `toint`/`tolong`, `toreal`/`todouble`, `todatetime`,
//!   `totimespan`, `tobool`, `bin`/`floor`, `round`, `abs`, `sqrt`, `pow`, `iff`/`iif`, `case`,
//!   `coalesce`, `parse_json`/`todynamic`, `array_length`, `startofday`).
//! - Not supported: `join`, `lookup`, `mv-expand`, `parse`, `extract` and regular expressions,
//!   `make-series`, `search`, `find`, tabular `let`s and user functions, `summarize`
//!   over expressions of aggregates (`sum(x) / count()`), `dcountif`/`sumif` and the other
//!   aggregates not listed above, `union kind=`/`withsource=` and wildcard table names.
//!
//! Keywords are case-sensitive, as in Kusto. Semantics follow Kusto's documentation where it
//! speaks (default sort order descending, nulls last descending and first ascending, `has`
//! matching whole terms, aggregation defaults over empty input); where it does not, the choice
//! is documented on the module that makes it (`exec` for operators, `eval` for expressions,
//! `bounds` for the pushdown). In particular `summarize` outputs its groups in order of first
//! appearance in its input, and `dcount()` is exact.
//!
//! # Limits
//! Every input size has a bound, refused with an error rather than served slowly: see
//! [`QUERY_BYTES_MAX`], [`EXPR_DEPTH_MAX`], [`UNION_LEGS_MAX`], [`IN_LIST_ITEMS_MAX`] and
//! [`RESULT_ROWS_MAX`]. No input makes the parser or the evaluator panic or overflow the stack
//! (tests/fuzz.rs feeds them prefixes, random bytes and random token sequences).
//!
//! # Why this parser
//! Evaluated first: the `kqlparser` crate (0.0.4, the only KQL parser on crates.io; nom 7,
//! about 1,200 lines, one author). It parses far more of KQL than we run, but it does not fit
//! an API that must answer a 400 with line, column and what was expected: its syntax tree
//! carries no positions, its errors are nom's bare `ErrorKind`s, it `unwrap()`s number
//! conversions (a long hex literal such as `0xFFFFFFFFFFFFFFFFFF` panics), its recursion has
//! no depth limit (deep parentheses overflow the stack), it keeps options in a `HashMap`, and
//! it reads `order by` keys as plain names. Wrapping it would have meant re-parsing to find
//! positions. So the lexer is written with **winnow** (0.7, maintained, fast, already in our
//! tree through `toml`): combinators for the character-level work (escapes, verbatim strings,
//! timespan suffixes, raw `datetime(...)`/`dynamic(...)` bodies, `!`-words) with byte offsets
//! for every token; and the grammar is a small recursive descent over those tokens, so each
//! rule names what it expected at the exact token, and nesting is counted as it descends.
//! `chumsky` would also give good errors, but its error recovery and type-heavy combinators
//! cost build time on a shared two-core machine for little gain at this grammar's size.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ast;
mod bounds;
mod eval;
mod exec;
mod lexer;
mod parser;
mod partial;
mod pushdown;
mod render;
mod time;
mod value;

use std::collections::BTreeMap;

pub use ast::{Pos, Query};
pub use partial::GroupsError;
pub use render::{RenderValue, Visualization, PROPERTIES, VISUALIZATIONS};
pub use time::{format_datetime, format_timespan, parse_datetime};
pub use value::{Column, ColumnType, Table, Value};

/// The longest query text accepted, in bytes (64 KiB).
pub const QUERY_BYTES_MAX: usize = 64 * 1024;
/// The deepest nesting of expressions (parentheses, calls, operators) accepted.
pub const EXPR_DEPTH_MAX: usize = 64;
/// The most legs a `union` may have.
pub const UNION_LEGS_MAX: usize = 10;
/// The most rows a result may have (Kusto's default result-set limit).
pub const RESULT_ROWS_MAX: usize = 500_000;
/// The most items an `in (...)` list may have.
pub const IN_LIST_ITEMS_MAX: usize = 1_000;

/// A query that could not be parsed: where, and what was expected there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// The 1-based line of the offending token.
    pub line: u32,
    /// The 1-based column, in characters, of the offending token.
    pub column: u32,
    /// What was expected (and what was found).
    pub message: String,
}

/// A query that parsed but could not run over the given tables.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ExecError {
    /// The query names a table the caller did not provide.
    #[error("unknown table '{}'", lexer::clip(.0))]
    UnknownTable(String),
    /// A column the rows at that point do not have.
    #[error("{line}:{column_no}: unknown column '{}'", lexer::clip(.column))]
    UnknownColumn {
        /// The column name as written.
        column: String,
        /// The 1-based line where it is named.
        line: u32,
        /// The 1-based column where it is named.
        column_no: u32,
    },
    /// Operands or arguments of the wrong type (`Computer == 5`, `sum(Computer)`).
    #[error("{line}:{column_no}: {message}")]
    Type {
        /// What is wrong.
        message: String,
        /// The 1-based line of the operator or call.
        line: u32,
        /// The 1-based column of the operator or call.
        column_no: u32,
    },
    /// A limit was passed (see the `*_MAX` constants).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A table given to [`execute`] whose rows do not match its columns.
    #[error("invalid table: {0}")]
    InvalidTable(String),
}

/// Parses a query.
///
/// # Errors
/// A [`ParseError`] with the 1-based line and column of the offending token, saying what was
/// expected there and what was found; also for a query over a limit ([`QUERY_BYTES_MAX`],
/// [`EXPR_DEPTH_MAX`], [`UNION_LEGS_MAX`], [`IN_LIST_ITEMS_MAX`]).
pub fn parse(text: &str) -> Result<Query, ParseError> {
    parser::parse_query(text)
}

impl Query {
    /// The tables the query reads (source tables and `union` legs), sorted, deduplicated.
    pub fn tables(&self) -> Vec<String> {
        bounds::tables(self)
    }

    /// Bounds on `TimeGenerated` implied by the leading `where` clauses of every source, as
    /// `[from, to)` in Unix ms; `None` where unbounded. Conservative: never excludes a row the
    /// query could keep.
    pub fn time_bounds(&self, now_ms: i64) -> (Option<i64>, Option<i64>) {
        bounds::time_bounds(self, now_ms)
    }

    /// The chart the query asks for: its last `render`, if any.
    pub fn visualization(&self) -> Option<&Visualization> {
        self.body.ops.iter().rev().find_map(|op| match op {
            ast::Op::Render(v) => Some(v),
            _ => None,
        })
    }

    /// The filter a reader may apply to `table`'s rows page by page, before it keeps them: the
    /// leading `where`s of a query whose source is that one table (`T | where a | where b |
    /// ...`). `None` when the query has no such filter (another source, a `union`, or no
    /// leading `where`): the reader keeps every row. The query applies the same predicates
    /// again when it runs; they are pure, so applying them twice changes nothing.
    ///
    /// # Errors
    /// The errors [`execute`] would give for those predicates (an unknown column, a type
    /// mismatch), with their positions.
    pub fn row_filter(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Option<RowFilter>, ExecError> {
        Ok(exec::leading_filter(self, table, columns)?.map(RowFilter::new))
    }
}

impl Query {
    /// The columns of `table` (its `columns`, in order) the query can read, in the table's
    /// order: a reader may hand [`execute`] a table of only these columns (and bind
    /// [`Query::row_filter`] to them) and get the same answer. `None` when the query may read
    /// or output every column (see the `pushdown` module for the rule).
    pub fn projection(&self, table: &str, columns: &[Column]) -> Option<Vec<Column>> {
        pushdown::projection(self, table, columns)
    }
}

impl Query {
    /// The query's `summarize` split into parts, for a reader that summarizes its rows as it
    /// reads them (the storage scan, block by block on its threads) instead of handing every
    /// row to [`execute`]: for a query shaped `table | where ... | summarize ... | ...` (no
    /// `union`) whose aggregates all merge exactly (`count()`, `countif()`, `dcount()`;
    /// `sum()`/`avg()` of longs and timespans; `min()`/`max()` of anything but reals and
    /// dynamic values: see [`SummarizePlan`]). `None` for any other query: the reader hands
    /// rows to [`execute`] as before. `columns` are those the reader decodes (its projection,
    /// to which [`Query::row_filter`] is bound too).
    ///
    /// # Errors
    /// The errors [`execute`] would give for the summarize (an unknown column, a type mismatch).
    pub fn summarize_plan(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Option<SummarizePlan>, ExecError> {
        Ok(exec::summarize_parts(self, table, columns)?.map(|parts| SummarizePlan { parts }))
    }
}

/// What one value of a counted summarize's group key is made of
/// ([`SummarizePlan::counted_keys`]), from the cells of a row the query's [`RowFilter`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The cell at this position as it is, when it is null or of its column's declared type
    /// (the value [`SummarizePlan::add`] would use; a cell of another kind is converted there,
    /// so a reader with such a cell adds its rows instead).
    Cell(usize),
    /// `bin(cell, step)` of the datetime cell at this position: for a cell holding
    /// `Value::DateTime(t)`, `Value::DateTime(b)` with `b` = [`bin_datetime`]`(t, step_ms)`,
    /// or `Value::Null` when that is `None`.
    DateTimeBin {
        /// The cell's position.
        cell: usize,
        /// The bin's length in ms (> 0).
        step_ms: i64,
    },
}

/// Kusto's `bin()` of a datetime or timespan of `ms` by `step_ms`: rounded down (towards the
/// past) to a multiple of `step_ms`; `None` when `step_ms` is not positive or the result does
/// not fit (KQL then gives null).
pub fn bin_datetime(ms: i64, step_ms: i64) -> Option<i64> {
    eval::bin_i64(ms, step_ms)
}

/// Where a row comes in the input a summarize runs over, in the reader's order: by
/// `TimeGenerated` (Unix ms), then by the part of the input it came from (the front end's rank
/// of the storage that holds it), then by its place within that part (a storage's scan order).
/// The Logs Query API's rows path hands [`execute`] a table's rows in exactly this order
/// (storage answers rows by time and scan order, the front end merges storages by time, then
/// storage), so a reader that summarizes in parts gives each row its `RowAt` and the groups
/// come out in the order `execute` gives them: by their first rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowAt {
    /// The row's `TimeGenerated`, Unix ms (0 where the order is the input's own).
    pub time_ms: i64,
    /// The part of the input (the storage's rank).
    pub part: u32,
    /// The row's place within its part.
    pub seq: u64,
}

impl RowAt {
    /// Before every row: the one group of a summarize without `by`.
    pub const FIRST: RowAt = RowAt {
        time_ms: i64::MIN,
        part: 0,
        seq: 0,
    };
}

/// A query's `summarize` evaluated in parts (from [`Query::summarize_plan`]).
///
/// A reader starts each part of its input with [`SummarizePlan::groups`], folds into it every
/// row the query's [`RowFilter`] keeps ([`SummarizePlan::add`], with the row's place in the
/// input, [`RowAt`]), merges the parts in any order ([`SummarizePlan::merge`]), and gets the
/// query's result from [`SummarizePlan::finish`]. The result is the one [`execute`] gives over
/// the same rows in [`RowAt`] order, whatever the split: the groups come in order of their
/// first rows, counts and sums of longs are exact, and `min()`/`max()` are of types whose ties
/// are equal values. No row is kept. Parts may cross a process boundary:
/// [`SummarizePlan::encode`] and [`SummarizePlan::decode`] (storage summarizes, the front end
/// merges the storages' parts).
pub struct SummarizePlan {
    parts: exec::SummarizeParts,
}

pub use exec::Groups;

impl std::fmt::Debug for SummarizePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummarizePlan")
            .field("columns", &self.parts.summarizer.columns())
            .finish()
    }
}

impl SummarizePlan {
    /// An empty part.
    pub fn groups(&self) -> Groups {
        self.parts.summarizer.groups()
    }

    /// Folds one row (cells in the order of the columns the plan was made for), which is at
    /// `at` in the input, into `groups`; only rows the query's [`RowFilter`] keeps. `now_ms`
    /// as for [`execute`].
    pub fn add(&self, groups: &mut Groups, row: &[Value], now_ms: i64, at: RowAt) {
        self.parts.summarizer.add(groups, row, now_ms, at);
    }

    /// The positions of the cells [`SummarizePlan::add`] reads (in the columns the plan was
    /// made for), ascending: a reader may leave the other cells of the rows it adds null.
    pub fn columns_read(&self) -> Vec<usize> {
        self.parts.summarizer.columns_read()
    }

    /// For a summarize whose aggregates are all `count()` and whose `by` keys are each a column
    /// or `bin()` of a datetime column by a constant timespan: what each key is computed from
    /// ([`KeyPart`], in the order of the `by` list). A reader may then count the kept rows of
    /// each distinct key itself (for instance per dictionary entry and bin of a block) and hand
    /// each key's count to [`SummarizePlan::add_counts`], in the order of the key's first row;
    /// the groups are those [`SummarizePlan::add`] of the same rows gives. `None` for any other
    /// summarize: the reader adds rows.
    pub fn counted_keys(&self) -> Option<Vec<KeyPart>> {
        self.parts.summarizer.counted_keys()
    }

    /// As `rows` (≥ 1) calls of [`SummarizePlan::add`] with rows whose group key is `key`
    /// (one value per [`KeyPart`] of [`SummarizePlan::counted_keys`], as the part says), the
    /// least of them at `first`.
    ///
    /// # Panics
    /// In debug builds, when the plan has no [`SummarizePlan::counted_keys`] or `key` is not
    /// one value per part.
    pub fn add_counts(&self, groups: &mut Groups, key: Vec<Value>, rows: u64, first: RowAt) {
        self.parts.summarizer.add_counts(groups, key, rows, first);
    }

    /// Folds `later`, another part of the input, into `into`.
    pub fn merge(&self, into: &mut Groups, later: Groups) {
        self.parts.summarizer.merge(into, later);
    }

    /// `groups` as bytes, for a reader in another process ([`SummarizePlan::decode`] with the
    /// same query's plan). The format is this crate's own (the `partial` module documents it):
    /// the groups' keys, running aggregates and first rows.
    pub fn encode(&self, groups: &Groups) -> Vec<u8> {
        partial::encode(groups)
    }

    /// Groups from [`SummarizePlan::encode`]'s bytes, each first row's [`RowAt::part`] set to
    /// `part` (the reader's rank of the part; the encoder's is not kept).
    ///
    /// # Errors
    /// [`GroupsError`] for bytes that are not groups of this plan (truncated, another shape of
    /// key or aggregate, a key twice, a string that is not UTF-8).
    pub fn decode(&self, bytes: &[u8], part: u32) -> Result<Groups, GroupsError> {
        partial::decode(&self.parts.summarizer, bytes, part)
    }

    /// The query's result from the merged parts: the summarize's rows, then the operators
    /// after it.
    ///
    /// # Errors
    /// As [`execute`]'s for the operators after the summarize, and [`ExecError::TooLarge`].
    pub fn finish(&self, groups: Groups, now_ms: i64) -> Result<Table, ExecError> {
        self.parts.finish(groups, now_ms)
    }
}

/// Predicates bound to one table's columns (from [`Query::row_filter`]).
///
/// The filter is a conjunction: the leading `where`s, each split at its top-level `and`s. A
/// reader may test the conjuncts one by one, in any order, each on a row whose cells it reads
/// ([`RowFilter::conjunct_columns`]) are the row's: a conjunct that reads one column can be
/// tested once per distinct value of that column (the storage scan does, per block dictionary).
/// The predicates are pure and `and` keeps a row iff every part does, so the answer is
/// [`RowFilter::keeps`]'s.
pub struct RowFilter {
    preds: Vec<eval::Bound>,
    /// Per conjunct, the positions of the cells it reads, ascending.
    columns: Vec<Vec<usize>>,
}

impl std::fmt::Debug for RowFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowFilter")
            .field("predicates", &self.preds.len())
            .finish()
    }
}

impl RowFilter {
    fn new(preds: Vec<eval::Bound>) -> RowFilter {
        let preds = eval::conjuncts(preds);
        let columns = preds.iter().map(eval::Bound::columns_read).collect();
        RowFilter { preds, columns }
    }

    /// Whether the query could keep `row` (cells in the order of the columns the filter was
    /// bound to); `now_ms` is the query's "now", the same value later given to [`execute`].
    pub fn keeps(&self, row: &[Value], now_ms: i64) -> bool {
        exec::keeps(&self.preds, row, now_ms)
    }

    /// How many conjuncts the filter has.
    pub fn conjuncts(&self) -> usize {
        self.preds.len()
    }

    /// The positions (in the bound columns) of the cells conjunct `i` reads, ascending; empty
    /// for a conjunct that reads none (its answer is the same for every row).
    ///
    /// # Panics
    /// If `i` is not below [`RowFilter::conjuncts`].
    pub fn conjunct_columns(&self, i: usize) -> &[usize] {
        &self.columns[i]
    }

    /// When conjunct `i` is exactly a range test of one datetime column against constants
    /// (`T between (a .. b)`, `T == a`, `T < a`, `T <= a`, `T > a`, `T >= a`, either way round,
    /// with `a` and `b` free of columns: `datetime(...)`, `ago(...)`, `now()` and arithmetic on
    /// them, evaluated at `now_ms`): the column's position and the inclusive range
    /// `(low, high)` of Unix ms it keeps (empty when `low > high`). For a row whose cell there
    /// holds `Value::DateTime(t)`, [`RowFilter::conjunct_keeps`] is `low <= t && t <= high`,
    /// so a reader may test the integers, or a whole block by its least and greatest time. A
    /// cell of another kind (a null) is tested with [`RowFilter::conjunct_keeps`]. `None` for
    /// any other conjunct.
    ///
    /// # Panics
    /// If `i` is not below [`RowFilter::conjuncts`].
    pub fn conjunct_datetime_range(&self, i: usize, now_ms: i64) -> Option<(usize, i64, i64)> {
        self.preds[i].datetime_range(now_ms)
    }

    /// Whether conjunct `i` keeps `row`: only the cells of [`RowFilter::conjunct_columns`]
    /// are read (the others may hold anything).
    ///
    /// # Panics
    /// If `i` is not below [`RowFilter::conjuncts`].
    pub fn conjunct_keeps(&self, i: usize, row: &[Value], now_ms: i64) -> bool {
        self.preds[i].holds(row, now_ms)
    }
}

/// Runs the query over the given tables (by name; a table the query names but the map lacks
/// is [`ExecError::UnknownTable`]). The result table is named "PrimaryResult". `now_ms` is the
/// query's "now" (Unix ms) for `now()` and `ago()`; nothing here reads a clock.
///
/// # Errors
/// [`ExecError::UnknownTable`] and [`ExecError::UnknownColumn`] for names the data lacks,
/// [`ExecError::Type`] for operands of the wrong type (found before any row is read, with the
/// position of the operator or call), [`ExecError::TooLarge`] for a result over
/// [`RESULT_ROWS_MAX`] rows, [`ExecError::InvalidTable`] for a table whose rows do not match
/// its columns.
pub fn execute(
    query: &Query,
    tables: &BTreeMap<String, Table>,
    now_ms: i64,
) -> Result<Table, ExecError> {
    exec::run(query, tables, now_ms)
}
