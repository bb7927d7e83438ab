//! Validation of `[[dcrs]]` (data collection rules) and of the `upload` steps that use them.
//!
//! A rule names a workspace of the world (it exists at T+0, like the workspace), declares
//! `Custom-*` streams with typed columns and data flows from streams to an output stream that
//! names a table (`Custom-X_CL` → `X_CL`, `Microsoft-Syslog` → `Syslog`). The vocabulary, the
//! name rules, the mapping and the limits are `cmksim_sim::dcr`'s, the ones the HTTPS door applies
//! to a rule an SDK PUTs; the messages here point at the file. An `upload` step names a rule and
//! one of its streams that some flow sends somewhere.

use std::collections::BTreeSet;

use cmksim_sim::dcr::{
    column_name_valid, custom_stream_valid, output_table, StreamType, COLUMNS_MAX, FLOWS_MAX,
    STREAMS_MAX, STREAM_TYPES,
};

use super::{Ctx, Kind};
use crate::limits::{BATCH_RECORDS_MAX, ENTITIES_PER_KIND_MAX};
use crate::model::{Action, Dcr, DcrFlow, DcrStream};
use crate::raw::{ActionName, RawDcr, RawFile, RawStep};

pub(super) fn world(ctx: &mut Ctx<'_>, raw: &RawFile) -> Vec<Dcr> {
    if let Some(extra) = raw.dcrs.get(ENTITIES_PER_KIND_MAX) {
        ctx.err(
            extra.span(),
            format!("too many [[dcrs]]: at most {ENTITIES_PER_KIND_MAX}"),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for entry in &raw.dcrs {
        let span = entry.span();
        let d = entry.get_ref();
        let name = ctx.name(&d.name, "data collection rule name");
        ctx.define(Kind::Dcr, d.name.get_ref(), d.name.span());
        let workspace = ctx.reference(Kind::Workspace, &d.workspace);
        let streams = streams(ctx, d);
        let flows = flows(ctx, d, streams.as_deref());
        if let (Some(name), Some(streams), Some(flows)) = (name, streams, flows) {
            out.push(Dcr {
                name,
                workspace,
                streams,
                flows,
                line: ctx.line_of(&span),
            });
        }
    }
    out
}

fn streams(ctx: &mut Ctx<'_>, d: &RawDcr) -> Option<Vec<DcrStream>> {
    let declared = d.streams.get_ref();
    if declared.is_empty() || declared.len() > STREAMS_MAX {
        ctx.err(
            d.streams.span(),
            format!("a rule declares 1 to {STREAMS_MAX} streams"),
        );
        return None;
    }
    let mut ok = true;
    let mut out: Vec<DcrStream> = Vec::new();
    for stream in declared {
        let s = stream.get_ref();
        let name = s.name.get_ref();
        if !custom_stream_valid(name) {
            ctx.err(
                s.name.span(),
                format!(
                    "stream {:?} must be named `Custom-<name>`",
                    cmksim_sim::text::echo(name)
                ),
            );
            ok = false;
            continue;
        }
        if out.iter().any(|o| &o.name == name) {
            ctx.err(s.name.span(), format!("stream `{name}` is declared twice"));
            ok = false;
            continue;
        }
        let columns = s.columns.get_ref();
        if columns.is_empty() || columns.len() > COLUMNS_MAX {
            ctx.err(
                s.columns.span(),
                format!("stream `{name}` must declare 1 to {COLUMNS_MAX} columns"),
            );
            ok = false;
            continue;
        }
        let mut typed: Vec<(String, StreamType)> = Vec::new();
        for column in columns {
            let c = column.get_ref();
            let column_name = c.name.get_ref();
            if !column_name_valid(column_name) {
                ctx.err(
                    c.name.span(),
                    format!(
                        "column name {:?} is not valid: letters, digits and `_`, at most {}, \
                         not starting with a digit",
                        cmksim_sim::text::echo(column_name),
                        cmksim_sim::dcr::COLUMN_NAME_CHARS_MAX
                    ),
                );
                ok = false;
                continue;
            }
            let Some(column_type) = StreamType::parse(c.column_type.get_ref()) else {
                let names: Vec<&str> = STREAM_TYPES.iter().map(|t| t.name()).collect();
                ctx.err(
                    c.column_type.span(),
                    format!(
                        "column `{column_name}` has type {:?}; expected one of {}",
                        cmksim_sim::text::echo(c.column_type.get_ref()),
                        names.join(", ")
                    ),
                );
                ok = false;
                continue;
            };
            if typed
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(column_name))
            {
                ctx.err(
                    c.name.span(),
                    format!("column `{column_name}` is declared twice in `{name}`"),
                );
                ok = false;
                continue;
            }
            typed.push((column_name.clone(), column_type));
        }
        out.push(DcrStream {
            name: name.clone(),
            columns: typed,
        });
    }
    ok.then_some(out)
}

fn flows(ctx: &mut Ctx<'_>, d: &RawDcr, streams: Option<&[DcrStream]>) -> Option<Vec<DcrFlow>> {
    let declared = d.flows.get_ref();
    if declared.is_empty() || declared.len() > FLOWS_MAX {
        ctx.err(
            d.flows.span(),
            format!("a rule has 1 to {FLOWS_MAX} data flows"),
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::new();
    for flow in declared {
        let f = flow.get_ref();
        let names = f.streams.get_ref();
        if names.is_empty() {
            ctx.err(f.streams.span(), "a data flow names at least one stream");
            ok = false;
            continue;
        }
        for stream in names {
            let known = streams.is_none_or(|all| all.iter().any(|s| &s.name == stream.get_ref()));
            if !known {
                ctx.err(
                    stream.span(),
                    format!(
                        "data flow stream {:?} is not declared in `streams`",
                        cmksim_sim::text::echo(stream.get_ref())
                    ),
                );
                ok = false;
            }
        }
        let output = f
            .output
            .as_ref()
            .map(|o| (o.get_ref().clone(), o.span()))
            .unwrap_or_else(|| (names[0].get_ref().clone(), names[0].span()));
        match output_table(&output.0) {
            Some(table) => out.push(DcrFlow {
                streams: names.iter().map(|s| s.get_ref().clone()).collect(),
                table,
            }),
            None => {
                ctx.err(
                    output.1,
                    format!(
                        "output stream {:?} names no table (`Custom-<table>_CL` or \
                         `Microsoft-<table>`)",
                        cmksim_sim::text::echo(&output.0)
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// An `upload` step: the rule must exist (its stream is checked by [`check_uploads`], once every
/// rule is known).
pub(super) fn upload(ctx: &mut Ctx<'_>, s: &RawStep) -> Option<Action> {
    let dcr = ctx.reference(Kind::Dcr, s.dcr.as_ref()?);
    let stream = s.stream.as_ref()?.get_ref().clone();
    let records = match &s.records {
        None => 1,
        Some(r) => ctx.int_in(r, "records", 1, BATCH_RECORDS_MAX as i64)? as u64,
    };
    Some(Action::Upload {
        dcr,
        stream,
        records,
    })
}

/// Every `upload` step names a stream its rule declares and sends somewhere.
pub(super) fn check_uploads(ctx: &mut Ctx<'_>, raw: &RawFile, dcrs: &[Dcr]) {
    for step in &raw.timeline {
        let s = step.get_ref();
        if s.action.as_ref().map(|a| *a.get_ref()) != Some(ActionName::Upload) {
            continue;
        }
        let (Some(dcr), Some(stream)) = (&s.dcr, &s.stream) else {
            continue;
        };
        let Some(rule) = dcrs.iter().find(|d| &d.name == dcr.get_ref()) else {
            continue; // unknown or invalid rule: reported at its own place
        };
        if rule.stream(stream.get_ref()).is_none() {
            let known: BTreeSet<&str> = rule.streams.iter().map(|s| s.name.as_str()).collect();
            ctx.err(
                stream.span(),
                format!(
                    "rule `{}` declares no stream {:?} (declared: {})",
                    rule.name,
                    cmksim_sim::text::echo(stream.get_ref()),
                    known.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        } else if rule.tables_of(stream.get_ref()).is_empty() {
            ctx.err(
                stream.span(),
                format!(
                    "no data flow of rule `{}` sends stream `{}` anywhere",
                    rule.name,
                    stream.get_ref()
                ),
            );
        }
    }
}
