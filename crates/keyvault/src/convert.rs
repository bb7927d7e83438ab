//! Domain ↔ protobuf. Only public data crosses here: a [`KeyView`] becomes a JWK with `n`/`e` or
//! `crv`/`x`/`y`, never the sealed material or the HSM handle.

use cmksim_proto::keyvault::v1 as pb;

use crate::errors::KvError;
use crate::keys::KeyView;
use crate::model::{AccessPolicy, Deletion, PublicKey, Sku, Vault};
use crate::validate;

/// The proto SKU.
pub fn sku_to_pb(sku: Sku) -> pb::Sku {
    match sku {
        Sku::Standard => pb::Sku::Standard,
        Sku::Premium => pb::Sku::Premium,
    }
}

/// A request's SKU (unspecified = standard).
pub fn sku_from_pb(value: i32) -> Result<Sku, KvError> {
    match pb::Sku::try_from(value) {
        Ok(pb::Sku::Unspecified) | Ok(pb::Sku::Standard) => Ok(Sku::Standard),
        Ok(pb::Sku::Premium) => Ok(Sku::Premium),
        Err(_) => Err(KvError::BadRequest {
            message: format!("Invalid SKU {value}: expected standard or premium."),
        }),
    }
}

/// A vault.
pub fn vault_to_pb(v: &Vault) -> pb::Vault {
    pb::Vault {
        name: v.name.clone(),
        vault_uri: v.uri(),
        location: v.location.clone(),
        tenant_id: v.tenant_id.clone(),
        sku: sku_to_pb(v.sku) as i32,
        enable_soft_delete: v.enable_soft_delete,
        soft_delete_retention_in_days: v.soft_delete_retention_days,
        enable_purge_protection: v.enable_purge_protection,
        access_policies: v
            .access_policies
            .values()
            .map(|p| pb::AccessPolicy {
                tenant_id: p.tenant_id.clone(),
                object_id: p.object_id.clone(),
                key_permissions: p
                    .key_permissions
                    .iter()
                    .map(|k| k.as_str().to_string())
                    .collect(),
            })
            .collect(),
        subscription_id: v.subscription_id.clone(),
        resource_group: v.resource_group.clone(),
    }
}

/// A deleted vault.
pub fn deleted_vault_to_pb(v: &Vault, d: Deletion) -> pb::DeletedVault {
    pb::DeletedVault {
        vault: Some(vault_to_pb(v)),
        deleted_date_unix_ms: d.deleted_ms,
        scheduled_purge_date_unix_ms: d.scheduled_purge_ms,
    }
}

/// An access policy from a request.
pub fn policy_from_pb(p: &pb::AccessPolicy) -> Result<AccessPolicy, KvError> {
    Ok(AccessPolicy {
        tenant_id: p.tenant_id.clone(),
        object_id: p.object_id.clone(),
        key_permissions: validate::permissions(&p.key_permissions)?,
    })
}

/// A key version, public parts only.
pub fn key_to_pb(view: &KeyView) -> pb::KeyBundle {
    let v = &view.version;
    let mut jwk = pb::JsonWebKey {
        kid: view.kid(),
        kty: v.kty.as_str().to_string(),
        key_ops: v.key_ops.iter().map(|o| o.as_str().to_string()).collect(),
        ..Default::default()
    };
    match &v.public {
        PublicKey::Rsa { n, e } => {
            jwk.n = n.clone();
            jwk.e = e.clone();
        }
        PublicKey::Ec { x, y } => {
            jwk.crv = "P-256".into();
            jwk.x = x.clone();
            jwk.y = y.clone();
        }
    }
    pb::KeyBundle {
        key: Some(jwk),
        attributes: Some(pb::KeyAttributes {
            enabled: v.enabled,
            nbf_unix_ms: v.nbf_ms,
            exp_unix_ms: v.exp_ms,
            created_unix_ms: v.created_ms,
            updated_unix_ms: v.updated_ms,
            recovery_level: view.recovery_level.to_string(),
            recoverable_days: view.recoverable_days,
        }),
        tags: v.tags.clone().into_iter().collect(),
        hsm: v.kty.is_hsm(),
    }
}

/// A deleted key.
pub fn deleted_key_to_pb(view: &KeyView) -> pb::DeletedKeyBundle {
    let d = view.deleted.unwrap_or(Deletion {
        deleted_ms: 0,
        scheduled_purge_ms: 0,
    });
    pb::DeletedKeyBundle {
        key: Some(key_to_pb(view)),
        recovery_id: view.recovery_id(),
        deleted_date_unix_ms: d.deleted_ms,
        scheduled_purge_date_unix_ms: d.scheduled_purge_ms,
    }
}
