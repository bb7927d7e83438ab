//! Azure role-based access control, reduced to the roles that matter for customer-managed keys
//! on Log Analytics: who may manage clusters and workspaces, who may write logs into a workspace
//! and who may read them.
//!
//! Azure's model, kept: a *role assignment* gives one principal one role definition at one
//! *scope* (a subscription, a resource group or a resource ARM id), and it holds for every
//! resource under that scope. A call is allowed when some assignment of the caller, at the
//! call's scope or above it, has a role whose actions include the call's [`Action`]. Scopes
//! compare segment by segment and without regard to case, as ARM ids do.
//!
//! Azure's model, simplified (the simulator's choice, said once here):
//! - a subscription belongs to one tenant; the simulator learns which from its first role
//!   assignment (the bootstrap administrator's Owner assignment, the world's own assignments),
//!   and refuses assignments there for principals of another tenant. A token of another tenant
//!   gets ARM's `InvalidAuthenticationTokenTenant`, not a role check;
//! - an assignment at the root scope `/` (Azure has one, for global administrators) stands for a
//!   first-party service's own access: Azure Monitor's pipeline writes into and reads from every
//!   customer's workspace without the customer's tenant. Only the simulator's own service
//!   principals (the ingest front end's) and the bootstrap administrator (User Access
//!   Administrator, Azure's elevated access) get one, and it holds in every tenant;
//! - seven built-in roles with their real names and definition ids, and only the actions the
//!   simulated services ask for (no custom roles, no deny assignments, no conditions).
//!
//! Pure logic: no I/O, no clock. The directory keeps the assignments ([`crate::Directory`]), the
//! store persists them, the `identity.v1` service answers `CheckAccess` with [`decide`].

use serde::{Deserialize, Serialize};

/// What a call does, in Azure's action strings (what an `AuthorizationFailed` message names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Read clusters (GET, list, operation status, storage state, stats).
    ClustersRead,
    /// Create, update, delete or recover a cluster.
    ClustersWrite,
    /// Read workspaces and their table declarations.
    WorkspacesRead,
    /// Create, update, lock, link or unlink a workspace; declare its tables.
    WorkspacesWrite,
    /// Send logs (the Logs Ingestion API's data action, Monitoring Metrics Publisher's).
    TelemetryWrite,
    /// Query a workspace's logs.
    QueryRead,
    /// Create or remove a role assignment (Owner's and User Access Administrator's).
    RoleAssignmentsWrite,
    /// Create or delete a principal or a tenant in the directory: a directory role
    /// (Entra's Global Administrator), which no Azure RBAC role grants
    /// ([`crate::Principal::administrator`]).
    DirectoryWrite,
    /// Read a storage account (queries in the customer's own storage, BYOS).
    StorageAccountsRead,
    /// Create a storage account or change its encryption.
    StorageAccountsWrite,
    /// Read role assignments, and so ask what another principal may do (`CheckAccess` about
    /// someone else; Azure's `Microsoft.Authorization/*/read`, every reader's).
    RoleAssignmentsRead,
    /// Create a first-party identity on a resource's or a tenant's behalf — a resource's
    /// system-assigned managed identity (`CreateManagedIdentity`), a tenant's Azure Cosmos DB
    /// principal (`CreatePrincipal` of that name) — whose answer carries its secret: the
    /// resource provider's own act, which no Azure RBAC role grants, not even Owner at `/`; only
    /// a first-party resource provider ([`crate::Principal::is_resource_provider`]) or a
    /// directory administrator does it.
    ManagedIdentitiesWrite,
}

impl Action {
    /// Every action, in a fixed order.
    pub const ALL: [Action; 12] = [
        Action::ClustersRead,
        Action::ClustersWrite,
        Action::WorkspacesRead,
        Action::WorkspacesWrite,
        Action::TelemetryWrite,
        Action::QueryRead,
        Action::RoleAssignmentsWrite,
        Action::DirectoryWrite,
        Action::StorageAccountsRead,
        Action::StorageAccountsWrite,
        Action::RoleAssignmentsRead,
        Action::ManagedIdentitiesWrite,
    ];

    /// Azure's action string.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ClustersRead => "Microsoft.OperationalInsights/clusters/read",
            Action::ClustersWrite => "Microsoft.OperationalInsights/clusters/write",
            Action::WorkspacesRead => "Microsoft.OperationalInsights/workspaces/read",
            Action::WorkspacesWrite => "Microsoft.OperationalInsights/workspaces/write",
            Action::TelemetryWrite => "Microsoft.Insights/Telemetry/Write",
            Action::QueryRead => "Microsoft.OperationalInsights/workspaces/query/read",
            Action::RoleAssignmentsWrite => "Microsoft.Authorization/roleAssignments/write",
            Action::DirectoryWrite => {
                "microsoft.directory/servicePrincipals/allProperties/allTasks"
            }
            Action::StorageAccountsRead => "Microsoft.Storage/storageAccounts/read",
            Action::StorageAccountsWrite => "Microsoft.Storage/storageAccounts/write",
            Action::RoleAssignmentsRead => "Microsoft.Authorization/roleAssignments/read",
            Action::ManagedIdentitiesWrite => "Microsoft.ManagedIdentity/identities/write",
        }
    }

    /// True for the reads Azure's `*/read` grants (every reader role's).
    pub fn is_read(self) -> bool {
        use Action::*;
        matches!(
            self,
            ClustersRead | WorkspacesRead | QueryRead | StorageAccountsRead | RoleAssignmentsRead
        )
    }

    /// The action named by `text` (case-insensitive, as Azure compares actions).
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(text))
    }
}

/// The built-in roles the simulator knows, with Azure's names and definition ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Contributor,
    Reader,
    LogAnalyticsContributor,
    LogAnalyticsReader,
    MonitoringMetricsPublisher,
    /// Manages access (role assignments) and reads everything: the role Azure gives a Global
    /// Administrator who elevates access at the root scope, and the bootstrap administrator's.
    UserAccessAdministrator,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 7] = [
        Role::Owner,
        Role::Contributor,
        Role::Reader,
        Role::LogAnalyticsContributor,
        Role::LogAnalyticsReader,
        Role::MonitoringMetricsPublisher,
        Role::UserAccessAdministrator,
    ];

    /// The role's display name in Azure.
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Contributor => "Contributor",
            Role::Reader => "Reader",
            Role::LogAnalyticsContributor => "Log Analytics Contributor",
            Role::LogAnalyticsReader => "Log Analytics Reader",
            Role::MonitoringMetricsPublisher => "Monitoring Metrics Publisher",
            Role::UserAccessAdministrator => "User Access Administrator",
        }
    }

    /// The built-in role definition's GUID (the same in every Azure tenant).
    pub fn definition_guid(self) -> &'static str {
        match self {
            Role::Owner => "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
            Role::Contributor => "b24988ac-6180-42a0-ab88-20f7382dd24c",
            Role::Reader => "acdd72a7-3385-48ef-bd42-f606fba81ae7",
            Role::LogAnalyticsContributor => "92aaf0da-9dab-42b6-94a3-d43ce8d16293",
            Role::LogAnalyticsReader => "73c42c96-874c-492b-b04d-ab87d138a893",
            Role::MonitoringMetricsPublisher => "3913510d-42f4-4e42-8a64-420c390055eb",
            Role::UserAccessAdministrator => "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
        }
    }

    /// `/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`, as ARM
    /// writes a role assignment's `roleDefinitionId`.
    pub fn definition_id(self, subscription_id: &str) -> String {
        format!(
            "/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{}",
            self.definition_guid()
        )
    }

    /// The role named by `text`: its display name, its definition GUID or a full
    /// `roleDefinitionId` ending in the GUID (case-insensitive).
    pub fn parse(text: &str) -> Option<Role> {
        let last = text
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(text);
        Role::ALL.into_iter().find(|r| {
            r.name().eq_ignore_ascii_case(text) || r.definition_guid().eq_ignore_ascii_case(last)
        })
    }

    /// Whether the role grants `action` (no role grants [`Action::DirectoryWrite`] or
    /// [`Action::ManagedIdentitiesWrite`]). Owner: everything Azure RBAC grants;
    /// User Access Administrator: role assignments and every read; Contributor: everything but role
    /// assignments and data actions; Reader: every read, including queries (Azure's `*/read`);
    /// Log Analytics Contributor: every read and Log Analytics' writes (not a storage account's);
    /// Log Analytics Reader: every read; Monitoring Metrics Publisher: only the telemetry data
    /// action.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        let read = action.is_read();
        if matches!(action, DirectoryWrite | ManagedIdentitiesWrite) {
            return false;
        }
        match self {
            Role::Owner => true,
            Role::UserAccessAdministrator => read || action == RoleAssignmentsWrite,
            Role::Contributor => !matches!(action, RoleAssignmentsWrite | TelemetryWrite),
            Role::Reader | Role::LogAnalyticsReader => read,
            Role::LogAnalyticsContributor => {
                read || matches!(action, ClustersWrite | WorkspacesWrite)
            }
            Role::MonitoringMetricsPublisher => matches!(action, TelemetryWrite),
        }
    }
}

/// One role assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    pub id: String,
    /// The assignment's name (a GUID in Azure).
    pub name: String,
    /// Where it holds (and below), as the caller wrote it.
    pub scope: String,
    pub role: Role,
    /// The principal's object id.
    pub principal_id: String,
    /// The principal's tenant.
    pub tenant_id: String,
}

/// Longest scope accepted (ARM ids are far shorter), so that matching is bounded.
pub const SCOPE_CHARS_MAX: usize = 1_024;
/// Most segments a scope has (a nested resource id has about 12).
pub const SCOPE_SEGMENTS_MAX: usize = 32;

/// The root scope.
pub const ROOT_SCOPE: &str = "/";

/// The segments of an ARM scope (`/subscriptions/s/resourceGroups/rg/...`; none for the root
/// scope `/`), or `None` when it is not one: it must be `/` or start with `/subscriptions/{id}`,
/// and stay within the bounds above.
pub fn scope_segments(scope: &str) -> Option<Vec<&str>> {
    if scope.len() > SCOPE_CHARS_MAX || !scope.starts_with('/') {
        return None;
    }
    let trimmed = scope.trim_end_matches('/');
    if trimmed.is_empty() {
        return Some(Vec::new());
    }
    let segments: Vec<&str> = trimmed[1..].split('/').collect();
    let well_formed = segments.len() >= 2
        && segments.len() <= SCOPE_SEGMENTS_MAX
        && segments[0].eq_ignore_ascii_case("subscriptions")
        && segments.iter().all(|s| !s.is_empty());
    well_formed.then_some(segments)
}

/// The subscription id of a scope (lower case), or `None` when the scope is the root scope or
/// not an ARM scope.
pub fn subscription_of(scope: &str) -> Option<String> {
    scope_segments(scope).and_then(|s| s.get(1).map(|id| id.to_ascii_lowercase()))
}

/// True when `assigned` is `scope` or one of its ancestors (segment-wise, case-insensitive).
pub fn covers(assigned: &str, scope: &str) -> bool {
    match (scope_segments(assigned), scope_segments(scope)) {
        (Some(a), Some(s)) => {
            a.len() <= s.len() && a.iter().zip(&s).all(|(x, y)| x.eq_ignore_ascii_case(y))
        }
        _ => false,
    }
}

/// The answer to "may this caller do this here?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// The scope's subscription belongs to another tenant than the caller's token.
    WrongTenant {
        subscription_tenant: String,
    },
    /// No assignment of the caller at or above the scope grants the action.
    Denied,
}

/// Decides whether principal `object_id` of tenant `tenant_id` may do `action` at `scope`, given
/// the subscription owners (`subscription_tenant` of the scope's subscription, if known) and the
/// assignments. A scope that is no ARM scope is denied.
pub fn decide<'a>(
    object_id: &str,
    tenant_id: &str,
    action: Action,
    scope: &str,
    subscription_tenant: Option<&str>,
    assignments: impl IntoIterator<Item = &'a RoleAssignment>,
) -> Access {
    if scope_segments(scope).is_none() {
        return Access::Denied;
    }
    let mine: Vec<&RoleAssignment> = assignments
        .into_iter()
        .filter(|a| a.principal_id.eq_ignore_ascii_case(object_id) && a.role.allows(action))
        .collect();
    let at_root = mine.iter().any(|a| {
        a.tenant_id.eq_ignore_ascii_case(tenant_id)
            && scope_segments(&a.scope).is_some_and(|s| s.is_empty())
    });
    if at_root {
        return Access::Granted;
    }
    if let Some(owner) = subscription_tenant {
        if !owner.eq_ignore_ascii_case(tenant_id) {
            return Access::WrongTenant {
                subscription_tenant: owner.to_string(),
            };
        }
    }
    let granted = mine
        .iter()
        .any(|a| a.tenant_id.eq_ignore_ascii_case(tenant_id) && covers(&a.scope, scope));
    if granted {
        Access::Granted
    } else {
        Access::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str =
        "/subscriptions/S1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w";

    fn assignment(scope: &str, role: Role) -> RoleAssignment {
        RoleAssignment {
            id: format!("{scope}/providers/Microsoft.Authorization/roleAssignments/a"),
            name: "a".into(),
            scope: scope.into(),
            role,
            principal_id: "p".into(),
            tenant_id: "t".into(),
        }
    }

    #[test]
    fn an_assignment_holds_at_its_scope_and_below_only() {
        let at_rg = [assignment(
            "/subscriptions/s1/resourcegroups/RG",
            Role::Reader,
        )];
        assert_eq!(
            decide("p", "t", Action::QueryRead, WS, Some("t"), &at_rg),
            Access::Granted
        );
        let elsewhere = [assignment(
            "/subscriptions/s1/resourceGroups/rg2",
            Role::Owner,
        )];
        assert_eq!(
            decide("p", "t", Action::QueryRead, WS, Some("t"), &elsewhere),
            Access::Denied
        );
        // A longer scope does not cover its parent.
        let below = [assignment(&format!("{WS}/tables/x"), Role::Owner)];
        assert_eq!(
            decide("p", "t", Action::QueryRead, WS, Some("t"), &below),
            Access::Denied
        );
        // Another principal's assignment is not the caller's.
        assert_eq!(
            decide("q", "t", Action::QueryRead, WS, Some("t"), &at_rg),
            Access::Denied
        );
    }

    #[test]
    fn roles_grant_what_azure_grants() {
        let publisher = [assignment(WS, Role::MonitoringMetricsPublisher)];
        assert_eq!(
            decide("p", "t", Action::TelemetryWrite, WS, None, &publisher),
            Access::Granted
        );
        assert_eq!(
            decide("p", "t", Action::QueryRead, WS, None, &publisher),
            Access::Denied
        );
        // Contributor manages clusters but does not send telemetry or grant roles.
        assert!(Role::Contributor.allows(Action::ClustersWrite));
        assert!(!Role::Contributor.allows(Action::TelemetryWrite));
        assert!(!Role::Contributor.allows(Action::RoleAssignmentsWrite));
        assert!(!Role::LogAnalyticsReader.allows(Action::WorkspacesWrite));
        // Role assignments: Owner and User Access Administrator; the directory: no RBAC role.
        assert!(Role::Owner.allows(Action::RoleAssignmentsWrite));
        assert!(Role::UserAccessAdministrator.allows(Action::RoleAssignmentsWrite));
        assert!(!Role::UserAccessAdministrator.allows(Action::ClustersWrite));
        for role in Role::ALL {
            assert!(!role.allows(Action::DirectoryWrite), "{role:?}");
            assert!(!role.allows(Action::ManagedIdentitiesWrite), "{role:?}");
        }
        for role in Role::ALL {
            let reads = role != Role::MonitoringMetricsPublisher;
            assert_eq!(role.allows(Action::ClustersRead), reads, "{role:?}");
        }
    }

    #[test]
    fn a_token_of_another_tenant_is_refused_before_any_role() {
        let owner = [assignment("/subscriptions/s1", Role::Owner)];
        assert_eq!(
            decide("p", "t", Action::ClustersRead, WS, Some("other"), &owner),
            Access::WrongTenant {
                subscription_tenant: "other".into()
            }
        );
    }

    #[test]
    fn the_root_scope_holds_in_every_subscription_and_tenant() {
        let root = [assignment(ROOT_SCOPE, Role::MonitoringMetricsPublisher)];
        assert_eq!(
            decide("p", "t", Action::TelemetryWrite, WS, Some("other"), &root),
            Access::Granted
        );
        assert_eq!(
            decide("p", "t", Action::QueryRead, WS, Some("t"), &root),
            Access::Denied
        );
        assert_eq!(subscription_of(ROOT_SCOPE), None);
    }

    #[test]
    fn names_and_ids_parse() {
        assert_eq!(
            Role::parse("monitoring metrics publisher"),
            Some(Role::MonitoringMetricsPublisher)
        );
        assert_eq!(
            Role::parse(&Role::LogAnalyticsReader.definition_id("s")),
            Some(Role::LogAnalyticsReader)
        );
        assert_eq!(Role::parse("Nobody"), None);
        assert_eq!(
            Action::parse("microsoft.insights/telemetry/write"),
            Some(Action::TelemetryWrite)
        );
        assert_eq!(subscription_of("/subscriptions/ABC/x"), Some("abc".into()));
        assert_eq!(subscription_of("/tenants/x"), None);
        assert!(scope_segments(&"/subscriptions/s".repeat(40)).is_none());
        assert!(!covers("/subscriptions/s1/", "not a scope"));
    }
}
