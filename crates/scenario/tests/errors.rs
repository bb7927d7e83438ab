//! One test per error class: each broken file is reported as `FILE:LINE:COLUMN: message`, at
//! the exact place of the mistake.

use cmksim_scenario::validate_file;

mod common;
use common::diagnostics::{assert_one, at, errors};

const HEAD: &str = "[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"2h\"\n";

#[test]
fn valid_minimal_file() {
    assert_eq!(errors(HEAD), Vec::<String>::new());
}

#[test]
fn toml_syntax_error() {
    let text = format!("{HEAD}[[vaults]\nname = \"kv\"\n");
    // The header on line 5 is missing its second `]`.
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.toml:5:"), "{errs:?}");
    assert!(errs[0].contains("expected"), "{errs:?}");
}

#[test]
fn unknown_field() {
    let text =
        format!("{HEAD}[[vaults]]\nname = \"kv\"\nlocation = \"eu\"\npurge_protecton = true\n");
    assert_one(&text, "t.toml:8:1", "unknown field `purge_protecton`");
    assert_one(&text, &at(&text, "purge_protecton", 0), "expected one of");
}

#[test]
fn wrong_type() {
    let text = format!(
        "{HEAD}[[vaults]]\nname = \"kv\"\nlocation = \"eu\"\nretention_days = \"ninety\"\n"
    );
    assert_one(
        &text,
        "t.toml:8:18",
        "invalid type: string \"ninety\", expected i64",
    );
}

#[test]
fn unknown_word_of_a_closed_vocabulary() {
    let text = format!(
        "{HEAD}[[vaults]]\nname = \"kv\"\nlocation = \"eu\"\n[[keys]]\nvault = \"kv\"\nname = \"k\"\nkty = \"AES\"\n"
    );
    assert_one(
        &text,
        &at(&text, "\"AES\"", 0),
        "unknown variant `AES`, expected one of `RSA`, `RSA-HSM`, `EC`, `EC-HSM`",
    );
}

#[test]
fn missing_required_field() {
    let text = "[scenario]\nname = \"t\"\ntitle = \"T\"\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.toml:1:1: missing field `duration`"),
        "{errs:?}"
    );
}

#[test]
fn bad_duration_points_inside_the_string() {
    // "1h5x": the bad unit `x` is the 4th character of the value.
    let text = format!("{HEAD}[[timeline]]\nat = \"1h5x\"\nnarrate = \"n\"\n");
    assert_one(
        &text,
        "t.toml:6:10",
        "at: invalid duration \"1h5x\": expected a unit: ms, s, m, h, d or w",
    );
    assert_eq!(at(&text, "1h5x", 3), "t.toml:6:10");
    // Units out of order, in the scenario's own duration.
    let text = "[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"30m2h\"\n";
    // The `h` (5th character, column 17) is the unit out of order.
    assert_one(text, "t.toml:4:17", "units from largest to smallest");
}

#[test]
fn key_in_unknown_vault() {
    let text = format!("{HEAD}[[keys]]\nvault = \"nope\"\nname = \"k\"\nkty = \"RSA\"\n");
    assert_one(
        &text,
        &at(&text, "\"nope\"", 0),
        "unknown vault `nope` (no vault is defined)",
    );
}

#[test]
fn step_after_unknown_step() {
    let text = format!(
        "{HEAD}[[timeline]]\nid = \"a\"\nat = \"1h\"\nnarrate = \"n\"\n[[timeline]]\nafter = {{ step = \"disable-key\", by = \"10m\" }}\nnarrate = \"m\"\n"
    );
    assert_one(
        &text,
        &at(&text, "\"disable-key\"", 0),
        "unknown step id `disable-key` (known: `a`)",
    );
}

#[test]
fn after_cycle() {
    let text = format!(
        "{HEAD}[[timeline]]\nid = \"a\"\nafter = {{ step = \"b\", by = \"1m\" }}\nnarrate = \"n\"\n\
         [[timeline]]\nid = \"b\"\nafter = {{ step = \"a\", by = \"1m\" }}\nnarrate = \"m\"\n"
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.contains("`after` steps form a cycle: a → b")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&at(&text, "{ step = \"b\"", 0))),
        "{errs:?}"
    );
}

#[test]
fn workspace_linked_to_unknown_cluster() {
    let text = format!("{HEAD}[[workspaces]]\nname = \"ws1\"\nlocation = \"eu\"\nlink = \"c9\"\n");
    assert_one(&text, "t.toml:8:8", "unknown cluster `c9`");
}

#[test]
fn agent_on_unknown_workspace() {
    let text = format!(
        "{HEAD}[[agents]]\nname = \"a1\"\nworkspace = \"ws9\"\ntables = [{{ table = \"Heartbeat\", every = \"1m\" }}]\n"
    );
    assert_one(&text, "t.toml:7:13", "unknown workspace `ws9`");
}

#[test]
fn out_of_range_values() {
    let text = format!(
        "{HEAD}[[workspaces]]\nname = \"ws1\"\nlocation = \"eu\"\nretention_days = 800\n\
         [[agents]]\nname = \"a1\"\nworkspace = \"ws1\"\ntables = [{{ table = \"Perf\", every = \"10s\", records = -5 }}]\n\
         [[timeline]]\nat = \"1h\"\nfault = {{ keyvault = \"error-rate\", error_rate = 1.5 }}\n"
    );
    assert_one(
        &text,
        &at(&text, "800", 0),
        "retention_days must be between 7 and 730, got 800",
    );
    assert_one(
        &text,
        &at(&text, "-5", 0),
        "records must be between 1 and 1000000, got -5",
    );
    assert_one(
        &text,
        &at(&text, "1.5", 0),
        "error_rate must be more than 0 and at most 1, got 1.5",
    );
}

#[test]
fn too_fast_agent_rate() {
    let text = format!(
        "{HEAD}[[workspaces]]\nname = \"ws1\"\nlocation = \"eu\"\n[[agents]]\nname = \"a1\"\nworkspace = \"ws1\"\ntables = [{{ table = \"Perf\", every = \"100ms\" }}]\n"
    );
    assert_one(
        &text,
        &at(&text, "\"100ms\"", 0),
        "every must be at least 1000ms",
    );
}

#[test]
fn duplicate_names() {
    let text = format!(
        "{HEAD}[[vaults]]\nname = \"kv\"\nlocation = \"eu\"\n[[vaults]]\nname = \"kv\"\nlocation = \"us\"\n"
    );
    assert_one(
        &text,
        "t.toml:9:8",
        "duplicate vault `kv` (first defined at line 6)",
    );
}

#[test]
fn step_beyond_duration() {
    let text = format!("{HEAD}[[timeline]]\nat = \"3h\"\nnarrate = \"late\"\n");
    assert_one(
        &text,
        "t.toml:6:6",
        "step at T+03:00:00 is after the end of the scenario (duration 2h)",
    );
    // Through an `after` chain too.
    let text = format!(
        "{HEAD}[[timeline]]\nid = \"a\"\nat = \"1h30m\"\nnarrate = \"n\"\n[[timeline]]\nafter = {{ step = \"a\", by = \"45m\" }}\nnarrate = \"m\"\n"
    );
    assert_one(
        &text,
        &at(&text, "{ step", 0),
        "step at T+02:15:00 is after the end",
    );
}

#[test]
fn action_parameters() {
    let text = format!(
        "{HEAD}[[vaults]]\nname = \"kv\"\nlocation = \"eu\"\n[[timeline]]\nat = \"1h\"\naction = \"update-key\"\nvault = \"kv\"\ncapacity = 5\n"
    );
    assert_one(&text, &at(&text, "5\n", 0), "`capacity` does not apply to action `update-key` (it takes: vault, key, version, enabled, not_before, expires, ops)");
    assert_one(
        &text,
        &at(&text, "\"update-key\"", 0),
        "action `update-key` needs `key`",
    );
    let text = format!("{HEAD}[[timeline]]\nat = \"1h\"\naction = \"disable-key\"\n");
    assert_one(
        &text,
        &at(&text, "\"disable-key\"", 0),
        "unknown variant `disable-key`",
    );
}

#[test]
fn fault_shapes() {
    let text = format!(
        "{HEAD}[[timeline]]\nat = \"1h\"\nfault = {{ hsm = \"tamper\" }}\nduration = \"5m\"\n"
    );
    assert_one(
        &text,
        &at(&text, "\"5m\"", 0),
        "`hsm tamper` cannot be undone automatically",
    );
    let text =
        format!("{HEAD}[[timeline]]\nat = \"1h\"\nfault = {{ partition = [\"storage\"] }}\n");
    assert_one(
        &text,
        &at(&text, "[\"storage\"]", 0),
        "partition takes two different hosts",
    );
    let text = format!("{HEAD}[[timeline]]\nat = \"1h\"\nfault = {{ crash = \"storage\", restart = \"storage\" }}\n");
    assert_one(
        &text,
        &at(&text, "\"storage\" }", 0),
        "a fault names one target; `restart` is a second one",
    );
}

#[test]
fn expectation_shapes() {
    let text = format!(
        "{HEAD}[[clusters]]\nname = \"c1\"\nlocation = \"eu\"\n[[expect]]\nstorage = \"c1\"\nstate = \"revoked\"\nmin_records = 3\nby = \"1h\"\n"
    );
    assert_one(
        &text,
        &at(&text, "3\nby", 0),
        "`min_records` does not apply to a `storage` expectation",
    );
    let text = format!(
        "{HEAD}[[clusters]]\nname = \"c1\"\nlocation = \"eu\"\n[[expect]]\nstorage = \"c1\"\nstate = \"revoked\"\nwithin = \"1h\"\nafter_step = \"nope\"\n"
    );
    assert_one(&text, &at(&text, "\"nope\"", 0), "unknown step id `nope`");
    let text = format!(
        "{HEAD}[[clusters]]\nname = \"c1\"\nlocation = \"eu\"\n[[expect]]\nstorage = \"c1\"\nstate = \"revoked\"\nby = \"5h\"\n"
    );
    assert_one(
        &text,
        &at(&text, "\"5h\"", 0),
        "by at T+05:00:00 is after the end of the scenario",
    );
    let text = format!(
        "{HEAD}[[workspaces]]\nname = \"ws1\"\nlocation = \"eu\"\n[[expect]]\ningest_to = \"ws1\"\noutcome = \"lost\"\nby = \"1h\"\n"
    );
    assert_one(
        &text,
        &at(&text, "\"lost\"", 0),
        "outcome \"lost\" for `ingest_to`: expected one of stored, buffered, dropped, expired",
    );
}

#[test]
fn profile_override_errors() {
    let text = format!("{HEAD}[profile.key_access]\nbuffer_widow = \"2h\"\n");
    assert_one(
        &text,
        &at(&text, "buffer_widow", 0),
        "[profile] override: profile azure-2020: unknown field `buffer_widow`",
    );
    let text =
        "[scenario]\nname = \"t\"\ntitle = \"T\"\nduration = \"2h\"\nprofile = \"azure-2019\"\n";
    assert_one(
        text,
        "t.toml:5:11",
        "unknown profile \"azure-2019\": expected one of azure-2020, azure-2021, azure-current",
    );
}

#[test]
fn several_errors_are_collected_in_file_order() {
    let text = format!(
        "{HEAD}[[keys]]\nvault = \"nope\"\nname = \"k\"\nkty = \"RSA\"\n[[timeline]]\nat = \"9h\"\nnarrate = \"x\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with("t.toml:6:9: unknown vault"), "{errs:?}");
    assert!(
        errs[1].starts_with("t.toml:10:6: step at T+09:00:00"),
        "{errs:?}"
    );
}

#[test]
fn bad_names() {
    let text = format!("{HEAD}[[vaults]]\nname = \"my vault\"\nlocation = \"eu\"\n");
    assert_one(
        &text,
        &at(&text, " vault\"", 0),
        "vault name \"my vault\": unexpected character ' '",
    );
}

#[test]
fn missing_file() {
    let errs = validate_file("/no/such/dir/scenario.toml").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        errs[0].to_string(),
        "/no/such/dir/scenario.toml: cannot read scenario file: no such file"
    );
}

#[test]
fn file_errors_carry_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, format!("{HEAD}[[vaults]]\nname = 5\n")).unwrap();
    let errs = validate_file(&path).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        format!(
            "{}:6:8: invalid type: integer `5`, expected a string",
            path.display()
        )
    );
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    let errs = validate_file(&big).unwrap_err();
    assert!(
        errs[0].to_string().contains("the limit is 1048576 bytes"),
        "{errs:?}"
    );
}
