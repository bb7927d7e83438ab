//! KQL over a workspace: the Logs Query API's queries, run by the front end that already knows
//! where a workspace's data lives.
//!
//! A query is parsed first (a syntax error is a 400 with line and column, before any storage is
//! asked), then each table it names is read once over the time range: the intersection of the
//! caller's timespan and the bounds the query's own `TimeGenerated` filters imply
//! (`cmksim_kql::Query::time_bounds`), which is what the block scan is narrowed to. Reading goes
//! through the same path as a plain query, so a storage that is revoked or unavailable fails the
//! query naming the cluster and its state, exactly as `Query` does. Then the query runs over the
//! decoded rows (`cmksim_kql::execute`).
//!
//! A query shaped `T | where ... | summarize ...` whose aggregates merge exactly
//! (`cmksim_kql::Query::summarize_plan`: counts, distinct counts, sums and means of longs,
//! minima and maxima) does not read rows at all: each storage summarizes the rows it keeps while
//! it scans and answers its groups (`StorageBackend::summarize`), which the front end decodes
//! with the storage's rank, merges and finishes. The answer is the rows path's, group order
//! included (`cmksim_kql::RowAt`), and its bound is on groups (storage's
//! `SUMMARIZE_GROUPS_MAX`, a million), not on kept rows: issue 11's 256 MiB workspace keeps 4.8
//! million rows, which the rows path refuses. A summarize past the groups bound falls back to
//! the rows path, which refuses it with its own sentence (it keeps at least as many rows).
//!
//! Tables larger than one read: storage returns at most [`KQL_PAGE_ROWS`] rows per read (its own
//! cap), so a table is read page by page over disjoint time windows ([`Pager`]): the first read
//! asks for the whole range; when it comes back truncated, the rows before the last timestamp it
//! returned are kept and the next window starts at that timestamp, sized from how much time the
//! page covered (three quarters of it, doubled after a page that fits); a page that is all one
//! timestamp is followed by a read of that millisecond alone. Each page goes through
//! the query's leading `where`s as it arrives (`cmksim_kql::Query::row_filter`), so only rows the
//! query can keep are held. The rows read (the Logs Query API's scanned rows) are the records
//! storage scanned in the first read, which covers the whole range, whether its pushed-down
//! filter kept them or not; later reads re-read parts of it and add none. Bounds: at most [`KQL_KEPT_ROWS_MAX`] kept rows per table (memory),
//! at most [`KQL_PAGES_MAX`] pages per table (the loop), and a page must advance time (more than
//! [`KQL_PAGE_ROWS`] rows with one `TimeGenerated` cannot be paged). Past a bound the query is
//! refused with a sentence saying which, never answered from a silent sample.

use std::collections::BTreeMap;

use cmksim_kql as kql;
use cmksim_sim::SimTime;

use super::{workspace_name, Frontend, EVENT_SOURCE};
use crate::error::{ErrorClass, ErrorShape, QueryError};
use crate::events::IngestEvent;
use crate::query::{KqlRead, Order, QuerySpec, TimeRange};
use crate::record::ColumnType;

/// Rows asked for in one read (storage's own cap per read, `QUERY_RECORDS_MAX`).
pub const KQL_PAGE_ROWS: u32 = 100_000;
/// Most rows of one table a query holds after its leading filters (about 100 bytes a cell: a
/// few hundred MB at most).
pub const KQL_KEPT_ROWS_MAX: usize = 1_000_000;
/// Most reads of one table for one query (with [`KQL_PAGE_ROWS`], about 75 million rows).
pub const KQL_PAGES_MAX: u32 = 1_000;
/// The widest range a query without bounds reads: all of simulated time that storage can hold.
const RANGE_UNBOUNDED: TimeRange = TimeRange {
    from: SimTime(i64::MIN / 4),
    to: SimTime(i64::MAX / 4),
};

/// Why a KQL query failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KqlError {
    #[error("{0}")]
    Syntax(kql::ParseError),
    #[error("{0}")]
    Semantic(kql::ExecError),
    #[error(transparent)]
    Read(QueryError),
    #[error("table {table:?} {limit}: narrow the timespan (or add a TimeGenerated filter)")]
    TooManyRows { table: String, limit: ReadLimit },
}

/// Which bound of reading one table a query passed (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadLimit {
    #[error("keeps more than {KQL_KEPT_ROWS_MAX} rows after the query's leading filters")]
    Kept,
    #[error("needs more than {KQL_PAGES_MAX} reads of {KQL_PAGE_ROWS} rows")]
    Pages,
    #[error("has more than {KQL_PAGE_ROWS} rows with one TimeGenerated ({0}), which cannot be read in pages")]
    OneInstant(SimTime),
}

/// Plans the reads of one table (see the module doc): which window to read next, and which of a
/// page's rows to keep. Pure: the caller does the reading.
#[derive(Clone, Debug)]
pub(crate) struct Pager {
    /// The end of the whole range (exclusive).
    to: SimTime,
    /// Where the next window starts (inclusive).
    from: SimTime,
    /// The next window's length; `None`: the rest of the range.
    window_ms: Option<i64>,
    /// Reads planned so far.
    pages: u32,
}

impl Pager {
    pub(crate) fn new(range: TimeRange) -> Pager {
        Pager {
            to: range.to,
            from: range.from,
            window_ms: None,
            pages: 0,
        }
    }

    /// The next window to read, or `None` when the range is read.
    pub(crate) fn next_window(&mut self) -> Result<Option<TimeRange>, ReadLimit> {
        if self.from >= self.to {
            return Ok(None);
        }
        if self.pages >= KQL_PAGES_MAX {
            return Err(ReadLimit::Pages);
        }
        self.pages += 1;
        let to = match self.window_ms {
            Some(w) if w < self.to.0.saturating_sub(self.from.0) => SimTime(self.from.0 + w),
            _ => self.to,
        };
        Ok(Some(TimeRange {
            from: self.from,
            to,
        }))
    }

    /// Takes in what reading `window` showed: whether the page was cut off, and the
    /// `TimeGenerated` of its last row. Returns the time before which the page's rows are kept
    /// (`None`: keep them all); rows from that time on are read again by the next window.
    pub(crate) fn advance(
        &mut self,
        window: TimeRange,
        truncated: bool,
        last: Option<SimTime>,
    ) -> Result<Option<SimTime>, ReadLimit> {
        debug_assert!(window.from == self.from, "windows are read in order");
        match (truncated, last) {
            (true, Some(last)) if last > window.from => {
                let covered_ms = last.0 - window.from.0;
                self.window_ms = Some((covered_ms / 4 * 3).max(1));
                self.from = last;
                Ok(Some(last))
            }
            // The page is all one instant: read that instant alone (it may just fit), once.
            (true, Some(last)) if window.to.0 - window.from.0 > 1 => {
                self.window_ms = Some(1);
                Ok(Some(last))
            }
            (true, Some(last)) => Err(ReadLimit::OneInstant(last)),
            // Cut off with no rows at all: nothing to page by; keep reading would not advance.
            (true, None) => Err(ReadLimit::OneInstant(window.from)),
            (false, _) => {
                self.window_ms = self.window_ms.map(|w| w.saturating_mul(2));
                self.from = window.to;
                Ok(None)
            }
        }
    }
}

/// The records a table's reads went through, each counted once (see the module doc): every
/// record storage scanned in a window, kept by its pushed-down filter or not, except in a window
/// inside one already read (after a cut-off page), which re-reads records counted then.
/// (Counting a cut-off page's kept rows before the cut instead missed the records its filter
/// dropped there.)
#[derive(Debug, Default)]
pub(crate) struct RowsRead {
    rows: u64,
    /// The end of the windows read so far.
    read_to: Option<SimTime>,
}

impl RowsRead {
    /// Takes in one read of `window` (windows in the [`Pager`]'s order), in which storage
    /// scanned `scanned` records.
    pub(crate) fn add(&mut self, window: TimeRange, scanned: u64) {
        if self.read_to.is_none_or(|end| window.to > end) {
            debug_assert!(
                self.read_to.is_none_or(|end| window.from >= end),
                "a window reaching past those read starts where they end"
            );
            self.rows += scanned;
            self.read_to = Some(window.to);
        }
    }
}

impl KqlError {
    /// The `reason` of the `query.failed` event ([`QueryError::reason`] for a failed read, else
    /// the error's inner code).
    pub fn reason(&self) -> String {
        match self {
            KqlError::Read(e) => e.reason(),
            other => other.shape().inner_code.to_string(),
        }
    }

    /// The presentation of this error (the Logs Query API's codes: `BadArgumentError` with
    /// `SyntaxError` or `SemanticError` inside).
    pub fn shape(&self) -> ErrorShape {
        match self {
            KqlError::Syntax(_) => ErrorShape {
                class: ErrorClass::InvalidArgument,
                code: "BadArgumentError",
                inner_code: "SyntaxError",
                http_status: 400,
            },
            KqlError::Semantic(_) | KqlError::TooManyRows { .. } => ErrorShape {
                class: ErrorClass::InvalidArgument,
                code: "BadArgumentError",
                inner_code: "SemanticError",
                http_status: 400,
            },
            KqlError::Read(e) => e.shape(),
        }
    }
}

/// One table's read for a query: the workspace, the query (text and parsed), the table, the
/// time range to read and the query's now.
#[derive(Clone, Copy)]
struct TableRead<'a> {
    workspace: &'a str,
    text: &'a str,
    query: &'a kql::Query,
    name: &'a str,
    range: TimeRange,
    now: SimTime,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct KqlAnswer {
    /// The result (`PrimaryResult`).
    pub table: kql::Table,
    /// Rows read from storage, over every table.
    pub rows_read: u64,
    /// Rows read per storage and tier (`cluster:NAME (hot)`), over every table.
    pub served_by: BTreeMap<String, u64>,
    /// The chart the query's `render` asks for.
    pub visualization: Option<kql::Visualization>,
}

fn kql_type(column_type: ColumnType) -> kql::ColumnType {
    match column_type {
        ColumnType::String => kql::ColumnType::String,
        ColumnType::Long => kql::ColumnType::Long,
        ColumnType::Real => kql::ColumnType::Real,
        ColumnType::Bool => kql::ColumnType::Bool,
        ColumnType::DateTime => kql::ColumnType::DateTime,
        ColumnType::Dynamic => kql::ColumnType::Dynamic,
    }
}

impl Frontend {
    /// Runs `text` over `workspace`, reading each table in `range` (the caller's timespan;
    /// `None`: unbounded) narrowed by the query's own time filters. One event records the
    /// query, served or failed.
    pub async fn kql(
        &self,
        workspace: &str,
        text: &str,
        range: Option<TimeRange>,
    ) -> Result<KqlAnswer, KqlError> {
        let now = self.clock.now();
        let result = self.kql_inner(workspace, text, range, now).await;
        let tables = kql::parse(text)
            .map(|q| q.tables().join(","))
            .unwrap_or_else(|_| "(unparsed)".into());
        let event = match &result {
            Ok(answer) => IngestEvent::QueryServed {
                workspace: workspace_name(workspace).to_string(),
                table: tables,
                records: answer.table.rows.len() as u64,
                record_workspaces: vec![workspace_name(workspace).to_string()],
                count: answer.rows_read,
                served_by: answer.served_by.clone(),
            },
            Err(e) => IngestEvent::QueryFailed {
                workspace: workspace_name(workspace).to_string(),
                table: tables,
                error_code: e.shape().inner_code.to_string(),
                reason: e.reason(),
                message: e.to_string(),
            },
        };
        let label = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.shape().inner_code.to_string(),
        };
        self.lock().metrics.count_query(workspace, &label);
        self.events.record(now, EVENT_SOURCE, &event);
        result
    }

    async fn kql_inner(
        &self,
        workspace: &str,
        text: &str,
        range: Option<TimeRange>,
        now: SimTime,
    ) -> Result<KqlAnswer, KqlError> {
        let query = kql::parse(text).map_err(KqlError::Syntax)?;
        let base = range.unwrap_or(RANGE_UNBOUNDED);
        let (from, to) = query.time_bounds(now.unix_ms());
        let range = TimeRange {
            from: SimTime(from.map_or(base.from.0, |f| f.max(base.from.0))),
            to: SimTime(to.map_or(base.to.0, |t| t.min(base.to.0))),
        };
        let names = query.tables();
        if let [name] = names.as_slice() {
            if range.from < range.to {
                let read = TableRead {
                    workspace,
                    text,
                    query: &query,
                    name,
                    range,
                    now,
                };
                let summarized = self.summarize_table(read).await?;
                if let Some(answer) = summarized {
                    return Ok(answer);
                }
            }
        }
        let mut tables = BTreeMap::new();
        let mut rows_read = 0u64;
        let mut served_by = BTreeMap::new();
        for name in names {
            let table = if range.from >= range.to {
                self.empty_table(workspace, &name).await?
            } else {
                let (table, read, served) = self
                    .read_table(TableRead {
                        workspace,
                        text,
                        query: &query,
                        name: &name,
                        range,
                        now,
                    })
                    .await?;
                for (storage, rows) in served {
                    *served_by.entry(storage).or_insert(0) += rows;
                }
                rows_read += read;
                table
            };
            tables.insert(name, table);
        }
        let table = kql::execute(&query, &tables, now.unix_ms()).map_err(KqlError::Semantic)?;
        Ok(KqlAnswer {
            table,
            rows_read,
            served_by,
            visualization: query.visualization().cloned(),
        })
    }

    /// The table's schema with no rows (a time range that excludes everything).
    async fn empty_table(&self, workspace: &str, name: &str) -> Result<kql::Table, KqlError> {
        let schema = self.schema_for_query(workspace, name).await?;
        Ok(kql::Table {
            name: name.to_string(),
            columns: columns_of(&schema),
            rows: Vec::new(),
        })
    }

    async fn schema_for_query(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<crate::schema::TableSchema, KqlError> {
        self.table_schema(workspace, name)
            .await
            .map_err(|e| KqlError::Read(super::query_backend_error(e)))?
            .ok_or_else(|| {
                KqlError::Read(QueryError::UnknownTable {
                    workspace: workspace_name(workspace).to_string(),
                    table: name.to_string(),
                })
            })
    }

    /// The read table's schema, and the columns the query reads of it (its projection, or every
    /// column), which is what storage is asked for.
    async fn projected(
        &self,
        read: TableRead<'_>,
    ) -> Result<(crate::schema::TableSchema, Vec<kql::Column>), KqlError> {
        let schema = self.schema_for_query(read.workspace, read.name).await?;
        let all = columns_of(&schema);
        let columns = read.query.projection(read.name, &all).unwrap_or(all);
        Ok((schema, columns))
    }

    /// The answer of a query shaped `name | where ... | summarize ...` whose aggregates merge
    /// exactly (`cmksim_kql::Query::summarize_plan`), summarized by storage where the rows lie
    /// ([`crate::backend::StorageBackend::summarize`]): each storage's groups are decoded with
    /// the storage's rank among them (the rows path's order: time, then storage, then the
    /// storage's own order), merged and finished, so the answer is the one
    /// [`Frontend::read_table`] and `cmksim_kql::execute` give, without a row crossing the
    /// wire or a bound on kept rows. `None` when the query has no such plan, the backend does
    /// not summarize, or storage holds more groups than it may: the caller reads rows.
    async fn summarize_table(&self, read: TableRead<'_>) -> Result<Option<KqlAnswer>, KqlError> {
        let (schema, columns) = self.projected(read).await?;
        let Some(plan) = read
            .query
            .summarize_plan(read.name, &columns)
            .map_err(KqlError::Semantic)?
        else {
            return Ok(None);
        };
        let spec = kql_read(read, read.range, &columns);
        let parts = self
            .backend
            .summarize(spec, schema)
            .await
            .map_err(|e| KqlError::Read(super::query_backend_error(e)))?;
        let Some(parts) = parts else {
            return Ok(None);
        };
        let mut merged = plan.groups();
        let mut rows_read = 0u64;
        let mut served_by = BTreeMap::new();
        for (rank, part) in (0u32..).zip(parts) {
            let groups = plan.decode(&part.groups, rank).map_err(|e| {
                KqlError::Read(QueryError::StorageUnreachable {
                    reason: format!("{} answered {e}", part.destination.label()),
                })
            })?;
            plan.merge(&mut merged, groups);
            rows_read += part.scanned;
            for (tier, n) in part.kept {
                let label = format!("{} ({})", part.destination.label(), tier.label());
                *served_by.entry(label).or_insert(0) += n;
            }
        }
        let table = plan
            .finish(merged, read.now.unix_ms())
            .map_err(KqlError::Semantic)?;
        Ok(Some(KqlAnswer {
            table,
            rows_read,
            served_by,
            visualization: read.query.visualization().cloned(),
        }))
    }

    /// Every row of `name` in `range` that the query's leading filters keep, through the plain
    /// query path (storage reads every storage the workspace's data went to), page by page
    /// ([`Pager`]), as a KQL table; with the rows read and the rows each storage and tier
    /// served.
    async fn read_table(
        &self,
        read: TableRead<'_>,
    ) -> Result<(kql::Table, u64, BTreeMap<String, u64>), KqlError> {
        let (schema, columns) = self.projected(read).await?;
        let TableRead {
            query,
            name,
            range,
            now,
            ..
        } = read;
        let filter = query
            .row_filter(name, &columns)
            .map_err(KqlError::Semantic)?;
        let too_many = |limit| KqlError::TooManyRows {
            table: name.to_string(),
            limit,
        };
        let mut pager = Pager::new(range);
        let mut rows = Vec::new();
        let mut rows_read = RowsRead::default();
        let mut served: BTreeMap<(crate::routing::Destination, crate::query::Tier), u64> =
            BTreeMap::new();
        while let Some(window) = pager.next_window().map_err(too_many)? {
            let spec = kql_read(read, window, &columns);
            let parts = self
                .backend
                .query(spec.clone(), schema.clone())
                .await
                .map_err(|e| KqlError::Read(super::query_backend_error(e)))?;
            let scanned: u64 = parts.iter().map(|p| p.scanned).sum();
            let answer = crate::query::merge(&spec, parts);
            let last = answer.rows.last().map(|r| r.record.time_generated);
            let cut = pager
                .advance(window, answer.truncated, last)
                .map_err(too_many)?;
            for row in answer.rows {
                if cut.is_some_and(|cut| row.record.time_generated >= cut) {
                    break;
                }
                *served
                    .entry((row.destination.clone(), row.tier))
                    .or_insert(0) += 1;
                let cells = row.record.kql_cells(&columns);
                if filter
                    .as_ref()
                    .is_none_or(|f| f.keeps(&cells, now.unix_ms()))
                {
                    if rows.len() >= KQL_KEPT_ROWS_MAX {
                        return Err(too_many(ReadLimit::Kept));
                    }
                    rows.push(cells);
                }
            }
            rows_read.add(window, scanned);
        }
        let served = served
            .iter()
            .map(|((d, t), n)| (format!("{} ({})", d.label(), t.label()), *n))
            .collect();
        let table = kql::Table {
            name: name.to_string(),
            columns,
            rows,
        };
        Ok((table, rows_read.rows, served))
    }
}

/// The storage read of `read`'s table in `window` (its projection `columns` and the query's
/// filters pushed down; [`KQL_PAGE_ROWS`] rows at most, by time).
fn kql_read(read: TableRead<'_>, window: TimeRange, columns: &[kql::Column]) -> QuerySpec {
    QuerySpec {
        workspace: read.workspace.to_string(),
        table: read.name.to_string(),
        range: window,
        filters: Vec::new(),
        count_only: false,
        limit: KQL_PAGE_ROWS,
        order: Order::Asc,
        kql: Some(KqlRead {
            text: read.text.to_string(),
            columns: columns
                .iter()
                .map(|c| (c.name.clone(), c.column_type.name().to_string()))
                .collect(),
            now_ms: read.now.unix_ms(),
        }),
    }
}

/// `TimeGenerated` first, then the schema's columns by name.
pub(crate) fn columns_of(schema: &crate::schema::TableSchema) -> Vec<kql::Column> {
    let mut columns = vec![kql::Column {
        name: crate::schema::TIME_GENERATED.to_string(),
        column_type: kql::ColumnType::DateTime,
    }];
    for (name, column_type) in &schema.columns {
        if name != crate::schema::TIME_GENERATED {
            columns.push(kql::Column {
                name: name.clone(),
                column_type: kql_type(*column_type),
            });
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `times` (sorted) the way storage does: the first `page` rows of the window in time
    /// order, and whether more matched.
    fn read(times: &[i64], window: TimeRange, page: usize) -> (Vec<i64>, bool) {
        let matched: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| window.contains(SimTime(*t)))
            .collect();
        let truncated = matched.len() > page;
        (matched.into_iter().take(page).collect(), truncated)
    }

    /// Runs the pager over `times` with reads of `page` rows; the rows consumed, in order, and
    /// the number of reads.
    fn consume(times: &[i64], range: TimeRange, page: usize) -> Result<(Vec<i64>, u32), ReadLimit> {
        let mut pager = Pager::new(range);
        let mut consumed = Vec::new();
        let mut reads = 0;
        while let Some(window) = pager.next_window()? {
            reads += 1;
            let (rows, truncated) = read(times, window, page);
            let cut = pager.advance(window, truncated, rows.last().map(|t| SimTime(*t)))?;
            consumed.extend(
                rows.into_iter()
                    .take_while(|t| cut.is_none_or(|c| *t < c.0)),
            );
        }
        Ok((consumed, reads))
    }

    fn range(from: i64, to: i64) -> TimeRange {
        TimeRange {
            from: SimTime(from),
            to: SimTime(to),
        }
    }

    #[test]
    fn every_row_is_read_once_whatever_the_spread() {
        // Even spacing, bursts sharing a timestamp (fewer than a page), gaps, a dense tail.
        let mut times: Vec<i64> = (0..1_000).map(|i| i * 7).collect();
        times.extend(std::iter::repeat_n(3_500, 9));
        times.extend((0..300).map(|i| 20_000 + i / 3));
        times.extend((0..50).map(|i| 1_000_000 + i * 10_000));
        times.sort_unstable();
        for page in [10usize, 11, 64, 1_000, 10_000] {
            let (consumed, reads) = consume(&times, range(-5, 2_000_000), page).unwrap();
            assert_eq!(consumed, times, "page of {page} rows");
            if page >= times.len() {
                assert_eq!(reads, 1, "a table that fits is read once");
            } else {
                assert!(
                    reads as usize >= times.len() / page,
                    "page {page}: {reads} reads"
                );
            }
        }
    }

    #[test]
    fn rows_read_count_what_a_pushed_down_filter_dropped_before_a_cut() {
        // Storage keeps two rows in three (its pushed-down filter) and returns the first `page`
        // kept rows of a window, having scanned every record of it.
        let times: Vec<i64> = (0..3_000).map(|i| i / 2).collect();
        let kept: Vec<i64> = times.iter().copied().filter(|t| t % 3 != 0).collect();
        let page = 100;
        let mut pager = Pager::new(range(0, 10_000));
        let (mut rows_read, mut consumed_total, mut cut_pages) = (RowsRead::default(), 0, 0);
        // What was counted before: a cut-off page's kept rows before the cut.
        let mut counted_before = 0u64;
        while let Some(window) = pager.next_window().unwrap() {
            let (rows, truncated) = read(&kept, window, page);
            let scanned = times
                .iter()
                .filter(|t| window.contains(SimTime(**t)))
                .count() as u64;
            let cut = pager
                .advance(window, truncated, rows.last().map(|t| SimTime(*t)))
                .unwrap();
            let consumed = rows
                .iter()
                .take_while(|t| cut.is_none_or(|c| **t < c.0))
                .count() as u64;
            consumed_total += consumed;
            cut_pages += u32::from(truncated);
            counted_before += if truncated { consumed } else { scanned };
            rows_read.add(window, scanned);
        }
        assert_eq!(consumed_total, kept.len() as u64, "every kept row once");
        assert!(cut_pages > 5, "{cut_pages} pages were cut off");
        assert_eq!(rows_read.rows, times.len() as u64, "every record read once");
        assert!(
            counted_before < times.len() as u64,
            "the count before missed the dropped records: {counted_before}"
        );
    }

    #[test]
    fn rows_outside_the_range_are_never_read() {
        let times: Vec<i64> = (0..500).collect();
        let (consumed, _) = consume(&times, range(100, 200), 7).unwrap();
        assert_eq!(consumed, (100..200).collect::<Vec<_>>());
    }

    #[test]
    fn more_rows_on_one_instant_than_a_page_is_refused_not_looped() {
        let mut times: Vec<i64> = (0..20).collect();
        times.extend(std::iter::repeat_n(50, 30));
        times.sort_unstable();
        assert_eq!(
            consume(&times, range(0, 100), 10),
            Err(ReadLimit::OneInstant(SimTime(50)))
        );
    }

    #[test]
    fn the_number_of_reads_is_bounded() {
        // One row per ms and a page of one row: every read advances by one ms.
        let times: Vec<i64> = (0..(KQL_PAGES_MAX as i64 * 3)).collect();
        assert_eq!(
            consume(&times, range(0, i64::MAX / 4), 1),
            Err(ReadLimit::Pages)
        );
    }

    #[test]
    fn the_refusal_says_which_bound() {
        let e = KqlError::TooManyRows {
            table: "Syslog".into(),
            limit: ReadLimit::Kept,
        };
        assert_eq!(
            e.to_string(),
            "table \"Syslog\" keeps more than 1000000 rows after the query's leading filters: \
             narrow the timespan (or add a TimeGenerated filter)"
        );
        assert_eq!(e.shape().http_status, 400);
    }
}
