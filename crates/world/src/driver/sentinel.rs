//! The driver's Sentinel side (seed 002): the scenario's hands on `sentinel.v1`.
//!
//! World set-up follows the seed's steps after the cluster's own: step 3 registers the Cosmos DB
//! resource provider for the workspaces' subscription, step 4 is the file's access policy for
//! `Azure Cosmos DB` (the tenant's Cosmos DB principal, whose object id the driver asks Sentinel
//! for), step 5 onboards each `[[sentinel]]` workspace once its link stands. The timeline's
//! Sentinel actions are the same calls; an incident rate (`incidents_every`) becomes a task that
//! creates one incident per interval until the end, like an agent.
//!
//! The Sentinel service writes its own events (`sentinel.*`: onboarding, every state change,
//! every stored or refused item, the unsupported configuration); the driver only writes the
//! steps, as for every other service. One thing only the driver can write: the answer of Key
//! Vault's audit log for a `key_use` expectation (`scenario.audit`), asked at the end of the run.

use std::time::Duration;

use cmksim_proto::keyvault::v1 as kvp;
use cmksim_proto::sentinel::v1 as sep;
use cmksim_scenario::events::SCENARIO_AUDIT;
use cmksim_scenario::model::{self, Action, AuditProbe, SentinelItem};
use cmksim_sim::SimTime;
use serde_json::json;

use super::cluster::WORKSPACE_SUBSCRIPTION;
use super::{Driver, StepError, MANAGEMENT_AUDIENCE};

/// The resource provider seed 002's step 3 registers.
const COSMOS_DB_PROVIDER: &str = "Microsoft.DocumentDB";
/// The key operations that count as a use of a key version in the audit log.
const KEY_USE_OPERATIONS: [&str; 4] = ["KeyWrap", "KeyUnwrap", "KeyEncrypt", "KeyDecrypt"];
/// Most audit records one `key_use` question reads (Key Vault's own cap per query).
const AUDIT_RECORDS_MAX: u32 = 1_000;

impl Driver {
    /// The object id of the Azure Cosmos DB principal of `tenant_id` (created by Sentinel in the
    /// identity directory on first request), remembered by tenant.
    async fn cosmos_object_id(&mut self, tenant_id: &str) -> Result<String, StepError> {
        if let Some(id) = self.names.cosmos_db.get(tenant_id) {
            return Ok(id.clone());
        }
        let principal = self
            .sentinel
            .get_cosmos_db_principal(sep::CosmosDbPrincipalRequest {
                tenant_id: tenant_id.to_string(),
            })
            .await?
            .into_inner();
        self.names
            .cosmos_db
            .insert(tenant_id.to_string(), principal.object_id.clone());
        Ok(principal.object_id)
    }

    /// The object id an access policy of `vault` is for (the Cosmos DB principal is the vault
    /// tenant's).
    pub(super) async fn policy_object_id(
        &mut self,
        vault: &str,
        principal: &model::PrincipalRef,
    ) -> Result<String, StepError> {
        match principal {
            model::PrincipalRef::CosmosDb => {
                let tenant_id = self.names.vault_tenant(vault)?.to_string();
                self.cosmos_object_id(&tenant_id).await
            }
            other => Ok(self.names.principal_object_id(other)?),
        }
    }

    /// Seed 002 steps 3 and 5 for every `[[sentinel]]` workspace (step 4 is the file's own
    /// access policy, set with the others).
    pub(super) async fn build_sentinel(&mut self) -> Result<(), StepError> {
        let entries = self.scenario.world.sentinel.clone();
        if entries.is_empty() {
            return Ok(());
        }
        self.register_cosmos_db()
            .await
            .map_err(|e| e.declared_at(entries[0].line))?;
        for entry in &entries {
            self.onboard(&entry.workspace, entry.customer_managed_key)
                .await
                .map_err(|e| e.declared_at(entry.line))?;
        }
        Ok(())
    }

    /// Starts the incident rate of every `[[sentinel]]` workspace that has one, from T+0.
    pub(super) fn start_sentinel_incidents(&self) {
        for entry in &self.scenario.world.sentinel {
            if let Some(every) = entry.incidents_every {
                self.start_incidents(&entry.workspace, every, "incident");
            }
        }
    }

    async fn register_cosmos_db(&mut self) -> Result<(), StepError> {
        self.sentinel
            .register_resource_provider(sep::RegisterResourceProviderRequest {
                subscription_id: WORKSPACE_SUBSCRIPTION.to_string(),
                namespace: COSMOS_DB_PROVIDER.to_string(),
            })
            .await?;
        Ok(())
    }

    async fn onboard(
        &mut self,
        workspace: &str,
        customer_managed_key: bool,
    ) -> Result<(), StepError> {
        self.sentinel
            .onboard(sep::OnboardRequest {
                workspace: Some(Self::workspace_ref(workspace)),
                customer_managed_key,
            })
            .await?;
        Ok(())
    }

    /// One incident every `every` from now to the scenario's end, ids `<workspace>-<prefix>-<n>`.
    /// Bounded: validation keeps `every` at least a minute, so a run makes at most its duration
    /// in minutes of them. The Sentinel service records each as stored or refused.
    fn start_incidents(&self, workspace: &str, every: Duration, prefix: &str) {
        let end = self.start.add(self.scenario.meta.duration);
        let clock = self.clock.clone();
        let mut client = self.sentinel.clone();
        let workspace = workspace.to_string();
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut next = clock.now().add(every);
            let mut n: u64 = 0;
            while next <= end {
                clock.sleep_until(next).await;
                n += 1;
                let id = format!("{workspace}-{prefix}-{n}");
                let answered = client
                    .create_incident(sep::SaveItemRequest {
                        workspace: Some(Driver::workspace_ref(&workspace)),
                        id: id.clone(),
                        body_json: json!({ "title": id, "severity": "Medium" }).to_string(),
                    })
                    .await;
                // A refusal is the service's answer, already in the event log
                // (`sentinel.operation.refused`); it is only traced here.
                if let Err(status) = answered {
                    tracing::debug!(%workspace, %id, error = %status.message(), "incident not created");
                }
                next = next.add(every);
            }
        });
    }

    /// Applies a Sentinel action of the timeline.
    pub(super) async fn apply_sentinel(&mut self, action: &Action) -> Result<(), StepError> {
        match action {
            Action::RegisterCosmosDb => self.register_cosmos_db().await,
            Action::OnboardSentinel {
                workspace,
                customer_managed_key,
                incidents_every,
            } => {
                self.onboard(workspace, *customer_managed_key).await?;
                if let Some(every) = incidents_every {
                    let since = self.clock.now().since(self.start).as_secs();
                    self.start_incidents(workspace, *every, &format!("incident-from-{since}s"));
                }
                Ok(())
            }
            Action::CreateSentinelItem { workspace, item } => {
                let since = self.clock.now().since(self.start).as_secs();
                let id = format!("{workspace}-{}-at-{since}s", item.as_str());
                let request = sep::SaveItemRequest {
                    workspace: Some(Self::workspace_ref(workspace)),
                    id: id.clone(),
                    body_json: json!({ "name": id }).to_string(),
                };
                match item {
                    SentinelItem::Incident => self.sentinel.create_incident(request).await?,
                    SentinelItem::AnalyticsRule => {
                        self.sentinel.save_analytics_rule(request).await?
                    }
                    SentinelItem::Watchlist => self.sentinel.save_watchlist(request).await?,
                };
                Ok(())
            }
            Action::DeleteSentinelWorkspace { workspace } => {
                self.sentinel
                    .delete_workspace(Self::workspace_ref(workspace))
                    .await?;
                Ok(())
            }
            other => Err(StepError {
                code: "NotASentinelAction".into(),
                status: None,
                line: None,
                message: format!("{} is not a Sentinel action", other.name()),
            }),
        }
    }

    /// Asks Key Vault's audit log every `key_use` question of the scenario and records each
    /// answer as `scenario.audit` (or `scenario.audit.failed`, which the judge reads as no
    /// answer).
    pub(super) async fn record_audit_probes(&mut self) {
        for probe in self.scenario.audit_probes() {
            let now = self.clock.now();
            match self.audit_answer(&probe).await {
                Ok(data) => {
                    let uses = data["uses"].as_u64().unwrap_or(0);
                    self.events.record_raw(
                        now,
                        "scenario",
                        SCENARIO_AUDIT,
                        format!(
                            "Key Vault's audit log: {uses} wraps/unwraps with {}/{} v{} between {} and {}",
                            probe.vault,
                            probe.key,
                            probe.version,
                            self.start.add(probe.from).offset_label(self.start),
                            self.start.add(probe.until).offset_label(self.start)
                        ),
                        data,
                    );
                }
                Err(e) => {
                    self.events.record_raw(
                        now,
                        "scenario",
                        "scenario.audit.failed",
                        format!(
                            "Key Vault's audit log could not be asked about {}/{} v{}: {e}",
                            probe.vault, probe.key, probe.version
                        ),
                        json!({
                            "vault": probe.vault,
                            "key": probe.key,
                            "version": format!("v{}", probe.version),
                            "error_code": e.code,
                        }),
                    );
                }
            }
        }
    }

    async fn audit_answer(&mut self, probe: &AuditProbe) -> Result<serde_json::Value, StepError> {
        let version_id = self
            .resolve_version(
                &probe.vault,
                &probe.key,
                &model::VersionSel::Nth(probe.version),
            )
            .await?;
        let from = self.start.add(probe.from);
        let until = self.start.add(probe.until);
        let inside = self
            .audit(&probe.vault, &probe.key, &version_id, Some(from), until)
            .await?;
        let before = self
            .audit(
                &probe.vault,
                &probe.key,
                &version_id,
                None,
                SimTime(from.0 - 1),
            )
            .await?;
        // Newest first.
        let uses: Vec<&kvp::AuditRecord> = inside
            .records
            .iter()
            .filter(|r| KEY_USE_OPERATIONS.contains(&r.operation.as_str()))
            .collect();
        let last_use_before = before
            .records
            .iter()
            .find(|r| KEY_USE_OPERATIONS.contains(&r.operation.as_str()))
            .map(|r| r.time_unix_ms);
        let complete = inside.total_matched as usize == inside.records.len();
        let mut principals: Vec<&str> = uses
            .iter()
            .map(|r| r.principal_object_id.as_str())
            .collect();
        principals.sort();
        principals.dedup();
        Ok(json!({
            "vault": probe.vault,
            "key": probe.key,
            "version": format!("v{}", probe.version),
            "version_id": version_id,
            "from_ms": from.0,
            "until_ms": until.0,
            // An answer cut at the cap cannot prove silence: it counts as a use.
            "uses": if complete { uses.len() as u64 } else { uses.len().max(1) as u64 },
            "complete": complete,
            "first_use_ms": uses.last().map(|r| r.time_unix_ms),
            "last_use_ms": uses.first().map(|r| r.time_unix_ms),
            "last_use_before_ms": last_use_before,
            "principals": principals,
        }))
    }

    async fn audit(
        &mut self,
        vault: &str,
        key: &str,
        version: &str,
        from: Option<SimTime>,
        until: SimTime,
    ) -> Result<kvp::AuditRecords, StepError> {
        let query = kvp::AuditQuery {
            vault_name: vault.to_string(),
            key_name: key.to_string(),
            key_version: version.to_string(),
            from_unix_ms: from.map(|t| t.unix_ms()),
            to_unix_ms: Some(until.unix_ms()),
            limit: AUDIT_RECORDS_MAX,
        };
        let request = self.authorized(vault, MANAGEMENT_AUDIENCE, query).await?;
        Ok(self.keyvault.query_audit(request).await?.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use cmksim_scenario::model::{SentinelState, COSMOS_DB_PRINCIPAL, SENTINEL_STATES};
    use cmksim_sentinel::StateName;

    #[test]
    fn the_scenario_words_are_the_services_words() {
        // A file's `principal = "Azure Cosmos DB"` is the principal Sentinel creates.
        assert_eq!(
            COSMOS_DB_PRINCIPAL,
            cmksim_sentinel::server::COSMOS_DB_PRINCIPAL_NAME
        );
        assert_eq!(
            COSMOS_DB_PRINCIPAL,
            cmksim_identity::directory::COSMOS_DB_DISPLAY_NAME
        );
        // `sentinel_state` words are the service's state names (`sentinel.state.<name>`).
        let service = [
            StateName::Active,
            StateName::Revoked,
            StateName::Restoring,
            StateName::Deleted,
        ];
        let words: Vec<&str> = service.iter().map(|s| s.as_str()).collect();
        let ours: Vec<&str> = SENTINEL_STATES.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ours);
        for word in words {
            assert!(SentinelState::from_name(word).is_some(), "{word}");
        }
    }
}
