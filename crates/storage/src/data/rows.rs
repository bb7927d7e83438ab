//! A query scan that hands back KQL rows: only the columns a query reads, only the rows its
//! leading filters keep.
//!
//! Why here: once blocks are decrypted, most of a KQL query's cost was building a `Record` per
//! stored record (a map of every column, every string copied, every dynamic document parsed),
//! converting it to another form and only then discarding the rows and columns the query does
//! not need (issue 11's `bench query` ran at 0.04 of the decryption floor). This scan decodes a
//! block's payload straight into rows of the wanted columns (`record::decode_rows`, which steps
//! over the other values without building them) and evaluates the query's leading `where`s on
//! each row while the block is being opened, on the scan's threads. The filter and the
//! projection are the query's own (`cmksim_kql::Query::row_filter` and
//! `cmksim_kql::Query::projection`): KQL's semantics have one home, `cmksim-kql`; this module
//! only applies them, and the caller still runs the whole query over the rows it gets, so an
//! answer is the same as over every row and column.
//!
//! A summarize query goes further ([`DataPlane::summarize_rows`]): the rows a block keeps are
//! folded into the query's groups on the scan thread that decoded them
//! (`cmksim_kql::SummarizePlan`), and the blocks' groups are merged in block order, so no row
//! is copied or kept at all (issue 11: copying kept rows and grouping them in a second pass
//! were most of what the scan cost beyond decryption).

use cmksim_kql as kql;

use super::block::{KeyRef, Tier};
use super::columnar::{Columns, Slots, Values};
use super::record::{self, PayloadFormat, Projection};
use super::tier::{malformed, ScanRequest, ScanStats, StoredBlock};
use super::{DataPlane, Result};

/// What a row scan returns per row.
#[derive(Clone, Copy, Debug)]
pub struct RowScan<'a> {
    /// The columns wanted, in the order of the row's cells, with their declared types. A
    /// column named `TimeGenerated` gets the record's time; a column a record lacks is null; a
    /// value of another type is conformed to the declared one as the front end does (see
    /// `conform`).
    pub columns: &'a [kql::Column],
    /// Bound to `columns` (`Query::row_filter` over the same columns); rows it does not keep
    /// are dropped in the scan. `None`: every row in the range.
    pub filter: Option<&'a kql::RowFilter>,
    /// The query's "now" (Unix ms) for the filter's `ago()` and `now()`.
    pub now_ms: i64,
}

/// What a row scan hands each kept row to: its tier, the key of its durable copy, its
/// `TimeGenerated` (Unix ms) and its cells.
pub type VisitRow<'v> = dyn FnMut(Tier, &KeyRef, i64, Vec<kql::Value>) + 'v;

/// A block's kept rows with their `TimeGenerated`.
type KeptRows = Vec<(i64, Vec<kql::Value>)>;

/// The name of the column that holds a record's time.
const TIME_GENERATED: &str = "TimeGenerated";

impl DataPlane {
    /// As [`DataPlane::scan_tiers`], but each record in the range is decoded only into the
    /// cells of `rows.columns`, and handed to `visit` (with its tier, the key of its durable
    /// copy and its `TimeGenerated`) only when `rows.filter` keeps it. Blocks are opened, decoded
    /// and filtered on [`super::tier::scan_threads`] threads; rows still arrive in block order.
    /// The stats count every record in the range, kept or not.
    pub fn scan_rows(
        &self,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        visit: &mut VisitRow<'_>,
    ) -> Result<ScanStats> {
        self.scan_rows_on(super::tier::scan_threads(), request, rows, visit)
    }

    /// [`DataPlane::scan_rows`] on `threads` threads (1..=`SCAN_THREADS_MAX`).
    pub fn scan_rows_on(
        &self,
        threads: usize,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        visit: &mut VisitRow<'_>,
    ) -> Result<ScanStats> {
        let names = column_names(rows);
        let projection = projection(&names);
        let open = |b: &StoredBlock| -> Result<(u64, KeptRows)> {
            let mut kept = Vec::new();
            let in_range =
                self.open_rows(b, request, rows, &projection, None, &mut |time_ms, row| {
                    kept.push((time_ms, row.clone()))
                })?;
            Ok((in_range, kept))
        };
        self.scan_blocks(threads, request, &open, &mut |tier, key, (time_ms, row)| {
            visit(tier, key, time_ms, row)
        })
    }

    /// A summarize query's scan: as [`DataPlane::scan_rows`] (the same blocks, columns and
    /// filter), but the rows each block keeps are folded into `plan`'s groups on the scan
    /// threads as the block is decoded, and the blocks' groups are merged in block order on
    /// the calling thread, so no row is ever kept: the memory of a scan is its window of blocks
    /// and the groups. `plan.finish` of what this returns is the query's result over the rows
    /// [`DataPlane::scan_rows`] would hand back, in that order (`SummarizePlan`'s promise).
    pub fn summarize_rows(
        &self,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        plan: &kql::SummarizePlan,
    ) -> Result<(kql::Groups, ScanStats)> {
        self.summarize_rows_on(super::tier::scan_threads(), request, rows, plan)
    }

    /// [`DataPlane::summarize_rows`] on `threads` threads (1..=`SCAN_THREADS_MAX`).
    pub fn summarize_rows_on(
        &self,
        threads: usize,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        plan: &kql::SummarizePlan,
    ) -> Result<(kql::Groups, ScanStats)> {
        let names = column_names(rows);
        let projection = projection(&names);
        let read = plan.columns_read();
        let open = |b: &StoredBlock| -> Result<(u64, Vec<kql::Groups>)> {
            let mut groups = plan.groups();
            let in_range =
                self.open_rows(b, request, rows, &projection, Some(&read), &mut |_, row| {
                    plan.add(&mut groups, row, rows.now_ms)
                })?;
            Ok((in_range, vec![groups]))
        };
        let mut merged = plan.groups();
        let stats = self.scan_blocks(threads, request, &open, &mut |_, _, groups| {
            plan.merge(&mut merged, groups)
        })?;
        Ok((merged, stats))
    }

    /// Opens one block and decodes its records in the request's range into rows of
    /// `rows.columns` (conformed to their declared types), handing `keep` those `rows.filter`
    /// keeps (the row is a buffer reused for the next record: `keep` copies what it holds on
    /// to). Returns how many records were in the range; checks the records against the
    /// authenticated header. `read`: the cells `keep` reads, when it does not read them all (a
    /// columnar block leaves the others null in the rows it keeps).
    fn open_rows(
        &self,
        b: &StoredBlock,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        projection: &Projection<'_>,
        read: Option<&[usize]>,
        keep: &mut dyn FnMut(i64, &mut Vec<kql::Value>),
    ) -> Result<u64> {
        let (from, to) = (request.from.0, request.to.0);
        let (header, payload) = self.open_payload(b.tier, &b.key, &b.bytes, request.aek)?;
        if header.payload_format == PayloadFormat::Columnar {
            let block = Columns::parse(&payload).map_err(|r| malformed(b.tier, &b.key, r))?;
            let times = &block.times;
            let least = times.iter().copied().min().unwrap_or(i64::MAX);
            let greatest = times.iter().copied().max().unwrap_or(i64::MIN);
            let times_match =
                times.is_empty() || (least >= header.min_time_ms && greatest <= header.max_time_ms);
            if times.len() != header.record_count as usize || !times_match {
                return Err(malformed(
                    b.tier,
                    &b.key,
                    "records disagree with the authenticated header".into(),
                ));
            }
            return scan_columnar(&block, rows, projection, read, (from, to), keep)
                .map_err(|r| malformed(b.tier, &b.key, r));
        }
        let mut in_range = 0u64;
        let (count, least, greatest) = record::decode_rows(
            &payload,
            header.payload_format,
            &header.table,
            projection,
            &mut |time_ms, row| {
                if time_ms < from || time_ms >= to {
                    return;
                }
                in_range += 1;
                for (cell, column) in row.iter_mut().zip(rows.columns) {
                    conform(cell, column.column_type);
                }
                if rows.filter.is_none_or(|f| f.keeps(row, rows.now_ms)) {
                    keep(time_ms, row);
                }
            },
        )
        .map_err(|reason| malformed(b.tier, &b.key, reason))?;
        let times_match =
            count == 0 || (least >= header.min_time_ms && greatest <= header.max_time_ms);
        if count != header.record_count as usize || !times_match {
            return Err(malformed(
                b.tier,
                &b.key,
                "records disagree with the authenticated header".into(),
            ));
        }
        Ok(in_range)
    }
}

/// A projected column's stored columns in one block (one per value type present), decoded.
struct Source<'a> {
    values: Values<'a>,
    slots: Slots,
}

/// The value of record `row` in a projected column: which of its stored columns holds it, at
/// which index.
fn find(sources: &[Source<'_>], row: usize) -> Option<(usize, usize)> {
    sources
        .iter()
        .enumerate()
        .find_map(|(s, src)| src.slots.of(row).map(|i| (s, i)))
}

/// A filter's verdict memo per dictionary entry: 0 unknown, 1 drop, 2 keep.
type Verdicts = Vec<u8>;

/// The scan of one columnar block (block format 3): the records in `[from, to)`, filtered with
/// each single-column conjunct of `rows.filter` tested once per distinct string of the block
/// (memoised per dictionary entry) or once per time, the rest on the projected row; the kept
/// rows handed to `keep`, their cells conformed as [`conform`] does (only the cells of `read`
/// and those the remaining conjuncts read, when `read` is given; the others null). Only the
/// projected columns are decoded. Returns how many records were in the range.
fn scan_columnar(
    block: &Columns<'_>,
    rows: &RowScan<'_>,
    projection: &Projection<'_>,
    read: Option<&[usize]>,
    (from, to): (i64, i64),
    keep: &mut dyn FnMut(i64, &mut Vec<kql::Value>),
) -> std::result::Result<u64, String> {
    let width = projection.columns.len();
    let n = block.times.len();
    // Each projected position's stored columns (none for TimeGenerated: the record's time).
    let mut sources: Vec<Vec<Source<'_>>> = (0..width).map(|_| Vec::new()).collect();
    for column in &block.columns {
        let at = projection.columns.iter().position(|c| *c == column.name);
        if let Some(at) = at.filter(|at| Some(*at) != projection.time) {
            sources[at].push(Source {
                values: column.values()?,
                slots: column.slots(n),
            });
        }
    }
    let mut selected: Vec<u32> = (0..n as u32)
        .filter(|&r| (from..to).contains(&block.times[r as usize]))
        .collect();
    let in_range = selected.len() as u64;
    let mut scratch = vec![kql::Value::Null; width];
    let mut rest = Vec::new();
    if let Some(filter) = rows.filter {
        // Conjuncts of one column that is not the time first (one test per dictionary entry
        // narrows the rows the others see), then those of the time, then the rest; the
        // conjuncts are pure, so their order does not change which rows are kept.
        let mut order: Vec<usize> = (0..filter.conjuncts()).collect();
        order.sort_by_key(|&i| match filter.conjunct_columns(i) {
            [at] if Some(*at) != projection.time => 0,
            [_] => 1,
            _ => 2,
        });
        for i in order {
            let &[at] = filter.conjunct_columns(i) else {
                rest.push(i);
                continue;
            };
            let declared = rows.columns[at].column_type;
            let test = |cell: kql::Value, scratch: &mut Vec<kql::Value>| {
                scratch[at] = cell;
                conform(&mut scratch[at], declared);
                filter.conjunct_keeps(i, scratch, rows.now_ms)
            };
            if Some(at) == projection.time {
                selected
                    .retain(|&r| test(kql::Value::DateTime(block.times[r as usize]), &mut scratch));
                continue;
            }
            let absent = test(kql::Value::Null, &mut scratch);
            let mut verdicts: Vec<Verdicts> = sources[at]
                .iter()
                .map(|s| match &s.values {
                    Values::Strings { dict, .. } => vec![0; dict.len()],
                    _ => Vec::new(),
                })
                .collect();
            let mut failed = None;
            selected.retain(|&r| {
                let Some((s, v)) = find(&sources[at], r as usize) else {
                    return absent;
                };
                let values = &sources[at][s].values;
                if let Values::Strings { dict, ids } = values {
                    let id = ids.get(v);
                    let memo = &mut verdicts[s][id];
                    if *memo == 0 {
                        let cell = kql::Value::String(dict[id].to_string());
                        *memo = 1 + u8::from(test(cell, &mut scratch));
                    }
                    return *memo == 2;
                }
                match values.cell(v) {
                    Ok(cell) => test(cell, &mut scratch),
                    Err(e) => {
                        failed.get_or_insert(e);
                        false
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    // The kept rows: the row buffer is reused; a string cell holding the same entry as the
    // previous row's is left as it is, another string is copied into its buffer.
    let wanted: Vec<bool> = (0..width)
        .map(|at| {
            read.is_none_or(|read| read.contains(&at))
                || rest.iter().any(|&i| {
                    rows.filter
                        .is_some_and(|f| f.conjunct_columns(i).contains(&at))
                })
        })
        .collect();
    let mut row = vec![kql::Value::Null; width];
    let mut last: Vec<Option<(usize, usize)>> = vec![None; width];
    for r in selected {
        let r = r as usize;
        let time_ms = block.times[r];
        for (at, cell) in row.iter_mut().enumerate() {
            if !wanted[at] {
                continue;
            }
            if Some(at) == projection.time {
                *cell = kql::Value::DateTime(time_ms);
                conform(cell, rows.columns[at].column_type);
                continue;
            }
            let Some((s, v)) = find(&sources[at], r) else {
                *cell = kql::Value::Null;
                last[at] = None;
                continue;
            };
            let values = &sources[at][s].values;
            let declared = rows.columns[at].column_type;
            if let Values::Strings { dict, ids } = values {
                let entry = (s, ids.get(v));
                if last[at] == Some(entry) {
                    continue;
                }
                last[at] = Some(entry);
                if let kql::Value::String(buffer) = cell {
                    if declared == kql::ColumnType::String {
                        buffer.clear();
                        buffer.push_str(dict[entry.1]);
                        continue;
                    }
                }
            } else {
                last[at] = None;
            }
            *cell = values.cell(v)?;
            conform(cell, declared);
        }
        let kept = rows
            .filter
            .is_none_or(|f| rest.iter().all(|&i| f.conjunct_keeps(i, &row, rows.now_ms)));
        if kept {
            keep(time_ms, &mut row);
        }
    }
    Ok(in_range)
}

fn column_names<'a>(rows: &'a RowScan<'_>) -> Vec<&'a str> {
    rows.columns.iter().map(|c| c.name.as_str()).collect()
}

fn projection<'a>(names: &'a [&'a str]) -> Projection<'a> {
    Projection {
        columns: names,
        time: names.iter().position(|n| *n == TIME_GENERATED),
    }
}

/// Converts a stored value to the column's declared type where the front end does the same
/// when it reads records (`cmksim_ingest::record::conform`): a long in a datetime column is
/// Unix ms, a long in a real column its value, and a non-dynamic value in a dynamic column
/// becomes its JSON (a datetime as its RFC 3339 text). Anything else is left as stored.
fn conform(cell: &mut kql::Value, declared: kql::ColumnType) {
    use kql::ColumnType as T;
    use kql::Value as V;
    let converted = match (declared, &*cell) {
        (T::DateTime, V::Long(ms)) => V::DateTime(*ms),
        (T::Real, V::Long(v)) => V::Real(*v as f64),
        (T::Dynamic, V::String(s)) => V::Dynamic(serde_json::Value::String(s.clone())),
        (T::Dynamic, V::Long(v)) => V::Dynamic(serde_json::Value::from(*v)),
        (T::Dynamic, V::Real(v)) => V::Dynamic(
            serde_json::Number::from_f64(*v)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ),
        (T::Dynamic, V::Bool(b)) => V::Dynamic(serde_json::Value::Bool(*b)),
        (T::Dynamic, V::DateTime(ms)) => V::Dynamic(serde_json::Value::String(
            cmksim_sim::SimTime(*ms).to_rfc3339(),
        )),
        _ => return,
    };
    *cell = converted;
}
