//! A resource's system-assigned managed identity, created by cluster storage as Azure's resource
//! providers create them: on the resource's behalf, when a caller allowed to write the resource
//! creates it (a cluster, a storage account), and in storage's own name — the identity service
//! answers `CreateManagedIdentity` only to a first-party resource provider or a directory
//! administrator (`cmksim_identity::Action::ManagedIdentitiesWrite`). One home for the call and
//! for what each refusal means to the resource's creator.

use cmksim_proto::identity::v1::identity_client::IdentityClient;
use cmksim_proto::identity::v1::CreateManagedIdentityRequest;
use tonic::{Code, Status};

use crate::service::status::azure_status;

use super::core::Core;
use super::persist::StoredIdentity;

/// Creates the system-assigned identity of the `what` (`"cluster"`, `"storage account"`) at
/// `arm_id` in `tenant`, as cluster storage's principal. Refusals: 400 `InvalidParameter` for a
/// missing or unknown tenant or a bad id; 403 `IdentityCreationRefused` (not retryable) when
/// storage has no principal or the authority refuses it; 503 `IdentityUnavailable` when the
/// authority cannot be reached.
pub async fn create(
    core: &Core,
    what: &str,
    tenant: &str,
    arm_id: &str,
) -> Result<StoredIdentity, Status> {
    if tenant.trim().is_empty() {
        return Err(azure_status(
            Code::InvalidArgument,
            "InvalidParameter",
            400,
            &format!("tenant_id is required: the tenant of the {what}'s system-assigned identity"),
        ));
    }
    if core.principal.get().is_none() {
        return Err(refused(
            what,
            "cluster storage has no principal of its own: serve it with --admin-credentials FILE \
             (the identity-admin.json Key Vault wrote), which makes its first-party principal \
             cmksim-storage at its start",
        ));
    }
    let created = IdentityClient::new(core.provider_identity.clone())
        .create_managed_identity(CreateManagedIdentityRequest {
            tenant_id: tenant.to_string(),
            resource_id: arm_id.to_string(),
        })
        .await
        .map_err(|s| match s.code() {
            Code::NotFound | Code::InvalidArgument => azure_status(
                Code::InvalidArgument,
                "InvalidParameter",
                400,
                &format!("the {what} identity could not be created: {}", s.message()),
            ),
            Code::Unauthenticated | Code::PermissionDenied => refused(
                what,
                &format!(
                    "the identity authority refused cluster storage's principal: {}",
                    s.message()
                ),
            ),
            _ => azure_status(
                Code::Unavailable,
                "IdentityUnavailable",
                503,
                &format!(
                    "the identity authority could not be reached: {}",
                    s.message()
                ),
            ),
        })?
        .into_inner();
    let principal = created.principal.unwrap_or_default();
    Ok(StoredIdentity {
        object_id: principal.object_id,
        tenant_id: if principal.tenant_id.is_empty() {
            tenant.to_string()
        } else {
            principal.tenant_id
        },
        secret: created.secret,
    })
}

fn refused(what: &str, why: &str) -> Status {
    azure_status(
        Code::FailedPrecondition,
        "IdentityCreationRefused",
        403,
        &format!("the {what} identity could not be created: {why}"),
    )
}
