//! Validation diagnostics as the tests read them: every error of a text as displayed, and the
//! `t.toml:LINE:COLUMN` of a place in it computed independently of the crate's own source map,
//! so that a test checks the crate's positions rather than repeating them.

use std::path::Path;

use cmksim_scenario::{validate_str, Scenario};

/// The scenario a text (validated as `t.toml`) reads into; panics with every diagnostic, one
/// per line, when it has any (a test's fixture is meant to be valid).
pub fn valid(text: &str) -> Scenario {
    validate_str(Path::new("t.toml"), text).unwrap_or_else(|diags| {
        let lines: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        panic!("{}", lines.join("\n"))
    })
}

/// All diagnostics of a text (validated as `t.toml`), as displayed.
pub fn errors(text: &str) -> Vec<String> {
    match validate_str(Path::new("t.toml"), text) {
        Ok(_) => Vec::new(),
        Err(diags) => diags.iter().map(|d| d.to_string()).collect(),
    }
}

/// `t.toml:LINE:COLUMN` (1-based) of byte `offset` of `text`.
pub fn position_of(text: &str, offset: usize) -> String {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("t.toml:{line}:{column}")
}

/// The position of the `nth` byte of the first occurrence of `needle`.
pub fn at(text: &str, needle: &str, nth: usize) -> String {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in text"));
    position_of(text, offset + nth)
}

/// Some diagnostic of `text` is at `position` and contains `message_part`.
pub fn assert_one(text: &str, position: &str, message_part: &str) {
    let errs = errors(text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{position}: ")) && e.contains(message_part)),
        "expected {position}: …{message_part}…, got:\n{}",
        errs.join("\n")
    );
}
