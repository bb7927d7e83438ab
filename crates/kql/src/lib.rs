//! A KQL (Kusto Query Language) subset: the parser and the evaluator behind cmksim's Logs Query
//! API, `cmksim query` and a scenario's `kql = "..."` steps.
//!
//! Pure domain logic: no I/O, no clock (`now` is an argument), no randomness, and no hash-map
//! iteration order in any output, so the same query over the same rows always gives the same
//! table, byte for byte.
//!
//! The pieces:
//! - [`parse`] turns the text into a [`Query`] or a [`ParseError`] with the 1-based line and
//!   column of the offending token and what was expected there.
//! - [`Query::tables`] and [`Query::time_bounds`] tell the storage what to read: the tables and
//!   the `TimeGenerated` range the leading `where` clauses allow (pushed down to the block scan).
//! - [`execute`] runs the query over decoded [`Table`]s and gives the `PrimaryResult` table.

#![forbid(unsafe_code)]

mod ast;
mod bounds;
mod eval;
mod exec;
mod lexer;
mod parser;
mod time;
mod value;

use std::collections::BTreeMap;

pub use ast::{Pos, Query};
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
    #[error("unknown table '{0}'")]
    UnknownTable(String),
    /// A column the rows at that point do not have.
    #[error("{line}:{column_no}: unknown column '{column}'")]
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
}

/// Runs the query over the given tables (by name). The result table is named "PrimaryResult".
pub fn execute(
    query: &Query,
    tables: &BTreeMap<String, Table>,
    now_ms: i64,
) -> Result<Table, ExecError> {
    exec::run(query, tables, now_ms)
}
