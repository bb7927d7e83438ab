//! `cmksim validate` applies the azure-2021 profile's double-encryption rule (seed 001) at the
//! cluster's line, as storage would refuse it at world set-up.

use std::path::Path;

use cmksim_scenario::validate_str;

fn scenario(profile: &str, cluster: &str) -> String {
    format!(
        r#"[scenario]
name = "double"
title = "Double encryption by region"
story = "Seed 001."
profile = "{profile}"
duration = "1h"

[[clusters]]
name = "cluster1"
{cluster}

[[timeline]]
at = "10m"
narrate = "Nothing happens."

[[expect]]
storage = "cluster1"
state = "revoked"
never = true
"#
    )
}

fn errors(text: &str) -> Vec<String> {
    match validate_str(Path::new("double.toml"), text) {
        Ok(_) => vec![],
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn a_region_without_double_encryption_is_refused_at_the_clusters_line() {
    let refused = errors(&scenario("azure-2021", "location = \"westcentralus\""));
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert!(
        refused[0].contains("westcentralus doesn’t support Double Encryption for clusters."),
        "{}",
        refused[0]
    );
    // The seed's remedy, and the same file under a profile that lists no such region.
    let remedy = "location = \"westcentralus\"\ndouble_encryption = false";
    assert_eq!(
        errors(&scenario("azure-2021", remedy)),
        Vec::<String>::new()
    );
    let other = "location = \"westcentralus\"";
    assert_eq!(errors(&scenario("azure-2020", other)), Vec::<String>::new());
    let explicit = "location = \"westcentralus\"\ndouble_encryption = true";
    assert_eq!(errors(&scenario("azure-2021", explicit)).len(), 1);
}
