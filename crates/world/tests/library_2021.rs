//! The scenario library under profile `azure-2021` (seed 001), as `cmksim run --profile
//! azure-2021` runs it: each scenario's own `[profile]` overrides merged into azure-2021.
//!
//! Seed 001 differs from the profiles the scenarios were written for in a few places, and only
//! there may a scenario's verdicts differ. [`DIFFERENCES`] lists each place: the expectations
//! seed 001 makes false (they must be broken, which proves the difference is real), and the
//! expectations that replace them, written in the scenario language and appended to the file's
//! own. Every other expectation and every invariant must hold, as under the scenario's own
//! profile. Each difference is also told in the scenario's story.
//!
//! Cost: the whole library under a second profile doubles the library test (measured on the
//! 2-core machine, debug build: 162 s of test time with `CMKSIM_LIBRARY_2021=all`, 32 s by
//! default). By default this file runs the scenarios that differ and a representative subset of
//! the others; set `CMKSIM_LIBRARY_2021=all` to run every scenario of the library.

use std::path::{Path, PathBuf};

use cmksim_scenario::{expect, oracle, Outcome, Scenario};
use cmksim_sim::{Event, EventLog, Profile};
use cmksim_world::{run_simulated, RunOptions};

const PROFILE: &str = "azure-2021";

/// The environment variable that widens [`representative_scenarios_hold_under_azure_2021`] to
/// the whole library.
const ALL_ENV: &str = "CMKSIM_LIBRARY_2021";

/// Scenarios whose verdicts do not change under seed 001, run by default: the flagship
/// revocation, a transient outage, and a pinned rotation (the key-access loop, which seed 001
/// leaves as seed 000 has it), and the link limit (seed 001's wording of the link messages).
const REPRESENTATIVE: [&str; 4] = [
    "revocation",
    "vault-blip-5m",
    "rotation-pinned",
    "third-link-refused",
];

/// How a scenario's run differs under azure-2021.
struct Difference {
    scenario: &'static str,
    /// The seed 001 line the difference comes from.
    seed_001: &'static str,
    change: Change,
}

enum Change {
    /// These expectations (by label) are false under seed 001; `replacements` (TOML
    /// `[[expect]]` tables) say what happens instead.
    Expectations {
        broken: &'static [&'static str],
        replacements: &'static str,
        /// A step whose refusal carries seed 001's text, and that text.
        refusal: Option<(&'static str, &'static str)>,
    },
    /// The world cannot be built under seed 001: the set-up is refused with this message.
    SetupRefused { message: &'static str },
}

const DIFFERENCES: [Difference; 3] = [
    Difference {
        scenario: "cluster-delete-recover",
        seed_001: "You must unlink all workspaces from the cluster before deleting it.",
        change: Change::Expectations {
            // "deleted within 1h31m after delete", "step recover succeeds", "healthy within 30m
            // after recover" (it holds vacuously: the cluster never stopped being healthy).
            broken: &["expect#1", "expect#4"],
            replacements: r#"
[[expect]]
id = "delete-refused-2021"
step = "delete"
outcome = "fails"
error_code = "Conflict"

[[expect]]
id = "never-deleted-2021"
storage = "cluster1"
state = "deleted"
never = true

[[expect]]
id = "nothing-to-recover-2021"
step = "recover"
outcome = "fails"
error_code = "Conflict"
"#,
            refusal: Some((
                "delete",
                "You must unlink all workspaces from the cluster before deleting it.",
            )),
        },
    },
    Difference {
        scenario: "link-before-provisioning",
        seed_001: "As any cluster operation, linking a workspace can be performed only after the \
                   completion of the Log Analytics cluster provisioning.",
        change: Change::Expectations {
            // "step early-link succeeds", "dropped (not-provisioned) by 2h".
            broken: &["expect#1", "expect#3"],
            replacements: r#"
[[expect]]
id = "early-link-refused-2021"
step = "early-link"
outcome = "fails"
error_code = "BadRequest"

[[expect]]
id = "nothing-dropped-2021"
ingest_to = "ws-01"
outcome = "dropped"
never = true
"#,
            refusal: Some((
                "early-link",
                "Operation cannot be executed now. Wait for the Async operation to complete and \
                 try again.",
            )),
        },
    },
    Difference {
        scenario: "rotation-versionless",
        seed_001: "The capacity reservation level can be in the range of 1,000 GB to 3,000 GB per \
                   day.",
        change: Change::SetupRefused {
            message: "Capacity in SKU is not in range. Should be minimum 1000 and up to the max \
                      allowed capacity which is available under ‘Usage and estimated cost’ in \
                      your workspace.",
        },
    },
];

fn library_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn library_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(library_dir())
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml")
                .then(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))?
        })
        .collect();
    names.sort();
    names
}

/// The scenario file validated with `extra` appended, then put under azure-2021 as `cmksim run
/// --profile azure-2021` does (the file's `[profile]` overrides merged in).
fn under_2021(name: &str, extra: &str) -> Scenario {
    let path = library_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut scenario = cmksim_scenario::validate_str(&path, &format!("{text}\n{extra}"))
        .unwrap_or_else(|d| {
            let lines: Vec<String> = d.iter().map(|d| d.to_string()).collect();
            panic!("{name}: {}", lines.join("\n"))
        });
    scenario.profile =
        Profile::builtin_with_overrides(PROFILE, scenario.profile_overrides.as_ref())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    scenario.meta.profile_name = PROFILE.to_string();
    scenario
}

fn run(scenario: &Scenario) -> Result<Vec<Event>, String> {
    let events = EventLog::default();
    run_simulated(scenario, &RunOptions::default(), &events).map_err(|e| e.to_string())?;
    Ok(events.snapshot())
}

/// Labels of the broken expectations and invariants, with their details.
fn broken(scenario: &Scenario, events: &[Event]) -> Vec<(String, String)> {
    let verdicts: Vec<_> = expect::evaluate(scenario, events)
        .into_iter()
        .chain(oracle::check_invariants(scenario, events))
        .collect();
    assert!(
        verdicts.iter().any(|v| v.held()),
        "{}: nothing was judged held",
        scenario.meta.name
    );
    verdicts
        .into_iter()
        .filter(|v| !v.held() && v.outcome != Outcome::NotApplicable)
        .map(|v| (v.id, format!("{}: {}", v.title, v.detail)))
        .collect()
}

fn assert_holds_unchanged(name: &str) {
    assert!(
        !DIFFERENCES.iter().any(|d| d.scenario == name),
        "{name} is listed as differing"
    );
    let scenario = under_2021(name, "");
    let events = run(&scenario).unwrap_or_else(|e| panic!("{name} under {PROFILE}: {e}"));
    let broken = broken(&scenario, &events);
    assert!(
        broken.is_empty(),
        "{name} under {PROFILE}: broken (a difference of seed 001 not listed in DIFFERENCES?):\n{broken:#?}"
    );
}

fn assert_difference(d: &Difference) {
    let name = d.scenario;
    let story = cmksim_scenario::validate_file(library_dir().join(format!("{name}.toml")))
        .unwrap_or_else(|_| panic!("{name} validates"))
        .meta
        .story;
    assert!(
        story.contains(PROFILE),
        "{name}: the story tells the {PROFILE} difference ({})",
        d.seed_001
    );
    match &d.change {
        Change::SetupRefused { message } => {
            let scenario = under_2021(name, "");
            let error = run(&scenario).expect_err("the world cannot be built under seed 001");
            assert!(error.contains(message), "{name}: {error}");
        }
        Change::Expectations {
            broken: expected_broken,
            replacements,
            refusal,
        } => {
            let scenario = under_2021(name, replacements);
            let events = run(&scenario).unwrap_or_else(|e| panic!("{name} under {PROFILE}: {e}"));
            let broken = broken(&scenario, &events);
            let labels: Vec<&str> = broken.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(
                labels, *expected_broken,
                "{name} under {PROFILE}: exactly the expectations seed 001 makes false are broken, \
                 and every replacement holds:\n{broken:#?}"
            );
            if let Some((step, text)) = refusal {
                let failed = events
                    .iter()
                    .find(|e| {
                        e.kind == cmksim_scenario::events::SCENARIO_STEP_FAILED
                            && e.data.get("step").and_then(|s| s.as_str()) == Some(step)
                    })
                    .unwrap_or_else(|| panic!("{name}: step {step} failed"));
                assert!(
                    failed.message.contains(text),
                    "{name}: step {step} is refused with seed 001's text: {}",
                    failed.message
                );
            }
        }
    }
}

#[test]
fn scenarios_that_differ_under_azure_2021_differ_only_where_seed_001_does() {
    for d in &DIFFERENCES {
        assert_difference(d);
    }
}

#[test]
fn representative_scenarios_hold_under_azure_2021() {
    let all = std::env::var(ALL_ENV).is_ok_and(|v| v == "all");
    let names: Vec<String> = match all {
        true => library_names()
            .into_iter()
            .filter(|n| !DIFFERENCES.iter().any(|d| d.scenario == n))
            .collect(),
        false => REPRESENTATIVE.iter().map(|s| s.to_string()).collect(),
    };
    for name in &names {
        assert_holds_unchanged(name);
    }
}

#[test]
fn the_lists_name_library_scenarios() {
    let names = library_names();
    for name in DIFFERENCES.iter().map(|d| d.scenario).chain(REPRESENTATIVE) {
        assert!(
            names.iter().any(|n| n == name),
            "{name} is no library scenario"
        );
    }
    assert!(Path::new(&library_dir()).is_dir());
}
