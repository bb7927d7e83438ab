//! Validation of `[[timeline]]`: when each step happens and what it does.
//!
//! A step is placed by `at` (an offset) or `after = { step, by }` (relative to another step,
//! resolved here to an absolute offset, with cycles reported). It performs an `action` with flat
//! parameters, injects a `fault`, or only narrates. Which parameters an action takes is one table
//! ([`params_of`]), so that a missing or misplaced parameter gets a message naming the action and
//! what it accepts.
//!
//! A `query` step runs a plain query of one `table` (default `Heartbeat`) or, with `kql`, a KQL
//! query (checked by [`super::kql`]); the two exclude each other, and `since` narrows either to
//! the last `since` before the step (without it a KQL query has no time range beyond its own
//! `TimeGenerated` filters).

use std::ops::Range;
use std::time::Duration;

use cmksim_sim::net::LinkQuality;
use cmksim_sim::Profile;

use super::world::{self, ClusterArgs, KeyArgs, VaultArgs};
use super::{Ctx, Kind};
use crate::limits::{BATCH_RECORDS_MAX, TIMELINE_STEPS_MAX};
use crate::model::{
    Action, Fault, Host, HsmFault, SentinelItem, Step, StepKind, VaultFault, VersionSel,
};
use crate::raw::{ActionName, HsmMode, RawFault, RawFile, RawStep, VaultMode, S};

/// Registers the names create actions bring into existence, so that references to them (from
/// agents or other steps) are known.
pub(super) fn register_created(ctx: &mut Ctx<'_>, raw: &RawFile) {
    for step in &raw.timeline {
        let step = step.get_ref();
        let Some(action) = &step.action else { continue };
        let created = match action.get_ref() {
            ActionName::CreateVault => step
                .vault
                .as_ref()
                .map(|v| (Kind::Vault, v.get_ref().clone(), v.span())),
            ActionName::CreateKey => match (&step.vault, &step.key) {
                (Some(v), Some(k)) => Some((
                    Kind::Key,
                    format!("{}/{}", v.get_ref(), k.get_ref()),
                    k.span(),
                )),
                _ => None,
            },
            ActionName::CreateCluster => step
                .cluster
                .as_ref()
                .map(|c| (Kind::Cluster, c.get_ref().clone(), c.span())),
            ActionName::CreateWorkspace => step
                .workspace
                .as_ref()
                .map(|w| (Kind::Workspace, w.get_ref().clone(), w.span())),
            _ => None,
        };
        if let Some((kind, name, span)) = created {
            ctx.define_later(kind, &name, &span);
        }
    }
}

/// Where a step is before `after` chains are resolved.
enum Place {
    At(Duration),
    After { step: String, by: Duration },
    Unknown,
}

pub(super) fn build(ctx: &mut Ctx<'_>, raw: &RawFile, profile: &Profile) -> Vec<Step> {
    if let Some(extra) = raw.timeline.get(TIMELINE_STEPS_MAX) {
        ctx.err(
            extra.span(),
            format!("too many timeline steps: at most {TIMELINE_STEPS_MAX}"),
        );
        return Vec::new();
    }
    let mut ids: Vec<Option<String>> = Vec::new();
    for step in &raw.timeline {
        let id = step.get_ref().id.as_ref().and_then(|id| {
            let name = ctx.name(id, "step id")?;
            ctx.define(Kind::Step, &name, id.span());
            Some(name)
        });
        ids.push(id);
    }
    let places: Vec<Place> = raw.timeline.iter().map(|s| place(ctx, s)).collect();
    let offsets = resolve(ctx, raw, &ids, &places);
    let default_tenant = ctx
        .names
        .get(&Kind::Tenant)
        .and_then(|t| t.keys().next().cloned())
        .unwrap_or_else(|| world::DEFAULT_TENANT.to_string());

    let mut steps = Vec::new();
    for (i, s) in raw.timeline.iter().enumerate() {
        let span = s.span();
        let step = s.get_ref();
        let what = kind(ctx, step, span.clone(), profile, &default_tenant);
        let narrate = step.narrate.as_ref().and_then(|n| ctx.text(n, "narrate"));
        if let (Some(offset), Some(what)) = (offsets[i], what) {
            steps.push(Step {
                index: i + 1,
                id: ids[i].clone(),
                offset,
                what,
                narrate,
                line: ctx.line_of(&span),
            });
        }
    }
    steps.sort_by_key(|s| s.offset);
    steps
}

fn place(ctx: &mut Ctx<'_>, s: &S<RawStep>) -> Place {
    let step = s.get_ref();
    match (&step.at, &step.after) {
        (Some(_), Some(after)) => {
            ctx.err(after.span(), "a step has either `at` or `after`, not both");
            Place::Unknown
        }
        (None, None) => {
            ctx.err(
                s.span(),
                "a step needs `at = \"1h\"` or `after = { step = \"id\", by = \"10m\" }`",
            );
            Place::Unknown
        }
        (Some(at), None) => match ctx.duration_value(at, "at") {
            Some(d) => Place::At(d),
            None => Place::Unknown,
        },
        (None, Some(after)) => {
            let after = after.get_ref();
            let target = ctx.reference(Kind::Step, &after.step);
            match ctx.duration_value(&after.by, "after.by") {
                Some(by) if ctx.exists(Kind::Step, &target) => Place::After { step: target, by },
                _ => Place::Unknown,
            }
        }
    }
}

/// Absolute offsets, following `after` chains; cycles and offsets past the end are errors.
fn resolve(
    ctx: &mut Ctx<'_>,
    raw: &RawFile,
    ids: &[Option<String>],
    places: &[Place],
) -> Vec<Option<Duration>> {
    let index_of = |id: &str| ids.iter().position(|x| x.as_deref() == Some(id));
    let mut offsets: Vec<Option<Duration>> = vec![None; places.len()];
    for start in 0..places.len() {
        // Walk the chain from `start` to a step placed by `at`; at most one visit per step.
        let mut chain: Vec<usize> = Vec::new();
        let mut current = start;
        let mut base: Option<Duration> = None;
        loop {
            if let Some(known) = offsets[current] {
                base = Some(known);
                break;
            }
            if chain.contains(&current) {
                let span = raw.timeline[start]
                    .get_ref()
                    .after
                    .as_ref()
                    .map(|a| a.span());
                let names: Vec<String> = chain
                    .iter()
                    .map(|&i| ids[i].clone().unwrap_or_else(|| format!("#{}", i + 1)))
                    .collect();
                ctx.err(
                    span.unwrap_or_else(|| raw.timeline[start].span()),
                    format!("`after` steps form a cycle: {}", names.join(" → ")),
                );
                break;
            }
            chain.push(current);
            match &places[current] {
                Place::At(d) => {
                    base = Some(*d);
                    chain.pop();
                    offsets[current] = Some(*d);
                    break;
                }
                Place::After { step, .. } => match index_of(step) {
                    Some(next) => current = next,
                    None => break,
                },
                Place::Unknown => break,
            }
        }
        let Some(mut offset) = base else { continue };
        // Unwind: each step in the chain is its target's offset plus its `by`.
        for &i in chain.iter().rev() {
            if let Place::After { by, .. } = &places[i] {
                offset += *by;
                offsets[i] = Some(offset);
            }
        }
    }
    // Every placed step must be inside the scenario.
    for (i, offset) in offsets.iter_mut().enumerate() {
        if let Some(d) = *offset {
            let step = raw.timeline[i].get_ref();
            let span = step
                .at
                .as_ref()
                .map(|a| a.span())
                .or_else(|| step.after.as_ref().map(|a| a.span()))
                .unwrap_or_else(|| raw.timeline[i].span());
            *offset = ctx.check_inside(d, span, "step");
        }
    }
    offsets
}

fn kind(
    ctx: &mut Ctx<'_>,
    step: &RawStep,
    span: Range<usize>,
    profile: &Profile,
    default_tenant: &str,
) -> Option<StepKind> {
    let params = present_params(step);
    match (&step.action, &step.fault) {
        (Some(_), Some(fault)) => {
            ctx.err(
                fault.span(),
                "a step has either `action` or `fault`, not both",
            );
            None
        }
        (Some(action), None) => {
            if let Some(d) = &step.duration {
                ctx.err(
                    d.span(),
                    "`duration` applies to faults (restored after it), not to actions",
                );
            }
            check_params(ctx, action, &params)?;
            build_action(ctx, step, action, profile, default_tenant).map(StepKind::Action)
        }
        (None, Some(fault)) => {
            for (name, span) in &params {
                ctx.err(
                    span.clone(),
                    format!("`{name}` is an action parameter; this step is a fault"),
                );
            }
            let f = build_fault(ctx, fault)?;
            let duration = match &step.duration {
                None => None,
                Some(d) => {
                    let value = ctx.duration_value(d, "duration")?;
                    if f.restoring().is_none() {
                        ctx.err(
                            d.span(),
                            format!(
                                "`{}` cannot be undone automatically, so it takes no duration",
                                f.describe()
                            ),
                        );
                        return None;
                    }
                    if value.is_zero() {
                        ctx.err(d.span(), "a fault duration must be more than 0s");
                        return None;
                    }
                    Some(value)
                }
            };
            Some(StepKind::Fault { fault: f, duration })
        }
        (None, None) => {
            if step.narrate.is_none() {
                ctx.err(
                    span,
                    "a step needs an `action`, a `fault` or at least `narrate`",
                );
                return None;
            }
            for (name, span) in &params {
                ctx.err(
                    span.clone(),
                    format!("`{name}` is an action parameter, but this step has no `action`"),
                );
            }
            if let Some(d) = &step.duration {
                ctx.err(d.span(), "`duration` applies to faults only");
            }
            Some(StepKind::Narrate)
        }
    }
}

/// The scalar operators of the purge API's filters (seed 003; storage evaluates them). A step's
/// `value` is one scalar, so `in`, `in~` and `between` (arrays) are not offered here.
const PURGE_OPERATORS: [&str; 7] = ["==", "=~", "!=", "<", "<=", ">", ">="];

/// The action parameters present on a step, with their spans, in a fixed order.
fn present_params(step: &RawStep) -> Vec<(&'static str, Range<usize>)> {
    let mut out = Vec::new();
    macro_rules! collect {
        ($($field:ident),*) => {
            $( if let Some(v) = &step.$field { out.push((stringify!($field), v.span())); } )*
        };
    }
    collect!(
        vault,
        key,
        version,
        cluster,
        workspace,
        principal,
        permissions,
        enabled,
        not_before,
        expires,
        ops,
        location,
        tenant,
        sku,
        soft_delete,
        retention_days,
        purge_protection,
        kty,
        size,
        capacity,
        billing_type,
        double_encryption,
        subscription,
        resource_group,
        table,
        records,
        locked,
        since,
        kql,
        customer_managed_key,
        incidents_every,
        request,
        column,
        operator,
        value,
        dcr,
        stream,
        account,
        data_source_type,
        search,
        text
    );
    out
}

/// (required, optional) parameters of each action.
pub(crate) fn params_of(action: ActionName) -> (&'static [&'static str], &'static [&'static str]) {
    use ActionName::*;
    match action {
        CreateVault => (
            &["vault", "location"],
            &[
                "tenant",
                "sku",
                "soft_delete",
                "retention_days",
                "purge_protection",
            ],
        ),
        UpdateVault => (
            &["vault"],
            &["soft_delete", "retention_days", "purge_protection"],
        ),
        DeleteVault | RecoverVault | PurgeVault => (&["vault"], &[]),
        CreateKey => (&["vault", "key", "kty"], &["size", "ops", "enabled"]),
        UpdateKey => (
            &["vault", "key"],
            &["version", "enabled", "not_before", "expires", "ops"],
        ),
        RotateKey | DeleteKey | RecoverKey | PurgeKey => (&["vault", "key"], &[]),
        SetAccessPolicy => (&["vault", "principal", "permissions"], &[]),
        RemoveAccessPolicy => (&["vault", "principal"], &[]),
        CreateCluster => (
            &["cluster", "location"],
            &[
                "tenant",
                "subscription",
                "resource_group",
                "capacity",
                "billing_type",
                "double_encryption",
            ],
        ),
        UpdateCluster => (
            &["cluster"],
            &["capacity", "billing_type", "vault", "key", "version"],
        ),
        DeleteCluster | RecoverCluster => (&["cluster"], &[]),
        CreateWorkspace => (&["workspace", "location"], &["retention_days"]),
        LinkWorkspace => (&["workspace", "cluster"], &[]),
        UnlinkWorkspace => (&["workspace"], &[]),
        SetWorkspaceRetention => (&["workspace", "retention_days"], &[]),
        SetWorkspaceLock => (&["workspace", "locked"], &[]),
        Ingest => (&["workspace", "table"], &["records"]),
        Query => (&["workspace"], &["table", "kql", "since"]),
        RegisterCosmosDb => (&[], &[]),
        OnboardSentinel => (&["workspace"], &["customer_managed_key", "incidents_every"]),
        CreateIncident | CreateAnalyticsRule | CreateWatchlist | DeleteSentinelWorkspace => {
            (&["workspace"], &[])
        }
        EnableLockbox => (&["cluster"], &[]),
        LockboxRequest | SupportQuery => (&["workspace"], &[]),
        LockboxApprove | LockboxDeny => (&["request"], &[]),
        Purge => (&["workspace", "table", "column", "value"], &["operator"]),
        DeleteTable => (&["workspace", "table"], &[]),
        Upload => (&["dcr", "stream"], &["records"]),
        LinkStorageAccount => (&["workspace", "account"], &["data_source_type"]),
        SaveSearch => (&["workspace", "search", "text"], &[]),
        ReadSavedSearches => (&["workspace"], &[]),
    }
}

fn action_label(action: ActionName) -> String {
    crate::model::ACTION_NAMES[action as usize].to_string()
}

fn check_params(
    ctx: &mut Ctx<'_>,
    action: &S<ActionName>,
    params: &[(&'static str, Range<usize>)],
) -> Option<()> {
    let name = action_label(*action.get_ref());
    let (required, optional) = params_of(*action.get_ref());
    let mut ok = true;
    for (param, span) in params {
        if !required.contains(param) && !optional.contains(param) {
            let takes: Vec<&str> = required.iter().chain(optional.iter()).copied().collect();
            ctx.err(
                span.clone(),
                format!(
                    "`{param}` does not apply to action `{name}` (it takes: {})",
                    takes.join(", ")
                ),
            );
            ok = false;
        }
    }
    for param in required {
        if !params.iter().any(|(p, _)| p == param) {
            ctx.err(action.span(), format!("action `{name}` needs `{param}`"));
            ok = false;
        }
    }
    ok.then_some(())
}

/// A required parameter (presence was checked by `check_params`).
fn req<T>(p: &Option<S<T>>) -> Option<&S<T>> {
    p.as_ref()
}

fn build_action(
    ctx: &mut Ctx<'_>,
    s: &RawStep,
    action: &S<ActionName>,
    profile: &Profile,
    default_tenant: &str,
) -> Option<Action> {
    use ActionName::*;
    let vault_ref = |ctx: &mut Ctx<'_>| Some(ctx.reference(Kind::Vault, req(&s.vault)?));
    let key_pair = |ctx: &mut Ctx<'_>| {
        let vault = ctx.reference(Kind::Vault, req(&s.vault)?);
        let key = req(&s.key)?;
        if ctx.exists(Kind::Vault, &vault) {
            ctx.reference_str(Kind::Key, &format!("{vault}/{}", key.get_ref()), key.span());
        }
        Some((vault, key.get_ref().clone()))
    };
    let cluster_ref = |ctx: &mut Ctx<'_>| Some(ctx.reference(Kind::Cluster, req(&s.cluster)?));
    let workspace_ref =
        |ctx: &mut Ctx<'_>| Some(ctx.reference(Kind::Workspace, req(&s.workspace)?));
    let bool_of = |b: &Option<S<bool>>| b.as_ref().map(|b| *b.get_ref());
    Some(match action.get_ref() {
        CreateVault => Action::CreateVault(world::vault(
            ctx,
            &VaultArgs {
                name: req(&s.vault)?,
                location: req(&s.location)?,
                tenant: s.tenant.as_ref(),
                sku: s.sku.as_ref(),
                soft_delete: s.soft_delete.as_ref(),
                retention_days: s.retention_days.as_ref(),
                purge_protection: s.purge_protection.as_ref(),
            },
            default_tenant,
        )?),
        UpdateVault => {
            let vault = vault_ref(ctx)?;
            if s.soft_delete.is_none() && s.retention_days.is_none() && s.purge_protection.is_none()
            {
                ctx.err(
                    action.span(),
                    "update-vault changes nothing: give soft_delete, retention_days or purge_protection",
                );
                return None;
            }
            let retention_days = match &s.retention_days {
                None => None,
                Some(r) => Some(ctx.int_in(
                    r,
                    "retention_days",
                    i64::from(crate::limits::VAULT_RETENTION_MIN_DAYS),
                    i64::from(crate::limits::VAULT_RETENTION_MAX_DAYS),
                )? as u32),
            };
            Action::UpdateVault {
                vault,
                soft_delete: bool_of(&s.soft_delete),
                retention_days,
                purge_protection: bool_of(&s.purge_protection),
            }
        }
        DeleteVault => Action::DeleteVault {
            vault: vault_ref(ctx)?,
        },
        RecoverVault => Action::RecoverVault {
            vault: vault_ref(ctx)?,
        },
        PurgeVault => Action::PurgeVault {
            vault: vault_ref(ctx)?,
        },
        CreateKey => Action::CreateKey(world::key(
            ctx,
            &KeyArgs {
                vault: req(&s.vault)?,
                name: req(&s.key)?,
                kty: req(&s.kty)?,
                size: s.size.as_ref(),
                ops: s.ops.as_ref(),
                enabled: s.enabled.as_ref(),
            },
        )?),
        UpdateKey => {
            let (vault, key) = key_pair(ctx)?;
            if s.enabled.is_none()
                && s.not_before.is_none()
                && s.expires.is_none()
                && s.ops.is_none()
            {
                ctx.err(
                    action.span(),
                    "update-key changes nothing: give enabled, not_before, expires or ops",
                );
                return None;
            }
            let version = match &s.version {
                None => VersionSel::Latest,
                Some(v) => world::version_sel(ctx, v)?,
            };
            let not_before = match &s.not_before {
                None => None,
                Some(d) => Some(ctx.duration_value(d, "not_before")?),
            };
            let expires = match &s.expires {
                None => None,
                Some(d) => Some(ctx.duration_value(d, "expires")?),
            };
            let ops = match &s.ops {
                None => None,
                Some(ops) => Some(world::key_ops(ctx, ops, None)?),
            };
            Action::UpdateKey {
                vault,
                key,
                version,
                enabled: bool_of(&s.enabled),
                not_before,
                expires,
                ops,
            }
        }
        RotateKey => {
            let (vault, key) = key_pair(ctx)?;
            Action::RotateKey { vault, key }
        }
        DeleteKey => {
            let (vault, key) = key_pair(ctx)?;
            Action::DeleteKey { vault, key }
        }
        RecoverKey => {
            let (vault, key) = key_pair(ctx)?;
            Action::RecoverKey { vault, key }
        }
        PurgeKey => {
            let (vault, key) = key_pair(ctx)?;
            Action::PurgeKey { vault, key }
        }
        SetAccessPolicy => Action::SetAccessPolicy(world::policy(
            ctx,
            req(&s.vault)?,
            req(&s.principal)?,
            s.permissions.as_ref(),
        )?),
        RemoveAccessPolicy => {
            let vault = vault_ref(ctx)?;
            let principal = world::principal_ref(ctx, req(&s.principal)?);
            Action::RemoveAccessPolicy { vault, principal }
        }
        CreateCluster => Action::CreateCluster(world::cluster(
            ctx,
            &ClusterArgs {
                name: req(&s.cluster)?,
                location: req(&s.location)?,
                tenant: s.tenant.as_ref(),
                subscription: s.subscription.as_ref(),
                resource_group: s.resource_group.as_ref(),
                capacity: s.capacity.as_ref(),
                billing_type: s.billing_type.as_ref(),
                double_encryption: s.double_encryption.as_ref(),
            },
            default_tenant,
            profile,
        )?),
        UpdateCluster => {
            let cluster = cluster_ref(ctx)?;
            let key = match (&s.vault, &s.key) {
                (Some(vault), Some(key)) => {
                    Some(world::key_ref(ctx, vault, key, s.version.as_ref())?)
                }
                (None, None) => {
                    if let Some(v) = &s.version {
                        ctx.err(v.span(), "`version` needs `vault` and `key`");
                        return None;
                    }
                    None
                }
                (Some(v), None) => {
                    ctx.err(v.span(), "a key update needs both `vault` and `key`");
                    return None;
                }
                (None, Some(k)) => {
                    ctx.err(k.span(), "a key update needs both `vault` and `key`");
                    return None;
                }
            };
            if key.is_none() && s.capacity.is_none() && s.billing_type.is_none() {
                ctx.err(
                    action.span(),
                    "update-cluster changes nothing: give capacity, billing_type or vault + key",
                );
                return None;
            }
            let capacity = match &s.capacity {
                None => None,
                Some(c) => Some(world::capacity(ctx, c)?),
            };
            Action::UpdateCluster {
                cluster,
                capacity_gb_per_day: capacity,
                billing_type: s.billing_type.as_ref().map(|b| *b.get_ref()),
                key,
            }
        }
        DeleteCluster => Action::DeleteCluster {
            cluster: cluster_ref(ctx)?,
        },
        RecoverCluster => Action::RecoverCluster {
            cluster: cluster_ref(ctx)?,
        },
        CreateWorkspace => Action::CreateWorkspace(world::workspace(
            ctx,
            req(&s.workspace)?,
            req(&s.location)?,
            s.retention_days.as_ref(),
            profile,
        )?),
        LinkWorkspace => {
            let workspace = workspace_ref(ctx);
            let cluster = cluster_ref(ctx);
            Action::LinkWorkspace {
                workspace: workspace?,
                cluster: cluster?,
            }
        }
        UnlinkWorkspace => Action::UnlinkWorkspace {
            workspace: workspace_ref(ctx)?,
        },
        SetWorkspaceRetention => {
            let workspace = workspace_ref(ctx)?;
            let days = world::workspace_retention(ctx, req(&s.retention_days)?, profile)?;
            Action::SetWorkspaceRetention {
                workspace,
                retention_days: days,
            }
        }
        SetWorkspaceLock => Action::SetWorkspaceLock {
            workspace: workspace_ref(ctx)?,
            locked: bool_of(&s.locked)?,
        },
        Ingest => {
            let workspace = workspace_ref(ctx)?;
            let table = ctx.name(req(&s.table)?, "table name")?;
            // The driver synthesizes records of a standard table's schema; a custom table is
            // reached with `upload` through a `[[dcrs]]` rule.
            if !super::world::AGENT_TABLES.contains(&table.as_str()) {
                ctx.err(
                    req(&s.table)?.span(),
                    format!(
                        "an ingest step sends a standard table ({}), not `{table}`; send a custom \
                         table with `upload` through a [[dcrs]] rule",
                        super::world::AGENT_TABLES.join(", ")
                    ),
                );
                return None;
            }
            let records = match &s.records {
                None => 1,
                Some(r) => ctx.int_in(r, "records", 1, BATCH_RECORDS_MAX as i64)? as u64,
            };
            Action::Ingest {
                workspace,
                table,
                records,
            }
        }
        Query => {
            let workspace = workspace_ref(ctx)?;
            // `kql` replaces `table` (the query names its tables); `since` narrows either.
            let (table, kql) = match (&s.table, &s.kql) {
                (Some(t), Some(_)) => {
                    ctx.err(
                        t.span(),
                        "`table` and `kql` exclude each other: a KQL query names its own tables",
                    );
                    return None;
                }
                (Some(t), None) => (Some(ctx.name(t, "table name")?), None),
                (None, Some(k)) => (None, Some(super::kql::query(ctx, k)?)),
                (None, None) => (None, None),
            };
            let since = match &s.since {
                None => None,
                Some(d) => Some(ctx.duration_value(d, "since")?),
            };
            Action::Query {
                workspace,
                table,
                kql,
                since,
            }
        }
        RegisterCosmosDb => Action::RegisterCosmosDb,
        EnableLockbox => Action::EnableLockbox {
            cluster: cluster_ref(ctx)?,
        },
        LockboxRequest => Action::LockboxRequest {
            workspace: workspace_ref(ctx)?,
        },
        LockboxApprove | LockboxDeny => Action::LockboxDecide {
            request: ctx.reference(Kind::Step, req(&s.request)?),
            approve: matches!(action.get_ref(), LockboxApprove),
        },
        SupportQuery => Action::SupportQuery {
            workspace: workspace_ref(ctx)?,
        },
        Purge => {
            let workspace = workspace_ref(ctx)?;
            let table = ctx.name(req(&s.table)?, "table name")?;
            let column = ctx.name(req(&s.column)?, "column name")?;
            let operator = match &s.operator {
                None => "==".to_string(),
                Some(op) if PURGE_OPERATORS.contains(&op.get_ref().as_str()) => {
                    op.get_ref().clone()
                }
                Some(op) => {
                    ctx.err(
                        op.span(),
                        format!(
                            "operator {:?}: expected one of {}",
                            cmksim_sim::text::echo(op.get_ref()),
                            PURGE_OPERATORS.join(", ")
                        ),
                    );
                    return None;
                }
            };
            let value = req(&s.value)?.get_ref().clone();
            Action::Purge {
                workspace,
                table,
                column,
                operator,
                value,
            }
        }
        DeleteTable => Action::DeleteTable {
            workspace: workspace_ref(ctx)?,
            table: ctx.name(req(&s.table)?, "table name")?,
        },
        Upload => super::dcr::upload(ctx, s)?,
        LinkStorageAccount => {
            let workspace = workspace_ref(ctx)?;
            let account = ctx.reference(Kind::StorageAccount, req(&s.account)?);
            // The storage service's own parser: one home for the two words.
            let data_source_type = match &s.data_source_type {
                None => "Query".to_string(),
                Some(t) => match cmksim_sim::governance::DataSourceType::parse(t.get_ref()) {
                    Some(kind) => kind.as_str().to_string(),
                    None => {
                        ctx.err(
                            t.span(),
                            format!(
                                "data_source_type {:?}: expected Query or Alerts",
                                cmksim_sim::text::echo(t.get_ref())
                            ),
                        );
                        return None;
                    }
                },
            };
            Action::LinkStorageAccount {
                workspace,
                account,
                data_source_type,
            }
        }
        SaveSearch => {
            let workspace = workspace_ref(ctx)?;
            let search = ctx.name(req(&s.search)?, "saved search id")?;
            let text = req(&s.text)?;
            if text.get_ref().trim().is_empty() {
                ctx.err(text.span(), "a saved search needs a query `text`");
                return None;
            }
            Action::SaveSearch {
                workspace,
                search,
                text: text.get_ref().clone(),
            }
        }
        ReadSavedSearches => Action::ReadSavedSearches {
            workspace: workspace_ref(ctx)?,
        },
        OnboardSentinel => {
            let workspace = workspace_ref(ctx)?;
            let incidents_every = match &s.incidents_every {
                None => None,
                Some(every) => Some(super::sentinel::incident_interval(ctx, every)?),
            };
            Action::OnboardSentinel {
                workspace,
                customer_managed_key: bool_of(&s.customer_managed_key).unwrap_or(true),
                incidents_every,
            }
        }
        CreateIncident => Action::CreateSentinelItem {
            workspace: workspace_ref(ctx)?,
            item: SentinelItem::Incident,
        },
        CreateAnalyticsRule => Action::CreateSentinelItem {
            workspace: workspace_ref(ctx)?,
            item: SentinelItem::AnalyticsRule,
        },
        CreateWatchlist => Action::CreateSentinelItem {
            workspace: workspace_ref(ctx)?,
            item: SentinelItem::Watchlist,
        },
        DeleteSentinelWorkspace => Action::DeleteSentinelWorkspace {
            workspace: workspace_ref(ctx)?,
        },
    })
}

fn hosts_pair(ctx: &mut Ctx<'_>, hosts: &S<Vec<S<Host>>>, what: &str) -> Option<(Host, Host)> {
    match hosts.get_ref().as_slice() {
        [a, b] if a.get_ref() != b.get_ref() => Some((own_host(ctx, a)?, own_host(ctx, b)?)),
        _ => {
            ctx.err(
                hosts.span(),
                format!(
                    "{what} takes two different hosts, e.g. [\"storage\", \"keyvault\"] \
                     (hosts: keyvault, storage, ingest)"
                ),
            );
            None
        }
    }
}

/// A host a network or process fault can reach on its own: every engine (and a live
/// deployment) runs the identity authority inside the Key Vault host, one process behind one
/// address, so a fault naming `identity` would cut or stop nothing of its own; refused where it
/// is written rather than run as a silent no-op.
fn own_host(ctx: &mut Ctx<'_>, host: &S<Host>) -> Option<Host> {
    if *host.get_ref() == Host::Identity {
        ctx.err(
            host.span(),
            "identity has no host of its own: the identity authority runs in the Key Vault host \
             (one process, one address), so a fault cannot reach it alone; name keyvault \
             (hosts: keyvault, storage, ingest)",
        );
        return None;
    }
    Some(*host.get_ref())
}

/// `link = [a, b]` with its optional `latency`, `jitter` (durations) and `loss` (checked by the
/// network's own rule, [`LinkQuality::validated`]); none of them makes the link perfect again.
fn link_fault(ctx: &mut Ctx<'_>, raw: &RawFault, a: Host, b: Host) -> Option<Fault> {
    let mut quality = LinkQuality::default();
    if let Some(latency) = &raw.latency {
        quality.latency = ctx.duration_value(latency, "latency")?;
    }
    if let Some(jitter) = &raw.jitter {
        quality.jitter = ctx.duration_value(jitter, "jitter")?;
    }
    if let Some(loss) = &raw.loss {
        quality.loss = *loss.get_ref();
        if let Err(e) = quality.validated() {
            ctx.err(loss.span(), e.to_string());
            return None;
        }
    }
    Some(Fault::Link(a, b, quality))
}

fn build_fault(ctx: &mut Ctx<'_>, f: &S<RawFault>) -> Option<Fault> {
    let raw = f.get_ref();
    let targets: Vec<(&str, Range<usize>)> = [
        ("keyvault", raw.keyvault.as_ref().map(|x| x.span())),
        ("hsm", raw.hsm.as_ref().map(|x| x.span())),
        ("partition", raw.partition.as_ref().map(|x| x.span())),
        ("repair", raw.repair.as_ref().map(|x| x.span())),
        ("hold", raw.hold.as_ref().map(|x| x.span())),
        ("release", raw.release.as_ref().map(|x| x.span())),
        ("crash", raw.crash.as_ref().map(|x| x.span())),
        ("restart", raw.restart.as_ref().map(|x| x.span())),
        ("link", raw.link.as_ref().map(|x| x.span())),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.map(|s| (n, s)))
    .collect();
    match targets.as_slice() {
        [] => {
            ctx.err(
                f.span(),
                "a fault names one target: keyvault, hsm, partition, repair, hold, release, crash, restart or link",
            );
            return None;
        }
        [_] => {}
        [_, (second, span), ..] => {
            ctx.err(
                span.clone(),
                format!("a fault names one target; `{second}` is a second one (use another step)"),
            );
            return None;
        }
    }
    let (target, _) = targets[0];
    // Parameters: error_rate only with keyvault = "error-rate", latency only with a latency mode.
    let wants_rate = raw.keyvault.as_ref().map(|m| *m.get_ref()) == Some(VaultMode::ErrorRate);
    let is_link = raw.link.is_some();
    let wants_latency = raw.keyvault.as_ref().map(|m| *m.get_ref()) == Some(VaultMode::Latency)
        || raw.hsm.as_ref().map(|m| *m.get_ref()) == Some(HsmMode::Latency)
        || is_link;
    for (name, span) in [
        ("jitter", raw.jitter.as_ref().map(|x| x.span())),
        ("loss", raw.loss.as_ref().map(|x| x.span())),
    ] {
        if let (Some(span), false) = (span, is_link) {
            ctx.err(span, format!("`{name}` goes with link = [...]"));
            return None;
        }
    }
    if let (Some(rate), false) = (&raw.error_rate, wants_rate) {
        ctx.err(
            rate.span(),
            "`error_rate` goes with keyvault = \"error-rate\"",
        );
        return None;
    }
    if let (Some(latency), false) = (&raw.latency, wants_latency) {
        ctx.err(
            latency.span(),
            "`latency` goes with keyvault = \"latency\", hsm = \"latency\" or link = [...]",
        );
        return None;
    }
    let latency = |ctx: &mut Ctx<'_>, mode: Range<usize>| match &raw.latency {
        None => {
            ctx.err(mode, "this mode needs `latency = \"2s\"`");
            None
        }
        Some(l) => ctx.duration_value(l, "latency"),
    };
    Some(match target {
        "keyvault" => {
            let mode = raw.keyvault.as_ref()?;
            Fault::Keyvault(match mode.get_ref() {
                VaultMode::Down => VaultFault::Down,
                VaultMode::Blackhole => VaultFault::Blackhole,
                VaultMode::Throttle => VaultFault::Throttle,
                VaultMode::Up => VaultFault::Up,
                VaultMode::Latency => VaultFault::Latency(latency(ctx, mode.span())?),
                VaultMode::ErrorRate => match &raw.error_rate {
                    None => {
                        ctx.err(
                            mode.span(),
                            "this mode needs `error_rate = 0.5` (0 < rate ≤ 1)",
                        );
                        return None;
                    }
                    Some(rate) => {
                        let r = *rate.get_ref();
                        if !(r > 0.0 && r <= 1.0) {
                            ctx.err(
                                rate.span(),
                                format!("error_rate must be more than 0 and at most 1, got {r}"),
                            );
                            return None;
                        }
                        VaultFault::ErrorRate(r)
                    }
                },
            })
        }
        "hsm" => {
            let mode = raw.hsm.as_ref()?;
            Fault::Hsm(match mode.get_ref() {
                HsmMode::DeviceError => HsmFault::DeviceError,
                HsmMode::Tamper => HsmFault::Tamper,
                HsmMode::Ok => HsmFault::Ok,
                HsmMode::Latency => HsmFault::Latency(latency(ctx, mode.span())?),
            })
        }
        "partition" => {
            let (a, b) = hosts_pair(ctx, raw.partition.as_ref()?, "partition")?;
            Fault::Partition(a, b)
        }
        "repair" => {
            let (a, b) = hosts_pair(ctx, raw.repair.as_ref()?, "repair")?;
            Fault::Repair(a, b)
        }
        "hold" => {
            let (a, b) = hosts_pair(ctx, raw.hold.as_ref()?, "hold")?;
            Fault::Hold(a, b)
        }
        "release" => {
            let (a, b) = hosts_pair(ctx, raw.release.as_ref()?, "release")?;
            Fault::Release(a, b)
        }
        "crash" => Fault::Crash(own_host(ctx, raw.crash.as_ref()?)?),
        "restart" => Fault::Restart(own_host(ctx, raw.restart.as_ref()?)?),
        "link" => {
            let (a, b) = hosts_pair(ctx, raw.link.as_ref()?, "link")?;
            link_fault(ctx, raw, a, b)?
        }
        _ => return None,
    })
}
