//! Validation of the world (`[[tenants]]` … `[[workspaces]]`) and the traffic (`[[agents]]`).
//!
//! The constructors here (`vault`, `key`, `cluster`, `workspace`, `policy`) are shared with the
//! timeline's create actions, so that a vault written in the world and one created at T+2h obey
//! the same defaults and ranges.
//!
//! Every declared name is defined in the symbol table whether or not its entity is valid: the
//! entity's own errors are reported at its line, and the references to it must not add invented
//! "unknown cluster (no cluster is defined)" errors before or instead of them (issue 17).

use std::ops::Range;

use cmksim_sim::Profile;

use super::{Ctx, Kind};
use crate::limits::{
    AGENT_INTERVAL_MIN_MS, BATCH_RECORDS_MAX, CLUSTER_CAPACITY_MAX_GB_PER_DAY,
    ENTITIES_PER_KIND_MAX, VAULT_RETENTION_MAX_DAYS, VAULT_RETENTION_MIN_DAYS,
};
use crate::model::{
    AccessPolicy, Agent, AgentTable, BillingType, Cluster, Key, KeyOp, KeyPermission, KeyRef,
    KeyType, Principal, PrincipalRef, Sku, StorageAccount, Tenant, Vault, VersionSel, Workspace,
    World,
};
use crate::raw::{RawFile, RawKeyRef, S};

mod rules;

/// What a simulated agent collects: heartbeats, performance counters, Windows events, syslog.
pub(super) use cmksim_sim::rules::STANDARD_TABLES as AGENT_TABLES;

/// The tenant used when a file declares none.
pub const DEFAULT_TENANT: &str = "default";
/// Subscription and resource group used when a cluster names none.
pub const DEFAULT_SUBSCRIPTION: &str = "sub1";
pub const DEFAULT_RESOURCE_GROUP: &str = "rg1";

fn check_count<T>(ctx: &mut Ctx<'_>, items: &[S<T>], what: &str) {
    if let Some(extra) = items.get(ENTITIES_PER_KIND_MAX) {
        ctx.err(
            extra.span(),
            format!("too many {what}: at most {ENTITIES_PER_KIND_MAX}"),
        );
    }
}

pub(super) fn build(ctx: &mut Ctx<'_>, raw: &RawFile, profile: &Profile) -> World {
    let mut world = World::default();
    check_count(ctx, &raw.tenants, "tenants");
    for t in &raw.tenants {
        let t = t.get_ref();
        let name = ctx.name(&t.name, "tenant name");
        ctx.define(Kind::Tenant, t.name.get_ref(), t.name.span());
        if let Some(name) = name {
            world.tenants.push(Tenant { name });
        }
    }
    if raw.tenants.is_empty() {
        ctx.define(Kind::Tenant, DEFAULT_TENANT, 0..0);
        world.tenants.push(Tenant {
            name: DEFAULT_TENANT.to_string(),
        });
    }
    let default_tenant = world
        .tenants
        .first()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| DEFAULT_TENANT.to_string());

    check_count(ctx, &raw.principals, "principals");
    for p in &raw.principals {
        let p = p.get_ref();
        let name = ctx.name(&p.name, "principal name");
        if let Some(name) = &name {
            if name.starts_with("cluster:") {
                ctx.err(p.name.span(), "`cluster:` names a cluster's identity");
            }
            if name.starts_with("storage:") {
                ctx.err(
                    p.name.span(),
                    "`storage:` names a storage account's identity",
                );
            }
        }
        ctx.define(Kind::Principal, p.name.get_ref(), p.name.span());
        let tenant = ctx.reference(Kind::Tenant, &p.tenant);
        if let Some(name) = name {
            world.principals.push(Principal { name, tenant });
        }
    }

    check_count(ctx, &raw.vaults, "vaults");
    for v in &raw.vaults {
        let v = v.get_ref();
        let args = VaultArgs {
            name: &v.name,
            location: &v.location,
            tenant: v.tenant.as_ref(),
            sku: v.sku.as_ref(),
            soft_delete: v.soft_delete.as_ref(),
            retention_days: v.retention_days.as_ref(),
            purge_protection: v.purge_protection.as_ref(),
        };
        let vault = vault(ctx, &args, &default_tenant);
        ctx.define(Kind::Vault, v.name.get_ref(), v.name.span());
        if let Some(vault) = vault {
            world.vaults.push(vault);
        }
    }

    check_count(ctx, &raw.keys, "keys");
    for k in &raw.keys {
        let k = k.get_ref();
        let args = KeyArgs {
            vault: &k.vault,
            name: &k.name,
            kty: &k.kty,
            size: k.size.as_ref(),
            ops: k.ops.as_ref(),
            enabled: k.enabled.as_ref(),
        };
        let key = key(ctx, &args);
        ctx.define(
            Kind::Key,
            &format!("{}/{}", k.vault.get_ref(), k.name.get_ref()),
            k.name.span(),
        );
        if let Some(key) = key {
            world.keys.push(key);
        }
    }

    // Clusters before policies: a policy may name `cluster:<name>`.
    check_count(ctx, &raw.clusters, "clusters");
    let mut pending_keys: Vec<(usize, &S<RawKeyRef>)> = Vec::new();
    for c in &raw.clusters {
        let c = c.get_ref();
        let args = ClusterArgs {
            name: &c.name,
            location: &c.location,
            tenant: c.tenant.as_ref(),
            subscription: c.subscription.as_ref(),
            resource_group: c.resource_group.as_ref(),
            capacity: c.capacity.as_ref(),
            billing_type: c.billing_type.as_ref(),
            double_encryption: c.double_encryption.as_ref(),
        };
        let cluster = cluster(ctx, &args, &default_tenant, profile);
        ctx.define(Kind::Cluster, c.name.get_ref(), c.name.span());
        if let Some(cluster) = cluster {
            if let Some(k) = &c.key {
                pending_keys.push((world.clusters.len(), k));
            }
            world.clusters.push(cluster);
        }
    }
    for (index, k) in pending_keys {
        let k = k.get_ref();
        let key_ref = key_ref(ctx, &k.vault, &k.name, k.version.as_ref());
        world.clusters[index].key = key_ref;
    }

    // Storage accounts before policies too: a policy may name `storage:<name>`.
    storage_accounts(ctx, raw, &mut world, &default_tenant);

    check_count(ctx, &raw.access_policies, "access policies");
    let mut seen_policies: Vec<(String, PrincipalRef, usize)> = Vec::new();
    for a in &raw.access_policies {
        let span = a.span();
        let a = a.get_ref();
        if let Some(policy) = policy(ctx, &a.vault, &a.principal, Some(&a.permissions)) {
            let line = ctx.line_of(&span);
            if let Some((_, _, first)) = seen_policies
                .iter()
                .find(|(v, p, _)| *v == policy.vault && *p == policy.principal)
            {
                let first = *first;
                ctx.err(
                    a.principal.span(),
                    format!(
                        "duplicate access policy for `{}` on vault `{}` (first at line {first}); \
                         list every permission in one policy",
                        policy.principal.label(),
                        policy.vault
                    ),
                );
            } else {
                seen_policies.push((policy.vault.clone(), policy.principal.clone(), line));
                world.access_policies.push(policy);
            }
        }
    }

    check_count(ctx, &raw.workspaces, "workspaces");
    for w in &raw.workspaces {
        let w = w.get_ref();
        let ws = workspace(
            ctx,
            &w.name,
            &w.location,
            w.retention_days.as_ref(),
            profile,
        );
        ctx.define(Kind::Workspace, w.name.get_ref(), w.name.span());
        let link = w.link.as_ref().map(|l| ctx.reference(Kind::Cluster, l));
        if let Some(mut ws) = ws {
            ws.link = link;
            world.workspaces.push(ws);
        }
    }
    rules::cross_entity(ctx, raw, &world);
    rules::cluster_counts(ctx, raw, &world, profile);
    world
}

/// `[[storage_accounts]]` (seed 000, BYOS): Azure's name rule (the storage service's own,
/// `cmksim_sim::governance::is_valid_storage_account_name`), a known region and tenant, and an
/// optional key of a declared vault.
fn storage_accounts(ctx: &mut Ctx<'_>, raw: &RawFile, world: &mut World, default_tenant: &str) {
    check_count(ctx, &raw.storage_accounts, "storage accounts");
    for a in &raw.storage_accounts {
        let span = a.span();
        let a = a.get_ref();
        let name = ctx.name(&a.name, "storage account name");
        if let Some(n) = &name {
            if !cmksim_sim::governance::is_valid_storage_account_name(n) {
                ctx.err(
                    a.name.span(),
                    format!(
                        "{} is not a valid storage account name. Storage account name must be \
                         between 3 and 24 characters in length and use numbers and lower-case \
                         letters only.",
                        cmksim_sim::text::echo(n)
                    ),
                );
            }
        }
        ctx.define(Kind::StorageAccount, a.name.get_ref(), a.name.span());
        let location = ctx.name(&a.location, "location");
        if location.is_some() {
            rules::location(ctx, &a.location);
        }
        let tenant = match &a.tenant {
            Some(t) => ctx.reference(Kind::Tenant, t),
            None => default_tenant.to_string(),
        };
        let key = match &a.key {
            Some(k) => {
                let k = k.get_ref();
                match key_ref(ctx, &k.vault, &k.name, k.version.as_ref()) {
                    Some(key) => Some(key),
                    None => continue,
                }
            }
            None => None,
        };
        let line = ctx.line_of(&span);
        if let (Some(name), Some(location)) = (name, location) {
            world.storage_accounts.push(StorageAccount {
                name,
                location,
                tenant,
                key,
                line,
            });
        }
    }
}

pub(super) fn agents(ctx: &mut Ctx<'_>, raw: &RawFile) -> Vec<Agent> {
    check_count(ctx, &raw.agents, "agents");
    let mut out = Vec::new();
    for a in &raw.agents {
        let a = a.get_ref();
        let name = ctx.name(&a.name, "agent name");
        ctx.define(Kind::Agent, a.name.get_ref(), a.name.span());
        let workspace = ctx.reference(Kind::Workspace, &a.workspace);
        if a.tables.get_ref().is_empty() {
            ctx.err(
                a.tables.span(),
                "an agent needs at least one table, e.g. { table = \"Heartbeat\", every = \"1m\" }",
            );
        }
        let mut tables: Vec<AgentTable> = Vec::new();
        for t in a.tables.get_ref() {
            let t = t.get_ref();
            let Some(table) = ctx.name(&t.table, "table name") else {
                continue;
            };
            if tables.iter().any(|x| x.table == table) {
                ctx.err(
                    t.table.span(),
                    format!("duplicate table `{table}` in this agent"),
                );
            }
            if !AGENT_TABLES.contains(&table.as_str()) {
                ctx.err(
                    t.table.span(),
                    format!(
                        "an agent sends {} (seed 003's agent data types), not `{table}`",
                        AGENT_TABLES.join(", ")
                    ),
                );
            }
            let every = ctx.duration_value(&t.every, "every").and_then(|d| {
                if d.as_millis() < u128::from(AGENT_INTERVAL_MIN_MS) {
                    ctx.err(
                        t.every.span(),
                        format!(
                            "every must be at least {}ms (a rate of at most one batch a second per table)",
                            AGENT_INTERVAL_MIN_MS
                        ),
                    );
                    None
                } else {
                    Some(d)
                }
            });
            let records = match &t.records {
                None => Some(1),
                Some(r) => ctx
                    .int_in(r, "records", 1, BATCH_RECORDS_MAX as i64)
                    .map(|v| v as u64),
            };
            if let (Some(every), Some(records)) = (every, records) {
                tables.push(AgentTable {
                    table,
                    every,
                    records,
                });
            }
        }
        if let Some(name) = name {
            out.push(Agent {
                name,
                workspace,
                tables,
            });
        }
    }
    out
}

pub(super) struct VaultArgs<'r> {
    pub name: &'r S<String>,
    pub location: &'r S<String>,
    pub tenant: Option<&'r S<String>>,
    pub sku: Option<&'r S<Sku>>,
    pub soft_delete: Option<&'r S<bool>>,
    pub retention_days: Option<&'r S<i64>>,
    pub purge_protection: Option<&'r S<bool>>,
}

pub(super) fn vault(ctx: &mut Ctx<'_>, a: &VaultArgs<'_>, default_tenant: &str) -> Option<Vault> {
    let name = ctx.name(a.name, "vault name");
    if name.is_some() {
        rules::vault_name(ctx, a.name);
    }
    let location = ctx.name(a.location, "location");
    if location.is_some() {
        rules::location(ctx, a.location);
    }
    let tenant = match a.tenant {
        Some(t) => ctx.reference(Kind::Tenant, t),
        None => default_tenant.to_string(),
    };
    let retention_days = match a.retention_days {
        None => Some(VAULT_RETENTION_MAX_DAYS),
        Some(r) => ctx
            .int_in(
                r,
                "retention_days",
                i64::from(VAULT_RETENTION_MIN_DAYS),
                i64::from(VAULT_RETENTION_MAX_DAYS),
            )
            .map(|v| v as u32),
    };
    Some(Vault {
        name: name?,
        location: location?,
        tenant,
        sku: a.sku.map(|s| *s.get_ref()).unwrap_or(Sku::Standard),
        soft_delete: a.soft_delete.map(|s| *s.get_ref()).unwrap_or(true),
        retention_days: retention_days?,
        purge_protection: a.purge_protection.map(|s| *s.get_ref()).unwrap_or(false),
        line: ctx.line_of(&a.name.span()),
    })
}

pub(super) struct KeyArgs<'r> {
    pub vault: &'r S<String>,
    pub name: &'r S<String>,
    pub kty: &'r S<KeyType>,
    pub size: Option<&'r S<i64>>,
    pub ops: Option<&'r S<Vec<S<KeyOp>>>>,
    pub enabled: Option<&'r S<bool>>,
}

pub(super) fn key(ctx: &mut Ctx<'_>, a: &KeyArgs<'_>) -> Option<Key> {
    let vault = ctx.reference(Kind::Vault, a.vault);
    let name = ctx.name(a.name, "key name");
    if name.is_some() {
        rules::key_name(ctx, a.name);
    }
    let kty = *a.kty.get_ref();
    let size = match a.size {
        None => Some(kty.sizes()[0]),
        Some(s) => {
            let v = *s.get_ref();
            match u32::try_from(v).ok().filter(|v| kty.sizes().contains(v)) {
                Some(v) => Some(v),
                None => {
                    let sizes: Vec<String> = kty.sizes().iter().map(|s| s.to_string()).collect();
                    ctx.err(
                        s.span(),
                        format!(
                            "size {v} is not valid for {}: expected {}",
                            kty.as_str(),
                            sizes.join(", ")
                        ),
                    );
                    None
                }
            }
        }
    };
    let ops = match a.ops {
        None => Some(KeyOp::defaults(kty)),
        Some(ops) => key_ops(ctx, ops, Some(kty)),
    };
    Some(Key {
        vault,
        name: name?,
        kty,
        size: size?,
        ops: ops?,
        enabled: a.enabled.map(|e| *e.get_ref()).unwrap_or(true),
        line: ctx.line_of(&a.name.span()),
    })
}

/// A list of key operations: no duplicates, each valid for the key type when known.
pub(super) fn key_ops(
    ctx: &mut Ctx<'_>,
    ops: &S<Vec<S<KeyOp>>>,
    kty: Option<KeyType>,
) -> Option<Vec<KeyOp>> {
    let mut out: Vec<KeyOp> = Vec::new();
    let mut ok = true;
    for op in ops.get_ref() {
        let v = *op.get_ref();
        if out.contains(&v) {
            ctx.err(op.span(), "duplicate key operation");
            ok = false;
        } else if kty.is_some_and(|k| !v.valid_for(k)) {
            ctx.err(
                op.span(),
                format!(
                    "an {} key can only sign and verify",
                    kty.map(|k| k.as_str()).unwrap_or("")
                ),
            );
            ok = false;
        }
        out.push(v);
    }
    ok.then_some(out)
}

pub(super) struct ClusterArgs<'r> {
    pub name: &'r S<String>,
    pub location: &'r S<String>,
    pub tenant: Option<&'r S<String>>,
    pub subscription: Option<&'r S<String>>,
    pub resource_group: Option<&'r S<String>>,
    pub capacity: Option<&'r S<i64>>,
    pub billing_type: Option<&'r S<BillingType>>,
    pub double_encryption: Option<&'r S<bool>>,
}

pub(super) fn cluster(
    ctx: &mut Ctx<'_>,
    a: &ClusterArgs<'_>,
    default_tenant: &str,
    profile: &Profile,
) -> Option<Cluster> {
    let name = ctx.name(a.name, "cluster name");
    if name.is_some() {
        rules::cluster_name(ctx, a.name);
    }
    let location = ctx.name(a.location, "location");
    if location.is_some() {
        rules::location(ctx, a.location);
        rules::double_encryption(ctx, a.location, a.double_encryption, &profile.cluster);
    }
    let tenant = match a.tenant {
        Some(t) => ctx.reference(Kind::Tenant, t),
        None => default_tenant.to_string(),
    };
    let subscription = match a.subscription {
        Some(s) => ctx.name(s, "subscription"),
        None => Some(DEFAULT_SUBSCRIPTION.to_string()),
    };
    let resource_group = match a.resource_group {
        Some(s) => ctx.name(s, "resource_group"),
        None => Some(DEFAULT_RESOURCE_GROUP.to_string()),
    };
    let capacity = match a.capacity {
        None => Some(profile.cluster.capacity_min_gb_per_day),
        Some(c) => capacity(ctx, c).inspect(|v| rules::capacity(ctx, c, *v, &profile.cluster)),
    };
    Some(Cluster {
        name: name?,
        tenant,
        subscription: subscription?,
        resource_group: resource_group?,
        location: location?,
        capacity_gb_per_day: capacity?,
        billing_type: a
            .billing_type
            .map(|b| *b.get_ref())
            .unwrap_or(BillingType::Cluster),
        double_encryption: a
            .double_encryption
            .map(|d| *d.get_ref())
            .unwrap_or(profile.cluster.double_encryption_default),
        key: None,
        line: ctx.line_of(&a.name.span()),
    })
}

/// A capacity in GB/day: positive and not absurd (range and step are the service's rule).
pub(super) fn capacity(ctx: &mut Ctx<'_>, c: &S<i64>) -> Option<u32> {
    ctx.int_in(
        c,
        "capacity (GB per day)",
        1,
        i64::from(CLUSTER_CAPACITY_MAX_GB_PER_DAY),
    )
    .map(|v| v as u32)
}

/// `vault` + key `name` + optional `version` (`latest`, `v1`, `v2`, …).
pub(super) fn key_ref(
    ctx: &mut Ctx<'_>,
    vault: &S<String>,
    name: &S<String>,
    version: Option<&S<String>>,
) -> Option<KeyRef> {
    let vault_name = ctx.reference(Kind::Vault, vault);
    let key_name = name.get_ref().clone();
    if ctx.exists(Kind::Vault, &vault_name) {
        ctx.reference_str(Kind::Key, &format!("{vault_name}/{key_name}"), name.span());
    }
    let version = match version {
        None => Some(VersionSel::Versionless),
        Some(v) => version_sel(ctx, v),
    };
    Some(KeyRef {
        vault: vault_name,
        key: key_name,
        version: version?,
    })
}

pub(super) fn version_sel(ctx: &mut Ctx<'_>, v: &S<String>) -> Option<VersionSel> {
    let text = v.get_ref().as_str();
    if text == "latest" {
        return Some(VersionSel::Latest);
    }
    if let Some(n) = text.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
        if n >= 1 {
            return Some(VersionSel::Nth(n));
        }
    }
    ctx.err(
        v.span(),
        format!(
            "version {text:?}: expected \"latest\" or \"v1\", \"v2\", … (the n-th version of the key); \
             leave it out for a versionless key"
        ),
    );
    None
}

pub(super) fn workspace(
    ctx: &mut Ctx<'_>,
    name: &S<String>,
    location: &S<String>,
    retention_days: Option<&S<i64>>,
    profile: &Profile,
) -> Option<Workspace> {
    let line = ctx.line_of(&name.span());
    let checked_name = ctx.name(name, "workspace name");
    if checked_name.is_some() {
        rules::workspace_name(ctx, name);
    }
    let name = checked_name;
    let checked_location = ctx.name(location, "location");
    if checked_location.is_some() {
        rules::location(ctx, location);
    }
    let location = checked_location;
    let retention = match retention_days {
        None => Some(profile.workspace.retention_default_days),
        Some(r) => workspace_retention(ctx, r, profile),
    };
    Some(Workspace {
        name: name?,
        location: location?,
        retention_days: retention?,
        link: None,
        line,
    })
}

pub(super) fn workspace_retention(ctx: &mut Ctx<'_>, r: &S<i64>, profile: &Profile) -> Option<u32> {
    ctx.int_in(
        r,
        "retention_days",
        i64::from(profile.workspace.retention_min_days),
        i64::from(profile.workspace.retention_max_days),
    )
    .map(|v| v as u32)
}

/// `alice`, `cluster:<name>` or `Azure Cosmos DB`, checked against the defined principals and
/// clusters.
pub(super) fn principal_ref(ctx: &mut Ctx<'_>, p: &S<String>) -> PrincipalRef {
    let text = p.get_ref();
    if text == crate::model::COSMOS_DB_PRINCIPAL {
        return PrincipalRef::CosmosDb;
    }
    if let Some(account) = text.strip_prefix("storage:") {
        let span: Range<usize> = p.span();
        let offset = ctx.map.offset_in_string(&span, text, "storage:".len());
        ctx.reference_str(Kind::StorageAccount, account, offset..offset);
        return PrincipalRef::StorageAccount(account.to_string());
    }
    match text.strip_prefix("cluster:") {
        Some(cluster) => {
            let span: Range<usize> = p.span();
            let offset = ctx.map.offset_in_string(&span, text, "cluster:".len());
            ctx.reference_str(Kind::Cluster, cluster, offset..offset);
            PrincipalRef::Cluster(cluster.to_string())
        }
        None => {
            ctx.reference_str(Kind::Principal, text, p.span());
            PrincipalRef::User(text.clone())
        }
    }
}

pub(super) fn policy(
    ctx: &mut Ctx<'_>,
    vault: &S<String>,
    principal: &S<String>,
    permissions: Option<&S<Vec<S<KeyPermission>>>>,
) -> Option<AccessPolicy> {
    let vault = ctx.reference(Kind::Vault, vault);
    let principal = principal_ref(ctx, principal);
    let mut perms: Vec<KeyPermission> = Vec::new();
    let mut ok = true;
    if let Some(permissions) = permissions {
        if permissions.get_ref().is_empty() {
            ctx.err(
                permissions.span(),
                "permissions must not be empty (use remove-access-policy to take access away)",
            );
            ok = false;
        }
        for p in permissions.get_ref() {
            if perms.contains(p.get_ref()) {
                ctx.err(p.span(), "duplicate permission");
                ok = false;
            }
            perms.push(*p.get_ref());
        }
    }
    ok.then_some(AccessPolicy {
        vault,
        principal,
        permissions: perms,
    })
}
