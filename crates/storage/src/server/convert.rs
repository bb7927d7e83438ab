//! Domain values ↔ `storage.v1` messages, and wire records ↔ data-plane records.

use cmksim_proto::storage::v1 as pb;

use crate::control::{
    BillingType, Cluster, ControlPlane, LinkState, ProvisioningState, ResourceKind, ResourceName,
    Workspace,
};
use crate::data::{Record, Value};

use super::persist::StoredIdentity;

pub fn cluster_name(r: Option<&pb::ClusterRef>) -> ResourceName {
    let r = r.cloned().unwrap_or_default();
    ResourceName::new(&r.subscription_id, &r.resource_group, &r.cluster_name)
}

pub fn workspace_name(r: Option<&pb::WorkspaceRef>) -> ResourceName {
    let r = r.cloned().unwrap_or_default();
    ResourceName::new(&r.subscription_id, &r.resource_group, &r.workspace_name)
}

fn provisioning_state(s: ProvisioningState) -> &'static str {
    match s {
        ProvisioningState::ProvisioningAccount => "ProvisioningAccount",
        ProvisioningState::Succeeded => "Succeeded",
        ProvisioningState::Updating => "Updating",
        ProvisioningState::Deleting => "Deleting",
        ProvisioningState::Failed => "Failed",
    }
}

pub fn cluster_to_pb(control: &ControlPlane, c: &Cluster) -> pb::Cluster {
    pb::Cluster {
        id: c.id.clone(),
        name: c.resource.name.clone(),
        location: c.location.clone(),
        cluster_id: c.cluster_id.clone(),
        provisioning_state: provisioning_state(c.provisioning_state).to_string(),
        sku: Some(pb::Sku {
            name: c.sku.name.clone(),
            capacity_gb_per_day: c.sku.capacity_gb_per_day,
        }),
        billing_type: match c.billing_type {
            BillingType::Cluster => "Cluster",
            BillingType::Workspaces => "Workspaces",
        }
        .to_string(),
        identity: Some(pb::ClusterIdentity {
            r#type: crate::control::IDENTITY_TYPE_SYSTEM_ASSIGNED.to_string(),
            principal_id: c.identity.principal_id.clone(),
            tenant_id: c.identity.tenant_id.clone(),
        }),
        key_vault_properties: c
            .key_vault_properties
            .as_ref()
            .map(|k| pb::KeyVaultProperties {
                key_vault_uri: k.key_vault_uri.clone(),
                key_name: k.key_name.clone(),
                key_version: k.key_version.clone().unwrap_or_default(),
            }),
        is_double_encryption_enabled: c.is_double_encryption_enabled,
        associated_workspaces: control.associated_workspaces(&c.resource),
        tags: Default::default(),
        created_unix_ms: c.created_at.0,
        deleted_unix_ms: c.soft_deleted.map(|s| s.deleted_at.0),
        purge_unix_ms: c.soft_deleted.map(|s| s.purge_at.0),
    }
}

pub fn workspace_to_pb(w: &Workspace) -> pb::Workspace {
    let link_state = match &w.link {
        LinkState::Unlinked => "None",
        LinkState::Linking { .. } => "Linking",
        LinkState::Linked { .. } => "Linked",
        LinkState::Unlinking { .. } => "Unlinking",
    };
    pb::Workspace {
        id: w.id.clone(),
        name: w.resource.name.clone(),
        location: w.location.clone(),
        customer_id: customer_id(&w.resource.key(ResourceKind::Workspace)),
        retention_in_days: w.retention_days,
        locked: w.locked,
        cluster_resource_id: w.cluster_resource_id().unwrap_or_default().to_string(),
        link_state: link_state.to_string(),
    }
}

/// A stable GUID-shaped customer id derived from the workspace's key.
fn customer_id(key: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let h = hex::encode(&d.as_ref()[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The identity as a `ClusterIdentity` of the control plane.
pub fn control_identity(identity: &StoredIdentity) -> crate::control::ClusterIdentity {
    crate::control::ClusterIdentity {
        principal_id: identity.object_id.clone(),
        tenant_id: identity.tenant_id.clone(),
    }
}

/// A wire record (typed columns) as a data-plane record of `table`; `index` names it in errors.
/// A column without a value is refused (the front end never sends one: a null is an absent
/// column), and so is a name twice.
///
/// The front end sends a record's columns in name order (its record is a `BTreeMap`). Inserting
/// sorted names into a `BTreeMap` one by one compares each with every name before it (~45 string
/// comparisons for ten columns); when the names arrive strictly increasing (one comparison each)
/// the map is bulk-built from them instead. Columns in any other order are inserted one by one,
/// which also finds a repeated name to refuse.
pub fn record_from_pb(table: &str, index: usize, r: pb::Record) -> Result<Record, String> {
    use pb::value::Kind;
    let mut record = Record::new(table, r.time_unix_ms);
    let mut columns: Vec<(String, Value)> = Vec::with_capacity(r.columns.len());
    let mut increasing = true;
    for column in r.columns {
        let Some(kind) = column.value.and_then(|v| v.kind) else {
            return Err(format!(
                "record {index}: column {:?} has no value",
                cmksim_sim::text::echo(&column.name)
            ));
        };
        let value = match kind {
            Kind::StringValue(s) => Value::String(s),
            Kind::LongValue(l) => Value::Long(l),
            Kind::RealValue(f) => Value::Real(f),
            Kind::BoolValue(b) => Value::Bool(b),
            Kind::DatetimeUnixMs(t) => Value::DateTime(t),
            Kind::DynamicValue(d) => Value::Dynamic(cmksim_proto::dynamic::dynamic_to_json(&d)),
        };
        increasing = increasing && columns.last().is_none_or(|(last, _)| *last < column.name);
        columns.push((column.name, value));
    }
    if increasing {
        record.columns = columns.into_iter().collect();
        return Ok(record);
    }
    for (name, value) in columns {
        match record.columns.entry(name) {
            std::collections::btree_map::Entry::Occupied(taken) => {
                return Err(format!(
                    "record {index}: column {:?} appears twice",
                    cmksim_sim::text::echo(taken.key())
                ));
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert(value);
            }
        }
    }
    Ok(record)
}

/// A data-plane record back as a wire record.
pub fn record_to_pb(r: &Record) -> pb::Record {
    use pb::value::Kind;
    pb::Record {
        time_unix_ms: r.time_generated_ms,
        columns: r
            .columns
            .iter()
            .map(|(name, v)| {
                let kind = match v {
                    Value::String(s) => Kind::StringValue(s.clone()),
                    Value::Long(l) => Kind::LongValue(*l),
                    Value::Real(f) => Kind::RealValue(*f),
                    Value::Bool(b) => Kind::BoolValue(*b),
                    Value::DateTime(t) => Kind::DatetimeUnixMs(*t),
                    Value::Dynamic(j) => {
                        Kind::DynamicValue(cmksim_proto::dynamic::dynamic_from_json(j))
                    }
                };
                pb::Column {
                    name: name.clone(),
                    value: Some(pb::Value { kind: Some(kind) }),
                }
            })
            .collect(),
    }
}

/// The protecting key of a block as the wire says it.
pub fn protecting_key(key: &crate::data::KeyRef) -> pb::ProtectingKey {
    pb::ProtectingKey {
        key: Some(match key {
            crate::data::KeyRef::Mmk => {
                pb::protecting_key::Key::Mmk(cmksim_proto::common::v1::Empty {})
            }
            crate::data::KeyRef::Cmk { kid, version } => {
                pb::protecting_key::Key::CmkKid(format!("{kid}/{version}"))
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(columns: &[(&str, Option<i64>)]) -> pb::Record {
        pb::Record {
            time_unix_ms: 7,
            columns: columns
                .iter()
                .map(|&(name, v)| pb::Column {
                    name: name.to_string(),
                    value: v.map(|l| pb::Value {
                        kind: Some(pb::value::Kind::LongValue(l)),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn a_record_is_the_same_whatever_the_order_of_its_columns() {
        let sorted = record_from_pb(
            "T",
            0,
            wire(&[("A", Some(1)), ("B", Some(2)), ("C", Some(3))]),
        );
        let shuffled = record_from_pb(
            "T",
            0,
            wire(&[("C", Some(3)), ("A", Some(1)), ("B", Some(2))]),
        );
        let expected = Record::new("T", 7)
            .with("A", Value::Long(1))
            .with("B", Value::Long(2))
            .with("C", Value::Long(3));
        assert_eq!(sorted.unwrap(), expected);
        assert_eq!(shuffled.unwrap(), expected);
        assert_eq!(
            record_from_pb("T", 0, wire(&[])).unwrap(),
            Record::new("T", 7)
        );
    }

    #[test]
    fn a_name_twice_or_a_column_without_a_value_is_refused() {
        for columns in [
            &[("A", Some(1)), ("B", Some(2)), ("B", Some(3))][..],
            &[("B", Some(1)), ("A", Some(2)), ("B", Some(3))][..],
        ] {
            let refused = record_from_pb("T", 4, wire(columns)).unwrap_err();
            assert_eq!(refused, "record 4: column \"B\" appears twice");
        }
        let refused = record_from_pb("T", 2, wire(&[("A", Some(1)), ("B", None)])).unwrap_err();
        assert_eq!(refused, "record 2: column \"B\" has no value");
    }
}
