//! libFuzzer target: the KQL parser (`cmksim_kql::parse`) and, for what parses, the evaluator
//! (`cmksim_kql::execute`) over the KQL tests' own data set (`crates/kql/tests/common`, used
//! here as it is, not copied).
//!
//! The input is the query text. Checked: no panic; a parse error has a 1-based line and column
//! within the text; an execution error has a message.

#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cmksim_kql::{execute, parse, Table};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)] // the KQL tests' helpers; this target uses the data set only
#[path = "../../crates/kql/tests/common/mod.rs"]
mod common;

fn tables() -> &'static BTreeMap<String, Table> {
    static TABLES: OnceLock<BTreeMap<String, Table>> = OnceLock::new();
    TABLES.get_or_init(common::dataset)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(query) => {
            if let Err(e) = execute(&query, tables(), common::NOW_MS) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line as usize <= lines && e.column >= 1,
                "{e}"
            );
        }
    }
});
