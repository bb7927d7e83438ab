//! Validation of `[chaos]`: the fault space a sweep (`cmksim chaos`) draws from.
//!
//! Every key is optional; what is missing takes the defaults of
//! [`crate::chaos::FaultSpace::defaults`]. The checks are the ones a sweep relies on: a
//! non-empty list of distinct fault kinds whose targets exist in the world (a key fault needs a
//! world cluster with a customer-managed key; `access-policy-remove` also needs that cluster's
//! identity's access policy), ordered ranges (`faults_min ≤ faults_max ≤` the per-run bound,
//! `duration_min ≤ duration_max`, `from ≤ until`, both inside the scenario), an error rate in
//! (0, 1], a link loss in [0, 1] (the network's own rule, `LinkQuality::validated`), and no file
//! step id of the form `chaos-…` (those are the generated steps' ids).

use std::time::Duration;

use super::Ctx;
use crate::chaos::{ChaosKind, FaultSpace, Targets, FAULTS_PER_RUN_MAX};
use crate::model::World;
use crate::raw::RawFile;

pub(super) fn build(ctx: &mut Ctx<'_>, raw: &RawFile, world: &World) -> Option<FaultSpace> {
    let table = raw.chaos.as_ref()?;
    let c = table.get_ref();
    let mut ok = true;
    let duration = ctx.duration.unwrap_or(Duration::from_secs(3600));
    let mut space = FaultSpace::defaults(duration);
    let targets = Targets::in_world(world);
    let has_target = |kind: ChaosKind| Targets::allow(targets.as_ref(), kind);
    match &c.faults {
        None => space.kinds.retain(|k| has_target(*k)),
        Some(list) => {
            let mut kinds: Vec<ChaosKind> = Vec::new();
            if list.get_ref().is_empty() {
                ctx.err(list.span(), "chaos faults must name at least one fault");
                ok = false;
            }
            for kind in list.get_ref() {
                let k = *kind.get_ref();
                if kinds.contains(&k) {
                    ctx.err(
                        kind.span(),
                        format!("duplicate chaos fault `{}`", k.as_str()),
                    );
                    ok = false;
                } else if !has_target(k) {
                    let what = if k == ChaosKind::AccessPolicyRemove && targets.is_some() {
                        "an access policy for the identity of the first cluster with a key"
                    } else {
                        "a world cluster with a customer-managed key"
                    };
                    ctx.err(
                        kind.span(),
                        format!("chaos fault `{}` needs {what}", k.as_str()),
                    );
                    ok = false;
                } else {
                    kinds.push(k);
                }
            }
            kinds.sort();
            space.kinds = kinds;
        }
    }
    let max = i64::from(FAULTS_PER_RUN_MAX);
    if let Some(v) = &c.faults_min {
        match ctx.int_in(v, "chaos faults_min", 0, max) {
            Some(n) => space.faults_min = n as u32,
            None => ok = false,
        }
    }
    if let Some(v) = &c.faults_max {
        match ctx.int_in(v, "chaos faults_max", 0, max) {
            Some(n) => space.faults_max = n as u32,
            None => ok = false,
        }
    }
    if ok && space.faults_min > space.faults_max {
        let span = c
            .faults_max
            .as_ref()
            .or(c.faults_min.as_ref())
            .map(|v| v.span())
            .unwrap_or(table.span());
        ctx.err(
            span,
            format!(
                "chaos faults_min ({}) must not exceed faults_max ({})",
                space.faults_min, space.faults_max
            ),
        );
        ok = false;
    }
    for (field, slot, what) in [
        (
            &c.duration_min,
            &mut space.duration_min,
            "chaos duration_min",
        ),
        (
            &c.duration_max,
            &mut space.duration_max,
            "chaos duration_max",
        ),
        (&c.latency, &mut space.latency, "chaos latency"),
    ] {
        if let Some(v) = field {
            match ctx.duration_value(v, what) {
                Some(d) if d >= Duration::from_secs(1) => *slot = d,
                Some(_) => {
                    ctx.err(v.span(), format!("{what} must be at least 1s"));
                    ok = false;
                }
                None => ok = false,
            }
        }
    }
    if ok && space.duration_min > space.duration_max {
        let span = c
            .duration_max
            .as_ref()
            .or(c.duration_min.as_ref())
            .map(|v| v.span())
            .unwrap_or(table.span());
        ctx.err(
            span,
            format!(
                "chaos duration_min ({}) must not exceed duration_max ({})",
                cmksim_sim::format_duration(space.duration_min),
                cmksim_sim::format_duration(space.duration_max)
            ),
        );
        ok = false;
    }
    for (field, slot, what) in [
        (&c.from, &mut space.window_from, "chaos from"),
        (&c.until, &mut space.window_until, "chaos until"),
    ] {
        if let Some(v) = field {
            match ctx.offset_value(v, what) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    }
    if c.from.is_some() && c.until.is_none() {
        space.window_until = space.window_until.max(space.window_from);
    }
    if ok && space.window_from > space.window_until {
        let span = c
            .until
            .as_ref()
            .or(c.from.as_ref())
            .map(|v| v.span())
            .unwrap_or(table.span());
        ctx.err(
            span,
            format!(
                "chaos from ({}) must not be after until ({})",
                super::label(space.window_from),
                super::label(space.window_until)
            ),
        );
        ok = false;
    }
    if let Some(v) = &c.error_rate {
        let rate = *v.get_ref();
        if rate > 0.0 && rate <= 1.0 {
            space.error_rate = rate;
        } else {
            ctx.err(
                v.span(),
                format!("chaos error_rate must be more than 0 and at most 1, got {rate}"),
            );
            ok = false;
        }
    }
    // The link kinds' quality: durations (zero allowed: no latency, or no jitter) and a loss
    // checked by the network's own rule.
    for (field, slot, what) in [
        (
            &c.link_latency,
            &mut space.link_latency,
            "chaos link_latency",
        ),
        (&c.link_jitter, &mut space.link_jitter, "chaos link_jitter"),
    ] {
        if let Some(v) = field {
            match ctx.duration_value(v, what) {
                Some(d) => *slot = d,
                None => ok = false,
            }
        }
    }
    if let Some(v) = &c.link_loss {
        let loss = *v.get_ref();
        let quality = cmksim_sim::net::LinkQuality {
            loss,
            ..Default::default()
        };
        match quality.validated() {
            Ok(_) => space.link_loss = loss,
            Err(e) => {
                ctx.err(v.span(), format!("chaos link_loss: {e}"));
                ok = false;
            }
        }
    }
    if let Some(v) = &c.judge_expectations {
        space.judge_expectations = *v.get_ref();
    }
    for raw_step in &raw.timeline {
        if let Some(id) = &raw_step.get_ref().id {
            if id.get_ref().starts_with("chaos-") {
                ctx.err(
                    id.span(),
                    format!(
                        "step id {}: ids starting with `chaos-` are the sweep's own steps when the file has a [chaos] table",
                        cmksim_sim::text::echo(id.get_ref())
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(space)
}
