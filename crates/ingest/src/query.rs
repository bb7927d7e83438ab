//! Query logic over in-memory record sets: checking a query, filtering, and merging the parts
//! that several storages return into one answer ordered by time.
//!
//! A workspace's data may sit in several storages (shared storage before a link, each cluster it
//! was linked to); the service fans a query out and this module merges the parts. Merging is
//! deterministic: rows are ordered by `TimeGenerated`, ties broken by destination and then by the
//! order within the part, so the same data always gives the same answer. Each row says which
//! storage and which tier served it, and the answer sums per (storage, tier).

use std::collections::BTreeMap;

use cmksim_sim::SimTime;
use serde::{Deserialize, Serialize};

use crate::error::QueryError;
use crate::record::{ColumnType, Record, Value};
use crate::routing::Destination;
use crate::schema::TableSchema;

/// The most rows one answer may carry.
pub const QUERY_ROWS_MAX: u32 = 10_000;
/// The rows returned when the query gives no limit.
pub const QUERY_ROWS_DEFAULT: u32 = 1_000;
/// The most filters one query may carry.
pub const QUERY_FILTERS_MAX: usize = 32;

/// `[from, to)` in `TimeGenerated`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub from: SimTime,
    pub to: SimTime,
}

impl TimeRange {
    /// True when `t` is inside the range.
    pub fn contains(&self, t: SimTime) -> bool {
        self.from <= t && t < self.to
    }
}

/// A numeric comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
        }
    }
}

/// One filter; all filters of a query must hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// The column equals the value (same type).
    Equals { column: String, value: Value },
    /// The string (or dynamic JSON text) column contains the text, case-sensitively.
    Contains { column: String, text: String },
    /// The numeric (long, real, datetime as Unix ms) column compares to the number.
    Compare {
        column: String,
        op: CmpOp,
        value: f64,
    },
}

/// Time order of the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

/// A query of one workspace and table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuerySpec {
    pub workspace: String,
    pub table: String,
    pub range: TimeRange,
    pub filters: Vec<Filter>,
    /// Only count: no rows in the answer.
    pub count_only: bool,
    /// Rows to return (0: [`QUERY_ROWS_DEFAULT`]); at most [`QUERY_ROWS_MAX`].
    pub limit: u32,
    pub order: Order,
    /// A KQL query's projection and leading filters for storage to apply while it scans
    /// (issue 11's pushdown); `None` for a plain query.
    #[serde(default)]
    pub kql: Option<KqlRead>,
}

/// What a KQL read asks storage to apply (`storage.v1.QueryRequest.kql*`): rows of `columns`
/// only, and only those the query's leading filters keep. A backend may ignore it (the
/// in-memory one does): the front end applies the same filter again, so the answer is the same.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KqlRead {
    /// The query text.
    pub text: String,
    /// The columns the query reads, with their Kusto type names, in the table's order.
    pub columns: Vec<(String, String)>,
    /// The query's now (Unix ms).
    pub now_ms: i64,
}

impl QuerySpec {
    /// The effective row limit.
    pub fn row_limit(&self) -> usize {
        if self.limit == 0 {
            QUERY_ROWS_DEFAULT as usize
        } else {
            self.limit as usize
        }
    }
}

/// Checks a query against the table's schema before any storage is asked.
pub fn check_query(spec: &QuerySpec, schema: &TableSchema) -> Result<(), QueryError> {
    if spec.range.from >= spec.range.to {
        return Err(QueryError::InvalidTimeRange {
            from: spec.range.from,
            to: spec.range.to,
        });
    }
    if spec.limit > QUERY_ROWS_MAX {
        return Err(QueryError::LimitTooLarge {
            limit: spec.limit,
            max: QUERY_ROWS_MAX,
        });
    }
    if spec.filters.len() > QUERY_FILTERS_MAX {
        return Err(QueryError::TooManyFilters {
            filters: spec.filters.len(),
            max: QUERY_FILTERS_MAX,
        });
    }
    for filter in &spec.filters {
        check_filter(filter, schema)?;
    }
    Ok(())
}

fn check_filter(filter: &Filter, schema: &TableSchema) -> Result<(), QueryError> {
    let column = match filter {
        Filter::Equals { column, .. }
        | Filter::Contains { column, .. }
        | Filter::Compare { column, .. } => column,
    };
    let column_type = schema
        .column_type(column)
        .ok_or_else(|| QueryError::UnknownColumn {
            table: schema.name.clone(),
            column: column.clone(),
        })?;
    let mismatch = |operator: String, reason: String| QueryError::FilterTypeMismatch {
        column: column.clone(),
        column_type,
        operator,
        reason,
    };
    match filter {
        Filter::Equals { value, .. } if value.column_type() != column_type => Err(mismatch(
            "==".into(),
            format!("the value is {}", value.column_type()),
        )),
        Filter::Contains { .. }
            if !matches!(column_type, ColumnType::String | ColumnType::Dynamic) =>
        {
            Err(mismatch(
                "contains".into(),
                "contains applies to string and dynamic columns".into(),
            ))
        }
        Filter::Compare { op, value, .. } => {
            if !matches!(
                column_type,
                ColumnType::Long | ColumnType::Real | ColumnType::DateTime
            ) {
                Err(mismatch(
                    op.symbol().into(),
                    "comparisons apply to long, real and datetime columns".into(),
                ))
            } else if !value.is_finite() {
                Err(mismatch(
                    op.symbol().into(),
                    "the number is not finite".into(),
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// True when the record is in the range and every filter holds.
pub fn matches(record: &Record, range: &TimeRange, filters: &[Filter]) -> bool {
    range.contains(record.time_generated) && filters.iter().all(|f| filter_holds(record, f))
}

fn filter_holds(record: &Record, filter: &Filter) -> bool {
    match filter {
        Filter::Equals { column, value } => record.get(column).as_ref() == Some(value),
        Filter::Contains { column, text } => match record.get(column) {
            Some(Value::String(s)) | Some(Value::Dynamic(s)) => s.contains(text.as_str()),
            _ => false,
        },
        Filter::Compare { column, op, value } => record
            .get(column)
            .and_then(|v| v.as_f64())
            .is_some_and(|v| op.holds(v, *value)),
    }
}

/// The storage tier that served rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    /// The SSD-backed cache of the last 14 days.
    Hot,
    /// Long-term storage.
    Cold,
}

impl Tier {
    /// `hot` or `cold`.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Cold => "cold",
        }
    }
}

/// What one storage returned for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct StoragePart {
    pub destination: Destination,
    /// Matching rows with the tier that served each; at most the query's limit.
    pub rows: Vec<(Record, Tier)>,
    /// Matching rows per tier before the limit was applied.
    pub matched: BTreeMap<Tier, u64>,
    /// True when storage stopped scanning at its own cap, so `matched` is a lower bound.
    pub scan_truncated: bool,
    /// Records in the range the storage scanned: with a KQL pushdown, before its filter (so
    /// more than `matched`); otherwise the rows offered to this part that are in the range.
    pub scanned: u64,
}

/// One row of the answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultRow {
    pub record: Record,
    pub destination: Destination,
    pub tier: Tier,
}

/// The merged answer.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryAnswer {
    pub rows: Vec<ResultRow>,
    /// All matching rows across storages (before the limit).
    pub count: u64,
    /// Matching rows per (storage, tier).
    pub served_by: BTreeMap<(Destination, Tier), u64>,
    /// True when the limit cut rows off, or a storage stopped scanning at its cap (then `count`
    /// is a lower bound).
    pub truncated: bool,
}

/// Filters a part in memory (what a storage does for the query); used by fakes and by the
/// storage adapter when storage cannot filter itself.
pub fn filter_part(
    destination: Destination,
    rows: impl IntoIterator<Item = (Record, Tier)>,
    spec: &QuerySpec,
) -> StoragePart {
    let mut kept: Vec<(Record, Tier)> = Vec::new();
    let mut matched = BTreeMap::new();
    let mut scanned = 0u64;
    for (record, tier) in rows {
        scanned += u64::from(spec.range.contains(record.time_generated));
        if matches(&record, &spec.range, &spec.filters) {
            *matched.entry(tier).or_insert(0) += 1;
            kept.push((record, tier));
        }
    }
    sort_rows(&mut kept, spec.order);
    kept.truncate(spec.row_limit());
    StoragePart {
        destination,
        rows: kept,
        matched,
        scan_truncated: false,
        scanned,
    }
}

fn sort_rows(rows: &mut [(Record, Tier)], order: Order) {
    // Stable sorts keep each part's own order for equal times.
    match order {
        Order::Asc => rows.sort_by_key(|(r, _)| r.time_generated),
        Order::Desc => rows.sort_by_key(|(r, _)| std::cmp::Reverse(r.time_generated)),
    }
}

/// Merges the parts of every storage into one answer (see the module doc for the order).
pub fn merge(spec: &QuerySpec, mut parts: Vec<StoragePart>) -> QueryAnswer {
    parts.sort_by(|a, b| a.destination.cmp(&b.destination));
    let mut served_by = BTreeMap::new();
    let mut count = 0u64;
    let mut rows: Vec<(SimTime, usize, usize, ResultRow)> = Vec::new();
    let scan_truncated = parts.iter().any(|p| p.scan_truncated);
    for (part_index, part) in parts.into_iter().enumerate() {
        for (tier, n) in &part.matched {
            *served_by
                .entry((part.destination.clone(), *tier))
                .or_insert(0) += n;
            count += n;
        }
        for (row_index, (record, tier)) in part.rows.into_iter().enumerate() {
            // Defence in depth: a row outside the query never leaves the front end.
            if !matches(&record, &spec.range, &spec.filters) {
                continue;
            }
            rows.push((
                record.time_generated,
                part_index,
                row_index,
                ResultRow {
                    record,
                    destination: part.destination.clone(),
                    tier,
                },
            ));
        }
    }
    match spec.order {
        Order::Asc => rows.sort_by_key(|(t, p, i, _)| (*t, *p, *i)),
        Order::Desc => rows.sort_by_key(|(t, p, i, _)| (std::cmp::Reverse(*t), *p, *i)),
    }
    let limit = if spec.count_only { 0 } else { spec.row_limit() };
    let truncated = scan_truncated || (!spec.count_only && count > limit as u64);
    let rows = rows.into_iter().take(limit).map(|(_, _, _, r)| r).collect();
    QueryAnswer {
        rows,
        count,
        served_by,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::standard_table;

    fn rec(t: i64, computer: &str, value: f64) -> Record {
        Record::new(SimTime(t))
            .with("Computer", Value::String(computer.into()))
            .with("CounterValue", Value::Real(value))
    }

    fn spec(filters: Vec<Filter>, limit: u32, order: Order) -> QuerySpec {
        QuerySpec {
            workspace: "ws1".into(),
            table: "Perf".into(),
            range: TimeRange {
                from: SimTime(0),
                to: SimTime(1000),
            },
            filters,
            count_only: false,
            limit,
            order,
            kql: None,
        }
    }

    #[test]
    fn merges_parts_by_time_and_reports_who_served() {
        let q = spec(vec![], 0, Order::Asc);
        let shared = filter_part(
            Destination::Shared,
            vec![
                (rec(10, "a", 1.0), Tier::Cold),
                (rec(30, "a", 3.0), Tier::Hot),
            ],
            &q,
        );
        let cluster = filter_part(
            Destination::Cluster("c1".into()),
            vec![
                (rec(20, "b", 2.0), Tier::Hot),
                (rec(2000, "b", 9.0), Tier::Hot),
            ],
            &q,
        );
        let answer = merge(&q, vec![cluster, shared]);
        let times: Vec<i64> = answer
            .rows
            .iter()
            .map(|r| r.record.time_generated.0)
            .collect();
        assert_eq!(times, vec![10, 20, 30]);
        assert_eq!(
            answer.rows[1].destination,
            Destination::Cluster("c1".into())
        );
        assert_eq!(answer.count, 3);
        assert_eq!(answer.served_by[&(Destination::Shared, Tier::Cold)], 1);
        assert_eq!(
            answer.served_by[&(Destination::Cluster("c1".into()), Tier::Hot)],
            1
        );
        let desc = spec(vec![], 2, Order::Desc);
        let parts = vec![filter_part(
            Destination::Shared,
            vec![
                (rec(10, "a", 1.0), Tier::Cold),
                (rec(30, "a", 3.0), Tier::Hot),
                (rec(20, "a", 2.0), Tier::Hot),
            ],
            &desc,
        )];
        let answer = merge(&desc, parts);
        let times: Vec<i64> = answer
            .rows
            .iter()
            .map(|r| r.record.time_generated.0)
            .collect();
        assert_eq!(times, vec![30, 20]);
        assert!(answer.truncated);
        assert_eq!(answer.count, 3);
    }

    #[test]
    fn filters_hold_as_documented() {
        let r = rec(10, "web-01", 42.0);
        let range = TimeRange {
            from: SimTime(0),
            to: SimTime(11),
        };
        let eq = Filter::Equals {
            column: "Computer".into(),
            value: Value::String("web-01".into()),
        };
        let contains = Filter::Contains {
            column: "Computer".into(),
            text: "web".into(),
        };
        let gt = |v| Filter::Compare {
            column: "CounterValue".into(),
            op: CmpOp::Gt,
            value: v,
        };
        let ge = Filter::Compare {
            column: "CounterValue".into(),
            op: CmpOp::Ge,
            value: 42.0,
        };
        assert!(matches(&r, &range, &[eq, contains, gt(41.0), ge]));
        assert!(!matches(&r, &range, &[gt(42.0)]));
        let time_filter = Filter::Compare {
            column: "TimeGenerated".into(),
            op: CmpOp::Lt,
            value: 10.0,
        };
        assert!(!matches(&r, &range, &[time_filter]));
        let out_of_range = TimeRange {
            from: SimTime(11),
            to: SimTime(20),
        };
        assert!(!matches(&r, &out_of_range, &[]));
    }

    #[test]
    fn bad_queries_are_refused_before_any_storage_is_asked() {
        let perf = standard_table("Perf").unwrap();
        let mut q = spec(vec![], 0, Order::Asc);
        q.range.to = q.range.from;
        assert!(matches!(
            check_query(&q, &perf),
            Err(QueryError::InvalidTimeRange { .. })
        ));
        let q = spec(vec![], QUERY_ROWS_MAX + 1, Order::Asc);
        assert!(matches!(
            check_query(&q, &perf),
            Err(QueryError::LimitTooLarge { .. })
        ));
        let q = spec(
            vec![Filter::Contains {
                column: "CounterValue".into(),
                text: "1".into(),
            }],
            0,
            Order::Asc,
        );
        assert!(matches!(
            check_query(&q, &perf),
            Err(QueryError::FilterTypeMismatch { .. })
        ));
        let q = spec(
            vec![Filter::Equals {
                column: "Nope".into(),
                value: Value::Long(1),
            }],
            0,
            Order::Asc,
        );
        assert!(matches!(
            check_query(&q, &perf),
            Err(QueryError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn count_only_returns_no_rows() {
        let mut q = spec(vec![], 0, Order::Asc);
        q.count_only = true;
        let part = filter_part(Destination::Shared, vec![(rec(1, "a", 1.0), Tier::Hot)], &q);
        let answer = merge(&q, vec![part]);
        assert_eq!(
            (answer.count, answer.rows.len(), answer.truncated),
            (1, 0, false)
        );
    }
}
