//! The columnar block payload (block format 3): what the seal side writes since issue 11's
//! scan work, and how a scan reads only the columns a query needs.
//!
//! Why: with row-wise payloads (format 2, [`super::record`]) a scan decoded every record and
//! evaluated the query's filter once per record; a filter such as `Computer contains "web"`
//! compared the same few hundred host names millions of times. Here each column of a block is
//! stored contiguously, strings dictionary-coded per block, so a filter that reads one string
//! column is evaluated **once per distinct string per block** and selected rows are found by
//! index (see `super::rows`), and a column the query does not read is stepped over by its
//! length, never decoded.
//!
//! A block holds records whose columns may differ from record to record (the store is not
//! schema-bound): a stored column is one `(name, value type)` pair, so a name whose values have
//! two types in one block is two stored columns whose rows do not overlap. A record's absent
//! column (a null) is a row missing from the column's presence bitmap.
//!
//! Layout, integers little-endian, `varint` = unsigned LEB128 (at most 10 bytes), `zigzag`
//! the signed-to-unsigned mapping of protobuf:
//!
//! | part | encoding |
//! |------|----------|
//! | rows | varint: the record count `n` |
//! | times | `TimeGenerated` of each record, in record order: the first as i64 (8 bytes), then `n − 1` zigzag varint deltas from the previous one |
//! | column count | varint |
//! | per column | name (varint length, UTF-8), value tag (1 byte, the tags of format 2), value count `c` (varint, 1..=n), data length (varint), data |
//!
//! A column's data: a presence bitmap of `⌈n/8⌉` bytes when `c < n` (bit `r % 8` of byte `r / 8`
//! is set when record `r` has a value; no bitmap when every record has one), then the `c`
//! values of the records that have one, in record order:
//!
//! | tag | values |
//! |-----|--------|
//! | 1 string | dictionary size `d` (varint, 1..=c), `d` entries (varint length, UTF-8), then, when `d < c`, an id width `w` (1 byte: 1, 2 or 4) and `c` ids of `w` bytes each (an index into the dictionary); when `d = c` value `i` is entry `i` |
//! | 2 long, 5 datetime | i64 each (8 bytes) |
//! | 3 real | f64 bits each (8 bytes) |
//! | 4 bool | 1 byte each, 0 or 1 |
//! | 6 dynamic | per value: varint length, the JSON document |
//!
//! The encoder looks a string up in the column's hash map only when it is at most
//! [`DICTIONARY_STRING_BYTES_MAX`] long (host names, categories, levels: the values filters
//! compare); a longer one (a message) is compared with the previous value only, and otherwise
//! becomes its own entry without being hashed, so a column of unique messages is written as
//! plain strings (`d = c`). Entries of a dictionary need not be distinct; a reader only relies
//! on ids being below `d`.

use std::collections::HashMap;

use super::error::DataError;
use super::record::{
    put_varint, varint_len, Cursor, Record, Value, TAG_BOOL, TAG_DATETIME, TAG_DYNAMIC, TAG_LONG,
    TAG_REAL, TAG_STRING,
};

/// The longest string the encoder looks up in its column's dictionary, in bytes; longer ones
/// are entries of their own unless equal to the value before.
pub(crate) const DICTIONARY_STRING_BYTES_MAX: usize = 128;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn tag_of(value: &Value) -> u8 {
    match value {
        Value::String(_) => TAG_STRING,
        Value::Long(_) => TAG_LONG,
        Value::Real(_) => TAG_REAL,
        Value::Bool(_) => TAG_BOOL,
        Value::DateTime(_) => TAG_DATETIME,
        Value::Dynamic(_) => TAG_DYNAMIC,
    }
}

/// The width of a dictionary id for `entries` entries.
fn id_width(entries: usize) -> usize {
    if entries <= 1 << 8 {
        1
    } else if entries <= 1 << 16 {
        2
    } else {
        4
    }
}

/// Most records an encoder sizes its columns for ahead (a hint above it counts as it): 1,024
/// records ask at most 16 KiB per column of times, rows, ids and fixed-width values.
pub(crate) const ROWS_HINT_MAX: usize = 1024;

/// A string column whose dictionary reaches this many entries is taken to hold about one
/// entry per record, and is sized for the rest of its rows at once.
const DICTIONARY_GROWS_AT: usize = 32;

/// One stored column being built.
struct ColumnBuilder<'a> {
    name: &'a str,
    tag: u8,
    /// The records (row indexes) that have a value, ascending.
    rows: Vec<u32>,
    /// Encoded values (every tag but string).
    data: Vec<u8>,
    /// String columns: the dictionary, its encoded size, and each value's id.
    dict: Vec<&'a str>,
    dict_bytes: usize,
    ids: Vec<u32>,
    /// The dictionary's entries of at most [`DICTIONARY_STRING_BYTES_MAX`] bytes (only looked
    /// up, never iterated: its order is not in any output). Hashed with foldhash, seeded per
    /// process: SipHash was a third of an append's encoding time (perf, `bench ingest`).
    lookup: HashMap<&'a str, u32, foldhash::fast::RandomState>,
    /// Records this column expects (its encoder's hint when it was made).
    rows_hint: usize,
}

impl<'a> ColumnBuilder<'a> {
    /// A column expecting about `rows_hint` more records (at most [`ROWS_HINT_MAX`]): its
    /// per-record vectors are sized for them at once instead of growing by doubling.
    fn new(name: &'a str, tag: u8, rows_hint: usize) -> ColumnBuilder<'a> {
        let fixed_bytes = match tag {
            TAG_LONG | TAG_DATETIME | TAG_REAL => 8,
            TAG_BOOL => 1,
            _ => 0,
        };
        let strings = if tag == TAG_STRING { rows_hint } else { 0 };
        ColumnBuilder {
            name,
            tag,
            rows: Vec::with_capacity(rows_hint),
            data: Vec::with_capacity(fixed_bytes * rows_hint),
            dict: Vec::new(),
            dict_bytes: 0,
            ids: Vec::with_capacity(strings),
            lookup: HashMap::default(),
            rows_hint,
        }
    }

    /// Adds a string value; whether it made a new dictionary entry.
    fn push_str(&mut self, s: &'a str) -> bool {
        // A run of the same value (a host's records together) needs no lookup.
        if let Some(&last) = self.ids.last() {
            if self.dict[last as usize] == s {
                self.ids.push(last);
                return false;
            }
        }
        let short = s.len() <= DICTIONARY_STRING_BYTES_MAX;
        if let Some(&id) = self.lookup.get(s).filter(|_| short) {
            self.ids.push(id);
            return false;
        }
        let id = u32::try_from(self.dict.len()).expect("blocks are far below 4 GiB");
        if self.dict.len() == DICTIONARY_GROWS_AT {
            // Many distinct values so far: size the dictionary for one a record from here on
            // rather than rehash its map at every doubling.
            let expected = self.rows_hint.saturating_sub(self.ids.len());
            self.dict.reserve(expected);
            self.lookup.reserve(expected);
        }
        self.dict.push(s);
        self.dict_bytes += varint_len(s.len() as u64) + s.len();
        self.ids.push(id);
        if short {
            self.lookup.insert(s, id);
        }
        true
    }

    /// Takes back the last string value (which made a new entry when `new_entry`).
    fn pop_str(&mut self, new_entry: bool) {
        self.ids.pop();
        if new_entry {
            if let Some(s) = self.dict.pop() {
                self.dict_bytes -= varint_len(s.len() as u64) + s.len();
                if s.len() <= DICTIONARY_STRING_BYTES_MAX {
                    self.lookup.remove(s);
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.rows.len()
    }

    fn values_len(&self) -> usize {
        if self.tag != TAG_STRING {
            return self.data.len();
        }
        let (d, c) = (self.dict.len(), self.count());
        let ids = if d < c { 1 + c * id_width(d) } else { 0 };
        varint_len(d as u64) + self.dict_bytes + ids
    }

    fn data_len(&self, rows: usize) -> usize {
        let presence = if self.count() < rows {
            rows.div_ceil(8)
        } else {
            0
        };
        presence + self.values_len()
    }

    fn encoded_len(&self, rows: usize) -> usize {
        let data = self.data_len(rows);
        varint_len(self.name.len() as u64)
            + self.name.len()
            + 1
            + varint_len(self.count() as u64)
            + varint_len(data as u64)
            + data
    }

    fn write(&self, rows: usize, out: &mut Vec<u8>) {
        put_varint(out, self.name.len() as u64);
        out.extend_from_slice(self.name.as_bytes());
        out.push(self.tag);
        put_varint(out, self.count() as u64);
        put_varint(out, self.data_len(rows) as u64);
        if self.count() < rows {
            let start = out.len();
            out.resize(start + rows.div_ceil(8), 0);
            for &r in &self.rows {
                out[start + r as usize / 8] |= 1 << (r % 8);
            }
        }
        if self.tag != TAG_STRING {
            out.extend_from_slice(&self.data);
            return;
        }
        put_varint(out, self.dict.len() as u64);
        for s in &self.dict {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        if self.dict.len() < self.count() {
            let width = id_width(self.dict.len());
            out.push(width as u8);
            for &id in &self.ids {
                out.extend_from_slice(&id.to_le_bytes()[..width]);
            }
        }
    }
}

/// What one pushed value changed, so that the last record can be taken back.
#[derive(Clone, Copy)]
struct Undo {
    column: usize,
    /// The column's `data` length before (every tag but string).
    data_len: usize,
    /// A string value that made a new dictionary entry.
    new_entry: bool,
    /// The value made the column.
    new_column: bool,
}

/// Builds one block's columnar payload, record by record.
///
/// [`ColumnarEncoder::mark`] and [`ColumnarEncoder::rollback`] take back **the last record**
/// pushed (the one that would overflow the block): the encoder keeps an undo list of that
/// record's values only, so a mark costs nothing to take.
pub(crate) struct ColumnarEncoder<'a> {
    /// Records the caller expects to push (at most [`ROWS_HINT_MAX`]); sizes new columns.
    rows_hint: usize,
    rows: u32,
    times: Vec<u8>,
    last_time_ms: i64,
    min_time_ms: i64,
    max_time_ms: i64,
    columns: Vec<ColumnBuilder<'a>>,
    /// The last record's changes (cleared by each push).
    undo: Vec<Undo>,
}

/// Where a [`ColumnarEncoder`] stood before a record.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    rows: u32,
    times_len: usize,
    last_time_ms: i64,
    min_time_ms: i64,
    max_time_ms: i64,
}

impl<'a> ColumnarEncoder<'a> {
    /// An encoder that expects about `rows` records (a hint: any number may be pushed; above
    /// [`ROWS_HINT_MAX`] it counts as that many).
    pub(crate) fn with_rows_hint(rows: usize) -> ColumnarEncoder<'a> {
        let rows_hint = rows.min(ROWS_HINT_MAX);
        ColumnarEncoder {
            rows_hint,
            rows: 0,
            times: Vec::with_capacity(rows_hint + 8),
            last_time_ms: 0,
            min_time_ms: i64::MAX,
            max_time_ms: i64::MIN,
            columns: Vec::new(),
            undo: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The payload's size if it were finished now, in bytes.
    pub(crate) fn encoded_len(&self) -> usize {
        let rows = self.rows as usize;
        varint_len(rows as u64)
            + self.times.len()
            + varint_len(self.columns.len() as u64)
            + self
                .columns
                .iter()
                .map(|c| c.encoded_len(rows))
                .sum::<usize>()
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            rows: self.rows,
            times_len: self.times.len(),
            last_time_ms: self.last_time_ms,
            min_time_ms: self.min_time_ms,
            max_time_ms: self.max_time_ms,
        }
    }

    /// Takes back everything pushed since `mark`, which is at most the last record.
    pub(crate) fn rollback(&mut self, mark: Mark) {
        assert!(
            self.rows == mark.rows || self.rows == mark.rows + 1,
            "only the last record can be taken back"
        );
        if self.rows == mark.rows + 1 {
            self.undo_values();
        }
        self.times.truncate(mark.times_len);
        self.rows = mark.rows;
        self.last_time_ms = mark.last_time_ms;
        self.min_time_ms = mark.min_time_ms;
        self.max_time_ms = mark.max_time_ms;
    }

    fn undo_values(&mut self) {
        while let Some(u) = self.undo.pop() {
            let column = &mut self.columns[u.column];
            column.rows.pop();
            if column.tag == TAG_STRING {
                column.pop_str(u.new_entry);
            } else {
                column.data.truncate(u.data_len);
            }
            if u.new_column {
                self.columns.pop();
            }
        }
    }

    /// The stored column of `name` and `tag`, made if the block has none yet; searched from
    /// where the previous value's column was (records of a table list their columns in the
    /// same order).
    fn column(&mut self, name: &'a str, tag: u8, hint: usize) -> (usize, bool) {
        let found = (hint..self.columns.len())
            .chain(0..hint.min(self.columns.len()))
            .find(|&i| self.columns[i].tag == tag && self.columns[i].name == name);
        match found {
            Some(i) => (i, false),
            None => {
                let rows_hint = self.rows_hint.saturating_sub(self.rows as usize);
                self.columns.push(ColumnBuilder::new(name, tag, rows_hint));
                (self.columns.len() - 1, true)
            }
        }
    }

    /// Appends one record (validated by `record::validate`). On an error nothing of it stays.
    pub(crate) fn push(&mut self, record: &'a Record) -> Result<(), DataError> {
        self.undo.clear();
        let row = self.rows;
        let mut hint = 0;
        for (name, value) in &record.columns {
            let (at, new_column) = self.column(name, tag_of(value), hint);
            hint = at + 1;
            let column = &mut self.columns[at];
            let mut undo = Undo {
                column: at,
                data_len: column.data.len(),
                new_entry: false,
                new_column,
            };
            column.rows.push(row);
            let encoded = match value {
                Value::String(s) => {
                    undo.new_entry = column.push_str(s);
                    Ok(())
                }
                Value::Long(v) | Value::DateTime(v) => {
                    column.data.extend_from_slice(&v.to_le_bytes());
                    Ok(())
                }
                Value::Real(v) => {
                    column.data.extend_from_slice(&v.to_bits().to_le_bytes());
                    Ok(())
                }
                Value::Bool(v) => {
                    column.data.push(u8::from(*v));
                    Ok(())
                }
                Value::Dynamic(v) => serde_json::to_vec(v).map(|json| {
                    put_varint(&mut column.data, json.len() as u64);
                    column.data.extend_from_slice(&json);
                }),
            };
            self.undo.push(undo);
            if let Err(e) = encoded {
                self.undo_values();
                return Err(e.into());
            }
        }
        let time_ms = record.time_generated_ms;
        if row == 0 {
            self.times.extend_from_slice(&time_ms.to_le_bytes());
        } else {
            put_varint(
                &mut self.times,
                zigzag(time_ms.wrapping_sub(self.last_time_ms)),
            );
        }
        self.last_time_ms = time_ms;
        self.rows += 1;
        self.min_time_ms = self.min_time_ms.min(time_ms);
        self.max_time_ms = self.max_time_ms.max(time_ms);
        Ok(())
    }

    /// The finished payload, its record count and time range (`(i64::MAX, i64::MIN)` if empty).
    pub(crate) fn finish(self) -> (Vec<u8>, u32, i64, i64) {
        let rows = self.rows as usize;
        let mut out = Vec::with_capacity(self.encoded_len());
        put_varint(&mut out, rows as u64);
        out.extend_from_slice(&self.times);
        put_varint(&mut out, self.columns.len() as u64);
        for c in &self.columns {
            c.write(rows, &mut out);
        }
        debug_assert_eq!(out.len(), self.encoded_len());
        (out, self.rows, self.min_time_ms, self.max_time_ms)
    }
}

/// Encodes records into one columnar payload (no size limit: the caller split them already).
pub(crate) fn encode_block(records: &[Record]) -> Result<Vec<u8>, DataError> {
    let mut encoder = ColumnarEncoder::with_rows_hint(records.len());
    for r in records {
        encoder.push(r)?;
    }
    Ok(encoder.finish().0)
}

/// A parsed columnar payload: every record's time, and its columns not yet decoded.
pub(crate) struct Columns<'a> {
    pub times: Vec<i64>,
    pub columns: Vec<Column<'a>>,
}

/// One stored column of a parsed payload.
pub(crate) struct Column<'a> {
    pub name: &'a str,
    pub tag: u8,
    count: usize,
    /// `None`: every record has a value.
    presence: Option<&'a [u8]>,
    values: &'a [u8],
}

/// Which value of a column belongs to which record.
pub(crate) enum Slots {
    /// Every record has one: record `r`'s value is value `r`.
    Every,
    /// Record `r`'s value index, [`Slots::ABSENT`] for none.
    Some(Vec<u32>),
}

impl Slots {
    /// No value for that record.
    pub const ABSENT: u32 = u32::MAX;

    /// The value index of record `row`, if it has one.
    pub fn of(&self, row: usize) -> Option<usize> {
        match self {
            Slots::Every => Some(row),
            Slots::Some(slots) => match slots[row] {
                Slots::ABSENT => None,
                i => Some(i as usize),
            },
        }
    }
}

/// A column's values, decoded only as far as a reader needs (strings are borrowed, dynamic
/// documents parsed when a cell is made).
pub(crate) enum Values<'a> {
    Strings { dict: Vec<&'a str>, ids: Ids<'a> },
    Longs(&'a [u8]),
    DateTimes(&'a [u8]),
    Reals(&'a [u8]),
    Bools(&'a [u8]),
    Dynamics(Vec<&'a [u8]>),
}

/// A string column's ids (each checked below the dictionary's size when decoded).
pub(crate) enum Ids<'a> {
    /// Value `i` is entry `i`.
    Identity,
    /// `width`-byte little-endian ids.
    Packed { width: usize, bytes: &'a [u8] },
}

impl Ids<'_> {
    /// `f(i, entry)` for each of the first `count` values in order: a loop per id width, for a
    /// reader that goes through every value (a scan's filter and key codes).
    pub fn each(&self, count: usize, mut f: impl FnMut(usize, usize)) {
        match self {
            Ids::Identity => (0..count).for_each(|i| f(i, i)),
            Ids::Packed { width: 1, bytes } => {
                for (i, &b) in bytes[..count].iter().enumerate() {
                    f(i, usize::from(b));
                }
            }
            Ids::Packed { width: 2, bytes } => {
                for (i, b) in bytes[..2 * count].chunks_exact(2).enumerate() {
                    f(i, usize::from(u16::from_le_bytes([b[0], b[1]])));
                }
            }
            Ids::Packed { bytes, .. } => {
                for (i, b) in bytes[..4 * count].chunks_exact(4).enumerate() {
                    f(i, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
                }
            }
        }
    }

    /// The dictionary entry of value `i`.
    pub fn get(&self, i: usize) -> usize {
        match self {
            Ids::Identity => i,
            Ids::Packed { width: 1, bytes } => bytes[i] as usize,
            Ids::Packed { width: 2, bytes } => {
                u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as usize
            }
            Ids::Packed { bytes, .. } => {
                u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes")) as usize
            }
        }
    }
}

fn eight(bytes: &[u8], i: usize) -> i64 {
    i64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"))
}

impl<'a> Values<'a> {
    /// Value `i` as a storage value.
    pub fn value(&self, i: usize) -> Result<Value, String> {
        Ok(match self {
            Values::Strings { dict, ids } => Value::String(dict[ids.get(i)].to_string()),
            Values::Longs(b) => Value::Long(eight(b, i)),
            Values::DateTimes(b) => Value::DateTime(eight(b, i)),
            Values::Reals(b) => Value::Real(f64::from_bits(eight(b, i) as u64)),
            Values::Bools(b) => Value::Bool(b[i] == 1),
            Values::Dynamics(docs) => Value::Dynamic(dynamic(docs[i])?),
        })
    }

    /// Value `i` as a KQL cell.
    pub fn cell(&self, i: usize) -> Result<cmksim_kql::Value, String> {
        Ok(match self {
            Values::Strings { dict, ids } => {
                cmksim_kql::Value::String(dict[ids.get(i)].to_string())
            }
            Values::Longs(b) => cmksim_kql::Value::Long(eight(b, i)),
            Values::DateTimes(b) => cmksim_kql::Value::DateTime(eight(b, i)),
            Values::Reals(b) => cmksim_kql::Value::Real(f64::from_bits(eight(b, i) as u64)),
            Values::Bools(b) => cmksim_kql::Value::Bool(b[i] == 1),
            Values::Dynamics(docs) => cmksim_kql::Value::Dynamic(dynamic(docs[i])?),
        })
    }
}

fn dynamic(json: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(json).map_err(|e| format!("columnar payload: dynamic value: {e}"))
}

fn corrupt(what: &str) -> String {
    format!("columnar payload: {what}")
}

impl<'a> Columns<'a> {
    /// Parses a payload's record times and column headers; every length is checked against
    /// the bytes present (a payload is authenticated before it is parsed, but a parser must
    /// not trust it with a panic either).
    pub fn parse(payload: &'a [u8]) -> Result<Columns<'a>, String> {
        let mut c = Cursor::new(payload);
        let rows = c.len()?;
        // The first time takes 8 bytes and each later one at least 1.
        if rows > payload.len() {
            return Err(corrupt("record count exceeds its bytes"));
        }
        let mut times = Vec::with_capacity(rows);
        if rows > 0 {
            let mut t = c.i64()?;
            times.push(t);
            while times.len() < rows {
                // Records of a block mostly come a few ms apart: eight deltas of one byte
                // each are read as one word.
                if rows - times.len() >= 8 {
                    if let Some(word) = payload.get(c.at..c.at + 8) {
                        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
                        if word & 0x8080_8080_8080_8080 == 0 {
                            for k in 0..8 {
                                t = t.wrapping_add(unzigzag((word >> (8 * k)) & 0x7f));
                                times.push(t);
                            }
                            c.at += 8;
                            continue;
                        }
                    }
                }
                t = t.wrapping_add(unzigzag(c.varint()?));
                times.push(t);
            }
        }
        let count = c.len()?;
        if count > payload.len() - c.at {
            return Err(corrupt("column count exceeds its bytes"));
        }
        let mut columns = Vec::with_capacity(count);
        for _ in 0..count {
            let name = c.str()?;
            let tag = c.u8()?;
            if !(TAG_STRING..=TAG_DYNAMIC).contains(&tag) {
                return Err(corrupt(&format!("unknown value tag {tag}")));
            }
            let values = c.len()?;
            if values == 0 || values > rows {
                return Err(corrupt(&format!("column {name:?} has {values} values")));
            }
            let n = c.len()?;
            let mut data = c.take(n)?;
            let presence = if values < rows {
                let bytes = rows.div_ceil(8);
                if data.len() < bytes {
                    return Err(corrupt("presence bitmap truncated"));
                }
                let (bitmap, rest) = data.split_at(bytes);
                let set: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
                let spare_bits = bitmap[bytes - 1] >> (rows - 8 * (bytes - 1)).min(7);
                if set != values || (rows % 8 != 0 && spare_bits != 0) {
                    return Err(corrupt(&format!(
                        "column {name:?}: presence bitmap disagrees with its count"
                    )));
                }
                data = rest;
                Some(bitmap)
            } else {
                None
            };
            columns.push(Column {
                name,
                tag,
                count: values,
                presence,
                values: data,
            });
        }
        if c.at != payload.len() {
            return Err(corrupt("bytes after the last column"));
        }
        Ok(Columns { times, columns })
    }

    /// Every record, restored as written (each record's table from the block header).
    pub fn records(&self, table: &str) -> Result<Vec<Record>, String> {
        let mut records: Vec<Record> = self.times.iter().map(|&t| Record::new(table, t)).collect();
        for column in &self.columns {
            let values = column.values()?;
            let slots = column.slots(self.times.len());
            for (row, record) in records.iter_mut().enumerate() {
                if let Some(i) = slots.of(row) {
                    if record
                        .columns
                        .insert(column.name.to_string(), values.value(i)?)
                        .is_some()
                    {
                        return Err(corrupt(&format!(
                            "column {:?} twice in a record",
                            column.name
                        )));
                    }
                }
            }
        }
        Ok(records)
    }
}

impl<'a> Column<'a> {
    /// Which value belongs to which of the block's `rows` records.
    pub fn slots(&self, rows: usize) -> Slots {
        let Some(bitmap) = self.presence else {
            return Slots::Every;
        };
        let mut next = 0u32;
        Slots::Some(
            (0..rows)
                .map(|r| {
                    if bitmap[r / 8] & (1 << (r % 8)) != 0 {
                        next += 1;
                        next - 1
                    } else {
                        Slots::ABSENT
                    }
                })
                .collect(),
        )
    }

    /// The column's values, checked: lengths, UTF-8 of dictionary entries, ids below the
    /// dictionary's size, bool bytes.
    pub fn values(&self) -> Result<Values<'a>, String> {
        let c = self.count;
        let fixed = |bytes: &'a [u8]| {
            if bytes.len() == 8 * c {
                Ok(bytes)
            } else {
                Err(corrupt(&format!("column {:?}: value bytes", self.name)))
            }
        };
        Ok(match self.tag {
            TAG_LONG => Values::Longs(fixed(self.values)?),
            TAG_DATETIME => Values::DateTimes(fixed(self.values)?),
            TAG_REAL => Values::Reals(fixed(self.values)?),
            TAG_BOOL => {
                if self.values.len() != c || self.values.iter().any(|&b| b > 1) {
                    return Err(corrupt(&format!("column {:?}: bool bytes", self.name)));
                }
                Values::Bools(self.values)
            }
            TAG_DYNAMIC => {
                let mut cur = Cursor::new(self.values);
                let docs = (0..c)
                    .map(|_| {
                        let n = cur.len()?;
                        cur.take(n)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if cur.at != self.values.len() {
                    return Err(corrupt(&format!("column {:?}: value bytes", self.name)));
                }
                Values::Dynamics(docs)
            }
            _ => {
                let mut cur = Cursor::new(self.values);
                let d = cur.len()?;
                if d == 0 || d > c {
                    return Err(corrupt(&format!(
                        "column {:?}: dictionary of {d} entries for {c} values",
                        self.name
                    )));
                }
                let dict = (0..d).map(|_| cur.str()).collect::<Result<Vec<_>, _>>()?;
                let ids = if d == c {
                    Ids::Identity
                } else {
                    let width = cur.u8()? as usize;
                    if width != id_width(d) {
                        return Err(corrupt(&format!("column {:?}: id width", self.name)));
                    }
                    let bytes = cur.take(width * c)?;
                    let ids = Ids::Packed { width, bytes };
                    let mut greatest = 0;
                    ids.each(c, |_, id| greatest = greatest.max(id));
                    if greatest >= d {
                        return Err(corrupt(&format!(
                            "column {:?}: id out of the dictionary",
                            self.name
                        )));
                    }
                    ids
                };
                if cur.at != self.values.len() {
                    return Err(corrupt(&format!("column {:?}: value bytes", self.name)));
                }
                Values::Strings { dict, ids }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::record::{decode, PayloadFormat};

    fn decoded(payload: &[u8]) -> Vec<Record> {
        decode(payload, PayloadFormat::Columnar, "T").unwrap()
    }

    fn every_type(t: i64) -> Record {
        crate::data::record::every_type_for_tests("T", t)
    }

    #[test]
    fn round_trips_every_type_absent_columns_mixed_types_and_extreme_times() {
        let records = vec![
            every_type(1_000),
            every_type(i64::MIN),
            Record::new("T", i64::MAX).with("Only", Value::Bool(false)),
            Record::new("T", 8),
            // The same name with another type: a second stored column.
            Record::new("T", 7).with("Count", Value::String("three".into())),
            Record::new("T", 7).with("Props", Value::Dynamic(serde_json::Value::Null)),
        ];
        let payload = encode_block(&records).unwrap();
        assert_eq!(decoded(&payload), records);
        let block = Columns::parse(&payload).unwrap();
        let count_columns = block.columns.iter().filter(|c| c.name == "Count").count();
        assert_eq!(count_columns, 2, "one stored column per (name, type)");
    }

    #[test]
    fn an_empty_block_has_no_records_and_no_columns() {
        let payload = encode_block(&[]).unwrap();
        assert_eq!(payload, vec![0, 0]);
        assert!(decoded(&payload).is_empty());
        let (payload, count, min, max) = ColumnarEncoder::with_rows_hint(0).finish();
        assert_eq!((payload.len(), count, min, max), (2, 0, i64::MAX, i64::MIN));
    }

    fn strings(values: impl Iterator<Item = String>) -> Vec<Record> {
        values
            .enumerate()
            .map(|(i, s)| Record::new("T", i as i64 * 3).with("S", Value::String(s)))
            .collect()
    }

    fn dictionary_size(payload: &[u8]) -> usize {
        let block = Columns::parse(payload).unwrap();
        match block.columns[0].values().unwrap() {
            Values::Strings { dict, .. } => dict.len(),
            _ => panic!("a string column"),
        }
    }

    #[test]
    fn strings_are_dictionary_coded_per_block_and_unique_ones_written_plain() {
        // One distinct value: one entry, one-byte ids.
        let one = strings((0..1_000).map(|_| "Direct Agent".to_string()));
        let payload = encode_block(&one).unwrap();
        assert_eq!(decoded(&payload), one);
        assert_eq!(dictionary_size(&payload), 1);
        let occurrences = payload
            .windows("Direct Agent".len())
            .filter(|w| *w == b"Direct Agent")
            .count();
        assert_eq!(occurrences, 1, "a repeated string is stored once");
        // 300 distinct values repeating: two-byte ids.
        let some = strings((0..3_000).map(|i| format!("host-{}", i % 300)));
        let payload = encode_block(&some).unwrap();
        assert_eq!(decoded(&payload), some);
        assert_eq!(dictionary_size(&payload), 300);
        // All distinct: plain (identity ids).
        let all = strings((0..1_000).map(|i| format!("message {i}")));
        let payload = encode_block(&all).unwrap();
        assert_eq!(decoded(&payload), all);
        assert_eq!(dictionary_size(&payload), 1_000);
        // Long strings are not hashed: equal ones apart are two entries, equal ones in a run one.
        let long = "x".repeat(DICTIONARY_STRING_BYTES_MAX + 1);
        let apart = strings([&long, "a", &long, &long].map(String::from).into_iter());
        let payload = encode_block(&apart).unwrap();
        assert_eq!(decoded(&payload), apart);
        assert_eq!(dictionary_size(&payload), 3);
        let mut encoder = ColumnarEncoder::with_rows_hint(0);
        apart.iter().for_each(|r| encoder.push(r).unwrap());
        assert_eq!(encoder.columns[0].lookup.len(), 1);
    }

    #[test]
    fn times_of_every_delta_width_and_ids_of_four_bytes_round_trip() {
        // Runs of one-byte deltas (read eight at a time) broken by long and negative ones at
        // every position of an eight-record word, and runs that end short of a word.
        let mut t = 1_600_000_000_000i64;
        let mut records = Vec::new();
        for i in 0..2_000i64 {
            t += match i % 37 {
                5 => 1 << 40,
                11 => -(1 << 20),
                17 | 18 => -1,
                _ => i % 3,
            };
            records.push(Record::new("T", t));
        }
        let payload = encode_block(&records).unwrap();
        assert_eq!(decoded(&payload), records);
        // 70,000 distinct values, each twice: four-byte ids, each checked below the dictionary.
        let many = strings((0..140_000).map(|i| format!("{}", i % 70_000)));
        let payload = encode_block(&many).unwrap();
        assert_eq!(dictionary_size(&payload), 70_000);
        assert_eq!(decoded(&payload), many);
    }

    #[test]
    fn encoded_len_is_the_finished_size_at_every_step() {
        let records: Vec<Record> = (0..300)
            .map(|i| {
                let mut r = every_type(i * 1_000 - (i % 7) * 5_000);
                if i % 3 == 0 {
                    r.columns.remove("Cpu");
                }
                r.with("Host", Value::String(format!("h{}", i % 40)))
            })
            .collect();
        let mut encoder = ColumnarEncoder::with_rows_hint(0);
        for (i, r) in records.iter().enumerate() {
            encoder.push(r).unwrap();
            let len = encoder.encoded_len();
            let mut copy = ColumnarEncoder::with_rows_hint(0);
            records[..=i].iter().for_each(|r| copy.push(r).unwrap());
            assert_eq!(copy.finish().0.len(), len, "after record {i}");
        }
    }

    #[test]
    fn rollback_takes_back_the_last_record_its_new_columns_and_entries() {
        let a = Record::new("T", 1)
            .with("x", Value::Long(1))
            .with("s", Value::String("one".into()));
        let b = Record::new("T", 2)
            .with("y", Value::Long(2))
            .with("s", Value::String("two".into()))
            .with("z", Value::Dynamic(serde_json::json!([1])));
        let mut encoder = ColumnarEncoder::with_rows_hint(0);
        encoder.push(&a).unwrap();
        let mark = encoder.mark();
        let len = encoder.encoded_len();
        encoder.push(&b).unwrap();
        encoder.rollback(mark);
        assert_eq!(encoder.encoded_len(), len);
        let (payload, records, min, max) = encoder.finish();
        assert_eq!((records, min, max), (1, 1, 1));
        assert_eq!(payload, encode_block(&[a]).unwrap());
    }

    #[test]
    fn a_rows_hint_sizes_columns_and_never_changes_the_payload() {
        // Distinct strings past the dictionary's growth point, repeated ones, a column that
        // starts late, a bool, a real and a taken-back record.
        let records: Vec<Record> = (0..300)
            .map(|i| {
                let r = Record::new("T", 1_000 + i)
                    .with("Host", Value::String(format!("host-{}", i % 200)))
                    .with("Kind", Value::String("same".into()))
                    .with("Ok", Value::Bool(i % 3 == 0));
                if i >= 100 {
                    r.with("Load", Value::Real(i as f64 / 7.0))
                } else {
                    r
                }
            })
            .collect();
        let plain = encode_block(&records).unwrap();
        for hint in [0, 1, 50, 300, 5_000] {
            let mut encoder = ColumnarEncoder::with_rows_hint(hint);
            for r in &records {
                let mark = encoder.mark();
                encoder.push(r).unwrap();
                encoder.rollback(mark);
                encoder.push(r).unwrap();
            }
            assert_eq!(encoder.finish().0, plain, "hint {hint}");
        }
        let mut hinted = ColumnarEncoder::with_rows_hint(300);
        hinted.push(&records[0]).unwrap();
        assert!(hinted.columns.iter().all(|c| c.rows.capacity() >= 300));
        let hinted = ColumnarEncoder::with_rows_hint(5_000);
        assert_eq!(hinted.rows_hint, ROWS_HINT_MAX, "the hint is bounded");
    }

    #[test]
    fn records_come_back_with_columns_in_name_order_whatever_the_stored_order() {
        // Stored columns in first-seen order: Alpha, Zed, then Mid (new in the second record),
        // so the stored order is not the name order.
        let records = vec![
            Record::new("T", 1)
                .with("Zed", Value::Long(1))
                .with("Alpha", Value::String("a".into())),
            Record::new("T", 2)
                .with("Mid", Value::Bool(true))
                .with("Zed", Value::Long(2)),
        ];
        let payload = encode_block(&records).unwrap();
        let stored: Vec<&str> = Columns::parse(&payload)
            .unwrap()
            .columns
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(stored, ["Alpha", "Zed", "Mid"]);
        assert_eq!(decoded(&payload), records);
    }

    #[test]
    fn two_stored_columns_of_one_name_both_in_a_record_are_refused() {
        // One record whose "A" is stored twice: as a long and as a bool.
        let mut payload = vec![1];
        payload.extend_from_slice(&5i64.to_le_bytes());
        payload.push(2);
        for (tag, data) in [(TAG_LONG, 7i64.to_le_bytes().to_vec()), (TAG_BOOL, vec![1])] {
            payload.extend_from_slice(&[1, b'A', tag, 1, data.len() as u8]);
            payload.extend_from_slice(&data);
        }
        assert!(
            Columns::parse(&payload).is_ok(),
            "each column alone is well formed"
        );
        let refused = decode(&payload, PayloadFormat::Columnar, "T").unwrap_err();
        assert!(
            refused.contains("column \"A\" twice in a record"),
            "{refused}"
        );
    }

    #[test]
    fn a_corrupt_payload_is_an_error_not_a_panic() {
        let mut records: Vec<Record> = (0..40).map(every_type).collect();
        records.push(Record::new("T", 99).with("Rare", Value::Long(1)));
        records.extend((0..300).map(|i| {
            Record::new("T", 100 + i).with("Host", Value::String(format!("h{}", i % 280)))
        }));
        let payload = encode_block(&records).unwrap();
        for n in 0..payload.len() {
            assert!(
                decode(&payload[..n], PayloadFormat::Columnar, "T").is_err(),
                "a truncation at {n} is an error"
            );
        }
        for i in 0..payload.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut bad = payload.clone();
                bad[i] ^= x;
                // Decodes to something or is an error; never a panic.
                if let Ok(block) = Columns::parse(&bad) {
                    for c in &block.columns {
                        if let Ok(values) = c.values() {
                            let slots = c.slots(block.times.len());
                            for r in 0..block.times.len() {
                                if let Some(v) = slots.of(r) {
                                    let _ = values.cell(v);
                                }
                            }
                        }
                    }
                }
                let _ = decode(&bad, PayloadFormat::Columnar, "T");
            }
        }
    }
}
