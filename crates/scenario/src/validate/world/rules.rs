//! The services' own rules, applied at the line that declares the entity.
//!
//! A file that validates must not be refused by a service at world set-up. The predicates are the
//! services' own ([`cmksim_sim::rules`]: one copy, shared); only the reporting is here: each error
//! sits at the entity's span and repeats the service's wording where it has one. A name that
//! breaks a service rule still defines its entity, so that no invented follow-on error ("unknown
//! cluster") hides the real one.
//!
//! Cross-entity rules (a cluster key in a vault without purge protection, an HSM key in a
//! standard vault, a version the key cannot have yet, regions that differ) are checked from the
//! file's own declarations of the world, which is what set-up creates.

use cmksim_sim::profile::ClusterProfile;
use cmksim_sim::rules::{self, CapacityRule, ClusterCountRule};

use super::super::Ctx;
use crate::model::{KeyType, Sku, VersionSel, World};
use crate::raw::{RawFile, S};
use cmksim_sim::Profile;

/// Region names shown in the hint of an unknown location.
const REGION_EXAMPLES: &str = "westeurope, northeurope, eastus, westus2, swedencentral";

/// Storage's rule for cluster names (seed 000/001).
pub(super) fn cluster_name(ctx: &mut Ctx<'_>, name: &S<String>) {
    if !rules::is_valid_cluster_name(name.get_ref()) {
        ctx.err(
            name.span(),
            format!(
                "cluster name {:?}: Cluster name is not valid. Cluster name can contain characters \
                 a-z, A-Z, 0-9 and length of 3-63.",
                name.get_ref()
            ),
        );
    }
}

/// Storage's rule for workspace names.
pub(super) fn workspace_name(ctx: &mut Ctx<'_>, name: &S<String>) {
    if !rules::is_valid_workspace_name(name.get_ref()) {
        ctx.err(
            name.span(),
            format!(
                "workspace name {:?}: Workspace name can contain characters a-z, A-Z, 0-9 and '-', \
                 must start and end with a letter or digit, and have a length of 4-63.",
                name.get_ref()
            ),
        );
    }
}

/// Key Vault's rule for vault names.
pub(super) fn vault_name(ctx: &mut Ctx<'_>, name: &S<String>) {
    if !rules::is_valid_vault_name(name.get_ref()) {
        ctx.err(
            name.span(),
            format!(
                "vault name {:?}: A vault's name must be between 3-24 alphanumeric characters. The \
                 name must begin with a letter, end with a letter or digit, and not contain \
                 consecutive hyphens.",
                name.get_ref()
            ),
        );
    }
}

/// Key Vault's rule for key names.
pub(super) fn key_name(ctx: &mut Ctx<'_>, name: &S<String>) {
    if !rules::is_valid_key_name(name.get_ref()) {
        ctx.err(
            name.span(),
            format!(
                "key name {:?}: a key name is 1-{} letters, digits and hyphens",
                name.get_ref(),
                rules::KEY_NAME_LEN_MAX_CHARS
            ),
        );
    }
}

/// A `location` must name an Azure region.
pub(super) fn location(ctx: &mut Ctx<'_>, location: &S<String>) {
    if !rules::is_azure_region(location.get_ref()) {
        ctx.err(
            location.span(),
            format!(
                "location {:?} is not an Azure region (e.g. {REGION_EXAMPLES}: the region names of \
                 ARM, lowercase without spaces)",
                location.get_ref()
            ),
        );
    }
}

/// Storage's capacity rule, with the range and step of the scenario's profile.
pub(super) fn capacity(
    ctx: &mut Ctx<'_>,
    span: &S<i64>,
    capacity_gb_per_day: u32,
    profile: &ClusterProfile,
) {
    match rules::capacity_rule(profile, capacity_gb_per_day) {
        Ok(()) => {}
        Err(CapacityRule::OutOfRange) => ctx.err(
            span.span(),
            format!(
                "capacity {capacity_gb_per_day}: Capacity in SKU is not in range (this profile \
                 allows {} to {} GB per day)",
                profile.capacity_min_gb_per_day, profile.capacity_max_gb_per_day
            ),
        ),
        Err(CapacityRule::NotOnStep) => ctx.err(
            span.span(),
            format!(
                "capacity {capacity_gb_per_day}: Capacity in SKU is not a multiple of {step}. Set \
                 Capacity value in steps of {step} (GB).",
                step = profile.capacity_step_gb_per_day
            ),
        ),
    }
}

/// Seed 001: a cluster with double encryption (the profile's default, or asked for) in a region
/// of the profile's `double_encryption_unsupported_regions` is refused: "<region> doesn’t support
/// Double Encryption for clusters." The error sits at `double_encryption` when the file sets it,
/// else at the location, and says the seed's remedy.
pub(super) fn double_encryption(
    ctx: &mut Ctx<'_>,
    location: &S<String>,
    double_encryption: Option<&S<bool>>,
    profile: &ClusterProfile,
) {
    let enabled = double_encryption
        .map(|d| *d.get_ref())
        .unwrap_or(profile.double_encryption_default);
    if enabled && !profile.double_encryption_supported(location.get_ref()) {
        let span = double_encryption
            .map(|d| d.span())
            .unwrap_or_else(|| location.span());
        ctx.err(
            span,
            format!(
                "{} doesn’t support Double Encryption for clusters. (set double_encryption = \
                 false: this profile lists the region without double encryption)",
                cmksim_sim::text::echo(location.get_ref())
            ),
        );
    }
}

/// The rules between entities of the world, at the declaration that breaks them.
pub(super) fn cross_entity(ctx: &mut Ctx<'_>, raw: &RawFile, world: &World) {
    for k in &raw.keys {
        let k = k.get_ref();
        let kty: KeyType = *k.kty.get_ref();
        let Some(vault) = world.vaults.iter().find(|v| v.name == *k.vault.get_ref()) else {
            continue;
        };
        if !rules::key_type_allowed_in_vault(kty.is_hsm(), vault.sku == Sku::Premium) {
            ctx.err(
                k.kty.span(),
                format!(
                    "Key type {} is not supported by the standard SKU of vault '{}'. \
                     HSM-protected keys require the premium SKU (sku = \"premium\" on the vault).",
                    kty.as_str(),
                    vault.name
                ),
            );
        }
    }
    for c in &raw.clusters {
        let c = c.get_ref();
        let Some(key) = &c.key else {
            continue;
        };
        let key = key.get_ref();
        let Some(vault) = world.vaults.iter().find(|v| v.name == *key.vault.get_ref()) else {
            continue;
        };
        if !rules::is_key_recoverable(vault.soft_delete, vault.purge_protection) {
            ctx.err(
                key.vault.span(),
                format!(
                    "Key is not recoverable. Key Vault must be set to Soft-delete and \
                     Purge-protection: vault `{}` has soft_delete = {}, purge_protection = {}",
                    vault.name, vault.soft_delete, vault.purge_protection
                ),
            );
        }
        if !rules::same_region(&vault.location, c.location.get_ref()) {
            ctx.err(
                key.vault.span(),
                format!(
                    "vault `{}` is in {}, cluster `{}` in {}: the vault, the cluster and its \
                     workspaces must be in the same region",
                    vault.name,
                    vault.location,
                    c.name.get_ref(),
                    c.location.get_ref()
                ),
            );
        }
        let version = world
            .clusters
            .iter()
            .find(|w| w.name == *c.name.get_ref())
            .and_then(|w| w.key.as_ref())
            .map(|k| k.version);
        if let (Some(VersionSel::Nth(n)), Some(v)) = (version, &key.version) {
            if n > 1 {
                ctx.err(
                    v.span(),
                    format!(
                        "version {:?}: key `{}` has one version when the world is set up (v1); \
                         rotate it in the timeline and name v{n} in an update-cluster step",
                        v.get_ref(),
                        key.name.get_ref()
                    ),
                );
            }
        }
    }
    for w in &raw.workspaces {
        let w = w.get_ref();
        let Some(link) = &w.link else {
            continue;
        };
        let Some(cluster) = world.clusters.iter().find(|c| c.name == *link.get_ref()) else {
            continue;
        };
        if !rules::same_region(w.location.get_ref(), &cluster.location) {
            ctx.err(
                link.span(),
                format!(
                    "Workspace region '{}' differs from cluster region '{}'. Only workspaces in \
                     the cluster's region can be linked to it.",
                    w.location.get_ref(),
                    cluster.location
                ),
            );
        }
    }
}

/// Storage's cluster limits ([`rules::cluster_count_rule`], counted by [`rules::count_clusters`])
/// over the world's clusters in declaration order, as set-up creates them: the first cluster
/// over a limit gets storage's message at its name.
pub(super) fn cluster_counts(ctx: &mut Ctx<'_>, raw: &RawFile, world: &World, profile: &Profile) {
    let mut created: Vec<(&str, &str)> = Vec::new();
    for c in &raw.clusters {
        let c = c.get_ref();
        let Some(cluster) = world.clusters.iter().find(|w| w.name == *c.name.get_ref()) else {
            continue;
        };
        let (subscription, location) = (cluster.subscription.as_str(), cluster.location.as_str());
        let counts = rules::count_clusters(
            created.iter().map(|&(s, l)| (s, l, false)),
            subscription,
            location,
        );
        let message = match rules::cluster_count_rule(&profile.cluster, counts, true) {
            Ok(()) => {
                created.push((subscription, location));
                continue;
            }
            Err(ClusterCountRule::ActivePerRegion { max }) => format!(
                "cluster {:?}: The max number of active clusters per region and subscription is \
                 {max}. Subscription '{subscription}' already has {max} active clusters in region \
                 '{location}'. Delete a cluster or use another region or subscription.",
                cluster.name
            ),
            Err(ClusterCountRule::ReservedPerRegion { max }) => format!(
                "cluster {:?}: The max number of reserved clusters (active or recently deleted) \
                 per region and subscription is {max}. Subscription '{subscription}' already has \
                 {max} reserved clusters in region '{location}'.",
                cluster.name
            ),
            Err(ClusterCountRule::ReservedPerSubscription { max }) => format!(
                "cluster {:?}: There is a limit of {max} clusters per subscription, active and \
                 soft-deleted counted together. Subscription '{subscription}' already has {max}.",
                cluster.name
            ),
        };
        ctx.err(c.name.span(), message);
    }
}
