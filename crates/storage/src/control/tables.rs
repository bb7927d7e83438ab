//! Custom-table (`*_CL`) declarations: which columns a workspace's custom table has, and of
//! which type.
//!
//! Why storage owns them: a declaration describes data storage holds, so it must live as long
//! as that data and be read back after any restart. The ingest front end keeps no state of its
//! own (it can restart, or run as several processes); it reads a table's columns from here
//! before it validates records or answers a query, and writes a declaration here before it
//! appends records that use it. The declarations are part of the persisted [`ControlState`]
//! (`tables`), so they are flushed with it before the call that made them is answered.
//!
//! The rule kept here, under the control plane's lock: **a column's type never changes once
//! declared** (data already stored under the old type would no longer match filters of the new
//! one). A declaration may add tables and columns; redeclaring a column with its own type changes
//! nothing. The syntax of names and type names is the front end's (`cmksim-ingest`'s `schema`
//! module); storage treats type names as opaque words and only bounds how many it keeps.
//!
//! [`ControlState`]: super::ControlState

use std::collections::BTreeMap;

use super::{ControlError, ControlPlane, Outcome, ResourceName};

/// A custom table's columns: name → type name (`string`, `long`, ... as the front end spells
/// them).
pub type TableColumns = BTreeMap<String, String>;

/// The custom tables of one workspace, by table name.
pub type WorkspaceTables = BTreeMap<String, TableColumns>;

/// At most this many custom tables per workspace (the front end's bound too).
pub const CUSTOM_TABLES_PER_WORKSPACE_MAX: usize = 500;
/// At most this many columns per custom table (Azure Monitor: 500 columns per table).
pub const CUSTOM_TABLE_COLUMNS_MAX: usize = 500;

/// What a declaration left registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDeclared {
    /// The table's columns after the declaration.
    pub columns: TableColumns,
    /// True when the declaration added the table or a column.
    pub changed: bool,
}

impl ControlPlane {
    /// Declares `columns` (name, type name) for `table` of `workspace`: adds the table and any
    /// new column; refuses, changing nothing, a column whose type differs from the one declared
    /// before.
    pub fn declare_table(
        &mut self,
        workspace: &ResourceName,
        table: &str,
        columns: &[(String, String)],
    ) -> Result<Outcome<TableDeclared>, ControlError> {
        let key = self.get_workspace(workspace)?.id.to_ascii_lowercase();
        let tables = self.state.tables.get(&key);
        let existing = tables.and_then(|t| t.get(table));
        if existing.is_none() && tables.map_or(0, BTreeMap::len) >= CUSTOM_TABLES_PER_WORKSPACE_MAX
        {
            return Err(ControlError::TooManyCustomTables {
                workspace: workspace.arm_id(super::ResourceKind::Workspace),
                max: CUSTOM_TABLES_PER_WORKSPACE_MAX,
            });
        }
        let mut merged = existing.cloned().unwrap_or_default();
        let mut changed = existing.is_none();
        for (column, type_name) in columns {
            match merged.get(column) {
                Some(registered) if registered != type_name => {
                    return Err(ControlError::ColumnTypeConflict {
                        table: table.to_string(),
                        column: column.clone(),
                        registered: registered.clone(),
                        declared: type_name.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    merged.insert(column.clone(), type_name.clone());
                    changed = true;
                }
            }
        }
        if merged.len() > CUSTOM_TABLE_COLUMNS_MAX {
            return Err(ControlError::TooManyColumns {
                table: table.to_string(),
                max: CUSTOM_TABLE_COLUMNS_MAX,
            });
        }
        if changed {
            self.state
                .tables
                .entry(key)
                .or_default()
                .insert(table.to_string(), merged.clone());
        }
        Ok(Outcome::new(TableDeclared {
            columns: merged,
            changed,
        }))
    }

    /// The columns of `table` of `workspace`, `None` when it was never declared.
    pub fn custom_table(
        &self,
        workspace: &ResourceName,
        table: &str,
    ) -> Result<Option<&TableColumns>, ControlError> {
        let key = self.get_workspace(workspace)?.id.to_ascii_lowercase();
        Ok(self.state.tables.get(&key).and_then(|t| t.get(table)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn cols(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect()
    }

    fn plane_with_workspace() -> (ControlPlane, ResourceName) {
        let mut world = World::new(cmksim_sim::Profile::azure_2020());
        world.workspace("ws-ops");
        (world.cp, ws_name("ws-ops"))
    }

    #[test]
    fn a_column_type_never_changes_and_a_refusal_changes_nothing() {
        let (mut cp, ws) = plane_with_workspace();
        let first = cp
            .declare_table(&ws, "App_CL", &cols(&[("Msg", "string")]))
            .unwrap()
            .value;
        assert!(first.changed);
        let same = cp
            .declare_table(&ws, "App_CL", &cols(&[("Msg", "string")]))
            .unwrap()
            .value;
        assert!(!same.changed);
        let before = cp.state().clone();
        let error = cp
            .declare_table(&ws, "App_CL", &cols(&[("N", "long"), ("Msg", "long")]))
            .unwrap_err();
        assert_eq!(
            error,
            ControlError::ColumnTypeConflict {
                table: "App_CL".into(),
                column: "Msg".into(),
                registered: "string".into(),
                declared: "long".into(),
            }
        );
        let body = cp.azure_error(&error);
        assert_eq!((body.code, body.http_status), ("Conflict", 409));
        assert!(body.message.contains("'Msg'") && body.message.contains("string"));
        assert_eq!(
            cp.state(),
            &before,
            "the refused declaration changed nothing"
        );
        let added = cp
            .declare_table(&ws, "App_CL", &cols(&[("N", "long")]))
            .unwrap()
            .value;
        assert_eq!(added.columns.len(), 2);
        assert_eq!(
            cp.custom_table(&ws, "App_CL").unwrap().unwrap()["N"],
            "long"
        );
        assert_eq!(cp.custom_table(&ws, "Other_CL").unwrap(), None);
    }

    #[test]
    fn echoed_names_are_cut() {
        let (mut cp, ws) = plane_with_workspace();
        cp.declare_table(&ws, "App_CL", &cols(&[("Msg", "string")]))
            .unwrap();
        let long = "l".repeat(100_000);
        let error = cp
            .declare_table(&ws, "App_CL", &cols(&[("Msg", &long)]))
            .unwrap_err();
        let message = cp.azure_error(&error).message;
        assert!(message.len() < 1_000, "{} bytes", message.len());
        assert!(message.contains("(100000 characters)"));
    }
}
