//! Every scenario of the library validates, and the flagship has the shape its story promises.

use std::path::{Path, PathBuf};

use cmksim_scenario::model::{Action, StepKind, Subject, Timing};
use cmksim_scenario::validate_file;

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(library())
        .expect("scenarios/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_library_scenario_validates() {
    let files = scenario_files();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        match validate_file(file) {
            Ok(s) => {
                assert!(
                    !s.meta.story.trim().is_empty(),
                    "{}: no story",
                    file.display()
                );
                assert!(
                    !s.expectations.is_empty(),
                    "{}: no expectations",
                    file.display()
                );
                assert!(
                    s.timeline.iter().any(|t| t.narrate.is_some()),
                    "{}: no narration",
                    file.display()
                );
                let stem = file.file_stem().unwrap().to_str().unwrap();
                assert_eq!(
                    s.meta.name,
                    stem,
                    "{}: name must match the file",
                    file.display()
                );
            }
            Err(diags) => failures.extend(diags.iter().map(|d| d.to_string())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_library_has_every_story_the_brief_lists() {
    let names: Vec<String> = scenario_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for wanted in [
        "revocation",
        "revocation-access-policy",
        "key-soft-delete-recover",
        "rotation-pinned",
        "rotation-old-version-disabled",
        "rotation-versionless",
        "vault-blip-5m",
        "outage-45m-buffering",
        "outage-longer-than-buffer",
        "partition-storage-vault",
        "hsm-tamper",
        "cluster-delete-recover",
        "unlink-query-both-sides",
        "third-link-refused",
        "link-before-provisioning",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "missing scenarios/{wanted}.toml"
        );
    }
}

#[test]
fn flagship_revocation_shape() {
    let s = validate_file(library().join("revocation.toml")).unwrap();
    assert_eq!(s.meta.profile_name, "azure-2020");
    assert_eq!(s.meta.duration.as_secs(), 4 * 3600);
    assert_eq!(s.world.workspaces.len(), 2);
    assert!(s.world.clusters[0].key.is_some());
    let disable = s.step("disable-key").unwrap();
    assert_eq!(disable.offset.as_secs(), 3600);
    assert!(matches!(
        &disable.what,
        StepKind::Action(Action::UpdateKey {
            enabled: Some(false),
            ..
        })
    ));
    // `after` resolved to an absolute offset.
    assert_eq!(
        s.step("query-while-revoked").unwrap().offset.as_secs(),
        2 * 3600
    );
    let revoked = &s.expectations[0];
    assert!(matches!(revoked.subject, Subject::Storage { .. }));
    assert!(matches!(
        revoked.timing,
        Timing::Within { ref step, .. } if step == "disable-key"
    ));
    assert_eq!(s.query_probes().len(), 2);
}

#[test]
fn schedule_inserts_automatic_restorations() {
    use cmksim_scenario::model::{Fault, ScheduledKind, VaultFault};
    let s = validate_file(library().join("vault-blip-5m.toml")).unwrap();
    let schedule = s.schedule();
    let restore = schedule
        .iter()
        .find(|x| matches!(x.what, ScheduledKind::Restore(_)))
        .expect("the blip is undone");
    assert_eq!(restore.offset.as_secs(), 3600 + 300);
    assert_eq!(
        restore.what,
        ScheduledKind::Restore(Fault::Keyvault(VaultFault::Up))
    );
    assert_eq!(restore.step.label(), "blip");
    let offsets: Vec<u64> = schedule.iter().map(|x| x.offset.as_secs()).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
}
