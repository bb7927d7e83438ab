//! The catalogue of every error Key Vault answers, with its Azure code, inner code, HTTP status
//! and exact message.
//!
//! One enum, [`KvError`], so that the domain returns typed errors and the gRPC edge (and a later
//! REST facade) renders the same body Azure would: `{"error":{"code","message","innererror"}}`.
//! [`KvError::azure`] gives that body; [`KvError::grpc_code`] the status code it travels under.
//!
//! Names from the request (vault, key, resource group, token claims) are repeated through
//! [`cmksim_sim::text::echo`], at most [`cmksim_sim::text::ECHO_CHARS_MAX`] characters each.
//!
//! # Sources of the strings
//! Each message was taken from a real service response found in public material (searched
//! 2026 in the code/issues corpora); where none was found the message is marked *simulator
//! wording* and follows the style of its neighbours.
//! - `KeyNotFound` (404): "A key with (name/id) {name} was not found in this key vault. If you
//!   recently deleted this key you may be able to recover it using the correct recovery command.
//!   For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
//!   — Azure/azure-sdk-for-cpp `sdk/keyvault/.../test/ut/key_client_delete_test_live.cpp`
//!   (`GetNotFoundErrorMsg`) and azure-sdk-for-js keyvault-keys recordings.
//! - Deleted key not found (404 `KeyNotFound`): "Deleted Key not found: {name}" — azure-sdk-for-js
//!   keyvault-keys recordings (`GET /deletedkeys/...` → 404).
//! - `Conflict`/`ObjectIsDeletedButRecoverable` (409): "Key {name} is currently in a deleted but
//!   recoverable state, and its name cannot be reused; in this state, the key can only be
//!   recovered or purged." — azure-sdk-for-cpp `GetConflictErrorMsg`; the inner code from the
//!   azure-sdk-for-net secrets sample (`error.InnerError.Code == "ObjectIsDeletedButRecoverable"`).
//! - `Forbidden`/`AccessDenied` (403): "The user, group or application
//!   'appid={appid};oid={oid};iss={iss}' does not have keys {permission} permission on key vault
//!   '{vault};location={location}'. For help resolving this issue, please see
//!   https://go.microsoft.com/fwlink/?linkid=2125287" — real bodies quoted in public
//!   troubleshooting notes (the secrets variant, same template, innererror `AccessDenied`).
//! - `Forbidden`/`KeyDisabled` (403): "Operation {op} is not allowed on a disabled key." — quoted
//!   in public Key Vault client code and test doubles (e.g. `Operation unwrapKey is not allowed on
//!   a disabled key.`, inner code `KeyDisabled`).
//! - `Forbidden`/`KeyOperationForbidden` (403): "Operation {op} is not permitted on this key." —
//!   Azure SDK `TROUBLESHOOTING.md` for Key Vault ("Operation Not Permitted"). Azure's top-level
//!   code is `Forbidden`; `KeyOperationForbidden` is the inner code.
//! - Outside nbf/exp (403 `Forbidden`, inner `KeyNotYetValidOrExpired`): "Operation {op} is not
//!   allowed outside the key's validity period." — *simulator wording*.
//! - Purge under purge protection (403 `Forbidden`): "Operation \"purge\" is not allowed because
//!   purge protection is enabled for this vault. Key Vault service will automatically purge it
//!   after the retention period has passed. Vault: {vault};location={location}" — a real
//!   response quoted in a public Terraform file (`PurgeDeletedCertificate` → 403).
//! - 401 `Unauthorized`, data plane: "AKV10000: Request is missing a Bearer or PoP token."
//!   (azure-sdk-for-js recordings); "AKV10022: Invalid audience. Expected
//!   https://vault.azure.net, found: {aud}." (go-autorest issue #525, azure-docs issue #109562);
//!   "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tid}/, found
//!   https://sts.windows.net/{other}/." (azure-sdk-for-net `ChallengeBasedAuthenticationPolicyTests`);
//!   "[TokenExpired] Error validating token: 'S2S12086'." (public reports of the real 401);
//!   "AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader:
//!   '{header}'." (terraform-provider-azurerm issue #30912); "Token not yet valid"
//!   (azure-sdk-for-java issue #26624). A bad signature and a malformed token: *simulator
//!   wording* ("AKV10000: Token validation failed: ...").
//! - 401, management plane (ARM): `AuthenticationFailed` "Authentication failed. The
//!   'Authorization' header is missing."; `InvalidAuthenticationTokenAudience` "The access token
//!   has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of
//!   the allowed audiences 'https://management.core.windows.net/',..."; `ExpiredAuthenticationToken`
//!   "The access token expiry UTC time '{exp}' is earlier than current UTC time '{now}'." (all
//!   quoted in public issues and docs); `InvalidAuthenticationTokenTenant` "The access token is
//!   from the wrong issuer '{iss}'. It must match the tenant '{expected}' associated with this
//!   subscription. ..." (recalled ARM wording; not found verbatim in the corpora).
//! - Vaults (ARM): `VaultAlreadyExists` "The vault name '{name}' is already in use. Vault names
//!   are globally unique so it is possible that the name is already taken."; `ConflictError`
//!   "Exist soft deleted vault with the same name."; `VaultNameNotValid` "The vault name '{name}'
//!   is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin
//!   with a letter, end with a letter or digit, and not contain consecutive hyphens." (all quoted
//!   in public deployment logs); `BadRequest` "The property \"enablePurgeProtection\" cannot be set
//!   to false. Enabling the purge protection for a vault is an irreversible action." and "The
//!   property \"enableSoftDelete\" can be set to false only for creating new vault. Enabling the
//!   'soft delete' functionality is an irreversible action." (ARM spec notes quoted in public
//!   repositories); `ResourceNotFound` "The Resource 'Microsoft.KeyVault/vaults/{name}' under
//!   resource group '{rg}' was not found. For more details please go to
//!   https://aka.ms/ARMResourceNotFoundFix" (ARM's standard text). Retention out of range, SKU
//!   without HSM support, bad key parameters: *simulator wording*.
//! - Chaos: 503 `ServiceUnavailable` (*simulator wording*), 429 `Throttled` "Request was not
//!   processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
//!   (quoted in public Key Vault client test doubles).
//! - HSM faults (*simulator wording*: Azure documents no body for either case). A device error
//!   (`CKR_DEVICE_ERROR`) is a server-side failure worth retrying: 500 `InternalError`, inner
//!   `HSMDeviceError`, "The HSM holding key {key} reported a device error during {call}; the
//!   operation was not performed. Retry later." (gRPC INTERNAL). After a tamper response the
//!   key's material no longer exists anywhere: 500 `InternalError`, inner
//!   `HSMKeyMaterialDestroyed`, "The key material of {key} was destroyed: the HSM that held it
//!   was zeroised after detecting tampering. HSM-protected keys never leave the HSM, so there is
//!   no copy; this key can never be used for a cryptographic operation again." It travels as
//!   gRPC DATA_LOSS (the HTTP 500 family, "unrecoverable data loss"), so that a client which
//!   reads only the gRPC code does not retry it as a transient 500.

use cmksim_sim::text::echo;
use tonic::Code;

/// The body an Azure service would return for an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureErrorBody {
    pub code: &'static str,
    pub inner_code: &'static str,
    pub http_status: u16,
    pub message: String,
}

/// Which plane a token was presented to: data-plane (vault.azure.net) errors are AKV-style,
/// management (ARM) errors are ARM-style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    Data,
    Management,
}

/// Who was refused what, for the AccessDenied message (boxed: it is the largest variant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessDenied {
    pub app_id: String,
    pub object_id: String,
    pub issuer: String,
    pub permission: String,
    pub vault: String,
    pub location: String,
}

/// Every error Key Vault answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    // ---- 401: tokens ----
    #[error("missing bearer token")]
    MissingToken { plane: Plane },
    #[error("malformed token: {reason}")]
    MalformedToken { plane: Plane, reason: String },
    #[error("unknown signing key")]
    UnknownSigningKey {
        plane: Plane,
        encoded_header: String,
    },
    #[error("invalid token signature")]
    InvalidSignature { plane: Plane },
    #[error("invalid audience {found}")]
    InvalidAudience { plane: Plane, found: String },
    #[error("invalid issuer {found_issuer}")]
    InvalidIssuer {
        plane: Plane,
        expected_tenant: String,
        found_issuer: String,
    },
    #[error("token expired")]
    TokenExpired {
        plane: Plane,
        exp_unix_s: i64,
        now_unix_s: i64,
    },
    #[error("token not yet valid")]
    TokenNotYetValid { plane: Plane },

    // ---- 403 ----
    #[error("access denied")]
    AccessDenied(Box<AccessDenied>),
    #[error("key disabled")]
    KeyDisabled { operation: String },
    #[error("key operation forbidden")]
    KeyOperationForbidden { operation: String },
    #[error("outside validity period")]
    KeyNotYetValidOrExpired { operation: String },
    #[error("purge protection")]
    PurgeProtected { vault: String, location: String },

    // ---- 404 ----
    #[error("key not found")]
    KeyNotFound { name_id: String },
    #[error("deleted key not found")]
    DeletedKeyNotFound { name: String },
    #[error("vault not found")]
    VaultNotFound {
        name: String,
        resource_group: String,
    },
    #[error("deleted vault not found")]
    DeletedVaultNotFound { name: String },

    // ---- 409 ----
    #[error("key is deleted but recoverable")]
    KeyDeletedButRecoverable { name: String },
    #[error("vault already exists")]
    VaultAlreadyExists { name: String },
    #[error("soft-deleted vault with the same name")]
    VaultDeletedButRecoverable { name: String },

    // ---- 400 ----
    #[error("invalid vault name")]
    VaultNameNotValid { name: String },
    #[error("soft delete cannot be turned off")]
    SoftDeleteCannotBeDisabled,
    #[error("purge protection cannot be turned off")]
    PurgeProtectionCannotBeDisabled,
    #[error("retention out of range")]
    RetentionOutOfRange { days: u32 },
    /// ARM's refusal of a location that is no Azure region (`cmksim_sim::rules`).
    #[error("location {location:?} is no Azure region")]
    LocationNotAvailable { location: String },
    #[error("bad parameter: {message}")]
    BadParameter { message: String },
    #[error("bad vault parameter: {message}")]
    BadRequest { message: String },
    #[error("HSM keys need premium")]
    HsmRequiresPremium { kty: String, vault: String },

    // ---- chaos / infrastructure ----
    #[error("service unavailable")]
    ServiceUnavailable,
    #[error("throttled")]
    Throttled { retry_after_seconds: u32 },
    #[error("internal error: {message}")]
    Internal { message: String },
    #[error("HSM device error during {call}")]
    HsmDeviceError { key: String, call: String },
    #[error("key material of {key} destroyed")]
    KeyMaterialDestroyed { key: String },
}

/// The inner code of [`KvError::KeyMaterialDestroyed`] (clients match on it).
pub const INNER_KEY_MATERIAL_DESTROYED: &str = "HSMKeyMaterialDestroyed";
/// The inner code of [`KvError::HsmDeviceError`].
pub const INNER_HSM_DEVICE_ERROR: &str = "HSMDeviceError";

const ARM_AUDIENCES: &str = "'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'";

/// `M/d/yyyy h:mm:ss tt` in UTC, the .NET form ARM prints times in.
fn dotnet_time(unix_s: i64) -> String {
    let iso = cmksim_sim::SimTime(unix_s * 1000).to_rfc3339();
    // iso = YYYY-MM-DDTHH:MM:SS.mmmZ
    let year = &iso[0..4];
    let month: u32 = iso[5..7].parse().unwrap_or(0);
    let day: u32 = iso[8..10].parse().unwrap_or(0);
    let hour: u32 = iso[11..13].parse().unwrap_or(0);
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!(
        "{month}/{day}/{year} {h12}:{}:{} {ampm}",
        &iso[14..16],
        &iso[17..19]
    )
}

impl KvError {
    /// The Azure error body of this error.
    pub fn azure(&self) -> AzureErrorBody {
        use KvError::*;
        let body = |code, inner_code, http_status, message: String| AzureErrorBody {
            code,
            inner_code,
            http_status,
            message,
        };
        match self {
            MissingToken { plane: Plane::Data } => body(
                "Unauthorized",
                "",
                401,
                "AKV10000: Request is missing a Bearer or PoP token.".into(),
            ),
            MissingToken {
                plane: Plane::Management,
            } => body(
                "AuthenticationFailed",
                "",
                401,
                "Authentication failed. The 'Authorization' header is missing.".into(),
            ),
            MalformedToken { plane, reason } => match plane {
                Plane::Data => body(
                    "Unauthorized",
                    "",
                    401,
                    format!("AKV10000: Token validation failed: {reason}."),
                ),
                Plane::Management => body(
                    "InvalidAuthenticationToken",
                    "",
                    401,
                    "The access token is invalid.".into(),
                ),
            },
            UnknownSigningKey {
                encoded_header, ..
            } => body(
                "Unauthorized",
                "",
                401,
                format!(
                    "AKV10046: Unable to resolve the key used for signature validation. EncodedJwtHeader: '{encoded_header}'."
                ),
            ),
            InvalidSignature { plane } => match plane {
                Plane::Data => body(
                    "Unauthorized",
                    "",
                    401,
                    "AKV10000: Token validation failed: the token signature is invalid.".into(),
                ),
                Plane::Management => body(
                    "InvalidAuthenticationToken",
                    "",
                    401,
                    "The access token is invalid.".into(),
                ),
            },
            InvalidAudience { plane, found } => match plane {
                Plane::Data => body(
                    "Unauthorized",
                    "",
                    401,
                    format!("AKV10022: Invalid audience. Expected https://vault.azure.net, found: {found}.", found = echo(found)),
                ),
                Plane::Management => body(
                    "InvalidAuthenticationTokenAudience",
                    "",
                    401,
                    format!("The access token has been obtained for wrong audience or resource '{found}'. It should exactly match with one of the allowed audiences {ARM_AUDIENCES}.", found = echo(found)),
                ),
            },
            InvalidIssuer {
                plane,
                expected_tenant,
                found_issuer,
            } => match plane {
                Plane::Data => body(
                    "Unauthorized",
                    "",
                    401,
                    format!("AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{expected_tenant}/, found {found_issuer}.", found_issuer = echo(found_issuer), expected_tenant = echo(expected_tenant)),
                ),
                Plane::Management => body(
                    "InvalidAuthenticationTokenTenant",
                    "",
                    401,
                    format!("The access token is from the wrong issuer '{found_issuer}'. It must match the tenant 'https://sts.windows.net/{expected_tenant}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{expected_tenant}' to get the token.", found_issuer = echo(found_issuer), expected_tenant = echo(expected_tenant)),
                ),
            },
            TokenExpired {
                plane,
                exp_unix_s,
                now_unix_s,
            } => match plane {
                Plane::Data => body(
                    "Unauthorized",
                    "",
                    401,
                    "[TokenExpired] Error validating token: 'S2S12086'.".into(),
                ),
                Plane::Management => body(
                    "ExpiredAuthenticationToken",
                    "",
                    401,
                    format!(
                        "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                        dotnet_time(*exp_unix_s),
                        dotnet_time(*now_unix_s)
                    ),
                ),
            },
            TokenNotYetValid { .. } => body("Unauthorized", "", 401, "Token not yet valid".into()),
            AccessDenied(denied) => body(
                "Forbidden",
                "AccessDenied",
                403,
                format!(
                    "The user, group or application 'appid={};oid={};iss={}' does not have keys {} permission on key vault '{};location={}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    denied.app_id, denied.object_id, denied.issuer, denied.permission, denied.vault, denied.location
                ),
            ),
            KeyDisabled { operation } => body(
                "Forbidden",
                "KeyDisabled",
                403,
                format!("Operation {operation} is not allowed on a disabled key."),
            ),
            KeyOperationForbidden { operation } => body(
                "Forbidden",
                "KeyOperationForbidden",
                403,
                format!("Operation {operation} is not permitted on this key."),
            ),
            KeyNotYetValidOrExpired { operation } => body(
                "Forbidden",
                "KeyNotYetValidOrExpired",
                403,
                format!("Operation {operation} is not allowed outside the key's validity period."),
            ),
            PurgeProtected { vault, location } => body(
                "Forbidden",
                "",
                403,
                format!("Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed. Vault: {vault};location={location}", vault = echo(vault), location = echo(location)),
            ),
            KeyNotFound { name_id } => body(
                "KeyNotFound",
                "",
                404,
                format!("A key with (name/id) {name_id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name_id = echo(name_id)),
            ),
            DeletedKeyNotFound { name } => {
                body("KeyNotFound", "", 404, format!("Deleted Key not found: {name}", name = echo(name)))
            }
            VaultNotFound {
                name,
                resource_group,
            } => body(
                "ResourceNotFound",
                "",
                404,
                format!("The Resource 'Microsoft.KeyVault/vaults/{name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name = echo(name), resource_group = echo(resource_group)),
            ),
            DeletedVaultNotFound { name } => body(
                "ResourceNotFound",
                "",
                404,
                format!("The Resource 'Microsoft.KeyVault/deletedVaults/{name}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name = echo(name)),
            ),
            KeyDeletedButRecoverable { name } => body(
                "Conflict",
                "ObjectIsDeletedButRecoverable",
                409,
                format!("Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", name = echo(name)),
            ),
            VaultAlreadyExists { name } => body(
                "VaultAlreadyExists",
                "",
                409,
                format!("The vault name '{name}' is already in use. Vault names are globally unique so it is possible that the name is already taken.", name = echo(name)),
            ),
            VaultDeletedButRecoverable { .. } => body(
                "ConflictError",
                "",
                409,
                "Exist soft deleted vault with the same name.".into(),
            ),
            VaultNameNotValid { name } => body(
                "VaultNameNotValid",
                "",
                400,
                format!("The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", name = echo(name)),
            ),
            SoftDeleteCannotBeDisabled => body(
                "BadRequest",
                "",
                400,
                "The property \"enableSoftDelete\" can be set to false only for creating new vault. Enabling the 'soft delete' functionality is an irreversible action.".into(),
            ),
            PurgeProtectionCannotBeDisabled => body(
                "BadRequest",
                "",
                400,
                "The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.".into(),
            ),
            RetentionOutOfRange { days } => body(
                "BadRequest",
                "",
                400,
                format!("The property \"softDeleteRetentionInDays\" has an invalid value {days}. It must be between 7 and 90 days."),
            ),
            BadParameter { message } => body("BadParameter", "", 400, message.clone()),
            LocationNotAvailable { location } => body(
                "LocationNotAvailableForResourceType",
                "",
                400,
                format!(
                    "The provided location '{}' is not available for resource type \
                     'Microsoft.KeyVault/vaults'. List of available regions for the resource \
                     type is '{}'.",
                    cmksim_sim::text::echo(location),
                    cmksim_sim::rules::AZURE_REGIONS.join(",")
                ),
            ),
            BadRequest { message } => body("BadRequest", "", 400, message.clone()),
            HsmRequiresPremium { kty, vault } => body(
                "BadParameter",
                "",
                400,
                format!("Key type {kty} is not supported by the standard SKU of vault '{vault}'. HSM-protected keys require the premium SKU.", vault = echo(vault), kty = echo(kty)),
            ),
            ServiceUnavailable => body(
                "ServiceUnavailable",
                "",
                503,
                "The service is temporarily unavailable. Please retry later.".into(),
            ),
            Throttled { .. } => body(
                "Throttled",
                "",
                429,
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached".into(),
            ),
            Internal { message } => body("InternalError", "", 500, message.clone()),
            HsmDeviceError { key, call } => body(
                "InternalError",
                INNER_HSM_DEVICE_ERROR,
                500,
                format!("The HSM holding key {key} reported a device error during {call}; the operation was not performed. Retry later.", key = echo(key)),
            ),
            KeyMaterialDestroyed { key } => body(
                "InternalError",
                INNER_KEY_MATERIAL_DESTROYED,
                500,
                format!("The key material of {key} was destroyed: the HSM that held it was zeroised after detecting tampering. HSM-protected keys never leave the HSM, so there is no copy; this key can never be used for a cryptographic operation again.", key = echo(key)),
            ),
        }
    }

    /// The gRPC code this error travels under.
    pub fn grpc_code(&self) -> Code {
        if let KvError::KeyMaterialDestroyed { .. } = self {
            return Code::DataLoss;
        }
        match self.azure().http_status {
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            // Every 403 (missing permission, disabled key, forbidden operation, purge
            // protection) is a denial a caller must not retry: one code, told apart by the
            // Azure code and inner code in the details.
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::AlreadyExists,
            429 => Code::ResourceExhausted,
            503 => Code::Unavailable,
            _ => Code::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotnet_time_format() {
        // 2020-07-05T13:04:05Z
        assert_eq!(dotnet_time(1_593_954_245), "7/5/2020 1:04:05 PM");
        assert_eq!(dotnet_time(1_593_907_200), "7/5/2020 12:00:00 AM");
    }

    #[test]
    fn codes_and_statuses() {
        let e = KvError::KeyNotFound {
            name_id: "k".into(),
        };
        assert_eq!(e.azure().http_status, 404);
        assert_eq!(e.grpc_code(), Code::NotFound);
        let e = KvError::AccessDenied(Box::new(AccessDenied {
            app_id: "a".into(),
            object_id: "o".into(),
            issuer: "https://sts.windows.net/t/".into(),
            permission: "unwrapKey".into(),
            vault: "v".into(),
            location: "eastus".into(),
        }));
        assert_eq!(e.grpc_code(), Code::PermissionDenied);
        assert_eq!(e.azure().inner_code, "AccessDenied");
        assert_eq!(
            KvError::KeyDisabled {
                operation: "unwrapKey".into()
            }
            .grpc_code(),
            Code::PermissionDenied
        );
    }

    #[test]
    fn echoed_names_are_cut_to_a_stated_length() {
        let long = "v".repeat(1_000_000);
        for e in [
            KvError::VaultNameNotValid { name: long.clone() },
            KvError::KeyNotFound { name_id: long },
        ] {
            let message = e.azure().message;
            assert!(message.len() < 1_000, "{} bytes", message.len());
            assert!(message.contains("… (1000000 characters)"));
        }
    }
}
