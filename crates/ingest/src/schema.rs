//! Table schemas: the standard tables agents write and the custom `*_CL` tables users declare.
//!
//! The standard tables carry a core subset of the columns of the Azure Monitor table reference
//! (Heartbeat, Perf, Event, Syslog); their types are fixed. Custom tables are declared per
//! workspace, as in Azure, either by `RegisterCustomTable` or by a declaration carried in an
//! ingest request. A declaration may add columns to a registered table but never change a
//! column's type: data already stored under the old type would become unreadable by queries.
//!
//! Where declarations live: with the data they describe, in cluster storage (`storage.v1`
//! `DeclareTable`/`GetTable`, persisted with storage's control state), so they survive restarts
//! of the front end and of storage alike. The front end keeps none: it reads a table's columns
//! from storage ([`crate::backend::StorageBackend::custom_table`]), checks a declaration against
//! them here ([`check_declaration`]: names, types, limits, and that no column changes type),
//! and has storage record it before appending the records that use it. Storage applies the
//! declaration under its own lock and refuses a changed type again, so two front ends racing
//! cannot register two types for one column.
//!
//! Everything here is a plain value; a declaration is checked whole before anything is written,
//! so a refused declaration changes nothing. [`CustomTables`] is an in-memory registry for the
//! in-memory storage backend.

use std::collections::BTreeMap;

use crate::error::IngestError;
use crate::record::ColumnType;

/// Every table has this column; it is carried outside the column map.
pub const TIME_GENERATED: &str = "TimeGenerated";
/// Custom tables end with this suffix (Azure: "custom log tables always end with _CL").
pub const CUSTOM_TABLE_SUFFIX: &str = "_CL";
/// Azure Monitor: at most 500 columns per table.
pub const COLUMNS_PER_TABLE_MAX: usize = 500;
/// Azure Monitor: column names up to 45 characters.
pub const COLUMN_NAME_CHARS_MAX: usize = 45;
/// Table names up to 63 characters (Azure resource-name style bound).
pub const TABLE_NAME_CHARS_MAX: usize = 63;
/// A simulator bound on custom tables per workspace, so a registry cannot grow without limit.
pub const CUSTOM_TABLES_PER_WORKSPACE_MAX: usize = 500;

/// Whether a table is built in or declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    Standard,
    Custom,
}

/// A table's columns (without `TimeGenerated`, which every table has as `datetime`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub kind: TableKind,
    pub columns: BTreeMap<String, ColumnType>,
}

impl TableSchema {
    /// The type of a column, `TimeGenerated` included.
    pub fn column_type(&self, column: &str) -> Option<ColumnType> {
        if column == TIME_GENERATED {
            return Some(ColumnType::DateTime);
        }
        self.columns.get(column).copied()
    }
}

/// The names of the standard tables, sorted.
pub use cmksim_sim::rules::STANDARD_TABLES;

/// A standard table's schema (core subset of the Azure Monitor table reference).
pub fn standard_table(name: &str) -> Option<TableSchema> {
    use ColumnType::{DateTime, Long, Real, String as Str};
    let columns: &[(&str, ColumnType)] = match name {
        "Heartbeat" => &[
            ("Computer", Str),
            ("Category", Str),
            ("OSType", Str),
            ("OSName", Str),
            ("Version", Str),
            ("ComputerIP", Str),
            ("SourceComputerId", Str),
            ("Solutions", Str),
            ("RemoteIPCountry", Str),
        ],
        "Perf" => &[
            ("Computer", Str),
            ("ObjectName", Str),
            ("CounterName", Str),
            ("InstanceName", Str),
            ("CounterValue", Real),
            ("CounterPath", Str),
            ("SourceSystem", Str),
        ],
        "Event" => &[
            ("Computer", Str),
            ("EventLog", Str),
            ("Source", Str),
            ("EventID", Long),
            ("EventLevel", Long),
            ("EventLevelName", Str),
            ("EventCategory", Long),
            ("RenderedDescription", Str),
            ("UserName", Str),
            ("SourceSystem", Str),
        ],
        "Syslog" => &[
            ("Computer", Str),
            ("Facility", Str),
            ("SeverityLevel", Str),
            ("SyslogMessage", Str),
            ("ProcessID", Long),
            ("ProcessName", Str),
            ("HostName", Str),
            ("HostIP", Str),
            ("EventTime", DateTime),
            ("SourceSystem", Str),
        ],
        _ => return None,
    };
    Some(TableSchema {
        name: name.to_string(),
        kind: TableKind::Standard,
        columns: columns.iter().map(|(c, t)| (c.to_string(), *t)).collect(),
    })
}

/// True for a name of the custom-table shape (`…_CL`).
pub fn is_custom_name(table: &str) -> bool {
    table.ends_with(CUSTOM_TABLE_SUFFIX)
}

/// Checks a custom table's name: `[A-Za-z][A-Za-z0-9_]*_CL`, at most 63 characters.
pub fn check_custom_table_name(table: &str) -> Result<(), IngestError> {
    let invalid = |reason: &str| IngestError::InvalidTableName {
        table: table.to_string(),
        reason: reason.to_string(),
    };
    if !is_custom_name(table) {
        return Err(invalid("custom table names must end with _CL"));
    }
    if table.len() <= CUSTOM_TABLE_SUFFIX.len() {
        return Err(invalid("the name before _CL is empty"));
    }
    if table.chars().count() > TABLE_NAME_CHARS_MAX {
        return Err(invalid("longer than 63 characters"));
    }
    check_identifier(table).map_err(|r| invalid(&r))
}

/// Checks a column name: `[A-Za-z][A-Za-z0-9_]*`, at most 45 characters, not `TimeGenerated`.
pub fn check_column_name(table: &str, column: &str) -> Result<(), IngestError> {
    let invalid = |reason: String| IngestError::InvalidColumnName {
        table: table.to_string(),
        column: column.to_string(),
        reason,
    };
    if column == TIME_GENERATED {
        return Err(invalid(
            "TimeGenerated is implicit in every table and cannot be declared".into(),
        ));
    }
    if column.chars().count() > COLUMN_NAME_CHARS_MAX {
        return Err(invalid(format!(
            "longer than {COLUMN_NAME_CHARS_MAX} characters"
        )));
    }
    check_identifier(column).map_err(invalid)
}

fn check_identifier(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => {}
        Some(_) => return Err("must start with a letter".into()),
        None => return Err("is empty".into()),
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!(
            "contains {bad:?}: only letters, digits and _ are allowed"
        ));
    }
    Ok(())
}

/// What applying a declaration would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub workspace: String,
    pub schema: TableSchema,
    /// True when the declaration adds a table or columns (false: already registered as is).
    pub changes: bool,
}

/// Checks a declaration of `columns` for `table` in `workspace` against the table as registered
/// (`existing`, `None` when not yet declared), without changing anything; returns the merged
/// schema, to be registered once the caller commits.
pub fn check_declaration(
    existing: Option<&TableSchema>,
    workspace: &str,
    table: &str,
    columns: &[(String, String)],
) -> Result<Declaration, IngestError> {
    if standard_table(table).is_some() {
        return Err(IngestError::StandardTableDeclared {
            table: table.to_string(),
        });
    }
    check_custom_table_name(table)?;
    let mut merged = existing.cloned().unwrap_or(TableSchema {
        name: table.to_string(),
        kind: TableKind::Custom,
        columns: BTreeMap::new(),
    });
    let mut changes = existing.is_none();
    let mut seen = BTreeMap::new();
    for (column, type_name) in columns {
        check_column_name(table, column)?;
        let declared =
            ColumnType::parse(type_name).ok_or_else(|| IngestError::UnknownColumnType {
                table: table.to_string(),
                column: column.clone(),
                type_name: type_name.clone(),
            })?;
        if seen.insert(column.clone(), declared).is_some() {
            return Err(IngestError::DuplicateColumnDeclaration {
                table: table.to_string(),
                column: column.clone(),
            });
        }
        match merged.columns.get(column) {
            Some(registered) if *registered != declared => {
                return Err(IngestError::ColumnTypeConflict {
                    table: table.to_string(),
                    column: column.clone(),
                    registered: *registered,
                    declared,
                })
            }
            Some(_) => {}
            None => {
                merged.columns.insert(column.clone(), declared);
                changes = true;
            }
        }
    }
    if merged.columns.len() > COLUMNS_PER_TABLE_MAX {
        return Err(IngestError::TooManyColumns {
            table: table.to_string(),
            columns: merged.columns.len(),
            max: COLUMNS_PER_TABLE_MAX,
        });
    }
    Ok(Declaration {
        workspace: workspace.to_string(),
        schema: merged,
        changes,
    })
}

/// The custom tables of every workspace, in memory: the registry of
/// [`crate::backend::memory::MemoryStorage`] (the service's is storage's).
#[derive(Clone, Debug, Default)]
pub struct CustomTables {
    by_workspace: BTreeMap<String, BTreeMap<String, TableSchema>>,
}

impl CustomTables {
    /// The schema of `table` as seen by `workspace` (standard or registered custom).
    pub fn lookup(&self, workspace: &str, table: &str) -> Option<TableSchema> {
        standard_table(table).or_else(|| {
            self.by_workspace
                .get(workspace)
                .and_then(|tables| tables.get(table))
                .cloned()
        })
    }

    /// [`check_declaration`] against this registry, with the bound on tables per workspace.
    pub fn check_declaration(
        &self,
        workspace: &str,
        table: &str,
        columns: &[(String, String)],
    ) -> Result<Declaration, IngestError> {
        let existing = self.by_workspace.get(workspace).and_then(|t| t.get(table));
        if existing.is_none() {
            let count = self.by_workspace.get(workspace).map_or(0, BTreeMap::len);
            if count >= CUSTOM_TABLES_PER_WORKSPACE_MAX {
                return Err(IngestError::TooManyCustomTables {
                    workspace: workspace.to_string(),
                    max: CUSTOM_TABLES_PER_WORKSPACE_MAX,
                });
            }
        }
        check_declaration(existing, workspace, table, columns)
    }

    /// Applies a checked declaration.
    pub fn apply(&mut self, declaration: Declaration) {
        if declaration.changes {
            self.by_workspace
                .entry(declaration.workspace)
                .or_default()
                .insert(declaration.schema.name.clone(), declaration.schema);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(cols: &[(&str, &str)]) -> Vec<(String, String)> {
        cols.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn standard_tables_have_their_core_columns() {
        let perf = standard_table("Perf").unwrap();
        assert_eq!(perf.column_type("CounterValue"), Some(ColumnType::Real));
        assert_eq!(
            perf.column_type("TimeGenerated"),
            Some(ColumnType::DateTime)
        );
        assert_eq!(
            standard_table("Event").unwrap().column_type("EventID"),
            Some(ColumnType::Long)
        );
        assert!(standard_table("Nope").is_none());
        for t in STANDARD_TABLES {
            assert!(standard_table(t).is_some());
        }
    }

    #[test]
    fn declarations_add_columns_but_never_change_types() {
        let mut tables = CustomTables::default();
        let d = tables
            .check_declaration("ws1", "App_CL", &decl(&[("Msg", "string"), ("N", "int")]))
            .unwrap();
        assert!(d.changes);
        tables.apply(d);
        assert_eq!(
            tables.lookup("ws1", "App_CL").unwrap().column_type("N"),
            Some(ColumnType::Long)
        );
        assert!(tables.lookup("ws2", "App_CL").is_none(), "per workspace");
        let same = tables
            .check_declaration("ws1", "App_CL", &decl(&[("Msg", "string")]))
            .unwrap();
        assert!(!same.changes);
        let conflict = tables
            .check_declaration("ws1", "App_CL", &decl(&[("Msg", "long")]))
            .unwrap_err();
        assert!(matches!(conflict, IngestError::ColumnTypeConflict { .. }));
        assert!(matches!(
            tables.check_declaration("ws1", "App", &[]).unwrap_err(),
            IngestError::InvalidTableName { .. }
        ));
        assert!(matches!(
            tables.check_declaration("ws1", "Perf", &[]).unwrap_err(),
            IngestError::StandardTableDeclared { .. }
        ));
        assert!(matches!(
            tables
                .check_declaration("ws1", "B_CL", &decl(&[("1x", "string")]))
                .unwrap_err(),
            IngestError::InvalidColumnName { .. }
        ));
        assert!(matches!(
            tables
                .check_declaration("ws1", "B_CL", &decl(&[("x", "decimal")]))
                .unwrap_err(),
            IngestError::UnknownColumnType { .. }
        ));
        assert!(matches!(
            tables
                .check_declaration("ws1", "B_CL", &decl(&[("x", "real"), ("x", "real")]))
                .unwrap_err(),
            IngestError::DuplicateColumnDeclaration { .. }
        ));
    }
}
