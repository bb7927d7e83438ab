//! The rules of data collection rules (`Microsoft.Insights/dataCollectionRules`) that more than
//! one part of cmksim applies: the HTTPS door checks a rule an SDK PUTs, and `cmksim validate`
//! checks a rule a scenario file declares (`[[dcrs]]`), with the same vocabulary, the same name
//! rules, the same stream-to-table mapping and the same limits. Each caller writes its own
//! message (ARM's `InvalidPayload` text, or a FILE:LINE:COLUMN sentence).

use serde::{Deserialize, Serialize};

/// Most streams a rule declares.
pub const STREAMS_MAX: usize = 32;
/// Most columns a stream declares (Azure's per-table limit).
pub const COLUMNS_MAX: usize = 500;
/// Most destinations and data flows of a rule.
pub const FLOWS_MAX: usize = 32;
/// Longest column name.
pub const COLUMN_NAME_CHARS_MAX: usize = 64;

/// A column type of a stream declaration, as DCRs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamType {
    String,
    Int,
    Long,
    Real,
    Boolean,
    Datetime,
    Dynamic,
}

/// Every type, in the order messages list them.
pub const STREAM_TYPES: [StreamType; 7] = [
    StreamType::String,
    StreamType::Int,
    StreamType::Long,
    StreamType::Real,
    StreamType::Boolean,
    StreamType::Datetime,
    StreamType::Dynamic,
];

impl StreamType {
    /// Parses a declared type (case-insensitive, as ARM reads it).
    pub fn parse(name: &str) -> Option<StreamType> {
        STREAM_TYPES
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The name in a DCR.
    pub fn name(self) -> &'static str {
        match self {
            StreamType::String => "string",
            StreamType::Int => "int",
            StreamType::Long => "long",
            StreamType::Real => "real",
            StreamType::Boolean => "boolean",
            StreamType::Datetime => "datetime",
            StreamType::Dynamic => "dynamic",
        }
    }

    /// The column type of a Log Analytics table (the ingest front end's declaration names).
    pub fn table_type(self) -> &'static str {
        match self {
            StreamType::Boolean => "bool",
            other => other.name(),
        }
    }
}

/// Whether `name` may name a declared stream: `Custom-<name>`.
pub fn custom_stream_valid(name: &str) -> bool {
    name.strip_prefix("Custom-")
        .is_some_and(|rest| !rest.is_empty())
}

/// Whether `name` may name a column: letters, digits and `_`, at most
/// [`COLUMN_NAME_CHARS_MAX`], not starting with a digit.
pub fn column_name_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= COLUMN_NAME_CHARS_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The table an output stream writes: `Custom-X_CL` → `X_CL`, `Microsoft-Syslog` → `Syslog`.
pub fn output_table(output_stream: &str) -> Option<String> {
    let table = output_stream
        .strip_prefix("Custom-")
        .or_else(|| output_stream.strip_prefix("Microsoft-"))?;
    (!table.is_empty()).then(|| table.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_in_any_case_and_map_to_table_types() {
        assert_eq!(StreamType::parse("Boolean"), Some(StreamType::Boolean));
        assert_eq!(StreamType::parse("DATETIME"), Some(StreamType::Datetime));
        assert_eq!(StreamType::parse("bool"), None);
        assert_eq!(StreamType::Boolean.table_type(), "bool");
        assert_eq!(StreamType::Int.table_type(), "int");
        for t in STREAM_TYPES {
            assert_eq!(StreamType::parse(t.name()), Some(t));
        }
    }

    #[test]
    fn names_and_outputs() {
        assert!(custom_stream_valid("Custom-App"));
        assert!(!custom_stream_valid("Custom-"));
        assert!(!custom_stream_valid("Microsoft-Syslog"));
        assert!(column_name_valid("Level_2"));
        assert!(!column_name_valid("2Level"));
        assert!(!column_name_valid("a-b"));
        assert!(!column_name_valid(&"x".repeat(65)));
        assert_eq!(output_table("Custom-App_CL").as_deref(), Some("App_CL"));
        assert_eq!(output_table("Microsoft-Syslog").as_deref(), Some("Syslog"));
        assert_eq!(output_table("Custom-"), None);
        assert_eq!(output_table("App_CL"), None);
    }
}
