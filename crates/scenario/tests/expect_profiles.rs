//! `profiles` / `unless_profiles` on `[[expect]]`: a scenario states where another behaviour
//! profile's source differs. The filter reads into the model, is checked at its place, and an
//! expectation that does not apply to the run's profile is reported not applicable (never broken),
//! with no probe made for it.

use std::path::Path;

use cmksim_scenario::expect::evaluate;
use cmksim_scenario::model::ProfileFilter;
use cmksim_scenario::{validate_str, Outcome};

mod common;
use common::diagnostics::{assert_one, at};

const FILE: &str = r#"[scenario]
name = "t"
title = "T"
duration = "2h"

[[workspaces]]
name = "ws-01"
location = "westeurope"

[[expect]]
id = "everywhere"
query = "ws-01"
outcome = "succeeds"
at = "1h"

[[expect]]
id = "only-2021"
query = "ws-01"
outcome = "fails"
at = "1h30m"
profiles = ["azure-2021"]

[[expect]]
id = "not-2021"
query = "ws-01"
outcome = "succeeds"
at = "1h45m"
unless_profiles = ["azure-2021", "azure-current"]
"#;

#[test]
fn the_filter_reads_into_the_model_and_decides_what_is_judged() {
    let mut s = validate_str(Path::new("t.toml"), FILE).unwrap();
    assert_eq!(s.expectations[0].profiles, ProfileFilter::All);
    assert_eq!(
        s.expectations[1].profiles,
        ProfileFilter::Only(vec!["azure-2021".into()])
    );
    assert!(s.expectations[2].applies_under("azure-2020"));
    assert!(!s.expectations[2].applies_under("azure-current"));
    // azure-2020 (the file's): the 2021-only probe is not made, its verdict not applicable.
    let probes: Vec<u64> = s
        .query_probes()
        .iter()
        .map(|p| p.offset.as_secs())
        .collect();
    assert_eq!(probes, vec![3600, 6300]);
    let verdicts = evaluate(&s, &[]);
    assert_eq!(verdicts[1].outcome, Outcome::NotApplicable);
    assert!(
        verdicts[1]
            .detail
            .contains("judged only under azure-2021; this run is azure-2020"),
        "{}",
        verdicts[1].detail
    );
    assert_eq!(
        verdicts[0].outcome,
        Outcome::Broken,
        "no probe event: judged"
    );
    // Under azure-2021 the other way round.
    s.meta.profile_name = "azure-2021".into();
    let probes: Vec<u64> = s
        .query_probes()
        .iter()
        .map(|p| p.offset.as_secs())
        .collect();
    assert_eq!(probes, vec![3600, 5400]);
    let verdicts = evaluate(&s, &[]);
    assert_eq!(verdicts[1].outcome, Outcome::Broken);
    assert_eq!(verdicts[2].outcome, Outcome::NotApplicable);
}

#[test]
fn filter_mistakes_are_reported_at_their_place() {
    let text = FILE.replace("profiles = [\"azure-2021\"]", "profiles = [\"azure-2022\"]");
    assert_one(
        &text,
        &at(&text, "\"azure-2022\"", 0),
        "unknown profile \"azure-2022\"",
    );
    let text = FILE.replace(
        "profiles = [\"azure-2021\"]",
        "profiles = [\"azure-2021\"]\nunless_profiles = [\"azure-2020\"]",
    );
    assert_one(
        &text,
        &at(&text, "[\"azure-2020\"]", 0),
        "either `profiles` or `unless_profiles`, not both",
    );
    let text = FILE.replace("profiles = [\"azure-2021\"]", "profiles = []");
    assert_one(&text, &at(&text, "[]", 0), "must name at least one profile");
}
