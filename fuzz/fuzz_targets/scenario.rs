//! libFuzzer target: the scenario parser and validator (`cmksim_scenario::validate_str`, what
//! `cmksim validate` calls). The input is the file's text (non-UTF-8 input is refused before the
//! parser by `read_source`, so only UTF-8 reaches it here).
//!
//! Checked, as in `crates/scenario/tests/fuzz_scenarios.rs`: no panic; each diagnostic either
//! has a 1-based line and column within the text and displays as `FILE:LINE:COLUMN: …`, or
//! concerns the whole file (0, 0) and displays as `FILE: …`; none is longer than 4 KiB.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// The longest diagnostic accepted: echoed input is clipped (`cmksim_sim::text::echo`).
const DIAGNOSTIC_BYTES_MAX: usize = 4 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    let Err(diagnostics) = cmksim_scenario::validate_str(path, text) else {
        return;
    };
    let lines = text.split('\n').count();
    for d in &diagnostics {
        let shown = d.to_string();
        assert!(shown.len() <= DIAGNOSTIC_BYTES_MAX, "{} bytes", shown.len());
        if d.line == 0 {
            assert_eq!(d.column, 0, "{shown}");
            assert!(shown.starts_with("fuzz.toml: "), "{shown}");
        } else {
            assert!(d.column >= 1 && d.line <= lines, "{shown}");
            let prefix = format!("fuzz.toml:{}:{}: ", d.line, d.column);
            assert!(shown.starts_with(&prefix), "{shown}");
        }
    }
});
