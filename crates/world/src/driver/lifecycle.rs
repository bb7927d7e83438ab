//! The driver's data-lifecycle steps (seed 003): a purge (table + one filter) and a table
//! delete. Storage decides everything (`storage.v1.Workspaces` Purge, DeleteTable): a locked
//! workspace refuses both with `ScopeLocked`, which the step records as its failure. The lock
//! and retention steps are `set-workspace-lock` and `set-workspace-retention`.
//!
//! A purge answers at once (pending); storage completes it at a later control tick and records
//! `storage.purge.completed`, which the `purged` expectation reads.

use cmksim_proto::storage::v1 as sp;
use cmksim_scenario::model::Action;

use super::{Driver, StepError};

/// A step's filter value as the purge API's JSON: a number when it reads as one (long and real
/// columns compare numerically), a string otherwise.
fn value_json(value: &str) -> String {
    match value.trim().parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => match value.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => serde_json::Value::from(x).to_string(),
            _ => serde_json::Value::from(value).to_string(),
        },
    }
}

impl Driver {
    /// Applies a purge or table-delete action.
    pub(super) async fn lifecycle_step(&mut self, action: &Action) -> Result<(), StepError> {
        match action {
            Action::Purge {
                workspace,
                table,
                column,
                operator,
                value,
            } => {
                self.workspaces
                    .purge(sp::PurgeRequest {
                        workspace: Some(Self::workspace_ref(workspace)),
                        table: table.clone(),
                        filters: vec![sp::PurgeFilter {
                            column: column.clone(),
                            operator: operator.clone(),
                            value_json: value_json(value),
                        }],
                    })
                    .await?;
                Ok(())
            }
            Action::DeleteTable { workspace, table } => {
                self.workspaces
                    .delete_table(sp::DeleteTableRequest {
                        workspace: Some(Self::workspace_ref(workspace)),
                        table: table.clone(),
                    })
                    .await?;
                Ok(())
            }
            other => Err(StepError {
                code: "NotALifecycleAction".into(),
                status: None,
                line: None,
                message: format!("{} is not a purge or table delete", other.name()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::value_json;

    #[test]
    fn filter_values_are_numbers_when_they_read_as_numbers() {
        assert_eq!(value_json("42"), "42");
        assert_eq!(value_json("1.5"), "1.5");
        assert_eq!(value_json("Computer-3"), "\"Computer-3\"");
        assert_eq!(value_json("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
