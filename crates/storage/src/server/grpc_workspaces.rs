//! `storage.v1.Workspaces`: create, get, retention, lock, link, unlink, and custom-table
//! declarations (kept in the persisted control state, see `control::tables`).

use std::sync::Arc;

use cmksim_proto::storage::v1 as pb;
use tonic::{Code, Request, Response, Status};

use crate::control::{
    ControlError, ControlPlane, Outcome, ResourceKind, ResourceName, TableColumns, WorkspaceCreate,
};
use crate::service::status::{azure_status, control_status};

use super::convert::{cluster_name, workspace_name, workspace_to_pb};
use super::core::Core;

pub struct WorkspacesService {
    pub core: Arc<Core>,
}

impl WorkspacesService {
    /// Runs a control mutation, persists, records its events, and answers the workspace.
    fn mutate<T>(
        &self,
        resource: &ResourceName,
        f: impl FnOnce(&mut ControlPlane, cmksim_sim::SimTime) -> Result<Outcome<T>, ControlError>,
    ) -> Result<(T, pb::Workspace), Status> {
        let core = &self.core;
        let now = core.now();
        let (outcome, ws) = {
            let mut control = core.control();
            let outcome = f(&mut control, now).map_err(|e| control_status(&control, &e))?;
            core.persist_control(control.state()).map_err(|e| {
                azure_status(Code::Internal, "InternalServerError", 500, &e.to_string())
            })?;
            let ws = control
                .get_workspace(resource)
                .map_err(|e| control_status(&control, &e))?;
            (outcome, workspace_to_pb(ws))
        };
        core.record_control(now, &outcome);
        core.apply_effects(now, &outcome.effects);
        core.tick_wake.notify_one();
        Ok((outcome.value, ws))
    }
}

#[tonic::async_trait]
impl pb::workspaces_server::Workspaces for WorkspacesService {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let body = WorkspaceCreate {
            location: Some(r.location.clone()).filter(|l| !l.is_empty()),
            retention_days: Some(r.retention_in_days).filter(|d| *d != 0),
        };
        let (_, ws) = self.mutate(&resource, |c, now| {
            c.create_workspace(now, &resource, &body)
        })?;
        Ok(Response::new(ws))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::WorkspaceRef>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let resource = workspace_name(Some(request.get_ref()));
        let control = self.core.control();
        let ws = control
            .get_workspace(&resource)
            .map_err(|e| control_status(&control, &e))?;
        Ok(Response::new(workspace_to_pb(ws)))
    }

    async fn find_workspace(
        &self,
        request: Request<pb::FindWorkspaceRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let wanted = request.get_ref().customer_id.trim().to_ascii_lowercase();
        let control = self.core.control();
        // A scan: customer ids are derived from the workspace key, and workspaces are few.
        let found = control
            .state()
            .workspaces
            .values()
            .map(workspace_to_pb)
            .find(|ws| ws.customer_id == wanted);
        match found {
            Some(ws) => Ok(Response::new(ws)),
            None => Err(Status::not_found(format!(
                "no workspace has the customer id {:?}",
                cmksim_sim::text::clip(&wanted, 64)
            ))),
        }
    }

    async fn update_retention(
        &self,
        request: Request<pb::UpdateRetentionRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let (_, ws) = self.mutate(&resource, |c, now| {
            c.update_retention(now, &resource, r.retention_in_days)
        })?;
        Ok(Response::new(ws))
    }

    async fn set_lock(
        &self,
        request: Request<pb::SetLockRequest>,
    ) -> Result<Response<pb::Workspace>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let (_, ws) = self.mutate(&resource, |c, now| {
            c.set_workspace_lock(now, &resource, r.locked)
        })?;
        Ok(Response::new(ws))
    }

    async fn link_workspace(
        &self,
        request: Request<pb::LinkWorkspaceRequest>,
    ) -> Result<Response<pb::WorkspaceOperation>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let cluster = cluster_name(r.cluster.as_ref()).arm_id(ResourceKind::Cluster);
        let core = self.core.clone();
        let (op, ws) = self.mutate(&resource, |c, now| {
            let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
            c.link_workspace(now, &resource, &cluster, &mut *rng)
        })?;
        Ok(Response::new(pb::WorkspaceOperation {
            workspace: Some(ws),
            operation_id: op,
        }))
    }

    async fn unlink_workspace(
        &self,
        request: Request<pb::WorkspaceRef>,
    ) -> Result<Response<pb::WorkspaceOperation>, Status> {
        let resource = workspace_name(Some(request.get_ref()));
        let core = self.core.clone();
        let (op, ws) = self.mutate(&resource, |c, now| {
            let mut rng = core.control_rng.lock().unwrap_or_else(|p| p.into_inner());
            c.unlink_workspace(now, &resource, &mut *rng)
        })?;
        Ok(Response::new(pb::WorkspaceOperation {
            workspace: Some(ws),
            operation_id: op,
        }))
    }

    async fn declare_table(
        &self,
        request: Request<pb::DeclareTableRequest>,
    ) -> Result<Response<pb::TableDeclaration>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let columns: Vec<(String, String)> =
            r.columns.into_iter().map(|c| (c.name, c.r#type)).collect();
        let (declared, _) = self.mutate(&resource, |c, _| {
            c.declare_table(&resource, &r.table, &columns)
        })?;
        Ok(Response::new(table_to_pb(
            r.table,
            &declared.columns,
            declared.changed,
            true,
        )))
    }

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::TableDeclaration>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let control = self.core.control();
        let columns = control
            .custom_table(&resource, &r.table)
            .map_err(|e| control_status(&control, &e))?;
        let exists = columns.is_some();
        let columns = columns.cloned().unwrap_or_default();
        Ok(Response::new(table_to_pb(r.table, &columns, false, exists)))
    }

    async fn purge(
        &self,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeOperation>, Status> {
        super::lifecycle::purge(&self.core, request.into_inner()).map(Response::new)
    }

    async fn get_purge_status(
        &self,
        request: Request<pb::PurgeStatusRequest>,
    ) -> Result<Response<pb::PurgeOperation>, Status> {
        super::lifecycle::purge_status(&self.core, request.into_inner()).map(Response::new)
    }

    async fn delete_table(
        &self,
        request: Request<pb::DeleteTableRequest>,
    ) -> Result<Response<pb::TableDeleted>, Status> {
        super::lifecycle::delete_table(&self.core, request.into_inner()).map(Response::new)
    }

    async fn put_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::WorkspaceLock>, Status> {
        super::lifecycle::lock(&self.core, request.into_inner(), true).map(Response::new)
    }

    async fn delete_lock(
        &self,
        request: Request<pb::LockRequest>,
    ) -> Result<Response<pb::WorkspaceLock>, Status> {
        super::lifecycle::lock(&self.core, request.into_inner(), false).map(Response::new)
    }

    async fn get_lock(
        &self,
        request: Request<pb::WorkspaceRef>,
    ) -> Result<Response<pb::WorkspaceLock>, Status> {
        super::lifecycle::get_lock(&self.core, request.into_inner()).map(Response::new)
    }

    async fn set_table_retention(
        &self,
        request: Request<pb::SetTableRetentionRequest>,
    ) -> Result<Response<pb::TableRetention>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let (retention, _) = self.mutate(&resource, |c, _| {
            c.set_table_retention(&resource, &r.table, r.retention_in_days)
        })?;
        Ok(Response::new(super::lifecycle::table_retention_to_pb(
            &retention,
        )))
    }

    async fn get_table_retention(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::TableRetention>, Status> {
        let r = request.into_inner();
        let resource = workspace_name(r.workspace.as_ref());
        let control = self.core.control();
        let retention = control
            .table_retention(&resource, &r.table)
            .map_err(|e| control_status(&control, &e))?;
        Ok(Response::new(super::lifecycle::table_retention_to_pb(
            &retention,
        )))
    }
}

fn table_to_pb(
    table: String,
    columns: &TableColumns,
    changed: bool,
    exists: bool,
) -> pb::TableDeclaration {
    pb::TableDeclaration {
        table,
        columns: columns
            .iter()
            .map(|(name, r#type)| pb::TableColumn {
                name: name.clone(),
                r#type: r#type.clone(),
            })
            .collect(),
        changed,
        exists,
    }
}
