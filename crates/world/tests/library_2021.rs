//! The scenario library under profile `azure-2021` (seed 001), as `cmksim run --profile
//! azure-2021` runs it: each scenario's own `[profile]` overrides merged into azure-2021.
//!
//! Seed 001 differs from the profiles the scenarios were written for in a few places, and only
//! there may a scenario's verdicts differ. Each scenario file says it itself: the expectations
//! seed 001 makes false carry `unless_profiles = ["azure-2021"]` (this test checks that they
//! are really false in the azure-2021 run, which proves the difference is real), and the
//! expectations that replace them `profiles = ["azure-2021"]`. [`DIFFERENCES`] lists the places
//! with the seed 001 line and the refusal text to look for. Every expectation that applies and
//! every invariant must hold, as under the scenario's own profile. Each difference is also told
//! in the scenario's story.
//!
//! Cost: the whole library under a second profile doubles the library test (measured on the
//! 2-core machine, debug build: 162 s of test time with `CMKSIM_LIBRARY_2021=all`, 32 s by
//! default). By default this file runs the scenarios that differ and a representative subset of
//! the others; set `CMKSIM_LIBRARY_2021=all` to run every scenario of the library.

use std::path::{Path, PathBuf};

use cmksim_scenario::history::RunSpan;
use cmksim_scenario::model::{Expectation, ProfileFilter};
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
    /// The scenario file says it itself: what seed 001 makes false carries
    /// `unless_profiles = ["azure-2021"]`, what happens instead `profiles = ["azure-2021"]`.
    Expectations {
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

/// The scenario file validated, then put under azure-2021 as `cmksim run --profile azure-2021`
/// does (the file's `[profile]` overrides merged in).
fn under_2021(name: &str) -> Scenario {
    let path = library_dir().join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut scenario = cmksim_scenario::validate_str(&path, &text).unwrap_or_else(|d| {
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
    // As the library test: a scenario that fits fixed ticks runs on turmoil, a longer one (the
    // bill's month) on the event-driven engine.
    let options = match cmksim_scenario::work::fits_fixed_ticks(scenario) {
        true => RunOptions::default(),
        false => RunOptions {
            engine: cmksim_world::Engine::Events,
            ..RunOptions::default()
        },
    };
    run_simulated(scenario, &options, &events).map_err(|e| e.to_string())?;
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
    let scenario = under_2021(name);
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
            let scenario = under_2021(name);
            let error = run(&scenario).expect_err("the world cannot be built under seed 001");
            assert!(error.contains(message), "{name}: {error}");
        }
        Change::Expectations { refusal } => {
            let scenario = under_2021(name);
            let only_2021 = |x: &&Expectation| matches!(&x.profiles, ProfileFilter::Only(p) if p.iter().any(|p| p == PROFILE));
            let not_2021 = |x: &&Expectation| matches!(&x.profiles, ProfileFilter::Except(p) if p.iter().any(|p| p == PROFILE));
            assert!(
                scenario.expectations.iter().any(|x| only_2021(&x)),
                "{name}: the file says what happens under {PROFILE} (profiles = [\"{PROFILE}\"])"
            );
            let false_under_2021: Vec<&Expectation> =
                scenario.expectations.iter().filter(not_2021).collect();
            assert!(
                !false_under_2021.is_empty(),
                "{name}: the file says what {PROFILE} makes false (unless_profiles)"
            );
            let events = run(&scenario).unwrap_or_else(|e| panic!("{name} under {PROFILE}: {e}"));
            let broken = broken(&scenario, &events);
            assert!(
                broken.is_empty(),
                "{name} under {PROFILE}: every expectation that applies holds:\n{broken:#?}"
            );
            // The difference is real: what the file keeps from seed 001 is false in this run.
            let span = RunSpan::of(&events);
            for x in false_under_2021 {
                let verdict = expect::evaluate_one(x, &events, span);
                assert_eq!(
                    verdict.outcome,
                    Outcome::Broken,
                    "{name}: {} is false under {PROFILE}: {verdict:#?}",
                    x.label()
                );
            }
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
