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
//! (`cmksim_kql::SummarizePlan`), each row with its place (`cmksim_kql::RowAt`: its time, then
//! its block's place in the scan and its own in the block, the order in which the gRPC query
//! answers rows), and the blocks' groups are merged, so no row is copied or kept at all
//! (issue 11: copying kept rows and grouping them in a second pass were most of what the scan
//! cost beyond decryption). The storage service answers such a query with the groups
//! (`storage.v1.QueriedPart.kql_groups`).
//!
//! In a columnar block (format 3) the filter is a byte per record, narrowed conjunct by
//! conjunct over whole columns: a string conjunct once per dictionary entry, a `TimeGenerated`
//! range (`RowFilter::conjunct_datetime_range`) by integer compares, or not at all when the
//! block's least and greatest times are both inside it (or none of the block when both are
//! outside). A `count()` summarize by string columns and `bin(TimeGenerated, ...)`
//! (`SummarizePlan::counted_keys`) is then counted per block in an array indexed by the key's
//! dictionary codes and bin, and only each distinct key of the block is handed to the plan,
//! in the order of its first kept row ([`count_columnar`]): no row is built, no group looked
//! up per row (issue 11: after the filter and the projection, building each kept row and
//! finding its group was what a record cost). Anything else (other key expressions or
//! aggregates, a key column stored with several types, too many distinct keys in a block)
//! adds rows as before, per block; both give the plan the same groups.

use cmksim_kql as kql;

use super::block::{KeyRef, Tier};
use super::columnar::{Columns, Ids, Slots, Values};
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

/// The most groups a summarize scan holds ([`DataPlane::summarize_rows`]): as many as the kept
/// rows the front end's rows path holds (`cmksim_ingest::frontend::KQL_KEPT_ROWS_MAX`), so a
/// query refused here for its groups would be refused there for its rows.
pub const SUMMARIZE_GROUPS_MAX: usize = 1_000_000;

/// What a summarize scan gives ([`DataPlane::summarize_rows`]).
#[derive(Debug)]
pub struct Summarized {
    /// The kept rows' groups (`cmksim_kql::Groups::rows` counts them).
    pub groups: kql::Groups,
    /// Every record in the range, kept or not, and the blocks and bytes read.
    pub stats: ScanStats,
    /// Kept rows served from hot copies.
    pub kept_from_hot: u64,
    /// Kept rows served from durable (cold) copies.
    pub kept_from_cold: u64,
}

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
            let in_range = self.open_rows(
                b,
                request,
                rows,
                &projection,
                &mut Kept::Each(&mut |time_ms, row| kept.push((time_ms, row.clone()))),
            )?;
            Ok((in_range, kept))
        };
        self.scan_blocks(threads, request, &open, &mut |tier, key, (time_ms, row)| {
            visit(tier, key, time_ms, row)
        })
    }

    /// A summarize query's scan: as [`DataPlane::scan_rows`] (the same blocks, columns and
    /// filter), but the rows each block keeps are folded into `plan`'s groups on the scan
    /// threads as the block is decoded, and the blocks' groups are merged on the calling
    /// thread, so no row is ever kept: the memory of a scan is its window of blocks and the
    /// groups. Each row's `RowAt` is its time, part 0, and its place in the scan (the block's
    /// ordinal, then the record's index in the block), so `plan.finish` of the groups is the
    /// query's result over the rows [`DataPlane::scan_rows`] would hand back sorted by time
    /// (stably), which is the order the gRPC query answers them in.
    ///
    /// # Errors
    /// [`DataError::TooManyGroups`](super::DataError::TooManyGroups) past
    /// [`SUMMARIZE_GROUPS_MAX`] groups (the memory of a scan stays bounded: no block's groups
    /// are merged once the bound is passed), and the scan's own errors.
    pub fn summarize_rows(
        &self,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        plan: &kql::SummarizePlan,
    ) -> Result<Summarized> {
        let threads = super::tier::scan_threads();
        self.summarize_rows_on(threads, request, rows, plan, SUMMARIZE_GROUPS_MAX)
    }

    /// [`DataPlane::summarize_rows`] on `threads` threads (1..=`SCAN_THREADS_MAX`), holding at
    /// most `groups_max` groups.
    pub fn summarize_rows_on(
        &self,
        threads: usize,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        plan: &kql::SummarizePlan,
        groups_max: usize,
    ) -> Result<Summarized> {
        let names = column_names(rows);
        let projection = projection(&names);
        let read = plan.columns_read();
        let counted = plan.counted_keys();
        let open = |b: &StoredBlock| -> Result<(u64, Vec<kql::Groups>)> {
            let mut groups = plan.groups();
            let in_range = self.open_rows(
                b,
                request,
                rows,
                &projection,
                &mut Kept::Groups {
                    plan,
                    groups: &mut groups,
                    read: &read,
                    counted: counted.as_deref(),
                    block: b.ordinal,
                },
            )?;
            Ok((in_range, vec![groups]))
        };
        let mut merged = plan.groups();
        let (mut kept_from_hot, mut kept_from_cold) = (0u64, 0u64);
        let mut over = false;
        let stats = self.scan_blocks(threads, request, &open, &mut |tier, _, groups| {
            match tier {
                Tier::Hot => kept_from_hot += groups.rows(),
                Tier::Cold | Tier::Buffer => kept_from_cold += groups.rows(),
            }
            // Past the bound (by at most one block's groups), no more groups are merged (the
            // rest of the scan only checks its blocks); the answer is the error below.
            if !over {
                plan.merge(&mut merged, groups);
                over = merged.len() > groups_max;
            }
        })?;
        if over {
            return Err(super::DataError::TooManyGroups {
                account: request.account.to_string(),
                workspace: request.workspace.to_string(),
                table: request.table.to_string(),
                groups_max,
            });
        }
        Ok(Summarized {
            groups: merged,
            stats,
            kept_from_hot,
            kept_from_cold,
        })
    }

    /// Opens one block and decodes its records in the request's range into rows of
    /// `rows.columns` (conformed to their declared types), handing `kept` those `rows.filter`
    /// keeps. Returns how many records were in the range; checks the records against the
    /// authenticated header.
    fn open_rows(
        &self,
        b: &StoredBlock,
        request: &ScanRequest<'_>,
        rows: &RowScan<'_>,
        projection: &Projection<'_>,
        kept: &mut Kept<'_>,
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
            return scan_columnar(
                &block,
                (least, greatest),
                rows,
                projection,
                (from, to),
                kept,
            )
            .map_err(|r| malformed(b.tier, &b.key, r));
        }
        let mut in_range = 0u64;
        let mut index = 0usize;
        let (count, least, greatest) = record::decode_rows(
            &payload,
            header.payload_format,
            &header.table,
            projection,
            &mut |time_ms, row| {
                index += 1;
                if time_ms < from || time_ms >= to {
                    return;
                }
                in_range += 1;
                for (cell, column) in row.iter_mut().zip(rows.columns) {
                    conform(cell, column.column_type);
                }
                if rows.filter.is_none_or(|f| f.keeps(row, rows.now_ms)) {
                    kept.add(time_ms, index - 1, row, rows.now_ms);
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

/// What a scan does with the rows a block keeps.
enum Kept<'k> {
    /// Hands each to the closure with its `TimeGenerated`; the row is a buffer reused for the
    /// next record (the closure copies what it holds on to).
    Each(&'k mut dyn FnMut(i64, &mut Vec<kql::Value>)),
    /// Folds each into a summarize's groups.
    Groups {
        plan: &'k kql::SummarizePlan,
        groups: &'k mut kql::Groups,
        /// The cells `plan` reads (a columnar block leaves the others null in the rows it adds).
        read: &'k [usize],
        /// `plan.counted_keys()`: a columnar block may count its rows per key instead
        /// ([`count_columnar`]).
        counted: Option<&'k [kql::KeyPart]>,
        /// The block's ordinal in the scan ([`StoredBlock::ordinal`]).
        block: u64,
    },
}

/// The place of record `index` of block `block` whose time is `time_ms`, in a summarize's
/// order (see [`DataPlane::summarize_rows`]).
fn row_at(time_ms: i64, block: u64, index: usize) -> kql::RowAt {
    debug_assert!(index < 1 << 32, "a block holds fewer than 2^32 records");
    kql::RowAt {
        time_ms,
        part: 0,
        seq: (block << 32) | index as u64,
    }
}

impl Kept<'_> {
    /// Hands over the kept record `index` of the block (its place in the block's records).
    fn add(&mut self, time_ms: i64, index: usize, row: &mut Vec<kql::Value>, now_ms: i64) {
        match self {
            Kept::Each(visit) => visit(time_ms, row),
            Kept::Groups {
                plan,
                groups,
                block,
                ..
            } => plan.add(groups, row, now_ms, row_at(time_ms, *block, index)),
        }
    }

    /// The cells of a kept row that are read; `None`: every one.
    fn read(&self) -> Option<&[usize]> {
        match self {
            Kept::Each(_) => None,
            Kept::Groups { read, .. } => Some(*read),
        }
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

/// The most distinct key codes (dictionary entries × bins) [`count_columnar`] counts one
/// block's records in; the bound is also at most twice the block's records (at least 256), so
/// the counting arrays stay within the block's own size. A block with more adds its rows.
const COUNT_CELLS_MAX: usize = 1 << 20;

/// The scan of one columnar block (block format 3) whose times lie in `[least, greatest]`:
/// the records in `[from, to)`, filtered conjunct by conjunct over a byte per record (see
/// the module doc: a single-column conjunct tested once per distinct string of the block, a
/// time range by integers or by the block's bounds, a conjunct that reads no column once),
/// the conjuncts of several columns on the projected row; what is kept handed to `kept`, in
/// record order, its cells conformed as [`conform`] does (only the cells `kept` reads and
/// those the remaining conjuncts read; the others null), or counted per key when `kept` is a
/// counted summarize ([`count_columnar`]). Only the projected columns are decoded. Returns how
/// many records were in the range.
fn scan_columnar(
    block: &Columns<'_>,
    (least, greatest): (i64, i64),
    rows: &RowScan<'_>,
    projection: &Projection<'_>,
    (from, to): (i64, i64),
    kept: &mut Kept<'_>,
) -> std::result::Result<u64, String> {
    let width = projection.columns.len();
    let times = &block.times;
    let n = times.len();
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
    // 1 for a record still kept: first those in [from, to), all of them when the block's
    // times are.
    let mut mask: Vec<u8> = if from <= least && greatest < to {
        vec![1; n]
    } else if greatest < from || least >= to {
        vec![0; n]
    } else {
        times
            .iter()
            .map(|&t| u8::from(from <= t && t < to))
            .collect()
    };
    let in_range: u64 = mask.iter().map(|&m| u64::from(m)).sum();
    let mut scratch = vec![kql::Value::Null; width];
    let mut rest = Vec::new();
    if let Some(filter) = rows.filter {
        // Conjuncts of one column that is not the time first (one test per dictionary entry
        // narrows the rows the others see), then those of the time or of no column, then the
        // rest; the conjuncts are pure, so their order does not change which rows are kept.
        let mut order: Vec<usize> = (0..filter.conjuncts()).collect();
        order.sort_by_key(|&i| match filter.conjunct_columns(i) {
            [at] if Some(*at) != projection.time => 0,
            [_] | [] => 1,
            _ => 2,
        });
        for i in order {
            let at = match filter.conjunct_columns(i) {
                // The same answer for every record: asked once.
                [] => {
                    if !filter.conjunct_keeps(i, &scratch, rows.now_ms) {
                        mask.fill(0);
                    }
                    continue;
                }
                &[at] => at,
                _ => {
                    rest.push(i);
                    continue;
                }
            };
            let declared = rows.columns[at].column_type;
            let mut test = |cell: kql::Value| {
                scratch[at] = cell;
                conform(&mut scratch[at], declared);
                filter.conjunct_keeps(i, &scratch, rows.now_ms)
            };
            if Some(at) != projection.time {
                let absent = test(kql::Value::Null);
                narrow(&sources[at], &mut mask, absent, &mut test)?;
                continue;
            }
            // The time cell holds DateTime(t) when its column is declared a datetime.
            let range = filter
                .conjunct_datetime_range(i, rows.now_ms)
                .filter(|&(c, _, _)| c == at && declared == kql::ColumnType::DateTime);
            match range {
                Some((_, low, high)) if low <= least && greatest <= high => {}
                Some((_, low, high)) if high < least || greatest < low || low > high => {
                    mask.fill(0);
                }
                Some((_, low, high)) => {
                    for (m, &t) in mask.iter_mut().zip(times) {
                        *m &= u8::from(low <= t && t <= high);
                    }
                }
                None => {
                    for (m, &t) in mask.iter_mut().zip(times) {
                        if *m != 0 {
                            *m = u8::from(test(kql::Value::DateTime(t)));
                        }
                    }
                }
            }
        }
    }
    if rest.is_empty() {
        if let Kept::Groups {
            plan,
            groups,
            counted: Some(parts),
            block,
            ..
        } = kept
        {
            let counted = count_columnar(
                times,
                (least, greatest),
                rows,
                projection,
                &sources,
                &mask,
                parts,
                (plan, groups, *block),
            );
            if counted {
                return Ok(in_range);
            }
        }
    }
    // The kept rows: the row buffer is reused; a string cell holding the same entry as the
    // previous row's is left as it is, another string is copied into its buffer.
    let read = kept.read();
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
    for (r, _) in mask.iter().enumerate().filter(|(_, m)| **m != 0) {
        let time_ms = times[r];
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
        let keeps = rows
            .filter
            .is_none_or(|f| rest.iter().all(|&i| f.conjunct_keeps(i, &row, rows.now_ms)));
        if keeps {
            kept.add(time_ms, r, &mut row, rows.now_ms);
        }
    }
    Ok(in_range)
}

/// Narrows `mask` (a byte per record of the block) by a conjunct of one column whose stored
/// columns are `sources`: `test` of a record's value, `absent` for a record without one. A
/// string column every record has, whose dictionary folds its values (at most half as many
/// entries as records), is tested once per entry and then looked up per record; otherwise each
/// record still kept is tested, strings once per entry (memoised).
fn narrow(
    sources: &[Source<'_>],
    mask: &mut [u8],
    absent: bool,
    test: &mut dyn FnMut(kql::Value) -> bool,
) -> std::result::Result<(), String> {
    if let [Source {
        values: Values::Strings { dict, ids },
        slots: Slots::Every,
    }] = sources
    {
        if dict.len() * 2 <= mask.len() {
            let verdicts: Vec<u8> = dict
                .iter()
                .map(|s| u8::from(test(kql::Value::String(s.to_string()))))
                .collect();
            ids.each(mask.len(), |r, id| mask[r] &= verdicts[id]);
            return Ok(());
        }
    }
    let mut verdicts: Vec<Verdicts> = sources
        .iter()
        .map(|s| match &s.values {
            Values::Strings { dict, .. } => vec![0; dict.len()],
            _ => Vec::new(),
        })
        .collect();
    for (r, m) in mask.iter_mut().enumerate() {
        if *m == 0 {
            continue;
        }
        let Some((s, v)) = find(sources, r) else {
            *m = u8::from(absent);
            continue;
        };
        let values = &sources[s].values;
        let keeps = if let Values::Strings { dict, ids } = values {
            let id = ids.get(v);
            let memo = &mut verdicts[s][id];
            if *memo == 0 {
                *memo = 1 + u8::from(test(kql::Value::String(dict[id].to_string())));
            }
            *memo == 2
        } else {
            test(values.cell(v)?)
        };
        *m = u8::from(keeps);
    }
    Ok(())
}

/// How [`count_columnar`] numbers one part of a record's group key in a block.
enum Coder<'b> {
    /// A string column no record of the block has: always null, code 0.
    Null,
    /// A string column of one stored column of strings: code 0 for a record without a value
    /// (null), its dictionary entry + 1 for one with.
    Strings {
        dict: &'b [&'b str],
        ids: &'b Ids<'b>,
        slots: &'b Slots,
    },
    /// `bin(TimeGenerated, step_ms)`: code `(bin - first) / step_ms`, `first` being the bin of
    /// the block's least time.
    Bin { first: i64, step_ms: i64 },
}

/// A counted summarize over a columnar block (`SummarizePlan::counted_keys`): each record
/// `mask` keeps gets a code per key part (its string column's dictionary entry, or its time's
/// bin within the block), the records are counted per combination of codes in an array, and
/// each combination counted is handed to the plan as its key's values with its count and its
/// first kept record (least time, then least index), which is what adding the rows one by one
/// gives the groups (a dictionary may hold one string twice: the plan finds the group by
/// value). `(plan, groups, block)`: the plan, the block's groups and its ordinal. Returns false,
/// having handed over nothing, when a key part is not one of those (the time itself, a column
/// declared other than string, stored with another type or in several stored columns), or when
/// the block's combinations are more than [`COUNT_CELLS_MAX`] or twice its records: the caller
/// then adds the rows.
#[allow(clippy::too_many_arguments)]
fn count_columnar(
    times: &[i64],
    (least, greatest): (i64, i64),
    rows: &RowScan<'_>,
    projection: &Projection<'_>,
    sources: &[Vec<Source<'_>>],
    mask: &[u8],
    parts: &[kql::KeyPart],
    (plan, groups, block): (&kql::SummarizePlan, &mut kql::Groups, u64),
) -> bool {
    let n = times.len();
    // Nothing kept (no record, or a block outside the query's time range): nothing to add.
    if !mask.contains(&1) {
        return true;
    }
    let mut coders = Vec::with_capacity(parts.len());
    let mut cards = Vec::with_capacity(parts.len());
    for part in parts {
        let (coder, card) = match *part {
            kql::KeyPart::Cell(at) => {
                if Some(at) == projection.time
                    || rows.columns[at].column_type != kql::ColumnType::String
                {
                    return false;
                }
                match sources[at].as_slice() {
                    [] => (Coder::Null, 1),
                    [Source {
                        values: Values::Strings { dict, ids },
                        slots,
                    }] => (Coder::Strings { dict, ids, slots }, dict.len() + 1),
                    _ => return false,
                }
            }
            kql::KeyPart::DateTimeBin { cell, step_ms } => {
                if Some(cell) != projection.time
                    || rows.columns[cell].column_type != kql::ColumnType::DateTime
                {
                    return false;
                }
                let (Some(first), Some(last)) = (
                    kql::bin_datetime(least, step_ms),
                    kql::bin_datetime(greatest, step_ms),
                ) else {
                    return false;
                };
                // The span fits, so every bin's offset from the first does too.
                let Some(span) = last.checked_sub(first) else {
                    return false;
                };
                let Ok(bins) = usize::try_from(span / step_ms + 1) else {
                    return false;
                };
                (Coder::Bin { first, step_ms }, bins)
            }
        };
        coders.push(coder);
        cards.push(card);
    }
    let cells_max = (2 * n).clamp(256, COUNT_CELLS_MAX);
    let mut cells = 1usize;
    for &card in &cards {
        match cells.checked_mul(card) {
            Some(c) if c <= cells_max => cells = c,
            _ => return false,
        }
    }
    // Each record's combination: the sum of its codes times their strides (a code of part
    // k is worth the product of the parts' sizes before k). Below cells_max, so a u32.
    let mut combination = vec![0u32; n];
    let mut stride = 1u32;
    for (coder, &card) in coders.iter().zip(&cards) {
        match coder {
            Coder::Null => {}
            Coder::Strings { ids, slots, .. } => match slots {
                Slots::Every => ids.each(n, |r, id| combination[r] += (id as u32 + 1) * stride),
                Slots::Some(slots) => {
                    for (c, &slot) in combination.iter_mut().zip(slots) {
                        if slot != Slots::ABSENT {
                            *c += (ids.get(slot as usize) as u32 + 1) * stride;
                        }
                    }
                }
            },
            Coder::Bin { first, step_ms } if card > 1 => {
                // Times mostly come in order: a record in the bin of the one before takes no
                // division. The bin [low, high] starts empty.
                let (mut low, mut high, mut code) = (1i64, 0i64, 0u32);
                for (c, &t) in combination.iter_mut().zip(times) {
                    if t < low || t > high {
                        // t is within [least, greatest], so its bin exists and is at most
                        // `span` after the first.
                        let Some(bin) = kql::bin_datetime(t, *step_ms) else {
                            return false;
                        };
                        low = bin;
                        high = bin.saturating_add(step_ms - 1);
                        code = ((bin - first) / step_ms) as u32;
                    }
                    *c += code * stride;
                }
            }
            Coder::Bin { .. } => {}
        }
        stride *= card as u32;
    }
    let mut counts = vec![0u32; cells];
    // Per combination, its first kept record: the least time, then the least index (records
    // come in index order, so a later record of the same time never replaces it).
    let mut first_kept = vec![(i64::MAX, u32::MAX); cells];
    for (r, ((&c, &m), &t)) in combination.iter().zip(mask).zip(times).enumerate() {
        let c = c as usize;
        counts[c] += u32::from(m);
        if m != 0 && t < first_kept[c].0 {
            first_kept[c] = (t, r as u32);
        }
    }
    let mut order: Vec<((i64, u32), usize)> = (0..cells)
        .filter(|&c| counts[c] > 0)
        .map(|c| (first_kept[c], c))
        .collect();
    order.sort_unstable();
    for ((first_ms, first_index), cell) in order {
        let mut rest = cell;
        let key = coders
            .iter()
            .zip(&cards)
            .map(|(coder, &card)| {
                let code = rest % card;
                rest /= card;
                match coder {
                    Coder::Null => kql::Value::Null,
                    Coder::Strings { dict, .. } => match code {
                        0 => kql::Value::Null,
                        entry => kql::Value::String(dict[entry - 1].to_string()),
                    },
                    Coder::Bin { first, step_ms } => {
                        kql::Value::DateTime(first + code as i64 * step_ms)
                    }
                }
            })
            .collect();
        let first = row_at(first_ms, block, first_index as usize);
        plan.add_counts(groups, key, u64::from(counts[cell]), first);
    }
    true
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
