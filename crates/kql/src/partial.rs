//! A summarize's partial groups as bytes: what storage sends the front end when it summarizes
//! a query's rows where they lie (issue 11: the Logs Query API's rows path copied every kept
//! row out of storage, over gRPC, to group them in the front end, and refused a table of more
//! than a million kept rows; the groups are a few hundred bytes).
//!
//! The format is this crate's alone, because the state it carries is: the running aggregates
//! ([`Acc`]) are the evaluator's internals, and the reader that decodes them must be the same
//! query's plan ([`crate::SummarizePlan::decode`]), which checks every group against the
//! plan's keys and aggregates. All integers little-endian:
//!
//! ```text
//! "KQG1"  u64 rows folded in  u32 group count
//! per group:  i64 first row's time  u64 first row's seq  (the part is the reader's)
//!             one value per `by` key, one aggregate per aggregate of the summarize
//! value:      u8 tag, then 0 null | 1 bool (u8) | 2 long (i64) | 3 real (u64 bits)
//!             | 4 string (u32 length, UTF-8) | 5 datetime (i64 ms) | 6 timespan (i64 ms)
//!             | 7 dynamic (u32 length, JSON text)
//! aggregate:  u8 tag, then 0 count (i64) | 1 sum (i128, f64) | 2 avg (i128, f64, u64 n)
//!             | 3 best (u8 present, then a value) | 4 distinct (u32 n, n values as keys)
//! ```
//!
//! Only the aggregates a plan can hold are encoded (a plan's are mergeable: counts, sums and
//! means, minima and maxima, distinct counts); a group of any other kind fails the decode,
//! as do bytes cut short or left over, a key twice, a tag out of range, text that is not
//! UTF-8 or JSON. No length is trusted before the bytes it claims are there.

use std::collections::BTreeSet;
use std::mem::discriminant;

use crate::exec::{key_hash, key_of, real_key, Acc, Groups, Key, Summarizer};
use crate::value::Value;
use crate::RowAt;

/// Bytes that are not a plan's groups.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed summarize groups: {0}")]
pub struct GroupsError(String);

const MAGIC: &[u8; 4] = b"KQG1";

/// Tags of values (and of keys, which share them).
mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const LONG: u8 = 2;
    pub const REAL: u8 = 3;
    pub const STRING: u8 = 4;
    pub const DATETIME: u8 = 5;
    pub const TIMESPAN: u8 = 6;
    pub const DYNAMIC: u8 = 7;
}

/// Tags of aggregates.
mod acc_tag {
    pub const COUNT: u8 = 0;
    pub const SUM: u8 = 1;
    pub const AVG: u8 = 2;
    pub const BEST: u8 = 3;
    pub const DISTINCT: u8 = 4;
}

pub(crate) fn encode(groups: &Groups) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + groups.groups.len() * 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&groups.rows.to_le_bytes());
    put_len(&mut out, groups.groups.len());
    for ((values, accs), first) in groups.groups.iter().zip(&groups.first) {
        out.extend_from_slice(&first.time_ms.to_le_bytes());
        out.extend_from_slice(&first.seq.to_le_bytes());
        for v in values {
            put_value(&mut out, v);
        }
        for acc in accs {
            put_acc(&mut out, acc);
        }
    }
    out
}

/// A length as a u32. Every length encoded is of something in memory that a decoder bounds
/// below 4 GiB (a group count, a string, a distinct set), so the saturation never bites in
/// practice, and if it did the decode would fail rather than misread.
fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, tag: u8, text: &str) {
    out.push(tag);
    put_len(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// A value as its key's encoding, but for reals, whose bits are kept as they are (a key folds
/// -0.0 into 0.0; a group's key value shows what its first row held).
fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Real(x) => {
            out.push(tag::REAL);
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        other => put_key(out, &key_of(other)),
    }
}

fn put_key(out: &mut Vec<u8>, k: &Key) {
    match k {
        Key::Null => out.push(tag::NULL),
        Key::Bool(b) => out.extend_from_slice(&[tag::BOOL, u8::from(*b)]),
        Key::Long(n) => put_i64(out, tag::LONG, *n),
        Key::Real(bits) => {
            out.push(tag::REAL);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Key::String(s) => put_text(out, tag::STRING, s),
        Key::DateTime(ms) => put_i64(out, tag::DATETIME, *ms),
        Key::TimeSpan(ms) => put_i64(out, tag::TIMESPAN, *ms),
        Key::Dynamic(text) => put_text(out, tag::DYNAMIC, text),
    }
}

fn put_i64(out: &mut Vec<u8>, tag: u8, n: i64) {
    out.push(tag);
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_acc(out: &mut Vec<u8>, acc: &Acc) {
    match acc {
        Acc::Count(n) => put_i64(out, acc_tag::COUNT, *n),
        Acc::Sum { long, real } => {
            out.push(acc_tag::SUM);
            out.extend_from_slice(&long.to_le_bytes());
            out.extend_from_slice(&real.to_bits().to_le_bytes());
        }
        Acc::Avg { long, real, n } => {
            out.push(acc_tag::AVG);
            out.extend_from_slice(&long.to_le_bytes());
            out.extend_from_slice(&real.to_bits().to_le_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
        Acc::Best(best) => {
            out.push(acc_tag::BEST);
            match best {
                None => out.push(0),
                Some(v) => {
                    out.push(1);
                    put_value(out, v);
                }
            }
        }
        Acc::Distinct(set) => {
            out.push(acc_tag::DISTINCT);
            put_len(out, set.len());
            for k in set {
                put_key(out, k);
            }
        }
        // Never in a plan's groups (not mergeable): an unknown tag, which no decoder accepts.
        Acc::Arg(_) | Acc::Values(_) | Acc::List(..) => out.push(u8::MAX),
    }
}

/// A cursor over the bytes being decoded.
struct Reader<'a> {
    bytes: &'a [u8],
}

fn bad(what: impl Into<String>) -> GroupsError {
    GroupsError(what.into())
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], GroupsError> {
        if self.bytes.len() < n {
            return Err(bad("cut short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GroupsError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, GroupsError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, GroupsError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GroupsError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i128(&mut self) -> Result<i128, GroupsError> {
        Ok(i128::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, GroupsError> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A length, checked against the bytes left (each item takes at least `item_bytes`).
    fn len(&mut self, item_bytes: usize) -> Result<usize, GroupsError> {
        let n = u32::from_le_bytes(self.array()?) as usize;
        if n.saturating_mul(item_bytes) > self.bytes.len() {
            return Err(bad("a length beyond the bytes left"));
        }
        Ok(n)
    }

    fn text(&mut self) -> Result<&'a str, GroupsError> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| bad("text that is not UTF-8"))
    }

    fn value(&mut self) -> Result<Value, GroupsError> {
        Ok(match self.u8()? {
            tag::NULL => Value::Null,
            tag::BOOL => Value::Bool(self.bool()?),
            tag::LONG => Value::Long(self.i64()?),
            tag::REAL => Value::Real(self.f64()?),
            tag::STRING => Value::String(self.text()?.to_string()),
            tag::DATETIME => Value::DateTime(self.i64()?),
            tag::TIMESPAN => Value::TimeSpan(self.i64()?),
            tag::DYNAMIC => Value::Dynamic(
                serde_json::from_str(self.text()?)
                    .map_err(|_| bad("a dynamic that is not JSON"))?,
            ),
            other => return Err(bad(format!("value tag {other}"))),
        })
    }

    fn bool(&mut self) -> Result<bool, GroupsError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(bad(format!("bool {other}"))),
        }
    }

    fn key(&mut self) -> Result<Key, GroupsError> {
        Ok(match self.u8()? {
            tag::NULL => Key::Null,
            tag::BOOL => Key::Bool(self.bool()?),
            tag::LONG => Key::Long(self.i64()?),
            tag::REAL => {
                // Only the bits a key can hold (-0.0 and the NaNs folded).
                let bits = self.u64()?;
                if real_key(f64::from_bits(bits)) != bits {
                    return Err(bad("a real key that is not folded"));
                }
                Key::Real(bits)
            }
            tag::STRING => Key::String(self.text()?.to_string()),
            tag::DATETIME => Key::DateTime(self.i64()?),
            tag::TIMESPAN => Key::TimeSpan(self.i64()?),
            tag::DYNAMIC => Key::Dynamic(self.text()?.to_string()),
            other => return Err(bad(format!("key tag {other}"))),
        })
    }

    fn acc(&mut self) -> Result<Acc, GroupsError> {
        Ok(match self.u8()? {
            acc_tag::COUNT => Acc::Count(self.i64()?),
            acc_tag::SUM => Acc::Sum {
                long: self.i128()?,
                real: self.f64()?,
            },
            acc_tag::AVG => Acc::Avg {
                long: self.i128()?,
                real: self.f64()?,
                n: self.u64()?,
            },
            acc_tag::BEST => Acc::Best(if self.bool()? {
                Some(self.value()?)
            } else {
                None
            }),
            acc_tag::DISTINCT => {
                let n = self.len(1)?;
                let mut set = BTreeSet::new();
                for _ in 0..n {
                    if !set.insert(self.key()?) {
                        return Err(bad("a distinct value twice"));
                    }
                }
                Acc::Distinct(set)
            }
            other => return Err(bad(format!("aggregate tag {other}"))),
        })
    }
}

/// The least bytes one group takes: its first row (16) and a tag per key and aggregate.
fn group_bytes_min(summarizer: &Summarizer) -> usize {
    16 + summarizer.by_len() + summarizer.aggs.len()
}

pub(crate) fn decode(
    summarizer: &Summarizer,
    bytes: &[u8],
    part: u32,
) -> Result<Groups, GroupsError> {
    let mut r = Reader { bytes };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(bad("not summarize groups (no KQG1 mark)"));
    }
    let mut groups = summarizer.no_groups();
    groups.rows = r.u64()?;
    let count = r.len(group_bytes_min(summarizer))?;
    if summarizer.by_len() == 0 && count != 1 {
        return Err(bad(format!(
            "{count} groups of a summarize without by (it has one)"
        )));
    }
    let start = summarizer.start();
    for _ in 0..count {
        let first = RowAt {
            time_ms: r.i64()?,
            part,
            seq: r.u64()?,
        };
        let values = (0..summarizer.by_len())
            .map(|_| r.value())
            .collect::<Result<Vec<_>, _>>()?;
        let mut accs = Vec::with_capacity(start.len());
        for expected in &start {
            let acc = r.acc()?;
            if discriminant(&acc) != discriminant(expected) {
                return Err(bad("an aggregate of another kind than the query's"));
            }
            accs.push(acc);
        }
        let hash = key_hash(&values);
        if groups.find(hash, &values).is_some() {
            return Err(bad("a group key twice"));
        }
        groups.insert(hash, values, accs, first);
    }
    if !r.bytes.is_empty() {
        return Err(bad(format!("{} bytes left over", r.bytes.len())));
    }
    Ok(groups)
}
