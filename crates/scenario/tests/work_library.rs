//! The scenario library stays well under the work limits of `cmksim_scenario::work`: each
//! estimate is at most a thirtieth of its limit (a third for simulated days: the bill's month),
//! so the limits refuse runaway files and never a teaching scenario. Prints what the library needs (`--nocapture`), the numbers the module doc
//! quotes.

use std::path::PathBuf;
use std::time::Duration;

use cmksim_scenario::work::{self, RECORDS_MAX, SIMULATED_DAYS_MAX, STEPS_MAX, TICK_DEFAULT_MS};

/// How far under the records and steps limits the library must stay (the longest fixed-tick
/// scenario, `lockbox-approved-then-expired`, takes 561,000 steps: a factor of 35).
const MARGIN_FACTOR: u64 = 30;
/// How far under the simulated-days limit: the bill's scenario simulates a month, the billing
/// period (the limit is 100 days).
const DAYS_MARGIN_FACTOR: u64 = 3;

#[test]
fn every_library_scenario_is_far_under_the_work_limits() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the scenario library")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let tick = Duration::from_millis(TICK_DEFAULT_MS);
    let (mut records_max, mut simulated_max, mut steps_max) = (0u64, Duration::ZERO, 0u64);
    for file in &files {
        let scenario = cmksim_scenario::validate_file(file)
            .unwrap_or_else(|d| panic!("{} does not validate: {d:?}", file.display()));
        // The library's tests run the scenarios that fit fixed ticks on turmoil.
        let fixed_tick = work::fits_fixed_ticks(&scenario);
        let estimate = work::estimate(&scenario, tick, fixed_tick);
        println!(
            "{:<40} {:>8} records {:>8.2} days {:>9} steps",
            file.file_name().unwrap_or_default().to_string_lossy(),
            estimate.records,
            estimate.simulated_days(),
            estimate.steps
        );
        records_max = records_max.max(estimate.records);
        simulated_max = simulated_max.max(estimate.simulated);
        if estimate.fixed_tick {
            steps_max = steps_max.max(estimate.steps);
        }
        let text = std::fs::read_to_string(file).expect("readable");
        let diags = work::check(file, &text, &scenario, tick, fixed_tick);
        assert!(diags.is_empty(), "{diags:?}");
    }
    println!(
        "library needs: {records_max} records, {} of simulated time, {steps_max} steps",
        cmksim_sim::format_duration(simulated_max)
    );
    assert!(records_max * MARGIN_FACTOR <= RECORDS_MAX);
    assert!(
        simulated_max * DAYS_MARGIN_FACTOR as u32
            <= Duration::from_secs(SIMULATED_DAYS_MAX * 86_400)
    );
    assert!(steps_max * MARGIN_FACTOR <= STEPS_MAX);
}
