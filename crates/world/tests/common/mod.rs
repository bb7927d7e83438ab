//! What the library tests share: where a library scenario lives, loading it, and the verdict
//! that a run held — every expectation and every invariant (the one home of that loop; the
//! turmoil test `library.rs` and the event-driven engine's `engine.rs` both judge with it).

#![allow(dead_code)]

use std::path::PathBuf;

use cmksim_scenario::{expect, oracle, Outcome, Scenario};
use cmksim_sim::Event;

/// The file of the library scenario `name`.
pub fn library_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios")
        .join(format!("{name}.toml"))
}

/// The library scenario `name`, validated (a diagnostic fails the test with every line).
pub fn load(name: &str) -> Scenario {
    cmksim_scenario::validate_file(library_file(name)).unwrap_or_else(|d| {
        panic!(
            "{name}: {}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Fails unless every expectation and invariant of `scenario` held (or did not apply) over
/// `events`, and at least one was judged held.
pub fn assert_all_held(name: &str, scenario: &Scenario, events: &[Event]) {
    let verdicts: Vec<_> = expect::evaluate(scenario, events)
        .into_iter()
        .chain(oracle::check_invariants(scenario, events))
        .collect();
    let broken: Vec<String> = verdicts
        .iter()
        .filter(|v| !v.held() && v.outcome != Outcome::NotApplicable)
        .map(|v| format!("{} {}: {}", v.id, v.title, v.detail))
        .collect();
    assert!(broken.is_empty(), "{name}: broken:\n{}", broken.join("\n"));
    assert!(
        verdicts.iter().any(|v| v.held()),
        "{name}: nothing was judged held, the run judged nothing"
    );
}
