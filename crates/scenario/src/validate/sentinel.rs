//! Validation of `[[sentinel]]`: the workspaces onboarded to Microsoft Sentinel at T+0 (seed 002).
//!
//! An entry names a workspace of the world (not one a step creates later: the world stands at
//! T+0), at most once, with `customer_managed_key` (default true) and an optional incident rate
//! `incidents_every` (at least [`INCIDENT_INTERVAL_MIN_MS`], so that a run's incident count stays
//! bounded like an agent's batches). Whether onboarding is allowed (linked to a CMK cluster,
//! Cosmos DB registered, its access policy) is the Sentinel service's rule, not repeated here:
//! a refusal at set-up names this entry's line.

use std::time::Duration;

use super::{Ctx, Kind};
use crate::limits::ENTITIES_PER_KIND_MAX;
use crate::model::SentinelWorkspace;
use crate::raw::{RawFile, S};

/// The shortest incident interval a file may ask for (one a minute at most).
pub const INCIDENT_INTERVAL_MIN_MS: u64 = 60_000;

pub(super) fn world(ctx: &mut Ctx<'_>, raw: &RawFile) -> Vec<SentinelWorkspace> {
    if let Some(extra) = raw.sentinel.get(ENTITIES_PER_KIND_MAX) {
        ctx.err(
            extra.span(),
            format!("too many [[sentinel]] entries: at most {ENTITIES_PER_KIND_MAX}"),
        );
        return Vec::new();
    }
    let mut out: Vec<SentinelWorkspace> = Vec::new();
    for entry in &raw.sentinel {
        let span = entry.span();
        let e = entry.get_ref();
        let workspace = ctx.reference(Kind::Workspace, &e.workspace);
        if out.iter().any(|s| s.workspace == workspace) {
            ctx.err(
                e.workspace.span(),
                format!("workspace `{workspace}` is onboarded to Sentinel twice"),
            );
            continue;
        }
        let incidents_every = match &e.incidents_every {
            None => None,
            Some(every) => match incident_interval(ctx, every) {
                Some(d) => Some(d),
                None => continue,
            },
        };
        out.push(SentinelWorkspace {
            workspace,
            customer_managed_key: e
                .customer_managed_key
                .as_ref()
                .map(|b| *b.get_ref())
                .unwrap_or(true),
            incidents_every,
            line: ctx.line_of(&span),
        });
    }
    out
}

/// An incident interval: a duration of at least [`INCIDENT_INTERVAL_MIN_MS`].
pub(super) fn incident_interval(ctx: &mut Ctx<'_>, every: &S<String>) -> Option<Duration> {
    let d = ctx.duration_value(every, "incidents_every")?;
    if d < Duration::from_millis(INCIDENT_INTERVAL_MIN_MS) {
        ctx.err(
            every.span(),
            format!(
                "incidents_every must be at least {}",
                cmksim_sim::format_duration(Duration::from_millis(INCIDENT_INTERVAL_MIN_MS))
            ),
        );
        return None;
    }
    Some(d)
}
