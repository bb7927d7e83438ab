//! Reading a scenario file: bytes → text → the raw TOML shape, with positioned errors.
//!
//! This is the first of two phases. TOML syntax errors, unknown keys, wrong value types and
//! unknown words of a closed vocabulary are found here by the TOML reader, which stops at the
//! first one; its byte span becomes `FILE:LINE:COLUMN`. Everything that needs the whole file
//! (references, ranges, durations, time order) is checked afterwards in `validate`, which can
//! report many problems at once.

use std::path::Path;

use crate::errors::{Diagnostic, SourceMap};
use crate::limits::SCENARIO_FILE_MAX_BYTES;
use crate::raw::RawFile;

/// Reads a scenario file as UTF-8 text, refusing missing, unreadable or oversized files with a
/// message naming the path.
pub fn read_source(path: &Path) -> Result<String, Diagnostic> {
    let metadata = std::fs::metadata(path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file".to_string()
        } else {
            e.to_string()
        };
        Diagnostic::whole_file(path, format!("cannot read scenario file: {what}"))
    })?;
    if !metadata.is_file() {
        return Err(Diagnostic::whole_file(
            path,
            "cannot read scenario file: not a regular file",
        ));
    }
    if metadata.len() > SCENARIO_FILE_MAX_BYTES {
        return Err(Diagnostic::whole_file(
            path,
            format!(
                "scenario file is {} bytes; the limit is {SCENARIO_FILE_MAX_BYTES} bytes",
                metadata.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| Diagnostic::whole_file(path, format!("cannot read scenario file: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
        SourceMap::new(path, &text).at(offset, "the file is not valid UTF-8")
    })
}

/// Parses the text into the raw shape; a TOML or type error becomes one positioned diagnostic.
pub fn parse_raw(map: &SourceMap<'_>) -> Result<RawFile, Diagnostic> {
    toml::from_str::<RawFile>(map.text()).map_err(|e| {
        let message = tidy_message(e.message());
        match e.span() {
            Some(span) => map.span(&span, message),
            None => map.at(0, message),
        }
    })
}

/// The TOML reader's messages are good; only trailing newlines and the generic "TOML parse
/// error" prefix some versions add are trimmed.
fn tidy_message(message: &str) -> String {
    let message = message.trim();
    let message = message
        .strip_prefix("TOML parse error: ")
        .unwrap_or(message);
    message.replace('\n', " ")
}
