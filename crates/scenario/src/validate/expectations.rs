//! Validation of `[[expect]]`: one subject, one predicate, one timing.
//!
//! The vocabulary is deliberately small and regular. A subject key says what is watched
//! (`storage`, `ingest_to`, `query`, `step`, `no_loss_before`); `state` or `outcome` says what
//! must be seen; `at`, `by`, `within` + `after_step`, or `never` (+ `from`, `until`) says when.
//! Each subject accepts only the predicates and timings that make sense for it, and a misplaced
//! key is reported with what the subject does accept.
//!
//! A `query` expectation with `at` may carry `kql`: the probe the runner makes at that moment
//! runs that KQL query (checked by [`super::kql`]) and `min_records` counts its result rows.
//! `kql` is refused with the other timings, which judge the queries the timeline makes.

use std::ops::Range;
use std::time::Duration;

use super::{Ctx, Kind};
use crate::limits::{BATCH_RECORDS_MAX, EXPECTATIONS_MAX};
use crate::model::{
    Expectation, IncidentOutcome, IngestOutcome, ProfileFilter, RemovalCause, Step, Subject,
    Success, Timing, VersionSel,
};
use crate::raw::{RawExpect, RawFile, S};

/// The most characters of a KQL query a generated description repeats.
const KQL_DESCRIBE_CHARS_MAX: usize = 80;

pub(super) fn build(ctx: &mut Ctx<'_>, raw: &RawFile, steps: &[Step]) -> Vec<Expectation> {
    if let Some(extra) = raw.expect.get(EXPECTATIONS_MAX) {
        ctx.err(
            extra.span(),
            format!("too many expectations: at most {EXPECTATIONS_MAX}"),
        );
        return Vec::new();
    }
    let mut ids: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, e) in raw.expect.iter().enumerate() {
        let span = e.span();
        let r = e.get_ref();
        let id = match &r.id {
            None => None,
            Some(id) => {
                let name = ctx.name(id, "expectation id");
                if let Some(name) = &name {
                    if ids.contains(name) {
                        ctx.err(id.span(), format!("duplicate expectation id `{name}`"));
                    }
                    ids.push(name.clone());
                }
                name
            }
        };
        let profiles = profile_filter(ctx, r);
        if let (Some(exp), Some(profiles)) = (expectation(ctx, r, span.clone(), steps), profiles) {
            let (subject, timing) = exp;
            let description = match &r.description {
                Some(d) => ctx.text(d, "description").unwrap_or_default(),
                None => describe(&subject, &timing),
            };
            out.push(Expectation {
                index: i + 1,
                id,
                description,
                subject,
                timing,
                line: ctx.line_of(&span),
                profiles,
            });
        }
    }
    out
}

/// `profiles` or `unless_profiles` (not both): built-in profile names, each checked at its own
/// position.
fn profile_filter(ctx: &mut Ctx<'_>, r: &RawExpect) -> Option<ProfileFilter> {
    let names = |ctx: &mut Ctx<'_>, list: &S<Vec<S<String>>>, key: &str| -> Option<Vec<String>> {
        if list.get_ref().is_empty() {
            ctx.err(
                list.span(),
                format!("`{key}` must name at least one profile"),
            );
            return None;
        }
        let mut out: Vec<String> = Vec::new();
        let mut ok = true;
        for name in list.get_ref() {
            let text = name.get_ref();
            if !cmksim_sim::profile::BUILTIN_PROFILES.contains(&text.as_str()) {
                ctx.err(
                    name.span(),
                    format!(
                        "unknown profile {:?}: expected one of {}",
                        cmksim_sim::text::echo(text),
                        cmksim_sim::profile::BUILTIN_PROFILES.join(", ")
                    ),
                );
                ok = false;
            } else if out.contains(text) {
                ctx.err(name.span(), format!("profile {text:?} is named twice"));
                ok = false;
            } else {
                out.push(text.clone());
            }
        }
        ok.then_some(out)
    };
    match (&r.profiles, &r.unless_profiles) {
        (None, None) => Some(ProfileFilter::All),
        (Some(only), None) => names(ctx, only, "profiles").map(ProfileFilter::Only),
        (None, Some(except)) => names(ctx, except, "unless_profiles").map(ProfileFilter::Except),
        (Some(_), Some(except)) => {
            ctx.err(
                except.span(),
                "an expectation has either `profiles` or `unless_profiles`, not both",
            );
            None
        }
    }
}

/// A default sentence for an expectation.
pub(crate) fn describe(subject: &Subject, timing: &Timing) -> String {
    let what = match subject {
        Subject::Storage { cluster, state } => {
            format!("storage of {cluster} is {}", state.as_str())
        }
        Subject::Ingest {
            workspace,
            outcome,
            reason,
        } => match reason {
            Some(r) => format!("ingest to {workspace} is {} ({r})", outcome.as_str()),
            None => format!("ingest to {workspace} is {}", outcome.as_str()),
        },
        Subject::Query {
            workspace,
            outcome,
            min_records,
            kql: None,
            ..
        } => match min_records {
            Some(n) => format!(
                "a query of {workspace} {} with at least {n} records",
                outcome.as_str()
            ),
            None => format!("a query of {workspace} {}", outcome.as_str()),
        },
        Subject::Query {
            workspace,
            outcome,
            min_records,
            kql: Some(kql),
            ..
        } => {
            // One line: a multi-line query's whitespace runs become single spaces.
            let one_line = kql.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = cmksim_sim::text::clip(&one_line, KQL_DESCRIBE_CHARS_MAX);
            match min_records {
                Some(n) => format!(
                    "the KQL query `{text}` of {workspace} {} with at least {n} rows",
                    outcome.as_str()
                ),
                None => format!("the KQL query `{text}` of {workspace} {}", outcome.as_str()),
            }
        }
        Subject::Step {
            step,
            outcome,
            error_code,
        } => match error_code {
            Some(code) => format!("step {step} {} with {code}", outcome.as_str()),
            None => format!("step {step} {}", outcome.as_str()),
        },
        Subject::NoLossBefore { offset, workspace } => {
            let ws = workspace
                .as_ref()
                .map(|w| format!(" to {w}"))
                .unwrap_or_default();
            format!(
                "no record ingested{ws} before {} is lost",
                super::label(*offset)
            )
        }
        Subject::Sentinel { workspace, state } => {
            format!("Sentinel of {workspace} is {}", state.as_str())
        }
        Subject::Incident { workspace, outcome } => {
            format!(
                "an incident in {workspace}'s Sentinel is {}",
                outcome.as_str()
            )
        }
        Subject::SentinelUnsupported { workspace } => {
            format!("Sentinel of {workspace} reaches seed 002's unsupported configuration")
        }
        Subject::KeyUse {
            vault,
            key,
            version,
        } => format!("Key Vault's audit shows a use of {vault}/{key} v{version}"),
        Subject::Bill {
            cluster,
            day,
            payer,
            amount_micros,
        } => format!(
            "the bill of {cluster} on day {day} charges {payer} {}",
            crate::bill::format_amount(*amount_micros, "").trim_end()
        ),
        Subject::SavedSearches {
            workspace,
            readable: true,
            min_records,
        } => format!("the saved searches of {workspace} are readable (at least {min_records})"),
        Subject::SavedSearches {
            workspace,
            readable: false,
            ..
        } => format!(
            "the saved searches of {workspace} are unreadable (their storage account's key is refused)"
        ),
        Subject::Removed {
            workspace,
            cause,
            min_records,
        } => match cause {
            RemovalCause::Retention => {
                format!("retention removes at least {min_records} records of {workspace}")
            }
            RemovalCause::Purge => {
                format!("a purge of {workspace} completes, removing at least {min_records} records")
            }
        },
    };
    let when = match timing {
        Timing::At(at) => format!(" at {}", super::label(*at)),
        Timing::By(by) => format!(" by {}", super::label(*by)),
        Timing::Within { step, within, .. } => format!(
            " within {} after {step}",
            cmksim_sim::format_duration(*within)
        ),
        Timing::Never { from, until } => {
            return format!(
                "never: {what} (from {} until {})",
                super::label(*from),
                super::label(*until)
            )
        }
        Timing::Implicit => String::new(),
    };
    format!("{what}{when}")
}

#[derive(Clone, Copy, PartialEq)]
enum SubjectKey {
    Storage,
    Ingest,
    Query,
    Step,
    NoLoss,
    Sentinel,
    Incident,
    Unsupported,
    KeyUse,
    Removed(RemovalCause),
    Bill,
    SavedSearches,
}

fn expectation(
    ctx: &mut Ctx<'_>,
    r: &RawExpect,
    span: Range<usize>,
    steps: &[Step],
) -> Option<(Subject, Timing)> {
    let subjects: Vec<(SubjectKey, &str, Range<usize>)> = [
        (
            SubjectKey::Storage,
            "storage",
            r.storage.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Ingest,
            "ingest_to",
            r.ingest_to.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Query,
            "query",
            r.query.as_ref().map(|s| s.span()),
        ),
        (SubjectKey::Step, "step", r.step.as_ref().map(|s| s.span())),
        (
            SubjectKey::NoLoss,
            "no_loss_before",
            r.no_loss_before.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Sentinel,
            "sentinel",
            r.sentinel.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Incident,
            "incident_to",
            r.incident_to.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Unsupported,
            "sentinel_unsupported",
            r.sentinel_unsupported.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::KeyUse,
            "key_use",
            r.key_use.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Removed(RemovalCause::Retention),
            "retention_removed",
            r.retention_removed.as_ref().map(|s| s.span()),
        ),
        (
            SubjectKey::Removed(RemovalCause::Purge),
            "purged",
            r.purged.as_ref().map(|s| s.span()),
        ),
        (SubjectKey::Bill, "bill", r.bill.as_ref().map(|s| s.span())),
        (
            SubjectKey::SavedSearches,
            "saved_searches",
            r.saved_searches.as_ref().map(|s| s.span()),
        ),
    ]
    .into_iter()
    .filter_map(|(k, n, s)| s.map(|s| (k, n, s)))
    .collect();
    let (key, key_name) = match subjects.as_slice() {
        [] => {
            ctx.err(
                span,
                "an expectation needs a subject: storage, ingest_to, query, step, no_loss_before, \
                 sentinel, incident_to, sentinel_unsupported, key_use, retention_removed, \
                 purged, bill or saved_searches",
            );
            return None;
        }
        [(k, n, _)] => (*k, *n),
        [_, (_, n, s), ..] => {
            ctx.err(
                s.clone(),
                format!("an expectation has one subject; `{n}` is a second one"),
            );
            return None;
        }
    };

    // Keys each subject accepts besides itself, id and description.
    let (predicates, timings): (&[&str], &[&str]) = match key {
        SubjectKey::Storage => (
            &["state"],
            &["at", "by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Ingest => (
            &["outcome", "reason"],
            &["by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Query => (
            &["outcome", "reason", "min_records", "kql"],
            &["at", "by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Step => (&["outcome", "error_code"], &[]),
        SubjectKey::NoLoss => (&["workspace"], &[]),
        SubjectKey::Sentinel => (
            &["sentinel_state"],
            &["at", "by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Incident => (
            &["outcome"],
            &["by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Unsupported => (
            &[],
            &["by", "within", "after_step", "never", "from", "until"],
        ),
        // Only `never`: the audit answers "was it used in the window", not "when first".
        SubjectKey::KeyUse => (&["version"], &["never", "from", "until"]),
        SubjectKey::Removed(_) => (
            &["min_records"],
            &["by", "within", "after_step", "never", "from", "until"],
        ),
        SubjectKey::Bill => (&["day", "payer", "amount"], &[]),
        SubjectKey::SavedSearches => (
            &["outcome", "min_records"],
            &["by", "within", "after_step", "never", "from", "until"],
        ),
    };
    let present: Vec<(&str, Range<usize>)> = [
        ("state", r.state.as_ref().map(|x| x.span())),
        ("outcome", r.outcome.as_ref().map(|x| x.span())),
        ("reason", r.reason.as_ref().map(|x| x.span())),
        ("min_records", r.min_records.as_ref().map(|x| x.span())),
        ("error_code", r.error_code.as_ref().map(|x| x.span())),
        ("workspace", r.workspace.as_ref().map(|x| x.span())),
        ("kql", r.kql.as_ref().map(|x| x.span())),
        ("at", r.at.as_ref().map(|x| x.span())),
        ("by", r.by.as_ref().map(|x| x.span())),
        ("within", r.within.as_ref().map(|x| x.span())),
        ("after_step", r.after_step.as_ref().map(|x| x.span())),
        ("never", r.never.as_ref().map(|x| x.span())),
        ("from", r.from.as_ref().map(|x| x.span())),
        ("until", r.until.as_ref().map(|x| x.span())),
        (
            "sentinel_state",
            r.sentinel_state.as_ref().map(|x| x.span()),
        ),
        ("version", r.version.as_ref().map(|x| x.span())),
        ("day", r.day.as_ref().map(|x| x.span())),
        ("payer", r.payer.as_ref().map(|x| x.span())),
        ("amount", r.amount.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let mut ok = true;
    for (name, s) in &present {
        if !predicates.contains(name) && !timings.contains(name) {
            let accepts: Vec<&str> = predicates.iter().chain(timings.iter()).copied().collect();
            ctx.err(
                s.clone(),
                format!(
                    "`{name}` does not apply to a `{key_name}` expectation (it takes: {})",
                    accepts.join(", ")
                ),
            );
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    // Only a probe runs the KQL: the events of other queries (steps) cannot be told to be of it.
    if let (Some(kql), None) = (&r.kql, &r.at) {
        ctx.err(
            kql.span(),
            "`kql` goes with `at` (the runner makes that query then); `by`, `within` and `never` \
             judge the queries the timeline makes",
        );
        return None;
    }

    let subject = subject(ctx, r, key)?;
    let timing = if timings.is_empty() {
        if let Subject::NoLossBefore { offset, .. } = &subject {
            ctx.check_inside(*offset, r.no_loss_before.as_ref()?.span(), "no_loss_before")?;
        }
        Timing::Implicit
    } else {
        timing(ctx, r, span, steps)?
    };
    Some((subject, timing))
}

fn outcome<'v>(
    ctx: &mut Ctx<'_>,
    r: &RawExpect,
    key_name: &str,
    words: &[&'v str],
) -> Option<&'v str> {
    let Some(o) = &r.outcome else {
        ctx.err(
            r_span(r),
            format!(
                "a `{key_name}` expectation needs `outcome` ({})",
                words.join(" | ")
            ),
        );
        return None;
    };
    match words.iter().find(|w| **w == o.get_ref().as_str()) {
        Some(w) => Some(*w),
        None => {
            ctx.err(
                o.span(),
                format!(
                    "outcome {:?} for `{key_name}`: expected one of {}",
                    o.get_ref(),
                    words.join(", ")
                ),
            );
            None
        }
    }
}

/// The span of the subject key (where "missing X" errors point).
fn r_span(r: &RawExpect) -> Range<usize> {
    [
        &r.storage,
        &r.ingest_to,
        &r.query,
        &r.step,
        &r.no_loss_before,
        &r.sentinel,
        &r.incident_to,
        &r.sentinel_unsupported,
        &r.key_use,
        &r.retention_removed,
        &r.purged,
        &r.saved_searches,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.span())
    .next()
    .unwrap_or(0..0)
}

fn success(word: &str) -> Success {
    if word == "succeeds" {
        Success::Succeeds
    } else {
        Success::Fails
    }
}

fn subject(ctx: &mut Ctx<'_>, r: &RawExpect, key: SubjectKey) -> Option<Subject> {
    Some(match key {
        SubjectKey::SavedSearches => {
            let workspace = ctx.reference(Kind::Workspace, r.saved_searches.as_ref()?);
            let word = outcome(ctx, r, "saved_searches", &["readable", "unreadable"])?;
            let readable = word == "readable";
            let min_records = match (&r.min_records, readable) {
                (Some(m), false) => {
                    ctx.err(
                        m.span(),
                        "`min_records` goes with `outcome = \"readable\"` (an unreadable read \
                         returns nothing)",
                    );
                    return None;
                }
                (Some(m), true) => ctx.int_in(m, "min_records", 0, 1_000_000)? as u64,
                (None, _) => 0,
            };
            Subject::SavedSearches {
                workspace,
                readable,
                min_records,
            }
        }
        SubjectKey::Bill => {
            let named = r.bill.as_ref()?;
            let cluster = ctx.reference(Kind::Cluster, named);
            let (Some(day), Some(payer), Some(amount)) = (&r.day, &r.payer, &r.amount) else {
                ctx.err(
                    named.span(),
                    "a `bill` expectation needs `day`, `payer` (the cluster or a workspace) and \
                     `amount` (\"1960.00\")",
                );
                return None;
            };
            let day = ctx.int_in(day, "day", 1, crate::bill::BILL_DAYS_MAX as i64)? as u64;
            let payer_name = payer.get_ref().clone();
            if payer_name != cluster {
                ctx.reference(Kind::Workspace, payer);
            }
            let Some(amount_micros) = crate::bill::parse_amount(amount.get_ref()) else {
                ctx.err(
                    amount.span(),
                    format!(
                        "amount {:?} is not an amount with at most two decimals (\"1960.00\")",
                        cmksim_sim::text::echo(amount.get_ref())
                    ),
                );
                return None;
            };
            Subject::Bill {
                cluster,
                day,
                payer: payer_name,
                amount_micros,
            }
        }
        SubjectKey::Removed(cause) => {
            let named = match cause {
                RemovalCause::Retention => r.retention_removed.as_ref()?,
                RemovalCause::Purge => r.purged.as_ref()?,
            };
            let workspace = ctx.reference(Kind::Workspace, named);
            let min_records = match &r.min_records {
                Some(m) => ctx.int_in(m, "min_records", 1, BATCH_RECORDS_MAX as i64 * 1000)? as u64,
                None => 1,
            };
            Subject::Removed {
                workspace,
                cause,
                min_records,
            }
        }
        SubjectKey::Storage => {
            let cluster = ctx.reference(Kind::Cluster, r.storage.as_ref()?);
            let Some(state) = &r.state else {
                ctx.err(
                    r_span(r),
                    "a `storage` expectation needs `state` (provisioning | healthy | degraded | \
                     unavailable | revoked | resuming | shredded | deleted)",
                );
                return None;
            };
            Subject::Storage {
                cluster,
                state: *state.get_ref(),
            }
        }
        SubjectKey::Ingest => {
            let workspace = ctx.reference(Kind::Workspace, r.ingest_to.as_ref()?);
            let word = outcome(
                ctx,
                r,
                "ingest_to",
                &["stored", "buffered", "dropped", "expired"],
            )?;
            let outcome = match word {
                "stored" => IngestOutcome::Stored,
                "buffered" => IngestOutcome::Buffered,
                "expired" => IngestOutcome::Expired,
                _ => IngestOutcome::Dropped,
            };
            let reason = match &r.reason {
                Some(reason) if outcome != IngestOutcome::Dropped => {
                    ctx.err(reason.span(), "`reason` goes with outcome = \"dropped\"");
                    return None;
                }
                Some(reason) => Some(ctx.name(reason, "reason")?),
                None => None,
            };
            Subject::Ingest {
                workspace,
                outcome,
                reason,
            }
        }
        SubjectKey::Query => {
            let workspace = ctx.reference(Kind::Workspace, r.query.as_ref()?);
            let outcome = success(outcome(ctx, r, "query", &["succeeds", "fails"])?);
            let min_records = match &r.min_records {
                Some(m) if outcome == Success::Fails => {
                    ctx.err(m.span(), "`min_records` goes with outcome = \"succeeds\"");
                    return None;
                }
                Some(m) => {
                    Some(ctx.int_in(m, "min_records", 0, BATCH_RECORDS_MAX as i64 * 1000)? as u64)
                }
                None => None,
            };
            let reason = match &r.reason {
                Some(reason) if outcome == Success::Succeeds => {
                    ctx.err(reason.span(), "`reason` goes with outcome = \"fails\"");
                    return None;
                }
                Some(reason) => Some(ctx.name(reason, "reason")?),
                None => None,
            };
            let kql = match &r.kql {
                Some(k) => Some(super::kql::query(ctx, k)?),
                None => None,
            };
            Subject::Query {
                workspace,
                outcome,
                min_records,
                reason,
                kql,
            }
        }
        SubjectKey::Step => {
            let step = ctx.reference(Kind::Step, r.step.as_ref()?);
            let outcome = success(outcome(ctx, r, "step", &["succeeds", "fails"])?);
            let error_code = match &r.error_code {
                Some(code) if outcome == Success::Succeeds => {
                    ctx.err(code.span(), "`error_code` goes with outcome = \"fails\"");
                    return None;
                }
                Some(code) => Some(ctx.name(code, "error_code")?),
                None => None,
            };
            Subject::Step {
                step,
                outcome,
                error_code,
            }
        }
        SubjectKey::NoLoss => {
            let offset = ctx.duration_value(r.no_loss_before.as_ref()?, "no_loss_before")?;
            let workspace = r
                .workspace
                .as_ref()
                .map(|w| ctx.reference(Kind::Workspace, w));
            Subject::NoLossBefore { offset, workspace }
        }
        SubjectKey::Sentinel => {
            let workspace = ctx.reference(Kind::Workspace, r.sentinel.as_ref()?);
            let Some(state) = &r.sentinel_state else {
                ctx.err(
                    r_span(r),
                    "a `sentinel` expectation needs `sentinel_state` (active | revoked | \
                     restoring | deleted)",
                );
                return None;
            };
            Subject::Sentinel {
                workspace,
                state: *state.get_ref(),
            }
        }
        SubjectKey::Incident => {
            let workspace = ctx.reference(Kind::Workspace, r.incident_to.as_ref()?);
            let outcome = match outcome(ctx, r, "incident_to", &["stored", "refused"])? {
                "stored" => IncidentOutcome::Stored,
                _ => IncidentOutcome::Refused,
            };
            Subject::Incident { workspace, outcome }
        }
        SubjectKey::Unsupported => Subject::SentinelUnsupported {
            workspace: ctx.reference(Kind::Workspace, r.sentinel_unsupported.as_ref()?),
        },
        SubjectKey::KeyUse => {
            let key_use = r.key_use.as_ref()?;
            let Some((vault, key)) = key_use.get_ref().split_once('/') else {
                ctx.err(
                    key_use.span(),
                    format!(
                        "key_use {:?}: expected \"vault/key\"",
                        cmksim_sim::text::echo(key_use.get_ref())
                    ),
                );
                return None;
            };
            ctx.reference_str(Kind::Key, key_use.get_ref(), key_use.span());
            let Some(version) = &r.version else {
                ctx.err(
                    key_use.span(),
                    "a `key_use` expectation needs `version = \"v1\"` (the n-th version created)",
                );
                return None;
            };
            let n = match super::world::version_sel(ctx, version)? {
                VersionSel::Nth(n) => n,
                other => {
                    ctx.err(
                        version.span(),
                        format!(
                            "`key_use` names one version (v1, v2, ...), not {}",
                            other.label()
                        ),
                    );
                    return None;
                }
            };
            if r.never.is_none() {
                ctx.err(
                    key_use.span(),
                    "a `key_use` expectation is judged with `never = true` (and `from`, `until`)",
                );
                return None;
            }
            Subject::KeyUse {
                vault: vault.to_string(),
                key: key.to_string(),
                version: n,
            }
        }
    })
}

fn timing(ctx: &mut Ctx<'_>, r: &RawExpect, span: Range<usize>, steps: &[Step]) -> Option<Timing> {
    let forms: Vec<(&str, Range<usize>)> = [
        ("at", r.at.as_ref().map(|x| x.span())),
        ("by", r.by.as_ref().map(|x| x.span())),
        ("within", r.within.as_ref().map(|x| x.span())),
        ("never", r.never.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    let form = match forms.as_slice() {
        [] => {
            ctx.err(
                span,
                "an expectation needs a time: `at`, `by`, `within` + `after_step`, or `never = true`",
            );
            return None;
        }
        [(form, _)] => *form,
        [_, (second, s), ..] => {
            ctx.err(
                s.clone(),
                format!("an expectation has one time form; `{second}` is a second one"),
            );
            return None;
        }
    };
    let misplaced = |ctx: &mut Ctx<'_>, key: &Option<S<String>>, name: &str, goes_with: &str| {
        if let Some(k) = key {
            ctx.err(k.span(), format!("`{name}` goes with `{goes_with}`"));
            true
        } else {
            false
        }
    };
    if form != "within" && misplaced(ctx, &r.after_step, "after_step", "within") {
        return None;
    }
    if form != "never"
        && (misplaced(ctx, &r.from, "from", "never = true")
            | misplaced(ctx, &r.until, "until", "never = true"))
    {
        return None;
    }
    match form {
        "at" => Some(Timing::At(ctx.offset_value(r.at.as_ref()?, "at")?)),
        "by" => Some(Timing::By(ctx.offset_value(r.by.as_ref()?, "by")?)),
        "within" => {
            let within_s = r.within.as_ref()?;
            let within = ctx.duration_value(within_s, "within")?;
            let Some(step_s) = &r.after_step else {
                ctx.err(within_s.span(), "`within` needs `after_step = \"step-id\"`");
                return None;
            };
            let step = ctx.reference(Kind::Step, step_s);
            let step_offset = steps
                .iter()
                .find(|s| s.id.as_deref() == Some(step.as_str()))
                .map(|s| s.offset)?;
            ctx.check_inside(step_offset + within, within_s.span(), "the window's end")?;
            Some(Timing::Within {
                step,
                step_offset,
                within,
            })
        }
        _ => {
            let never = r.never.as_ref()?;
            if !*never.get_ref() {
                ctx.err(
                    never.span(),
                    "`never = false` says nothing; leave it out or write `never = true`",
                );
                return None;
            }
            let from = match &r.from {
                None => Duration::ZERO,
                Some(f) => ctx.offset_value(f, "from")?,
            };
            let until = match &r.until {
                None => ctx.duration.unwrap_or(Duration::MAX),
                Some(u) => ctx.offset_value(u, "until")?,
            };
            if until < from {
                let s = r.until.as_ref().map(|u| u.span()).unwrap_or(span);
                ctx.err(s, "`until` is before `from`");
                return None;
            }
            Some(Timing::Never { from, until })
        }
    }
}
