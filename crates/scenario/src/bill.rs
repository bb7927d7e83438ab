//! The bill of a dedicated cluster, day by day (seeds 000 and 001, SPEC §10).
//!
//! The rules, with the sentence each comes from:
//! - seed 001: "Log Analytics Dedicated Clusters use a Capacity Reservation pricing model ...
//!   Any usage above the reservation level will be billed at the Pay-As-You-Go rate." A day costs
//!   the reservation (`capacity × reservation price`) plus the GB above it at the pay-as-you-go
//!   price.
//! - seed 001: "Cluster (default): ... The ingested data quantities from each workspace associated
//!   to a cluster are aggregated to calculate the daily bill for the cluster." With `billingType:
//!   cluster` the whole day is one line on the cluster.
//! - seed 000: "Workspaces -- The Capacity Reservation costs for your Cluster are attributed
//!   proportionately to the workspaces in the Cluster, with the Cluster resource being billed
//!   some of the usage if the total ingested data for the day is under the Capacity
//!   Reservation." With `billingType: workspaces` each workspace pays its share of the day in
//!   proportion to the GB it ingested; on a day under the reservation each workspace pays its GB
//!   at the reservation's per-GB price and the cluster pays for the unused reserved GB.
//!
//! [`bill_day`] is the rule, a pure function with hand-checkable arithmetic: amounts are whole
//! millionths of the profile's made-up currency (integers, so a bill never depends on float
//! rounding), a GB is 10^9 bytes, and a proportional split gives the rounding remainder to the
//! workspace that ingested most (the first by name on a tie), so the lines always add up to the
//! day's total. [`bill_run`] derives the days of a run from its events: the records the ingest
//! front end accepted on the route `cluster:<name>` (each standing for the profile's
//! `billed_bytes_per_record`), and the capacity and billing type in force at the end of each day
//! (the world's, then each `update-cluster` step that succeeded). Only whole days are billed: a
//! run of 36 hours has one day on its bill.

use std::collections::BTreeMap;
use std::time::Duration;

use cmksim_sim::governance::BillProfile;
use cmksim_sim::Event;
use serde::Serialize;

use crate::events::{self, str_field, u64_field};
use crate::model::{Action, BillingType, Scenario, StepKind};

/// One simulated day.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// Bytes in a billed GB.
pub const BYTES_PER_GB: u64 = 1_000_000_000;
/// Millionths of the currency in one hundredth (the profile's prices are in hundredths).
const MICROS_PER_CENT: u128 = 10_000;
/// At most this many days are billed (a run longer than a year is billed for its first year).
pub const BILL_DAYS_MAX: u64 = 366;

/// Who pays a line of the bill.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "name")]
pub enum Payer {
    Cluster(String),
    Workspace(String),
}

/// One cluster's day, as the bill needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDay {
    pub cluster: String,
    pub capacity_gb_per_day: u64,
    pub billing_type: BillingType,
    /// Billed bytes ingested by each workspace through the cluster that day.
    pub ingested_bytes: BTreeMap<String, u64>,
}

/// One cluster's bill for one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DayBill {
    /// Day number from 1.
    pub day: u64,
    pub cluster: String,
    pub billing_type: &'static str,
    pub capacity_gb_per_day: u64,
    pub ingested_bytes: u64,
    /// Bytes above the reservation, billed at the pay-as-you-go price.
    pub overage_bytes: u64,
    pub reservation_micros: u64,
    pub overage_micros: u64,
    /// Who pays what; adds up to `reservation_micros + overage_micros`.
    pub lines: Vec<(Payer, u64)>,
}

impl DayBill {
    pub fn total_micros(&self) -> u64 {
        self.reservation_micros + self.overage_micros
    }
}

/// `bytes` at `cents_per_gb`, in millionths (rounded down).
pub fn cost_micros(bytes: u64, cents_per_gb: u64) -> u64 {
    let micros =
        u128::from(bytes) * u128::from(cents_per_gb) * MICROS_PER_CENT / u128::from(BYTES_PER_GB);
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// An amount for people: `1500.00 credits` (millionths rounded down to hundredths).
pub fn format_amount(micros: u64, currency: &str) -> String {
    format!(
        "{}.{:02} {currency}",
        micros / 1_000_000,
        (micros % 1_000_000) / 10_000
    )
}

/// `total` split in proportion to `weights`; the remainder of the rounding goes to the largest
/// weight (the first on a tie). Every weight zero: nothing is split (empty).
fn split(total: u64, weights: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let sum: u128 = weights.values().map(|w| u128::from(*w)).sum();
    if sum == 0 {
        return Vec::new();
    }
    let mut shares: Vec<(String, u64)> = weights
        .iter()
        .filter(|(_, w)| **w > 0)
        .map(|(name, w)| {
            let share = u128::from(total) * u128::from(*w) / sum;
            (name.clone(), u64::try_from(share).unwrap_or(u64::MAX))
        })
        .collect();
    let given: u64 = shares.iter().map(|(_, s)| *s).sum();
    let largest = weights
        .iter()
        .filter(|(_, w)| **w > 0)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(name, _)| name.clone());
    if let Some(entry) = shares
        .iter_mut()
        .find(|(name, _)| Some(name) == largest.as_ref())
    {
        entry.1 += total - given;
    }
    shares
}

/// The bill of one cluster's day under `prices`.
pub fn bill_day(prices: &BillProfile, day: u64, input: &ClusterDay) -> DayBill {
    let ingested: u64 = input.ingested_bytes.values().sum();
    let reserved_bytes = input.capacity_gb_per_day.saturating_mul(BYTES_PER_GB);
    let overage_bytes = ingested.saturating_sub(reserved_bytes);
    let reservation_micros = cost_micros(reserved_bytes, prices.reservation_cents_per_gb);
    let overage_micros = cost_micros(overage_bytes, prices.pay_as_you_go_cents_per_gb);
    let total = reservation_micros + overage_micros;
    let cluster = Payer::Cluster(input.cluster.clone());
    let lines = match input.billing_type {
        BillingType::Cluster => vec![(cluster, total)],
        BillingType::Workspaces if ingested >= reserved_bytes => {
            let mut lines: Vec<(Payer, u64)> = split(total, &input.ingested_bytes)
                .into_iter()
                .map(|(w, a)| (Payer::Workspace(w), a))
                .collect();
            if lines.is_empty() {
                // Nothing ingested and nothing reserved: a zero line on the cluster.
                lines.push((cluster, total));
            }
            lines
        }
        BillingType::Workspaces => {
            // Under the reservation: each workspace pays its GB at the reservation's price, the
            // cluster the reserved GB nobody used (and the rounding left over).
            let mut lines: Vec<(Payer, u64)> = input
                .ingested_bytes
                .iter()
                .filter(|(_, b)| **b > 0)
                .map(|(w, b)| {
                    (
                        Payer::Workspace(w.clone()),
                        cost_micros(*b, prices.reservation_cents_per_gb),
                    )
                })
                .collect();
            let paid: u64 = lines.iter().map(|(_, a)| *a).sum();
            lines.push((cluster, total - paid));
            lines
        }
    };
    debug_assert_eq!(lines.iter().map(|(_, a)| *a).sum::<u64>(), total);
    DayBill {
        day,
        cluster: input.cluster.clone(),
        billing_type: match input.billing_type {
            BillingType::Cluster => "cluster",
            BillingType::Workspaces => "workspaces",
        },
        capacity_gb_per_day: input.capacity_gb_per_day,
        ingested_bytes: ingested,
        overage_bytes,
        reservation_micros,
        overage_micros,
        lines,
    }
}

/// The bill of a run: every whole day, every world cluster, in (day, cluster) order.
pub fn bill_run(scenario: &Scenario, events: &[Event]) -> Vec<DayBill> {
    let prices = &scenario.profile.bill;
    let days = (scenario.meta.duration.as_secs() / DAY.as_secs()).min(BILL_DAYS_MAX);
    if days == 0 || scenario.world.clusters.is_empty() {
        return Vec::new();
    }
    let Some(start) = events
        .iter()
        .find(|e| e.kind == events::SCENARIO_STARTED)
        .map(|e| e.at_ms)
    else {
        return Vec::new();
    };
    let day_ms = DAY.as_millis() as i64;
    let day_of = |at_ms: i64| -> Option<u64> {
        let d = (at_ms - start).div_euclid(day_ms);
        (0..days as i64).contains(&d).then_some(d as u64)
    };
    // The capacity and billing type in force, changed by the update-cluster steps that held.
    let mut setting: BTreeMap<&str, (u64, BillingType)> = scenario
        .world
        .clusters
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                (u64::from(c.capacity_gb_per_day), c.billing_type),
            )
        })
        .collect();
    let updates: BTreeMap<String, (&str, Option<u32>, Option<BillingType>)> = scenario
        .timeline
        .iter()
        .filter_map(|step| match &step.what {
            StepKind::Action(Action::UpdateCluster {
                cluster,
                capacity_gb_per_day,
                billing_type,
                ..
            }) => Some((
                step.label(),
                (cluster.as_str(), *capacity_gb_per_day, *billing_type),
            )),
            _ => None,
        })
        .collect();
    let mut ingested: BTreeMap<(u64, String), BTreeMap<String, u64>> = BTreeMap::new();
    let mut settings_by_day: BTreeMap<(u64, String), (u64, BillingType)> = BTreeMap::new();
    let mut day_done = 0u64;
    let mut close_days =
        |until: u64, setting: &BTreeMap<&str, (u64, BillingType)>, day_done: &mut u64| {
            while *day_done < until {
                for (name, s) in setting {
                    settings_by_day.insert((*day_done, name.to_string()), *s);
                }
                *day_done += 1;
            }
        };
    for e in events {
        let Some(day) = day_of(e.at_ms) else {
            if e.at_ms >= start {
                close_days(days, &setting, &mut day_done);
            }
            continue;
        };
        close_days(day, &setting, &mut day_done);
        match e.kind.as_str() {
            events::INGEST_BATCH => {
                let route = str_field(e, "route").unwrap_or("");
                if let Some(cluster) = route.strip_prefix("cluster:") {
                    let bytes =
                        u64_field(e, "accepted").saturating_mul(prices.billed_bytes_per_record);
                    let ws = str_field(e, "workspace").unwrap_or("").to_string();
                    *ingested
                        .entry((day, cluster.to_string()))
                        .or_default()
                        .entry(ws)
                        .or_default() += bytes;
                }
            }
            events::SCENARIO_STEP_OK => {
                let label = str_field(e, "step").unwrap_or("");
                if let Some((cluster, capacity, billing)) = updates.get(label) {
                    if let Some(s) = setting.get_mut(cluster) {
                        if let Some(c) = capacity {
                            s.0 = u64::from(*c);
                        }
                        if let Some(b) = billing {
                            s.1 = *b;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    close_days(days, &setting, &mut day_done);
    settings_by_day
        .into_iter()
        .map(|((day, cluster), (capacity, billing_type))| {
            let input = ClusterDay {
                ingested_bytes: ingested
                    .get(&(day, cluster.clone()))
                    .cloned()
                    .unwrap_or_default(),
                cluster,
                capacity_gb_per_day: capacity,
                billing_type,
            };
            bill_day(prices, day + 1, &input)
        })
        .collect()
}

/// The bill as a table for the run summary (empty when nothing is billed).
pub fn render_bill(bills: &[DayBill], prices: &BillProfile) -> String {
    if bills.is_empty() {
        return String::new();
    }
    let money = |m: u64| format_amount(m, &prices.currency);
    let mut out = format!(
        "Bill (made-up prices: reservation {} per GB-day, pay-as-you-go {} per GB; a record bills as {} bytes)\n",
        format_amount(prices.reservation_cents_per_gb * 10_000, &prices.currency),
        format_amount(prices.pay_as_you_go_cents_per_gb * 10_000, &prices.currency),
        prices.billed_bytes_per_record
    );
    out.push_str(&format!(
        "  {:>4} {:<16} {:<10} {:>9} {:>12} {:>12} {:>18}  paid by\n",
        "day", "cluster", "billing", "reserved", "ingested GB", "overage GB", "total"
    ));
    for b in bills {
        let payers: Vec<String> = b
            .lines
            .iter()
            .map(|(p, a)| payer_text(p, &money(*a)))
            .collect();
        out.push_str(&format!(
            "  {:>4} {:<16} {:<10} {:>9} {:>12} {:>12} {:>18}  {}\n",
            b.day,
            b.cluster,
            b.billing_type,
            b.capacity_gb_per_day,
            gb(b.ingested_bytes),
            gb(b.overage_bytes),
            money(b.total_micros()),
            payers.join(", ")
        ));
    }
    let mut totals: BTreeMap<&Payer, u64> = BTreeMap::new();
    for b in bills {
        for (p, a) in &b.lines {
            *totals.entry(p).or_default() += a;
        }
    }
    let all: u64 = totals.values().sum();
    let per_payer: Vec<String> = totals
        .iter()
        .map(|(p, a)| payer_text(p, &money(*a)))
        .collect();
    out.push_str(&format!(
        "  {} day(s): {} ({})\n",
        bills.iter().map(|b| b.day).max().unwrap_or(0),
        money(all),
        per_payer.join(", ")
    ));
    out
}

/// The kind of the event each billed day becomes (source `bill`), recorded after the run.
pub const BILL_DAY: &str = "bill.day";

fn payer_text(payer: &Payer, amount: &str) -> String {
    match payer {
        Payer::Cluster(c) => format!("cluster {c} {amount}"),
        Payer::Workspace(w) => format!("{w} {amount}"),
    }
}

/// The `bill.day` event of one day: (kind, message, data). Amounts in the data are millionths
/// (integers) and, for people, text.
pub fn day_event(b: &DayBill, prices: &BillProfile) -> (String, String, serde_json::Value) {
    let money = |m: u64| format_amount(m, &prices.currency);
    let payers: Vec<String> = b
        .lines
        .iter()
        .map(|(p, a)| payer_text(p, &money(*a)))
        .collect();
    let message = format!(
        "bill day {}: cluster {} ({} GB/day reserved, billingType {}) ingested {} GB, {} GB above the reservation: {} — {}",
        b.day,
        b.cluster,
        b.capacity_gb_per_day,
        b.billing_type,
        gb(b.ingested_bytes),
        gb(b.overage_bytes),
        money(b.total_micros()),
        payers.join(", ")
    );
    let lines: Vec<serde_json::Value> = b
        .lines
        .iter()
        .map(|(p, a)| {
            let (kind, name) = match p {
                Payer::Cluster(c) => ("cluster", c),
                Payer::Workspace(w) => ("workspace", w),
            };
            serde_json::json!({ "payer": kind, "name": name, "micros": a, "amount": money(*a) })
        })
        .collect();
    let data = serde_json::json!({
        "day": b.day,
        "cluster": b.cluster,
        "billing_type": b.billing_type,
        "capacity_gb_per_day": b.capacity_gb_per_day,
        "ingested_bytes": b.ingested_bytes,
        "overage_bytes": b.overage_bytes,
        "reservation_micros": b.reservation_micros,
        "overage_micros": b.overage_micros,
        "total_micros": b.total_micros(),
        "total": money(b.total_micros()),
        "lines": lines,
    });
    (BILL_DAY.to_string(), message, data)
}

/// The report's bill section, read from the run's `bill.day` events (empty when there are none).
pub fn html_section(events: &[Event]) -> String {
    let days: Vec<&Event> = events.iter().filter(|e| e.kind == BILL_DAY).collect();
    if days.is_empty() {
        return String::new();
    }
    let esc = crate::report::escape;
    let mut out = String::from(
        "<h2>Bill</h2>\n<p>Made-up prices from the profile's <code>[bill]</code>; one line per cluster and day.</p>\n<table>\n<tr><th>day</th><th>cluster</th><th>billing</th><th>reserved GB</th><th>ingested GB</th><th>overage GB</th><th>total</th><th>paid by</th></tr>\n",
    );
    for e in days {
        let d = &e.data;
        let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let num = |k: &str| d.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let payers: Vec<String> = d
            .get("lines")
            .and_then(|l| l.as_array())
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| {
                        let f = |k: &str| l.get(k).and_then(|v| v.as_str()).unwrap_or("");
                        let who = match f("payer") {
                            "cluster" => format!("cluster {}", f("name")),
                            _ => f("name").to_string(),
                        };
                        format!("{who} {}", f("amount"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            num("day"),
            esc(&text("cluster")),
            esc(&text("billing_type")),
            num("capacity_gb_per_day"),
            gb(num("ingested_bytes")),
            gb(num("overage_bytes")),
            esc(&text("total")),
            esc(&payers.join(", "))
        ));
    }
    out.push_str("</table>\n");
    out
}

/// "1960.00", "1960.5" or "1960" as millionths; `None` for anything else (a sign, a third
/// decimal, more than 15 integer digits).
pub fn parse_amount(text: &str) -> Option<u64> {
    let (units, cents) = match text.split_once('.') {
        Some((u, c)) if (1..=2).contains(&c.len()) => (u, c),
        Some(_) => return None,
        None => (text, "0"),
    };
    let digits = |t: &str| !t.is_empty() && t.len() <= 15 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(units) || !digits(cents) {
        return None;
    }
    let cents: u64 = format!("{cents:0<2}").parse().ok()?;
    Some(units.parse::<u64>().ok()? * 1_000_000 + cents * 10_000)
}

/// Judges a `bill` expectation: the payer's line on that day of the cluster's bill.
pub fn judge(
    scenario: &Scenario,
    expectation: &crate::model::Expectation,
    events: &[Event],
) -> crate::verdict::Verdict {
    use crate::verdict::{Outcome, Verdict};
    let crate::model::Subject::Bill {
        cluster,
        day,
        payer,
        amount_micros,
    } = &expectation.subject
    else {
        return Verdict::new(
            expectation.label(),
            expectation.description.clone(),
            Outcome::NotApplicable,
            "not a bill expectation",
            vec![],
        );
    };
    let currency = &scenario.profile.bill.currency;
    let bills = bill_run(scenario, events);
    let (outcome, detail) = match bills
        .iter()
        .find(|b| b.day == *day && &b.cluster == cluster)
    {
        None => (
            Outcome::Broken,
            format!(
                "the run has no bill for {cluster} on day {day} ({} whole days billed)",
                bills.iter().map(|b| b.day).max().unwrap_or(0)
            ),
        ),
        Some(b) => {
            let charged: u64 = b
                .lines
                .iter()
                .filter(|(p, _)| match p {
                    Payer::Cluster(c) => c == payer,
                    Payer::Workspace(w) => w == payer,
                })
                .map(|(_, a)| *a)
                .sum();
            let all: Vec<String> = b
                .lines
                .iter()
                .map(|(p, a)| payer_text(p, &format_amount(*a, currency)))
                .collect();
            let text = format!(
                "day {day}: {} GB ingested, {} GB/day reserved, billingType {}: {}",
                gb(b.ingested_bytes),
                b.capacity_gb_per_day,
                b.billing_type,
                all.join(", ")
            );
            match charged == *amount_micros {
                true => (Outcome::Held, text),
                false => (
                    Outcome::Broken,
                    format!(
                        "{payer} is charged {}, expected {}; {text}",
                        format_amount(charged, currency),
                        format_amount(*amount_micros, currency)
                    ),
                ),
            }
        }
    };
    Verdict::new(
        expectation.label(),
        expectation.description.clone(),
        outcome,
        detail,
        vec![],
    )
}

/// Bytes as GB with two decimals.
pub fn gb(bytes: u64) -> String {
    format!(
        "{}.{:02}",
        bytes / BYTES_PER_GB,
        (bytes % BYTES_PER_GB) / (BYTES_PER_GB / 100)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> BillProfile {
        BillProfile {
            currency: "credits".into(),
            reservation_cents_per_gb: 150,
            pay_as_you_go_cents_per_gb: 230,
            billed_bytes_per_record: 1000,
        }
    }

    fn day(billing: BillingType, capacity: u64, ws: &[(&str, u64)]) -> ClusterDay {
        ClusterDay {
            cluster: "c1".into(),
            capacity_gb_per_day: capacity,
            billing_type: billing,
            ingested_bytes: ws
                .iter()
                .map(|(w, gb)| (w.to_string(), gb * BYTES_PER_GB))
                .collect(),
        }
    }

    fn c(name: &str) -> Payer {
        Payer::Cluster(name.into())
    }
    fn w(name: &str) -> Payer {
        Payer::Workspace(name.into())
    }

    /// Hand-computed: 1000 GB reserved at 1.50 = 1500.00; 200 GB above at 2.30 = 460.00.
    #[test]
    fn the_days_by_hand() {
        let m = |units: u64| units * 1_000_000;
        /// (name, the day, reservation, overage, the lines), amounts in millionths.
        type Case = (&'static str, ClusterDay, u64, u64, Vec<(Payer, u64)>);
        let cases: Vec<Case> = vec![
            (
                "cluster, under the reservation",
                day(BillingType::Cluster, 1000, &[("a", 300), ("b", 100)]),
                m(1500),
                0,
                vec![(c("c1"), m(1500))],
            ),
            (
                "cluster, 200 GB over",
                day(BillingType::Cluster, 1000, &[("a", 900), ("b", 300)]),
                m(1500),
                m(460),
                vec![(c("c1"), m(1960))],
            ),
            (
                "workspaces, 200 GB over: 1960 split 900:300",
                day(BillingType::Workspaces, 1000, &[("a", 900), ("b", 300)]),
                m(1500),
                m(460),
                vec![(w("a"), m(1470)), (w("b"), m(490))],
            ),
            (
                "workspaces, under: 300 GB and 100 GB at 1.50, the cluster the unused 600 GB",
                day(BillingType::Workspaces, 1000, &[("a", 300), ("b", 100)]),
                m(1500),
                0,
                vec![(w("a"), m(450)), (w("b"), m(150)), (c("c1"), m(900))],
            ),
            (
                "workspaces, nothing ingested: the cluster pays the reservation",
                day(BillingType::Workspaces, 1000, &[]),
                m(1500),
                0,
                vec![(c("c1"), m(1500))],
            ),
            (
                "workspaces, exactly the reservation",
                day(BillingType::Workspaces, 1000, &[("a", 500), ("b", 500)]),
                m(1500),
                0,
                vec![(w("a"), m(750)), (w("b"), m(750))],
            ),
        ];
        for (name, input, reservation, overage, lines) in cases {
            let b = bill_day(&prices(), 1, &input);
            assert_eq!(b.reservation_micros, reservation, "{name}");
            assert_eq!(b.overage_micros, overage, "{name}");
            assert_eq!(b.lines, lines, "{name}");
            assert_eq!(
                b.lines.iter().map(|(_, a)| a).sum::<u64>(),
                b.total_micros(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_split_that_does_not_divide_gives_the_remainder_to_the_largest() {
        // 1000 GB reserved + 1 GB over = 1502.30, split 1:1:1 (334 + 334 + 333 GB).
        let input = ClusterDay {
            cluster: "c1".into(),
            capacity_gb_per_day: 1000,
            billing_type: BillingType::Workspaces,
            ingested_bytes: [("a", 334), ("b", 334), ("c", 333)]
                .iter()
                .map(|(w, gb)| (w.to_string(), gb * BYTES_PER_GB))
                .collect(),
        };
        let b = bill_day(&prices(), 1, &input);
        assert_eq!(b.total_micros(), 1_502_300_000);
        let total: u64 = b.lines.iter().map(|(_, a)| a).sum();
        assert_eq!(total, 1_502_300_000);
        // 1502.30 × 334/1001 = 501.26693…, × 333/1001 = 499.76613…; "a" (first of the largest)
        // takes the rounding remainder.
        assert_eq!(b.lines[1], (w("b"), 501_266_933));
        assert_eq!(b.lines[2], (w("c"), 499_766_133));
        assert_eq!(b.lines[0].1, 1_502_300_000 - 501_266_933 - 499_766_133);
    }

    #[test]
    fn a_day_becomes_an_event_and_a_report_row() {
        let b = bill_day(
            &prices(),
            16,
            &day(
                BillingType::Workspaces,
                1000,
                &[("ws-apps", 900), ("ws-audit", 300)],
            ),
        );
        let (kind, message, data) = day_event(&b, &prices());
        assert_eq!(kind, BILL_DAY);
        assert!(
            message.contains("1960.00 credits — ws-apps 1470.00 credits, ws-audit 490.00 credits"),
            "{message}"
        );
        assert_eq!(data["total_micros"], 1_960_000_000u64);
        let event = Event {
            seq: 1,
            at_ms: 0,
            time: String::new(),
            source: "bill".into(),
            kind,
            message,
            data,
        };
        let html = html_section(&[event]);
        assert!(html.contains("<tr><td>16</td><td>c1</td><td>workspaces</td><td>1000</td><td>1200.00</td><td>200.00</td><td>1960.00 credits</td><td>ws-apps 1470.00 credits, ws-audit 490.00 credits</td></tr>"), "{html}");
        assert_eq!(html_section(&[]), "", "no bill, no section");
    }

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(parse_amount("1960.00"), Some(1_960_000_000));
        assert_eq!(parse_amount("1960.5"), Some(1_960_500_000));
        assert_eq!(parse_amount("7"), Some(7_000_000));
        for bad in ["", "-1", "1.234", "1.", ".5", "1e3", "1 000"] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn amounts_and_gb_print_for_people() {
        assert_eq!(format_amount(1_960_000_000, "credits"), "1960.00 credits");
        assert_eq!(format_amount(1_234_567, "credits"), "1.23 credits");
        assert_eq!(gb(1_234_567_890), "1.23");
        assert_eq!(
            cost_micros(1, 150),
            0,
            "a byte at 1.50/GB rounds down to nothing"
        );
        assert_eq!(cost_micros(BYTES_PER_GB, 150), 1_500_000);
    }
}
